"""Names as words of the query (search/matching.py ``WordSpans``): a name inside another word is not contained."""

import numpy as np
import pytest

from search.lexicon import Lexicon
from search.matching import CONTAINED_REASON, NAME_FEATURES, WordSpans, match_names


def spans(*words: str) -> WordSpans:
    s = WordSpans.of("".join(words), words)
    assert s is not None
    return s


def test_spans_follow_the_compact_words():
    s = WordSpans.of("星巴克会员", ["星巴克", " ", "会员"])  # the compact form has no space
    assert s is not None and s.bounds == (0, 3, 5) and s.words == ("星巴克", "会员")
    assert WordSpans.of("星巴克会员", ["星巴克", "会"]) is None  # words short of the query
    assert WordSpans.of("星巴克会员", ["星巴", "会员"]) is None  # words that do not spell it


@pytest.mark.parametrize(("words", "start", "length", "inside"), [
    (("小米粥",), 0, 2, True),  # 小米 inside 小米粥 (millet porridge)
    (("贝多芬",), 1, 2, True),  # 多芬 inside 贝多芬
    (("小米", "手机"), 0, 2, False),  # a word of the query
    (("附近", "的", "星巴克"), 3, 3, False),
    (("星巴克", "会员"), 0, 5, False),  # a run of words
    (("一", "个人"), 0, 2, True),  # 一个 across 一 / 个人
    (("放松", "下"), 1, 2, True),  # 松下 across 放松 / 下
])
def test_a_name_counts_as_words_of_the_query(words, start, length, inside):
    assert spans(*words).inside_other_word(start, length, lambda w: False) is inside


def test_a_name_inside_a_catalog_name_or_a_company_word_stays():
    names = {"中国电信"}.__contains__
    assert not spans("中国电信").inside_other_word(2, 2, names)  # 电信 inside the name 中国电信
    assert spans("中国电信").inside_other_word(2, 2, lambda w: False)
    assert not spans("国家教委").inside_other_word(2, 2, lambda w: False, {"国家教委"})  # an organisation (nt)
    assert spans("国家教委").inside_other_word(2, 2, lambda w: False)
    assert not spans("微软公司").inside_other_word(0, 2, lambda w: False)  # the name and a company designation
    assert not spans("淘宝网").inside_other_word(0, 2, lambda w: False)  # the name and a company designation
    assert not spans("华为技术").inside_other_word(0, 2, lambda w: False)
    assert spans("京东方").inside_other_word(0, 2, lambda w: False)  # 方 designates no company
    assert spans("拦路虎").inside_other_word(1, 2, lambda w: False)  # a designation counts after the name only


def test_match_names_leaves_out_names_inside_other_words():
    lex = Lexicon.build(["小米", "三星", "稻香村"], [[], [], []])
    generic = np.array([False, False, False])
    f = dict(zip(NAME_FEATURES, match_names(lex, "小米粥", generic=generic).features, strict=True))
    assert f["contains_name"] == pytest.approx(2 / 3) and f["starts_with_name"] == pytest.approx(2 / 3)
    s = spans("小米粥")
    m = match_names(lex, "小米粥", generic=generic, inside_word=lambda st, ln: s.inside_other_word(st, ln, lambda w: False))
    f = dict(zip(NAME_FEATURES, m.features, strict=True))
    assert m.boosts == {} and f["contains_name"] == 0.0 and f["starts_with_name"] == 0.0 and not m.strong
    s = spans("小米", "手机")
    m = match_names(lex, "小米手机", generic=generic, inside_word=lambda st, ln: s.inside_other_word(st, ln, lambda w: False))
    assert m.boosts[0][1] == CONTAINED_REASON


def test_the_analysis_reads_names_as_words(searcher50):
    """Over the 50-item index: 影院 (an alias of 电影票) is not in 电影院, 京东 not in 京东方 (a display maker), both
    single words of jieba's dictionary; 京东 stays a word of 京东快递, and 影院 of 附近影院."""
    a = searcher50.analyzer
    doc = {it.name: d for d, it in enumerate(searcher50.items)}

    def contained(q: str) -> set[int]:
        return {d for d, (_, why) in a.analyze(q).match.boosts.items() if why == CONTAINED_REASON}

    assert doc["电影票"] not in contained("电影院") and doc["京东"] not in contained("京东方")
    assert doc["京东"] in contained("京东快递") and doc["电影票"] in contained("附近影院")

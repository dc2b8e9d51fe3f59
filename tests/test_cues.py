"""Cues around a name (search/cues.py) and the name corrections of search/matching.py."""

import pytest

from search.cues import split_command
from search.matching import name_readings, near_names, nearest_names, pinyin_readings

KNOWN = {"qq", "微信", "淘宝", "去哪儿"}


@pytest.mark.parametrize(
    ("q", "core", "verb", "suffix"),
    [("帮我打开qq", "qq", "打开", ""), ("请帮我打开uc", "uc", "打开", ""), ("访问京东商城的网页", "京东商城", "访问", "的网页"),
     ("opentaobao", "taobao", "open", ""), ("京东官网", "京东", "", "官网"), ("抖音app", "抖音", "", "app"),
     ("开微信", "微信", "开", ""), ("百度浏览器打开", "百度浏览器", "打开", ""), ("打开下厨房找菜谱", "下厨房找菜谱", "打开", ""),
     ("上海迪士尼", "上海迪士尼", "", ""), ("去医院", "去医院", "", ""), ("装修要花多少钱", "装修要花多少钱", "", "")],
)
def test_split_command(q, core, verb, suffix):
    c = split_command(q, KNOWN.__contains__)
    assert (c.core, c.verb, c.suffix) == (core, verb, suffix)


@pytest.mark.parametrize(("q", "words"), [("浏览器", ("浏览器",)), ("搜索引擎", ("搜索引擎",)), ("下载器", ("下载", "器"))])
def test_a_verb_that_only_begins_a_word_is_no_command(q, words):
    """浏览器 is a thing, not 浏览 + 器: a strong verb that begins a longer word of the query, or that would leave one
    character naming nothing, stays part of the query."""
    c = split_command(q, KNOWN.__contains__, words=words)
    assert (c.core, c.verb, c.wrapped) == (q, "", False)
    c = split_command("打开" + q, KNOWN.__contains__, words=("打开", *words))
    assert (c.core, c.verb) == (q, "打开")


def test_without_the_words_a_verb_before_two_characters_is_taken_off():
    assert split_command("搜索引擎").verb == "搜索" and split_command("搜索引擎", words=("搜索引擎",)).verb == ""


def test_weak_verbs_need_a_known_name_and_flags():
    assert split_command("去哪儿", KNOWN.__contains__).core == "去哪儿"  # the full name, not 哪儿
    c = split_command("装修要花多少钱")
    assert c.question and not c.wrapped
    assert split_command("附近修手机").need
    assert split_command("打开闪电盒子").name_shaped()
    assert not split_command("搜索附近好吃的").name_shaped()


@pytest.mark.parametrize("q", ["网约车太贵了", "快递太慢了", "共享单车总是坏", "地铁太挤了", "充电宝不好用"])
def test_a_complaint_about_a_service_is_a_need(q):
    c = split_command(q)
    assert c.need and not c.name_shaped()
    assert not split_command("网约车").need


def test_pinyin_readings_try_polyphones():
    r = pinyin_readings("银行")
    assert r[0] == "yinhang" or "yinhang" in r
    assert len(set(r)) == len(r) and len(r) <= 8


def test_near_names_one_edit():
    cands = [(1, ["携程旅行"]), (2, ["携程旅行网"]), (3, ["肯德基"]), (4, ["小红书"])]
    assert near_names("携程旅形", cands) == [(1, "携程旅行")]  # a substitution in a four-character name
    assert near_names("携程旅", cands) == [(1, "携程旅行")]  # a character left out
    assert near_names("小红伞", cands) == []  # a three-character substitution names something else
    assert near_names("肯德", cands) == []  # too short to correct
    assert near_names("肯德基", cands) == []  # the name itself is not a correction


def test_near_names_keep_a_name_typed_right():
    cands = [(1, ["附近美食"]), (2, ["提前还贷"]), (3, ["家庭保单"])]
    # a substitution that would replace a character of a name the query contains is no slip
    assert near_names("附近美甲", cands) == [(1, "附近美食")]
    assert near_names("附近美甲", cands, keep=["美甲"]) == []
    assert near_names("家庭保洁", cands, keep=["保洁"]) == []
    # a character inserted or left out keeps the name's sense: still corrected
    assert near_names("提前还房贷", cands, keep=["房贷"]) == [(2, "提前还贷")]
    # a kept name the candidate also has does not block it, nor does one the query does not contain
    assert near_names("携程旅形", [(4, ["携程旅行"])], keep=["携程", "美甲"]) == [(4, "携程旅行")]


def test_nearest_names_by_characters_or_pinyin():
    cands = [(i, [n], name_readings([n])) for i, n in ((1, "闪电快递"), (2, "小红书"), (3, "京东"))]
    got = nearest_names("闪电盒子", cands)
    assert got and got[0][0] == 1 and all(i != 3 for i, _ in got)
    assert nearest_names("xiaohongshu", [(2, ["小红书"], ["xiaohongshu"])])[0][0] == 2
    assert nearest_names("xiaohongshu", [(2, ["小红书"], [])]) == []  # the pinyin is what matched


def test_pinyin_readings_start_with_the_default_reading():
    import json
    from pathlib import Path

    from search.normalize import compact
    from search.tokenize import pinyin_keys

    root = Path(__file__).resolve().parents[1]
    texts = {json.loads(line)["query"] for line in (root / "eval/queries/dev.jsonl").open(encoding="utf-8")}
    texts |= {json.loads(line)["name"] for line in (root / "index_data/catalog.jsonl").open(encoding="utf-8")}
    texts |= {"银行行长", "重庆长江", "音乐", "朝阳", "qq音乐", "12306", "kfc"}
    for t in sorted(compact(x) for x in texts):
        if t and len(t) <= 8:
            assert pinyin_readings(t)[0] == pinyin_keys(t)[0], t


def _spellable(reading: str, options: list[tuple[str, ...]]) -> bool:
    """Whether ``reading`` is one option per position, joined (memoised over (position, offset))."""
    from functools import cache

    @cache
    def go(i: int, at: int) -> bool:
        if i == len(options):
            return at == len(reading)
        return any(reading.startswith(o, at) and go(i + 1, at + len(o)) for o in options[i])

    return go(0, 0)


def test_every_reading_is_one_of_each_characters_readings():
    """The homophone pass is skipped where no key starts like the characters' own readings (``char_readings``); that
    is sound only if the phrase-aware readings of a whole query are made of them."""
    import json
    from pathlib import Path

    from search.matching import char_readings
    from search.normalize import compact

    root = Path(__file__).resolve().parents[1]
    texts = {json.loads(line)["query"] for line in (root / "eval/queries/dev.jsonl").open(encoding="utf-8")}
    texts |= {json.loads(line)["name"] for line in (root / "index_data/catalog.jsonl").open(encoding="utf-8")}
    texts |= {"银行行长", "重庆长江", "音乐", "朝阳", "qq音乐", "12306", "kfc", "肯得基", "长沙臭豆腐一条街的美食"}
    checked = 0
    for t in sorted(compact(x) for x in texts):
        if not t:
            continue
        options = [char_readings(ch) for ch in t]
        for r in pinyin_readings(t):
            assert _spellable(r, options), (t, r)
            checked += 1
    assert checked > 3000


def test_could_spell_prunes_only_what_no_key_starts_with():
    from search.lexicon import Lexicon
    from search.matching import char_readings

    lex = Lexicon.build(["肯德基", "银行"], [[], []])

    def opts(q: str) -> list[tuple[str, ...]]:
        return [char_readings(ch) for ch in q]
    assert lex.could_spell(opts("肯得鸡"))  # ken-de-ji spells the key kendeji
    assert lex.could_spell(opts("银航"))  # yin-hang
    assert lex.could_spell(opts("肯"))  # a start of a key is not pruned
    assert not lex.could_spell(opts("睡不着"))  # no key starts with shui
    assert not lex.could_spell(opts("肯不"))  # ken… then no key goes on with bu
    assert not lex.could_spell([("k", "y"), ("q",)])
    assert lex.could_spell([("k", "y"), ("q",)], limit=1)  # more open spellings than the limit: nothing pruned
    assert lex.could_spell([]) is True


def test_without_corrections_drops_only_the_corrections():
    from search.matching import (
        HOMOPHONE_REASON,
        NAME_FEATURES,
        NameMatch,
        has_correction,
        without_corrections,
    )

    f = dict.fromkeys(NAME_FEATURES, 0.0)
    f.update(homophone=1.0, prefix_cover=0.3)
    m = NameMatch({1: (80.0, HOMOPHONE_REASON), 2: (6.0, "前缀匹配")}, tuple(f.values()), True)
    assert has_correction(m)
    out = without_corrections(m)
    assert out.boosts == {2: (6.0, "前缀匹配")} and not has_correction(out)
    assert dict(zip(NAME_FEATURES, out.features, strict=True))["homophone"] == 0.0 and not out.strong
    g = dict.fromkeys(NAME_FEATURES, 0.0)
    g["generic_exact"] = 0.8  # a generic service reached by its pinyin
    gm = without_corrections(NameMatch({3: (80.0, HOMOPHONE_REASON)}, tuple(g.values()), True))
    assert gm.boosts == {} and dict(zip(NAME_FEATURES, gm.features, strict=True))["generic_exact"] == 0.0
    assert without_corrections(out) is out  # nothing to drop


def test_latin_names_are_contained_only_as_whole_words():
    from search.lexicon import Lexicon

    lex = Lexicon.build(["UC浏览器", "意法半导体", "星巴克", "肯德基", "耐克"], [["uc"], ["st"], ["starbucks"], ["kfc"], ["nike"]])
    found = lambda text, breaks=frozenset(): {(i, s, n) for i, _, s, n in lex.contained(text, breaks=breaks)}  # noqa: E731
    assert found("starbucks优惠") == {(2, 0, 9)}  # the name, but not the st or uc inside it
    assert found("luckin") == set()
    assert found("kfc点餐") == {(3, 0, 3)}  # a Latin word next to Chinese characters
    assert found("nikeshoes") == set() and found("nikeshoes", frozenset({4})) == {(4, 0, 4)}  # "nike shoes"
    assert found("肯德基宅急送") == {(3, 0, 3)}  # Chinese names have no word boundary


def test_names_the_query_contains_are_no_question_or_need_words():
    c = split_command("饿了么红包")
    assert c.question and c.need  # 么 and 饿了
    c = split_command("饿了么红包", names=["饿了么"])
    assert not c.question and not c.need
    c = split_command("饿了么外卖怎么退款", names=["饿了么外卖", "饿了么"])
    assert c.question and not c.need  # 怎么 is outside the name
    assert split_command("什么值得买", names=["什么值得买"]).question is False
    assert split_command("附近的饿了么", names=["饿了么"]).need  # 附近 is outside the name


def test_a_query_that_is_a_name_or_alias_is_not_a_generic_items_initials():
    import numpy as np

    from search.lexicon import Lexicon
    from search.matching import NAME_FEATURES, match_names

    # ETC is an alias of ETC办理 and the initials of 儿童餐 (er tong can): the alias as typed wins, the initials go
    lex = Lexicon.build(["ETC办理", "儿童餐"], [["ETC"], []])
    m = match_names(lex, "etc", generic=np.array([False, True]))
    assert set(m.boosts) == {0} and m.boosts[0][1] == "别名匹配"
    f = dict(zip(NAME_FEATURES, m.features, strict=True))
    assert f["exact_alias"] == 1.0 and f["generic_exact"] == 0.0
    # without the alias, the initials are a match as before; so are an entity's initials beside the alias
    m = match_names(Lexicon.build(["ETC办理", "儿童餐"], [[], []]), "etc", generic=np.array([False, True]))
    assert m.boosts[1][1] == "首字母匹配"
    m = match_names(lex, "etc", generic=np.array([False, False]))
    assert set(m.boosts) == {0, 1} and m.boosts[1][1] == "首字母匹配"

"""Needs typed as pinyin, read through the catalog's tags (search/readings.py)."""

import pytest

from search.readings import PREFIXES, SUFFIXES, PinyinReadings

TAGS = [["睡不着", "失眠"], ["头疼", "火锅"], ["火锅", "买手机"], ["卖手机"], ["买手机"], ["kfc", "东"]]


@pytest.fixture(scope="module")
def readings():
    return PinyinReadings.build(TAGS)


@pytest.mark.parametrize(("q", "phrase"), [
    ("shimian", "失眠"), ("touteng", "头疼"),
    ("shuibuzhao", "睡不着"), ("shuibuzhe", "睡不着"),  # pypinyin's default reading of 着 and the one users type
    ("xiangchihuoguo", "想吃火锅"), ("toutengzenmeban", "头疼怎么办"), ("toutengle", "头疼了"),
    ("maishouji", "买手机"),  # 买手机 and 卖手机 read alike: the tag more items carry
    ("chihuoguo", "吃火锅"), ("kantouteng", "看头疼"),  # a bare verb before a tag
])
def test_a_tag_is_read_from_its_pinyin(readings, q, phrase):
    assert readings.read(q) == phrase


@pytest.mark.parametrize("q", ["dong", "kfc", "hello", "xiang", "zenmeban", "cha", "chadong", "睡不着", "tou teng", "touteng2",
                               ""])
def test_what_no_tag_spells_has_no_reading(readings, q):
    """Short keys (东: dong), Latin tags, words of no tag, a bare opening or ending, hanzi, spaces and digits."""
    assert readings.read(q) is None


def test_ties_go_to_the_default_reading_then_the_most_carried_then_code_point_order():
    assert PinyinReadings.build([["卖手机"], ["买手机"]]).read("maishouji") == "买手机"  # 买 < 卖 in code points
    assert PinyinReadings.build([["卖手机"], ["卖手机"], ["买手机"]]).read("maishouji") == "卖手机"
    # 着 reads zhe by default: a tag whose default reading is shuibuzhe keeps the key over another reading of 睡不着
    assert PinyinReadings.build([["睡不着"]]).read("shuibuzhe") == "睡不着"


def test_affixes_are_pinyin_of_their_characters():
    from search.tokenize import pinyin_keys

    for table in (PREFIXES, SUFFIXES):
        for key, hanzi in table.items():
            assert pinyin_keys(hanzi)[0] == key, (key, hanzi)

"""The answer page (search/page.py), built alone over stub rankers: the one definition of each route's page."""

from __future__ import annotations

import numpy as np
import pytest

from search.analysis import Analysis
from search.cues import split_command
from search.fuzzy import Recommendation
from search.items import ItemTable
from search.matching import NAME_FEATURES, NameMatch
from search.page import PageBuilder
from search.precise import KEYWORD_REASON
from search.types import Hit, Item


def _item(i: int, cat: str, name: str | None = None, type_: str = "brand") -> Item:
    return Item(id=f"it-{i}", name=name or f"名{i}", type=type_, category=cat, description="测试条目" * 5)


ITEMS = [_item(0, "餐饮店", "肯德基"), _item(1, "餐饮店", "麦当劳"), _item(2, "音乐"), _item(3, "电台"), _item(4, "音乐"),
         _item(5, "影视娱乐", "密室逃脱", "service"), _item(6, "餐饮店", "汉堡王")]
TABLE = ItemTable(ITEMS)


def _hit(i: int, reason: str = "名称匹配") -> Hit:
    return TABLE.hit(i, 10.0 - i, reason)


class StubPrecise:
    def __init__(self, docs: list[int], reason: str = "名称匹配") -> None:
        self.docs, self.reason, self.calls = docs, reason, []

    def rank(self, a, k, trace=None):
        self.calls.append(k)
        return [_hit(d, self.reason) for d in self.docs[:k]]


class StubFuzzy:
    def __init__(self, docs: list[int], similar: list[int] = ()) -> None:
        self.docs, self.calls, self.similar_docs = docs, [], list(similar)

    def recommend(self, a, k, exclude=None, trace=None):
        self.calls.append((k, exclude))
        hits = [_hit(d, "语义相近") for d in self.docs if not exclude or d not in exclude][:k]
        return Recommendation(hits, [(c, 0.5) for c in dict.fromkeys(h.category for h in hits)][::-1])

    def similar(self, doc, n, exclude, trace=None, ceiling=float("inf")):
        self.ceiling = ceiling
        return [_hit(d, "同类推荐") for d in self.similar_docs if d != doc and d not in exclude][:n]


def _analysis(strong: bool, boosts=None, features=None, unknown=False, reason="名称匹配", bm25=()) -> Analysis:
    feats = features or tuple([0.0] * len(NAME_FEATURES))
    match = NameMatch(boosts if boosts is not None else ({0: (100.0, reason)} if strong else {}), feats, strong)
    return Analysis("q", "q", "q", ("q",), ("q",), match, np.array(bm25, np.int64), np.zeros(len(bm25)), 10, [],
                    np.zeros(3), 0.5, None, unknown)


def test_precise_page_has_the_direct_hit_first_then_its_alternatives():
    fuzzy = StubFuzzy([2, 3], similar=[6, 1, 4])
    page = PageBuilder(StubPrecise([0, 1]), fuzzy, TABLE).answer(_analysis(True), "precise", 4)
    assert page.direct_hit is not None and page.direct_hit.id == "it-0" and not page.not_found
    assert fuzzy.ceiling == page.results[1].score  # alternatives are shown no higher than the hit above them
    assert [h.id for h in page.results] == ["it-0", "it-1", "it-6", "it-4"] and page.groups == {}
    assert page.correction is None


def test_corrected_name_is_marked():
    page = PageBuilder(StubPrecise([0], "同音纠错"), StubFuzzy([]), TABLE).answer(_analysis(True, reason="同音纠错"),
                                                                               "precise", 1)
    assert page.direct_hit.id == "it-0" and page.correction == {"typed": "q", "name": "肯德基"}


def test_unknown_name_gets_not_found_nearest_names_and_a_short_list():
    a = _analysis(False, unknown=True, bm25=[0, 1, 6])
    a = Analysis("打开肯德鸡鸡", "打开肯德鸡鸡", "打开肯德鸡鸡", (), (), a.match, a.bm25_docs, a.bm25_scores, 10, [],
                 np.zeros(3), 0.9, split_command("打开肯德鸡鸡"), True)
    page = PageBuilder(StubPrecise([0]), StubFuzzy([2, 3, 4, 5, 6]), TABLE).answer(a, "precise", 10)
    assert page.not_found and page.direct_hit is None
    assert [h.id for h in page.did_you_mean] == ["it-0"] and page.results[0].id == "it-0"
    assert len(page.results) == 5 and len({h.id for h in page.results}) == 5


def test_need_naming_a_service_shows_the_service_card_first():
    f = [0.0] * len(NAME_FEATURES)
    f[NAME_FEATURES.index("generic_contained")] = 0.6
    a = _analysis(False, boosts={5: (18.0, "包含名称"), 0: (3.0, "前缀匹配")}, features=tuple(f))
    page = PageBuilder(StubPrecise([]), StubFuzzy([5, 2, 3]), TABLE).answer(a, "fuzzy", 3)
    assert page.direct_hit.id == "it-5" and [h.id for h in page.results] == ["it-5", "it-2", "it-3"]
    assert "it-5" not in {i for ids in page.groups.values() for i in ids}
    f[NAME_FEATURES.index("generic_contained")] = 0.3  # a need that only mentions the service in passing
    a = _analysis(False, boosts={5: (9.0, "包含名称")}, features=tuple(f))
    assert PageBuilder(StubPrecise([]), StubFuzzy([5, 2, 3]), TABLE).answer(a, "fuzzy", 3).direct_hit is None


def test_precise_page_without_a_name_match_has_no_direct_hit():
    page = PageBuilder(StubPrecise([1], KEYWORD_REASON), StubFuzzy([2]), TABLE).answer(_analysis(False), "precise", 5)
    assert page.direct_hit is None and [h.id for h in page.results] == ["it-1", "it-2"]  # recommendations fill up


def test_empty_precise_answer_falls_back_to_recommendations():
    fuzzy = StubFuzzy([2, 3])
    page = PageBuilder(StubPrecise([]), fuzzy, TABLE).answer(_analysis(False), "precise", 5)
    assert [h.id for h in page.results] == ["it-2", "it-3"] and fuzzy.calls == [(5, None)]


def test_fuzzy_page_is_grouped_by_category_in_facet_order():
    page = PageBuilder(StubPrecise([0]), StubFuzzy([2, 3, 4]), TABLE).answer(_analysis(True), "fuzzy", 5)
    assert page.direct_hit is None
    assert page.groups == {"电台": ["it-3"], "音乐": ["it-2", "it-4"]}
    assert list(page.groups) == ["电台", "音乐"]  # the recommender's facets, most likely first


@pytest.mark.parametrize("strong", [True, False])
def test_mixed_page_puts_the_card_first_and_never_repeats_it(strong):
    precise, fuzzy = StubPrecise([0, 1]), StubFuzzy([0, 2, 3])
    page = PageBuilder(precise, fuzzy, TABLE).answer(_analysis(strong), "mixed", 3)
    if strong:
        assert page.direct_hit.id == "it-0" and [h.id for h in page.results] == ["it-0", "it-2", "it-3"]
        assert precise.calls == [1] and fuzzy.calls == [(2, {0})]
        assert "it-0" not in {i for ids in page.groups.values() for i in ids}
    else:
        assert page.direct_hit is None and precise.calls == [] and fuzzy.calls == [(3, None)]
        assert [h.id for h in page.results] == ["it-0", "it-2", "it-3"]


class MixedPrecise:
    """The direct hit (a name match), then keyword-only matches of several categories."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def rank(self, a, k, trace=None):
        return [_hit(0, self.reason), _hit(2, KEYWORD_REASON), _hit(1, KEYWORD_REASON), _hit(6, "前缀匹配")][:k]


def test_keyword_only_matches_stay_only_in_the_named_things_category():
    fuzzy = StubFuzzy([], similar=[1, 6, 4])
    page = PageBuilder(MixedPrecise("名称匹配"), fuzzy, TABLE).answer(_analysis(True), "precise", 4)
    # 名2 (音乐) only shared a keyword: out; 麦当劳 (餐饮店, the hit's category) and the prefix match 汉堡王 stay
    assert [h.id for h in page.results] == ["it-0", "it-1", "it-6", "it-4"]


def test_a_corrected_name_drops_every_keyword_only_match():
    fuzzy = StubFuzzy([], similar=[1, 6, 4])
    page = PageBuilder(MixedPrecise("同音纠错"), fuzzy, TABLE).answer(_analysis(True, reason="同音纠错"), "precise", 4)
    assert [h.id for h in page.results] == ["it-0", "it-6", "it-1", "it-4"]
    assert page.correction == {"typed": "q", "name": "肯德基"}


def test_precise_page_without_a_direct_hit_is_filled_with_recommendations():
    fuzzy = StubFuzzy([2, 3, 4])
    page = PageBuilder(StubPrecise([6], KEYWORD_REASON), fuzzy, TABLE).answer(_analysis(False), "precise", 4)
    assert page.direct_hit is None
    assert [h.id for h in page.results] == ["it-6", "it-2", "it-3", "it-4"]
    assert fuzzy.calls == [(3, {6})]  # asked for the rest, without what is already shown


def test_card_cover_is_measured_on_the_need_without_its_modifiers():
    from search.page import content_cover

    assert content_cover(3 / 9, "附近哪里可以修电脑") == pytest.approx(1.0)  # the need is 修电脑
    assert content_cover(4 / 9, "周末和朋友玩密室逃脱") == pytest.approx(4 / 9)  # no modifier: unchanged
    assert content_cover(0.0, "附近") == 0.0
    assert content_cover(2 / 7, "电脑坏了怎么办") == pytest.approx(2 / 4)  # 怎么办 whole, not 怎么 leaving 办


class NamesPrecise:
    """The direct hit (``reason``), then two more name matches (``others``: names that start with the query, or
    that the query contains): one of another category, one of its own."""

    def __init__(self, reason: str, others: str = "前缀匹配") -> None:
        self.reason, self.others = reason, others

    def rank(self, a, k, trace=None):
        return [_hit(0, self.reason), _hit(3, self.others), _hit(6, self.others)][:k]


def test_names_that_only_start_with_the_named_one_stay_in_its_category():
    fuzzy = StubFuzzy([], similar=[1, 4])
    page = PageBuilder(NamesPrecise("名称匹配"), fuzzy, TABLE).answer(_analysis(True), "precise", 4)
    assert [h.id for h in page.results] == ["it-0", "it-6", "it-1", "it-4"]  # 名3 (电台) is another thing: 富士 → 富士康
    page = PageBuilder(NamesPrecise("前缀匹配"), fuzzy, TABLE).answer(_analysis(True, reason="前缀匹配"), "precise", 4)
    assert [h.id for h in page.results][:3] == ["it-0", "it-3", "it-6"]  # a prefix typed: every completion may be meant


def test_names_inside_a_name_typed_whole_stay_only_in_its_category():
    fuzzy = StubFuzzy([], similar=[1, 4])
    # 霸王茶姬 typed whole: 霸王 (another kind of thing) is only a part of the name
    page = PageBuilder(NamesPrecise("名称匹配", "包含名称"), fuzzy, TABLE).answer(_analysis(True), "precise", 4)
    assert [h.id for h in page.results] == ["it-0", "it-6", "it-1", "it-4"]
    page = PageBuilder(NamesPrecise("拼音匹配", "包含名称"), fuzzy, TABLE).answer(_analysis(True, reason="拼音匹配"), "precise", 4)
    assert [h.id for h in page.results] == ["it-0", "it-6", "it-1", "it-4"]
    # 支付宝交电费: the hit is itself a contained name, and every name the query holds may be meant
    page = PageBuilder(NamesPrecise("包含名称", "包含名称"), fuzzy, TABLE).answer(_analysis(True, reason="包含名称"), "precise", 4)
    assert [h.id for h in page.results][:3] == ["it-0", "it-3", "it-6"]


@pytest.mark.parametrize(("cq", "cover", "card"), [("肯德基附近门店", 3 / 7, True), ("周末想去肯德基吃点东西", 3 / 11, False)])
def test_mixed_page_card_for_an_entity_that_is_half_the_need(cq, cover, card):
    # not a strong match (肯德基 covers under half of the query), but 3 of the 5 characters left once 附近 is set aside
    # (肯德基门店); in 周末想去肯德基吃点东西, 3 of the 9 left without 东西
    feats = [0.0] * len(NAME_FEATURES)
    feats[NAME_FEATURES.index("contains_name")] = cover
    match = NameMatch({0: (5.0, "包含名称"), 5: (6.0, "包含名称"), 1: (9.0, "前缀匹配")}, tuple(feats), False)
    a = Analysis(cq, cq, cq, (cq,), (cq,), match, np.zeros(0, np.int64), np.zeros(0), 10, [], np.zeros(3), 0.5, None,
                 False)
    fuzzy = StubFuzzy([0, 2, 3])
    page = PageBuilder(StubPrecise([0]), fuzzy, TABLE).answer(a, "mixed", 3)
    if card:  # the contained entity (肯德基), not the generic service (密室逃脱) nor a prefix match, however boosted
        assert page.direct_hit.id == "it-0" and [h.id for h in page.results] == ["it-0", "it-2", "it-3"]
        assert fuzzy.calls == [(2, {0})]
    else:
        assert page.direct_hit is None and fuzzy.calls == [(3, None)]


def test_a_mixed_card_needs_a_name_that_is_content_not_a_modifier_word():
    from search.matching import CONTAINED_REASON

    items = [_item(0, "杂志", "一个", "mini_program"), _item(1, "餐饮店", "古茗"), _item(2, "生活社交")]
    table = ItemTable(items)
    contains = NAME_FEATURES.index("contains_name")

    def analysis(cq: str, doc: int) -> Analysis:
        feats = [0.0] * len(NAME_FEATURES)
        feats[contains] = len(table.items[doc].name) / len(cq)
        match = NameMatch({doc: (11.0, CONTAINED_REASON)}, tuple(feats), False)
        return Analysis(cq, cq, cq, (cq,), (cq,), match, np.zeros(0, np.int64), np.zeros(0), 10, [], np.zeros(3), 0.4,
                        None, False)

    fuzzy = StubFuzzy([2])
    builder = PageBuilder(StubPrecise([]), fuzzy, table)
    # 一个 is half of the need once its modifier words (一个 among them) are set aside, but it is one of them
    page = builder.answer(analysis("一个人好孤独", 0), "mixed", 3)
    assert page.direct_hit is None and [h.id for h in page.results] == ["it-2"]
    # 古茗 in 古茗附近门店 is the need's content: its card stays
    page = builder.answer(analysis("古茗附近门店", 1), "mixed", 3)
    assert page.direct_hit is not None and page.direct_hit.id == "it-1"

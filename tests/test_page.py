"""The answer page (search/page.py), built alone over stub rankers: the one definition of each route's page."""

from __future__ import annotations

import numpy as np
import pytest

from search.analysis import Analysis
from search.items import ItemTable
from search.matching import NAME_FEATURES, NameMatch
from search.page import PageBuilder
from search.precise import KEYWORD_REASON
from search.types import Hit, Item


def _item(i: int, cat: str) -> Item:
    return Item(id=f"it-{i}", name=f"名{i}", type="brand", category=cat, description="测试条目" * 5)


ITEMS = [_item(0, "餐饮店"), _item(1, "餐饮店"), _item(2, "音乐"), _item(3, "电台"), _item(4, "音乐")]
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
    def __init__(self, docs: list[int]) -> None:
        self.docs, self.calls = docs, []

    def recommend(self, a, k, exclude=None, trace=None):
        self.calls.append((k, exclude))
        return [_hit(d, "语义相近") for d in self.docs if not exclude or d not in exclude][:k]


def _analysis(strong: bool) -> Analysis:
    match = NameMatch({0: (100.0, "名称匹配")} if strong else {}, tuple([0.0] * len(NAME_FEATURES)), strong)
    return Analysis("q", "q", "q", ("q",), ("q",), match, np.zeros(0, np.int64), np.zeros(0), 10, [], np.zeros(3), 0.5)


def test_precise_page_has_the_direct_hit_first():
    page = PageBuilder(StubPrecise([0, 1]), StubFuzzy([2, 3]), TABLE).answer(_analysis(True), "precise", 5)
    assert page.direct_hit is not None and page.direct_hit.id == "it-0"
    assert [h.id for h in page.results] == ["it-0", "it-1"] and page.groups == {}


def test_precise_page_without_a_name_match_has_no_direct_hit():
    page = PageBuilder(StubPrecise([1], KEYWORD_REASON), StubFuzzy([2]), TABLE).answer(_analysis(False), "precise", 5)
    assert page.direct_hit is None and [h.id for h in page.results] == ["it-1"]


def test_empty_precise_answer_falls_back_to_recommendations():
    fuzzy = StubFuzzy([2, 3])
    page = PageBuilder(StubPrecise([]), fuzzy, TABLE).answer(_analysis(False), "precise", 5)
    assert [h.id for h in page.results] == ["it-2", "it-3"] and fuzzy.calls == [(5, None)]


def test_fuzzy_page_is_grouped_by_category():
    page = PageBuilder(StubPrecise([0]), StubFuzzy([2, 3, 4]), TABLE).answer(_analysis(True), "fuzzy", 5)
    assert page.direct_hit is None
    assert page.groups == {"音乐": ["it-2", "it-4"], "电台": ["it-3"]}


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

"""The item table's per-category popularity lists (``ItemTable.top_of_category``): what a facet adds to a page's
candidates."""

from hypothesis import given, settings
from hypothesis import strategies as st

from search.items import ItemTable
from search.types import Item


def _items(spec: list[tuple[int, int, bool]]) -> list[Item]:
    cats = ("外卖", "团购", "餐饮店")
    return [Item(id=f"it-{i}", name=f"名{i}", type="service", category=cats[c], description="测试条目" * 5,
                 popularity=pop, status="discontinued" if gone else "active")
            for i, (c, pop, gone) in enumerate(spec)]


def test_most_popular_first_then_by_number_and_never_discontinued():
    table = ItemTable(_items([(0, 3, False), (0, 5, False), (1, 5, False), (0, 5, True), (0, 4, False), (0, 3, False)]))
    assert table.top_of_category("外卖", 10) == [1, 4, 0, 5]  # 3 is discontinued
    assert table.top_of_category("外卖", 2) == [1, 4]
    assert table.top_of_category("团购", 10) == [2] and table.top_of_category("没有", 3) == []
    table.delete([1])  # deleted since the build: gone too
    assert table.top_of_category("外卖", 2) == [4, 0]


@settings(max_examples=200, deadline=None)
@given(spec=st.lists(st.tuples(st.integers(0, 2), st.integers(1, 5), st.booleans()), min_size=1, max_size=60),
       n=st.integers(0, 70), deleted=st.sets(st.integers(0, 59), max_size=20),
       skip=st.sets(st.integers(-1, 70), max_size=30))
def test_agrees_with_its_definition(spec, n, deleted, skip):
    table = ItemTable(_items(spec))
    table.delete(sorted(d for d in deleted if d < len(spec)))
    for cat in ("外卖", "团购", "餐饮店"):
        live = [d for d, it in enumerate(table.items) if it.category == cat and d not in table.unlisted]
        want = sorted(live, key=lambda d: (-table.items[d].popularity, d))
        assert table.top_of_category(cat, n) == want[:n]
        assert table.top_of_category(cat, n, skip=skip) == [d for d in want if d not in skip][:n]


def test_skip_leaves_out_the_candidates_a_page_has():
    table = ItemTable(_items([(0, 3, False), (0, 5, False), (0, 4, False), (0, 2, False)]))
    assert table.top_of_category("外卖", 2, skip={1}) == [2, 0]
    assert table.top_of_category("外卖", 5, skip={1, 2, 0}) == [3]
    assert table.top_of_category("外卖", 0, skip={1}) == []

from dataclasses import replace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from search.items import ItemTable
from search.tags import TagIndex, matched_tags, tag_strengths
from search.types import Item

TAGS = [("白噪音", "助眠", "x"), ("带娃出游", "亲子"), ("附近", "附近美食", "花店", "药店"), (), ("花店", "花店", "带娃")]


def test_matched_tags():
    assert matched_tags("睡不着想听白噪音", ("睡不着", "想"), ("白噪音", "助眠", "x")) == ["白噪音"]
    assert matched_tags("带娃", ("带娃",), ("带娃出游", "亲子")) == ["带娃出游"]
    # a modifier (附近, 什么) is no need: neither as a tag nor as a query word found inside a tag
    assert matched_tags("附近的花店", ("附近", "的", "花店"), ("附近", "附近美食", "花店", "药店")) == ["花店"]
    assert matched_tags("买什么好", ("买", "什么", "好"), ("今天吃什么",)) == []
    assert matched_tags("心情不好", ("心情", "不好"), ("肠胃不好", "心情不好")) == ["心情不好"]
    # asking the price says nothing of the service: 多少钱 finds no tag containing it, a tag the need contains still counts
    assert matched_tags("护工一天多少钱", ("护工", "一天", "多少钱"), ("花了多少钱", "报销")) == []
    assert matched_tags("装修多少钱", ("装修", "多少钱"), ("装修多少钱", "花了多少钱")) == ["装修多少钱"]


def test_tag_strengths_hand_computed():
    # the need contains the tag: all of it; otherwise the share of its characters the need's words cover
    assert tag_strengths("手机快没电了", ("手机", "快", "没电", "了"), ("手机没电", "手机进水", "换手机", "充电宝")) == [
        1.0, 0.5, 2 / 3, 0.0]
    assert tag_strengths("带娃", ("带娃",), ("带娃出游", "带娃")) == [0.5, 1.0]
    # a word counts once however often the need repeats it; shares add up to at most 1
    assert tag_strengths("带娃带娃", ("带娃", "带娃"), ("带娃出游",)) == [0.5]  # 带娃 once: half
    assert tag_strengths("带娃出游", ("带娃",), ("带娃出游",)) == [1.0]  # contained: whole
    assert tag_strengths("娃出去", ("带娃出游", "带娃"), ("带娃出游",)) == [1.0]  # 4/4 + 2/4, capped
    assert tag_strengths("想出游啊", ("想", "出游啊"), ("带娃出游",)) == [0.0]  # 出游啊 is not inside it
    # modifiers are no need, as a tag or as a word
    assert tag_strengths("附近的花店", ("附近", "的", "花店"), ("附近", "附近美食", "花店")) == [0.0, 0.0, 1.0]


def test_hits_and_counts_hand_computed():
    index = TagIndex.build(TAGS)
    assert index.longest == 4
    # 睡不着想听白噪音: the need contains 白噪音; its words 睡不着 and 想听 are in no tag
    hit = index.hits("睡不着想听白噪音", ("睡不着", "想听"))
    assert index.counts(np.arange(5), hit).tolist() == [1, 0, 0, 0, 0]
    assert index.matched(0, hit) == ["白噪音"]
    # 附近的花店带娃: 附近 is a modifier (neither the tag 附近 nor 附近美食 through it); 花店 and 带娃 are in the need
    # (strength 1); 带娃出游 contains the word 带娃 (half of it); a tag listed twice counts twice
    hit = index.hits("附近的花店带娃", ("附近", "的", "花店", "带娃"))
    assert index.counts(np.arange(5), hit).tolist() == [0, 0.5, 1, 0, 3]
    assert index.matched(4, hit) == ["花店", "花店", "带娃"]
    assert index.counts(np.array([4, 2, 4]), hit).tolist() == [3, 1, 3]  # any order, repeats allowed
    assert index.counts(np.array([3]), hit).tolist() == [0]  # an item without tags
    assert index.counts(np.array([], dtype=np.int64), hit).tolist() == []
    # the reason lists the strongest first: 带娃 (whole) before 带娃出游 (half)
    index = TagIndex.build([("带娃出游", "带娃")])
    assert index.matched(0, index.hits("带娃", ("带娃",))) == ["带娃", "带娃出游"]


def test_carriers_hand_computed():
    index = TagIndex.build(TAGS)
    pop = np.array([3.0, 5.0, 1.0, 4.0, 2.0])
    # 附近的花店带娃: item 4 carries 花店 (1, listed twice: one carrier) and 带娃 (1), item 2 花店 (1), item 1 带娃出游 (0.5)
    hit = index.hits("附近的花店带娃", ("附近", "的", "花店", "带娃"))
    assert index.carriers(hit, 0.5, 10, pop) == [4, 2, 1]  # most matched first
    assert index.carriers(hit, 1.0, 10, pop) == [4, 2]  # only the tags the need states whole
    assert index.carriers(hit, 0.5, 2, pop) == [4, 2]
    assert index.carriers(hit, 0.5, 10, pop, skip={4}, gone={1}) == [2]
    assert index.carriers(hit, 0.5, 0, pop) == []
    # equal matches: the more popular first, then the lower number
    index = TagIndex.build([("花店",), ("花店",), ("花店",)])
    hit = index.hits("花店", ("花店",))
    assert index.carriers(hit, 0.5, 10, np.array([1.0, 3.0, 1.0])) == [1, 0, 2]
    assert index.carriers(index.hits("药店", ("药店",)), 0.5, 10, np.ones(3)) == []  # no tag matches


_CHARS = "花店带娃附近白噪音助眠亲子美食药x的"
_word = st.text(alphabet=_CHARS, min_size=1, max_size=4)


@settings(max_examples=300, deadline=None)
@given(tags=st.lists(st.lists(_word, max_size=5), min_size=1, max_size=12),
       words=st.lists(_word, max_size=5), extra=st.text(alphabet=_CHARS, max_size=6))
def test_equals_the_per_item_rule(tags, words, extra):
    # the rule applied to the vocabulary gives each item the strengths the rule gives it alone, and the same tags
    query = "".join(words) + extra
    index = TagIndex.build([tuple(t) for t in tags])
    hit = index.hits(query, words)
    alone = [tag_strengths(query, words, t) for t in tags]
    assert np.allclose(index.counts(np.arange(len(tags)), hit), [sum(x) for x in alone], rtol=0, atol=1e-9)
    assert [sorted(index.matched(d, hit)) for d in range(len(tags))] == [sorted(matched_tags(query, words, t))
                                                                        for t in tags]
    assert all(0 <= x <= 1 for x in hit)


@settings(max_examples=200, deadline=None)
@given(tags=st.lists(st.lists(_word, max_size=5), min_size=1, max_size=12),
       words=st.lists(_word, max_size=5), floor=st.sampled_from([0.3, 0.5, 1.0]), n=st.integers(0, 5),
       pop=st.lists(st.integers(1, 5), min_size=12, max_size=12))
def test_carriers_equal_the_rule_per_item(tags, words, floor, n, pop):
    # each item's score is the sum, over its distinct tags at or above the floor, of their strengths
    query = "".join(words)
    index = TagIndex.build([tuple(t) for t in tags])
    hit = index.hits(query, words)
    popularity = np.array(pop[: len(tags)], dtype=np.float64)
    score = {}
    for d, t in enumerate(tags):
        strong = {w: x for w, x in zip(t, tag_strengths(query, words, t), strict=True) if x >= floor}
        if strong:
            score[d] = sum(strong.values())
    want = sorted(score, key=lambda d: (-round(score[d], 9), -popularity[d], d))[:n]
    got = index.carriers(hit, floor, n, popularity)
    assert [round(score[d], 9) for d in got] == [round(score[d], 9) for d in want]
    assert set(got) <= set(score) and len(got) == len(want)


def test_the_table_rebuilds_it_after_an_upsert():
    items = [Item(id=f"it-{i}", name=f"名{i}", type="service", category="同城服务", description="测试条目" * 5,
                  tags=tags) for i, tags in enumerate((("宠物寄养", "上门"), ("搬家",)))]
    table = ItemTable(items)
    index = table.tag_index()
    assert table.tag_index() is index  # kept while the table is unchanged
    table.apply([1, 2], [replace(items[1], tags=("搬家", "拉货")), replace(items[0], id="it-2", tags=("宠物美容",))])
    rebuilt = table.tag_index()
    assert rebuilt is not index
    hit = rebuilt.hits("找人拉货", ("找人", "拉货"))
    assert rebuilt.counts(np.array([0, 1, 2]), hit).tolist() == [0, 1, 0]
    hit = rebuilt.hits("宠物", ("宠物",))
    assert rebuilt.counts(np.array([0, 1, 2]), hit).tolist() == [0.5, 0, 0.5]  # half of 宠物寄养, of 宠物美容

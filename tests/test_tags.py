from dataclasses import replace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from search.items import ItemTable
from search.tags import TagIndex, matched_tags
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


def test_hits_and_counts_hand_computed():
    index = TagIndex.build(TAGS)
    assert index.longest == 4
    # 睡不着想听白噪音: the need contains 白噪音; its words 睡不着 and 想听 are in no tag
    hit = index.hits("睡不着想听白噪音", ("睡不着", "想听"))
    assert index.counts(np.arange(5), hit).tolist() == [1, 0, 0, 0, 0]
    assert index.matched(0, hit) == ["白噪音"]
    # 附近的花店带娃: 附近 is a modifier (neither the tag 附近 nor 附近美食 through it); 花店 and 带娃 are in the need;
    # 带娃出游 contains the word 带娃; a tag listed twice counts twice
    hit = index.hits("附近的花店带娃", ("附近", "的", "花店", "带娃"))
    assert index.counts(np.arange(5), hit).tolist() == [0, 1, 1, 0, 3]
    assert index.matched(4, hit) == ["花店", "花店", "带娃"]
    assert index.counts(np.array([4, 2, 4]), hit).tolist() == [3, 1, 3]  # any order, repeats allowed
    assert index.counts(np.array([3]), hit).tolist() == [0]  # an item without tags
    assert index.counts(np.array([], dtype=np.int64), hit).tolist() == []


_CHARS = "花店带娃附近白噪音助眠亲子美食药x的"
_word = st.text(alphabet=_CHARS, min_size=1, max_size=4)


@settings(max_examples=300, deadline=None)
@given(tags=st.lists(st.lists(_word, max_size=5), min_size=1, max_size=12),
       words=st.lists(_word, max_size=5), extra=st.text(alphabet=_CHARS, max_size=6))
def test_equals_the_per_item_rule(tags, words, extra):
    # the rule applied to the vocabulary gives each item exactly the tags the rule gives it alone, in its order
    query = "".join(words) + extra
    index = TagIndex.build([tuple(t) for t in tags])
    hit = index.hits(query, words)
    alone = [matched_tags(query, words, t) for t in tags]
    assert index.counts(np.arange(len(tags)), hit).tolist() == [len(m) for m in alone]
    assert [index.matched(d, hit) for d in range(len(tags))] == alone


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
    assert rebuilt.counts(np.array([0, 1, 2]), hit).tolist() == [1, 0, 1]

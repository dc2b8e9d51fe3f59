"""The query→category model's training rows and its predictions on a hand-made catalog."""

from __future__ import annotations

import numpy as np

from search.categories import CategoryModel, training_rows
from search.normalize import normalize
from search.textvec import make_analyzer
from search.types import Item


def _item(i: int, name: str, category: str, description: str, tags: tuple[str, ...], aliases: tuple[str, ...] = ()) -> Item:
    return Item(f"it-{i}", name, "service", category, description, aliases, tags)


ITEMS = [
    _item(1, "助眠音乐", "音乐", "播放白噪音和轻音乐", ("失眠", "白噪音", "睡前放松")),
    _item(2, "冥想练习", "养生保健", "跟练呼吸与冥想", ("焦虑", "压力大", "静心")),
    _item(3, "外卖送餐", "外卖", "附近餐厅送到家", ("饿了", "点餐", "夜宵"), ("叫外卖",)),
    _item(4, "家常菜谱", "菜谱", "一步步教做菜", ("做饭", "食谱", "下厨")),
]


def test_rows_are_one_per_text_with_their_weights():
    texts, labels, weights = training_rows(ITEMS[:1], [("睡不着怎么办", {"音乐": 2, "养生保健": 1}), ("无关", {"没有": 2})],
                                           normalize, item_weight=1.0, tag_weight=0.5)
    # name (with aliases) and description at the item weight, each tag alone at the tag weight; a training need once
    # per judged category the catalog has (main 1, also 0.5); a category without items is skipped
    assert texts == ["助眠音乐", "播放白噪音和轻音乐", "失眠", "白噪音", "睡前放松", "睡不着怎么办"]
    assert labels == ["音乐"] * 6
    assert weights == [1.0, 1.0, 0.5, 0.5, 0.5, 1.0]


def test_aliases_join_the_name_row_and_empty_texts_are_dropped():
    it = _item(9, "外卖送餐", "外卖", "", ("饿了",), ("叫外卖",))
    texts, _, _ = training_rows([it], [], normalize)
    assert texts == ["外卖送餐 叫外卖", "饿了"]


def test_a_need_phrased_like_a_tag_gets_its_category():
    texts, labels, weights = training_rows(ITEMS, [], normalize)
    analyzer = make_analyzer(lambda t: t.split())
    m = CategoryModel.train(texts, labels, analyzer, weights)
    for need, want in (("失眠", "音乐"), ("压力大", "养生保健"), ("饿了", "外卖"), ("下厨", "菜谱")):
        p = m.text_probs(analyzer(normalize(need)))
        assert abs(float(p.sum()) - 1.0) < 1e-9 and np.all(p >= 0)
        assert m.top(p, 1)[0][0] == want, need

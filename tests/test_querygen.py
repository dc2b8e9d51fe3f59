"""The training-query generator (eval/querygen.py): partial names."""

from __future__ import annotations

import random

from eval.querygen import partial_forms
from search.types import Item


def _item(i: int, name: str, type_: str = "brand", pop: float = 3.0, aliases: tuple[str, ...] = ()) -> Item:
    return Item(id=f"i{i}", name=name, type=type_, category="工具", description="测试条目" * 5, aliases=aliases,
                popularity=pop)


ITEMS = [_item(0, "网易云音乐"), _item(1, "网易新闻"), _item(2, "腾讯视频"), _item(3, "腾讯会议"),
         _item(4, "小红书"), _item(5, "助眠音乐大全", "content"), _item(6, "KFC外卖"), _item(7, "美团外卖", aliases=("美团外",))]


def test_partial_forms_are_unique_prefixes_of_three_or_more_characters():
    rows = partial_forms(ITEMS, random.Random(0), set(), [])
    got = {r["query"] for r in rows}
    assert all(r["intent"] == "precise" and r["kind"] == "partial" for r in rows)
    # without the last one or two characters, three at least; a prefix that also starts another name stays out
    assert got == {"网易云音", "网易云", "网易新", "腾讯视", "腾讯会"}
    # 小红书: too short; 助眠音乐大全: not an entity; KFC外卖: not all Chinese; 美团外: equals an alias (exact form)


def test_partial_forms_respect_blocked_keys_held_out_queries_and_the_quota():
    blocked = {"网易云音"}
    rows = partial_forms(ITEMS, random.Random(0), blocked, ["腾讯视频怎么开会员"])
    got = {r["query"] for r in rows}
    assert "网易云音" not in got and "网易云" in got and "腾讯视" not in got  # 腾讯视 starts a held-out query
    assert "网易云" in blocked  # the rows' keys are now blocked for later kinds
    assert len(partial_forms(ITEMS, random.Random(0), set(), [], quota=2)) == 2

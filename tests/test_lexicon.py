"""Lexicon: the compact name and alias keys of items, read back per item."""

from __future__ import annotations

import numpy as np

from search.lexicon import Lexicon


def _lexicon() -> Lexicon:
    return Lexicon.build(["肯德基", "麦当劳", "星巴克咖啡"], [["KFC", "开封菜"], ["金拱门"], ["星巴克"]])


def test_names_of_gives_the_name_first_then_aliases_in_key_order() -> None:
    got = _lexicon().names_of(np.array([0, 1]), 3, 3)
    assert got == {0: ["肯德基", "kfc", "开封菜"], 1: ["麦当劳", "金拱门"]}


def test_names_of_keeps_only_keys_of_the_given_lengths_and_never_pinyin() -> None:
    lex = _lexicon()
    assert lex.names_of(np.array([2]), 4, 5) == {2: ["星巴克咖啡"]}
    assert lex.names_of(np.array([2]), 3, 3) == {2: ["星巴克"]}
    # the pinyin keys (kendeji, kdj, …) are the lexicon's too, but not names: never returned
    assert lex.names_of(np.array([0]), 1, 20) == {0: ["肯德基", "kfc", "开封菜"]}
    assert lex.names_of(np.array([0, 1]), 6, 20) == {}


def test_names_of_ignores_items_the_lexicon_does_not_know() -> None:
    lex = _lexicon()
    assert lex.names_of(np.array([-1, 3, 99]), 1, 20) == {}
    assert lex.names_of(np.array([7, 1]), 3, 3) == {1: ["麦当劳", "金拱门"]}
    assert lex.names_of(np.array([], dtype=np.int64), 1, 20) == {}

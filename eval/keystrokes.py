"""Suggest evaluation: keystrokes until the target is in the top 3 suggestions.

Typing is simulated as a pinyin IME user types: each hanzi costs the letters of its toneless pinyin,
typed one by one (肯 → k, ke, ken, then the committed 肯 at no extra cost), each ASCII character costs
one keystroke. After every keystroke the suggester is asked for ``k`` suggestions; the figure is the
number of keystrokes at which the target item first appears among the top ``top`` cards. A query whose
target never appears counts its full length. Reported next to the full typed length — the figure to improve.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pypinyin import Style, lazy_pinyin

from search.catalog import DevQuery
from search.errors import InvalidQueryError
from search.searcher import Searcher
from search.tokenize import has_cjk


def typing_states(query: str) -> list[tuple[int, str]]:
    """(keystrokes so far, text in the box) after each keystroke."""
    states: list[tuple[int, str]] = []
    typed = ""
    n = 0
    for ch in query:
        if has_cjk(ch):
            syl = lazy_pinyin(ch, style=Style.NORMAL)[0].lower()
            for j in range(1, len(syl) + 1):
                n += 1
                states.append((n, typed + syl[:j]))
            typed += ch
            states[-1] = (n, typed)  # the full syllable commits the character
        elif ch.strip():
            n += 1
            typed += ch
            states.append((n, typed))
        else:
            typed += ch
    return states


def keystrokes(searcher: Searcher, queries: Sequence[DevQuery], top: int = 3, k: int = 8) -> dict[str, Any]:
    used, full, found = [], [], 0
    by_form: dict[str, list[tuple[int, int]]] = {}
    for q in queries:
        target = next((i for i, g in q.relevant.items() if g == 2), None)
        if q.intent != "precise" or q.form is None or target is None:  # the generated name forms only
            continue
        states = typing_states(q.query)
        if not states:
            continue
        total = states[-1][0]
        hit = total
        ok = False
        for n, text in states:
            try:
                sug = searcher.suggest(text, k)["suggestions"]
            except InvalidQueryError:
                continue
            cards = [s["id"] for s in sug if s["type"] == "card"][:top]
            if target in cards:
                hit, ok = n, True
                break
        found += ok
        used.append(hit)
        full.append(total)
        by_form.setdefault(q.form, []).append((hit, total))
    return {
        "queries": len(used),
        "found_in_top": top,
        "found_share": found / len(used) if used else float("nan"),
        "mean_keystrokes": float(np.mean(used)) if used else float("nan"),
        "mean_full_length": float(np.mean(full)) if full else float("nan"),
        "by_form": {f: {"n": len(v), "mean_keystrokes": float(np.mean([a for a, _ in v])),
                        "mean_full_length": float(np.mean([b for _, b in v]))} for f, v in sorted(by_form.items())},
    }

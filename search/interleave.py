"""Team-Draft Interleaving: one page made of two rankings, each position credited to the ranking it came from.

Radlinski, Kurup & Joachims, "How does clickthrough data reflect retrieval quality?", CIKM 2008, §4.2: two teams
pick in turns like captains choosing players; a coin decides which team picks first in each round, and each team
adds its highest-ranked result not on the page yet. Every prefix of the page holds (almost) as many picks of each
ranking, so clicks on it compare the two without position bias favouring either, and every result a ranking puts
near its top is shown to the user.

Zhida uses it to *explore* (``Settings.traffic_explore_share``): a small share of logged searches is answered with
the served page interleaved with another system's ranking (BM25 for all, or the dense recommender for all), so the
judgments mined from clicks (``python -m eval mine``) also cover what those systems would have shown. Without it,
mined judgments exist only for what the router showed, and a system that retrieves other items cannot be measured
with them (condensed lists forgive it every result nobody saw).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

T = TypeVar("T")


def team_draft(a: Sequence[T], b: Sequence[T], k: int, rng: random.Random,
               key: Callable[[T], Hashable] = lambda x: x) -> tuple[list[T], list[str]]:
    """Interleave rankings ``a`` and ``b`` into at most ``k`` results; returns them and each one's team ("a" or
    "b"). ``key`` gives an element's identity (an element already on the page is skipped). When one ranking runs
    out, the other fills the rest."""
    if k < 0:
        raise ValueError("k must be >= 0")
    out: list[T] = []
    teams: list[str] = []
    seen: set[Hashable] = set()
    ia = ib = 0
    n_a = n_b = 0

    def next_of(xs: Sequence[T], i: int) -> int:
        while i < len(xs) and key(xs[i]) in seen:
            i += 1
        return i

    while len(out) < k:
        ia, ib = next_of(a, ia), next_of(b, ib)
        if ia >= len(a) and ib >= len(b):
            break
        a_turn = n_a < n_b or (n_a == n_b and rng.random() < 0.5)
        take_a = (a_turn and ia < len(a)) or ib >= len(b)
        x = a[ia] if take_a else b[ib]
        out.append(x)
        teams.append("a" if take_a else "b")
        seen.add(key(x))
        if take_a:
            n_a += 1
        else:
            n_b += 1
    return out, teams


__all__ = ["team_draft"]

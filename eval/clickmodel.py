"""Position-based click model (PBM), fitted by expectation-maximisation, to correct clicks for position bias.

The PBM (Richardson, Dominowska & Ragno 2007; Craswell, Zoeter, Taylor & Ramsey 2008, "An experimental comparison
of click position-bias models") says a result is clicked when it is examined *and* attractive, independently:

    P(C = 1 | q, d, rank r) = θ_r · α_qd

θ_r is the probability that rank r is looked at (shared by every query), α_qd the probability that the result is
clicked once seen — the part that says something about relevance. The parameters are fitted by EM as in Chuklin,
Markov & de Rijke, *Click Models for Web Search* (2015), §4.2: for a result seen but not clicked, the E-step splits
the blame between "not examined" and "not attractive" in proportion to the current estimates; the M-step averages.
α is smoothed with a Beta(``prior_clicks``, ``prior_skips``) prior so that a result shown a few times is not
judged on two clicks.

Why PBM and not the cascade model (Craswell et al. 2008): the cascade model assumes one click per search and stops
there; people browsing a need click several results, which the cascade model cannot explain, while the PBM makes no
assumption about what happens after a click.

A limit worth knowing: when a query always gets the same page, θ_r and α_qd of that query cannot be told apart from
its own clicks (only their product is seen); θ is then pinned by every query together (it is shared, and no
α can exceed 1), and its starting point 1/r (the usual reciprocal-rank prior) matters where the data say nothing.
Pages that change over time (a new index, other thresholds) give the same result at several ranks and make θ
identifiable (Wang, Golbandi, Bendersky, Metzler & Najork 2018, "Position Bias Estimation for Unbiased Learning to
Rank in Personal Search").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Session:
    """One answered search: the shown ids in page order and the set of clicked ids."""

    query: str
    shown: tuple[str, ...]
    clicked: frozenset[str]


@dataclass(frozen=True)
class PBM:
    theta: tuple[float, ...]  # examination probability by rank (index 0 = rank 1)
    alpha: dict[tuple[str, str], float]  # (query, doc) → attractiveness
    impressions: dict[tuple[str, str], int]  # (query, doc) → times shown
    clicks: dict[tuple[str, str], int]  # (query, doc) → times clicked
    iterations: int
    log_likelihood: float
    # (query, doc) → expected times looked at: Σ θ_rank over its impressions. Where it is small the clicks say little
    # and α stays near its prior (a result only ever shown at rank 9 is mostly not seen), so it is not judged
    examinations: dict[tuple[str, str], float] = field(default_factory=dict)


def fit_pbm(sessions: Sequence[Session], max_rank: int = 10, iterations: int = 100, tol: float = 1e-6,
            prior_clicks: float = 1.0, prior_skips: float = 1.0) -> PBM:
    """Fit θ (ranks 1..``max_rank``) and α for every (query, shown doc) pair by EM."""
    keys: dict[tuple[str, str], int] = {}
    rows_k: list[int] = []
    rows_r: list[int] = []
    rows_c: list[float] = []
    for s in sessions:
        for r, d in enumerate(s.shown[:max_rank]):
            k = keys.setdefault((s.query, d), len(keys))
            rows_k.append(k)
            rows_r.append(r)
            rows_c.append(1.0 if d in s.clicked else 0.0)
    if not rows_k:
        return PBM(tuple(1.0 / (r + 1) for r in range(max_rank)), {}, {}, {}, 0, 0.0)
    ki, ri, c = np.array(rows_k), np.array(rows_r), np.array(rows_c)
    n_keys = len(keys)
    shown_per_rank = np.bincount(ri, minlength=max_rank).astype(float)
    shown_per_key = np.bincount(ki, minlength=n_keys).astype(float)
    theta = 1.0 / np.arange(1, max_rank + 1)
    alpha = np.full(n_keys, 0.5)
    ll_prev = -np.inf
    it = 0
    for it in range(1, iterations + 1):  # noqa: B007 — the last value is reported
        t, a = theta[ri], alpha[ki]
        p_click = np.clip(t * a, 1e-12, 1 - 1e-12)
        ll = float(np.sum(c * np.log(p_click) + (1 - c) * np.log(1 - p_click)))
        no = 1.0 - p_click
        e_exam = c + (1 - c) * t * (1 - a) / no  # P(examined | observation)
        e_attr = c + (1 - c) * (1 - t) * a / no  # P(attractive | observation)
        theta = np.bincount(ri, weights=e_exam, minlength=max_rank) / np.maximum(shown_per_rank, 1)
        theta = np.where(shown_per_rank > 0, theta, 1.0 / np.arange(1, max_rank + 1))
        alpha = (np.bincount(ki, weights=e_attr, minlength=n_keys) + prior_clicks) / (shown_per_key + prior_clicks + prior_skips)
        if abs(ll - ll_prev) < tol * max(1.0, abs(ll)):
            break
        ll_prev = ll
    clicks = np.bincount(ki, weights=c, minlength=n_keys)
    looks = np.bincount(ki, weights=theta[ri], minlength=n_keys)
    inv = list(keys)
    return PBM(tuple(float(x) for x in theta), {inv[i]: float(alpha[i]) for i in range(n_keys)},
               {inv[i]: int(shown_per_key[i]) for i in range(n_keys)}, {inv[i]: int(clicks[i]) for i in range(n_keys)},
               it, ll, {inv[i]: float(looks[i]) for i in range(n_keys)})

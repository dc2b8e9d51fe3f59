"""Metrics, named by strings (ranx-style), computed by maintained libraries.

IR metrics come from ``ranx`` (Bassani, ECIR 2022): ``hit_rate@1`` is Success@1 (a relevant item at rank
1), ``mrr@10``, ``ndcg@10`` (graded gains, Järvelin & Kekäläinen 2002), ``recall@50``. Routing metrics
come from ``sklearn.metrics``. The one metric without a library is category diversity of the top 10: the
number of distinct categories among the first ten results divided by ten.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

PRECISE_METRICS = ("hit_rate@1", "mrr@10")
FUZZY_METRICS = ("ndcg@10", "recall@50")
LABELS = {"hit_rate@1": "Success@1", "mrr@10": "MRR@10", "ndcg@10": "nDCG@10", "recall@50": "Recall@50"}
EMPTY = "__no_result__"


def _ranx_run(run: Mapping[str, Sequence[tuple[str, float]]], qids: Sequence[str], name: str) -> Any:
    from ranx import Run

    # ranx needs every judged query present; a query the system answered with nothing scores 0.
    d = {q: ({doc: s for doc, s in run.get(q, [])} or {EMPTY: 0.0}) for q in qids}
    return Run.from_dict(d, name=name)


def ir_metrics(qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Sequence[tuple[str, float]]],
               metrics: Sequence[str], qids: Sequence[str] | None = None) -> dict[str, float]:
    """Mean of each metric over ``qids`` (default: every judged query)."""
    from ranx import Qrels, evaluate

    qids = [q for q in (qids if qids is not None else list(qrels)) if q in qrels]
    if not qids:
        return dict.fromkeys(metrics, float("nan"))
    q = Qrels.from_dict({k: dict(qrels[k]) for k in qids})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = evaluate(q, _ranx_run(run, qids, "run"), list(metrics), make_comparable=True)
    if isinstance(res, float | np.floating):
        res = {metrics[0]: res}
    return {m: float(res[m]) for m in metrics}


def per_query(qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Sequence[tuple[str, float]]],
              metric: str, qids: Sequence[str]) -> dict[str, float]:
    from ranx import Qrels, evaluate

    qids = [q for q in qids if q in qrels]
    q = Qrels.from_dict({k: dict(qrels[k]) for k in qids})
    r = _ranx_run(run, qids, "run")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        evaluate(q, r, metric, make_comparable=True)
    return {k: float(v) for k, v in r.scores[metric].items()}


def significance(qrels: Mapping[str, Mapping[str, int]], runs: Mapping[str, Mapping[str, Sequence[tuple[str, float]]]],
                 metric: str, qids: Sequence[str], a: str, b: str) -> dict[str, float]:
    """Paired two-sided t-test (ranx ``compare``, ``stat_test="student"``) of system ``a`` vs ``b``."""
    from ranx import Qrels, compare

    qids = [q for q in qids if q in qrels]
    q = Qrels.from_dict({k: dict(qrels[k]) for k in qids})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = compare(q, [_ranx_run(runs[a], qids, a), _ranx_run(runs[b], qids, b)], metrics=[metric],
                      stat_test="student", max_p=0.05, make_comparable=True)
    d = rep.to_dict()
    p = d[a]["comparisons"][b] if "comparisons" in d[a] else float("nan")
    p = p[metric] if isinstance(p, dict) else p
    return {"metric": metric, a: float(d[a]["scores"][metric]), b: float(d[b]["scores"][metric]), "p_value": float(p),
            "n": len(qids)}


def diversity_at_10(run: Mapping[str, Sequence[tuple[str, float]]], category_of: Mapping[str, str],
                    qids: Sequence[str]) -> float:
    vals = [len({category_of.get(d) for d, _ in run.get(q, [])[:10]}) / 10 for q in qids]
    return float(np.mean(vals)) if vals else float("nan")


def need_scores(run: Mapping[str, Sequence[tuple[str, float]]], queries: Sequence[Any], category_of: Mapping[str, str],
                category_size: Mapping[str, int], k: int = 10) -> dict[str, list[float]]:
    """Per need, over queries with judged categories (in query order; a need without a category the catalog has
    items of has no facet recall):

    - ``judged@10``: share of the first ``k`` results that carry a judgment (relevant or not), so that unjudged
      items can neither hide a loss nor fake a gain in nDCG (Sakai, SIGIR 2007, "condensed" lists);
    - ``category_precision@10``: share of the first ``k`` results whose category the need's judges marked relevant;
    - ``facet_recall@10``: share of the judged categories (those the catalog has items of) that appear in the first
      ``k`` results.
    An empty page scores 0 on the first two.
    """
    judged: list[float] = []
    prec: list[float] = []
    facet: list[float] = []
    for q in queries:
        cats = {c for c, g in q.categories.items() if g > 0}
        if not cats:
            continue
        top = [d for d, _ in run.get(q.qid, [])[:k]]
        if top:
            judged.append(sum(d in q.relevant or d in q.nonrelevant for d in top) / len(top))
            prec.append(sum(category_of.get(d) in cats for d in top) / len(top))
        else:
            judged.append(0.0)
            prec.append(0.0)
        present = {c for c in cats if category_size.get(c, 0) > 0}
        if present:
            facet.append(len(present & {category_of.get(d) for d in top}) / len(present))
    return {"judged@10": judged, "category_precision@10": prec, "facet_recall@10": facet}


def need_metrics(run: Mapping[str, Sequence[tuple[str, float]]], queries: Sequence[Any], category_of: Mapping[str, str],
                 category_size: Mapping[str, int], k: int = 10) -> dict[str, float]:
    """Whether a page helps with a need: the means over needs of ``need_scores``."""
    return {m: mean(v) for m, v in need_scores(run, queries, category_of, category_size, k).items()}


def bootstrap_interval(values: Sequence[float], confidence: float = 0.95, n_resamples: int = 2000,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-query ``values`` (scipy.stats.bootstrap; Efron & Tibshirani,
    1993, ch. 13): how far the mean over these queries could move on another sample of queries like them. A dev
    figure 0.02 under a target with an interval 0.06 wide is not a measured shortfall of 0.02. Fixed seed, so a
    report is reproducible. Fewer than two values or all equal: the interval is the mean itself (NaN when empty)."""
    if not 0 < confidence < 1:
        raise ValueError("confidence must be between 0 and 1")
    x = np.asarray(values, dtype=np.float64)
    if len(x) == 0:
        return float("nan"), float("nan")
    if len(x) < 2 or np.all(x == x[0]):
        m = float(x.mean())
        return m, m
    from scipy.stats import bootstrap

    res = bootstrap((x,), np.mean, confidence_level=confidence, n_resamples=n_resamples, method="percentile",
                    rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def mean_interval(values: Sequence[float]) -> dict[str, float | int]:
    """A figure as the reports store it: ``n``, ``mean`` and the 95 % ``low`` / ``high`` of ``bootstrap_interval``."""
    lo, hi = bootstrap_interval(values)
    return {"n": len(values), "mean": mean(values), "low": lo, "high": hi}


def mean(v: Sequence[float]) -> float:
    """Mean of per-query values; NaN for none."""
    return float(np.mean(v)) if len(v) else float("nan")


def routing(gold: Mapping[str, str], predicted: Mapping[str, str]) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1 and the confusion matrix (gold × {precise, fuzzy, mixed})."""
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    qids = sorted(gold)
    y, p = [gold[q] for q in qids], [predicted[q] for q in qids]
    labels = ["precise", "fuzzy", "mixed"]
    prec, rec, f1, sup = precision_recall_fscore_support(y, p, labels=labels, zero_division=0)
    cm = confusion_matrix(y, p, labels=labels)
    return {
        "accuracy": float(accuracy_score(y, p)),
        "per_class": {lab: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]), "support": int(sup[i])}
                      for i, lab in enumerate(labels[:2])},
        "mixed_share": float(np.mean([x == "mixed" for x in p])) if p else 0.0,
        "confusion": {g: {lab: int(cm[i][j]) for j, lab in enumerate(labels)} for i, g in enumerate(labels[:2])},
    }


def balanced_accuracy(gold: Sequence[str], predicted: Sequence[str], positive: str = "precise") -> dict[str, float]:
    """Mean of per-class recalls (sklearn); anything not ``positive`` predicted counts as the other class."""
    from sklearn.metrics import balanced_accuracy_score, recall_score

    y = [g == positive for g in gold]
    p = [x == positive for x in predicted]
    return {"balanced_accuracy": float(balanced_accuracy_score(y, p)),
            "recall_precise": float(recall_score(y, p, pos_label=True, zero_division=0)),
            "recall_fuzzy": float(recall_score(y, p, pos_label=False, zero_division=0))}


def calibration(p: Sequence[float], positive: Sequence[bool], bins: int = 10) -> dict[str, Any]:
    """Expected calibration error of ``p`` as the probability of ``positive`` (Naeini et al., AAAI 2015; Guo et al.,
    ICML 2017): ECE = Σ_b (n_b / n) · |mean(y in b) − mean(p in b)| over ``bins`` equal-width bins of p, with the
    reliability curve from ``sklearn.calibration.calibration_curve`` (same bins) for the plot."""
    from sklearn.calibration import calibration_curve

    pa, ya = np.asarray(p, dtype=np.float64), np.asarray(positive, dtype=bool)
    if len(pa) == 0:
        return {"n": 0}
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, pa, side="right") - 1, 0, bins - 1)
    ece, rows = 0.0, []
    for b in range(bins):
        sel = which == b
        if sel.any():
            gap = abs(float(ya[sel].mean()) - float(pa[sel].mean()))
            ece += sel.mean() * gap
            rows.append({"bin": b, "n": int(sel.sum()), "mean_p": float(pa[sel].mean()), "positive_rate": float(ya[sel].mean())})
    frac, mean_p = calibration_curve(ya.astype(int), pa, n_bins=bins, strategy="uniform") if len(set(ya.tolist())) > 1 else ([], [])
    extreme = float(np.mean((pa < 0.05) | (pa > 0.95)))
    return {"n": int(len(pa)), "ece": float(ece), "bins": rows, "curve": {"mean_p": [float(x) for x in mean_p],
            "positive_rate": [float(x) for x in frac]}, "share_below_0.05_or_above_0.95": extreme}


def percentiles(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    a = np.asarray(values)
    return {"n": len(a), "p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)), "max": float(a.max())}

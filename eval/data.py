"""Evaluation data: labelled queries → qrels (item-level or category-level) and TREC files."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from search.catalog import DevQuery, load_dev
from search.errors import CatalogError
from search.types import Item


def load_queries(path: str | Path, item_ids: set[str] | None = None) -> list[DevQuery]:
    rows, problems = load_dev(path, item_ids)
    if problems:
        raise CatalogError(f"{path}: {len(problems)} problem(s): " + "; ".join(problems[:5]), problems)
    return rows


def item_qrels(queries: Sequence[DevQuery]) -> dict[str, dict[str, int]]:
    """Item-level judgments as written in the query set."""
    return {q.qid: dict(q.relevant) for q in queries if q.relevant}


def category_qrels(queries: Sequence[DevQuery], items: Sequence[Item]) -> dict[str, dict[str, int]]:
    """Category-level judgments: every catalog item gets its category's grade for the query.

    This lets the same queries be evaluated on any catalog labelled with the same taxonomy (e.g. the
    iFlytek app set), at the price of coarser relevance.
    """
    by_cat: dict[str, list[str]] = {}
    for it in items:
        by_cat.setdefault(it.category, []).append(it.id)
    out: dict[str, dict[str, int]] = {}
    for q in queries:
        rel = {i: g for c, g in q.categories.items() for i in by_cat.get(c, [])}
        if rel:
            out[q.qid] = rel
    return out


def category_sizes(items: Iterable[Item]) -> dict[str, int]:
    """Items per category: the need metrics count only judged categories the catalog has items of."""
    out: dict[str, int] = {}
    for it in items:
        out[it.category] = out.get(it.category, 0) + 1
    return out


def write_trec_run(path: str | Path, run: Mapping[str, Sequence[tuple[str, float]]], system: str) -> None:
    """TREC run format: ``qid Q0 docid rank score system`` (ranks from 1)."""
    with open(path, "w", encoding="utf-8") as fh:
        for qid in sorted(run):
            for rank, (doc, score) in enumerate(run[qid], 1):
                fh.write(f"{qid} Q0 {doc} {rank} {score:.6f} {system}\n")


def write_trec_qrels(path: str | Path, qrels: Mapping[str, Mapping[str, int]]) -> None:
    """TREC qrels format: ``qid 0 docid grade``."""
    with open(path, "w", encoding="utf-8") as fh:
        for qid in sorted(qrels):
            for doc, grade in sorted(qrels[qid].items()):
                fh.write(f"{qid} 0 {doc} {grade}\n")


def read_trec_run(path: str | Path) -> dict[str, list[tuple[str, float]]]:
    out: dict[str, list[tuple[str, int, float]]] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        qid, _, doc, rank, score, _system = line.split()
        out.setdefault(qid, []).append((doc, int(rank), float(score)))
    return {q: [(d, s) for d, _, s in sorted(v, key=lambda t: t[1])] for q, v in out.items()}


def read_trec_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        qid, _, doc, grade = line.split()
        out.setdefault(qid, {})[doc] = int(grade)
    return out


def forms(queries: Iterable[DevQuery]) -> dict[str, list[str]]:
    """Precise qids grouped by query form."""
    out: dict[str, list[str]] = {}
    for q in queries:
        if q.intent == "precise" and q.form:
            out.setdefault(q.form, []).append(q.qid)
    return out


def with_qrels(queries: Sequence[DevQuery], qrels: Mapping[str, Mapping[str, int]]) -> list[DevQuery]:
    """The queries judged by ``qrels`` instead of their own item judgments (``eval run --qrels``): grades above 0
    become ``relevant``, grade 0 ``nonrelevant``; a query the qrels do not mention has no item judgments (its routing
    still counts). Raises when no query is mentioned: the qrels belong to another query set."""
    if not any(q.qid in qrels for q in queries):
        raise CatalogError("no query of this set appears in the qrels file (the qids differ: qrels from python -m eval "
                           "mine go with its judged_queries.jsonl)")
    out = []
    for q in queries:
        g = qrels.get(q.qid, {})
        out.append(dataclasses.replace(q, relevant={d: v for d, v in g.items() if v > 0},
                                       nonrelevant=frozenset(d for d, v in g.items() if v <= 0)))
    return out

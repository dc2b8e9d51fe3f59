"""The page on needs no training row resembles: k-fold evaluation over the judged training needs.

The dev needs sit close to the training needs (most have a training need a few characters away), so dev figures say
little about a need unlike any the category model learnt from. Here each of ``k`` contiguous blocks of
``category_train.jsonl`` is held out in turn: an index is built from the catalog, the intent training set and the
other blocks, and the block's needs are served by ``Searcher.search`` (the router, page of ten) and scored with the
need metrics of ``eval.metrics`` against their judged categories. Blocks are contiguous because the file keeps a
need's paraphrases together and groups rows by how they were written, so a held-out block holds needs the model has
not seen a rewording of; a held-out need whose text (``query_key``) is also a training row of its fold is skipped.

    python -m eval folds [--folds 2] [--limit N]   (make eval-folds)

Each fold builds a full index (about a minute for the default catalog).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

from search.catalog import DevQuery, Item, query_key
from search.config import Settings
from search.searcher import Searcher

from . import metrics as M
from .data import category_sizes
from .reports import category_model_report
from .runs import PAGE_K, run_systems


def contiguous_folds(n: int, k: int) -> list[range]:
    """``k`` contiguous blocks covering ``range(n)``, sizes differing by at most one."""
    if k < 2 or k > n:
        raise ValueError(f"need 2 ≤ folds ≤ rows, got {k} folds for {n} rows")
    bounds = [round(i * n / k) for i in range(k + 1)]
    return [range(bounds[i], bounds[i + 1]) for i in range(k)]


def fold_eval(items: Sequence[Item], intent_train: Sequence[tuple[str, str]],
              category_train: Sequence[tuple[str, dict[str, int]]], settings: Settings, k: int = 2,
              limit: int | None = None, progress: Callable[[str], None] | None = None,
              always: Sequence[tuple[str, dict[str, int]]] = (), subjects: Sequence[str] | None = None
              ) -> dict[str, Any]:
    """Per fold and pooled over the folds: need figures of the served page with 95 % bootstrap intervals, and the
    category model's top-1 / top-3 and recall@n on the held-out needs. ``limit`` scores at most that many needs per
    fold (evenly spaced through the block), for a quicker run. ``always``: rows in every fold's training and never
    held out — knowledge rather than needs (the content titles, occasions and places of ``eval.titles``), so the
    blocks stay those of the needs — except in a fold that holds out a need about the same thing: ``subjects`` names
    what each row is about (its title; by default the row's text), and a fold leaves out the rows whose subject occurs
    in one of its held-out needs (琅琊榜全集 while 琅琊榜演员表 is held out), so a fold still holds out needs unlike any trained."""
    category_of = {it.id: it.category for it in items}
    size = category_sizes(items)
    folds, pooled, skipped = [], {m: [] for m in ("category_precision@10", "facet_recall@10")}, 0
    subj = [query_key(x) for x in (subjects if subjects is not None else (q for q, _ in always))]
    if len(subj) != len(always):
        raise ValueError("one subject per row trained always")
    for i, block in enumerate(contiguous_folds(len(category_train), k)):
        held_keys = [query_key(category_train[j][0]) for j in block]
        kept = [r for r, x in zip(always, subj, strict=True) if not any(x in h for h in held_keys)]
        train = [r for j, r in enumerate(category_train) if j not in block] + kept
        known = {query_key(q) for q, _ in train}
        held = [j for j in block if query_key(category_train[j][0]) not in known]
        skipped += len(block) - len(held)
        if limit is not None and len(held) > limit:
            held = [held[round(x * len(held) / limit)] for x in range(limit)]
        if progress:
            progress(f"fold {i + 1}/{k}: building without rows {block.start}–{block.stop - 1}")
        s = Searcher.build(items, intent_train, settings, category_train=train)
        needs = [DevQuery(f"t{j}", category_train[j][0], "fuzzy", categories=dict(category_train[j][1])) for j in held]
        if progress:
            progress(f"fold {i + 1}/{k}: serving {len(needs)} held-out needs")
        run = run_systems(s, needs, depth=PAGE_K, systems=("router",)).runs["router"]
        per = M.need_scores(run, needs, category_of, size)
        row: dict[str, Any] = {"rows": f"{block.start}-{block.stop - 1}", "needs": len(needs),
                               "always_trained": len(kept)}
        for m in pooled:
            pooled[m] += per[m]
            row[m] = M.mean(per[m])
        row["category_model"] = category_model_report(s, needs)
        folds.append(row)
    out: dict[str, Any] = {"kind": "zhida-fold-report", "folds": folds, "k": k, "skipped_duplicates": skipped,
                           "always_trained": len(always)}
    for m, v in pooled.items():
        out[m] = M.mean_interval(v)
    return out


def markdown(r: dict[str, Any]) -> str:
    lines = [f"## Held-out training needs, {r['k']} contiguous folds (router, page of ten)", "",
             "| fold | rows | needs | category precision@10 | facet recall@10 | model top-1 | top-3 |",
             "|---|---|---|---|---|---|---|"]
    for n, f in enumerate(r["folds"], 1):
        cm = f.get("category_model") or {}
        lines.append(f"| {n} | {f['rows']} | {f['needs']} | {f['category_precision@10']:.3f} | "
                     f"{f['facet_recall@10']:.3f} | {cm.get('top1', float('nan')):.3f} | {cm.get('top3', float('nan')):.3f} |")
    p, fr = r["category_precision@10"], r["facet_recall@10"]
    lines += ["", f"all folds: category precision@10 {p['mean']:.3f} [{p['low']:.3f}, {p['high']:.3f}] (n={p['n']}) · "
                  f"facet recall@10 {fr['mean']:.3f} [{fr['low']:.3f}, {fr['high']:.3f}] (n={fr['n']}); 95 % bootstrap "
                  f"intervals; {r['skipped_duplicates']} held-out rows skipped as training rows of their fold"
                  + (f"; of {r['always_trained']} rows from the lists (content titles, occasions, places), each fold trained "
                     f"those about nothing it held out ({', '.join(str(f.get('always_trained')) for f in r['folds'])})"
                     if r.get("always_trained") else "")]
    return "\n".join(lines)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--folds", type=int, default=2, help="contiguous blocks of the training needs (default 2)")
    ap.add_argument("--limit", type=int, help="score at most this many held-out needs per fold (quicker)")
    ap.add_argument("--out", default="eval/out/folds", help="folder for report.json")

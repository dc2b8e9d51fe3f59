"""Suggest latency: p50/p99 of ``Searcher.suggest`` for 1–4 keystroke prefixes at catalog sizes.

    python -m bench.suggest [--indexes bench/out/index-10k,bench/out/index-100k] [--n 2000] [--slowest 20]

Prefixes are what a user has typed after 1–4 keystrokes of real item names (pinyin letters for hanzi, as in
eval/keystrokes.py): k, ke, 肯, 肯d … Single thread, after warm-up; prints one Markdown table per index.
``--slowest N`` also lists the N slowest prefixes with their time and the branch of
``search.suggest.top_cards`` they took: each typed form looked up (all kinds, or the pinyin kinds through
the input's own pinyin) and, for hanzi + letters input (肯d), the mixed initials range, with the number of
lexicon rows in each range.
Target: in-process p99 ≤ 0.5 ms at 100k names.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path
from typing import Any

import numpy as np

from eval.keystrokes import typing_states
from search.config import Settings
from search.normalize import compact_normalized
from search.request import validate_query
from search.searcher import Searcher
from search.suggest import ALL_KINDS, mixed_tail, typed_forms
from search.tokenize import pinyin_keys


def branch(s: Searcher, text: str) -> str:
    """The path ``top_cards`` takes for ``text``: each typed form with its kinds and range size, and the
    mixed (hanzi head + letters) initials range when it runs."""
    cq = compact_normalized(validate_query(text, s.settings))
    parts = []
    for form, kinds in typed_forms(cq):
        lo, hi = s.lexicon.prefix_range(form)
        parts.append(f"{'all' if kinds == ALL_KINDS else 'pinyin'} {form!r} {hi - lo} rows")
    mixed = mixed_tail(cq)
    if mixed is not None:
        head, letters = mixed
        lo, hi = s.lexicon.prefix_range(pinyin_keys(head)[1] + letters)
        parts.append(f"mixed {head!r}+{letters!r} → {pinyin_keys(head)[1] + letters!r} {hi - lo} rows")
    return "; ".join(parts)


SEEDS = (5, 11)  # the benchmark's two samples of names
TARGET_MS = 0.5  # in-process p99 at 100k names, for 1–4 keystrokes


def suggest_latency(s: Searcher, n_names: int = 2000, seed: int = 5, slowest: int = 0) -> dict[str, Any]:
    """p50 / p99 / max of ``Searcher.suggest(prefix, 8)`` over the 1–4 keystroke prefixes of ``n_names`` sampled
    names, single thread, after a warm-up on the first 200 prefixes of each length; with ``slowest``, the slowest
    prefixes and their ``top_cards`` branch."""
    rng = random.Random(seed)
    names = [it.name for it in rng.sample(s.items, min(n_names, len(s.items)))]
    by_len: dict[int, list[str]] = {1: [], 2: [], 3: [], 4: []}
    for name in names:
        for n, text in typing_states(name)[:4]:
            by_len[n].append(text)
    for texts in by_len.values():  # warm-up
        for t in texts[:200]:
            s.suggest(t, 8)
    out: dict[str, Any] = {"seed": seed, "names": len(names), "by_keystrokes": {}}
    timed: list[tuple[float, int, str]] = []
    for n, texts in by_len.items():
        lat = []
        for t in texts:
            t0 = time.perf_counter()
            s.suggest(t, 8)
            lat.append((time.perf_counter() - t0) * 1000)
        timed.extend(zip(lat, [n] * len(lat), texts, strict=True))
        a = np.array(lat) if lat else np.zeros(1)
        out["by_keystrokes"][n] = {"prefixes": len(lat), "p50": float(np.percentile(a, 50)),
                                   "p99": float(np.percentile(a, 99)), "max": float(a.max())}
    if slowest > 0:
        out["slowest"] = [{"ms": ms, "keystrokes": n, "prefix": t, "branch": branch(s, t)}
                          for ms, n, t in sorted(timed, key=lambda r: -r[0])[:slowest]]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.suggest", description=__doc__.split("\n\n")[0])
    ap.add_argument("--indexes", default="index_data/index,bench/out/index-10k,bench/out/index-100k")
    ap.add_argument("--n", type=int, default=2000, help="names sampled per index")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--slowest", type=int, default=0, metavar="N",
                    help="also list the N slowest prefixes with their time and top_cards branch")
    args = ap.parse_args()
    settings = Settings(thresholds_path="/nonexistent", verify_index="size")
    for path in args.indexes.split(","):
        if not Path(path, "manifest.json").exists():
            print(f"\n{path}: not built (run `make bench` first) — skipped")
            continue
        s = Searcher.load(path, settings)
        r = suggest_latency(s, args.n, args.seed, args.slowest)
        print(f"\n### suggest latency — {path} ({len(s.items):,} items, {len(s.lexicon):,} keys), seed {args.seed}\n")
        print("| keystrokes | prefixes | p50 ms | p99 ms | max ms | target | status |\n|---|---|---|---|---|---|---|")
        judged = len(s.items) >= 100_000
        for n, st in r["by_keystrokes"].items():
            print(f"| {n} | {st['prefixes']} | {st['p50']:.3f} | {st['p99']:.3f} | {st['max']:.3f} | "
                  f"{f'p99 ≤ {TARGET_MS} ms' if judged else ''} | "
                  f"{('PASS' if st['p99'] <= TARGET_MS else '**FAIL**') if judged else ''} |")
        if r.get("slowest"):
            print(f"\n{args.slowest} slowest prefixes:\n\n| ms | keystrokes | prefix | top_cards branch |\n|---|---|---|---|")
            for row in r["slowest"]:
                print(f"| {row['ms']:.3f} | {row['keystrokes']} | {row['prefix']} | {row['branch']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

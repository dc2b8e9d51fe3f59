"""Suggest latency: p50/p99 of ``Searcher.suggest`` for 1–4 keystroke prefixes at catalog sizes.

    python -m bench.suggest [--indexes bench/out/index-10k,bench/out/index-100k] [--n 2000]

Prefixes are what a user has typed after 1–4 keystrokes of real item names (pinyin letters for hanzi, as in
eval/keystrokes.py): k, ke, 肯, 肯d … Single thread, after warm-up; prints one Markdown table per index.
Target (issue 8): in-process p99 ≤ 0.5 ms at 100k names.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import numpy as np

from eval.keystrokes import typing_states
from search.config import Settings
from search.searcher import Searcher


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.suggest", description=__doc__.split("\n\n")[0])
    ap.add_argument("--indexes", default="index_data/index,bench/out/index-10k,bench/out/index-100k")
    ap.add_argument("--n", type=int, default=2000, help="names sampled per index")
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()
    settings = Settings(thresholds_path="/nonexistent", verify_index="size")
    for path in args.indexes.split(","):
        if not Path(path, "manifest.json").exists():
            print(f"\n{path}: not built (run `make bench` first) — skipped")
            continue
        s = Searcher.load(path, settings)
        rng = random.Random(args.seed)
        names = [it.name for it in rng.sample(s.items, min(args.n, len(s.items)))]
        by_len: dict[int, list[str]] = {1: [], 2: [], 3: [], 4: []}
        for name in names:
            for n, text in typing_states(name)[:4]:
                by_len[n].append(text)
        for texts in by_len.values():  # warm-up
            for t in texts[:200]:
                s.suggest(t, 8)
        print(f"\n### suggest latency — {path} ({len(s.items):,} items, {len(s.lexicon):,} keys)\n")
        print("| keystrokes | prefixes | p50 ms | p99 ms | max ms | target | status |\n|---|---|---|---|---|---|---|")
        for n, texts in by_len.items():
            lat = []
            for t in texts:
                t0 = time.perf_counter()
                s.suggest(t, 8)
                lat.append((time.perf_counter() - t0) * 1000)
            a = np.array(lat)
            p99 = float(np.percentile(a, 99))
            judged = len(s.items) >= 100_000
            print(f"| {n} | {len(a)} | {np.percentile(a, 50):.3f} | {p99:.3f} | {a.max():.3f} | "
                  f"{'p99 ≤ 0.5 ms' if judged else ''} | {('PASS' if p99 <= 0.5 else '**FAIL**') if judged else ''} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Stage timing: where the time of one query went, reported by the stages themselves.

A caller that wants the figures passes a ``Trace`` down the pipeline (``Searcher.search(q, k, trace=t)``);
each stage adds its own wall time under its name. Without a trace the stages still read the clock (two
``perf_counter`` calls, ~0.1 µs) but record nothing, so the benchmark measures the served code path
without patching anything.
"""

from __future__ import annotations

from time import perf_counter

STAGES: tuple[str, ...] = (
    "normalize",  # input checks and normalisation (request rules)
    "tokenize",  # jieba words and BM25 terms
    "match",  # name signals over the lexicon
    "bm25",  # BM25 candidates
    "intent",  # features and the classifier
    "precise",  # direct-hit ranking (BM25 + name boosts)
    "encode",  # query embedding
    "dense",  # nearest-neighbour search
    "categories",  # query→category model and the facets' extra candidates
    "rerank",  # fuzzy re-rank and seats; a precise page's alternatives
    "page",  # assembling the answer page
)


class Trace:
    """Seconds per stage for one or more calls (a stage run twice adds up)."""

    __slots__ = ("seconds",)

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, stage: str, since: float) -> float:
        """Record the time from ``since`` (a ``perf_counter`` reading) to now under ``stage``; returns now."""
        now = perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + (now - since)
        return now

    def ms(self) -> dict[str, float]:
        return {k: v * 1000 for k, v in self.seconds.items()}


def mark(trace: Trace | None, stage: str, since: float) -> float:
    """``trace.add`` when there is a trace; the clock reading either way (the next stage's start)."""
    return trace.add(stage, since) if trace is not None else perf_counter()


__all__ = ["STAGES", "Trace", "mark", "perf_counter"]

"""Mined intent labels added to the hand-labelled training queries, without ever overriding them.

``python -m eval mine`` writes intent labels learned from behaviour (``intent_labels.jsonl``: ``{query, intent}`` and
the numbers behind each label). ``python -m search build --extra-train FILE`` adds them to the training queries
through ``merge``, which keeps three rules and reports every row it did not use:

- a hand label wins: a mined row whose query (``search.catalog.query_key``: same text up to punctuation, spacing,
  case and script) is already labelled by hand is not added; when the two labels differ, the row is listed as a
  conflict in the build's output and in the manifest (never dropped silently);
- evaluation queries stay out: a mined row equal to a query of a held-out evaluation set (by default the dev and
  hard dev sets) is dropped, so ``make eval`` keeps measuring queries the model never saw;
- one label per query: a repeated mined query keeps its first row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .catalog import DevQuery, TrainQuery, query_key


@dataclass(frozen=True)
class Merge:
    train: list[TrainQuery]  # hand rows, then the mined rows that were added
    added: int
    conflicts: list[dict[str, str]] = field(default_factory=list)  # mined label ≠ hand label: hand kept
    agreeing: int = 0  # mined rows whose query the hand labels already have, with the same label
    held_out: int = 0  # mined rows equal to an evaluation query
    repeated: int = 0  # mined rows repeating an earlier mined row

    def report(self, rows: int) -> dict[str, Any]:
        return {"rows": rows, "added": self.added, "conflicts_with_hand_labels": len(self.conflicts),
                "conflict_examples": self.conflicts[:20], "already_hand_labelled": self.agreeing,
                "dropped_evaluation_queries": self.held_out, "repeated": self.repeated}


def merge(hand: Sequence[TrainQuery], mined: Sequence[TrainQuery], held_out: Sequence[DevQuery] = ()) -> Merge:
    """Hand rows first, then each mined row that is new, not an evaluation query and not a repeat."""
    hand_label = {query_key(t.query): t.intent for t in hand}
    eval_keys = {query_key(q.query) for q in held_out}
    out = list(hand)
    seen: set[str] = set()
    conflicts: list[dict[str, str]] = []
    added = agreeing = dropped = repeated = 0
    for t in mined:
        k = query_key(t.query)
        if k in eval_keys:
            dropped += 1
        elif k in hand_label:
            if hand_label[k] == t.intent:
                agreeing += 1
            else:
                conflicts.append({"query": t.query, "mined": t.intent, "hand": hand_label[k]})
        elif k in seen:
            repeated += 1
        else:
            seen.add(k)
            out.append(t)
            added += 1
    return Merge(out, added, conflicts, agreeing, dropped, repeated)

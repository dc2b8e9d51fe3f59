"""External benchmarks on data nobody here wrote (read from ``../shared/data`` or a given path).

Never used for training or tuning. Each benchmark says clearly when its data is absent.

1. iFlytek app descriptions (6,146 real apps, 119 categories) → a Zhida catalog with neutral names
   (``IFLYTEK-<id>``); the fuzzy dev queries are evaluated on it with category-level relevance.
2. SMP2019 assistant utterances: domains ``app``/``website`` are precise ("打开淘宝"), ``cookbook``,
   ``health``, ``poetry``, ``riddle`` fuzzy; balanced accuracy and both recalls of the intent classifier.
3. Multi-CPR real Taobao/Youku queries (unlabelled): share of each route and the most frequent direct hits.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from search.catalog import DevQuery
from search.config import Settings
from search.errors import InvalidQueryError
from search.searcher import Searcher
from search.types import Action, Item

from . import metrics as M

SMP_PRECISE = ("app", "website")
SMP_FUZZY = ("cookbook", "health", "poetry", "riddle")


def iflytek_items(folder: Path, taxonomy: set[str] | None = None) -> list[Item]:
    """Convert iFlytek JSONL records ``{label, label_des, sentence, id}`` to catalog items.

    id ← ``iflytek-<file>-<id>`` (ids restart in each of the set's files: 936 of 6,146 collide across
    files); name ← ``IFLYTEK-<file>-<id>`` (the set has no names, and a description's first clause
    makes a junk name that pulls fuzzy queries onto the name path); category ← ``label_des``; description
    ← ``sentence`` cut to 150 characters (the catalog limit). Records whose category is outside the taxonomy
    are skipped.
    """
    items: list[Item] = []
    seen: set[str] = set()
    for path in sorted(folder.glob("*.json")):
        for line in path.read_text(encoding="utf-8").split("\n"):  # not splitlines(): U+2028 occurs in text
            if not line.strip():
                continue
            rec = json.loads(line)
            stem = path.stem.split("_")[0]  # dev / test / train
            iid = f"iflytek-{stem}-{rec['id']}"
            cat = str(rec["label_des"])
            if iid in seen or (taxonomy is not None and cat not in taxonomy):
                continue
            seen.add(iid)
            desc = " ".join(str(rec["sentence"]).split())[:150]
            items.append(Item(id=iid, name=f"IFLYTEK-{stem}-{rec['id']}", type="mini_program", category=cat,
                              description=desc, aliases=(), tags=(cat,),
                              actions=(Action("打开", "open"), Action("详情", "query"))))
    return items


def smp_examples(path: Path) -> list[tuple[str, str, str]]:
    """(text, gold intent, domain) for the SMP2019 domains used here."""
    out = []
    for rec in json.loads(path.read_text(encoding="utf-8")):
        d = rec.get("domain")
        if d in SMP_PRECISE:
            out.append((rec["text"], "precise", d))
        elif d in SMP_FUZZY:
            out.append((rec["text"], "fuzzy", d))
    return out


def smp_intent(searcher: Searcher, examples: Sequence[tuple[str, str, str]]) -> dict[str, Any]:
    """Routing of assistant utterances at the served thresholds. A request to open an app or a website is
    answered well precise or mixed (the named thing on top); a cookbook, health, poetry or riddle request fuzzy or
    mixed. Balanced accuracy over the two classes, and the routes per domain."""
    from search.routing import route

    gold, ok, routes = [], [], Counter()
    per_domain: dict[str, Counter[str]] = {}
    for text, g, domain in examples:
        try:
            a = searcher.analyze(text)
        except InvalidQueryError:
            continue
        r = route(a.p_precise, searcher.thresholds)
        routes[f"{g}→{r}"] += 1
        per_domain.setdefault(domain, Counter())[r] += 1
        gold.append(g)
        ok.append(r == "mixed" or r == g)
    # balanced accuracy with "answered acceptably" as the prediction of the gold class
    pred = [g if good else ("fuzzy" if g == "precise" else "precise") for g, good in zip(gold, ok, strict=True)]
    res = M.balanced_accuracy(gold, pred)
    domains = {d: {"n": sum(c.values()), **{k: c.get(k, 0) for k in ("precise", "mixed", "fuzzy")},
                   "acceptable": (c.get("mixed", 0) + c.get("precise" if d in SMP_PRECISE else "fuzzy", 0)) / sum(c.values())}
               for d, c in sorted(per_domain.items())}
    return {"n": len(gold), "decision": "served route; precise: precise or mixed; fuzzy: fuzzy or mixed", **res,
            "routes": dict(routes), "domains": domains,
            "anchor": "SMP2017-ECDT intent F1 0.945 (a 31-class task; not directly comparable)"}


def multicpr_queries(folder: Path) -> Iterator[str]:
    for path in sorted(folder.glob("multicpr_*.tsv")):
        for line in path.read_text(encoding="utf-8").split("\n"):
            parts = line.rstrip("\r").split("\t", 1)
            if len(parts) == 2 and parts[1].strip():
                yield parts[1]


def traffic(searcher: Searcher, queries: Sequence[str]) -> dict[str, Any]:
    """Route real traffic; count routes and the most frequent direct hits (analysis only, no recommendations)."""
    routes: Counter[str] = Counter()
    hits: Counter[str] = Counter()
    rejected = 0
    t0 = time.perf_counter()
    from search.routing import route

    for q in queries:
        try:
            a = searcher.analyze(q)
        except InvalidQueryError:
            rejected += 1
            continue
        label = route(a.p_precise, searcher.thresholds)
        routes[label] += 1
        if label != "fuzzy" and a.match.strong:
            best = a.match.best()
            if best is not None:
                hits[searcher.items[best[0]].name] += 1
    n = sum(routes.values())
    return {"n": n, "rejected": rejected, "share": {k: v / n for k, v in routes.most_common()} if n else {},
            "top_direct_hits": hits.most_common(25), "seconds": round(time.perf_counter() - t0, 1)}


def iflytek_eval(shared: Path, queries: Sequence[DevQuery], settings: Settings, taxonomy: set[str],
                 train: Sequence[tuple[str, str]], out_dir: Path,
                 category_train: Sequence[tuple[str, dict[str, int]]] = ()) -> dict[str, Any]:
    """The fuzzy dev queries on an index built, as ``python -m search build`` builds one, from the iFlytek apps."""
    from .reports import evaluate

    items = iflytek_items(shared / "iflytek", taxonomy)
    t0 = time.perf_counter()
    s = Searcher.build(items, train, settings, category_train=category_train)
    s.path = None
    build_s = time.perf_counter() - t0
    fuzzy = [q for q in queries if q.intent == "fuzzy"]
    rep = evaluate(s, fuzzy, relevance="categories", out_dir=out_dir, systems=("router", "dense", "bm25"))
    rep["catalog"] = {"items": len(items), "categories": len({i.category for i in items}), "build_seconds": round(build_s, 1)}
    return rep

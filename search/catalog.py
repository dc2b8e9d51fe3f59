"""The catalog: reading, validating and reporting on ``catalog.jsonl`` and the labelled query sets.

``python -m search.catalog validate index_data/catalog.jsonl`` checks the catalog (and, when given,
``--train`` / ``--dev`` query sets and ``--shared`` reference names), prints counts per type, category
and intent, and exits 1 listing every problem with its line number.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .errors import CatalogError
from .normalize import compact, normalize
from .types import ACTION_KINDS, ITEM_TYPES, STATUSES, Action, Item

ID_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,79}")
FIELDS = {"id", "name", "aliases", "type", "category", "description", "tags", "actions", "popularity", "status"}
REQUIRED = FIELDS - {"popularity", "status"}
QUERY_FORMS = ("exact", "pinyin", "initials", "typo", "traditional", "suffix", "partial", "english")


def load_taxonomy(path: str | Path) -> list[str]:
    try:
        labels = [ln.strip() for ln in Path(path).read_text(encoding="utf-8").splitlines() if ln.strip()]
    except OSError as exc:
        raise CatalogError(f"cannot read taxonomy {path}: {exc}") from exc
    if len(set(labels)) != len(labels):
        raise CatalogError(f"{path}: duplicate taxonomy labels")
    return labels


def _read_jsonl(path: str | Path) -> Iterable[tuple[int, Any, str | None]]:
    """(line number, parsed object or None, error) for each non-blank line."""
    try:
        fh = open(path, encoding="utf-8")  # noqa: SIM115 — closed by the with-block below
    except OSError as exc:
        raise CatalogError(f"cannot read {path}: {exc}") from exc
    with fh:
        try:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    yield n, json.loads(line), None
                except json.JSONDecodeError as exc:
                    yield n, None, f"bad JSON: {exc.msg}"
        except UnicodeDecodeError as exc:
            raise CatalogError(f"{path}: not UTF-8 text ({exc.reason})") from exc


def _str_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) and x.strip() for x in v)


def item_problems(obj: Any, taxonomy: set[str]) -> list[str]:
    """Everything wrong with one catalog record (empty list → valid)."""
    if not isinstance(obj, dict):
        return ["record is not a JSON object"]
    p: list[str] = []
    missing = REQUIRED - set(obj)
    if missing:
        p.append(f"missing fields {sorted(missing)}")
    unknown = set(obj) - FIELDS
    if unknown:
        p.append(f"unknown fields {sorted(unknown)}")
    iid = obj.get("id")
    if not isinstance(iid, str) or not ID_RE.fullmatch(iid):
        p.append(f"id must match {ID_RE.pattern}, got {iid!r}")
    name = obj.get("name")
    if not isinstance(name, str) or not compact(name):
        p.append("name is empty")
    if "aliases" in obj and not (isinstance(obj["aliases"], list) and _str_list(obj["aliases"])):
        p.append("aliases must be a list of non-empty strings")
    if obj.get("type") not in ITEM_TYPES:
        p.append(f"type must be one of {list(ITEM_TYPES)}, got {obj.get('type')!r}")
    if obj.get("category") not in taxonomy:
        p.append(f"category {obj.get('category')!r} is not in the taxonomy")
    desc = obj.get("description")
    if not isinstance(desc, str) or not (20 <= len(desc.strip()) <= 150):
        p.append("description must be 20-150 characters")
    tags = obj.get("tags")
    if not (isinstance(tags, list) and tags and _str_list(tags)):
        p.append("tags must be a non-empty list of non-empty strings")
    acts = obj.get("actions")
    if not isinstance(acts, list):
        p.append("actions must be a list")
    else:
        if obj.get("type") in ("brand", "mini_program", "function", "service") and not (2 <= len(acts) <= 5):
            p.append(f"{obj.get('type')} needs 2-5 actions, has {len(acts)}")
        if len(acts) > 5:
            p.append("at most 5 actions")
        for a in acts:
            if not (isinstance(a, dict) and set(a) == {"name", "kind"} and isinstance(a["name"], str)
                    and a["name"].strip() and a["kind"] in ACTION_KINDS):
                p.append(f"bad action {a!r}: need {{name, kind}} with kind in {list(ACTION_KINDS)}")
    if obj.get("status", "active") not in STATUSES:
        p.append(f"status must be one of {list(STATUSES)}, got {obj.get('status')!r}")
    pop = obj.get("popularity", 3)
    if isinstance(pop, bool) or not isinstance(pop, int) or not 1 <= pop <= 5:
        p.append("popularity must be an integer 1-5")
    return p


T = TypeVar("T")


class Interner:
    """Shares equal values between items loaded together: categories, tags, actions and whole tag/action
    tuples repeat across a large catalog (1M recombined items use a few thousand distinct actions)."""

    def __init__(self) -> None:
        self._seen: dict[Any, Any] = {}

    def __call__(self, value: T) -> T:
        return self._seen.setdefault(value, value)  # type: ignore[no-any-return]


def _once(values: Iterable[str]) -> tuple[str, ...]:
    """Stripped, each once, in first-seen order: a tag given twice would count twice in the re-rank's tag overlap."""
    return tuple(dict.fromkeys(v.strip() for v in values))


def item_from_dict(obj: dict[str, Any], share: Interner | None = None) -> Item:
    if share is None:
        return Item(
            id=obj["id"],
            name=obj["name"].strip(),
            type=obj["type"],
            category=obj["category"],
            description=obj["description"].strip(),
            aliases=_once(obj.get("aliases", [])),
            tags=_once(obj.get("tags", [])),
            actions=tuple(Action(a["name"].strip(), a["kind"]) for a in obj.get("actions", [])),
            popularity=int(obj.get("popularity", 3)),
            status=obj.get("status", "active"),
        )
    return Item(
        id=obj["id"],
        name=obj["name"].strip(),
        type=share(obj["type"]),
        category=share(obj["category"]),
        description=obj["description"].strip(),
        aliases=share(tuple(share(a) for a in _once(obj.get("aliases", [])))),
        tags=share(tuple(share(t) for t in _once(obj.get("tags", [])))),
        actions=share(tuple(share(Action(share(a["name"].strip()), share(a["kind"]))) for a in obj.get("actions", []))),
        popularity=int(obj.get("popularity", 3)),
        status=share(obj.get("status", "active")),
    )


def parse_catalog(records: Iterable[tuple[int, Any, str | None]], taxonomy: Sequence[str]) -> tuple[list[Item], list[str]]:
    """Validate and convert; returns items and problems (``line N: ...``)."""
    tax = set(taxonomy)
    items: list[Item] = []
    problems: list[str] = []
    ids: dict[str, int] = {}
    names: dict[str, int] = {}
    for n, obj, err in records:
        if err:
            problems.append(f"line {n}: {err}")
            continue
        errs = item_problems(obj, tax)
        if errs:
            problems.extend(f"line {n}: {e}" for e in errs)
            continue
        if obj["id"] in ids:
            problems.append(f"line {n}: duplicate id {obj['id']!r} (first on line {ids[obj['id']]})")
            continue
        ids[obj["id"]] = n
        key = normalize(obj["name"])
        if key in names:
            problems.append(f"line {n}: duplicate name {obj['name']!r} (first on line {names[key]})")
        names[key] = n
        items.append(item_from_dict(obj))
    if not items and not problems:
        problems.append("catalog is empty")
    return items, problems


def load_catalog(path: str | Path, taxonomy_path: str | Path) -> list[Item]:
    """Read and validate a catalog; raises ``CatalogError`` listing every problem."""
    items, problems = parse_catalog(_read_jsonl(path), load_taxonomy(taxonomy_path))
    if problems:
        shown = "; ".join(problems[:10]) + (f"; … {len(problems) - 10} more" if len(problems) > 10 else "")
        raise CatalogError(f"{path}: {len(problems)} problem(s): {shown}", problems)
    return items


# --- labelled query sets -------------------------------------------------------------------------


def query_key(q: str) -> str:
    """Queries that differ only by punctuation, spacing, case or script are the same query."""
    return compact(q)


@dataclass(frozen=True)
class TrainQuery:
    query: str
    intent: str  # "precise" | "fuzzy"


@dataclass(frozen=True)
class DevQuery:
    """A judged query. ``form`` (generated precise forms) or ``kind`` (hand-written kinds) says what sort of query
    it is; ``accept_mixed`` marks a need whose mixed page (a service card, then providers) is also a right answer;
    ``unknown_name`` a precise query naming something the catalog does not have (no relevant item)."""

    qid: str
    query: str
    intent: str
    relevant: dict[str, int] = field(default_factory=dict)
    categories: dict[str, int] = field(default_factory=dict)
    form: str | None = None
    kind: str | None = None
    accept_mixed: bool = False
    unknown_name: bool = False
    nonrelevant: frozenset[str] = frozenset()  # items judged and found not helpful (for Judged@10)

    @property
    def group(self) -> str | None:
        """What to break figures down by: the form, else the kind."""
        return self.form or self.kind


def checked(loaded: tuple[list[T], list[str]], path: str | Path) -> list[T]:
    """The rows of a loader's ``(rows, problems)`` answer; a file with problems is refused, named with its first
    five, so that no command trains or evaluates on a file whose bad lines were dropped silently."""
    rows, problems = loaded
    if problems:
        raise CatalogError(f"{path}: " + "; ".join(problems[:5]), problems)
    return rows


def load_train(path: str | Path) -> tuple[list[TrainQuery], list[str]]:
    out: list[TrainQuery] = []
    problems: list[str] = []
    for n, obj, err in _read_jsonl(path):
        if err:
            problems.append(f"line {n}: {err}")
        elif not isinstance(obj, dict) or not isinstance(obj.get("query"), str) or not compact(obj["query"]):
            problems.append(f"line {n}: needs a non-empty 'query' string")
        elif obj.get("intent") not in ("precise", "fuzzy"):
            problems.append(f"line {n}: intent must be 'precise' or 'fuzzy'")
        else:
            out.append(TrainQuery(obj["query"], obj["intent"]))
    return out, problems


def load_category_train(path: str | Path, taxonomy: Sequence[str]) -> tuple[list[tuple[str, dict[str, int]]], list[str]]:
    """Training needs with judged categories, ``{query, categories: {label: 1|2}}`` per line."""
    tax = set(taxonomy)
    out: list[tuple[str, dict[str, int]]] = []
    problems: list[str] = []
    for n, obj, err in _read_jsonl(path):
        if err:
            problems.append(f"line {n}: {err}")
            continue
        cats = obj.get("categories") if isinstance(obj, dict) else None
        if not (isinstance(obj, dict) and isinstance(obj.get("query"), str) and compact(obj["query"])):
            problems.append(f"line {n}: needs a non-empty 'query'")
        elif not (isinstance(cats, dict) and cats and all(c in tax and g in (1, 2) for c, g in cats.items())):
            problems.append(f"line {n}: categories must map taxonomy labels to 1 or 2")
        else:
            out.append((obj["query"], dict(cats)))
    return out, problems


def load_dev(path: str | Path, item_ids: set[str] | None = None, taxonomy: Sequence[str] | None = None) -> tuple[list[DevQuery], list[str]]:
    out: list[DevQuery] = []
    problems: list[str] = []
    qids: set[str] = set()
    tax = set(taxonomy) if taxonomy is not None else None
    for n, obj, err in _read_jsonl(path):
        if err:
            problems.append(f"line {n}: {err}")
            continue
        if not isinstance(obj, dict):
            problems.append(f"line {n}: not a JSON object")
            continue
        q, qid, intent = obj.get("query"), obj.get("qid"), obj.get("intent")
        rel, cats = obj.get("relevant", {}), obj.get("categories", {})
        errs = []
        if not isinstance(qid, str) or not qid or qid in qids:
            errs.append(f"qid missing or duplicate: {qid!r}")
        if not isinstance(q, str) or not compact(q):
            errs.append("needs a non-empty 'query'")
        if intent not in ("precise", "fuzzy"):
            errs.append("intent must be 'precise' or 'fuzzy'")
        if not isinstance(rel, dict) or not all(isinstance(v, int) and v in (1, 2) for v in rel.values()):
            errs.append("relevant must map item ids to grades 1 or 2")
        if not isinstance(cats, dict) or not all(isinstance(v, int) and v in (1, 2) for v in cats.values()):
            errs.append("categories must map labels to grades 1 or 2")
        if not errs:
            if item_ids is not None:
                errs += [f"judged id {i!r} is not in the catalog" for i in rel if i not in item_ids]
            if tax is not None:
                errs += [f"category {c!r} is not in the taxonomy" for c in cats if c not in tax]
            unknown = obj.get("unknown_name", False)
            if not isinstance(unknown, bool) or not isinstance(obj.get("accept_mixed", False), bool):
                errs.append("unknown_name and accept_mixed must be true or false")
            elif intent == "precise" and list(rel.values()).count(2) != (0 if unknown else 1):
                errs.append("a precise query needs exactly one grade-2 target (none when unknown_name)")
            if intent == "fuzzy" and not 1 <= len(cats) <= 4:
                errs.append("a fuzzy query needs 1-4 judged categories")
            nonrel = obj.get("nonrelevant", [])
            if not (isinstance(nonrel, list) and all(isinstance(x, str) for x in nonrel)) or set(nonrel) & set(rel):
                errs.append("nonrelevant must list item ids not judged relevant")
            elif item_ids is not None:
                errs += [f"judged id {i!r} is not in the catalog" for i in nonrel if i not in item_ids]
            form, kind = obj.get("form"), obj.get("kind")
            if form is not None and form not in QUERY_FORMS:
                errs.append(f"form must be one of {list(QUERY_FORMS)}")
            if kind is not None and not isinstance(kind, str):
                errs.append("kind must be a string")
        if errs:
            problems.extend(f"line {n}: {e}" for e in errs)
            continue
        qids.add(qid)
        out.append(DevQuery(qid, q, intent, dict(rel), dict(cats), obj.get("form"), obj.get("kind"),
                            bool(obj.get("accept_mixed", False)), bool(obj.get("unknown_name", False)),
                            frozenset(obj.get("nonrelevant", []))))
    return out, problems


def overlap_problems(train: Iterable[str], dev: Sequence[DevQuery], what: str = "the training set") -> list[str]:
    """Evaluation queries that are also training queries (``query_key``: same text up to punctuation, spacing, case
    and script): a model trained on them would be scored on what it learnt by heart."""
    tk = {query_key(t) for t in train}
    return [f"dev query {d.qid} {d.query!r} is also in {what}" for d in dev if query_key(d.query) in tk]


# --- coverage of reference names -----------------------------------------------------------------


def reference_names(shared: Path) -> list[tuple[str, list[str]]] | None:
    """(name, extra aliases) from brand7.json and app_list.md, or None when ``shared`` is absent."""
    b7 = shared / "names" / "brand7.json"
    apps = shared / "names" / "app_list.md"
    if not b7.exists() or not apps.exists():
        return None
    out: list[tuple[str, list[str]]] = []
    for rec in json.loads(b7.read_text(encoding="utf-8")):
        plus = str(rec.get("PlusName", "")).strip()
        out.append((str(rec["Name"]).strip(), [plus] if plus and plus != "-" else []))
    in_group = False
    for line in apps.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            in_group = True
        elif line.startswith("* ") and in_group:
            out.append((line[2:].split("/")[0].strip(), []))
    return out


def coverage_problems(items: Sequence[Item], refs: Sequence[tuple[str, list[str]]]) -> list[str]:
    """Reference names (and brand7 PlusNames) not covered by any item's name or alias."""
    known: set[str] = set()
    for it in items:
        known.add(compact(it.name))
        known.update(compact(a) for a in it.aliases)
    probs = []
    for name, extra in refs:
        if compact(name) not in known:
            probs.append(f"reference name {name!r} is not a name or alias in the catalog")
        probs.extend(f"alias {a!r} of {name!r} is not in the catalog" for a in extra if compact(a) not in known)
    return probs


def label_floor_problems(items: Sequence[Item], taxonomy: Sequence[str], floor: int) -> list[str]:
    """Taxonomy labels with fewer than ``floor`` active items (discontinued ones are never recommended): a need in
    such a category cannot be answered well."""
    cats = Counter(i.category for i in items if not i.discontinued)
    return [f"category {c!r} has {cats.get(c, 0)} active items (at least {floor} wanted)" for c in taxonomy
            if cats.get(c, 0) < floor]


def report(items: Sequence[Item], train: Sequence[TrainQuery] | None, dev: Sequence[DevQuery] | None,
           taxonomy: Sequence[str] = ()) -> str:
    lines = [f"catalog: {len(items)} items"]
    lines.append("  by type: " + ", ".join(f"{k} {v}" for k, v in Counter(i.type for i in items).most_common()))
    cats = Counter(i.category for i in items)
    lines.append(f"  by category ({len(cats)} of the {len(taxonomy) or len(cats)} taxonomy labels used):")
    lines.append("    " + ", ".join(f"{k} {v}" for k, v in cats.most_common()))
    empty = [c for c in taxonomy if c not in cats]
    if empty:
        lines.append("    no item: " + ", ".join(empty))
    if train is not None:
        lines.append(f"intent_train: {len(train)} queries: " + ", ".join(
            f"{k} {v}" for k, v in Counter(t.intent for t in train).most_common()))
    if dev is not None:
        lines.append(f"dev: {len(dev)} queries: " + ", ".join(f"{k} {v}" for k, v in Counter(d.intent for d in dev).most_common()))
        forms = Counter(d.form for d in dev if d.intent == "precise")
        lines.append("  precise forms: " + ", ".join(f"{k} {v}" for k, v in forms.most_common()))
    return "\n".join(lines)


def validate_main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m search.catalog", description="Validate a Zhida catalog and query sets.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("validate", help="validate a catalog (and query sets) and print counts")
    v.add_argument("catalog")
    v.add_argument("--taxonomy", default=None, help="default: taxonomy.txt beside the catalog")
    v.add_argument("--train", default=None, help="intent training queries (JSONL)")
    v.add_argument("--dev", nargs="+", default=None, help="labelled evaluation queries (JSONL; one or more files)")
    v.add_argument("--category-train", default=None,
                   help="training needs with judged categories (JSONL), checked against the evaluation queries")
    v.add_argument("--shared", default="../shared/data", help="reference data folder for the coverage check")
    v.add_argument("--min-per-label", type=int, default=0,
                   help="fail when a taxonomy label has fewer items (the default catalog promises 10)")
    args = ap.parse_args(argv)
    from .errors import ZhidaError

    try:
        tax_path = args.taxonomy or str(Path(args.catalog).with_name("taxonomy.txt"))
        taxonomy = load_taxonomy(tax_path)
        items, problems = parse_catalog(_read_jsonl(args.catalog), taxonomy)
        if args.min_per_label > 0:
            problems += label_floor_problems(items, taxonomy, args.min_per_label)
        train = dev = None
        if args.train:
            train, p = load_train(args.train)
            problems += [f"{args.train}: {x}" for x in p]
        if args.dev:
            dev = []
            for path in args.dev:
                rows, p = load_dev(path, {i.id for i in items}, taxonomy)
                dev += rows
                problems += [f"{path}: {x}" for x in p]
        if train is not None and dev is not None:
            problems += overlap_problems((t.query for t in train), dev)
        if args.category_train:
            cat_train, p = load_category_train(args.category_train, taxonomy)
            problems += [f"{args.category_train}: {x}" for x in p]
            if dev is not None:
                problems += overlap_problems((q for q, _ in cat_train), dev, args.category_train)
        refs = reference_names(Path(args.shared))
        if refs is None:
            print(f"coverage check skipped: {args.shared} not found")
        else:
            cov = coverage_problems(items, refs)
            problems += cov
            print(f"coverage: {len(refs) - len([c for c in cov if c.startswith('reference')])}/{len(refs)} reference names covered")
    except ZhidaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report(items, train, dev, taxonomy))
    if problems:
        print(f"\nFAILED: {len(problems)} problem(s)", file=sys.stderr)
        for p in problems[:200]:
            print("  " + p, file=sys.stderr)
        return 1
    print("\nOK")
    return 0


if __name__ == "__main__":
    sys.exit(validate_main())

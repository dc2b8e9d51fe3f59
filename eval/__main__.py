"""``python -m eval {run,external,folds,compare,tune,mine,simulate,agreement,loop,titles}`` — see eval/README.md."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from search.config import Settings
from search.errors import ZhidaError


def cmd_run(args: argparse.Namespace) -> int:
    from search.searcher import Searcher

    from .data import load_queries, read_trec_qrels, with_qrels
    from .reports import evaluate, markdown

    settings = Settings.load(args.config)
    s = Searcher.load(args.index, settings)
    paths = args.queries
    qrels = read_trec_qrels(args.qrels) if args.qrels else None
    for n, path in enumerate(paths):
        queries = load_queries(path, {it.id for it in s.items} if args.relevance == "items" else None)
        if qrels is not None:
            queries = with_qrels(queries, qrels)
        out = Path(args.out) if len(paths) == 1 else Path(args.out) / Path(path).stem
        report = evaluate(s, queries, args.relevance, out, query_set=path, judged_only=args.judged_only)
        if args.qrels:
            print(f"judgments: {args.qrels}" + (" (condensed lists: unjudged results removed)" if args.judged_only else ""))
        print(("\n" if n else "") + markdown(report))
        print(f"\nreport: {out / 'report.json'} · TREC run and qrels files and reliability.png in {out}/")
    return 0


def cmd_external(args: argparse.Namespace) -> int:
    from search.catalog import load_taxonomy
    from search.searcher import Searcher

    from . import external as X
    from .data import load_queries
    from .reports import markdown

    shared = Path(args.shared)
    if not shared.exists():
        print(f"external benchmarks skipped: {shared} not found (pass --shared PATH)")
        return 0
    settings = Settings.load(args.config)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    s = Searcher.load(args.index, settings)
    results: dict = {}
    if (shared / "iflytek").exists():
        tax = load_taxonomy(settings.taxonomy_path)
        train, cat_train = _training_sets(settings, tax, need_categories=False)
        queries = load_queries(args.queries)
        rep = X.iflytek_eval(shared, queries, settings, set(tax), train, out / "iflytek",
                             cat_train)
        results["iflytek"] = rep
        print(f"# 1. iFlytek catalog ({rep['catalog']['items']} real apps, {rep['catalog']['categories']} categories; "
              f"built in {rep['catalog']['build_seconds']}s), fuzzy dev queries, category-level relevance\n")
        print(markdown(rep))
    else:
        print("# 1. iFlytek: skipped (iflytek/ not found)")
    smp = shared / "external" / "smp2019_train.json"
    if smp.exists():
        r = X.smp_intent(s, X.smp_examples(smp))
        results["smp2019"] = r
        print(f"\n# 2. SMP2019 intent (n={r['n']}; precise = app, website; fuzzy = cookbook, health, poetry, riddle)\n")
        print("| balanced accuracy | recall precise | recall fuzzy |\n|---|---|---|")
        print(f"| {r['balanced_accuracy']:.3f} | {r['recall_precise']:.3f} | {r['recall_fuzzy']:.3f} |")
        print("\n| domain | n | → precise | → mixed | → fuzzy | answered acceptably |\n|---|---|---|---|---|---|")
        for d, row in r["domains"].items():
            print(f"| {d} | {row['n']} | {row['precise']} | {row['mixed']} | {row['fuzzy']} | {row['acceptable']:.3f} |")
        print(f"\n({r['decision']}; routes at the current thresholds: {r['routes']})\nanchor: {r['anchor']}")
    else:
        print("\n# 2. SMP2019: skipped (external/smp2019_train.json not found)")
    qdir = shared / "queries"
    if qdir.exists():
        qs = list(X.multicpr_queries(qdir))
        r = X.traffic(s, qs)
        results["multicpr"] = r
        print(f"\n# 3. Real traffic: {r['n']} Multi-CPR queries routed ({r['rejected']} rejected as invalid) in {r['seconds']}s\n")
        print("route shares: " + ", ".join(f"{k} {v:.1%}" for k, v in r["share"].items()))
        print("most frequent direct hits: " + ", ".join(f"{n} ({c})" for n, c in r["top_direct_hits"]))
    else:
        print("\n# 3. Multi-CPR traffic: skipped (queries/ not found)")
    (out / "external.json").write_text(json.dumps(results, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
    print(f"\nreport: {out / 'external.json'}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from .reports import compare_reports

    try:
        a = json.loads(Path(args.a).read_text(encoding="utf-8"))
        b = json.loads(Path(args.b).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ZhidaError(f"cannot read report: {exc}") from exc
    print(compare_reports(a, b))
    return 0


def _training_sets(settings: Settings, taxonomy: Sequence[str], need_categories: bool
                   ) -> tuple[list[tuple[str, str]], list[tuple[str, dict[str, int]]]]:
    """The intent and category training sets an evaluation builds its own indexes from, refused with the file named
    when a line has problems, as ``python -m search build`` refuses them. Without ``need_categories`` a missing
    category file is an empty set (the build then learns categories from the catalog alone)."""
    from search.catalog import checked, load_category_train, load_train

    train = checked(load_train(settings.intent_train_path), settings.intent_train_path)
    cat_train: list[tuple[str, dict[str, int]]] = []
    if need_categories or Path(settings.category_train_path).exists():
        cat_train = checked(load_category_train(settings.category_train_path, taxonomy), settings.category_train_path)
    return [(t.query, t.intent) for t in train], cat_train


def cmd_folds(args: argparse.Namespace) -> int:
    from search.catalog import load_catalog, load_taxonomy, query_key

    from .folds import fold_eval, markdown
    from .titles import title_rows

    if args.limit is not None and args.limit < 1:
        raise ZhidaError("--limit must be at least 1")
    settings = Settings.load(args.config)
    tax = load_taxonomy(settings.taxonomy_path)
    items = load_catalog(settings.catalog_path, settings.taxonomy_path)
    train, cat_train = _training_sets(settings, tax, need_categories=True)
    titles = title_rows(settings.category_train_path)  # knowledge: never held out, withheld from a fold naming it
    needs = [r for r in cat_train if query_key(r[0]) not in titles]
    always = [r for r in cat_train if query_key(r[0]) in titles]
    try:
        rep = fold_eval(items, train, needs, settings, args.folds, args.limit,
                        progress=lambda m: print(m, file=sys.stderr), always=always,
                        subjects=[titles[query_key(q)] for q, _ in always])
    except ValueError as exc:
        raise ZhidaError(str(exc)) from exc
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(rep, ensure_ascii=False, indent=1), encoding="utf-8")
    print(markdown(rep))
    print(f"\nreport: {out / 'report.json'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval", description="Zhida offline evaluation.")
    ap.add_argument("--config", help="TOML settings file")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="evaluate the router and baselines on a labelled query set")
    r.add_argument("--index", default="index_data/index")
    r.add_argument("--queries", nargs="+", default=["eval/queries/dev.jsonl"],
                   help="one or more labelled query sets; with several, each gets its report in OUT/<set name>/")
    r.add_argument("--relevance", choices=["items", "categories"], default="items")
    r.add_argument("--qrels", help="TREC qrels file (qid 0 docid grade) judging the queries instead of their own "
                   "item judgments, e.g. the implicit judgments of python -m eval mine")
    r.add_argument("--judged-only", action="store_true", help="item metrics on condensed lists (unjudged results "
                   "removed; Sakai 2007): for incomplete judgments such as mined ones")
    r.add_argument("--out", default="eval/out/dev")
    r.set_defaults(func=cmd_run)
    x = sub.add_parser("external", help="external benchmarks from ../shared/data")
    x.add_argument("--index", default="index_data/index")
    x.add_argument("--queries", default="eval/queries/dev.jsonl")
    x.add_argument("--shared", default="../shared/data")
    x.add_argument("--out", default="eval/out/external")
    x.set_defaults(func=cmd_external)
    fo = sub.add_parser("folds", help="the page on held-out training needs: k contiguous folds, an index per fold")
    from .folds import add_arguments as folds_arguments

    folds_arguments(fo)
    fo.set_defaults(func=cmd_folds)
    c = sub.add_parser("compare", help="print the deltas between two report.json files")
    c.add_argument("a")
    c.add_argument("b")
    c.set_defaults(func=cmd_compare)
    mn = sub.add_parser("mine", help="statistics, intent labels and judgments mined from the query log")
    from .mine import add_arguments as mine_arguments
    from .mine import cmd_mine

    mine_arguments(mn)
    mn.set_defaults(func=cmd_mine)
    sm = sub.add_parser("simulate", help="SIMULATED users search a running server and click by a stated model")
    from .simulate import add_arguments as simulate_arguments
    from .simulate import cmd_agreement, cmd_simulate

    simulate_arguments(sm)
    sm.set_defaults(func=cmd_simulate)
    ag = sub.add_parser("agreement", help="mined intent labels against the simulator's hidden truth")
    ag.add_argument("--truth", default="eval/out/simulated/truth.jsonl")
    ag.add_argument("--stats", default="eval/out/mined/query_stats.jsonl")
    ag.add_argument("--min-searches", type=int, default=20)
    ag.set_defaults(func=cmd_agreement)
    lp = sub.add_parser("loop", help="split, serve, simulate, mine, retrain, evaluate (SIMULATED users)")
    from .loop import add_arguments as loop_arguments
    from .loop import cmd_loop

    loop_arguments(lp)
    lp.set_defaults(func=cmd_loop)
    ti = sub.add_parser("titles", help="write a list's training needs (content titles, occasions, places) into the category training file")
    from .titles import add_arguments as titles_arguments
    from .titles import cmd_titles

    titles_arguments(ti)
    ti.set_defaults(func=cmd_titles)
    t = sub.add_parser("tune", help="sweep the routing thresholds and recommend a pair")
    from .tuning import add_arguments

    add_arguments(t)
    args = ap.parse_args(argv)
    try:
        return int(args.func(args))
    except ZhidaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

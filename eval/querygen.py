"""Generate the precise half of the labelled query sets from the catalog, reproducibly.

Precise queries are the forms people really type to reach a thing they can name (see eval/README.md):

    exact        肯德基            the canonical name
    english      kfc               an ASCII alias (English name, abbreviation)
    pinyin       kendeji           full toneless pinyin of the name
    initials     kdj               pinyin initials
    typo         肯得基            one character replaced by a common homophone (the commonest IME slip)
    traditional  麥當勞            traditional characters
    suffix       星巴克会员        name + a service word (one of the item's own actions, or a generic one)
    command      打开支付宝        a verb before the name (training only; not a dev form)
    partial      网易云音          a prefix that still names exactly one item

Only entities get name forms: brands, mini-programs and the platform's own functions (``search.types.ENTITY_TYPES``).
A generic service or content item (密室逃脱, 助眠音乐) is named by a need, so its exact name is a *fuzzy* training
query and it gets no other form.

Hand-written queries live in ``eval/queries/handwritten/``: fuzzy needs, precise "name + service" cases, and
``intent_extra_train.jsonl`` (needs containing a service's name, questions, 附近 queries, the platform's
functions, long sentences, each with its ``kind``). The rule (eval/README.md): a query is labelled by what the user
mainly wants — a named entity in any form (exact, alias, pinyin, typo, with a command or a suffix) is precise, and
so is a command or name-shaped query naming something the catalog does not have; every need or question, and
every activity many providers offer, is fuzzy. A hand-written query that is exactly an entity's name or alias is
precise, one that is exactly a generic item's name fuzzy.

On top, ``train_forms.json`` and the lists beside it generate more precise forms — commands and suffixes around
entity names (打开{name}, {name}官网, open {name}), the functions' verb and noun surfaces (我要交电费, 我的收款码),
invented names the catalog does not have (``unknown_names.txt``) alone and in commands, whole-name homophone
typos (``homophone_typos.json``) alone and in commands — and fuzzy need forms over generic items' names
({service}多少钱, 附近的{service}); ``partial_forms`` adds partial names of three characters or more (网易云音,
腾讯视), the form the sampled items alone gave too few of.

    python -m eval.querygen  [--catalog index_data/catalog.jsonl] [--seed 7]

writes ``index_data/intent_train.jsonl``. With ``--reviewed index_data/labels_review.jsonl`` it also includes the labels
analysts gave in the console (``search.labels``): the latest label of each query, winning over a generated label of
the same query (an analyst's correction is the point); precise and fuzzy labels become training rows, and the
categories of fuzzy and mixed labels rows of ``--category-train`` (the first category grade 2, others 1); a mixed
label trains no intent (the classifier is binary) and labels of evaluation queries are left out and reported. The
review file then records which labels were included (the console stops counting them as waiting). The evaluation sets ``eval/queries/dev.jsonl`` and
``eval/queries/hard_dev.jsonl`` are frozen (``--dev-out`` regenerates a dev set from the catalog's forms); no
training query equals one of their queries after normalisation (punctuation, spacing, case and script ignored).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import zhconv
from pypinyin import Style, lazy_pinyin, pinyin_dict

from search.catalog import load_catalog, query_key
from search.normalize import compact
from search.tokenize import has_cjk, pinyin_keys
from search.types import ENTITY_TYPES, Item

FORMS = ("exact", "english", "pinyin", "initials", "typo", "traditional", "suffix", "partial")
GENERIC_SUFFIXES = ("会员", "客服", "官网", "优惠券", "订单", "app", "电话", "附近", "怎么用", "登录")
COMMAND_PREFIXES = ("打开", "进入", "我要用", "帮我打开", "去", "打开一下", "我要上", "启动")
HANDWRITTEN = Path("eval/queries/handwritten")
FROZEN = (Path("eval/queries/dev.jsonl"), Path("eval/queries/hard_dev.jsonl"))  # never trained on
# generated training rows per kind (before duplicates are skipped)
EXTRA_QUOTA = {"command": 160, "suffix": 80, "english": 70, "function": 90, "unknown_bare": 60, "unknown": 120,
               "typo": 140, "typo_command": 70, "need": 600, "partial": 400}
VERBISH_START = ("找", "叫", "订", "买", "泡", "看", "换", "开", "租", "住", "卖", "回收", "预约", "上门", "打", "洗",
                 "修", "送", "接", "搭", "拖", "检", "存", "问", "做", "领", "办", "包", "补", "种", "验", "拔", "学",
                 "背", "练", "记", "跳", "点", "请", "去", "带", "陪", "捐", "提", "交", "申", "取", "起", "煲", "哄")
TICKET_END = ("门票", "预约", "预订", "票", "查询", "报名", "申请", "办理", "抢票")


def _common_homophones() -> dict[str, list[str]]:
    """Toneless pinyin → common characters (GB2312 level 1, the 3,755 most used hanzi)."""
    out: dict[str, list[str]] = {}
    for cp, readings in pinyin_dict.pinyin_dict.items():
        ch = chr(cp)
        try:
            b = ch.encode("gb2312")
        except UnicodeEncodeError:
            continue
        if len(b) != 2 or not (0xB0A1 <= (b[0] << 8 | b[1]) <= 0xD7F9):
            continue
        first = readings.split(",")[0]
        base = "".join(c for c in unicodedata.normalize("NFKD", first) if c.isascii() and c.isalpha())
        out.setdefault(base, []).append(ch)
    return out


def typo_of(name: str, rng: random.Random, homophones: dict[str, list[str]]) -> str | None:
    positions = [i for i, ch in enumerate(name) if has_cjk(ch)]
    rng.shuffle(positions)
    for i in positions:
        syl = lazy_pinyin(name[i], style=Style.NORMAL)[0]
        options = [c for c in homophones.get(syl, []) if c != name[i]]
        if options:
            return name[:i] + rng.choice(sorted(options)) + name[i + 1 :]
    return None


def forms_of(it: Item, rng: random.Random, homophones: dict[str, list[str]], unique_prefix: set[str]) -> dict[str, str]:
    """Precise forms of an entity's name (a generic item gets none: its name is a need)."""
    name = it.name
    if it.type not in ENTITY_TYPES:
        return {}
    out: dict[str, str] = {"exact": name}
    ascii_aliases = [a for a in it.aliases if a.isascii() and compact(a) and compact(a) != compact(name)]
    if ascii_aliases:
        out["english"] = rng.choice(ascii_aliases).lower() if rng.random() < 0.6 else rng.choice(ascii_aliases)
    cname = compact(name)
    if has_cjk(cname) and len(cname) <= 8:
        full, ini = pinyin_keys(cname)
        if full != cname:
            out["pinyin"] = full
        if 2 <= len(ini) <= 6 and ini != cname:
            out["initials"] = ini
        t = typo_of(name, rng, homophones)
        if t:
            out["typo"] = t
    trad = zhconv.convert(name, "zh-tw")
    if trad != name:
        out["traditional"] = trad
    name_bigrams = {name[i : i + 2] for i in range(len(name) - 1)}
    acts = [a.name for a in it.actions
            if it.type != "content" and a.kind != "content"
            and not any(a.name[i : i + 2] in name_bigrams for i in range(len(a.name) - 1))]
    suffix = rng.choice(acts) if acts and rng.random() < 0.7 else rng.choice(GENERIC_SUFFIXES)
    out["suffix"] = name + suffix
    # training only (not a dev form): a verb in front, as people say it to an assistant or type it
    out["command"] = rng.choice(COMMAND_PREFIXES) + name
    if len(cname) >= 4 and has_cjk(cname):
        for ln in range(len(cname) - 1, 1, -1):
            if cname[:ln] in unique_prefix:
                out["partial"] = cname[:ln]
                break
    return out


def _unique_prefixes(items: Sequence[Item]) -> set[str]:
    """Name prefixes (≥ 2 chars) that start exactly one item's name or alias and equal none."""
    keys = {compact(k) for it in items for k in (it.name, *it.aliases)}
    count: dict[str, set[int]] = {}
    for i, it in enumerate(items):
        for k in {compact(x) for x in (it.name, *it.aliases)}:
            for ln in range(2, len(k)):
                count.setdefault(k[:ln], set()).add(i)
    return {p for p, s in count.items() if len(s) == 1 and p not in keys}


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _nounish(s: str) -> bool:
    """A surface that reads well after words like 附近的 / 周末去: not a verb phrase, not a ticket or booking form."""
    return not s.startswith(VERBISH_START) and not s.endswith(TICKET_END)


def _weighted_order(rng: random.Random, rows: list, weight: Callable[[Any], float]) -> list:
    """A popularity-weighted random order without replacement (Efraimidis & Spirakis 2006 keys)."""
    keyed = sorted(((rng.random() ** (1.0 / max(weight(x), 1e-9)), i) for i, x in enumerate(rows)), reverse=True)
    return [rows[i] for _, i in keyed]


def _fill_in(template: str, name: str) -> str:
    """``{name}`` filled; an ASCII name gets a space before a glued ASCII suffix (keep app, not keepapp)."""
    if name.isascii():
        template = re.sub(r"\{name\}(?=[A-Za-z])", "{name} ", template)
    return template.format(name=name)


def generated_forms(items: Sequence[Item], rng: random.Random, blocked: set[str]) -> list[dict]:
    """Training rows from ``train_forms.json``, ``unknown_names.txt`` and ``homophone_typos.json`` (module
    docstring); no row repeats a key in ``blocked``, which grows as rows are added."""
    forms = json.loads((HANDWRITTEN / "train_forms.json").read_text(encoding="utf-8"))
    unknown = [ln.strip() for ln in (HANDWRITTEN / "unknown_names.txt").read_text(encoding="utf-8").splitlines() if ln.strip()]
    typos = json.loads((HANDWRITTEN / "homophone_typos.json").read_text(encoding="utf-8"))
    by_id = {it.id: it for it in items}
    keys = {compact(k) for it in items for k in (it.name, *it.aliases)}
    unknown = [u for u in unknown if compact(u) not in keys]  # a name the catalog gained is no longer unknown
    rows: list[dict] = []
    count: dict[str, int] = {}

    def fill(kind: str, intent: str, candidates: Iterable[str]) -> None:
        for q in candidates:
            if count.get(kind, 0) >= EXTRA_QUOTA[kind]:
                return
            q = " ".join(q.split())
            k = compact(q)
            if k and k not in blocked:
                blocked.add(k)
                rows.append({"query": q, "intent": intent, "kind": kind})
                count[kind] = count.get(kind, 0) + 1

    cmd = forms["command"]
    prefix_t = [t for t in cmd if not t.startswith("{name}")]
    suffix_t = [t for t in cmd if t.startswith("{name}")]
    eng_t = forms["command_english"]
    entities = [it for it in items if it.type in ("brand", "mini_program") and has_cjk(it.name) and 2 <= len(compact(it.name)) <= 8]

    def surface(it: Item) -> str:
        cjk_aliases = [a for a in it.aliases if has_cjk(a) and 2 <= len(compact(a)) <= 8]
        return rng.choice(cjk_aliases) if cjk_aliases and rng.random() < 0.25 else it.name

    popular = lambda it: it.popularity ** 2  # noqa: E731
    fill("command", "precise", (rng.choice(prefix_t).format(name=surface(it)) for it in _weighted_order(rng, entities, popular)))
    fill("suffix", "precise", (rng.choice(suffix_t).format(name=surface(it)) for it in _weighted_order(rng, entities, popular)))
    ascii_names = [(k, it.popularity) for it in items if it.type in ("brand", "mini_program") for k in (it.name, *it.aliases)
                   if k.isascii() and re.search(r"[A-Za-z]{2}", k) and len(k) <= 16 and not (len(k) <= 4 and it.popularity < 4)]

    def english() -> Iterable[str]:
        for name, _ in _weighted_order(rng, ascii_names, lambda x: x[1] ** 2):
            shown = name.lower() if rng.random() < 0.5 else name
            yield _fill_in(rng.choice(eng_t) if rng.random() < 0.6 else rng.choice(cmd), shown)

    fill("english", "precise", english())
    fn = [(x, "function_verb") for x in forms["function_surfaces"]["verb"]]
    fn += [(x, "function_noun") for x in forms["function_surfaces"]["noun"]]
    fn += [(it.name, "function_noun") for it in items if it.type == "function"]
    rng.shuffle(fn)
    fill("function", "precise", (rng.choice(forms[group]).format(name=x) for _ in range(3) for x, group in fn))
    order = unknown[:]
    rng.shuffle(order)
    fill("unknown_bare", "precise", order)
    rng.shuffle(order)
    fill("unknown", "precise", (_fill_in(rng.choice(eng_t) if u.isascii() and rng.random() < 0.5 else rng.choice(cmd), u)
                                for _ in range(3) for u in order))
    typo_list = [t["typo"] for t in typos if t["target_id"] in by_id and by_id[t["target_id"]].type in ENTITY_TYPES]
    rng.shuffle(typo_list)
    fill("typo", "precise", typo_list)
    rest = [t for t in typo_list if compact(t) not in blocked]
    fill("typo_command", "precise", (rng.choice(cmd).format(name=t) for t in rest))
    # needs over generic items' names and aliases
    group_of = {n: g for g, names in forms["need_groups"].items() for n in names}
    entity_keys = {compact(k) for it in items if it.type in ENTITY_TYPES for k in (it.name, *it.aliases)}
    generic = sorted((it for it in items if it.type not in ENTITY_TYPES), key=lambda it: it.id)
    rng.shuffle(generic)

    def needs() -> Iterable[str]:
        for _ in range(4):
            for it in generic:
                surfaces = [x for x in (it.name, *it.aliases) if 2 <= len(compact(x)) <= 8 and compact(x) not in entity_keys
                            and not any(w in x for w in ("附近", "周边", "怎么", "去哪"))]
                if not surfaces:
                    continue
                x = rng.choice(surfaces)
                group = "content" if it.type == "content" else group_of.get(it.name, "common")
                pool = list(forms["need"][group]) + ([] if group in ("content", "tool", "common") else forms["need"]["common"])
                if not _nounish(x):
                    pool = [t for t in pool if t.startswith("{service}")] or ["{service}"]
                yield rng.choice(pool).format(service=x)

    fill("need", "fuzzy", needs())
    return rows


def partial_forms(items: Sequence[Item], rng: random.Random, blocked: set[str], held_out: Iterable[str],
                  quota: int = EXTRA_QUOTA["partial"], unique: set[str] | None = None) -> list[dict]:
    """Partial names as training rows: an entity's Chinese name (4–12 characters) without its last one or two
    characters, at least three left, when that prefix still starts that item's names only (网易云音, 中国邮政储蓄),
    popular items first (weighted order). Two-character prefixes are left out: many are words of their own (照明,
    第五, 神奇), and as training rows they pulled such words towards the precise route. No row repeats a key in
    ``blocked`` (which grows as rows are added), nor is a prefix of a ``held_out`` query or has one as its prefix
    (an evaluation query 腾讯视 keeps 腾讯视频 out of these rows altogether). ``unique``: ``_unique_prefixes(items)``,
    when the caller has it already."""
    unique = _unique_prefixes(items) if unique is None else unique
    held = [compact(q) for q in held_out]
    entities = [it for it in items if it.type in ("brand", "mini_program")]
    rows: list[dict] = []
    for it in _weighted_order(rng, entities, lambda it: it.popularity ** 2):
        if len(rows) >= quota:
            break
        name = compact(it.name)
        if not (4 <= len(name) <= 12 and re.fullmatch(r"[\u4e00-\u9fff]+", name)):
            continue
        for cut in ((1, 2) if len(name) >= 5 else (1,)):
            q = name[:-cut]
            k = query_key(q)
            if (len(rows) < quota and q in unique and k not in blocked
                    and not any(h.startswith(q) or q.startswith(h) for h in held if h)):
                blocked.add(k)
                rows.append({"query": q, "intent": "precise", "kind": "partial"})
    return rows


def generate(catalog: str, taxonomy: str, seed: int, n_train_items: int,
             n_dev_per_form: int = 0) -> tuple[list[dict], list[dict]]:
    """Training queries (and, with ``n_dev_per_form``, a fresh dev set of precise forms and hand-written needs)."""
    rng = random.Random(seed)
    items = load_catalog(catalog, taxonomy)
    homophones = _common_homophones()
    unique_prefix = _unique_prefixes(items)
    entity_keys = {compact(k) for it in items if it.type in ENTITY_TYPES for k in (it.name, *it.aliases)}
    generic_keys = {compact(k) for it in items if it.type not in ENTITY_TYPES for k in (it.name, *it.aliases)}

    def by_rule(query: str, intent: str) -> str:
        """Exactly an entity's name or alias: precise; exactly a generic item's: fuzzy; else as written."""
        k = compact(query)
        return "precise" if k in entity_keys else "fuzzy" if k in generic_keys else intent

    # Popular things are typed more: sample items weighted by popularity.
    weights = [it.popularity ** 2 for it in items]
    per_item = [forms_of(it, rng, homophones, unique_prefix) for it in items]

    dev: list[dict] = []
    used_dev_items: set[int] = set()
    for form in FORMS if n_dev_per_form else ():
        pool = [i for i, f in enumerate(per_item) if form in f and i not in used_dev_items]
        rng.shuffle(pool)
        pool.sort(key=lambda i: -weights[i] * rng.random())
        for i in pool[:n_dev_per_form]:
            used_dev_items.add(i)
            dev.append({"query": per_item[i][form], "intent": "precise", "form": form,
                        "relevant": {items[i].id: 2}, "categories": {items[i].category: 2}})
    if n_dev_per_form:
        for r in _read(HANDWRITTEN / "fuzzy_dev.jsonl"):
            if compact(r["query"]) not in entity_keys:
                dev.append({"query": r["query"], "intent": "fuzzy", "relevant": r.get("relevant", {}),
                            "categories": r["categories"]})

    train: list[dict] = []
    order = rng.choices(range(len(items)), weights=weights, k=n_train_items)
    for i in dict.fromkeys(order):
        f = per_item[i]
        if not f:  # a generic item: its own name is a need
            train.append({"query": items[i].name, "intent": "fuzzy"})
            continue
        picks = rng.sample(sorted(f), k=min(len(f), rng.choice((1, 2, 2, 3))))
        train.extend({"query": f[p], "intent": "precise"} for p in picks)
    for r in _read(HANDWRITTEN / "precise_mixed_train.jsonl"):
        train.append({"query": r["query"], "intent": by_rule(r["query"], "precise")})
    for name in ("fuzzy_train.jsonl", "intent_extra_train.jsonl"):
        for r in _read(HANDWRITTEN / name):
            train.append({"query": r["query"], "intent": by_rule(r["query"], r.get("intent", "fuzzy"))})

    # De-duplicate; evaluation sets win over training (they are what we measure on).
    dev_keys: set[str] = set()
    dev_out = []
    for d in dev:
        k = query_key(d["query"])
        if k and k not in dev_keys:
            dev_keys.add(k)
            dev_out.append(d)
    frozen = {query_key(r["query"]) for p in FROZEN if p.exists() for r in _read(p)}
    seen: set[str] = set(dev_keys | frozen)
    train_out = []
    for t in train:
        k = query_key(t["query"])
        if k and k not in seen:
            seen.add(k)
            train_out.append(t)
    train_out += [{"query": r["query"], "intent": r["intent"]} for r in generated_forms(items, rng, seen)]
    partial = partial_forms(items, rng, seen, dev_keys | frozen, unique=unique_prefix)
    train_out += [{"query": r["query"], "intent": r["intent"]} for r in partial]
    rng.shuffle(train_out)
    for n, d in enumerate(dev_out, 1):
        d["qid"] = f"{'p' if d['intent'] == 'precise' else 'f'}{n:04d}"
    dev_out = [{"qid": d["qid"], **{k: v for k, v in d.items() if k != "qid"}} for d in dev_out]
    return train_out, dev_out


def include_reviewed(train: list[dict], review_path: str, category_train_path: str) -> dict[str, Any]:
    """Add the console's reviewed labels to ``train`` (in place) and to the category training file; see the module
    docstring. Returns what was done, for the command's output."""
    from search.labels import LabelReview

    review = LabelReview(review_path)
    labels = review.latest()
    frozen = {query_key(r["query"]) for p in FROZEN if p.exists() for r in _read(p)}
    by_key = {query_key(t["query"]): n for n, t in enumerate(train)}
    report = {"labels": len(labels), "intent_added": 0, "intent_replaced": 0, "categories": 0, "mixed": 0,
              "held_out": []}
    cats: dict[str, dict] = {}
    for lab in labels:
        k = query_key(lab.query)
        if not k or k in frozen:
            report["held_out"].append(lab.query)
            continue
        if lab.label in ("precise", "fuzzy"):
            row = {"query": lab.query, "intent": lab.label}
            if k in by_key:
                train[by_key[k]] = row
                report["intent_replaced"] += 1
            else:
                by_key[k] = len(train)
                train.append(row)
                report["intent_added"] += 1
        else:
            report["mixed"] += 1
        if lab.categories and lab.label != "precise":
            cats[k] = {"query": lab.query, "categories": {c: 2 if i == 0 else 1 for i, c in enumerate(lab.categories)}}
    if cats:
        path = Path(category_train_path)
        rows = [r for r in (_read(path) if path.exists() else []) if query_key(r["query"]) not in cats]
        rows += list(cats.values())
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        tmp.replace(path)
        report["categories"] = len(cats)
    every, included = review.read()
    waiting_ids = {lab.id for lab in every} - included
    if waiting_ids:
        review.mark_included(waiting_ids, "intent_train and category_train")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.querygen", description=__doc__.split("\n")[0])
    ap.add_argument("--catalog", default="index_data/catalog.jsonl")
    ap.add_argument("--taxonomy", default="index_data/taxonomy.txt")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--train-items", type=int, default=1800, help="catalog items sampled (by popularity) for name forms")
    ap.add_argument("--train-out", default="index_data/intent_train.jsonl")
    ap.add_argument("--dev-out", default=None, help="also write a fresh dev set here (the project's dev set is frozen)")
    ap.add_argument("--dev-per-form", type=int, default=26)
    ap.add_argument("--reviewed", default=None,
                    help="the console's label review file (index_data/labels_review.jsonl): include its labels")
    ap.add_argument("--category-train", default="index_data/category_train.jsonl",
                    help="category training file that reviewed fuzzy and mixed labels' categories go to")
    args = ap.parse_args(argv)
    train, dev = generate(args.catalog, args.taxonomy, args.seed, args.train_items, args.dev_per_form if args.dev_out else 0)
    if args.reviewed:
        rep = include_reviewed(train, args.reviewed, args.category_train)
        print(f"reviewed labels from {args.reviewed}: {rep['labels']} queries; intent rows {rep['intent_added']} added, "
              f"{rep['intent_replaced']} replacing generated ones; {rep['mixed']} mixed (no intent row); "
              f"{rep['categories']} category rows in {args.category_train}; {len(rep['held_out'])} evaluation "
              f"queries left out{': ' + ', '.join(rep['held_out'][:10]) if rep['held_out'] else ''}")
    outs = [(args.train_out, train)] + ([(args.dev_out, dev)] if args.dev_out else [])
    for path, rows in outs:
        with open(path, "w", encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
        counts: dict[str, int] = {}
        for r in rows:
            counts[r["intent"]] = counts.get(r["intent"], 0) + 1
        print(f"wrote {path}: {len(rows)} queries {counts}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

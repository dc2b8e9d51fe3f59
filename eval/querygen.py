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

Hand-written queries (fuzzy needs, and precise "name + service" mixed cases) live in
``eval/queries/handwritten/``. The rule for those: a query is labelled by what the user mainly wants —
if it names a catalog thing and wants that thing (肯德基优惠券, 附近的星巴克), it is precise; a need that
mentions only a generic thing (附近的咖啡店) is fuzzy; a query that is exactly the name or alias of a
catalog service (交电费, 打车) is precise, because that service is the answer.

    python -m eval.querygen  [--catalog index_data/catalog.jsonl] [--seed 7]

writes ``index_data/intent_train.jsonl`` and ``eval/queries/dev.jsonl`` (the dev fuzzy judgments come
from ``eval/queries/handwritten/fuzzy_dev.jsonl``). No dev query equals a training query after
normalisation (punctuation, spacing, case and script ignored).
"""

from __future__ import annotations

import argparse
import json
import random
import unicodedata
from collections.abc import Sequence
from pathlib import Path

import zhconv
from pypinyin import Style, lazy_pinyin, pinyin_dict

from search.catalog import load_catalog, query_key
from search.normalize import compact
from search.tokenize import has_cjk, pinyin_keys
from search.types import Item

FORMS = ("exact", "english", "pinyin", "initials", "typo", "traditional", "suffix", "partial")
GENERIC_SUFFIXES = ("会员", "客服", "官网", "优惠券", "订单", "app", "电话", "附近", "怎么用", "登录")
COMMAND_PREFIXES = ("打开", "进入", "我要用", "帮我打开", "去", "打开一下", "我要上", "启动")
HANDWRITTEN = Path("eval/queries/handwritten")


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
    name = it.name
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
    if it.type == "content":
        # A content item is named by a need (学日语, 助眠白噪音): "name + word" is a need, not a name.
        for form in ("suffix", "command", "partial"):
            out.pop(form, None)
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


def generate(catalog: str, taxonomy: str, seed: int, n_dev_per_form: int, n_train_items: int) -> tuple[list[dict], list[dict]]:
    rng = random.Random(seed)
    items = load_catalog(catalog, taxonomy)
    homophones = _common_homophones()
    unique_prefix = _unique_prefixes(items)
    name_keys = {compact(k): it for it in items for k in (it.name, *it.aliases)}

    # Popular things are typed more: sample items weighted by popularity.
    weights = [it.popularity ** 2 for it in items]
    per_item = [forms_of(it, rng, homophones, unique_prefix) for it in items]

    dev: list[dict] = []
    used_dev_items: set[int] = set()
    for form in FORMS:
        pool = [i for i, f in enumerate(per_item) if form in f and i not in used_dev_items]
        rng.shuffle(pool)
        pool.sort(key=lambda i: -weights[i] * rng.random())
        for i in pool[:n_dev_per_form]:
            used_dev_items.add(i)
            dev.append({"query": per_item[i][form], "intent": "precise", "form": form,
                        "relevant": {items[i].id: 2}, "categories": {items[i].category: 2}})

    train: list[dict] = []
    order = rng.choices(range(len(items)), weights=weights, k=n_train_items)
    for i in dict.fromkeys(order):
        f = per_item[i]
        picks = rng.sample(sorted(f), k=min(len(f), rng.choice((1, 2, 2, 3))))
        train.extend({"query": f[p], "intent": "precise"} for p in picks)

    for r in _read(HANDWRITTEN / "precise_mixed_train.jsonl"):
        train.append({"query": r["query"], "intent": "precise"})
    for r in _read(HANDWRITTEN / "fuzzy_train.jsonl"):
        # A query that is exactly a catalog name or alias asks for that thing: precise (eval/README.md).
        intent = "precise" if compact(r["query"]) in name_keys else "fuzzy"
        train.append({"query": r["query"], "intent": intent})
    for r in _read(HANDWRITTEN / "fuzzy_dev.jsonl"):
        if compact(r["query"]) in name_keys:
            continue
        dev.append({"query": r["query"], "intent": "fuzzy", "relevant": r.get("relevant", {}),
                    "categories": r["categories"]})

    # De-duplicate; dev wins over train (the dev set is what we measure on).
    dev_keys: set[str] = set()
    dev_out = []
    for d in dev:
        k = query_key(d["query"])
        if k and k not in dev_keys:
            dev_keys.add(k)
            dev_out.append(d)
    seen: set[str] = set()
    train_out = []
    for t in train:
        k = query_key(t["query"])
        if k and k not in seen and k not in dev_keys:
            seen.add(k)
            train_out.append(t)
    rng.shuffle(train_out)
    for n, d in enumerate(dev_out, 1):
        d["qid"] = f"{'p' if d['intent'] == 'precise' else 'f'}{n:04d}"
    dev_out = [{"qid": d["qid"], **{k: v for k, v in d.items() if k != "qid"}} for d in dev_out]
    return train_out, dev_out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.querygen", description=__doc__.split("\n")[0])
    ap.add_argument("--catalog", default="index_data/catalog.jsonl")
    ap.add_argument("--taxonomy", default="index_data/taxonomy.txt")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--dev-per-form", type=int, default=26)
    ap.add_argument("--train-items", type=int, default=900)
    ap.add_argument("--train-out", default="index_data/intent_train.jsonl")
    ap.add_argument("--dev-out", default="eval/queries/dev.jsonl")
    args = ap.parse_args(argv)
    train, dev = generate(args.catalog, args.taxonomy, args.seed, args.dev_per_form, args.train_items)
    for path, rows in ((args.train_out, train), (args.dev_out, dev)):
        with open(path, "w", encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
        print(f"wrote {path}: {len(rows)} queries")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

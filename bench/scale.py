"""Synthetic scale catalogs and the benchmark query mix.

Catalogs
--------
``make_catalog(n, seed)`` returns ``n`` valid catalog items (``search.types.Item``) made from the default
catalog (``index_data/catalog.jsonl``, 1,648 items):

* the 1,648 original items come first, unchanged (same ids), so the dev queries and their judged targets
  still exist at every size;
* every further item ``syn-0000001`` … is a *variant* of one source item. Sources are taken round-robin
  over a seeded permutation of the default catalog, so each source has ``≈ n / 1,648`` variants. A variant
  keeps the source's ``type``, ``category`` and ``actions`` (copied) and gets:

  - a **new name** from one of six patterns (weights in ``NAME_PATTERNS``):
      branch     肯德基(西湖店), 星巴克(杭州万象城店)          source name + (district | city+district) + 店
      city       杭州公积金查询                               city + source name
      suffix     星巴克臻选, 网易云音乐极速版                  source name + product suffix
      prefix     掌上星巴克优选                                prefix + source name + suffix
      parts      肯德当劳                                     head of the source name + tail of another name
                                                              of the same category (+ optional suffix)
      city_suffix 上海滴滴出行Plus                             city + source name + suffix
    (content items, whose names are needs like 助眠白噪音, use need-style patterns instead:
    助眠白噪音合集, 睡前助眠白噪音精选 …);
  - 0–1 **alias** (a source alias with the same branch / suffix; 30 % of variants);
  - a **description** recombined from clauses of the source's description and of 1–2 *donor* items of
    the same category (optionally a "位于…" branch clause), clipped at a clause boundary to 20–150
    characters as the catalog rules require;
  - 3–6 **tags** drawn from the source's and the donors' tags (+ the city for city/branch variants);
  - a **popularity** one or two steps below the source's (variants are rarely more popular).

  Names are unique after normalisation (a collision retries another pattern, and as a last resort appends
  a counter), ids are unique, every item passes ``search.catalog.item_problems``.

Everything is drawn from one ``random.Random(seed)``: the same ``(n, seed)`` gives byte-identical
catalogs. ``make_catalog`` also returns, for every item, the index of its source and of its donors in the
default catalog (used by the runner to derive 1M-item embeddings from the real embeddings of those items).

Query mix
---------
``query_mix(items, n, seed)`` returns ``n`` (source, query) pairs:

* ``multicpr`` — real query text from ``../shared/data/queries/multicpr_*.tsv`` (102,000 Taobao/Youku
  queries; sampled without replacement while they last);
* ``dev`` — the dev queries (``eval/queries/dev.jsonl``, field ``query``);
* ``name`` — names of catalog items, three quarters synthetic variants (when there are any), one quarter
  original names: the precise traffic of a big catalog.

Default shares 40 / 30 / 30 %. When the Multi-CPR files are absent (CI), ``multicpr_status`` says so and
their share goes to the dev queries. Queries the engine would reject (empty after normalisation, longer
than ``max_query_chars``) are dropped, so an HTTP error in the load test is a server failure, not a 422.

CLI
---
``python -m bench.scale --n 10k --out bench/out/catalog-10k.jsonl`` writes a catalog (and validates it);
``python -m search validate bench/out/catalog-10k.jsonl --taxonomy index_data/taxonomy.txt`` re-checks it.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # python bench/scale.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search.catalog import item_problems, load_catalog, load_taxonomy
from search.normalize import compact, normalize
from search.types import Item

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CATALOG = ROOT / "index_data" / "catalog.jsonl"
DEFAULT_TAXONOMY = ROOT / "index_data" / "taxonomy.txt"
DEFAULT_DEV = ROOT / "eval" / "queries" / "dev.jsonl"
DEFAULT_SHARED = ROOT.parent / "shared" / "data"
DEFAULT_SEED = 6

CITIES = ["北京", "上海", "广州", "深圳", "杭州", "南京", "苏州", "成都", "重庆", "武汉", "西安", "天津", "长沙", "郑州", "青岛", "厦门", "宁波", "合肥", "济南", "福州", "昆明", "大连", "沈阳", "哈尔滨", "长春", "石家庄", "太原", "南昌", "南宁", "贵阳", "兰州", "海口", "三亚", "无锡", "佛山", "东莞", "珠海", "温州", "绍兴", "嘉兴", "常州", "徐州", "扬州", "烟台", "潍坊", "洛阳", "襄阳", "宜昌", "株洲", "赣州", "泉州", "漳州", "汕头", "惠州", "中山", "桂林", "柳州", "遵义", "绵阳", "乌鲁木齐", "呼和浩特", "银川", "西宁", "拉萨", "保定", "唐山", "廊坊", "秦皇岛", "威海", "日照", "镇江", "南通", "盐城", "金华", "台州", "湖州", "芜湖"]
DISTRICTS = ["西湖", "滨江", "朝阳", "海淀", "徐汇", "静安", "浦东", "天河", "福田", "南山", "武侯", "锦江", "江汉", "雨花台", "鼓楼", "解放碑", "五道口", "中关村", "望京", "国贸", "陆家嘴", "人民广场", "火车站", "机场", "大学城", "万达广场", "万象城", "银泰", "大悦城", "高铁站", "步行街", "市民中心", "西单", "王府井", "三里屯", "徐家汇", "五角场", "珠江新城", "华强北", "春熙路", "观音桥", "光谷", "钟楼", "小寨", "河西", "新街口", "湖滨", "文三路", "黄龙", "钱江新城", "奥体", "会展中心", "软件园", "科技园", "体育中心", "东站", "南站", "北站", "西站", "老城区", "开发区", "高新区", "新区", "江北", "城东", "城西"]
STORE_WORDS = ("店", "店", "店", "旗舰店", "中心店", "体验店", "社区店", "分店")
SUFFIXES = ["臻选", "优选", "Plus", "极速版", "Lite", "精选", "会员版", "官方", "助手", "服务", "专区", "在线", "国际", "青春版", "Pro", "尊享", "智选", "小站", "到家", "优品", "严选", "生活", "云", "通", "宝", "家", "汇", "Go", "快送", "直营"]
PREFIXES = ["新", "小", "云", "掌上", "智慧", "e", "易", "爱", "悦", "乐", "惠", "优", "微", "城市", "社区"]
CONTENT_PREFIXES = ["睡前", "周末", "每日", "午间", "清晨", "深夜", "亲子", "办公室", "入门", "零基础", "进阶", "十分钟", "居家", "通勤"]
CONTENT_SUFFIXES = ["合集", "精选", "大全", "入门", "进阶", "精讲", "速成", "专辑", "歌单", "课程", "指南", "100例", "每日一练", "实用版"]

NAME_PATTERNS: tuple[tuple[str, int], ...] = (
    ("branch", 35), ("city", 15), ("suffix", 20), ("prefix", 5), ("parts", 15), ("city_suffix", 10),
)
CONTENT_PATTERNS: tuple[tuple[str, int], ...] = (("c_suffix", 45), ("c_prefix", 35), ("c_both", 20))
MIX_SHARES = {"multicpr": 0.4, "dev": 0.3, "name": 0.3}

_CLAUSE = re.compile(r"[^，。；！？,;]+[，。；！？,;]?")
_CJK = re.compile(r"[\u4e00-\u9fff]")


def parse_size(s: str | int) -> int:
    """'10k' → 10_000, '1m' → 1_000_000, '2500' → 2500."""
    if isinstance(s, int):
        return s
    t = s.strip().lower().replace("_", "").replace(",", "")
    mult = 1
    if t.endswith("k"):
        mult, t = 1_000, t[:-1]
    elif t.endswith("m"):
        mult, t = 1_000_000, t[:-1]
    return int(float(t) * mult)


def load_base(catalog: Path = DEFAULT_CATALOG, taxonomy: Path = DEFAULT_TAXONOMY) -> list[Item]:
    return load_catalog(catalog, taxonomy)


def _weighted(rng: random.Random, table: Sequence[tuple[str, int]]) -> str:
    return rng.choices([k for k, _ in table], weights=[w for _, w in table])[0]


def _clauses(text: str) -> list[str]:
    return [c.strip() for c in _CLAUSE.findall(text) if c.strip()]


def _end(clause: str) -> str:
    return clause if clause[-1] in "，。；！？,;" else clause + "，"


def _description(rng: random.Random, src: Item, donors: Sequence[Item], where: str | None) -> str:
    parts = [_end(c) for c in _clauses(src.description)[:1]]
    if where:
        parts.append(f"位于{where}，")
    for d in donors:
        cl = _clauses(d.description)
        if len(cl) > 1:
            parts.append(_end(cl[rng.randrange(1, len(cl))]))
        elif cl:
            parts.append(_end(cl[0]))
    out = ""
    for p in parts:
        if len(out) + len(p) > 150:
            break
        out += p
    out = out.rstrip("，,；;")
    if out and out[-1] not in "。！？":
        out += "。"
    out = out[:150]
    if len(out) < 20:  # too short: the source's own description (27–91 characters in the default catalog)
        out = src.description[:150]
    return out


def _name_variant(rng: random.Random, src: Item, same_cat: Sequence[Item]) -> tuple[str, str, str | None, str | None]:
    """(pattern, name, alias-suffix, where) for a variant of ``src``."""
    name = src.name
    if src.type == "content":
        pat = _weighted(rng, CONTENT_PATTERNS)
        if pat == "c_suffix":
            suf = rng.choice(CONTENT_SUFFIXES)
            return pat, f"{name}{suf}", suf, None
        pre = rng.choice(CONTENT_PREFIXES)
        if pat == "c_prefix":
            return pat, f"{pre}{name}", None, None
        suf = rng.choice(CONTENT_SUFFIXES)
        return pat, f"{pre}{name}{suf}", suf, None
    pat = _weighted(rng, NAME_PATTERNS)
    if pat == "branch":
        city, dist = rng.choice(CITIES), rng.choice(DISTRICTS)
        store = rng.choice(STORE_WORDS)
        place = dist if rng.random() < 0.6 else city + dist
        return pat, f"{name}({place}{store})", f"{place}{store}", city + dist
    if pat == "city":
        city = rng.choice(CITIES)
        return pat, f"{city}{name}", None, city
    if pat == "suffix":
        suf = rng.choice(SUFFIXES)
        return pat, f"{name}{suf}", suf, None
    if pat == "prefix":
        pre, suf = rng.choice(PREFIXES), rng.choice(SUFFIXES)
        return pat, f"{pre}{name}{suf}", suf, None
    if pat == "parts":
        other = rng.choice(same_cat)
        a, b = compact(name), compact(other.name)
        if len(a) >= 2 and len(b) >= 2 and _CJK.search(a) and _CJK.search(b):
            head = a[: (len(a) + 1) // 2]
            tail = b[len(b) // 2:]
            new = head + tail + (rng.choice(SUFFIXES) if rng.random() < 0.3 else "")
            return pat, new, None, None
        suf = rng.choice(SUFFIXES)
        return "suffix", f"{name}{suf}", suf, None
    city, suf = rng.choice(CITIES), rng.choice(SUFFIXES)
    return "city_suffix", f"{city}{name}{suf}", suf, city


def make_catalog(
    n: int, seed: int = DEFAULT_SEED, base: Sequence[Item] | None = None
) -> tuple[list[Item], list[int], list[tuple[int, ...]]]:
    """``n`` items: the default catalog then seeded variants.

    Returns (items, source per item, donors per item): indices into the default catalog of the item a
    variant was made from and of the items its description and tags were recombined with (an original item
    is its own source and has no donors).
    """
    base = list(base) if base is not None else load_base()
    if n <= len(base):
        return base[:n], list(range(n)), [()] * n
    rng = random.Random(seed)
    by_cat: dict[str, list[Item]] = {}
    by_cat_idx: dict[str, list[int]] = {}
    for i, it in enumerate(base):
        by_cat.setdefault(it.category, []).append(it)
        by_cat_idx.setdefault(it.category, []).append(i)
    order = list(range(len(base)))
    rng.shuffle(order)
    items = list(base)
    sources = list(range(len(base)))
    donor_idx: list[tuple[int, ...]] = [()] * len(base)
    seen = {compact(normalize(it.name)) for it in base}
    for j in range(1, n - len(base) + 1):
        si = order[(j - 1) % len(base)]
        src = base[si]
        same = by_cat[src.category]
        for _attempt in range(8):
            pat, name, alias_sfx, where = _name_variant(rng, src, same)
            key = compact(normalize(name))
            if key and key not in seen and len(name) <= 40:
                break
        else:  # every retry collided: a counter makes it unique
            name = f"{src.name}{j}号店" if src.type != "content" else f"{src.name}第{j}辑"
            pat, alias_sfx, where = "counter", None, None
            key = compact(normalize(name))
        seen.add(key)
        didx = tuple(rng.choice(by_cat_idx[src.category]) for _ in range(rng.randint(1, 2)))
        donors = [base[d] for d in didx]
        aliases: tuple[str, ...] = ()
        if src.aliases and alias_sfx and rng.random() < 0.3:
            aliases = (f"{rng.choice(src.aliases)}{alias_sfx}",)
        pool: list[str] = []
        for t in (*src.tags, *(t for d in donors for t in d.tags)):
            if t not in pool:
                pool.append(t)
        ntags = min(len(pool), rng.randint(3, 6))
        tags = [src.tags[0]] + rng.sample([t for t in pool if t != src.tags[0]], max(0, ntags - 1))
        if where and pat in ("branch", "city", "city_suffix") and rng.random() < 0.5:
            city = next((c for c in CITIES if where.startswith(c)), None)
            if city and city not in tags:
                tags.append(city)
        items.append(Item(
            id=f"syn-{j:07d}",
            name=name,
            type=src.type,
            category=src.category,
            description=_description(rng, src, donors, where if pat == "branch" else None),
            aliases=aliases,
            tags=tuple(tags),
            actions=src.actions,
            popularity=max(1, src.popularity - rng.randint(0, 2)),
            status=src.status,  # a branch of a discontinued service is discontinued too
        ))
        sources.append(si)
        donor_idx.append(didx)
    return items, sources, donor_idx


def check_catalog(items: Sequence[Item], taxonomy: Path = DEFAULT_TAXONOMY) -> list[str]:
    """Problems of a generated catalog (empty → valid): the catalog rules plus unique ids and names."""
    tax = set(load_taxonomy(taxonomy))
    probs: list[str] = []
    ids: set[str] = set()
    names: set[str] = set()
    for it in items:
        probs.extend(f"{it.id}: {p}" for p in item_problems(it.to_dict(), tax))
        if it.id in ids:
            probs.append(f"{it.id}: duplicate id")
        key = normalize(it.name)
        if key in names:
            probs.append(f"{it.id}: duplicate name {it.name!r}")
        ids.add(it.id)
        names.add(key)
    return probs


# ----------------------------------------------------------------------------------------- query mix

def multicpr_files(shared: Path = DEFAULT_SHARED) -> list[Path]:
    return sorted((shared / "queries").glob("multicpr_*.tsv"))


def load_multicpr(shared: Path = DEFAULT_SHARED) -> tuple[list[str], str]:
    """Real query texts (deduplicated, file order) and a status line saying where they came from."""
    files = multicpr_files(shared)
    if not files:
        return [], f"ABSENT: no {shared}/queries/multicpr_*.tsv — the mix falls back on the dev queries"
    out: list[str] = []
    seen: set[str] = set()
    for f in files:
        with open(f, encoding="utf-8") as fh:
            for line in fh:
                q = line.rstrip("\n").split("\t", 1)[-1].strip()
                if q and q not in seen:
                    seen.add(q)
                    out.append(q)
    return out, f"{len(out):,} distinct queries from {', '.join(p.name for p in files)}"


def load_dev_queries(path: Path = DEFAULT_DEV) -> list[str]:
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                q = json.loads(line).get("query")
                if isinstance(q, str) and q.strip():
                    out.append(q)
    return out


def _valid(q: str, max_chars: int = 64) -> bool:
    norm = normalize(q)
    return bool(norm) and len(norm) <= max_chars and len(q) <= 1024


def query_mix(
    items: Sequence[Item],
    n: int,
    seed: int = DEFAULT_SEED,
    shared: Path = DEFAULT_SHARED,
    dev_path: Path = DEFAULT_DEV,
    shares: dict[str, float] | None = None,
    exclude: set[str] | None = None,
    n_base: int = 1648,
) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """``n`` (source, query) pairs in a seeded random order, plus a description of the mix.

    Within a source, queries are drawn without replacement until the source runs out, then it cycles
    (the dev set has 436 queries). ``exclude`` drops queries (e.g. those used to warm up).
    """
    rng = random.Random(seed)
    shares = dict(shares or MIX_SHARES)
    real, status = load_multicpr(shared)
    exclude = exclude or set()
    pools: dict[str, list[str]] = {}
    pools["multicpr"] = [q for q in real if _valid(q) and q not in exclude]
    pools["dev"] = [q for q in load_dev_queries(dev_path) if _valid(q) and q not in exclude]
    syn = [it.name for it in items[n_base:]]
    orig = [it.name for it in items[:n_base]]
    rng.shuffle(syn)
    rng.shuffle(orig)
    names = []
    for i in range(max(len(syn), len(orig))):  # 3 synthetic : 1 original, while both last
        if i < len(syn):
            names.append(syn[i])
        if i % 3 == 0 and i // 3 < len(orig):
            names.append(orig[i // 3])
        if len(names) > 4 * n:
            break
    if not syn:
        names = orig
    pools["name"] = [q for q in names if _valid(q) and q not in exclude]
    if not pools["multicpr"]:
        shares["dev"] = shares.get("dev", 0) + shares.pop("multicpr", 0)
    for k in ("multicpr", "dev"):
        rng.shuffle(pools.get(k, []))
    counts = {k: int(round(n * v)) for k, v in shares.items() if pools.get(k)}
    counts[max(counts, key=counts.__getitem__)] += n - sum(counts.values())
    out: list[tuple[str, str]] = []
    for k, c in counts.items():
        pool = pools[k]
        out.extend((k, pool[i % len(pool)]) for i in range(c))
    rng.shuffle(out)
    info = {"multicpr": status, "shares": {k: round(c / max(n, 1), 3) for k, c in counts.items()},
            "distinct": {k: min(c, len(pools[k])) for k, c in counts.items()}, "n": n, "seed": seed}
    return out, info


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", default="10k", help="catalog size: 10k, 100k, 1m or a number")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--out", help="write the catalog as JSONL here")
    ap.add_argument("--no-check", action="store_true", help="skip validating every item")
    ap.add_argument("--show", type=int, default=10, help="print this many synthetic items")
    args = ap.parse_args(argv)
    n = parse_size(args.n)
    items, _, _ = make_catalog(n, args.seed)
    if not args.no_check:
        probs = check_catalog(items)
        if probs:
            print(f"{len(probs)} problem(s):", *probs[:20], sep="\n  ", file=sys.stderr)
            return 1
        print(f"{len(items):,} items, all valid (catalog rules, unique ids and names)", file=sys.stderr)
    for it in items[1648:1648 + args.show]:
        print(f"  {it.id}  {it.name}  [{it.category}/{it.type}]  aliases={list(it.aliases)} tags={list(it.tags)}\n"
              f"      {it.description}", file=sys.stderr)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as fh:
            for it in items:
                fh.write(json.dumps(it.to_dict(), ensure_ascii=False) + "\n")
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

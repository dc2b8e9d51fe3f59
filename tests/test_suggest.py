"""Suggest as you type: each matching kind, the ranking prior, bad input (50-item index); top_cards against a
straightforward reference on a synthetic catalog (typed prefixes and Hypothesis)."""

import pytest
from conftest import settings_for
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from search.api import create_app
from search.errors import InvalidQueryError


def names(s, q, k=8):
    return [x.get("name") or x.get("text") for x in s.suggest(q, k)["suggestions"]]


@pytest.mark.parametrize(
    ("q", "target", "matched"),
    [("肯", "肯德基", "name"), ("肯德", "肯德基", "name"),  # hanzi prefix
     ("kend", "肯德基", "pinyin"), ("kendeji", "肯德基", "pinyin"),  # full pinyin prefix
     ("kdj", "肯德基", "initials"), ("mdl", "麦当劳", "initials"),  # initials
     ("麥當", "麦当劳", "name"),  # traditional input
     ("肯d", "肯德基", "pinyin"), ("肯dj", "肯德基", "initials"), ("xing巴克", "星巴克", "pinyin"), ("xingba", "星巴克", "pinyin"),  # mixed IME input
     ("sta", "星巴克", "alias")],
)
def test_matching_kinds(searcher50, q, target, matched):
    cards = [x for x in searcher50.suggest(q, 8)["suggestions"] if x["type"] == "card"]
    hit = [c for c in cards if c["name"] == target]
    assert hit, (q, cards)
    assert hit[0]["matched"] == matched
    assert hit[0]["actions"] and hit[0]["id"] and hit[0]["category"]


def test_query_completions_come_from_training_queries_and_tags(searcher50):
    sug = searcher50.suggest("睡不", 8)["suggestions"]
    texts = [x["text"] for x in sug if x["type"] == "query"]
    assert texts and all(t.startswith("睡不") for t in texts)
    known = set(searcher50.parts.completions.texts)
    assert set(texts) <= known


def test_ranking_prior_name_before_alias_before_pinyin(searcher50):
    from search.lexicon import Lexicon
    from search.suggest import key_priors, top_cards, typed_forms

    lex = Lexicon.build(["ab", "abc", "x", "阿布"], [[], [], ["abx"], []])
    prior = key_priors(lex, [3, 3, 3, 3])
    got = top_cards(lex, prior, typed_forms("ab"), 4)
    # names first (shorter first), then the alias, then pinyin ("abu" of 阿布)
    assert got == [(0, "name"), (1, "name"), (2, "alias"), (3, "pinyin")]
    # popularity breaks equal length; equal everything keeps catalog order (stable)
    prior2 = key_priors(lex, [1, 5, 3, 3])
    assert top_cards(lex, prior2, typed_forms("ab"), 2)[0] == (1, "name")
    assert top_cards(lex, key_priors(lex, [3] * 4), typed_forms("ab"), 4) == got


def test_no_match_is_empty_not_error(searcher50):
    assert searcher50.suggest("zzzzqqqq", 8)["suggestions"] == []


@pytest.mark.parametrize(("q", "k"), [("", 8), ("   ", 8), ("x" * 65, 8), ("kfc", 0), ("kfc", 21), ("kfc", "3")])
def test_bad_input(searcher50, q, k):
    with pytest.raises(InvalidQueryError):
        searcher50.suggest(q, k)


def test_http_suggest(searcher50):
    c = TestClient(create_app(settings_for(), searcher50))
    r = c.get("/suggest", params={"q": "kdj", "k": 3})
    assert r.status_code == 200 and r.json()["suggestions"][0]["name"] == "肯德基"
    assert len(r.json()["suggestions"]) <= 3
    for params in ({"q": ""}, {"q": "x" * 100}, {"q": "k", "k": 0}, {"q": "k", "k": 21}, {"q": "k", "k": "a"}):
        r = c.get("/suggest", params=params)
        assert r.status_code == 422 and r.json()["error"]["field"] in ("q", "k")
    assert c.get("/suggest", params={"q": "zzzzqqqq"}).json()["suggestions"] == []


# -- top_cards against a straightforward reference on a synthetic catalog ---------------------------------
#
# The catalog is made so that every path of top_cards has work to do: hanzi sharing initials (肯 看 卡 all
# k), mixed-input ranges over the 500 keys the mixed path looks at (many names start k… d…), multi-hanzi
# heads, hanzi aliases (their initials keys are matched against the *name*), Latin and digit names,
# traditional characters, names with no compact form, duplicate names.

_BY_INITIAL = {"k": "肯看卡开可快口科", "d": "德大地东达店电点", "j": "基记家金京机酒局",
               "b": "巴百北宝白", "s": "三上山生水书", "x": "星小新西学"}
_POOL = "".join(_BY_INITIAL.values())


def _synthetic_catalog(n: int = 3000, seed: int = 7) -> tuple[list[str], list[list[str]], list[int]]:
    import random

    rng = random.Random(seed)
    names, aliases = [], []
    for _ in range(n):
        r = rng.random()
        if r < 0.4:  # k… d…: fills the kd initials range far past 500 keys
            name = rng.choice(_BY_INITIAL["k"]) + rng.choice(_BY_INITIAL["d"]) + "".join(
                rng.choice(_POOL) for _ in range(rng.randint(0, 3)))
        elif r < 0.85:
            name = "".join(rng.choice(_POOL) for _ in range(rng.randint(1, 5)))
        elif r < 0.9:
            name = rng.choice(["kfc", "kd", "qq", "12306", "k歌", "3d打印", "ktv"]) + rng.choice(["", *_POOL])
        elif r < 0.93:
            name = rng.choice(["麥當勞", "開心", "東京", "電影"]) + rng.choice(["", *_POOL])
        elif r < 0.95:
            name = rng.choice(["!!", "（）", "·"])  # no compact form: no name key
        else:
            name = names[rng.randrange(len(names))] if names else "肯德基"  # a duplicate name
        if rng.random() < 0.05:
            name += "(西湖店)"
        al = [] if rng.random() < 0.7 else ["".join(rng.choice(_POOL) for _ in range(rng.randint(1, 4)))
                                            for _ in range(rng.randint(1, 2))]
        if rng.random() < 0.02:
            al.append(name)  # an alias equal to the name
        names.append(name)
        aliases.append(al)
    popularity = [rng.randint(1, 5) for _ in range(n)]
    return names, aliases, popularity


def _reference_rows(names, aliases):
    """(key, item, kind) for every key of every item, sorted by key, then kind, then item."""
    from search.lexicon import item_keys

    return sorted(((key, i, kind) for i, (n, al) in enumerate(zip(names, aliases, strict=True))
                   for key, kind in item_keys(n, al)), key=lambda r: (r[0], r[2], r[1]))


def _reference_cards(rows, names, popularity, q, k):
    """top_cards spelled out: a scan of the plain row list for each typed form and for the mixed input."""
    from search.lexicon import KIND_NAME
    from search.normalize import compact
    from search.suggest import MATCHED, mixed_tail, typed_forms
    from search.tokenize import pinyin_keys

    def prior(r):  # kind, then length minus popularity, then popularity, then item
        key, item, kind = rows[r]
        return (kind, min(len(key), 999) - popularity[item], -popularity[item], item)

    cands: set[int] = set()
    for form, kinds in typed_forms(q):
        match = [r for r, (key, _, kind) in enumerate(rows) if key.startswith(form) and kind in kinds]
        cands |= set(sorted(match, key=lambda r: (prior(r), r))[: 4 * k])  # the 4k best of each form
    mixed = mixed_tail(q)
    if mixed is not None:
        head, letters = mixed
        start = pinyin_keys(head)[1] + letters
        looked_at = [r for r, (key, _, _) in enumerate(rows) if key.startswith(start)][:500]
        cands |= {r for r in looked_at if rows[r][2] >= 4 and compact(names[rows[r][1]]).startswith(head)}
    out, seen = [], set()
    for r in sorted(cands, key=lambda r: (prior(r), r)):
        _, item, kind = rows[r]
        if item not in seen:
            seen.add(item)
            out.append((item, MATCHED[KIND_NAME[kind]]))
    return out[:k]


@pytest.fixture(scope="module")
def synthetic():
    from search.lexicon import Lexicon
    from search.normalize import compact
    from search.suggest import key_priors

    names, aliases, popularity = _synthetic_catalog()
    lex = Lexicon.build(names, aliases)
    rows = _reference_rows(names, aliases)
    return names, rows, popularity, lex, key_priors(lex, popularity), [compact(n) for n in names]


def _typed_prefixes(names, every=7):
    from eval.keystrokes import typing_states
    from search.normalize import compact

    out = set()
    for name in names[::every]:
        out.update(compact(t) for _, t in typing_states(name))
    return sorted(p for p in out if p)


def _cards(synthetic, q, k):
    from search.suggest import mixed_tail, top_cards, typed_forms

    _, _, _, lex, prior, cnames = synthetic
    return top_cards(lex, prior, typed_forms(q), k, mixed_tail(q), cnames)


def test_synthetic_catalog_exercises_every_path(synthetic):
    from search.suggest import mixed_tail

    names, rows, _, lex, _, _ = synthetic
    assert [r[0] for r in rows] == lex.keys  # the reference's rows are the lexicon's, in its order
    assert lex.count_prefix("kd") > 500  # the mixed path's 500-key window cuts a range
    prefixes = _typed_prefixes(names)
    mixed = [p for p in prefixes if mixed_tail(p)]
    assert len(mixed) > 200 and any(len(mixed_tail(p)[0]) >= 2 for p in mixed)


def test_top_cards_matches_reference_on_typed_prefixes(synthetic):
    names, rows, popularity, *_ = synthetic
    prefixes = _typed_prefixes(names, every=41)
    assert len(prefixes) > 200
    for q in prefixes:
        for k in (3, 8):
            assert _cards(synthetic, q, k) == _reference_cards(rows, names, popularity, q, k), (q, k)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_top_cards_matches_reference_hypothesis(synthetic, data):
    from search.normalize import compact

    names, rows, popularity, *_ = synthetic
    k = data.draw(st.integers(1, 20), label="k")
    if data.draw(st.booleans(), label="from a name"):
        # a name cut after some characters, then the start of the next one's pinyin or initials (肯d, 肯德j)
        from search.tokenize import pinyin_keys

        name = compact(names[data.draw(st.integers(0, len(names) - 1), label="item")])
        cut = data.draw(st.integers(0, len(name)), label="cut")
        full, ini = pinyin_keys(name[cut:]) if name[cut:] else ("", "")
        tail = data.draw(st.sampled_from([full, ini]), label="tail")
        q = name[:cut] + tail[: data.draw(st.integers(0, len(tail)), label="tail length")]
    else:
        q = data.draw(st.text(alphabet=_POOL + "kdjbsxaeiouhnglt0123", min_size=1, max_size=6), label="text")
    q = compact(q)
    if q:
        assert _cards(synthetic, q, k) == _reference_cards(rows, names, popularity, q, k)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(item=st.integers(0, 2999), cut=st.integers(0, 6), other=st.text(alphabet=_POOL + "kd", max_size=3))
def test_names_start_with_is_the_name_prefix_test(synthetic, item, cut, other):
    import numpy as np

    names, _, _, lex, _, cnames = synthetic
    items = np.arange(len(names))
    for prefix in {cnames[item][:cut] + other, cnames[item][:cut]} - {""}:
        want = np.array([n.startswith(prefix) for n in cnames])
        assert (lex.names_start_with(items, prefix) == want).all(), prefix


def test_the_needs_pinyin_readings_are_stored_with_the_index(index50, searcher50):
    """The completions' readings (the fallback for pinyin needs no tag spells) are computed by the build and read
    back from need_readings.json, not recomputed by every server's warm-up; an index without the file computes them."""
    import json
    import shutil

    from search.searcher import Searcher

    s = Searcher.load(index50, settings_for())
    stored = s.parts.completions.stored_readings
    assert stored is not None and stored.table == searcher50.parts.completions.readings().table
    assert stored.table["jiachang"] == "家常" and s.analyze("jiachang").reading == "家常"
    manifest = json.loads((index50 / "manifest.json").read_text("utf-8"))
    assert "need_readings.json" in json.dumps(manifest)
    old = index50.parent / "without_readings"
    shutil.copytree(index50, old)
    (old / "need_readings.json").unlink()
    m = json.loads((old / "manifest.json").read_text("utf-8"))
    m["files"] = {k: v for k, v in m["files"].items() if k != "need_readings.json"} if isinstance(m["files"], dict) \
        else [f for f in m["files"] if "need_readings.json" not in json.dumps(f)]
    (old / "manifest.json").write_text(json.dumps(m, ensure_ascii=False), "utf-8")
    s2 = Searcher.load(old, settings_for())
    assert s2.parts.completions.stored_readings is None and s2.analyze("jiachang").reading == "家常"

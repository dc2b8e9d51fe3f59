"""Integration on the 50-item index: precise direct hits, fuzzy recommendations, mixed, limits."""

import numpy as np
import pytest
from conftest import settings_for

from search.config import Thresholds
from search.errors import InvalidQueryError
from search.fuzzy import FuzzyRecommender
from search.matching import PREFIX_REASON
from search.searcher import Searcher


@pytest.mark.parametrize(
    ("q", "name"),
    [("肯德基", "肯德基"), ("kfc", "肯德基"), ("KFC", "肯德基"), ("kdj", "肯德基"), ("kendeji", "肯德基"),
     ("肯得基", "肯德基"), ("麥當勞", "麦当劳"), ("星巴克会员", "星巴克"), ("12306", "12306"), ("交电费", "交电费")],
)
def test_precise_direct_hit(searcher50, q, name):
    r = searcher50.search(q, 5)
    assert r.intent.label == "precise", (q, r.intent)
    assert r.results[0].name == name
    assert r.direct_hit is not None and r.direct_hit.name == name
    assert r.direct_hit.actions, "a direct hit carries the item's actions"


@pytest.mark.parametrize("q", ["睡不着", "周末带娃去哪", "头疼怎么办"])
def test_fuzzy_recommendations_are_organised_by_facets(searcher50, q):
    s = searcher50.settings
    r = searcher50.search(q, 10)
    assert r.intent.label == "fuzzy"
    assert r.direct_hit is None
    assert len(r.results) >= s.min_fuzzy_results
    cats = [h.category for h in r.results]
    assert sorted(i for ids in r.groups.values() for i in ids) == sorted(h.id for h in r.results)
    facets = [c for c, _ in searcher50.predict_categories(q, s.max_facets)]
    assert list(r.groups)[0] == facets[0]  # the main facet's group comes first
    # the most likely facet's best item leads the page, unless an unsure facet's one seat (a probe, placed by its
    # item's relevance) holds a more relevant item
    p = dict(searcher50.predict_categories(q, 1000))
    first_main = cats.index(facets[0])
    assert all(p[c] < s.facet_single_seat_below for c in cats[:first_main]), (cats, p)
    if len(r.results) > s.min_fuzzy_results:  # not filled up from outside the facets
        assert set(cats) <= set(facets)
    # seats follow the facets' probabilities: the main facet has the most, unless the catalog has no more of it
    in_catalog = sum(it.category == facets[0] for it in searcher50.table.items)
    assert cats.count(facets[0]) == max(cats.count(c) for c in cats) or cats.count(facets[0]) == in_catalog
    assert all(h.reason for h in r.results)


@pytest.mark.parametrize(("q", "hanzi"), [("jiachangcaipu", "家常菜谱"), ("zhumianbaizaoyin", "助眠白噪音")])
def test_a_need_typed_in_pinyin_reads_as_its_hanzi(searcher50, q, hanzi):
    a = searcher50.analyze(q)
    assert a.reading == hanzi and a.need_text == hanzi
    assert a.need_features == searcher50.analyze(hanzi).text_features
    t = Thresholds(1.0, 1.0)  # both answered fuzzy: the need side reads the same text, so the pages agree
    assert ([h.id for h in searcher50.search(q, 10, thresholds=t).results]
            == [h.id for h in searcher50.search(hanzi, 10, thresholds=t).results])


@pytest.mark.parametrize(("q", "phrase"), [("shuibuzhao", "睡不着"), ("shuibuzhaozenmeban", "睡不着怎么办")])
def test_a_need_typed_in_pinyin_that_names_nothing_reads_as_a_tag(searcher50, q, phrase):
    """No name spells shuibuzhao; the tag 睡不着 does, so the need side reads the hanzi and the page is its page."""
    a = searcher50.analyze(q)
    assert not a.match.strong
    assert a.reading == phrase and a.need_text == phrase
    assert searcher50.search(q).to_dict()["read_as"] == phrase and searcher50.search(phrase).read_as is None
    t = Thresholds(1.0, 1.0)
    page = [h.id for h in searcher50.search(q, 10, thresholds=t).results]
    assert page == [h.id for h in searcher50.search(phrase, 10, thresholds=t).results]
    assert page[:1] != [h.id for h in searcher50.search("xyzxyz", 10, thresholds=t).results][:1]


@pytest.mark.parametrize(("q", "phrase"), [("kuaidi", "快递"), ("shebao", "社保"), ("weizhang", "违章")])
def test_a_need_in_pinyin_that_begins_names_still_reads_as_a_tag(searcher50, q, phrase):
    """kuaidi begins the pinyin of 快递查询 and 快递单号查询: prefixes of names, however many, name nothing, so the
    need side reads the tag (or, for weizhang, the category 违章) the letters spell, and the page is that need's."""
    a = searcher50.analyze(q)
    assert a.match.boosts and all(why == PREFIX_REASON for _, why in a.match.boosts.values())
    assert a.reading == phrase and a.need_text == phrase
    t = Thresholds(1.0, 1.0)
    top = searcher50.search(q, 3, thresholds=t).results
    assert top and all(phrase in h.name or phrase in searcher50.item(h.id).tags or h.category == phrase for h in top[:1])


@pytest.mark.parametrize("q", ["jccp", "jiachang", "kendeji", "家常菜谱", "xyz"])
def test_only_a_whole_pinyin_key_of_one_name_is_read_as_hanzi(searcher50, q):
    """Initials and prefixes are too loose to stand for a text; a brand's pinyin is read as well, but a brand goes
    to its direct hit, and its page is the brand's alternatives; hanzi and unknown letters have no reading. jiachang
    begins 家常菜谱 and is not read as it; it spells the training need 家常, and is read as that need."""
    a = searcher50.analyze(q)
    assert a.reading == {"kendeji": "肯德基", "jiachang": "家常"}.get(q)
    assert a.need_text == (a.reading or a.normalized)


def test_mixed_route_puts_direct_card_first(searcher50):
    t = Thresholds(1.0, 0.0)  # everything routes mixed
    r = searcher50.search("星巴克", 6, thresholds=t)
    assert r.intent.label == "mixed"
    assert r.direct_hit is not None and r.results[0].id == r.direct_hit.id
    assert len(r.results) <= 6
    assert len({h.id for h in r.results}) == len(r.results)


def test_route_follows_thresholds(searcher50):
    p = searcher50.analyze("肯德基").p_precise
    assert searcher50.search("肯德基", thresholds=Thresholds(min(1.0, p + 1e-9), 0.0)).intent.label in ("mixed", "precise")
    assert searcher50.search("肯德基", thresholds=Thresholds(1.0, 1.0)).intent.label == "fuzzy"


@pytest.mark.parametrize("q", ["", "   ", "\u200b\u200b", "👍👍", "x" * 65, "y" * 5000])
def test_bad_queries_rejected(searcher50, q):
    with pytest.raises(InvalidQueryError):
        searcher50.search(q)


@pytest.mark.parametrize("k", [0, -1, 51, 10**9, "3", 2.5, True])
def test_bad_k_rejected(searcher50, k):
    with pytest.raises(InvalidQueryError) as e:
        searcher50.search("肯德基", k)
    assert e.value.field == "k"


def test_non_string_query_rejected(searcher50):
    with pytest.raises(InvalidQueryError):
        searcher50.search(123)
    with pytest.raises(InvalidQueryError):
        searcher50.search(b"kfc")


def test_to_dict_shape(searcher50):
    d = searcher50.search("肯德基", 3).to_dict()
    assert set(d) == {"query", "normalized", "tokens", "intent", "direct_hit", "results", "groups", "not_found",
                      "did_you_mean", "correction", "read_as", "took_ms"}
    assert set(d["intent"]) == {"label", "p_precise", "thresholds"}
    assert set(d["results"][0]) == {"id", "name", "type", "category", "score", "actions", "reason"}


def test_popularity_weight_moves_popular_services_up(searcher50):
    s = searcher50
    pop = {it.id: it.popularity for it in s.items}
    a = s.analyze("周末带娃去哪", k=10)

    def recommend(weight):
        settings = s.settings.replace(popularity_weight=weight)
        return [h.id for h in FuzzyRecommender(settings, s.table, s.backend, s.query_encoder).recommend(a, 10).hits]

    plain = recommend(0.0)
    heavy = recommend(10.0)  # popularity dominates everything else
    assert len(plain) == len(heavy) > 3
    assert pop[heavy[0]] == max(pop[i] for i in heavy)
    assert [pop[i] for i in heavy] != [pop[i] for i in plain]
    assert sum(pop[i] for i in heavy) >= sum(pop[i] for i in plain)


def test_stages_report_their_own_time(searcher50):
    from search.trace import STAGES, Trace

    for q, expected in (("肯德基", {"normalize", "tokenize", "match", "bm25", "intent", "precise", "page"}),
                        ("睡不着", {"normalize", "tokenize", "match", "bm25", "intent", "encode", "dense", "rerank", "page"})):
        t = Trace()
        r = searcher50.search(q, 5, trace=t)
        assert expected <= set(t.seconds) <= set(STAGES), (q, r.intent.label, t.seconds)
        assert all(v >= 0 for v in t.seconds.values()) and sum(t.seconds.values()) <= r.took_ms / 1000 + 1e-3


def test_compact_names_are_remembered_per_item_object(searcher50):
    from dataclasses import replace

    from search import items as items_mod
    from search.normalize import compact

    table = items_mod.ItemTable(searcher50.table.items)  # a table of its own: the shared one stays untouched
    d = next(i for i, it in enumerate(table.items) if it.aliases)
    it = table.items[d]
    want = tuple((len(n), compact(n)) for n in (it.name, *it.aliases))
    assert table.compact_names_of(d) == want
    assert table.compact_names_of(d) is table.compact_names_of(d)  # the second answer is the remembered one
    renamed = replace(it, name="Ｋ Ｆ Ｃ 新名", aliases=())
    old_items = table.items
    try:
        table.items = [*old_items[:d], renamed, *old_items[d + 1:]]
        assert table.compact_names_of(d) == ((len(renamed.name), "kfc新名"),)  # an item replaced in place is new
    finally:
        table.items = old_items
    assert table.compact_names_of(d) == want
    saved = items_mod.NAMES_MEMO
    try:
        items_mod.NAMES_MEMO = 3
        for i in range(10):
            table.compact_names_of(i)
            assert table.compact_names_of(i) == tuple((len(n), compact(n)) for n in (table.items[i].name, *table.items[i].aliases))
            assert len(table._names_memo) <= 3  # bounded
    finally:
        items_mod.NAMES_MEMO = saved


def test_lexicon_names_of_equals_computed_compact_names(searcher50):
    from search.normalize import compact

    lex, items = searcher50.analyzer.lexicon, searcher50.table.items
    docs = np.arange(len(items))
    for lo, hi in ((1, 100), (2, 4), (3, 3)):
        got = lex.names_of(docs, lo, hi)
        for d, it in enumerate(items):
            want = list(dict.fromkeys(c for c in (compact(n) for n in (it.name, *it.aliases)) if c and lo <= len(c) <= hi))
            assert sorted(got.get(d, [])) == sorted(want), (d, it.name, it.aliases)
            if want and lo <= len(compact(it.name)) <= hi:
                assert got[d][0] == compact(it.name)  # the name comes first
    assert lex.names_of(np.array([len(items) + 5, -1]), 1, 100) == {}  # unknown documents have none


def test_lexicon_readings_equal_computed_readings(searcher50):
    from search.matching import name_readings
    from search.normalize import compact

    lex, items = searcher50.analyzer.lexicon, searcher50.table.items
    got = lex.readings_of(range(len(items)))
    for d, it in enumerate(items):
        names = [c for c in (compact(n) for n in (it.name, *it.aliases)) if c]
        assert set(got[d][0]) == set(names) and got[d][0][0] == compact(it.name)
        assert set(got[d][1]) == set(name_readings(names)), (it.name, it.aliases)
    assert lex.readings_of([len(items) + 5, -1]) == {}


def test_near_name_check_reads_a_replaced_item_afresh(searcher50):
    from dataclasses import replace

    from search.items import ItemTable

    an = searcher50.analyzer
    table = ItemTable(searcher50.table.items)
    d = next(i for i, it in enumerate(table.items) if len(it.name) >= 4)
    old_table = an.table
    try:
        an.table = table
        before = dict(an._names_of(np.array([d]), 5))
        table.apply([d], [replace(table.items[d], name="全新名字测试", aliases=())])
        assert dict(an._names_of(np.array([d]), 6)) == {d: ["全新名字测试"]}
        assert before.get(d) != ["全新名字测试"]
    finally:
        an.table = old_table


def test_per_item_arrays_follow_the_table(searcher50):
    from dataclasses import replace

    from search.items import ItemTable

    table = ItemTable(searcher50.table.items)
    labels = {c: i for i, c in enumerate(sorted({it.category for it in table.items}))}
    codes, pop = table.per_item(labels)
    assert codes.tolist() == [labels[it.category] for it in table.items]
    assert pop.tolist() == [float(it.popularity) for it in table.items]
    assert table.per_item(labels)[0] is codes  # kept
    other = {table.items[0].category: 0}
    assert table.per_item(other)[0].tolist() == [0 if it.category == table.items[0].category else -1 for it in table.items]
    new = replace(table.items[0], id="added-item", category="未知类别", popularity=5)
    table.apply([len(table.items)], [new])
    codes2, pop2 = table.per_item(labels)
    assert len(codes2) == len(table.items) and codes2[-1] == -1 and pop2[-1] == 5.0


def test_alternatives_scores_never_rise_and_respect_the_ceiling(searcher50):
    fz = searcher50.fuzzy
    for d in range(0, len(searcher50.items), 7):
        free = [h.score for h in fz.similar(d, 8, set())]
        capped = [h.score for h in fz.similar(d, 8, set(), ceiling=0.3)]
        assert free == sorted(free, reverse=True) and capped == sorted(capped, reverse=True)
        assert all(c <= 0.3 for c in capped)
        assert capped == [min(f, 0.3) for f in free]


def test_each_facet_adds_its_own_popular_items(searcher50):
    """The facets' popular items join the dense candidates, up to ``facet_extra_candidates`` of each facet: a surer
    facet with many items cannot take the places of the others."""
    from collections import Counter

    s = searcher50
    three = [c for c, n in Counter(it.category for it in s.items).most_common() if n >= 2][:3]
    assert len(three) == 3
    asked: list[list[int]] = []

    class OneNeighbour:  # the dense search finds a single item, so the candidates are mostly the facets' extras
        name = "embedded"

        def __init__(self, backend):
            self.backend = backend

        def dense(self, vector, k):
            ids, sims = self.backend.dense(vector, k)
            return ids[:1], sims[:1]

        def vectors(self, docs):
            asked.append(list(docs))
            return self.backend.vectors(docs)

    fz = FuzzyRecommender(s.settings.replace(facet_extra_candidates=1, tag_extra_candidates=0), s.table,
                          OneNeighbour(s.backend), s.query_encoder, s.parts.categories)
    fz.facets_of = lambda p: [(three[0], 0.6), (three[1], 0.3), (three[2], 0.1)]
    fz.recommend(s.analyze("周末带娃去哪", k=10), 10)
    extras = [s.items[d].category for d in asked[0]]
    assert sorted(extras) == sorted(three)  # one of each facet


def test_items_tagged_with_the_need_join_the_candidates(searcher50):
    """An item carrying a tag the need states is a candidate however far its vector lies (``tag_extra_candidates``);
    with the setting at 0 only the dense search and the facets bring candidates."""
    s = searcher50
    tagged = next(d for d, it in enumerate(s.items) if any(len(t) >= 3 for t in it.tags))
    tag = next(t for t in s.items[tagged].tags if len(t) >= 3)
    carriers = {d for d, it in enumerate(s.items) if tag in it.tags}
    asked: list[list[int]] = []

    class FarAway:  # the dense search finds one item that carries no such tag
        name = "embedded"

        def __init__(self, backend):
            self.backend = backend

        def dense(self, vector, k):
            ids, sims = self.backend.dense(vector, len(s.items))
            keep = [j for j, d in enumerate(ids.tolist()) if d not in carriers][:1]
            return ids[keep], sims[keep]

        def vectors(self, docs):
            asked.append(list(docs))
            return self.backend.vectors(docs)

    for n, want in ((10, carriers), (0, set())):
        asked.clear()
        fz = FuzzyRecommender(s.settings.replace(facet_extra_candidates=0, tag_extra_candidates=n), s.table,
                              FarAway(s.backend), s.query_encoder, s.parts.categories)
        hits = fz.recommend(s.analyze(f"想找{tag}", k=10), 10).hits
        assert (set(asked[0]) if asked else set()) & carriers == want
        assert ({h.id for h in hits} & {s.items[d].id for d in carriers}) == {s.items[d].id for d in want}


@pytest.fixture(scope="module")
def with_discontinued(items50, train50, tmp_path_factory):
    """The 50-item catalog with 麦当劳 and 饿了么 discontinued, built, saved and loaded back."""
    from dataclasses import replace as dc_replace

    from conftest import settings_for

    gone = {"麦当劳", "饿了么"}
    items = [dc_replace(it, status="discontinued") if it.name in gone else it for it in items50]
    built = Searcher.build(items, train50, settings_for())
    path = tmp_path_factory.mktemp("discontinued") / "index"
    built.save(path)
    return gone, built, Searcher.load(path, settings_for())


def test_a_discontinued_service_is_found_by_name_but_never_recommended(searcher50, with_discontinued):
    from dataclasses import replace as dc_replace

    gone, built, loaded = with_discontinued
    # the same catalog without the status recommends both: for the need, and as 肯德基's alternatives
    assert gone <= {h.name for h in searcher50.search("饿了", 10).results}
    assert gone <= {h.name for h in searcher50.search("肯德基", 10).results}
    no_table = Searcher(loaded.settings, dc_replace(loaded.parts, alternatives=None), loaded.thresholds)
    for s in (built, loaded, no_table):  # the build's alternatives table, and a live search without it
        assert {s.table.items[d].name for d in s.table.discontinued} == gone
        for q in ("饿了", "想吃快餐", "肯德基", "必胜客", "外卖"):
            r = s.search(q, 10)
            assert not gone & {h.name for h in r.results}, (q, [h.name for h in r.results])
        fuzzy = s.search("饿了", 10)
        assert fuzzy.intent.label == "fuzzy" and len(fuzzy.results) >= 6
        for name in gone:  # typed by name: found, then active alternatives only
            r = s.search(name, 10)
            assert r.direct_hit is not None and r.direct_hit.name == name
            assert not (gone - {name}) & {h.name for h in r.results[1:]}


NEED_TRAIN = [("失眠睡不着", {"音乐": 2, "养生保健": 1}), ("晚上睡不好", {"养生保健": 2, "音乐": 1}),
              ("肚子饿了", {"外卖": 2, "餐饮店": 1}), ("想吃点东西", {"餐饮店": 2, "外卖": 2}),
              ("孩子发烧了", {"问诊挂号": 2, "医疗服务": 1})]


def test_the_nearest_judged_needs_are_stored_blended_and_shown(items50, train50, tmp_path):
    """The index keeps the judged training needs' vectors (``categories.NeedNeighbours``): a need near them takes
    δ of their categories, ``/explain`` lists them, and the index loads them back; δ 0 builds none."""
    from search.categories import NeedNeighbours

    s = Searcher.build(items50, train50, settings_for(), category_train=NEED_TRAIN)
    assert s.parts.categories.neighbours is not None and len(s.parts.categories.neighbours) == len(NEED_TRAIN)
    shown = s.explain("晚上失眠睡不着")["similar_needs"]
    assert len(shown) == 5 and shown[0]["need"] in {"失眠睡不着", "晚上睡不好"}
    assert [x["cosine"] for x in shown] == sorted((x["cosine"] for x in shown), reverse=True)
    s.save(tmp_path / "index")
    manifest = (tmp_path / "index" / "manifest.json").read_text(encoding="utf-8")
    assert NeedNeighbours.FILE in manifest
    back = Searcher.load(tmp_path / "index", settings_for())
    assert back.explain("晚上失眠睡不着")["similar_needs"] == shown
    a = back.analyzer.analyze("晚上失眠睡不着")
    with_needs = back._category_probs(a)
    without = Searcher.load(tmp_path / "index", settings_for(category_need_weight=0.0))
    assert without.explain("晚上失眠睡不着")["similar_needs"] is None
    p = without._category_probs(without.analyzer.analyze("晚上失眠睡不着"))
    assert not np.allclose(p, with_needs)  # δ 0.1 of the neighbours' 音乐 / 养生保健 moved the estimate
    i = s.parts.categories.index
    assert with_needs[i["音乐"]] + with_needs[i["养生保健"]] > p[i["音乐"]] + p[i["养生保健"]]
    none = Searcher.build(items50, train50, settings_for(category_need_weight=0.0), category_train=NEED_TRAIN)
    assert none.parts.categories.neighbours is None and none.parts.categories.known is not None

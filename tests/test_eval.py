"""eval/: metric wiring on a hand-computed case, TREC writers, converters, the runner on the 50-item index."""

import dataclasses
import json
import math

import pytest

from eval import metrics as M
from eval.data import category_qrels, read_trec_qrels, read_trec_run, write_trec_qrels, write_trec_run
from eval.external import iflytek_items, smp_examples
from eval.reports import compare_reports, evaluate, markdown
from eval.runs import PAGE_K, run_systems
from search.catalog import DevQuery
from search.types import Hit


def test_metric_wiring_hand_computed():
    qrels = {"q1": {"a": 2, "b": 1}, "q2": {"c": 2}}
    run = {"q1": [("b", 3.0), ("x", 2.0), ("a", 1.0)], "q2": [("y", 1.0), ("c", 0.5)]}
    got = M.ir_metrics(qrels, run, ["hit_rate@1", "mrr@10", "ndcg@10", "recall@50"])
    # Success@1: q1 yes (b relevant), q2 no → 0.5. MRR: (1 + 1/2) / 2 = 0.75.
    assert got["hit_rate@1"] == pytest.approx(0.5)
    assert got["mrr@10"] == pytest.approx(0.75)
    assert got["recall@50"] == pytest.approx(1.0)
    # nDCG (ranx: gain = grade, discount log2(rank+1)): q1 DCG = 1/1 + 2/log2(4) = 2; IDCG = 2 + 1/log2(3)
    import math

    q1 = 2 / (2 + 1 / math.log2(3))
    q2 = (2 / math.log2(3)) / 2
    assert got["ndcg@10"] == pytest.approx((q1 + q2) / 2)


def test_empty_answer_scores_zero():
    got = M.ir_metrics({"q1": {"a": 2}}, {"q1": []}, ["hit_rate@1"])
    assert got["hit_rate@1"] == 0.0


def test_routing_and_balanced_accuracy():
    r = M.routing({"1": "precise", "2": "precise", "3": "fuzzy", "4": "fuzzy"},
                  {"1": "precise", "2": "mixed", "3": "fuzzy", "4": "precise"})
    assert r["accuracy"] == 0.5 and r["confusion"]["precise"]["mixed"] == 1
    assert r["per_class"]["precise"]["precision"] == 0.5
    b = M.balanced_accuracy(["precise"] * 2 + ["fuzzy"] * 8, ["fuzzy"] * 10)
    assert b["balanced_accuracy"] == 0.5 and b["recall_fuzzy"] == 1.0


def test_trec_round_trip(tmp_path):
    run = {"q2": [("b", 2.0), ("a", 1.0)], "q1": [("c", 5.0)]}
    qrels = {"q1": {"c": 2, "d": 1}}
    write_trec_run(tmp_path / "run.txt", run, "sys")
    write_trec_qrels(tmp_path / "qrels.txt", qrels)
    assert (tmp_path / "run.txt").read_text().splitlines()[0] == "q1 Q0 c 1 5.000000 sys"
    assert read_trec_run(tmp_path / "run.txt") == run
    assert read_trec_qrels(tmp_path / "qrels.txt") == qrels


def test_iflytek_converter(tmp_path):
    (tmp_path / "a.json").write_text(
        json.dumps({"label": 1, "label_des": "外卖", "sentence": "一款  点外卖的应用，" * 30, "id": 7}, ensure_ascii=False) + "\n"
        + json.dumps({"label": 2, "label_des": "不存在", "sentence": "x" * 30, "id": 8}, ensure_ascii=False) + "\n",
        encoding="utf-8")
    items = iflytek_items(tmp_path, {"外卖"})
    assert len(items) == 1
    it = items[0]
    assert it.id == "iflytek-a-7" and it.name == "IFLYTEK-a-7" and it.category == "外卖"
    assert len(it.description) == 150 and "  " not in it.description


def test_smp_domains(tmp_path):
    p = tmp_path / "s.json"
    p.write_text(json.dumps([{"text": "打开淘宝", "domain": "app"}, {"text": "红烧肉怎么做", "domain": "cookbook"},
                             {"text": "今天天气", "domain": "weather"}], ensure_ascii=False), encoding="utf-8")
    assert smp_examples(p) == [("打开淘宝", "precise", "app"), ("红烧肉怎么做", "fuzzy", "cookbook")]


def test_category_qrels(items50):
    q = DevQuery("f1", "饿了", "fuzzy", {}, {"外卖": 2, "餐饮店": 1})
    qr = category_qrels([q], items50)["f1"]
    assert qr and all(g == {"外卖": 2, "餐饮店": 1}[next(i.category for i in items50 if i.id == d)] for d, g in qr.items())


def test_evaluate_on_fixture_and_compare(searcher50, tmp_path):
    ids = {it.name: it.id for it in searcher50.items}
    queries = [DevQuery("p1", "kfc", "precise", {ids["肯德基"]: 2}, {}, "english"),
               DevQuery("p2", "麥當勞", "precise", {ids["麦当劳"]: 2}, {}, "traditional"),
               DevQuery("f1", "失眠了怎么办", "fuzzy", {ids["助眠白噪音"]: 2, ids["10分钟冥想"]: 2, ids["睡前故事"]: 1,
                                                    ids["简单心理"]: 1, ids["在线问诊"]: 1}, {"音乐": 2})]
    rep = evaluate(searcher50, queries, "items", tmp_path)
    assert rep["systems"]["oracle"]["hit_rate@1"] == 1.0
    assert set(rep["systems"]) == {"router", "bm25", "dense", "oracle"}
    assert (tmp_path / "run.router.txt").exists() and (tmp_path / "qrels.items.txt").exists()
    assert "Routing" in markdown(rep)
    iv = rep["need_intervals"]["category_precision@10"]  # one need: its interval is its own figure
    assert iv["n"] == 1 and iv["low"] == iv["mean"] == iv["high"] == rep["systems"]["router"]["category_precision@10"]
    assert "bootstrap interval" in markdown(rep)
    other = json.loads(json.dumps(rep))
    other["systems"]["router"]["mrr@10"] = 0.0
    assert "systems.router.mrr@10" in compare_reports(rep, other)


class DeeperPagesDiffer:
    """searcher50, except that a page longer than PAGE_K is in reverse order: a deeper page need not start with
    the page of ten (the recommender fetches more candidates for it)."""

    def __init__(self, searcher):
        self._s = searcher
        outer = self

        class Fuzzy:
            def recommend(self, a, k, *args, **kw):
                rec = searcher.fuzzy.recommend(a, k, *args, **kw)
                return dataclasses.replace(rec, hits=outer.shuffle(rec.hits, k))

        self.fuzzy = Fuzzy()

    @staticmethod
    def shuffle(hits, k):
        return list(reversed(hits)) if k > PAGE_K else list(hits)

    def __getattr__(self, name):
        return getattr(self._s, name)

    def answer(self, a, label, k, trace=None):
        page = self._s.answer(a, label, k, trace)
        return dataclasses.replace(page, results=self.shuffle(page.results, k))


def test_router_run_starts_with_the_served_page(searcher50):
    # the @10 figures are about the page a search for ten results serves, not the start of a deeper page
    qs = ["失眠了怎么办", "饿了", "周末去哪玩", "kfc", "想学英语", "附近修手机"]
    queries = [DevQuery(f"q{i}", q, "fuzzy", {}, {}) for i, q in enumerate(qs)]
    out = run_systems(DeeperPagesDiffer(searcher50), queries, depth=30)
    for d in queries:
        served = [h.id for h in searcher50.search(d.query, PAGE_K).results]
        run = [i for i, _ in out.runs["router"][d.qid]]
        assert run[: len(served)] == served
        assert len(run) == len(set(run)) and len(run) >= len(served)
        assert out.n_results[d.qid] == len(served)
        shown = [h.id for h in searcher50.fuzzy.recommend(searcher50.analyze(d.query, PAGE_K), PAGE_K).hits]
        assert [i for i, _ in out.runs["dense"][d.qid]][: len(shown)] == shown


def test_typing_states_count_pinyin_letters():
    from eval.keystrokes import typing_states

    assert typing_states("肯德基") == [(1, "k"), (2, "ke"), (3, "肯"), (4, "肯d"), (5, "肯德"), (6, "肯德j"), (7, "肯德基")]
    assert typing_states("kfc") == [(1, "k"), (2, "kf"), (3, "kfc")]


def test_keystrokes_on_fixture(searcher50):
    from eval.keystrokes import keystrokes

    ids = {it.name: it.id for it in searcher50.items}
    qs = [DevQuery("p1", "肯德基", "precise", {ids["肯德基"]: 2}, {}, "exact"),
          DevQuery("p2", "12306", "precise", {ids["12306"]: 2}, {}, "exact")]
    r = keystrokes(searcher50, qs)
    assert r["queries"] == 2 and r["found_share"] == 1.0
    assert 1 <= r["mean_keystrokes"] <= r["mean_full_length"] == (7 + 5) / 2


def test_expected_calibration_error_hand_computed():
    from eval.metrics import calibration

    c = calibration([0.1, 0.1, 0.9, 0.9], [False, True, True, True])
    # bin 1: mean p 0.1, half positive → gap 0.4 × weight 0.5; bin 9: mean p 0.9, all positive → gap 0.1 × 0.5
    assert c["ece"] == pytest.approx(0.25) and c["n"] == 4 and len(c["bins"]) == 2
    assert c["share_below_0.05_or_above_0.95"] == 0.0


def test_qrels_replace_the_judgments_and_condensed_lists(searcher50, tmp_path):
    from eval.data import with_qrels

    ids = {it.name: it.id for it in searcher50.items}
    queries = [DevQuery("p1", "kfc", "precise", {ids["肯德基"]: 2}, {}, "english"),
               DevQuery("f1", "失眠了怎么办", "fuzzy", {ids["助眠白噪音"]: 2}, {"音乐": 2})]
    judged = with_qrels(queries, {"p1": {ids["麦当劳"]: 2, ids["肯德基"]: 0}})
    assert judged[0].relevant == {ids["麦当劳"]: 2} and judged[0].nonrelevant == {ids["肯德基"]}
    assert judged[1].relevant == {}  # not in the qrels: no item judgments
    with pytest.raises(Exception, match="no query of this set"):
        with_qrels(queries, {"other": {"x": 1}})
    full = evaluate(searcher50, judged, "items", None, systems=("router",))
    condensed = evaluate(searcher50, judged, "items", None, systems=("router",), judged_only=True)
    # a name's judgment is complete (the named item; nothing else is wanted): its list is not condensed, so kfc's
    # page (肯德基 first) finds 麦当劳 lower down either way
    assert condensed["systems"]["router"]["hit_rate@1"] == full["systems"]["router"]["hit_rate@1"] == 0.0
    # a need's list is condensed: judged by the page's 3rd result (relevant) and its 1st (not), the 3rd comes second
    page = [h.id for h in searcher50.search("失眠了怎么办", 10).results]
    need = with_qrels(queries, {"f1": {page[2]: 2, page[0]: 0}})[1:]
    full = evaluate(searcher50, need, "items", None, systems=("router",))
    condensed = evaluate(searcher50, need, "items", None, systems=("router",), judged_only=True)
    assert full["systems"]["router"]["ndcg@10"] == pytest.approx(1 / math.log2(4))  # rank 3, ideal rank 1
    assert condensed["systems"]["router"]["ndcg@10"] == pytest.approx(1 / math.log2(3))  # rank 2
    assert condensed["judged_only"] is True


def test_eval_run_takes_qrels(index50, tmp_path, capsys):
    from eval.__main__ import main

    qs = tmp_path / "q.jsonl"
    qs.write_text(json.dumps({"qid": "q1", "query": "kfc", "intent": "precise", "relevant": {}, "unknown_name": True})
                  + "\n", encoding="utf-8")
    qrels = tmp_path / "qrels.txt"
    write_trec_qrels(qrels, {"q1": {"brand-0055": 2}})
    assert main(["run", "--index", str(index50), "--queries", str(qs), "--qrels", str(qrels), "--out",
                 str(tmp_path / "o"), "--judged-only"]) == 0
    out = capsys.readouterr().out
    assert f"judgments: {qrels}" in out
    rep = json.loads((tmp_path / "o" / "report.json").read_text(encoding="utf-8"))
    assert rep["systems"]["router"]["hit_rate@1"] == 1.0


def test_category_model_report_hand_computed():
    from types import SimpleNamespace

    from eval.reports import category_model_report

    preds = {"a": ["音乐", "电台", "养生保健", "问诊挂号", "外卖"], "b": ["外卖", "餐饮店", "团购", "音乐", "电台"]}
    items = [SimpleNamespace(category=c) for c in ("音乐", "电台", "养生保健", "问诊挂号", "外卖", "餐饮店", "团购")]
    searcher = SimpleNamespace(predict_categories=lambda q, n: [(c, 0.1) for c in preds[q][:n]], items=items)
    needs = [DevQuery("1", "a", "fuzzy", categories={"养生保健": 2, "音乐": 1, "无此类": 1}),  # 无此类: no items, not counted
             DevQuery("2", "b", "fuzzy", categories={"团购": 2, "餐饮店": 1, "电台": 1})]
    cm = category_model_report(searcher, needs)
    assert cm["n"] == 2 and cm["top1"] == 0.5 and cm["top3"] == 1.0
    # need a: {养生保健, 音乐} found at 1, 3 · need b: {团购, 餐饮店, 电台} found at 3, 2, 5
    assert cm["recall"] == pytest.approx({"1": (1 / 2 + 0) / 2, "2": (1 / 2 + 1 / 3) / 2, "3": (1 + 2 / 3) / 2,
                                          "5": (1 + 1) / 2})


def test_need_metrics_hand_computed():
    category_of = {"a": "音乐", "b": "音乐", "c": "电台", "d": "外卖", "e": "团购"}
    size = {"音乐": 2, "电台": 1, "外卖": 1, "团购": 1}  # 无此类 has no items
    needs = [DevQuery("1", "x", "fuzzy", relevant={"a": 2}, categories={"音乐": 2, "电台": 1, "无此类": 1},
                      nonrelevant=frozenset({"d"})),
             DevQuery("2", "y", "fuzzy", categories={"外卖": 2}),
             DevQuery("3", "z", "fuzzy", categories={}),  # no judged category: not a need here
             DevQuery("4", "w", "fuzzy", categories={"团购": 2})]
    run = {"1": [("a", 3.0), ("b", 2.0), ("d", 1.0), ("e", 0.5)], "2": [("d", 1.0), ("a", 0.5)], "3": [("a", 1.0)]}
    per = M.need_scores(run, needs, category_of, size, k=3)
    # need 1, top 3 = a, b, d: judged a and d (2/3); categories 音乐, 音乐, 外卖 → 2/3 relevant; facets 音乐 of {音乐, 电台}
    # need 2: d, a: judged none; 外卖 relevant, 音乐 not → 1/2; facet 外卖 found · need 4: nothing served → zeros
    assert per["judged@10"] == pytest.approx([2 / 3, 0.0, 0.0])
    assert per["category_precision@10"] == pytest.approx([2 / 3, 1 / 2, 0.0])
    assert per["facet_recall@10"] == pytest.approx([1 / 2, 1.0, 0.0])
    means = M.need_metrics(run, needs, category_of, size, k=3)
    assert means["category_precision@10"] == pytest.approx((2 / 3 + 1 / 2) / 3)
    assert means["facet_recall@10"] == pytest.approx(1.5 / 3)


def test_bootstrap_interval():
    v = [1.0] * 30 + [0.0] * 10  # mean 0.75
    lo, hi = M.bootstrap_interval(v)
    assert 0.55 < lo < 0.75 < hi < 0.9
    assert M.bootstrap_interval(v) == (lo, hi)  # the seed makes a report reproducible
    lo2, hi2 = M.bootstrap_interval(v * 10)  # ten times the queries, about a third of the width
    assert (hi2 - lo2) < 0.5 * (hi - lo)
    assert M.bootstrap_interval([0.4, 0.4, 0.4]) == pytest.approx((0.4, 0.4))
    assert M.bootstrap_interval([0.3]) == (0.3, 0.3)
    assert all(math.isnan(x) for x in M.bootstrap_interval([]))
    with pytest.raises(ValueError):
        M.bootstrap_interval(v, confidence=1.5)


def _hit(i: str, cat: str) -> Hit:
    return Hit(i, i, "service", cat, 1.0, (), "")


def test_grouped_by_category_checks_every_result_after_the_card():
    from eval.runs import grouped_by_category
    from search.page import Page

    card, a, b, c = _hit("card", "外卖"), _hit("a", "外卖"), _hit("b", "团购"), _hit("c", "外卖")
    ok = Page(card, (card, a, b, c), {"外卖": ["a", "c"], "团购": ["b"]})
    assert grouped_by_category(ok)
    assert not grouped_by_category(dataclasses.replace(ok, groups={"外卖": ["a"], "团购": ["b"]}))  # c missing
    assert not grouped_by_category(dataclasses.replace(ok, groups={"外卖": ["a", "c", "b"]}))  # b under 外卖
    assert not grouped_by_category(dataclasses.replace(ok, groups={"外卖": ["card", "a", "c"], "团购": ["b"]}))
    assert grouped_by_category(Page(None, (a, b), {"团购": ["b"], "外卖": ["a"]}))  # no card: every result


def test_need_pages_count_short_and_ungrouped_fuzzy_and_mixed_pages():
    from eval.reports import _need_pages
    from eval.runs import RunResult

    qs = [DevQuery(f"q{i}", f"需求{i}", "fuzzy", {}, {}) for i in range(4)]
    res = RunResult(n_results={"q0": 10, "q1": 3, "q2": 6, "q3": 10},
                    grouped={"q0": True, "q1": True, "q2": False})  # q3 was served precise: not counted
    out = _need_pages(qs, res, n_live=100)
    assert (out["pages"], out["short"], out["ungrouped"]) == (3, 1, 1)
    assert out["examples"] == ["需求1 (3)"] and out["ungrouped_examples"] == ["需求2"]
    assert _need_pages(qs, res, n_live=4)["short"] == 0  # a catalog of four items cannot fill six seats

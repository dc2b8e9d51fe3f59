"""python -m eval mine (eval/mine.py, eval/clickmodel.py, eval/minereport.py) on a small log whose every figure is
computed by hand below."""

from __future__ import annotations

import json
import math
import random

import pytest

from eval.clickmodel import Session, fit_pbm
from eval.data import read_trec_qrels
from eval.mine import MiningRules, behaviour_label, judgments, mine, qid_of, query_stats, read_log, write
from search import trafficstore


def _search(rid, query, shown, route="precise", not_found=0, ts=1000.0, user=None):
    return (ts, rid, user, "search", query, route, 0.5, 0.7, 0.3, "v", json.dumps(shown), shown[0] if shown else None,
            not_found, 1.0, None, None, None)


def _click(eid, rid, item, shown, typ="click", ts=1001.0):
    return (eid, rid, typ, item, shown.index(item) + 1, ts, ts, None)


@pytest.fixture()
def log(tmp_path):
    """kfc: 4 searches of [x, y, z]; clicks x | x | x, y | none (and a repeated click on x in the first).
    睡不着: 2 searches of [a, b, c]; clicks a, c | b, and a conversion on b.
    taobao: 3 searches of [t, u], each clicking t; the router said fuzzy.
    xyz: 1 search with no results. An event about a request never logged is ignored."""
    K, S, T = ["x", "y", "z"], ["a", "b", "c"], ["t", "u"]
    searches = [_search("k1", "kfc", K, user="u1"), _search("k2", "kfc", K, user="u2"), _search("k3", "kfc", K, user="u1"),
                _search("k4", "kfc", K), _search("s1", "睡不着", S, "fuzzy"), _search("s2", "睡不着", S, "fuzzy"),
                _search("t1", "taobao", T, "fuzzy"), _search("t2", "taobao", T, "fuzzy"), _search("t3", "taobao", T, "mixed"),
                _search("n1", "xyz", [], "precise", not_found=1)]
    events = [_click("e1", "k1", "x", K), _click("e1b", "k1", "x", K, ts=1002.0), _click("e2", "k2", "x", K),
              _click("e3", "k3", "x", K), _click("e4", "k3", "y", K), _click("e5", "s1", "a", S), _click("e6", "s1", "c", S),
              _click("e7", "s2", "b", S), _click("e8", "s2", "b", S, "convert"), _click("e9", "t1", "t", T),
              _click("e10", "t2", "t", T), _click("e11", "t3", "t", T), ("e12", "ghost", "click", "x", 1, 1.0, 1.0, None)]
    db = tmp_path / "t.db"
    conn = trafficstore.connect(db)
    trafficstore.write_searches(conn, searches)
    trafficstore.write_events(conn, events)
    conn.close()
    return db


def test_per_query_statistics_by_hand(log):
    stats = {s.query: s for s in query_stats(read_log(log))}
    k = stats["kfc"]
    assert (k.volume, k.users, k.clicks) == (4, 2, 4)  # the repeated click on x in k1 counts once
    assert k.ctr == pytest.approx(3 / 4) and k.no_click_rate == pytest.approx(1 / 4)
    assert k.clicks_per_clicked_search == pytest.approx(4 / 3)
    assert k.click_entropy == pytest.approx(-(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25)))  # 0.811 bits
    assert (k.top_item, k.top_item_share) == ("x", pytest.approx(0.75))
    assert k.mean_click_position == pytest.approx((1 + 1 + 1 + 2) / 4) and k.routes == {"precise": 4}
    s = stats["睡不着"]
    assert (s.volume, s.clicks, s.conversions) == (2, 3, 1)
    assert s.click_entropy == pytest.approx(math.log2(3)) and s.top_item_share == pytest.approx(1 / 3)
    assert s.mean_click_position == pytest.approx((1 + 3 + 2) / 3) and s.ctr == 1.0
    t = stats["taobao"]
    assert (t.top_item_share, t.click_entropy, t.clicks_per_clicked_search) == (1.0, 0.0, 1.0)
    assert t.router == "fuzzy" and t.routes == {"fuzzy": 2, "mixed": 1}
    x = stats["xyz"]
    assert (x.no_hit_rate, x.clicks, x.mean_click_position, x.top_item) == (1.0, 0, None, None)
    assert [s.query for s in query_stats(read_log(log))] == ["kfc", "taobao", "睡不着", "xyz"]  # by volume


def test_intent_labels_follow_the_documented_rule(log):
    stats = {s.query: s for s in query_stats(read_log(log))}
    rules = MiningRules(min_searches=2, min_clicks=2)
    assert behaviour_label(stats["taobao"], rules)[0] == "precise"  # one result takes every click, one per search
    assert behaviour_label(stats["睡不着"], rules)[0] == "fuzzy"  # spread over three results
    assert behaviour_label(stats["kfc"], rules)[0] == "fuzzy"  # top share 0.75 <= 0.8
    assert behaviour_label(stats["kfc"], MiningRules(min_searches=2, min_clicks=2, fuzzy_top_share=0.7,
                                                     fuzzy_min_clicks_per_search=1.5, fuzzy_min_entropy=1.0))[0] is None
    assert behaviour_label(stats["kfc"], MiningRules(min_searches=2, min_clicks=2, precise_top_share=0.7, fuzzy_top_share=0.6,
                                                     precise_max_clicks_per_search=1.4))[0] == "precise"
    label, why = behaviour_label(stats["xyz"], rules)
    assert label is None and "too little traffic" in why
    assert behaviour_label(stats["taobao"], MiningRules())[0] is None  # 3 searches < 20
    with pytest.raises(Exception, match="fuzzy_top_share"):
        MiningRules(precise_top_share=0.5, fuzzy_top_share=0.6)


def test_every_output_file(log, tmp_path):
    m = mine(read_log(log), MiningRules(min_searches=2, min_clicks=2, min_impressions=2, min_examinations=1), {"t": "购物", "a": "音乐"})
    files = write(m, tmp_path / "out", str(log))
    labels = [json.loads(line) for line in files["intent_labels.jsonl"].read_text(encoding="utf-8").splitlines()]
    assert {(r["query"], r["intent"]) for r in labels} == {("kfc", "fuzzy"), ("taobao", "precise"), ("睡不着", "fuzzy")}
    dis = [json.loads(line) for line in files["disagreements.jsonl"].read_text(encoding="utf-8").splitlines()]
    assert [(d["query"], d["behaviour"], d["router"]) for d in dis] == [("kfc", "fuzzy", "precise"),
                                                                         ("taobao", "precise", "fuzzy")]
    qrels = read_trec_qrels(files["qrels.txt"])
    assert set(qrels) == {qid_of("kfc"), qid_of("taobao"), qid_of("睡不着")}  # xyz showed nothing
    assert qrels[qid_of("taobao")]["t"] == 2 and qrels[qid_of("taobao")]["u"] < 2  # clicked every time / never
    stats = [json.loads(line) for line in files["query_stats.jsonl"].read_text(encoding="utf-8").splitlines()]
    assert stats[0]["query"] == "kfc" and stats[0]["ctr"] == 0.75 and stats[0]["behaviour"] == "fuzzy"
    judged = [json.loads(line) for line in files["judged_queries.jsonl"].read_text(encoding="utf-8").splitlines()]
    tb = next(j for j in judged if j["query"] == "taobao")
    assert tb["intent"] == "precise" and tb["relevant"]["t"] == 2 and tb["relevant"].get("u", 0) < 2
    summary = json.loads(files["summary.json"].read_text(encoding="utf-8"))
    assert summary["searches"] == 10 and summary["labels"] == {"precise": 1, "fuzzy": 2, "none": 1}
    assert summary["disagreements"] == 2
    html = files["report.html"].read_text(encoding="utf-8")
    for needle in ("Behaviour and the router disagree (2)", "taobao", "No-hit queries", "xyz", "0.750", "Low click-through"):
        assert needle in html
    assert len(json.loads(files["click_model.json"].read_text())["theta_by_rank"]) == 10


def test_the_command_line(log, tmp_path, capsys):
    from eval.__main__ import main

    assert main(["mine", "--log", str(log), "--out", str(tmp_path / "o"), "--min-searches", "2", "--min-clicks", "2",
                 "--catalog", ""]) == 0
    assert "10 searches of 4 queries" in capsys.readouterr().out
    assert main(["mine", "--log", str(tmp_path / "none.db"), "--out", str(tmp_path / "o")]) == 2


def test_pbm_recovers_examination_when_positions_vary():
    rng = random.Random(0)
    theta = [1.0, 0.7, 0.5, 0.35, 0.25]
    truth: dict[tuple[str, str], float] = {}
    sessions = []
    for q in range(150):
        docs = [f"d{q}-{i}" for i in range(5)]
        for d in docs:
            truth[(str(q), d)] = rng.random()
        for _ in range(40):
            shown = docs[:] if rng.random() < 0.5 else rng.sample(docs, 5)
            clicked = frozenset(d for r, d in enumerate(shown) if rng.random() < theta[r] * truth[(str(q), d)])
            sessions.append(Session(str(q), tuple(shown), clicked))
    m = fit_pbm(sessions, max_rank=5)
    assert all(abs(a - b) < 0.1 for a, b in zip(m.theta, theta, strict=True))
    keys = list(truth)
    xs, ys = [truth[k] for k in keys], [m.alpha[k] for k in keys]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    corr = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / math.sqrt(
        sum((x - mx) ** 2 for x in xs) * sum((y - my) ** 2 for y in ys))
    assert corr > 0.8
    assert all(0 <= a <= 1 for a in m.alpha.values()) and all(0 <= t <= 1 for t in m.theta)


def test_pbm_does_not_penalise_a_result_for_its_position():
    """Two results clicked equally often per look, one always at rank 1 and one always at rank 3 of pages whose
    rank-3 looks are rarer: the click model gives them close attractiveness where raw CTR differs threefold."""
    rng = random.Random(1)
    theta = [1.0, 0.6, 0.3]
    sessions = []
    for q in range(100):  # many queries pin θ (every α is 0.5 here)
        for _ in range(60):
            clicked = frozenset(d for r, d in enumerate(("a", "b", "c")) if rng.random() < theta[r] * 0.5)
            sessions.append(Session(str(q), ("a", "b", "c"), clicked))
    m = fit_pbm(sessions, max_rank=3)
    ctr = {d: m.clicks[("0", d)] / m.impressions[("0", d)] for d in "ac"}
    assert ctr["a"] > 2 * ctr["c"]
    mean_a = sum(m.alpha[(str(q), "a")] for q in range(100)) / 100
    mean_c = sum(m.alpha[(str(q), "c")] for q in range(100)) / 100
    assert mean_c > 0.6 * mean_a  # much closer than raw CTR


def test_a_result_rarely_looked_at_is_not_judged():
    """A result only ever shown at rank 10 and never clicked: under the click model it was hardly looked at, so its
    attractiveness stays near the prior's mean and says nothing; it is left unjudged instead of read as relevant."""
    rng = random.Random(3)
    theta = [1.0, 0.7, 0.5, 0.4, 0.3, 0.2, 0.15, 0.1, 0.07, 0.05]
    sessions = []
    for q in range(40):
        page = tuple(f"d{r}" for r in range(10))
        for _ in range(30):
            clicked = frozenset(d for r, d in enumerate(page[:9]) if rng.random() < theta[r] * (0.8 if r == 0 else 0.1))
            sessions.append(Session(str(q), page, clicked))
    m = fit_pbm(sessions)
    deep = ("0", "d9")
    assert m.impressions[deep] == 30 and m.clicks[deep] == 0
    assert m.examinations[deep] == pytest.approx(30 * m.theta[9])
    assert m.examinations[deep] < 5 <= m.examinations[("0", "d0")]
    grades = judgments(m, MiningRules())
    assert "d9" not in grades["0"] and grades["0"]["d0"] == 2
    loose = judgments(m, MiningRules(min_examinations=0))  # without the rule the unexamined result reads as relevant
    assert loose["0"]["d9"] >= 1

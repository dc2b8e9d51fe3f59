"""The learning loop on SIMULATED users (eval/simulate.py → eval/mine.py): the mined intent labels agree with the
simulator's hidden truth, and the mined judgments order the systems as the hand judgments do."""

from __future__ import annotations

import random
from itertools import combinations

import pytest
from conftest import ROOT
from fastapi.testclient import TestClient

from eval import metrics as M
from eval.data import load_queries
from eval.mine import MiningRules, mine, read_log
from eval.runs import run_systems
from eval.simulate import SimQuery, UserModel, agreement, clicks_for, simulate
from search.api import create_app
from search.catalog import DevQuery


def test_the_user_model():
    m = UserModel(abandon=0.0, noise=0.0, fuzzy_explore=0.0)
    rng = random.Random(0)
    precise = SimQuery("kfc", "precise", {"t": 2, "alt": 1}, "dev")
    runs = [clicks_for(precise, ["x", "t", "alt"], m, rng) for _ in range(2000)]
    assert all(c[-1] == (2, "t") for c in runs if (2, "t") in c)  # a precise user stops at the named item
    assert all("x" not in [d for _, d in c] for c in runs)  # no noise: never the unjudged result
    share_t = sum((2, "t") in c for c in runs) / len(runs)
    assert share_t == pytest.approx(m.theta(2) * m.precise_target, abs=0.03)  # examined × attractive
    fuzzy = SimQuery("睡不着", "fuzzy", {"a": 2, "b": 1, "c": 2}, "dev")
    multi = [clicks_for(fuzzy, ["a", "b", "c"], m, rng) for _ in range(2000)]
    assert sum(len(c) > 1 for c in multi) > 200  # a fuzzy user browses on
    assert clicks_for(fuzzy, ["a"], UserModel(abandon=1.0), rng) == []
    background = SimQuery("连衣裙", None, {}, "background")
    assert sum(bool(clicks_for(background, ["a", "b"], m, rng)) for _ in range(200)) == 0  # noise 0: nothing


@pytest.fixture(scope="module")
def simulated(default_index, tmp_path_factory):
    """2,400 simulated searches (40 dev queries, about 60 each) through the app, half of them exploration pages
    (the served page team-draft interleaved with BM25's or the dense recommender's ranking), then mined."""
    path, settings = default_index
    from search.searcher import Searcher

    tmp_path = tmp_path_factory.mktemp("sim")
    searcher = Searcher.load(path, settings)
    s = settings.replace(traffic_log=True, traffic_db=str(tmp_path / "traffic.db"), traffic_event_rate=1e6,
                         traffic_flush_interval_s=0.01,  # an event waits for its search's record at most this long
                         traffic_explore_share=0.5)  # exploration pages: clicks also judge what BM25 and dense show
    dev = load_queries(ROOT / "eval/queries/dev.jsonl")
    rng = random.Random(3)
    precise = [q for q in dev if q.intent == "precise" and any(g == 2 for g in q.relevant.values())]
    fuzzy = [q for q in dev if q.intent == "fuzzy" and q.relevant]
    chosen = rng.sample(precise, 20) + rng.sample(fuzzy, 20)
    pool = [SimQuery(q.query, q.intent, dict(q.relevant), "dev") for q in chosen]
    with TestClient(create_app(s, searcher)) as c:
        res = simulate(c, pool, 40 * 60, UserModel(zipf_s=0.0), seed=5)  # about 60 searches per query
    from search.catalog import load_catalog

    catalog = {it.id: it.category for it in load_catalog(ROOT / "index_data/catalog.jsonl", ROOT / "index_data/taxonomy.txt")}
    m = mine(read_log(tmp_path / "traffic.db"), MiningRules(), catalog)
    return searcher, chosen, res, m


@pytest.mark.slow  # ≈ 2 minutes; `make loop` runs the same loop at 20,000 searches
def test_simulated_clicks_give_intent_labels_that_agree_with_the_hidden_truth(simulated):
    _, _, res, m = simulated
    assert res["counts"]["searches"] == 40 * 60 and set(res["counts"]) >= {"clicks", "conversions", "events 202"}
    assert not [k for k in res["counts"] if k.startswith("events 4")]  # every simulated event was valid
    a = agreement(res["truth"], {q: lab[0] for q, lab in m.labels.items()}, min_searches=20)
    assert a["queries"] >= 36, a  # enough queries reach 20 searches for the figure to mean something
    assert a["share"] >= 0.9, a["misses"]


@pytest.mark.slow
def test_mined_judgments_order_systems_as_the_hand_judgments_do(simulated):
    searcher, chosen, res, m = simulated
    # the mined judgments against the hand judgments, on the same queries and the same runs
    by_text = {t["query"]: q for t, q in ((t, next(q for q in chosen if q.query == t["text"])) for t in res["truth"])}
    judged = [j for j in m.judged if j["query"] in by_text]
    assert len(judged) >= 36
    queries = [DevQuery(j["qid"], by_text[j["query"]].query, by_text[j["query"]].intent) for j in judged]
    runs = run_systems(searcher, queries).runs
    qids = [j["qid"] for j in judged]
    hand = {j["qid"]: dict(by_text[j["query"]].relevant) for j in judged}
    mined = {j["qid"]: m.qrels[j["qid"]] for j in judged}
    # mined judgments exist only for what was shown (served and exploration pages): a need's rankings are condensed
    # (Sakai 2007); a name's judgment is complete (the target; nothing else is wanted), as `eval run --judged-only` does
    intent = {j["qid"]: j["intent"] for j in judged}
    condensed = {name: {q: [(d, x) for d, x in run.get(q, []) if intent[q] == "precise" or d in mined[q]] for q in qids}
                 for name, run in runs.items()}
    score_hand = {name: M.ir_metrics(hand, run, ["ndcg@10"], qids)["ndcg@10"] for name, run in runs.items()}
    score_mined = {name: M.ir_metrics(mined, run, ["ndcg@10"], qids)["ndcg@10"] for name, run in condensed.items()}
    print("nDCG@10 by hand judgments", score_hand, "by mined judgments", score_mined)
    separated = [(x, y) for x, y in combinations(runs, 2) if abs(score_hand[x] - score_hand[y]) > 0.05]
    assert len(separated) >= 3, score_hand
    for x, y in separated:  # every pair the hand judgments tell apart is ordered the same way by the mined ones
        assert (score_hand[x] > score_hand[y]) == (score_mined[x] > score_mined[y]), (x, y, score_hand, score_mined)

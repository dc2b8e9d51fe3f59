"""Threshold tuning: the sweep (monotone where it must be), the constraint solver, write + reload, admin API."""

import json

import numpy as np
import pytest
from conftest import settings_for
from fastapi.testclient import TestClient

from eval.tuning import ROUTES, QueryTable, choose, point, sweep, violations, write_thresholds
from search.api import create_app
from search.config import Thresholds, load_thresholds
from search.errors import ConfigError
from search.routing import route
from search.searcher import Searcher


def _table():
    rng = np.random.default_rng(0)
    n = 200
    gold = rng.random(n) < 0.5
    p = np.clip(np.where(gold, rng.normal(0.8, 0.2, n), rng.normal(0.2, 0.2, n)), 0, 1)
    metric = np.zeros((n, 3))
    metric[gold, 0] = 1.0  # precise queries succeed on the precise route
    metric[gold, 2] = 0.8
    metric[~gold, 1] = 0.6  # fuzzy queries do best on the fuzzy route
    metric[~gold, 2] = 0.5
    return QueryTable([str(i) for i in range(n)], gold, p, metric, [None] * n)


def test_table_routes_follow_the_routing_function():
    p = np.array([0.0, 0.3, 0.31, 0.69, 0.7, 1.0])
    t = QueryTable([str(i) for i in range(len(p))], np.zeros(len(p), bool), p, np.zeros((len(p), 3)))
    assert [ROUTES[c] for c in t.routes(0.7, 0.3)] == [route(x, Thresholds(0.7, 0.3)) for x in p]


def test_sweep_monotonicity():
    t = _table()
    grid = [i / 20 for i in range(21)]
    pts = {(pt["t_precise"], pt["t_fuzzy"]): pt for pt in sweep(t, grid)}
    for tf in grid:
        recalls = [pts[(tp, tf)]["precise_recall"] for tp in grid if tp >= tf]
        assert all(a >= b for a, b in zip(recalls, recalls[1:], strict=False))  # raising t_precise never adds precise
    for tp in grid:
        mixed = [pts[(tp, tf)]["mixed_share"] for tf in grid if tf <= tp]
        assert all(a >= b for a, b in zip(mixed, mixed[1:], strict=False))  # raising t_fuzzy shrinks the mixed band
    assert all(pts[(x, x)]["mixed_share"] == 0 for x in grid)


def test_point_by_hand():
    t = QueryTable(["a", "b", "c", "d"], np.array([True, True, False, False]), np.array([0.9, 0.5, 0.4, 0.1]),
                   np.array([[1, 0, 0.5], [1, 0, 0.5], [0, 1, 0.2], [0, 1, 0.2]], dtype=float), [None] * 4)
    pt = point(t, 0.6, 0.3)  # a precise, b mixed, c mixed, d fuzzy
    assert pt["precise_precision"] == 1.0 and pt["precise_recall"] == 0.5
    assert pt["mixed_share"] == 0.5 and pt["accuracy"] == 0.5
    assert pt["success@1"] == pytest.approx(0.75) and pt["ndcg@10"] == pytest.approx(0.6)


def test_constraint_solver_and_binding():
    pts = [{"t_precise": 0.5, "t_fuzzy": 0.5, "combined": 0.9, "precise_precision": 0.90, "mixed_share": 0.0, "precise_recall": 1,
            "fuzzy_precision": 1, "fuzzy_recall": 1},
           {"t_precise": 0.8, "t_fuzzy": 0.2, "combined": 0.8, "precise_precision": 0.99, "mixed_share": 0.1, "precise_recall": 1,
            "fuzzy_precision": 1, "fuzzy_recall": 1},
           {"t_precise": 0.9, "t_fuzzy": 0.1, "combined": 0.7, "precise_precision": 1.0, "mixed_share": 0.3, "precise_recall": 1,
            "fuzzy_precision": 1, "fuzzy_recall": 1}]
    c = choose(pts, {"min_precise_precision": 0.98, "max_mixed": 0.15})
    assert c.best["t_precise"] == 0.8 and c.binding == "min_precise_precision" and c.runner_up is None
    assert violations(pts[2], {"max_mixed": 0.15}) == ["max_mixed"]
    assert choose(pts, {"min_precise_precision": 1.0, "max_mixed": 0.0}).best is None
    with pytest.raises(ConfigError):
        choose(pts, {"nonsense": 1})


def test_write_then_load_uses_thresholds(tmp_path, index50):
    path = tmp_path / "thresholds.json"
    write_thresholds(path, 0.8, 0.2, {"queries_sha256": "abc", "constraints": {"max_mixed": 0.1}})
    doc = json.loads(path.read_text())
    assert doc["provenance"]["queries_sha256"] == "abc" and doc["kind"] == "zhida-thresholds"
    t = load_thresholds(path, Thresholds())
    assert (t.t_precise, t.t_fuzzy) == (0.8, 0.2)
    s = Searcher.load(index50, settings_for(tmp_path))
    assert (s.thresholds.t_precise, s.thresholds.t_fuzzy) == (0.8, 0.2)
    with pytest.raises(ConfigError):
        write_thresholds(path, 0.2, 0.8, {})
    assert json.loads(path.read_text())["t_precise"] == 0.8  # refused write left the file as it was
    path.write_text("{broken")
    with pytest.raises(ConfigError, match="thresholds"):
        load_thresholds(path, Thresholds())


@pytest.fixture()
def admin_client(index50, tmp_path):
    s = Searcher.load(index50, settings_for(tmp_path))
    settings = settings_for(tmp_path, admin_token="s3cret")
    return TestClient(create_app(settings, s))


def test_admin_thresholds_401_422_200(admin_client):
    c = admin_client
    assert c.put("/admin/thresholds", json={"t_precise": 0.8, "t_fuzzy": 0.2}).status_code == 401
    assert c.put("/admin/thresholds", json={"t_precise": 0.8, "t_fuzzy": 0.2},
                 headers={"Authorization": "Bearer wrong"}).status_code == 401
    auth = {"Authorization": "Bearer s3cret"}
    before = c.get("/admin/thresholds", headers=auth).json()
    for bad in ({"t_precise": 0.2, "t_fuzzy": 0.8}, {"t_precise": 1.5, "t_fuzzy": 0.1}, {"t_precise": "x", "t_fuzzy": 0.1},
                {"t_precise": 0.5}):
        r = c.put("/admin/thresholds", json=bad, headers=auth)
        assert r.status_code == 422 and r.json()["error"]["message"]
    assert c.get("/admin/thresholds", headers=auth).json() == before  # old values stay
    r = c.put("/admin/thresholds", json={"t_precise": 0.99, "t_fuzzy": 0.98}, headers={"X-Admin-Token": "s3cret"})
    assert r.status_code == 200 and r.json()["t_precise"] == 0.99 and r.json()["source"] == "admin api"
    body = c.get("/search", params={"q": "肯德基"}).json()
    assert body["intent"]["thresholds"] == {"t_precise": 0.99, "t_fuzzy": 0.98}


def test_explain(admin_client):
    r = admin_client.get("/explain", params={"q": "星巴克会员", "t_precise": 1.0, "t_fuzzy": 1.0})
    assert r.status_code == 200
    e = r.json()
    assert e["route"]["label"] == "precise" and e["route_at"]["label"] == "fuzzy"
    assert e["top_features"] and e["name_match"]["name"] == "星巴克"
    assert isinstance(e["facets"], list) and all(f["seats"] in ("one", "shared") for f in e["facets"])
    assert e["known_need"] is None  # this index was built without training needs (tests/test_cli.py builds one with)
    z, cal = e["logit"], e["calibration"]
    assert 1 / (1 + np.exp(-(cal["a"] * z + cal["c"]))) == pytest.approx(e["p_precise"], abs=1e-5)
    assert admin_client.get("/explain", params={"q": ""}).status_code == 422
    assert admin_client.get("/explain", params={"q": "x", "t_precise": 2}).status_code == 422


def test_tuner_answers_are_the_served_answers(default_searcher):
    """The tuner's cached page under the served thresholds is, id for id, what Searcher.search answers."""
    from eval.data import load_queries
    from eval.tuning import build_table

    s = default_searcher
    queries = load_queries("eval/queries/dev.jsonl", {it.id for it in s.items})
    table = build_table(s, queries, k=10)
    codes = table.routes(s.thresholds.t_precise, s.thresholds.t_fuzzy)
    for q, answers, code in zip(queries, table.answers, codes, strict=True):
        served = s.search(q.query, 10)
        assert served.intent.label == ROUTES[code], q.query
        assert answers[ROUTES[code]] == [h.id for h in served.results], q.query


def test_table_artifact_round_trip_and_refusals(tmp_path):
    from search.tuning import TableFile, read_tables, route_changes, write_tables

    t = _table()
    t = QueryTable(t.qids, t.gold_precise, t.p, t.metric, t.forms, [], [f"query {q}" for q in t.qids], [None] * len(t.qids))
    path = write_tables(tmp_path / "table.json", {"dev": t}, {"dev": {"queries_sha256": "ab"}}, {"index": "x"})
    back = read_tables(path)
    assert back.provenance == {"index": "x"} and back.set_meta == {"dev": {"queries_sha256": "ab"}}
    d = back.sets["dev"]
    assert np.array_equal(d.gold_precise, t.gold_precise) and np.allclose(d.p, t.p) and np.allclose(d.metric, t.metric)
    assert point(d, 0.6, 0.3) == pytest.approx(point(t, 0.6, 0.3))  # the server's figures are the tuner's
    ch = route_changes(d, Thresholds(0.7, 0.3), Thresholds(0.7, 0.1))
    assert ch and all(c["from"] == "fuzzy" and c["to"] == "mixed" and 0.1 < c["p_precise"] <= 0.3 for c in ch)
    assert ch[0]["query"].startswith("query ")
    f = TableFile(path)
    assert f.get() is f.get()  # read once while the file is unchanged
    assert TableFile(tmp_path / "none.json").get() is None and TableFile(tmp_path / "none.json").metrics(Thresholds(), Thresholds()) is None
    for bad in ('{"kind": "zhida-tuning-table", "format_version": 9}', "not json",
                '{"kind": "zhida-tuning-table", "format_version": 1, "routes": ["precise", "fuzzy", "mixed"], '
                '"sets": {"dev": {"rows": [{"qid": "a", "query": "a", "gold": "maybe", "p_precise": 0.5, "metric": [0, 0, 0]}]}}}'):
        (tmp_path / "bad.json").write_text(bad)
        with pytest.raises(ConfigError):
            read_tables(tmp_path / "bad.json")
    assert TableFile(tmp_path / "bad.json").metrics(Thresholds(), Thresholds()) is None

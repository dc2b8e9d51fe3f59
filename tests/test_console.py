"""The console's admin routes over HTTP (no browser): the page and its assets, what-if answers and figures, the
threshold trail across restarts and reloads, rollback, traffic (absent, present, malformed) and labels."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import TAXONOMY, settings_for
from fastapi.testclient import TestClient

from eval.tuning import point as eval_point
from search.api import create_app
from search.config import Thresholds
from search.searcher import Searcher
from search.service import Service
from search.tuning import read_tables

AUTH = {"Authorization": "Bearer s3cret"}


@pytest.fixture()
def console(index50, tmp_path, tuning_table):
    settings = settings_for(tmp_path, admin_token="s3cret", taxonomy_path=str(TAXONOMY),
                            tuning_table_path=str(tuning_table))
    s = Searcher.load(index50, settings)
    return TestClient(create_app(settings, s)), settings, s


def test_page_and_assets_are_self_contained(console):
    c, _, _ = console
    r = c.get("/console")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    # nothing inline (works under a strict Content-Security-Policy), nothing from another host
    assert not re.search(r"<script(?![^>]*\bsrc=)", page) and " style=" not in page and "<style" not in page
    assert not re.search(r"(src|href)=\"(https?:)?//", page)
    for name, kind in (("console.js", "text/javascript"), ("console.css", "text/css")):
        a = c.get(f"/console/{name}")
        assert a.status_code == 200 and a.headers["content-type"].startswith(kind) and a.text
        assert "http://" not in a.text.replace("http://www.w3.org/2000/svg", "") and "https://" not in a.text
    assert c.get("/console/../app.py").status_code == 404
    assert c.get("/console/index.html.bak").status_code == 404
    assert "innerHTML" not in c.get("/console/console.js").text  # texts from queries and logs are never parsed as HTML


def test_admin_routes_need_the_token(console, index50, tmp_path):
    c, _, _ = console
    for path in ("/admin/tuning", "/admin/tuning/point", "/admin/thresholds/history", "/admin/traffic", "/admin/labels",
                 "/admin/search?q=x"):
        assert c.get(path).status_code == 401
        assert c.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert c.post("/admin/thresholds/rollback", json={"id": 1}).status_code == 401
    assert c.post("/admin/labels", json={}).status_code == 401
    off = TestClient(create_app(settings_for(tmp_path), Searcher.load(index50, settings_for(tmp_path))))
    r = off.get("/admin/tuning", headers=AUTH)
    assert r.status_code == 403 and r.json()["error"]["code"] == "admin_disabled"
    assert off.get("/console").status_code == 200  # the page itself holds no data; it says admin is off


def test_tuning_figures_are_the_tuners(console, tuning_table):
    c, _, s = console
    t = c.get("/admin/tuning", headers=AUTH).json()
    assert t["available"] and set(t["sets"]) == {"dev", "hard_dev"}
    dev = t["sets"]["dev"]
    assert len(dev["heatmap"]) == 231 and dev["n"] == 18 and dev["n_precise"] == 10  # 21 × 22 / 2 pairs on the 0.05 grid
    assert all(0 <= r <= 1 and 0 <= p <= 1 for r, p, _ in dev["pr_curve"])
    assert t["index_matches"] is None  # the test table names no index manifest
    r = c.get("/admin/tuning/point", params={"t_precise": 0.7, "t_fuzzy": 0.1}, headers=AUTH).json()
    table = read_tables(tuning_table).sets["dev"]
    want = eval_point(table, 0.7, 0.1)  # the offline tuner's own function gives the same figures
    for k, v in r["sets"]["dev"]["proposed"].items():
        assert v == pytest.approx(want[k], abs=1e-4)
    assert r["served"] == {"t_precise": 0.7, "t_fuzzy": 0.3}
    changed = {(x["set"], x["query"]): (x["from"], x["to"]) for x in r["changes"]}
    assert changed[("dev", "b站")] == ("fuzzy", "mixed") and changed[("dev", "想学日语")] == ("fuzzy", "mixed")
    served_routes, new_routes = table.routes(0.7, 0.3), table.routes(0.7, 0.1)
    assert sum(1 for x in r["changes"] if x["set"] == "dev") == int((served_routes != new_routes).sum())
    none = c.get("/admin/tuning/point", headers=AUTH).json()  # no parameters: the served pair, nothing changes
    assert none["changes_total"] == 0 and none["proposed"] == none["served"]
    bad = c.get("/admin/tuning/point", params={"t_precise": 0.2, "t_fuzzy": 0.5}, headers=AUTH)
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "t_fuzzy"
    assert c.get("/admin/tuning/point", params={"t_precise": "x"}, headers=AUTH).status_code == 422


def test_tuning_table_missing_or_damaged_says_how_to_make_it(index50, tmp_path):
    settings = settings_for(tmp_path, admin_token="s3cret")
    c = TestClient(create_app(settings, Searcher.load(index50, settings)))
    t = c.get("/admin/tuning", headers=AUTH).json()
    assert t["available"] is False and "make tune" in t["message"]
    p = c.get("/admin/tuning/point", params={"t_fuzzy": 0.1}, headers=AUTH).json()
    assert p["available"] is False and p["proposed"] == {"t_precise": 0.7, "t_fuzzy": 0.1}
    (tmp_path / "tuning_table.json").write_text('{"kind": "something else"}')
    t = c.get("/admin/tuning", headers=AUTH).json()
    assert t["available"] is False and "cannot be used" in t["message"] and "make tune" in t["message"]
    # a change is still made and recorded; its figures are unknown
    assert c.put("/admin/thresholds", json={"t_precise": 0.8, "t_fuzzy": 0.2}, headers=AUTH).status_code == 200
    assert c.get("/admin/thresholds/history", headers=AUTH).json()["entries"][0]["metrics"] is None


def test_what_if_search_is_the_page_at_those_thresholds(console):
    c, _, s = console
    r = c.get("/admin/search", params={"q": "b站", "t_precise": 0.1, "t_fuzzy": 0.05}, headers=AUTH)
    assert r.status_code == 200
    body = r.json()
    assert body["intent"]["label"] == "precise" and body["intent"]["thresholds"] == {"t_precise": 0.1, "t_fuzzy": 0.05}
    assert body["results"] == s.search("b站", 10, thresholds=Thresholds(0.1, 0.05)).to_dict()["results"]
    assert c.get("/search", params={"q": "b站"}).json()["intent"]["label"] == "fuzzy"  # served: unchanged
    assert c.get("/admin/search", params={"q": "b站", "t_fuzzy": 0.9}, headers=AUTH).status_code == 422
    assert c.get("/admin/search", params={"q": "", "t_fuzzy": 0.1}, headers=AUTH).json()["error"]["field"] == "q"
    assert c.get("/admin/search", params={"q": "b站", "k": "0"}, headers=AUTH).json()["error"]["field"] == "k"


def test_changes_are_recorded_and_survive_restarts_and_reloads(console, index50):
    c, settings, s = console
    r = c.put("/admin/thresholds", json={"t_precise": 0.8, "t_fuzzy": 0.1, "note": "  fewer   fuzzy "}, headers=AUTH)
    assert r.status_code == 200 and r.json()["t_fuzzy"] == 0.1
    h = c.get("/admin/thresholds/history", headers=AUTH).json()
    e = h["entries"][0]
    assert (e["id"], e["action"], e["note"]) == (1, "set", "fewer fuzzy")
    assert e["from"] == {"t_precise": 0.7, "t_fuzzy": 0.3} and e["to"] == {"t_precise": 0.8, "t_fuzzy": 0.1}
    assert e["metrics"]["before"]["dev"]["fuzzy_recall"] == 0.75 and e["metrics"]["after"]["dev"]["fuzzy_recall"] == 0.625
    # refused changes leave no trace
    assert c.put("/admin/thresholds", json={"t_precise": 0.1, "t_fuzzy": 0.2}, headers=AUTH).status_code == 422
    assert c.put("/admin/thresholds", json={"t_precise": 0.9, "t_fuzzy": 0.2, "note": "x" * 501}, headers=AUTH).status_code == 422
    assert c.put("/admin/thresholds", json={"t_precise": 0.9, "t_fuzzy": 0.2}).status_code == 401
    assert c.get("/admin/thresholds/history", headers=AUTH).json()["total"] == 1
    # a reload keeps the served values and the trail
    assert c.post("/admin/reload", headers=AUTH).status_code == 200
    assert c.get("/admin/thresholds", headers=AUTH).json()["t_fuzzy"] == 0.1
    # a restart (a new process: new service, new app) reads the same trail and continues its ids
    c2 = TestClient(create_app(settings, Searcher.load(index50, settings)))
    assert [x["id"] for x in c2.get("/admin/thresholds/history", headers=AUTH).json()["entries"]] == [1]
    assert c2.put("/admin/thresholds", json={"t_precise": 0.75, "t_fuzzy": 0.25}, headers=AUTH).status_code == 200
    assert [x["id"] for x in c.get("/admin/thresholds/history", headers=AUTH).json()["entries"]] == [2, 1]


def test_rollback_to_any_earlier_entry(console):
    c, _, _ = console
    for tp, tf in ((0.8, 0.2), (0.9, 0.1), (0.6, 0.4)):
        assert c.put("/admin/thresholds", json={"t_precise": tp, "t_fuzzy": tf}, headers=AUTH).status_code == 200
    r = c.post("/admin/thresholds/rollback", json={"id": 1, "note": "back to the first change"}, headers=AUTH)
    assert r.status_code == 200 and (r.json()["t_precise"], r.json()["t_fuzzy"]) == (0.8, 0.2)
    assert r.json()["source"] == "rollback to #1"
    r = c.post("/admin/thresholds/rollback", json={"id": 1, "point": "before"}, headers=AUTH)
    assert (r.json()["t_precise"], r.json()["t_fuzzy"]) == (0.7, 0.3)
    e = c.get("/admin/thresholds/history", headers=AUTH).json()["entries"]
    assert [(x["id"], x["action"], x["rollback_of"]) for x in e[:2]] == [(5, "rollback", 1), (4, "rollback", 1)]
    assert e[1]["note"] == "back to the first change" and e[1]["from"] == {"t_precise": 0.6, "t_fuzzy": 0.4}
    for bad in ({"id": 99}, {"id": "1"}, {"id": 1, "point": "middle"}, {"id": 0}, {}):
        assert c.post("/admin/thresholds/rollback", json=bad, headers=AUTH).status_code == 422
    assert c.get("/admin/thresholds", headers=AUTH).json()["t_precise"] == 0.7


def test_a_change_that_cannot_be_recorded_is_refused(index50, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    settings = settings_for(tmp_path, admin_token="s3cret", thresholds_history_path=str(blocker / "history.jsonl"))
    c = TestClient(create_app(settings, Searcher.load(index50, settings)))
    r = c.put("/admin/thresholds", json={"t_precise": 0.8, "t_fuzzy": 0.2}, headers=AUTH)
    assert r.status_code == 503 and r.json()["error"]["code"] == "history_unwritable"
    assert "nothing was changed" in r.json()["error"]["message"]
    assert c.get("/admin/thresholds", headers=AUTH).json()["t_precise"] == 0.7


def _traffic(folder, stats, dis=()):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "query_stats.jsonl").write_text("".join(
        (r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in stats), encoding="utf-8")
    if dis:
        (folder / "disagreements.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in dis),
                                                    encoding="utf-8")


def test_traffic_absent_then_present(console):
    c, settings, _ = console
    t = c.get("/admin/traffic", headers=AUTH).json()
    assert t["available"] is False and "no query log yet" in t["message"]
    assert t["top_queries"] == t["no_hit"] == t["low_ctr"] == t["disagreements"] == []
    rows = [{"query": f"q{i}", "volume": 100 - i, "ctr": 0.5, "no_hit_rate": 0.0} for i in range(30)]
    rows += [{"query": "蓝鲸记账app", "volume": 40, "ctr": 0.0, "no_hit_rate": 0.95, "router": "precise"},
             {"query": "附近吃的", "volume": 12, "ctr": 0.1, "no_hit_rate": 0.0, "extra": "ignored"},
             {"query": "rare", "volume": 2, "ctr": 0.0, "no_hit_rate": 0.0},
             "not json", {"query": "bad ctr", "volume": 5, "ctr": 7}, {"volume": 3}]
    _traffic(Path(settings.traffic_dir), rows,
             [{"query": "买菜", "behaviour": "fuzzy", "router": "precise", "volume": 22}])
    t = c.get("/admin/traffic", headers=AUTH).json()
    assert t["available"] and t["skipped"] == 3 and t["source"]["queries"] == 33
    assert len(t["top_queries"]) == 20 and t["top_queries"][0]["query"] == "q0"
    assert [r["query"] for r in t["no_hit"]] == ["蓝鲸记账app"]
    assert [r["query"] for r in t["low_ctr"]] == ["附近吃的"]  # "rare" has too few searches to say
    assert t["disagreements"] == [{"query": "买菜", "volume": 22, "ctr": None, "no_hit_rate": None,
                                   "router": "precise", "behaviour": "fuzzy"}]


def test_labels_wait_for_a_build(console):
    c, settings, _ = console
    assert c.get("/admin/labels", headers=AUTH).json()["waiting"] == 0
    r = c.post("/admin/labels", json={"query": " 睡不着 ", "label": "fuzzy", "categories": ["养生保健", "音乐"],
                                      "who": "li", "from": "traffic:no_hit"}, headers=AUTH)
    assert r.status_code == 201 and r.json()["waiting"] == 1
    assert c.post("/admin/labels", json={"query": "kfc", "label": "precise", "who": "wang"}, headers=AUTH).status_code == 201
    summary = c.get("/admin/labels", headers=AUTH).json()
    assert summary["waiting"] == 2 and [x["query"] for x in summary["recent"]] == ["kfc", " 睡不着 "]
    assert "养生保健" in summary["categories"]
    rows = [json.loads(x) for x in Path(settings.labels_review_path).read_text(encoding="utf-8").splitlines()]
    assert rows[0]["normalized"] == "睡不着" and rows[0]["who"] == "li" and rows[0]["when"]
    for bad, field in (({"query": "", "label": "fuzzy", "who": "li"}, "query"),
                       ({"query": " \u200b ", "label": "fuzzy", "who": "li"}, "query"),
                       ({"query": "x", "label": "maybe", "who": "li"}, "label"),
                       ({"query": "x", "label": "fuzzy", "who": ""}, "who"),
                       ({"query": "x", "label": "fuzzy", "who": "li", "categories": ["不存在"]}, "categories"),
                       ({"query": "x", "label": "precise", "who": "li", "categories": ["音乐"]}, "categories"),
                       ({"query": "x", "label": "fuzzy", "who": "li", "extra": 1}, "extra")):
        r = c.post("/admin/labels", json=bad, headers=AUTH)
        assert r.status_code == 422 and r.json()["error"]["field"] == field, (bad, r.json())
    assert c.get("/admin/labels", headers=AUTH).json()["waiting"] == 2


def test_service_records_without_http(index50, tmp_path, tuning_table):
    settings = settings_for(tmp_path, tuning_table_path=str(tuning_table))
    svc = Service(settings, Searcher.load(index50, settings))
    svc.set_thresholds(0.9, 0.05, note="scripted")
    (e,) = svc.history.entries()
    assert e.note == "scripted" and e.metrics is not None and np.isfinite(e.metrics["after"]["dev"]["combined"])

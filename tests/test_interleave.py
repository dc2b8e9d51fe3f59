"""Team-Draft Interleaving (search/interleave.py) and the exploration pages built with it (Searcher.explore, the
service's traffic_explore_share)."""

from __future__ import annotations

import random
import sqlite3

import pytest
from conftest import settings_for
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from search import trafficstore
from search.api import create_app
from search.interleave import team_draft


class Coins(random.Random):
    """A scripted coin: random() returns the given values in turn (< 0.5 means team a picks first)."""

    def __init__(self, values: list[float]) -> None:
        super().__init__(0)
        self.values = list(values)

    def random(self) -> float:
        return self.values.pop(0)


def test_team_draft_by_hand():
    a, b = ["1", "2", "3", "4"], ["2", "5", "1", "6"]
    # round 1: coin 0.1 → a picks 1, then b picks 2 (its best not shown); round 2: coin 0.9 → b picks 5, a picks 3;
    # round 3: coin 0.2 → a picks 4, b picks 6
    out, teams = team_draft(a, b, 6, Coins([0.1, 0.9, 0.2]))
    assert out == ["1", "2", "5", "3", "4", "6"] and teams == ["a", "b", "b", "a", "a", "b"]
    out, teams = team_draft(a, b, 3, Coins([0.9, 0.1]))  # b first: 2, then a: 1; round 2 a first: 3
    assert out == ["2", "1", "3"] and teams == ["b", "a", "a"]
    assert team_draft(a, [], 3, Coins([0.9, 0.9, 0.9])) == (["1", "2", "3"], ["a", "a", "a"])  # b empty: a fills
    assert team_draft([], [], 3, Coins([])) == ([], [])
    with pytest.raises(ValueError):
        team_draft(a, b, -1, Coins([]))


@given(a=st.lists(st.integers(0, 30), unique=True, max_size=15), b=st.lists(st.integers(0, 30), unique=True, max_size=15),
       k=st.integers(0, 20), seed=st.integers(0, 1000))
def test_team_draft_properties(a, b, k, seed):
    out, teams = team_draft(a, b, k, random.Random(seed))
    assert len(out) == len(set(out)) == min(k, len(set(a) | set(b)))  # no duplicates; as many as there are
    for x, t in zip(out, teams, strict=True):
        assert x in (a if t == "a" else b)
    for n in range(1, len(out) + 1):  # every prefix is balanced while both rankings have results left
        left_a = [x for x in a if x not in out[:n]]
        left_b = [x for x in b if x not in out[:n]]
        if left_a and left_b:
            assert abs(teams[:n].count("a") - teams[:n].count("b")) <= 1
    # each team's picks keep their ranking's order
    for t, xs in (("a", a), ("b", b)):
        picks = [x for x, tt in zip(out, teams, strict=True) if tt == t]
        assert picks == sorted(picks, key=xs.index)


@pytest.mark.parametrize("system", ["bm25", "dense"])
def test_explore_interleaves_and_keeps_the_direct_hit_first(searcher50, system):
    served = searcher50.search("肯德基", 10)
    r = searcher50.explore("肯德基", 10, system, random.Random(1))
    assert r.direct_hit is not None and r.direct_hit.id == served.direct_hit.id
    assert r.results[0].id == served.direct_hit.id and len(r.results) == 10
    assert len({h.id for h in r.results}) == 10
    other = [h.id for h in (searcher50.precise.rank(searcher50.analyze("肯德基", 10), 10) if system == "bm25"
                            else searcher50.fuzzy.recommend(searcher50.analyze("肯德基", 10), 10).hits)]
    ids = [h.id for h in r.results]
    assert set(ids) <= {h.id for h in served.results} | set(other)
    assert sorted(i for g in r.groups.values() for i in g) == sorted(ids)
    need = searcher50.explore("睡不着", 8, system, random.Random(2))
    assert need.intent.label == "fuzzy" and len(searcher50.search("睡不着", 8).results) <= len(need.results) <= 8
    with pytest.raises(ValueError):
        searcher50.explore("睡不着", 8, "oracle", random.Random(0))


def test_the_service_explores_the_configured_share_and_records_it(searcher50, tmp_path):
    db = tmp_path / "t.db"
    s = settings_for(traffic_log=True, traffic_db=str(db), traffic_explore_share=1.0, traffic_explore_systems=("dense",))
    with TestClient(create_app(s, searcher50)) as c:
        for q in ("肯德基", "睡不着", "饿了"):
            assert c.get("/search", params={"q": q}).status_code == 200
    rows = list(trafficstore.read_searches(trafficstore.connect(db)))
    assert [r["experiment"] for r in rows] == ["team-draft:dense"] * 3
    s0 = settings_for(traffic_log=True, traffic_db=str(db), traffic_explore_share=0.0)
    with TestClient(create_app(s0, searcher50)) as c:
        assert c.get("/search", params={"q": "肯德基"}).json()["results"][0]["id"] == rows[0]["shown"][0]
    rows = list(trafficstore.read_searches(trafficstore.connect(db)))
    assert rows[-1]["experiment"] is None


def test_a_version_1_traffic_store_is_migrated_keeping_its_rows(tmp_path):
    db = tmp_path / "v1.db"
    with sqlite3.connect(db) as c:  # the version 1 schema, one row
        c.executescript("""
            CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            INSERT INTO meta VALUES ('schema_version', '1');
            CREATE TABLE searches (id INTEGER PRIMARY KEY, ts REAL NOT NULL, request_id TEXT NOT NULL, user_key TEXT,
                source TEXT NOT NULL, query TEXT NOT NULL, route TEXT, p_precise REAL, t_precise REAL, t_fuzzy REAL,
                index_version TEXT, shown TEXT NOT NULL, direct_hit TEXT, not_found INTEGER NOT NULL DEFAULT 0,
                took_ms REAL, selected TEXT, position INTEGER);
            INSERT INTO searches (ts, request_id, source, query, shown) VALUES (1.0, 'r1', 'search', '睡不着', '["a"]');
        """)
    conn = trafficstore.connect(db)
    rows = list(trafficstore.read_searches(conn))
    assert [(r["request_id"], r["shown"], r["experiment"]) for r in rows] == [("r1", ["a"], None)]
    assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(trafficstore.SCHEMA_VERSION)
    with sqlite3.connect(db) as c:
        c.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(sqlite3.DatabaseError, match="schema version 99"):
        trafficstore.connect(db)


def test_explore_settings_are_checked():
    from search.config import Settings
    from search.errors import ConfigError

    with pytest.raises(ConfigError):
        Settings(traffic_explore_share=1.5)
    with pytest.raises(ConfigError):
        Settings(traffic_explore_systems=("oracle",))
    with pytest.raises(ConfigError):
        Settings(traffic_explore_systems=())

"""The benchmark's in-process latency measurement (bench/run.py), on the 50-item index: what it pools and keeps."""

from bench.run import latency_bench


def test_latency_passes_are_pooled_and_each_kept(searcher50):
    queries = ["肯德基", "睡不着", "周末带娃去哪", "交电费", "头疼怎么办"]
    res = latency_bench(searcher50, ["星巴克", "饿了"], queries, k=5, passes=3)
    routes = res["routes"]
    assert sum(r["n"] for r in routes.values()) == 3 * len(queries) == res["all"]["n"]
    assert len(res["passes"]) == 3
    for ps in res["passes"]:
        seen = {route for route in ("precise", "fuzzy", "mixed") if route in ps}
        assert seen == {route for route, st in routes.items() if st["n"]}
        for route in seen:
            assert 0 < ps[route]["p50"] <= ps[route]["p99"]
    assert set(res["stage_shares"]) <= {"precise", "fuzzy", "mixed"}

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
    for route, sh in res["stage_shares"].items():  # the share pass is one pass: its mean is over a third of the queries
        assert round(sh["total_ms"] / sh["mean_ms"]) == routes[route]["n"] // 3


def test_pairs_answers_every_query_under_both_settings(searcher50):
    from dataclasses import replace

    from bench.pairs import paired
    from search.searcher import Searcher

    queries = ["肯德基", "睡不着", "周末带娃去哪", "交电费", "头疼怎么办"]
    b = Searcher(replace(searcher50.settings, tag_extra_candidates=0), searcher50.parts, searcher50.thresholds)
    res = paired(searcher50, b, queries, reps=2)
    assert sum(g["n"] for g in res.values()) == 2 * len(queries)
    assert res["precise"]["n"] == 2 * sum(searcher50.search(q).intent.label == "precise" for q in queries)
    for g in res.values():
        for side in ("a", "b"):
            assert 0 < g[side]["p50"] <= g[side]["p99"]
        assert abs(g["diff_mean"]) < max(g["a"]["mean"], g["b"]["mean"])


def test_pairs_reads_settings_changes_by_their_type():
    import pytest

    from bench.pairs import parse_changes

    assert parse_changes(["tag_extra_candidates=0", "tag_candidate_min_strength=0.75"]) == {
        "tag_extra_candidates": 0, "tag_candidate_min_strength": 0.75}
    for bad in ("tag_extra_candidates", "no_such_field=1", "tag_extra_candidates=ten"):
        with pytest.raises(SystemExit):
            parse_changes([bad])


def test_the_100k_fuzzy_target_names_the_encoder_it_was_measured_with():
    from bench.run import evaluate_targets

    def row(p99: float, encoder: str) -> dict:
        q = {"latency": {"routes": {"fuzzy": {"p99": p99}, "precise": {"p99": 1.0}}}, "settings": {"encoder": encoder}}
        return next(r for r in evaluate_targets({"sizes": {"100k": {"query": q}}}) if r["target"] == "fuzzy_p99_100k")

    slow, fast = row(9.5, "usem3"), row(4.9, "distilled")
    assert slow["value"] == "9.50 ms (encoder usem3)" and slow["ok"] is False
    assert fast["value"] == "4.90 ms (encoder distilled)" and fast["ok"] is True


def test_encoder_bench_times_each_need_text_warm_and_evicted(searcher50):
    import pytest

    from bench.encoder import need_texts, time_encoder

    queries = ["肯德基", "睡不着", "周末带娃去哪", "交电费", "头疼怎么办", "睡不着"]
    texts = need_texts(searcher50, queries)
    routed = [q for q in dict.fromkeys(queries) if searcher50.search(q).intent.label != "precise"]
    assert texts and len(texts) == len({searcher50.analyze(q).need_text for q in routed})
    calls: list[list[str]] = []
    res = time_encoder(lambda batch: calls.append(batch) or searcher50.encoder.encode(batch), texts, evict_mb=1)
    assert all(len(b) == 1 for b in calls)  # one text per call
    assert len(calls) == min(20, len(texts)) + 2 * len(texts)  # the warm-up, then each text warm and evicted
    for state in ("warm", "evicted"):
        assert res[state]["n"] == len(texts) and 0 < res[state]["p50"] <= res[state]["p99"]
    with pytest.raises(ValueError):
        time_encoder(searcher50.encoder.encode, texts, evict_mb=0)

"""Serving details of the app (search/api/app.py): error mapping, access log, CORS, JSON bodies, search threads,
and the one set of request rules for GET and POST."""

import asyncio
import json
import logging
import math
import threading

import pytest
from conftest import settings_for
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from search.api import create_app
from search.api.app import SearchThreads, _json_body
from search.errors import (
    BackendError,
    ConfigError,
    IndexIntegrityError,
    InvalidQueryError,
    UnsupportedOperationError,
    ZhidaError,
)
from search.service import AdminDisabledError, Service, UnauthorizedError


class _Raising(Service):
    def __init__(self, settings, searcher, exc):
        super().__init__(settings, searcher)
        self.exc = exc

    def search(self, q, k=None):
        raise self.exc


@pytest.mark.parametrize(
    "exc",
    [InvalidQueryError("bad query", field="q"), ConfigError("bad config"), BackendError("milvus is down"),
     IndexIntegrityError("checksum"), UnsupportedOperationError("no"), AdminDisabledError("off"),
     UnauthorizedError("who"), ZhidaError("something"), RuntimeError("bug")],
)
def test_errors_raised_by_the_search_map_to_json_errors(searcher50, exc):
    s = settings_for()
    c = TestClient(create_app(s, _Raising(s, searcher50, exc)), raise_server_exceptions=False)
    expected = {InvalidQueryError: 422, ConfigError: 422, BackendError: 503, IndexIntegrityError: 409,
                UnsupportedOperationError: 409, AdminDisabledError: 403, UnauthorizedError: 401, ZhidaError: 400,
                RuntimeError: 500}[type(exc)]
    for r in (c.get("/search?q=kfc"), c.post("/search", json={"q": "kfc"})):
        assert r.status_code == expected and r.json()["error"]["code"] and "Traceback" not in r.text
        assert ("retry-after" in r.headers) == (expected == 503)
        assert ("www-authenticate" in r.headers) == (expected == 401)


@pytest.fixture(scope="module")
def client(searcher50):
    return TestClient(create_app(settings_for(), searcher50), raise_server_exceptions=False)


_values = st.one_of(st.text(max_size=12), st.sampled_from(["5", "0", "51", "-1", "1.5", "", "１", "5 ", "true", "kfc"]))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(q=_values, k=st.one_of(st.none(), _values))
def test_get_and_post_follow_the_same_rules(client, q, k):
    """GET reads k from text (plain digits), POST from JSON: the same k, given each way, gets the same answer."""
    params = {"q": q} if k is None else {"q": q, "k": k}
    body = {"q": q} if k is None else {"q": q, "k": int(k) if k.isascii() and k.isdigit() and len(k) < 10 else k}
    a, b = client.get("/search", params=params), client.post("/search", json=body)
    assert a.status_code == b.status_code, (params, a.text, b.text)
    if a.status_code == 200:
        ja, jb = a.json(), b.json()
        ja.pop("took_ms"), jb.pop("took_ms")
        assert ja == jb
    else:
        assert a.json()["error"]["field"] == b.json()["error"]["field"]


def test_access_log_names_the_query_searched(client, caplog):
    with caplog.at_level(logging.INFO, logger="zhida.access"):
        client.get("/search?q=first&q=kfc")
    rec = [json.loads(m.getMessage()) for m in caplog.records if m.name == "zhida.access"][-1]
    assert rec["q"] == "kfc" and rec["status"] == 200 and rec["path"] == "/search"


def test_cors_headers(searcher50):
    c = TestClient(create_app(settings_for(cors_origins=("https://app.example",)), searcher50))
    for r in (c.get("/search?q=kfc", headers={"Origin": "https://app.example"}),
              c.post("/search", json={"q": "kfc"}, headers={"Origin": "https://app.example"})):
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://app.example"


# --- the JSON body and the search threads ------------------------------------------------------------------


def test_json_body_is_the_compact_utf8_json_of_the_result(searcher50):
    for q in ("肯德基", "周末带娃去哪", "kfc 点餐"):
        d = searcher50.search(q, 10).to_dict()
        body = _json_body(lambda d=d: d)
        assert json.loads(body) == d
        assert body == json.dumps(d, ensure_ascii=False, separators=(",", ":")).encode() or b"e-" in body


def test_json_body_falls_back_to_the_standard_encoder():
    import numpy as np

    assert json.loads(_json_body(lambda: {"p": np.float64(0.25), "n": [1, 2]})) == {"p": 0.25, "n": [1, 2]}
    with pytest.raises(ValueError):
        _json_body(lambda: {"p": np.float64("nan")})
    with pytest.raises(TypeError):
        _json_body(lambda: {"p": object()})


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_json_body_refuses_non_finite_floats(bad):
    with pytest.raises(ValueError, match="non-finite"):
        _json_body(lambda: {"direct_hit": None, "results": [{"score": 0.5}, {"score": bad}]})
    assert json.loads(_json_body(lambda: {"direct_hit": None, "q": "null", "s": 1.0})) == {"direct_hit": None, "q": "null",
                                                                                           "s": 1.0}


def test_non_finite_score_is_a_500_json_error(searcher50):
    class NaNService(Service):
        def search(self, q, k=None):
            return {"direct_hit": None, "results": [{"score": math.nan}]}

    s = settings_for()
    c = TestClient(create_app(s, NaNService(s, searcher50)), raise_server_exceptions=False)
    r = c.get("/search?q=kfc")
    assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"


def test_search_threads_return_results_and_exceptions():
    threads = SearchThreads(2)

    def boom():
        raise KeyError("x")

    async def go():
        ok = await asyncio.gather(*(threads.submit(lambda i=i: (i, threading.current_thread().name)) for i in range(20)))
        with pytest.raises(KeyError):
            await threads.submit(boom)
        return ok

    ok = asyncio.run(go())
    assert [i for i, _ in ok] == list(range(20))
    assert {name for _, name in ok} <= {"zhida-search-0", "zhida-search-1"}
    started = list(threads._threads)
    threads.close()
    for t in started:
        t.join(2)
        assert not t.is_alive()


def test_search_threads_start_on_first_job_and_stop_with_the_app(searcher50):
    import gc

    app = create_app(settings_for(), searcher50)
    threads = app.state.search_threads
    assert threads._threads == []
    TestClient(app).get("/search?q=kfc")
    started = list(threads._threads)
    assert len(started) == settings_for().search_threads and all(t.is_alive() for t in started)
    del app
    gc.collect()
    for t in started:
        t.join(2)
        assert not t.is_alive()


def test_search_threads_survive_a_timed_out_job():
    threads = SearchThreads(1)
    gate = threading.Event()

    async def go():
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await threads.submit(gate.wait, 5)
        gate.set()
        return await threads.submit(lambda: "next")

    assert asyncio.run(go()) == "next"
    threads.close()

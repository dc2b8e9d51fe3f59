"""Serving details of the app (search/api/app.py): error mapping, access log, CORS, JSON bodies, the thread
hand-off, and the one set of request rules for GET and POST."""

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
from search.api.app import _json_body
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
    rec = [m for m in caplog.records if m.name == "zhida.access"][-1]
    assert rec.q == "kfc" and rec.status == 200 and rec.path == "/search" and len(rec.request_id) == 32


def test_cors_headers(searcher50):
    c = TestClient(create_app(settings_for(cors_origins=("https://app.example",)), searcher50))
    for r in (c.get("/search?q=kfc", headers={"Origin": "https://app.example"}),
              c.post("/search", json={"q": "kfc"}, headers={"Origin": "https://app.example"})):
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://app.example"


# --- the JSON body and the thread hand-off -------------------------------------------------------------------


def test_json_body_is_the_compact_utf8_json_of_the_result(searcher50):
    for q in ("肯德基", "周末带娃去哪", "kfc 点餐"):
        d = searcher50.search(q, 10).to_dict()
        body = _json_body(lambda d=d: d, (), False)
        assert json.loads(body) == d
        assert body == json.dumps(d, ensure_ascii=False, separators=(",", ":")).encode() or b"e-" in body


def test_json_body_falls_back_to_the_standard_encoder():
    import numpy as np

    assert json.loads(_json_body(lambda: {"p": np.float64(0.25), "n": [1, 2]}, (), False)) == {"p": 0.25, "n": [1, 2]}
    with pytest.raises(ValueError):
        _json_body(lambda: {"p": np.float64("nan")}, (), False)
    with pytest.raises(TypeError):
        _json_body(lambda: {"p": object()}, (), False)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_bodies_are_built_finite(bad):
    """A non-finite number is refused where the body is built, whatever encoder writes it afterwards."""
    from search.types import Hit, IntentDecision, finite

    with pytest.raises(ValueError, match="non-finite"):
        Hit("a", "A", "brand", "c", bad, (), "r").to_dict()
    with pytest.raises(ValueError, match="non-finite"):
        IntentDecision("precise", bad, 0.7, 0.3).to_dict()
    with pytest.raises(ValueError, match="non-finite"):
        finite(bad)
    assert finite(0.1234567) == 0.123457


def test_non_finite_score_is_a_500_json_error(searcher50):
    from search.types import Hit

    class NaNService(Service):
        def search(self, q, k=None):
            d = self.searcher.search(q, k).to_dict()
            d["results"] = [Hit("a", "A", "brand", "c", math.nan, (), "r").to_dict()]
            return d

    s = settings_for()
    c = TestClient(create_app(s, NaNService(s, searcher50)), raise_server_exceptions=False)
    r = c.get("/search?q=kfc")
    assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"


def _gather(app, n, path="/search?q=kfc"):
    import httpx

    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            return await asyncio.gather(*(c.get(path) for _ in range(n)))

    return asyncio.run(go())


def test_searches_run_on_at_most_search_threads_threads(searcher50):
    """The hand-off is a pool of ``search_threads`` threads; the search runs in the request's context (its
    request id reaches log lines written there)."""
    import time

    from search.logs import request_id

    state = {"now": 0, "peak": 0, "threads": set()}
    lock = threading.Lock()

    class Slow(Service):
        def search(self, q, k=None):
            with lock:
                state["now"] += 1
                state["peak"] = max(state["peak"], state["now"])
                state["threads"].add(threading.current_thread().name)
                state.setdefault("ids", set()).add(request_id.get())
            time.sleep(0.02)
            with lock:
                state["now"] -= 1
            return super().search(q, k)

    s = settings_for(worker_threads=2)
    rs = _gather(create_app(s, Slow(s, searcher50)), 12)
    assert [r.status_code for r in rs] == [200] * 12
    assert state["peak"] == 2 and threading.current_thread().name not in state["threads"]
    assert len(state["ids"]) == 12 and all(len(i) == 32 for i in state["ids"])


def test_a_timed_out_search_is_a_503_and_the_next_is_served(searcher50):
    gate = threading.Event()

    class Stuck(Service):
        def search(self, q, k=None):
            if q == "stuck":
                gate.wait(5)
            return super().search(q, k)

    s = settings_for(request_timeout_s=0.1, worker_threads=1)
    app = create_app(s, Stuck(s, searcher50))
    try:
        (r,) = _gather(app, 1, "/search?q=stuck")
        assert r.status_code == 503 and r.json()["error"]["code"] == "timeout"
    finally:
        gate.set()
    (r,) = _gather(app, 1)
    assert r.status_code == 200

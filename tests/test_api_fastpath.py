"""The ``GET /search`` fast path (search/api/app.py) against FastAPI's own route: same answers, same errors."""

import asyncio
import json
import logging
import math
import threading
from urllib.parse import quote, quote_from_bytes

import pytest
from conftest import settings_for
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from search.api import create_app
from search.api.app import SearchThreads, _json_body, search_args
from search.errors import (
    BackendError,
    ConfigError,
    IndexIntegrityError,
    InvalidQueryError,
    UnsupportedOperationError,
    ZhidaError,
)
from search.service import AdminDisabledError, Service, UnauthorizedError


@pytest.fixture(scope="module")
def clients(searcher50):
    s = settings_for()
    return TestClient(create_app(s, searcher50)), TestClient(create_app(s, searcher50, fast_search=False))


def same_answer(fast, slow, url):
    a, b = fast.get(url), slow.get(url)
    assert a.status_code == b.status_code, url
    assert a.headers["content-type"] == b.headers["content-type"]
    ja, jb = a.json(), b.json()
    if a.status_code == 200:
        ja.pop("took_ms"), jb.pop("took_ms")
    assert ja == jb, url
    return a, b


# --- search_args: what the fast path takes -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("qs", "expected"),
    [
        (b"q=kfc", ("kfc", 10)),
        (b"q=kfc&k=3", ("kfc", 3)),
        (b"k=3&q=kfc", ("kfc", 3)),
        (b"q=a&q=kfc&k=3&k=4", ("kfc", 4)),  # last value wins, as in Starlette's QueryParams.get
        (b"q=%E8%82%AF%E5%BE%B7%E5%9F%BA", ("肯德基", 10)),
        (b"q=a+b", ("a b", 10)),
        (b"q=kfc&k=010", ("kfc", 10)),  # pydantic reads leading zeros too
        (b"q=kfc&x=1", ("kfc", 10)),  # unknown parameters are ignored by the route as well
        (b"q=kfc&k=50", ("kfc", 50)),
    ],
)
def test_search_args_accepts(qs, expected):
    assert search_args(qs, 64, 10, 50) == expected


@pytest.mark.parametrize(
    "qs",
    [b"", b"k=3", b"q=", b"q=" + b"x" * 65, b"q=kfc&k=", b"q=kfc&k=0", b"q=kfc&k=51", b"q=kfc&k=+5", b"q=kfc&k=5.0",
     b"q=kfc&k=-3", b"q=kfc&k=ten", b"q=kfc&k=" + b"9" * 12, b"q=kfc&k=%D9%A3"],
)
def test_search_args_leaves_the_rest_to_fastapi(qs):
    assert search_args(qs, 64, 10, 50) is None


# --- the fast path answers exactly like the route -------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["/search?q=肯德基", "/search?q=kfc&k=3", "/search?q=睡不着&k=5", "/search?q=周末带娃去哪", "/search?q=", "/search",
     "/search?q=kfc&k=0", "/search?q=kfc&k=+5", "/search?q=kfc&k=5.0", "/search?q=kfc&k=ten", "/search?q=" + "x" * 100,
     "/search?q=%00%01", "/search?q=%FF%FE", "/search?q=%20%20", "/search?q=a&q=kfc", "/search?q=kfc&k=1&k=99"],
)
def test_fast_path_matches_route(clients, url):
    same_answer(*clients, url)


_values = st.one_of(
    st.binary(max_size=12).map(quote_from_bytes),
    st.text(max_size=12).map(lambda t: quote(t.encode("utf-8", "surrogatepass"))),
    st.sampled_from(["kfc", "肯德基", "睡不着", "12306", "0", "1", "10", "010", "50", "51", "+5", "%205", "5.0", "-3",
                     "9" * 12, "%D9%A3", ""]).map(lambda v: v if "%" in v else quote(v)),
)
_pairs = st.lists(st.tuples(st.sampled_from(["q", "k", "x", "Q"]), _values), max_size=4)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pairs=_pairs)
def test_fast_path_matches_route_on_any_query_string(clients, pairs):
    same_answer(*clients, "/search?" + "&".join(f"{k}={v}" for k, v in pairs))


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
def test_errors_raised_by_the_search_map_the_same_way(searcher50, exc):
    s = settings_for()
    fast = TestClient(create_app(s, _Raising(s, searcher50, exc)), raise_server_exceptions=False)
    slow = TestClient(create_app(s, _Raising(s, searcher50, exc), fast_search=False), raise_server_exceptions=False)
    a, b = same_answer(fast, slow, "/search?q=kfc")
    assert a.status_code >= 400 and a.json()["error"]["code"]
    for h in ("retry-after", "www-authenticate"):
        assert a.headers.get(h) == b.headers.get(h)


def test_access_log_names_the_query_searched(clients, caplog):
    fast, _ = clients
    with caplog.at_level(logging.INFO, logger="zhida.access"):
        fast.get("/search?q=first&q=kfc")
    rec = [json.loads(m.getMessage()) for m in caplog.records if m.name == "zhida.access"][-1]
    assert rec["q"] == "kfc" and rec["status"] == 200 and rec["path"] == "/search"


@pytest.mark.parametrize("fast_search", [True, False])
def test_cors_headers_on_both_paths(searcher50, fast_search):
    c = TestClient(create_app(settings_for(cors_origins=("https://app.example",)), searcher50, fast_search=fast_search))
    r = c.get("/search?q=kfc", headers={"Origin": "https://app.example"})
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

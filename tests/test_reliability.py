"""Reliability: hostile input through HTTP and CLI, property tests, schema fuzzing, kills, reload, limits."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from conftest import CATALOG50, ROOT, TAXONOMY, TRAIN50, settings_for
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from search.api import create_app
from search.api.schemas import SearchResponseOut
from search.cli import main as cli_main
from search.config import Thresholds
from search.errors import InvalidQueryError
from search.normalize import normalize
from search.routing import route
from search.searcher import Searcher
from search.store import manifest_checksum

HOSTILE = [
    "", " ", "\t\n", "\r\n", "x" * 10000, "肯" * 10000, "a" * 64, "a" * 65, "肯" * 64, "肯" * 65, " " * 64 + "a",
    "👨‍👩‍👧‍👦", "👍🏻" * 5, "🇨🇳", "肯德基😀", "kfc🍔🍟", "\u200b", "\u200b肯德基\u200d", "\u202e星巴克", "\u2066kfc\u2069",
    "\ufeffkfc", "\u00ad", "\x00", "kfc\x00", "\x00\x00\x00", "\x07\x08\x1b[31m", "\x7f", "\x85", "\ud800", "\udfff",
    "a\ud800b", "\U0010ffff", "\ue000", "ＫＦＣ", "ｋｆｃ１２３", "ｓｔａｒｂｕｃｋｓ", "麥當勞", "Ελληνικά", "русский",
    "العربية", "עברית", "한국어", "日本語のテキスト", "𠀀𠀁", "̀́̂", "a\u0301", "' OR 1=1 --", "\"; DROP TABLE items; --",
    "<script>alert(1)</script>", "{\"q\":1}", "${jndi:ldap://x}", "../../etc/passwd", "%00", "%%%", "\\", "\\u0000",
    "null", "None", "NaN", "-1", "1e309", "0x41", "．．．", "。。。", "？", "!!!", "   肯德基   ", "kfc" * 21,
]


@pytest.fixture(scope="module")
def client(searcher50):
    return TestClient(create_app(settings_for(), searcher50), raise_server_exceptions=False)


def _check_http(r, k=10):
    assert r.status_code != 500 and r.status_code < 500, r.text[:300]
    assert "Traceback" not in r.text
    body = r.json()
    if r.status_code == 200:
        SearchResponseOut.model_validate(body)
        assert len(body["results"]) <= k
    else:
        assert 400 <= r.status_code < 500
        assert body["error"]["message"] and body["error"]["code"]


def test_hostile_table_is_large_enough():
    assert len(HOSTILE) >= 60


@pytest.mark.parametrize("q", HOSTILE)
def test_hostile_get_post_and_cli(client, index50, q, capsys):
    from urllib.parse import quote

    encodable = not any(0xD800 <= ord(c) <= 0xDFFF for c in q)  # lone surrogates: see the raw %ED%A0%80 case
    if encodable and len(quote(q)) < 60000:  # longer URLs are refused by the HTTP client itself; POST carries those
        _check_http(client.get("/search", params={"q": q}))
    body = json.dumps({"q": q, "k": 5})  # ASCII-escaped, so lone surrogates travel as \\ud800
    _check_http(client.post("/search", content=body, headers={"content-type": "application/json"}), k=5)
    rc = cli_main(["query", "--index", str(index50), "--json", "--", q])
    out = capsys.readouterr()
    if rc == 0:
        assert json.loads(out.out)["intent"]["label"] in ("precise", "fuzzy", "mixed")
    else:
        assert rc == 2 and out.err.startswith("error:") and "Traceback" not in out.err


@pytest.mark.parametrize(
    "raw",
    ["q=%ED%A0%80", "q=%FF%FE", "q=%", "q=%zz", "q=kfc&q=mcd", "q=kfc&k=5&k=6", "q=kfc&k=99999999999999999999",
     "q=kfc&k=-1", "q=kfc&k=1.5", "q=kfc&k=", "k=5", "q=kfc&unknown=1", "q=%00", "q=" + "%E8%82%AF" * 2000],
)
def test_hostile_raw_query_strings(client, raw):
    _check_http(client.get("/search?" + raw))


@pytest.mark.parametrize(
    "body",
    [{"q": 1}, {"q": None}, {"q": ["a"]}, {"q": {"a": 1}}, {"q": "kfc", "k": "5"}, {"q": "kfc", "k": 1e10},
     {"q": "kfc", "extra": 1}, [], "str", 123, {"q": "kfc", "k": True}, {"q": "kfc", "k": None}, {"q": "\ud800"}],
)
def test_hostile_json_bodies(client, body):
    _check_http(client.post("/search", content=json.dumps(body), headers={"content-type": "application/json"}))


@pytest.mark.parametrize("raw", [b"\xff\xfe\x00", b"", b"{", b'{"q": "kfc"', b"\x00" * 100, b'{"q": "\\ud800"}'])
def test_hostile_raw_bodies(client, raw):
    _check_http(client.post("/search", content=raw, headers={"content-type": "application/json"}))


def test_cli_batch_with_hostile_lines(index50, tmp_path, capsys):
    f = tmp_path / "q.txt"
    f.write_text("\n".join(q.replace("\n", " ") for q in HOSTILE if "\ud800" not in q and "\udfff" not in q), encoding="utf-8")
    rc = cli_main(["query", "--index", str(index50), "--batch", str(f)])
    lines = capsys.readouterr().out.strip().splitlines()
    assert rc in (0, 1) and lines
    for line in lines:
        d = json.loads(line)
        assert "error" in d or "results" in d


# --- property tests ------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(q=st.text(max_size=80), k=st.integers(min_value=1, max_value=50))
@example(q="MJ", k=7)  # a precise page whose alternatives include another category's closer item
def test_search_properties(searcher50, q, k):
    try:
        r = searcher50.search(q, k)
    except InvalidQueryError:
        return
    ids = {it.id for it in searcher50.items}
    assert len(r.results) <= k
    assert all(h.id in ids for h in r.results)
    scores = [h.score for h in r.results]
    assert scores == sorted(scores, reverse=True)
    assert r.intent.label == route(r.intent.p_precise, searcher50.thresholds)
    json.dumps(r.to_dict(), ensure_ascii=False).encode("utf-8")


@given(st.text())
def test_normalize_idempotent(s):
    assert normalize(normalize(s)) == normalize(s)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(q=st.text(max_size=30))
def test_suggest_never_raises_unexpectedly(searcher50, q):
    try:
        r = searcher50.suggest(q, 8)
    except InvalidQueryError:
        return
    assert len(r["suggestions"]) <= 8


# --- schema fuzzing ------------------------------------------------------------------------------


def test_openapi_fuzzing(searcher50):
    import schemathesis
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    app = create_app(settings_for(admin_token="tok"), searcher50)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    failures = []
    for op in schema.get_all_operations():
        operation = op.ok()

        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        @given(case=operation.as_strategy())
        def run(case):
            case.call_and_validate(checks=checks)

        try:
            run()
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.label}: {str(exc)[:500]}")
    assert not failures, "\n".join(failures)


# --- index safety: kills ---------------------------------------------------------------------------


def test_build_killed_at_random_points_leaves_previous_index(searcher50, tmp_path):
    """SIGKILL a build at random moments: the served index is always a complete one, and the previous
    version stays on disk unchanged (the symlink switch is the only moment of publication)."""
    target = tmp_path / "index"
    searcher50.save(target)
    rng = random.Random(11)
    cmd = [sys.executable, "-m", "search", "build", "--catalog", str(CATALOG50), "--taxonomy", str(TAXONOMY),
           "--train", str(TRAIN50), "--out", str(target), "--encoder", "svd", "--quiet"]
    env = {**os.environ, "ZHIDA_SVD_DIM": "48", "ZHIDA_THRESHOLDS_PATH": str(tmp_path / "none.json")}
    for _ in range(4):
        prev_dir, prev_sum = os.path.realpath(target), manifest_checksum(target)
        p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, 3.0))
        p.send_signal(signal.SIGKILL)
        p.wait()
        assert manifest_checksum(prev_dir) == prev_sum  # the previous version is untouched
        Searcher.load(prev_dir, settings_for(tmp_path))
        Searcher.load(target, settings_for(tmp_path))  # whatever is served is complete and verified
        if os.path.realpath(target) == prev_dir:
            assert manifest_checksum(target) == prev_sum
    leftovers = [x for x in tmp_path.iterdir() if ".tmp-" in x.name]
    assert len(leftovers) <= 4  # a killed build may leave its temp folder; it is never served


# --- hot reload under a steady query stream ----------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_hot_reload_under_load(index50, searcher50, tmp_path):
    import httpx
    import uvicorn

    second = tmp_path / "index2"
    searcher50.save(second)
    bad = tmp_path / "bad"
    shutil.copytree(os.path.realpath(index50), bad)
    (bad / "bm25_data.npy").write_bytes(b"garbage")
    # index50 and the test's own folders live in different temporary folders: their common parent is the index root
    st_ = settings_for(tmp_path, admin_token="tok", index_root=str(tmp_path.parent))
    app = create_app(st_, Searcher.load(index50, st_))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(base + "/healthz", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.05)
    stats = {"ok": 0, "failed": 0}
    stop = threading.Event()

    def stream():
        with httpx.Client(base_url=base, timeout=5) as c:
            qs = ["肯德基", "睡不着", "kfc", "周末带娃去哪", "12306"]
            i = 0
            while not stop.is_set():
                r = c.get("/search", params={"q": qs[i % len(qs)]})
                stats["ok" if r.status_code == 200 and r.json()["results"] else "failed"] += 1
                i += 1

    threads = [threading.Thread(target=stream) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        h = {"Authorization": "Bearer tok"}
        with httpx.Client(base_url=base, timeout=30) as c:
            for i in range(6):
                r = c.post("/admin/reload", json={"path": str(second if i % 2 == 0 else index50)}, headers=h)
                assert r.status_code == 200, r.text
            r = c.post("/admin/reload", json={"path": str(bad)}, headers=h)
            assert r.status_code == 409 and "bm25_data.npy" in r.json()["error"]["message"]
            assert c.post("/admin/reload", json={"path": str(second)}).status_code == 401
            assert c.get("/search", params={"q": "肯德基"}).json()["results"][0]["name"] == "肯德基"
            assert c.get("/readyz").json()["reloads"] == 6
    finally:
        stop.set()
        for t in threads:
            t.join()
        server.should_exit = True
        th.join(timeout=10)
    assert stats["failed"] == 0 and stats["ok"] > 50, stats


# --- limits and hygiene ----------------------------------------------------------------------------


class _Slow:
    """Wraps a searcher; its search sleeps, to exercise the timeout and concurrency limits."""

    def __init__(self, inner, delay):
        self.inner, self.delay = inner, delay

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def search(self, q, k=None, thresholds=None):
        time.sleep(self.delay)
        return self.inner.search(q, k, thresholds)


def test_request_timeout_is_503(searcher50):
    c = TestClient(create_app(settings_for(request_timeout_s=0.2), _Slow(searcher50, 0.6)))
    r = c.get("/search", params={"q": "kfc"})
    assert r.status_code == 503 and r.json()["error"]["code"] == "timeout"


def test_concurrency_bound_is_503(searcher50):
    import httpx

    app = create_app(settings_for(max_concurrency=1), _Slow(searcher50, 0.5))

    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            return await asyncio.gather(*[c.get("/search", params={"q": "kfc"}) for _ in range(3)])

    codes = sorted(r.status_code for r in asyncio.run(go()))
    assert codes[0] == 200 and 503 in codes


def test_logs_are_json_with_bounded_query_and_request_id(searcher50, caplog):
    c = TestClient(create_app(settings_for(), searcher50))
    secret = "肯德基" + "秘" * 40
    with caplog.at_level(logging.INFO, logger="zhida.access"):
        r = c.get("/search", params={"q": secret}, headers={"X-Request-ID": "rid-1"})
    assert r.headers["x-request-id"] == "rid-1"
    record = [m for m in caplog.records if m.name == "zhida.access"][-1]
    from pythonjsonlogger.json import JsonFormatter

    from search.logs import logging_config

    options = {k: v for k, v in logging_config("json")["formatters"]["zhida"].items() if k != "()"}
    rec = json.loads(JsonFormatter(**options).format(record))
    assert rec["request_id"] == "rid-1" and rec["status"] == r.status_code and rec["logger"] == "zhida.access"
    assert rec["level"] == "INFO" and rec["timestamp"]
    assert len(rec["q"]) <= 16 and "秘" * 20 not in caplog.text


def test_admin_token_compared_in_constant_time():
    import inspect

    from search import service

    assert "hmac.compare_digest" in inspect.getsource(service.Service.check_admin)


def test_cors_can_be_enabled_explicitly(searcher50):
    c = TestClient(create_app(settings_for(cors_origins=("https://app.example",)), searcher50))
    r = c.get("/search", params={"q": "kfc"}, headers={"Origin": "https://app.example"})
    assert r.headers.get("access-control-allow-origin") == "https://app.example"


def test_threshold_route_consistency_after_live_change(searcher50):
    s = Searcher.__new__(Searcher)
    s.__dict__.update(searcher50.__dict__)
    s.set_thresholds(Thresholds(0.9, 0.8))
    r = s.search("肯德基")
    assert r.intent.label == route(r.intent.p_precise, Thresholds(0.9, 0.8))

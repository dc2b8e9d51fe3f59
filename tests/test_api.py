"""HTTP API through TestClient: answers, 422 errors with JSON bodies, headers, admin."""

import pytest
from conftest import settings_for
from fastapi.testclient import TestClient

from search.api import create_app


@pytest.fixture(scope="module")
def client(searcher50):
    return TestClient(create_app(settings_for(), searcher50))


def test_get_search_matches_python_api(client, searcher50):
    r = client.get("/search", params={"q": "肯德基", "k": 3})
    assert r.status_code == 200
    body = r.json()
    expected = searcher50.search("肯德基", 3).to_dict()
    body.pop("took_ms"), expected.pop("took_ms")
    assert body == expected
    assert r.headers["x-request-id"]


def test_a_query_typed_in_pinyin_says_what_it_was_read_as(client):
    assert client.get("/search", params={"q": "shuibuzhao"}).json()["read_as"] == "睡不着"
    assert client.get("/search", params={"q": "睡不着"}).json()["read_as"] is None


def test_post_search(client):
    r = client.post("/search", json={"q": "睡不着", "k": 8})
    assert r.status_code == 200
    assert r.json()["intent"]["label"] == "fuzzy"
    assert 1 <= len(r.json()["results"]) <= 8


@pytest.mark.parametrize(
    ("params", "field"),
    [({"q": ""}, "q"), ({"q": "   "}, "q"), ({"q": "x" * 100}, "q"), ({}, "q"), ({"q": "kfc", "k": 0}, "k"),
     ({"q": "kfc", "k": 51}, "k"), ({"q": "kfc", "k": "ten"}, "k"), ({"q": "kfc", "k": -3}, "k")],
)
def test_get_422_with_json_error(client, params, field):
    r = client.get("/search", params=params)
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["field"] == field and err["message"] and "Traceback" not in r.text


@pytest.mark.parametrize(
    "body",
    [{"q": 5}, {"q": None}, {"k": 3}, {"q": "kfc", "k": "x"}, {"q": "kfc", "extra": 1}, ["kfc"], "kfc", {"q": ["a"]}],
)
def test_post_422_with_json_error(client, body):
    r = client.post("/search", json=body)
    assert r.status_code == 422
    assert r.json()["error"]["message"]


def test_invalid_json_body(client):
    r = client.post("/search", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422


def test_body_limit(client):
    r = client.post("/search", content=b"{" + b" " * 20000 + b"}", headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "body_too_large"


def test_health_ready_and_docs(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["items"] == 50
    assert client.get("/openapi.json").status_code == 200


def test_unknown_route_is_json(client):
    r = client.get("/nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "http_error"


def test_request_id_echoed(client):
    r = client.get("/search", params={"q": "kfc"}, headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"


def test_admin_disabled_without_token(client):
    r = client.get("/admin/thresholds")
    assert r.status_code == 403 and r.json()["error"]["code"] == "admin_disabled"


def test_cors_off_by_default(client):
    r = client.get("/search", params={"q": "kfc"}, headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers


# --- the HTTP edge: hardening headers, limits, readiness detail -----------------------------------------------


def _asgi(app, method: str, path: str, headers: list[tuple[bytes, bytes]], chunks: list[bytes]):
    """Drive the ASGI app directly: the status and how many body chunks it asked for."""
    import asyncio

    sent, read = [], {"n": 0}

    async def receive():
        if read["n"] < len(chunks):
            read["n"] += 1
            return {"type": "http.request", "body": chunks[read["n"] - 1], "more_body": read["n"] < len(chunks)}
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "path": path,
             "raw_path": path.encode(), "query_string": b"", "headers": headers, "scheme": "http",
             "server": ("t", 80), "client": ("127.0.0.1", 1), "root_path": ""}
    asyncio.run(asyncio.wait_for(app(scope, receive, send), 20))
    return next(m["status"] for m in sent if m["type"] == "http.response.start"), read["n"]


def test_anonymous_admin_post_is_refused_before_its_body_is_read(searcher50):
    app = create_app(settings_for(admin_token="s3cret"), searcher50)
    chunks = [b"x" * 65536] * 64  # 4 MiB
    status, read = _asgi(app, "POST", "/admin/items", [(b"content-type", b"application/json"),
                                                       (b"content-length", b"4194304")], chunks)
    assert status == 401 and read == 0
    status, read = _asgi(app, "POST", "/admin/items", [(b"content-type", b"application/json")], chunks)  # chunked
    assert status == 401 and read == 0


def test_body_limit_is_checked_while_the_body_streams_in(searcher50):
    """No length given: 413 as soon as the limit is passed, the rest of the body never asked for."""
    app = create_app(settings_for(), searcher50)  # max_body_bytes 16 KiB
    status, read = _asgi(app, "POST", "/search", [(b"content-type", b"application/json")], [b" " * 4096] * 100)
    assert status == 413 and read == 5


def test_header_limits(client):
    many = {f"x-h{i}": "v" for i in range(120)}
    assert client.get("/healthz", headers=many).status_code == 431
    r = client.get("/healthz", headers={"x-big": "a" * 20000})
    assert r.status_code == 431 and r.json()["error"]["code"] == "headers_too_large"
    assert client.get("/healthz", headers={f"x-h{i}": "v" for i in range(20)}).status_code == 200


def test_hardening_headers(searcher50):
    c = TestClient(create_app(settings_for(admin_token="s3cret"), searcher50))
    for r in (c.get("/search", params={"q": "kfc"}), c.get("/nope"), c.get("/search", params={"q": ""}),
              c.get("/docs"), c.get("/admin/thresholds"), c.get("/metrics")):
        assert r.headers["x-content-type-options"] == "nosniff"
        assert "server" not in r.headers
    for r in (c.get("/admin/thresholds"), c.get("/admin/thresholds", headers={"Authorization": "Bearer s3cret"})):
        assert r.headers["cache-control"] == "no-store"


def test_readyz_shows_path_and_pid_only_with_the_admin_token(searcher50):
    c = TestClient(create_app(settings_for(admin_token="s3cret"), searcher50))
    public = c.get("/readyz").json()
    assert public["status"] == "ready" and public["items"] == 50 and public["version"]
    assert "index" not in public and "pid" not in public
    assert c.get("/readyz", headers={"Authorization": "Bearer wrong"}).json().keys() == public.keys()
    full = c.get("/readyz", headers={"X-Admin-Token": "s3cret"}).json()
    assert "pid" in full and "index" in full and full["items"] == 50


def test_docs_render_with_no_network(client):
    """Every asset /docs and /redoc reference is served by the app itself."""
    import re

    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        refs = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert refs and all(ref.startswith("/") and not ref.startswith("//") for ref in refs), refs
        assert "cdn" not in html.lower() and "fonts.googleapis" not in html
        for ref in refs:
            r = client.get(ref)
            assert r.status_code == 200 and len(r.content) > 1000, ref
        assert "/openapi.json" in html


def test_openapi_documents_every_endpoint(client):
    import json

    spec = client.get("/openapi.json").json()
    assert "#/$defs/" not in json.dumps(spec)  # every reference resolves inside the document
    expected = {("/search", "get"), ("/search", "post"), ("/suggest", "get"), ("/explain", "get"), ("/healthz", "get"),
                ("/readyz", "get"), ("/metrics", "get"), ("/admin/thresholds", "get"), ("/admin/thresholds", "put"),
                ("/admin/reload", "post"), ("/admin/items", "post"), ("/admin/items/{item_id}", "delete")}
    got = {(p, m) for p, ops in spec["paths"].items() for m in ops}
    assert expected <= got
    for path, method in expected:
        ok = spec["paths"][path][method]["responses"]["200"]["content"]
        schema = next(iter(ok.values()))["schema"]
        assert schema.get("$ref") or schema.get("type") == "string", (path, method, schema)
        if schema.get("$ref"):
            name = schema["$ref"].rsplit("/", 1)[1]
            assert spec["components"]["schemas"][name]["properties"], name
    body = spec["paths"]["/admin/items"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    item = body["properties"]["items"]["items"]
    item = spec["components"]["schemas"][item["$ref"].rsplit("/", 1)[1]] if "$ref" in item else item
    assert {"id", "name", "aliases", "type", "category", "description", "tags", "actions", "popularity"} <= set(item["properties"])


def test_metrics_after_a_few_queries(searcher50):
    c = TestClient(create_app(settings_for(), searcher50))
    for q in ("kfc", "肯德基", "睡不着"):
        assert c.get("/search", params={"q": q}).status_code == 200
    text = c.get("/metrics").text
    assert 'zhida_http_request_duration_seconds_bucket{endpoint="/search",le="0.005"}' in text
    assert 'zhida_search_duration_seconds_count{route="' in text
    assert 'zhida_http_requests_total{endpoint="/search",status="200"}' in text
    assert 'zhida_cache_hits_total{cache="embedding"}' in text or 'zhida_cache_misses_total{cache="embedding"}' in text
    assert "zhida_index_items " in text and 'zhida_threshold{name="t_precise"}' in text


def test_metrics_token(searcher50):
    c = TestClient(create_app(settings_for(metrics_token="m3"), searcher50))
    assert c.get("/metrics").status_code == 401
    assert c.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert c.get("/metrics", headers={"Authorization": "Bearer m3"}).status_code == 200

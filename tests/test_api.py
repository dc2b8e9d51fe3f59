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

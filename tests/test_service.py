"""Reload (search/service.py): the fence (index root, links, FIFOs, devices, oversize manifests) and the deadline
(an abandoned load never swaps itself in and holds no lock)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import time

import pytest
from conftest import ROOT, settings_for
from fastapi.testclient import TestClient

from search import service as service_module
from search.api import create_app
from search.searcher import Searcher
from search.service import Service

AUTH = {"Authorization": "Bearer tok"}


@pytest.fixture
def served(searcher50, tmp_path):
    """A service over ``root/index`` (the symlink layout a build writes); ``index_root`` defaults to ``root``."""
    root = tmp_path / "root"
    searcher50.save(root / "index")
    settings = settings_for(tmp_path, admin_token="tok")
    svc = Service(settings, Searcher.load(root / "index", settings))
    return svc, TestClient(create_app(settings, svc), raise_server_exceptions=False), root


def _reload(client, path=None, bound=60.0):
    """POST /admin/reload within ``bound`` seconds; a FIFO a load blocked on is opened for writing to release it."""
    out = {}
    t = threading.Thread(target=lambda: out.update(r=client.post("/admin/reload", json={"path": str(path)} if path else None,
                                                                 headers=AUTH)), daemon=True)
    t.start()
    t.join(bound)
    if t.is_alive() and path is not None:
        for p in (path.iterdir() if path.is_dir() else ()):
            if stat.S_ISFIFO(p.lstat().st_mode):
                os.close(os.open(p, os.O_WRONLY | os.O_NONBLOCK))
        t.join(10)
        pytest.fail("the reload blocked")
    return out["r"]


def _forged(root, index50, name):
    """A copy of the 50-item index inside the root, to be damaged by the caller."""
    dst = root / name
    shutil.copytree(os.path.realpath(index50), dst)
    return dst


def _outside_link(root, index50, tmp_path):
    (root / "escape").symlink_to(os.path.realpath(index50))
    return root / "escape"


def _file_link(root, index50, tmp_path):
    idx = _forged(root, index50, "forged")
    shutil.copy(idx / "items.jsonl", tmp_path / "secret.jsonl")  # same bytes: the manifest's size and sha256 match
    (idx / "items.jsonl").unlink()
    (idx / "items.jsonl").symlink_to(tmp_path / "secret.jsonl")
    return idx


def _fifo(root, index50, tmp_path):
    idx = _forged(root, index50, "fifo")
    (idx / "manifest.json").unlink()
    os.mkfifo(idx / "manifest.json")
    return idx


def _oversize(root, index50, tmp_path):
    idx = _forged(root, index50, "big")
    m = (idx / "manifest.json").read_text()
    (idx / "manifest.json").write_text(m[:-1] + " " * (2 << 20) + m[-1])
    return idx


@pytest.mark.parametrize("make, reason", [
    (lambda root, index50, tmp: index50, "not under the index root"),
    (_outside_link, "not under the index root"),
    (_file_link, "items.jsonl: is a symbolic link"),
    (_fifo, "manifest.json: is a FIFO"),
    (_oversize, "more than max_manifest_bytes"),
], ids=["outside-root", "link-out-of-root", "file-linked-outside", "fifo-manifest", "oversize-manifest"])
def test_fence_refuses_with_409_and_the_old_index_keeps_serving(served, index50, tmp_path, make, reason):
    svc, client, root = served
    before = svc.searcher
    r = _reload(client, make(root, index50, tmp_path))
    assert r.status_code == 409 and r.json()["error"]["code"] == "index_integrity", r.text
    assert reason in r.json()["error"]["message"] and "old index keeps serving" in r.json()["error"]["message"]
    assert svc.searcher is before and client.get("/readyz").json()["reloads"] == 0
    assert client.get("/search", params={"q": "肯德基"}).json()["results"][0]["name"] == "肯德基"
    r = _reload(client)  # nothing is left holding the reload lock
    assert r.status_code == 200 and r.json()["reloads"] == 1


_DEV_ZERO = """
import json, sys, time
import psutil
from fastapi.testclient import TestClient
from search.api import create_app
from search.config import Settings
from search.service import open_searcher
settings = Settings(encoder="svd", admin_token="tok", thresholds_path=sys.argv[3])
client = TestClient(create_app(settings, open_searcher(sys.argv[1], settings)))
rss = lambda: psutil.Process().memory_info().rss / 2**20
before, t0 = rss(), time.monotonic()
r = client.post("/admin/reload", json={"path": sys.argv[2]}, headers={"Authorization": "Bearer tok"})
print(json.dumps({"status": r.status_code, "body": r.json(), "seconds": time.monotonic() - t0, "rss_before_mb": before,
                  "rss_after_mb": rss(), "search": client.get("/search", params={"q": "kfc"}).status_code}))
"""


def test_manifest_linked_to_dev_zero_is_refused_unread(served, tmp_path):
    """The reported attack: a folder whose manifest.json is a symlink to /dev/zero. Without the fence a reload read it
    until the process died; it runs in a child process capped at 3 GB of address space and 120 s, so that even a
    regression cannot take the test machine down."""
    import resource

    _, _, root = served
    evil = root / "evil"
    evil.mkdir()
    (evil / "manifest.json").symlink_to("/dev/zero")

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

    out = subprocess.run([sys.executable, "-c", _DEV_ZERO, str(root / "index"), str(evil), str(tmp_path / "none.json")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120, preexec_fn=cap)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"/dev/zero manifest: HTTP {res['status']} in {res['seconds'] * 1000:.0f} ms, RSS {res['rss_before_mb']:.0f} → "
          f"{res['rss_after_mb']:.0f} MB; {res['body']['error']['message']}")
    assert res["status"] == 409 and "manifest.json: is a symbolic link" in res["body"]["error"]["message"]
    assert res["rss_after_mb"] < res["rss_before_mb"] + 50 and res["search"] == 200


def _reload_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "zhida-reload"]


def _wait_no_reload_threads(seconds: float = 30) -> None:
    end = time.monotonic() + seconds
    while _reload_threads() and time.monotonic() < end:
        time.sleep(0.02)
    assert not _reload_threads(), "an abandoned load did not stop"


def test_deadline_abandons_a_hung_load_which_never_swaps_in(searcher50, index50, tmp_path, monkeypatch):
    """A load that hangs (as one blocked on a FIFO did): at the deadline the reload answers 503, the lock is free
    for catalog changes, and when the load finally returns, its searcher is dropped, not swapped in."""
    root = index50.parent
    settings = settings_for(tmp_path, admin_token="tok", reload_timeout_s=0.5)
    original = Searcher.load(index50, settings)
    svc = Service(settings, original)
    client = TestClient(create_app(settings, svc), raise_server_exceptions=False)
    release, late = threading.Event(), []

    def hung(path, settings, root=None, deadline=None):
        release.wait(30)
        late.append(Searcher.load(path, settings))
        return late[-1]

    monkeypatch.setattr(service_module, "open_searcher", hung)
    r = _reload(client, index50)
    assert r.status_code == 503 and r.json()["error"]["code"] == "reload_timeout", r.text
    assert "reload_timeout_s (0.5 s)" in r.json()["error"]["message"] and r.headers["retry-after"]
    # the lock is free: a catalog change is answered at once (the embedded backend refuses it: 409)
    done = {}
    item = original.items[0].id
    t = threading.Thread(target=lambda: done.update(r=client.delete(f"/admin/items/{item}", headers=AUTH)), daemon=True)
    t.start()
    t.join(30)
    assert not t.is_alive() and done["r"].status_code == 409
    r = _reload(client, index50)  # while the abandoned load still runs: refused, not queued behind it
    assert r.status_code == 503 and "still stopping" in r.json()["error"]["message"]
    release.set()
    _wait_no_reload_threads()
    assert late and svc.searcher is original and client.get("/readyz").json()["reloads"] == 0
    monkeypatch.undo()
    svc.settings = settings.replace(reload_timeout_s=60)  # the real load of even 50 items may take longer than 0.5 s
    r = _reload(client, root / "index")
    assert r.status_code == 200 and svc.searcher is not original and svc.searcher is not late[0]


def test_deadline_stops_a_real_load(served, tmp_path):
    """With a deadline far shorter than the load, the real loader stops at its next check, and nothing changes."""
    svc, _, root = served
    before = svc.searcher
    svc.settings = svc.settings.replace(reload_timeout_s=0.001)
    client = TestClient(create_app(svc.settings, svc), raise_server_exceptions=False)
    r = _reload(client, root / "index")
    assert r.status_code == 503 and r.json()["error"]["code"] == "reload_timeout", r.text
    _wait_no_reload_threads()
    assert svc.searcher is before and svc.reloads == 0


_RELOADS = """
import json, sys
import psutil
from conftest import CATALOG50, TAXONOMY, TRAIN50
from search.catalog import load_catalog, load_train
from search.config import Settings
from search.searcher import Searcher
from search.service import Service, open_searcher
settings = Settings(verify_index="size", thresholds_path=sys.argv[2])
items = load_catalog(CATALOG50, TAXONOMY)
Searcher.build(items, [(t.query, t.intent) for t in load_train(TRAIN50)[0]], settings).save(sys.argv[1])
svc = Service(settings, open_searcher(sys.argv[1], settings))
rss = lambda: psutil.Process().memory_info().rss / 2**20
svc.searcher.search("睡不着", 10)
fresh, after = rss(), []
for _ in range(10):
    svc.reload(sys.argv[1])
    svc.searcher.search("睡不着", 10)
    after.append(rss())
print(json.dumps({"fresh_mb": fresh, "after_mb": after}))
"""


def test_memory_stays_flat_across_ten_reloads(tmp_path):
    """The reported leak: every reload left the whole previous index (its encoder above all) resident, four times
    the fresh figure after ten. The default encoder is what makes an index heavy, so the 50-item catalog is built
    with it here; a child process keeps the measurement free of the test session's own memory."""
    out = subprocess.run([sys.executable, "-c", _RELOADS, str(tmp_path / "index"), str(tmp_path / "none.json")],
                         cwd=ROOT / "tests", capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}"})
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"resident memory: fresh {res['fresh_mb']:.0f} MB; after each of 10 reloads "
          + " ".join(f"{m:.0f}" for m in res["after_mb"]) + f" MB (x{res['after_mb'][-1] / res['fresh_mb']:.2f})")
    assert max(res["after_mb"]) <= 1.25 * res["fresh_mb"]

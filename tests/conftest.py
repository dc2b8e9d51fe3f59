"""Shared fixtures: a 50-item catalog and an index built from it once per session (SVD encoder, fast)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# ranx's metric kernels are numba functions. A fresh environment has no compiled copies on disk, and compiling them
# took about three of a clean clone's nine minutes of tests; the tests' runs are a few dozen queries, which the same
# kernels answer interpreted in milliseconds. Set before anything imports numba (subprocesses inherit it); `make eval`
# and the tuner keep the compiled kernels.
os.environ.setdefault("NUMBA_DISABLE_JIT", "1")

import pytest

from search.catalog import load_catalog, load_train
from search.config import Settings
from search.searcher import Searcher

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).parent.parent
TAXONOMY = ROOT / "index_data" / "taxonomy.txt"
CATALOG50 = DATA / "catalog50.jsonl"
TRAIN50 = DATA / "train50.jsonl"
# a few judged needs over catalog50's categories: command-line builds of the 50-item catalog name it, so that they do
# not train on the default catalog's 19,000 needs (half a minute per build)
CATEGORY50 = DATA / "category_train50.jsonl"
# the Makefile's BUILD_ENV for index builds (glibc's malloc keeps freed buffers for reuse; see the Makefile)
BUILD_TUNABLES = "glibc.malloc.mmap_threshold=1073741824:glibc.malloc.trim_threshold=1073741824"


def settings_for(tmp: Path | None = None, **kw) -> Settings:
    """Fast test settings; every file the server reads or writes (thresholds, their history, labels, the tuning
    table, mined traffic) under ``tmp``, or absent, never in the working tree."""
    d = tmp or Path("/nonexistent")
    base = dict(encoder="svd", svd_dim=48, thresholds_path=str(d / "thresholds.json"),
                thresholds_history_path=str(d / "thresholds_history.jsonl"), labels_review_path=str(d / "labels.jsonl"),
                tuning_table_path=str(d / "tuning_table.json"), traffic_dir=str(d / "mined"),
                traffic_log=False)  # tests that record traffic turn it on with a store of their own
    base.update(kw)
    return Settings(**base)


@pytest.fixture(scope="session")
def items50():
    return load_catalog(CATALOG50, TAXONOMY)


@pytest.fixture(scope="session")
def train50():
    rows, problems = load_train(TRAIN50)
    assert not problems
    return [(t.query, t.intent) for t in rows]


@pytest.fixture(scope="session")
def searcher50(items50, train50):
    return Searcher.build(items50, train50, settings_for())


@pytest.fixture(scope="session")
def index50(tmp_path_factory, searcher50):
    """The 50-item index saved once; tests that damage an index copy it first."""
    path = tmp_path_factory.mktemp("idx") / "index"
    searcher50.save(path)
    return path


def wait_answering(url: str, proc: subprocess.Popen, seconds: float = 90, log: Path | None = None) -> None:
    """Poll ``url`` until it answers 200; fail (naming the exit code, and the end of ``log`` when given) if ``proc``
    exits first, or kill it and fail after ``seconds``."""
    import httpx

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-4000:] if log is not None and log.exists() else ""
            raise AssertionError(f"{proc.args[0]} exited with {proc.returncode}\n{tail}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"{url} not answering after {seconds:g} s")


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


# The default catalog's index takes minutes to build, most of it in training the category model on one core. The
# build starts in a child process as soon as the collection shows a selected test needs it, and those tests run
# last: the rest of the suite runs on the other core meanwhile.
_DEFAULT_BUILD = pytest.StashKey["DefaultIndexBuild"]()


class DefaultIndexBuild:
    """``python -m search build`` of the default catalog into a temporary folder, in a child process."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="zhida-default-index-"))
        self.path = self.root / "index"
        self.log = self.root / "build.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZHIDA_")}  # the defaults, as served
        env["ZHIDA_THRESHOLDS_PATH"] = str(self.root / "none.json")
        env["GLIBC_TUNABLES"] = BUILD_TUNABLES  # as `make index` builds it: the same index, a quarter faster
        # at the lowest priority: the tests keep the CPU they ask for (servers with two workers and a client
        # measure nothing, but their reload and shutdown races widen when starved), and the build takes the rest
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "search", "build", "--quiet", "--out", str(self.path)],
                                         cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         preexec_fn=lambda: os.nice(19))

    def wait(self) -> Path:
        if self.proc.wait() != 0:
            tail = self.log.read_text(encoding="utf-8", errors="replace")[-4000:]
            raise AssertionError(f"building the default index failed ({self.proc.returncode}):\n{tail}")
        return self.path

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def _uses_default_index(item: pytest.Item) -> bool:
    return "default_index" in getattr(item, "fixturenames", ())


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """The tests on the default index after all the others (otherwise in collection order)."""
    items.sort(key=_uses_default_index)


def pytest_collection_finish(session):
    if not session.config.option.collectonly and any(_uses_default_index(i) for i in session.items):
        session.config.stash[_DEFAULT_BUILD] = DefaultIndexBuild()


def pytest_unconfigure(config):
    build = config.stash.get(_DEFAULT_BUILD, None)
    if build is not None:
        build.close()


@pytest.fixture(scope="session")
def default_index(request, tmp_path_factory):
    """The default catalog built with the default encoder (USE v3) and the default training files, once per session:
    (path, settings)."""
    build = request.config.stash.get(_DEFAULT_BUILD, None)
    if build is None:  # asked for by a test the collection did not show using it (getfixturevalue)
        build = request.config.stash[_DEFAULT_BUILD] = DefaultIndexBuild()
    path = build.wait()
    return path, Settings(thresholds_path=str(tmp_path_factory.mktemp("t") / "none.json"), traffic_log=False)


@pytest.fixture(scope="session")
def default_searcher(default_index):
    path, settings = default_index
    return Searcher.load(path, settings)


# Judged queries over the 50-item catalog for the console's tuning table: scores spread so that moving t_fuzzy
# below ~0.2 re-routes some of them (b站, 招行, 想学日语 score 0.17–0.2 on the test index).
CONSOLE_QUERIES = [
    ("肯德基", "precise", {"brand-0055": 2}), ("kfc", "precise", {"brand-0055": 2}), ("麦当劳", "precise", {"brand-0056": 2}),
    ("星巴克会员", "precise", {"brand-0018": 2}), ("12306", "precise", {"brand-0144": 2}),
    ("饿了么", "precise", {"brand-0167": 2}), ("滴滴", "precise", {"brand-0028": 2}), ("b站", "precise", {"brand-0045": 2}),
    ("京东", "precise", {"brand-0009": 2}), ("招行", "precise", {"brand-0240": 2}),
    ("睡不着", "fuzzy", {"ct-sleep-whitenoise": 2, "ct-mind-meditation": 2}), ("饿了", "fuzzy", {"svc-food-delivery": 2}),
    ("周末带娃去哪", "fuzzy", {"ct-fun-kidsplaces": 2}), ("想学日语", "fuzzy", {"ct-lang-japanese": 2}),
    ("在家锻炼", "fuzzy", {"ct-fit-home": 2}), ("买菜", "fuzzy", {"svc-food-buyveg": 2}),
    ("看电影", "fuzzy", {"svc-tr-movie": 2}), ("心情不好", "fuzzy", {"mp-med-jiandan": 2}),
]


@pytest.fixture(scope="session")
def tuning_table(tmp_path_factory, searcher50):
    """The tuner's per-query table for the 50-item index (dev = the queries above, hard dev = their second half),
    written as the artifact ``python -m eval tune`` writes."""
    from eval.tuning import build_table
    from search.catalog import DevQuery
    from search.tuning import write_tables

    qs = [DevQuery(f"{'p' if i == 'precise' else 'f'}{n:03d}", q, i, rel) for n, (q, i, rel) in enumerate(CONSOLE_QUERIES, 1)]
    path = tmp_path_factory.mktemp("tune") / "table.json"
    write_tables(path, {"dev": build_table(searcher50, qs), "hard_dev": build_table(searcher50, qs[len(qs) // 2:])},
                 {"dev": {"path": "console-test", "queries_sha256": "0" * 64}}, {"created": "test", "index": "index50"})
    return path

"""Shared fixtures: a 50-item catalog and an index built from it once per session (SVD encoder, fast)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from search.catalog import load_catalog, load_category_train, load_taxonomy, load_train
from search.config import Settings
from search.searcher import Searcher

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).parent.parent
TAXONOMY = ROOT / "index_data" / "taxonomy.txt"
CATALOG50 = DATA / "catalog50.jsonl"
TRAIN50 = DATA / "train50.jsonl"


def settings_for(tmp: Path | None = None, **kw) -> Settings:
    base = dict(encoder="svd", svd_dim=48, thresholds_path=str((tmp or Path("/nonexistent")) / "thresholds.json"),
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


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def default_index(tmp_path_factory):
    """The default catalog built with the default encoder (USE v3) and saved once per session: (path, settings)."""
    items = load_catalog(ROOT / "index_data/catalog.jsonl", TAXONOMY)
    train, _ = load_train(ROOT / "index_data/intent_train.jsonl")
    cat_train, _ = load_category_train(ROOT / "index_data/category_train.jsonl", load_taxonomy(TAXONOMY))
    settings = Settings(thresholds_path=str(tmp_path_factory.mktemp("t") / "none.json"), traffic_log=False)
    s = Searcher.build(items, [(t.query, t.intent) for t in train], settings, category_train=cat_train)
    path = tmp_path_factory.mktemp("default") / "index"
    s.save(path)
    return path, settings


@pytest.fixture(scope="session")
def default_searcher(default_index):
    path, settings = default_index
    return Searcher.load(path, settings)

"""Mined intent labels added to training (search/mined.py, python -m search build --extra-train): hand labels win and
every conflict is reported, evaluation queries are dropped, provenance goes into the manifest."""

from __future__ import annotations

import json

from conftest import CATALOG50, CATEGORY50, TAXONOMY, TRAIN50, write_jsonl

from search.catalog import DevQuery, TrainQuery
from search.cli import main
from search.mined import merge


def test_merge_keeps_hand_labels_and_drops_evaluation_queries():
    hand = [TrainQuery("肯德基", "precise"), TrainQuery("睡不着", "fuzzy")]
    mined = [TrainQuery("KFC 肯德基!", "precise"), TrainQuery("肯德基", "fuzzy"), TrainQuery("睡不着", "fuzzy"),
             TrainQuery("周末去哪", "fuzzy"), TrainQuery("周末 去哪", "precise"), TrainQuery("饿了", "fuzzy")]
    m = merge(hand, mined, [DevQuery("d1", "饿了", "fuzzy")])
    assert [t.query for t in m.train] == ["肯德基", "睡不着", "KFC 肯德基!", "周末去哪"]
    assert m.added == 2 and m.agreeing == 1 and m.held_out == 1 and m.repeated == 1
    assert m.conflicts == [{"query": "肯德基", "mined": "fuzzy", "hand": "precise"}]  # listed, hand label kept
    assert m.train[0].intent == "precise"
    rep = m.report(len(mined))
    assert rep["conflicts_with_hand_labels"] == 1 and rep["dropped_evaluation_queries"] == 1


def test_build_with_extra_train_records_provenance(tmp_path, capsys):
    hand = [json.loads(line) for line in TRAIN50.read_text(encoding="utf-8").splitlines()]
    conflict = next(r for r in hand if r["intent"] == "precise")
    extra = write_jsonl(tmp_path / "intent_labels.jsonl", [
        {"query": "附近哪里能修自行车", "intent": "fuzzy", "source": "mined", "volume": 40},
        {"query": conflict["query"], "intent": "fuzzy", "source": "mined"},
        {"query": "held out query", "intent": "precise"}])
    holdout = write_jsonl(tmp_path / "dev.jsonl", [{"qid": "h1", "query": "held out query", "intent": "precise",
                                                    "relevant": {}, "unknown_name": True}])
    out = tmp_path / "index"
    rc = main(["build", "--catalog", str(CATALOG50), "--taxonomy", str(TAXONOMY), "--train", str(TRAIN50),
               "--category-train", str(CATEGORY50), "--out", str(out), "--encoder", "svd", "--quiet", "--extra-train", str(extra), "--holdout", str(holdout)])
    assert rc == 0
    err = capsys.readouterr().err
    assert "1 added" in err and "1 conflict with hand labels (hand labels kept)" in err
    assert f"conflict: {conflict['query']!r} mined fuzzy, hand precise (kept)" in err
    meta = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    x = meta["extra_train"]
    assert x["path"] == str(extra) and len(x["sha256"]) == 64 and x["rows"] == 3 and x["added"] == 1
    assert x["conflicts_with_hand_labels"] == 1 and x["dropped_evaluation_queries"] == 1
    assert x["held_out_sets"] == [str(holdout)] and "train" not in x


def test_build_refuses_a_malformed_extra_train_file(tmp_path, capsys):
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"query": "x", "intent": "maybe"}])
    rc = main(["build", "--catalog", str(CATALOG50), "--taxonomy", str(TAXONOMY), "--train", str(TRAIN50),
               "--out", str(tmp_path / "i"), "--encoder", "svd", "--quiet", "--extra-train", str(bad)])
    assert rc == 2 and "intent must be" in capsys.readouterr().err

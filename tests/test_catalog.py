"""The catalog validator: each kind of defect is caught, with its line number."""

import json
from pathlib import Path

import pytest
from conftest import CATALOG50, ROOT, TAXONOMY, write_jsonl

from eval.titles import EVAL_SETS
from search.catalog import (
    Interner,
    checked,
    coverage_problems,
    item_from_dict,
    label_floor_problems,
    load_catalog,
    load_dev,
    load_taxonomy,
    load_train,
    overlap_problems,
    parse_catalog,
    reference_names,
    validate_main,
)
from search.errors import CatalogError

GOOD = {"id": "x-1", "name": "测试", "aliases": [], "type": "service", "category": "生活缴费",
        "description": "这是一条足够长的描述文字，用于测试校验器是否工作。", "tags": ["测试"],
        "actions": [{"name": "缴费", "kind": "pay"}, {"name": "查询", "kind": "query"}]}


def _check(rows):
    tax = load_taxonomy(TAXONOMY)
    recs = [(i + 1, r, None) for i, r in enumerate(rows)]
    return parse_catalog(recs, tax)[1]


@pytest.mark.parametrize(
    ("change", "needle"),
    [({"name": ""}, "name"), ({"category": "不存在"}, "taxonomy"), ({"description": "太短"}, "description"),
     ({"tags": []}, "tags"), ({"type": "other"}, "type"), ({"actions": [{"name": "x", "kind": "fly"}]}, "action"),
     ({"id": "Bad Id"}, "id"), ({"popularity": 9}, "popularity"), ({"extra": 1}, "unknown"),
     ({"status": "closed"}, "status"), ({"status": None}, "status")],
)
def test_each_defect_is_reported(change, needle):
    probs = _check([{**GOOD, **change}])
    assert probs and needle in " ".join(probs)


def test_missing_field_and_duplicates():
    bad = dict(GOOD)
    del bad["tags"]
    assert "missing" in " ".join(_check([bad]))
    probs = _check([GOOD, {**GOOD, "name": "别的"}, {**GOOD, "id": "x-2"}])
    assert any("duplicate id" in p for p in probs) and any("duplicate name" in p for p in probs)


def test_bad_json_line(tmp_path):
    p = tmp_path / "c.jsonl"
    p.write_text(json.dumps(GOOD, ensure_ascii=False) + "\n{oops\n", encoding="utf-8")
    with pytest.raises(CatalogError, match="line 2"):
        load_catalog(p, TAXONOMY)


def test_dev_checks_ids_and_overlap(tmp_path):
    dev = write_jsonl(tmp_path / "dev.jsonl", [
        {"qid": "p1", "query": "测试", "intent": "precise", "relevant": {"nope": 2}, "categories": {}},
        {"qid": "f1", "query": "饿了", "intent": "fuzzy", "relevant": {"x-1": 1}, "categories": {}},
        {"qid": "p2", "query": "打开闪电盒子", "intent": "precise", "relevant": {"x-1": 2}, "categories": {},
         "unknown_name": True},
        {"qid": "p3", "query": "打开某某", "intent": "precise", "relevant": {}, "categories": {}, "unknown_name": True},
    ])
    rows, probs = load_dev(dev, {"x-1"}, load_taxonomy(TAXONOMY))
    assert any("nope" in p for p in probs) and any("1-4 judged categories" in p for p in probs)
    assert any("line 3" in p and "none when unknown_name" in p for p in probs)
    assert [r.qid for r in rows] == ["p3"] and rows[0].unknown_name
    train = write_jsonl(tmp_path / "t.jsonl", [{"query": "测 试!", "intent": "precise"}])
    t, _ = load_train(train)
    dev2 = write_jsonl(tmp_path / "d2.jsonl", [{"qid": "p1", "query": "测试", "intent": "precise",
                                                "relevant": {"x-1": 2}, "categories": {}}])
    d, _ = load_dev(dev2)
    assert overlap_problems((x.query for x in t), d)


def test_validator_refuses_a_training_need_that_is_an_evaluation_query(tmp_path, capsys):
    """Training needs with categories are checked against every evaluation file given (same text up to punctuation,
    spacing, case and script)."""
    cat = write_jsonl(tmp_path / "cat.jsonl", [{"query": "送 藥 上 門!", "categories": {"医疗服务": 2}},
                                               {"query": "想学画画", "categories": {"绘画": 2}}])
    argv = ["validate", str(ROOT / "index_data/catalog.jsonl"), "--shared", "/nonexistent", "--category-train", str(cat)]
    assert validate_main([*argv, "--dev", str(ROOT / "eval/queries/hard_dev.jsonl")]) == 0
    capsys.readouterr()
    assert validate_main([*argv, "--dev", str(ROOT / "eval/queries/hard_dev.jsonl"), str(ROOT / "eval/queries/dev.jsonl")]) == 1
    err = capsys.readouterr().err
    assert "'送药上门' is also in" in err and str(cat) in err and "想学画画" not in err


def test_coverage_check(items50):
    probs = coverage_problems(items50, [("肯德基", ["KFC"]), ("不存在的牌子", [])])
    assert probs == ["reference name '不存在的牌子' is not a name or alias in the catalog"]


def test_status_is_read_written_only_when_set_and_counted_out_of_the_label_floor():
    assert not _check([{**GOOD, "status": "discontinued"}, {**GOOD, "id": "x-2", "name": "另一个", "status": "active"}])
    active, gone = item_from_dict(GOOD), item_from_dict({**GOOD, "status": "discontinued"})
    assert active.status == "active" and not active.discontinued and gone.discontinued
    assert "status" not in active.to_dict() and gone.to_dict()["status"] == "discontinued"
    assert item_from_dict(gone.to_dict()) == gone
    two = [item_from_dict({**GOOD, "id": f"x-{i}", "name": f"测试{i}"}) for i in range(2)]
    assert label_floor_problems(two, ["生活缴费"], 2) == []
    assert label_floor_problems([two[0], item_from_dict({**GOOD, "status": "discontinued"})], ["生活缴费"], 2) == [
        "category '生活缴费' has 1 active items (at least 2 wanted)"]


def test_fixture_catalog_is_valid():
    assert len(load_catalog(CATALOG50, TAXONOMY)) == 50


def test_repository_data_validates(capsys):
    """index_data/ and eval/queries/ at the sizes the project promises (coverage: only with ../shared)."""
    shared = ROOT.parent / "shared" / "data"
    rc = validate_main(["validate", str(ROOT / "index_data/catalog.jsonl"), "--train", str(ROOT / "index_data/intent_train.jsonl"),
                        "--category-train", str(ROOT / "index_data/category_train.jsonl"),
                        "--dev", *(str(ROOT / p) for p in EVAL_SETS),  # every evaluation set
                        "--shared", str(shared), "--min-per-label", "10"])
    out = capsys.readouterr()
    assert rc == 0, out.err[-3000:]
    if reference_names(shared) is None:
        assert "coverage check skipped" in out.out
    items = load_catalog(ROOT / "index_data/catalog.jsonl", ROOT / "index_data/taxonomy.txt")
    assert len(items) >= 3000
    assert sum(i.type in ("service", "mini_program") for i in items) >= 400
    rc = validate_main(["validate", str(ROOT / "index_data/catalog.jsonl"), "--shared", "/nonexistent", "--min-per-label", "10000"])
    assert rc == 1 and "at least 10000 wanted" in capsys.readouterr().err
    train, _ = load_train(ROOT / "index_data/intent_train.jsonl")
    assert len(train) >= 3000
    dev, _ = load_dev(ROOT / "eval/queries/dev.jsonl")
    assert len(dev) >= 400
    assert (ROOT / "index_data/taxonomy.txt").read_text() and Path(TAXONOMY).exists()


def test_checked_refuses_a_file_with_problems_naming_it_and_its_first_five(tmp_path):
    rows = [{"query": "肯德基", "intent": "precise"}] + [{"query": f"q{i}", "intent": "maybe"} for i in range(7)]
    path = write_jsonl(tmp_path / "train.jsonl", rows)
    with pytest.raises(CatalogError) as e:
        checked(load_train(path), path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: line 2:") and "line 6:" in msg and "line 7:" not in msg
    assert len(e.value.problems) == 7
    good = write_jsonl(tmp_path / "good.jsonl", rows[:1])
    assert [t.query for t in checked(load_train(good), good)] == ["肯德基"]


def test_a_tag_or_alias_given_twice_is_kept_once_in_first_seen_order():
    obj = {**GOOD, "tags": ["手机没电", "借充电宝", " 手机没电", "借充电宝"], "aliases": ["充电宝", "充电宝 ", "租充电宝"]}
    for item in (item_from_dict(obj), item_from_dict(obj, Interner())):
        assert item.tags == ("手机没电", "借充电宝")
        assert item.aliases == ("充电宝", "租充电宝")

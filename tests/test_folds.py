"""eval/folds.py: contiguous folds by hand, and a fold run on the 50-item catalog that never trains on what it scores."""

import pytest

from eval import folds as F
from eval.__main__ import main
from search.catalog import query_key
from search.searcher import Searcher
from tests.conftest import settings_for


def test_contiguous_folds_cover_the_rows_once():
    assert F.contiguous_folds(5, 2) == [range(0, 2), range(2, 5)]
    assert F.contiguous_folds(9, 3) == [range(0, 3), range(3, 6), range(6, 9)]
    blocks = F.contiguous_folds(103, 4)
    assert [j for b in blocks for j in b] == list(range(103))
    assert max(map(len, blocks)) - min(map(len, blocks)) <= 1
    for n, k in ((5, 1), (3, 4), (0, 2)):
        with pytest.raises(ValueError):
            F.contiguous_folds(n, k)


CATEGORY_TRAIN = [
    ("睡不着", {"养生保健": 2, "音乐": 1}),
    ("想听点歌", {"音乐": 2}),
    ("饿了", {"外卖": 2, "餐饮店": 1}),
    ("想吃火锅", {"餐饮店": 2, "外卖": 1}),  # the same need in both halves: scored in neither
    ("头疼", {"问诊挂号": 2, "医疗服务": 1}),
    ("交电费", {"生活缴费": 2}),
    ("带娃去哪", {"亲子儿童": 2}),
    ("附近吃饭", {"餐饮店": 2}),
    ("买火车票", {"铁路": 2}),
    ("打个车", {"打车": 2}),
    ("想吃火锅", {"餐饮店": 2, "外卖": 1}),
    ("水费怎么交", {"生活缴费": 2}),
]


@pytest.fixture
def trained_on(monkeypatch):
    """The category training needs of every index a fold builds, in build order."""
    seen: list[set[str]] = []
    build = Searcher.build

    def spy(items, train, settings=None, encoder=None, progress=None, category_train=()):
        seen.append({query_key(q) for q, _ in category_train})
        return build(items, train, settings, encoder, progress, category_train)

    monkeypatch.setattr(Searcher, "build", spy)
    return seen


def test_fold_eval_scores_held_out_needs_only(items50, train50, trained_on):
    rep = F.fold_eval(items50, train50, CATEGORY_TRAIN, settings_for(), k=2)
    assert len(trained_on) == 2 and len(rep["folds"]) == 2
    assert rep["skipped_duplicates"] == 2  # each 想吃火锅 is a training row of the other's fold
    assert [f["needs"] for f in rep["folds"]] == [5, 5]
    # each fold trained on the other half only
    assert trained_on[0] == {query_key(q) for q, _ in CATEGORY_TRAIN[6:]}
    assert trained_on[1] == {query_key(q) for q, _ in CATEGORY_TRAIN[:6]}
    for m in ("category_precision@10", "facet_recall@10"):
        x = rep[m]
        assert x["n"] == 10 and 0.0 <= x["low"] <= x["mean"] <= x["high"] <= 1.0
    assert "all folds" in F.markdown(rep)


def test_rows_trained_always_are_never_scored_and_withheld_from_a_fold_naming_them(items50, train50, trained_on):
    always = [("琅琊榜全集", {"视频": 2}), ("听点歌吧", {"音乐": 2})]
    rep = F.fold_eval(items50, train50, CATEGORY_TRAIN, settings_for(), k=2, always=always, subjects=["琅琊榜", "听点歌"])
    assert [f["needs"] for f in rep["folds"]] == [5, 5]  # the same blocks of needs as without them
    # the first fold holds out 想听点歌, which names the second row's subject: that row sits the fold out
    assert query_key("琅琊榜全集") in trained_on[0] and query_key("听点歌吧") not in trained_on[0]
    assert {query_key("琅琊榜全集"), query_key("听点歌吧")} <= trained_on[1]
    assert [f["always_trained"] for f in rep["folds"]] == [1, 2]
    assert rep["always_trained"] == 2 and "(1, 2)" in F.markdown(rep)
    with pytest.raises(ValueError, match="subject"):
        F.fold_eval(items50, train50, CATEGORY_TRAIN, settings_for(), k=2, always=always, subjects=["琅琊榜"])


def test_fold_eval_limit_spreads_over_the_block(items50, train50):
    rep = F.fold_eval(items50, train50, CATEGORY_TRAIN, settings_for(), k=2, limit=2)
    assert [f["needs"] for f in rep["folds"]] == [2, 2]


def test_cli_rejects_bad_fold_counts(capsys):
    assert main(["folds", "--folds", "1"]) == 2
    assert "folds" in capsys.readouterr().err
    assert main(["folds", "--limit", "0"]) == 2


def test_cli_refuses_training_needs_with_problems(tmp_path, monkeypatch, capsys):
    bad = tmp_path / "category_train.jsonl"
    bad.write_text('{"query": "睡不着", "categories": {"养生保健": 2}}\n{"query": "饿了", "categories": {"不是类目": 2}}\n',
                   encoding="utf-8")
    monkeypatch.setenv("ZHIDA_CATEGORY_TRAIN_PATH", str(bad))
    assert main(["folds", "--limit", "1", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "line 2" in err
    assert not (tmp_path / "out").exists()

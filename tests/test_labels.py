"""Analysts' labels: the review file, what is waiting, and their inclusion in the next training build."""

from __future__ import annotations

import json

import pytest
from conftest import settings_for, write_jsonl

from eval.querygen import include_reviewed
from search.errors import InvalidRequestError
from search.labels import LabelReview, new_label

TAX = {"养生保健", "音乐", "外卖"}


def _add(review, settings, query, label, cats=(), who="li"):
    review.add(new_label({"query": query, "label": label, "categories": list(cats), "who": who}, settings, TAX))


def test_waiting_until_a_build_includes_them(tmp_path, monkeypatch):
    settings = settings_for(tmp_path)
    review = LabelReview(tmp_path / "labels.jsonl")
    _add(review, settings, "睡不着", "precise")
    _add(review, settings, "睡不着！", "fuzzy", ["养生保健", "音乐"])  # the same query: the latest label wins
    _add(review, settings, "肯德基", "precise")
    _add(review, settings, "宵夜", "mixed", ["外卖"])
    _add(review, settings, "dev query", "fuzzy")
    assert review.summary()["waiting"] == 5
    # evaluation sets stay out of training
    dev = write_jsonl(tmp_path / "dev.jsonl", [{"qid": "f1", "query": "Dev Query", "intent": "fuzzy"}])
    monkeypatch.setattr("eval.querygen.FROZEN", (dev,))
    cat_path = write_jsonl(tmp_path / "cat.jsonl", [{"query": "睡不着", "categories": {"音乐": 2}},
                                                   {"query": "饿了", "categories": {"外卖": 2}}])
    train = [{"query": "肯德基", "intent": "fuzzy"}, {"query": "饿了", "intent": "fuzzy"}]
    rep = include_reviewed(train, str(tmp_path / "labels.jsonl"), str(cat_path))
    assert train == [{"query": "肯德基", "intent": "precise"}, {"query": "饿了", "intent": "fuzzy"},
                     {"query": "睡不着！", "intent": "fuzzy"}]
    assert (rep["intent_added"], rep["intent_replaced"], rep["mixed"], rep["held_out"]) == (1, 1, 1, ["dev query"])
    cats = [json.loads(x) for x in cat_path.read_text(encoding="utf-8").splitlines()]
    assert cats == [{"query": "饿了", "categories": {"外卖": 2}},
                    {"query": "睡不着！", "categories": {"养生保健": 2, "音乐": 1}},
                    {"query": "宵夜", "categories": {"外卖": 2}}]
    assert review.summary()["waiting"] == 0
    _add(review, settings, "头疼", "fuzzy")
    s = review.summary()
    assert s["waiting"] == 1 and s["recent"][0]["waiting"] and not s["recent"][1]["waiting"]


def test_label_rules(tmp_path):
    settings = settings_for(tmp_path)
    ok = new_label({"query": "饿了", "label": "fuzzy", "categories": ["外卖"], "who": "  wang  ", "from": "try"}, settings, TAX)
    assert ok.who == "wang" and ok.source == "try" and ok.normalized == "饿了"
    six = [f"c{i}" for i in range(6)]
    with pytest.raises(InvalidRequestError, match="at most 5"):
        new_label({"query": "x", "label": "fuzzy", "who": "li", "categories": six}, settings, set(six))
    assert new_label({"query": "x", "label": "fuzzy", "who": "li", "categories": ["外卖", "外卖"]}, settings, TAX).categories == ("外卖",)
    for body, field in (({"query": "x", "label": "fuzzy", "who": "li", "categories": "外卖"}, "categories"),
                        ({"query": "x", "label": "fuzzy", "who": "li" * 30}, "who"),
                        ({"query": "x", "label": "fuzzy", "who": "li\x00"}, "who"),
                        ({"query": "x" * 100, "label": "fuzzy", "who": "li"}, "query"),
                        ({"query": 3, "label": "fuzzy", "who": "li"}, "query")):
        with pytest.raises(InvalidRequestError) as e:
            new_label(body, settings, TAX)
        assert e.value.field == field


def test_unreadable_lines_are_skipped(tmp_path):
    p = tmp_path / "labels.jsonl"
    p.write_text('not json\n{"event": "label"}\n{"event": "included", "ids": 5}\n', encoding="utf-8")
    review = LabelReview(p)
    _add(review, settings_for(tmp_path), "饿了", "fuzzy")
    assert review.summary()["waiting"] == 1

"""Suggest as you type: each matching kind, the ranking prior, bad input (50-item index)."""

import pytest
from conftest import settings_for
from fastapi.testclient import TestClient

from search.api import create_app
from search.errors import InvalidQueryError


def names(s, q, k=8):
    return [x.get("name") or x.get("text") for x in s.suggest(q, k)["suggestions"]]


@pytest.mark.parametrize(
    ("q", "target", "matched"),
    [("肯", "肯德基", "name"), ("肯德", "肯德基", "name"),  # hanzi prefix
     ("kend", "肯德基", "pinyin"), ("kendeji", "肯德基", "pinyin"),  # full pinyin prefix
     ("kdj", "肯德基", "initials"), ("mdl", "麦当劳", "initials"),  # initials
     ("麥當", "麦当劳", "name"),  # traditional input
     ("肯d", "肯德基", "pinyin"), ("肯dj", "肯德基", "initials"), ("xing巴克", "星巴克", "pinyin"), ("xingba", "星巴克", "pinyin"),  # mixed IME input
     ("sta", "星巴克", "alias")],
)
def test_matching_kinds(searcher50, q, target, matched):
    cards = [x for x in searcher50.suggest(q, 8)["suggestions"] if x["type"] == "card"]
    hit = [c for c in cards if c["name"] == target]
    assert hit, (q, cards)
    assert hit[0]["matched"] == matched
    assert hit[0]["actions"] and hit[0]["id"] and hit[0]["category"]


def test_query_completions_come_from_training_queries_and_tags(searcher50):
    sug = searcher50.suggest("睡不", 8)["suggestions"]
    texts = [x["text"] for x in sug if x["type"] == "query"]
    assert texts and all(t.startswith("睡不") for t in texts)
    known = set(searcher50.parts.completions.texts)
    assert set(texts) <= known


def test_ranking_prior_name_before_alias_before_pinyin(searcher50):
    from search.lexicon import Lexicon
    from search.suggest import key_priors, top_cards, typed_forms

    lex = Lexicon.build(["ab", "abc", "x", "阿布"], [[], [], ["abx"], []])
    prior = key_priors(lex, [3, 3, 3, 3])
    got = top_cards(lex, prior, typed_forms("ab"), 4)
    # names first (shorter first), then the alias, then pinyin ("abu" of 阿布)
    assert got == [(0, "name"), (1, "name"), (2, "alias"), (3, "pinyin")]
    # popularity breaks equal length; equal everything keeps catalog order (stable)
    prior2 = key_priors(lex, [1, 5, 3, 3])
    assert top_cards(lex, prior2, typed_forms("ab"), 2)[0] == (1, "name")
    assert top_cards(lex, key_priors(lex, [3] * 4), typed_forms("ab"), 4) == got


def test_no_match_is_empty_not_error(searcher50):
    assert searcher50.suggest("zzzzqqqq", 8)["suggestions"] == []


@pytest.mark.parametrize(("q", "k"), [("", 8), ("   ", 8), ("x" * 65, 8), ("kfc", 0), ("kfc", 21), ("kfc", "3")])
def test_bad_input(searcher50, q, k):
    with pytest.raises(InvalidQueryError):
        searcher50.suggest(q, k)


def test_http_suggest(searcher50):
    c = TestClient(create_app(settings_for(), searcher50))
    r = c.get("/suggest", params={"q": "kdj", "k": 3})
    assert r.status_code == 200 and r.json()["suggestions"][0]["name"] == "肯德基"
    assert len(r.json()["suggestions"]) <= 3
    for params in ({"q": ""}, {"q": "x" * 100}, {"q": "k", "k": 0}, {"q": "k", "k": 21}, {"q": "k", "k": "a"}):
        r = c.get("/suggest", params=params)
        assert r.status_code == 422 and r.json()["error"]["field"] in ("q", "k")
    assert c.get("/suggest", params={"q": "zzzzqqqq"}).json()["suggestions"] == []

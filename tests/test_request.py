"""The request rules (search/request.py): one parser for query strings and JSON bodies, limits from Settings."""

from __future__ import annotations

import pytest

from search.config import Settings
from search.errors import InvalidQueryError
from search.request import parse, search_k, suggest_k, validate_query

S = Settings(max_k=30, default_k=7, max_suggest_k=12, default_suggest_k=5, max_query_chars=10, max_raw_query_chars=40)


def test_limits_come_from_settings():
    assert parse({"q": "kfc"}, S, text=True).k == 7
    assert parse({"q": "kfc", "k": "30"}, S, text=True).k == 30
    assert parse({"q": "kfc"}, S, kind="suggest", text=True).k == 5
    for bad in ({"q": "kfc", "k": "31"}, {"q": "kfc", "k": 31}):
        with pytest.raises(InvalidQueryError) as e:
            parse(bad, S, text=isinstance(bad["k"], str))
        assert e.value.field == "k" and "30" in str(e.value)
    with pytest.raises(InvalidQueryError):
        suggest_k(13, S)
    assert search_k(None, S) == 7
    with pytest.raises(InvalidQueryError):
        validate_query("a" * 11, S)
    with pytest.raises(InvalidQueryError):
        validate_query(" " * 41, S)


@pytest.mark.parametrize("k", ["5", "05"])
def test_query_string_k_is_digits(k):
    assert parse({"q": "kfc", "k": k}, S, text=True).k == 5


@pytest.mark.parametrize("k", ["", "-1", "1.5", "5 ", "１", "true", "0x5", "9" * 10])
def test_query_string_k_refused(k):
    with pytest.raises(InvalidQueryError) as e:
        parse({"q": "kfc", "k": k}, S, text=True)
    assert e.value.field == "k"


@pytest.mark.parametrize("k", ["-1", "0", "+0", "51"])
def test_query_string_k_out_of_range_says_so(k):
    with pytest.raises(InvalidQueryError, match="k must be between 1 and"):
        parse({"q": "kfc", "k": k}, S, text=True)


@pytest.mark.parametrize("k", ["-", "+", "--1", "1.5"])
def test_query_string_k_not_a_number_says_so(k):
    with pytest.raises(InvalidQueryError, match="k must be an integer"):
        parse({"q": "kfc", "k": k}, S, text=True)


@pytest.mark.parametrize("k", [True, False, "5", 5.0, 1.5, None])
def test_json_k_must_be_an_integer(k):
    if k is None:
        assert parse({"q": "kfc", "k": None}, S, text=False).k == 7
        return
    with pytest.raises(InvalidQueryError) as e:
        parse({"q": "kfc", "k": k}, S, text=False)
    assert e.value.field == "k"


def test_json_unknown_fields_refused_query_string_ones_ignored():
    with pytest.raises(InvalidQueryError) as e:
        parse({"q": "kfc", "kk": 3}, S, text=False)
    assert e.value.field == "kk"
    assert parse({"q": "kfc", "utm": "x"}, S, text=True).q == "kfc"


def test_explain_thresholds():
    p = parse({"q": "kfc", "t_precise": "0.8", "t_fuzzy": "0.2"}, S, kind="explain", text=True)
    assert (p.t_precise, p.t_fuzzy) == (0.8, 0.2)
    for bad in ("1.5", "nan", "x", "-0.1", "inf"):
        with pytest.raises(InvalidQueryError):
            parse({"q": "kfc", "t_fuzzy": bad}, S, kind="explain", text=True)
    with pytest.raises(InvalidQueryError):
        parse({"q": "kfc", "t_fuzzy": True}, S, kind="explain", text=False)


def test_missing_or_wrong_q():
    for src, text in (({}, True), ({"q": 5}, False), ({"q": ["a"]}, False), ({"q": ""}, True)):
        with pytest.raises(InvalidQueryError) as e:
            parse(src, S, text=text)
        assert e.value.field == "q"


def test_what_if_thresholds():
    from search.config import Thresholds
    from search.request import what_if

    cur = Thresholds(0.7, 0.3)
    assert what_if({}, cur, text=True).to_dict() == {"t_precise": 0.7, "t_fuzzy": 0.3}
    assert what_if({"t_fuzzy": "0.1"}, cur, text=True).to_dict() == {"t_precise": 0.7, "t_fuzzy": 0.1}
    assert what_if({"t_precise": 0.9, "t_fuzzy": 0.9}, cur, text=False).to_dict() == {"t_precise": 0.9, "t_fuzzy": 0.9}
    for src, field in (({"t_fuzzy": "0.8"}, "t_fuzzy"), ({"t_precise": "0.2"}, "t_fuzzy"), ({"t_precise": "x"}, "t_precise"),
                       ({"t_precise": "nan"}, "t_precise"), ({"t_fuzzy": "-0.1"}, "t_fuzzy")):
        with pytest.raises(InvalidQueryError) as e:
            what_if(src, cur, text=True)
        assert e.value.field == field
    p = parse({"q": "kfc", "k": "3", "t_fuzzy": "0.1"}, Settings(), kind="whatif", text=True)
    assert (p.k, p.t_precise, p.t_fuzzy) == (3, None, 0.1)
    with pytest.raises(InvalidQueryError):
        parse({"q": "kfc", "t_fuzzy": 0.1, "x": 1}, Settings(), kind="whatif", text=False)

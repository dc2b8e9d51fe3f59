from hypothesis import given
from hypothesis import strategies as st

from search.normalize import compact, compact_normalized, normalize


def test_fullwidth_case_traditional():
    assert normalize("ＫＦＣ") == "kfc"
    assert normalize("麥當勞") == "麦当劳"
    assert normalize("  Starbucks   Coffee ") == "starbucks coffee"
    assert normalize("交電費") == "交电费"


def test_strips_emoji_zero_width_bidi_and_controls():
    assert normalize("肯德基👍🏻") == "肯德基"
    assert normalize("肯\u200b德\u200d基") == "肯德基"
    assert normalize("\u202e星巴克\u202c") == "星巴克"
    assert normalize("a\x00b\x07c") == "abc"
    assert normalize("👨‍👩‍👧‍👦") == ""


def test_compact_drops_spaces_and_punctuation():
    assert compact("McDonald's") == "mcdonalds"
    assert compact("12 306！") == "12306"


@given(st.text())
def test_idempotent(s):
    once = normalize(s)
    assert normalize(once) == once


@given(st.text())
def test_compact_normalized_is_compact_of_the_normalised_text(s):
    assert compact_normalized(normalize(s)) == compact(s)


@given(st.text())
def test_no_control_or_format_chars_survive(s):
    import unicodedata

    assert not any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in normalize(s) if c not in " ")


def test_compact_breaks_mark_where_words_were_separated():
    from search.normalize import compact_breaks

    assert compact_breaks(normalize("nike shoes")) == frozenset({4})
    assert compact_breaks(normalize("McDonald's 优惠券")) == frozenset({8, 9})  # the apostrophe and the space
    assert compact_breaks("肯德基") == frozenset() and compact_breaks("  ") == frozenset()


@given(st.text())
def test_compact_breaks_lie_inside_the_compact_text(s):
    from search.normalize import compact_breaks

    n = normalize(s)
    assert all(0 < b < len(compact_normalized(n)) for b in compact_breaks(n))

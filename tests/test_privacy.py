"""Masking of personal numbers and pseudonymous user keys (search/privacy.py)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from search.privacy import CARD, ID_NUMBER, PHONE, mask, user_key


@pytest.mark.parametrize("text, expected", [
    ("充值13812345678", f"充值{PHONE}"),
    ("充值 138-1234-5678 话费", f"充值 {PHONE} 话费"),
    ("+86 138 1234 5678", PHONE),
    ("8613812345678", PHONE),
    ("身份证110105194912310021查询", f"身份证{ID_NUMBER}查询"),
    ("11010519491231002x", ID_NUMBER),
    ("卡号6222021234567890123", f"卡号{CARD}"),
    ("6222 0212 3456 7890", CARD),
    ("6222-0212-3456-7890-12", CARD),
    ("两个号13812345678和13987654321", f"两个号{PHONE}和{PHONE}"),
])
def test_personal_numbers_are_masked(text, expected):
    assert mask(text) == expected


@pytest.mark.parametrize("text", ["12306", "95588", "10086", "北京时间20240101", "邮编100080", "iphone15", "肯德基",
                                  "23812345678", "1381234567"])
def test_service_numbers_and_short_runs_are_kept(text):
    assert mask(text) == text


def test_masked_text_keeps_no_digit_run_of_a_number():
    for text in ("我的手机13812345678", "110105194912310021", "6222021234567890"):
        assert not any(ch.isdigit() for ch in mask(text))


def test_user_key_is_the_hmac_and_never_the_id():
    k = user_key("user-42", "s3cret")
    assert k == hmac.new(b"s3cret", b"user-42", hashlib.sha256).hexdigest()[:32]
    assert "user-42" not in k and len(k) == 32
    assert user_key("user-42", "s3cret") == k  # stable: one user, one key
    assert user_key("user-43", "s3cret") != k
    assert user_key("user-42", "other") != k  # without the secret a key cannot be recomputed from a guessed id
    assert user_key("user-42", "") is None and user_key(None, "s3cret") is None and user_key("", "s3cret") is None

"""What the query log may keep about a person: masked query text and a pseudonymous user key.

Two rules, applied before anything reaches the traffic store:

- **Masking.** People paste personal numbers into a search box (a phone number to top up, an ID number for a
  government service, a card number to check a bill). Digit runs of those shapes are replaced by a placeholder,
  so the log keeps the shape of the request (``充值 <phone>``) and never the number: an 18-character resident ID
  (17 digits and a digit or X, GB 11643-1999), an 11-digit mobile number (1[3-9] and nine digits, optionally
  after +86, with spaces or dashes between groups), and a bank-card-like run of 12–19 digits (ISO/IEC 7812 card
  numbers are 12–19 digits; written in groups of four or unbroken). Longer runs are masked as cards too; shorter
  ones (12306, 95588, a 6-digit postcode) are kept, since they are how people name services.
- **User keys.** A client may send its own user id (``X-User-ID``). The log keeps
  ``HMAC-SHA256(secret, user id)`` (RFC 2104), truncated to 128 bits, never the id itself: the same user gets the
  same key (so behaviour can be grouped per user), and without the secret a key cannot be linked back to an id
  or recomputed from a guessed one. No secret configured → no user key is stored at all.
"""

from __future__ import annotations

import hashlib
import hmac
import re

PHONE = "<phone>"
ID_NUMBER = "<id>"
CARD = "<card>"

_SEP = r"[ \-]?"
# Order matters: an ID number is also an 18-digit run, so IDs are masked first, then phones, then card runs.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # 18-character resident ID: 6-digit region, 8-digit birth date, 3-digit sequence, check character 0-9 or X
    (re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])"), ID_NUMBER),
    # mobile number, optionally +86 / 86 first, groups 3-4-4 separated by a space or a dash
    (re.compile(r"(?<![0-9])(?:\+?86" + _SEP + r")?1[3-9]\d" + _SEP + r"\d{4}" + _SEP + r"\d{4}(?![0-9])"), PHONE),
    # card-like: 12-19 digits unbroken, or four-digit groups separated by spaces or dashes (4-4-4[-4][-1..3])
    (re.compile(r"(?<![0-9])(?:\d{12,}|\d{4}(?:[ \-]\d{4}){2,3}(?:[ \-]\d{1,3})?)(?![0-9])"), CARD),
)


def mask(text: str) -> str:
    """``text`` with ID numbers, mobile numbers and card-like digit runs replaced by placeholders."""
    if sum(ch.isdigit() for ch in text) < 11:  # nothing of those shapes can be there: the common case, no regex
        return text
    for pattern, placeholder in _PATTERNS:
        text = pattern.sub(placeholder, text)
    return text


def user_key(user_id: str | None, secret: str) -> str | None:
    """The pseudonymous key of a client-sent user id: hex HMAC-SHA256 truncated to 32 hex digits; ``None`` without
    an id or without a secret (a key without a secret would be a plain hash, which anyone can recompute)."""
    if not user_id or not secret:
        return None
    mac = hmac.new(secret.encode("utf-8"), user_id.encode("utf-8", "surrogatepass"), hashlib.sha256)
    return mac.hexdigest()[:32]

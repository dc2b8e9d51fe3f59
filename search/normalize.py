"""Query and name normalisation: one canonical form for matching.

Steps, in order:
1. drop characters a phone keyboard or a paste can leave but that carry no meaning: control (Cc),
   format (Cf: zero-width, bidi marks, ZWJ), surrogates (Cs), private use (Co), unassigned (Cn), and
   emoji / pictographic symbols (So and the emoji modifier range);
2. Unicode NFKC, which also maps full-width ASCII (ＫＦＣ１２３) to half-width;
3. case-fold (KFC → kfc);
4. traditional → simplified Chinese (``zhconv``, maintained MediaWiki conversion tables);
5. collapse runs of whitespace to one space and trim.

The function is idempotent (``normalize(normalize(x)) == normalize(x)``; a Hypothesis test checks it).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import zhconv

_DROP_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "So", "Sk", "Mn", "Me"})
_WS = re.compile(r"\s+")


@lru_cache(maxsize=65536)
def _keep(ch: str) -> bool:
    if ch in "\t\n\r ":
        return True
    cat = unicodedata.category(ch)
    if cat in _DROP_CATEGORIES:
        return False
    cp = ord(ch)
    # Emoji modifiers, regional indicators, variation selectors are mostly covered by categories above;
    # the pictographic planes are dropped wholesale.
    return not (0x1F000 <= cp <= 0x1FAFF or 0xFE00 <= cp <= 0xFE0F or 0xE0000 <= cp <= 0xE007F)


def _strip(text: str) -> str:
    return "".join(ch for ch in text if _keep(ch))


def normalize(text: str) -> str:
    """Return the canonical matching form of ``text`` (see module docstring)."""
    if not isinstance(text, str):
        raise TypeError(f"normalize() needs a str, got {type(text).__name__}")
    s = _strip(text)
    s = unicodedata.normalize("NFKC", s)
    s = s.casefold()
    s = unicodedata.normalize("NFKC", s)
    s = zhconv.convert(s, "zh-cn")
    s = _strip(s)  # NFKC / conversion can expose droppable characters
    s = _WS.sub(" ", s).strip()
    return s


def compact(text: str) -> str:
    """Normalised text without spaces and punctuation: the key used for exact and prefix name matching."""
    return compact_normalized(normalize(text))


def compact_breaks(normalized: str) -> frozenset[int]:
    """Positions of ``compact_normalized(normalized)`` whose character a space or punctuation separated from the one
    before (nike shoes → nikeshoes, a break at 4): where an ASCII word ended before compacting."""
    out, j, gap = set(), 0, False
    for ch in normalized:
        if ch.isalnum():
            if gap and j:
                out.add(j)
            j += 1
            gap = False
        else:
            gap = True
    return frozenset(out)


def compact_normalized(normalized: str) -> str:
    """``compact`` of text that is already normalised (``normalize`` is idempotent, so the result is the same):
    the query path has the normalised text in hand and skips a second ``normalize``."""
    return "".join(ch for ch in normalized if ch.isalnum())

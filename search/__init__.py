"""Zhida: intent-routed search for a super-app search box.

``from search import Searcher`` — nothing heavy happens at import time; the index is loaded by
``Searcher.load``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .searcher import Searcher


def __getattr__(name: str) -> Any:
    if name == "Searcher":
        from .searcher import Searcher

        return Searcher
    raise AttributeError(name)


__all__ = ["Searcher", "__version__"]

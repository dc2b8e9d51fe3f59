"""The thresholds trail: ids in order across threads, a torn last line skipped, an unwritable file refused."""

from __future__ import annotations

import threading

import pytest

from search.config import Thresholds
from search.errors import InvalidRequestError
from search.thresholds_history import HistoryWriteError, ThresholdsHistory, clean_note


def test_records_in_order_across_threads(tmp_path):
    h = ThresholdsHistory(tmp_path / "h.jsonl")
    a, b = Thresholds(0.7, 0.3), Thresholds(0.8, 0.2, source="admin api")

    def work():
        for _ in range(15):
            h.record(a, b, None)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    entries = ThresholdsHistory(tmp_path / "h.jsonl").entries()  # a new reader: what a restart sees
    assert [e.id for e in entries] == list(range(1, 61))
    assert entries[0].before == {"t_precise": 0.7, "t_fuzzy": 0.3} and entries[0].source == "admin api"


def test_torn_last_line_is_skipped_and_ids_continue(tmp_path):
    p = tmp_path / "h.jsonl"
    h = ThresholdsHistory(p)
    h.record(Thresholds(0.7, 0.3), Thresholds(0.8, 0.2), None, note="one")
    with open(p, "a", encoding="utf-8") as fh:
        fh.write('{"id": 2, "when": "2025')  # a crash in the middle of a write
    assert [e.id for e in h.entries()] == [1] and h.damaged == 1
    c = h.record(Thresholds(0.8, 0.2), Thresholds(0.9, 0.1), None, rollback_of=1)
    assert (c.id, c.action, c.rollback_of) == (2, "rollback", 1)
    assert h.get(1).note == "one"
    with pytest.raises(InvalidRequestError):
        h.get(7)


def test_unwritable_history_raises(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(HistoryWriteError, match="nothing was changed"):
        ThresholdsHistory(tmp_path / "file" / "h.jsonl").record(Thresholds(), Thresholds(0.8, 0.2), None)


def test_notes():
    assert clean_note("  a \n b ") == "a b" and clean_note("   ") is None and clean_note(None) is None
    with pytest.raises(InvalidRequestError):
        clean_note("x" * 501)
    with pytest.raises(InvalidRequestError):
        clean_note(3)

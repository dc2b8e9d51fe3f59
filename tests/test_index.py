"""search.index: the build's background step."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
from conftest import ROOT

from search.index import Background


def test_background_returns_what_the_function_returns_while_the_caller_goes_on():
    started, go_on = threading.Event(), threading.Event()

    def work(a: int, b: int) -> int:
        started.set()
        if not go_on.wait(10):  # only the caller sets it: the function must be running beside the caller
            raise TimeoutError
        return a + b

    job = Background(work, 2, 3)
    assert started.wait(10)
    go_on.set()
    assert job.result() == 5


def test_a_process_ends_without_waiting_for_its_background_step():
    """An interrupted build exits at once: the interpreter does not wait for the solver's thread."""
    code = "import time\nfrom search.index import Background\nBackground(time.sleep, 120)\nprint('leaving')"
    t = time.monotonic()
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=100)
    assert out.returncode == 0 and out.stdout.strip() == "leaving", out.stderr[-2000:]
    assert time.monotonic() - t < 60  # the thread would hold it for 120 s


def test_background_raises_the_functions_exception_to_the_caller():
    def fails() -> None:
        raise ValueError("the category model needs at least two categories")

    with pytest.raises(ValueError, match="two categories"):
        Background(fails).result()

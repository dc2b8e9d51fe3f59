"""search.index: the build's background step."""

from __future__ import annotations

import threading

import pytest

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
    assert job._thread.daemon  # an interrupted build does not wait for it


def test_background_raises_the_functions_exception_to_the_caller():
    def fails() -> None:
        raise ValueError("the category model needs at least two categories")

    with pytest.raises(ValueError, match="two categories"):
        Background(fails).result()

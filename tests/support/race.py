"""Run things at the same moment: real threads released by one barrier.

``race(a, b)`` starts a thread per callable, lets them all wait at a
barrier, releases them together and returns each outcome in order: its
value, or the exception it raised (as a value, so the test can say which
one won).  Against a live server each thread makes its own HTTP request;
in-process each runs in an app context of its own (``in_app``), so each
has its own database session, as two requests would."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from flask import Flask

__all__ = ["Outcome", "in_app", "race"]

Outcome = Any
"""What a contender returned, or the exception it raised."""


def race(*contenders: Callable[[], Any], timeout: float = 60) -> list[Outcome]:
    barrier = threading.Barrier(len(contenders))
    outcomes: list[Outcome] = [None] * len(contenders)

    def run(index: int, fn: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            outcomes[index] = fn()
        except Exception as e:  # the loser's refusal is an outcome too
            outcomes[index] = e

    threads = [
        threading.Thread(target=run, args=(i, fn), daemon=True) for i, fn in enumerate(contenders)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
        assert not thread.is_alive(), "a contender did not finish"
    return outcomes


def in_app(app: Flask, fn: Callable[[], Any]) -> Callable[[], Any]:
    """``fn`` in an app context of its own (its own database session)."""

    def run() -> Any:
        with app.app_context():
            return fn()

    return run

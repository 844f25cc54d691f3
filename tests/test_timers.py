"""The timer thread that expires cached values on the monotonic clock."""

from __future__ import annotations

import threading
import time

from rotsafe._timers import Timers


def test_functions_run_in_the_order_of_their_times():
    """Whatever order they were scheduled in, earlier times run first."""
    timers = Timers()
    ran: list[str] = []
    done = threading.Event()
    now = time.monotonic()

    timers.call_at(now + 0.06, lambda: (ran.append("third"), done.set()))
    timers.call_at(now + 0.02, lambda: ran.append("first"))
    timers.call_at(now + 0.04, lambda: ran.append("second"))

    assert done.wait(timeout=10)
    assert ran == ["first", "second", "third"]


def test_an_earlier_time_wakes_a_thread_waiting_for_a_later_one():
    """A new earliest time is not kept waiting behind the one before it."""
    timers = Timers()
    late = threading.Event()
    early = threading.Event()
    timers.call_at(time.monotonic() + 3600, late.set)

    timers.call_at(time.monotonic() + 0.01, early.set)

    assert early.wait(timeout=10)
    assert not late.is_set()


def test_a_failing_function_is_logged_and_the_thread_goes_on(caplog):
    """An exception in one function does not stop the ones after it."""
    timers = Timers()
    after = threading.Event()

    def fail() -> None:
        raise RuntimeError("boom")

    now = time.monotonic()
    timers.call_at(now, fail)
    timers.call_at(now + 0.01, after.set)

    assert after.wait(timeout=10)
    assert "a rotsafe timer failed" in caplog.text

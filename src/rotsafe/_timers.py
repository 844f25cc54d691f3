"""One daemon thread that calls functions at set times on the monotonic clock.

Secrets use it to mark a cached value expired when its TTL is up, so that a
warm read checks an attribute instead of reading the clock.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable

logger = logging.getLogger("rotsafe.timers")


class Timers:
    """Calls each scheduled function once, soon after its time.

    The thread starts on the first :meth:`call_at` and then waits for the
    earliest time due. Functions run one after another in that thread, so
    they must be short and must not block.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition(threading.Lock())
        self._due: list[tuple[float, int, Callable[[], object]]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def call_at(self, when: float, function: Callable[[], object]) -> bool:
        """Call ``function`` at ``when``, a time on ``time.monotonic``.

        Returns ``False``, scheduling nothing, when no thread can be started
        (at interpreter shutdown): the caller must then not rely on it.
        """
        with self._condition:
            if self._thread is None:
                thread = threading.Thread(
                    target=self._run, name="rotsafe-timers", daemon=True
                )
                try:
                    thread.start()
                except RuntimeError:
                    return False
                self._thread = thread

            entry = (when, next(self._order), function)
            heapq.heappush(self._due, entry)
            if self._due[0] is entry:
                self._condition.notify()
        return True

    def _run(self) -> None:
        while True:
            with self._condition:
                while True:
                    now = time.monotonic()
                    if self._due and self._due[0][0] <= now:
                        function = heapq.heappop(self._due)[2]
                        break
                    timeout = self._due[0][0] - now if self._due else None
                    self._condition.wait(timeout)

            try:
                function()
            except Exception:
                logger.exception("a rotsafe timer failed")


_TIMERS = Timers()


def call_at(when: float, function: Callable[[], object]) -> bool:
    """Schedule ``function`` on the process's timer thread; see Timers."""
    return _TIMERS.call_at(when, function)


def _renew_in_child() -> None:
    """A forked child has no timer thread and must not wait for its times."""
    global _TIMERS  # noqa: PLW0603 - one timer thread for the process
    _TIMERS = Timers()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_renew_in_child)

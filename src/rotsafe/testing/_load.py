"""A small load generator: threads running one operation in a loop.

It records every operation's start, duration and error, so a test can say
"no operation failed during the rotation" and a drill can draw a timeline.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

from rotsafe._classify import ErrorKind, classify

# A load stops by itself after this long, whatever its caller does.
_LIMIT = 600.0


@dataclass(frozen=True)
class Operation:
    """One run of the operation.

    Attributes:
        started: When it started, on the load's clock.
        seconds: How long it took.
        error: ``"ErrorClass: message"`` if it failed, else ``None``.
        kind: What :func:`rotsafe.classify` made of the error.
    """

    started: float
    seconds: float
    error: str | None = None
    kind: ErrorKind | None = None

    @property
    def failed(self) -> bool:
        """Whether the operation raised."""
        return self.error is not None


@dataclass
class LoadResult:
    """Every operation a load ran, and figures over them."""

    operations: list[Operation] = field(default_factory=list)

    @property
    def count(self) -> int:
        """How many operations ran."""
        return len(self.operations)

    @property
    def failures(self) -> list[Operation]:
        """The operations that raised."""
        return [each for each in self.operations if each.failed]

    @property
    def failed(self) -> int:
        """How many operations raised."""
        return len(self.failures)

    @property
    def slowest(self) -> float:
        """The longest operation, in seconds."""
        return max((each.seconds for each in self.operations), default=0.0)

    def percentile(self, percent: float) -> float:
        """Return a latency percentile in seconds, such as 50 or 99."""
        latencies = sorted(each.seconds for each in self.operations)
        if not latencies:
            return 0.0
        if len(latencies) == 1:
            return latencies[0]
        cuts = statistics.quantiles(latencies, n=100, method="inclusive")
        return cuts[min(98, max(0, round(percent) - 1))]


class Load:
    """Threads that run ``operation`` again and again until stopped.

    Use it as a context manager: the threads start on entry and stop on
    exit, after which :attr:`result` holds every operation. A load stops by
    itself after ten minutes.

    Args:
        operation: What each thread runs; an exception counts as a failure
            and a returned value is ignored, so raise on a bad response.
        threads: How many threads run it.
        pause: Seconds each thread waits between two operations.
        clock: Stamps the operations.
    """

    def __init__(
        self,
        operation: Callable[[], object],
        *,
        threads: int = 8,
        pause: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.operation = operation
        self.threads = threads
        self.pause = pause
        self.clock = clock
        self.result = LoadResult()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []

    def __enter__(self) -> Load:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start the threads."""
        self._stop.clear()
        self._workers = [
            threading.Thread(
                target=self._run, name=f"rotsafe-load-{n}", daemon=True
            )
            for n in range(self.threads)
        ]
        for worker in self._workers:
            worker.start()

    def stop(self) -> LoadResult:
        """Stop the threads, wait for them, and return the result."""
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=_LIMIT)
        with self._lock:
            self.result.operations.sort(key=lambda each: each.started)
        return self.result

    def wait_for(self, count: int, timeout: float = 60.0) -> None:
        """Block until at least ``count`` operations have finished.

        Raises:
            TimeoutError: Fewer finished within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while self.result.count < count:
            if time.monotonic() > deadline:
                msg = f"only {self.result.count} of {count} operations ran"
                raise TimeoutError(msg)
            time.sleep(0.01)

    def _run(self) -> None:
        end = time.monotonic() + _LIMIT
        while not self._stop.is_set() and time.monotonic() < end:
            started = self.clock()
            try:
                self.operation()
            except Exception as exc:
                record = Operation(
                    started,
                    self.clock() - started,
                    f"{type(exc).__name__}: {exc}",
                    classify(exc),
                )
            else:
                record = Operation(started, self.clock() - started)
            with self._lock:
                self.result.operations.append(record)
            if self.pause:
                self._stop.wait(self.pause)

"""Counting the Secrets Manager calls a boto3 client makes, by operation.

``rotsafe.testing.CallCounter`` counts ``GetSecretValue`` only; the
alternatives also call ``DescribeSecret``, so this counts every operation
and stamps each call, which gives the peak rate during a rotation.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

# The operations that read a secret; others (none expected) are kept apart.
READS = ("GetSecretValue", "DescribeSecret")


class ApiCalls:
    """Every Secrets Manager call made through the clients it is attached to.

    Args:
        clock: Stamps the calls.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._calls: list[tuple[float, str]] = []

    def attach(self, client: Any) -> Any:
        """Count ``client``'s calls from now on; return the client."""
        client.meta.events.register("before-call.secrets-manager", self._count)
        return client

    def record(self, operation: str) -> None:
        """Record one call of ``operation``, stamped now."""
        stamp = self.clock()
        with self._lock:
            self._calls.append((stamp, operation))

    def _count(self, model: Any, **_: Any) -> None:
        self.record(model.name)

    def mark(self) -> int:
        """Return a mark to count calls made after it."""
        with self._lock:
            return len(self._calls)

    def since(self, mark: int = 0) -> list[tuple[float, str]]:
        """Return the calls made after ``mark``: when, and which operation."""
        with self._lock:
            return list(self._calls[mark:])

    def count(self, mark: int = 0) -> int:
        """Return how many calls were made after ``mark``."""
        return len(self.since(mark))

    def by_operation(self, mark: int = 0) -> dict[str, int]:
        """Return the calls made after ``mark``, counted by operation."""
        return dict(Counter(name for _, name in self.since(mark)))

    def peak_per_second(self, mark: int = 0) -> int:
        """Return the most calls made within any one second after ``mark``."""
        stamps = sorted(stamp for stamp, _ in self.since(mark))
        best = 0
        start = 0
        for end, stamp in enumerate(stamps):
            while stamp - stamps[start] >= 1.0:
                start += 1
            best = max(best, end - start + 1)
        return best

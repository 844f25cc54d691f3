"""Deadlines for tenacity, measured by a secret's clock rather than time's.

A secret's clock can be a manual one in tests, so retries and fallbacks
reach their deadlines without real waiting.
"""

from __future__ import annotations

from collections.abc import Callable

import tenacity


class Deadline:
    """A point in time on ``clock``, ``seconds`` from when it was made."""

    def __init__(self, clock: Callable[[], float], seconds: float) -> None:
        self.clock = clock
        self.end = clock() + seconds

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.end - self.clock())

    def stop(self) -> tenacity.stop.stop_base:
        """A tenacity stop that ends the retries once the deadline passed."""
        return _Stop(self)

    def wait(self, inner: tenacity.wait.wait_base) -> tenacity.wait.wait_base:
        """A tenacity wait that waits as ``inner`` does, never past the end."""
        return _Wait(self, inner)


class _Stop(tenacity.stop.stop_base):
    def __init__(self, deadline: Deadline) -> None:
        self.deadline = deadline

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return self.deadline.remaining() <= 0


class _Wait(tenacity.wait.wait_base):
    def __init__(self, deadline: Deadline, inner: tenacity.wait.wait_base):
        self.deadline = deadline
        self.inner = inner

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        return min(self.inner(retry_state), self.deadline.remaining())

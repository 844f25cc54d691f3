"""How rotsafe waits between attempts, and a switch that skips the waits.

Tests of service code turn the waits off with
:func:`rotsafe.testing.no_waits`, so a fallback or retry that backs off
returns at once; deadlines then count attempts rather than seconds passed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

_skipping = False


def skip_waits(skip: bool) -> None:
    """Turn the skipping of backoff waits on or off, process-wide."""
    global _skipping  # noqa: PLW0603 - one switch for the process
    _skipping = skip


def skipping() -> bool:
    """Return whether backoff waits are skipped."""
    return _skipping


def waiter(sleep: Callable[[float], None]) -> Callable[[float], None]:
    """Return ``sleep``, or a wait that returns at once while skipping."""

    def wait(seconds: float) -> None:
        if not _skipping:
            sleep(seconds)

    return wait


async def async_wait(seconds: float) -> None:
    """Wait on the event loop, or not at all while skipping."""
    await asyncio.sleep(0 if _skipping else seconds)

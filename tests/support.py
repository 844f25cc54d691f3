"""Helpers several test files share: async load, a ticker, a process scan."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType


class Ticker:
    """A task that wakes every 10 ms; late wakes show a blocked loop.

    Use as ``async with Ticker() as ticker:``; afterwards ``ticker.gaps``
    holds the seconds between consecutive wakes.
    """

    def __init__(self, every: float = 0.01) -> None:
        self.every = every
        self.ticks: list[float] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Ticker:
        self._task = asyncio.create_task(self._tick())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    @property
    def gaps(self) -> list[float]:
        """Seconds between consecutive wakes."""
        return [b - a for a, b in itertools.pairwise(self.ticks)]

    async def _tick(self) -> None:
        while not self._stop.is_set():
            self.ticks.append(time.monotonic())
            await asyncio.sleep(self.every)


def processes_using(folder: Path) -> list[str]:
    """Return the command lines of processes that name ``folder``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if str(folder).encode() in command:
            found.append(command.decode(errors="replace"))
    return found


def run_async_load(
    operation: Callable[[], Awaitable[object]],
    during: Callable[[], object],
    *,
    workers: int = 8,
) -> list[BaseException | None]:
    """Run ``operation`` on ``workers`` tasks before, during and after."""
    outcomes: list[BaseException | None] = []

    async def work(stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await operation()
            except Exception as exc:
                outcomes.append(exc)
            else:
                outcomes.append(None)

    async def until(count: int) -> None:
        deadline = time.monotonic() + 60
        while len(outcomes) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    async def scenario() -> None:
        stop = asyncio.Event()
        tasks = [asyncio.create_task(work(stop)) for _ in range(workers)]
        await until(40)
        await asyncio.to_thread(during)
        await until(len(outcomes) + 40)
        stop.set()
        await asyncio.gather(*tasks)

    asyncio.run(scenario())
    return outcomes


def failures(outcomes: list[BaseException | None]) -> list[str]:
    return [repr(each) for each in outcomes if each is not None][:5]

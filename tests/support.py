"""Helpers several test files share: async load, a ticker, a process scan."""

from __future__ import annotations

import asyncio
import gc
import itertools
import os
import signal
import subprocess
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from types import TracebackType

import rotsafe
from rotsafe.testing import LoadResult, Operation

_TESTS = Path(__file__).parent


class Ticker:
    """A task that wakes every 10 ms; late wakes show a blocked loop.

    Use as ``async with Ticker() as ticker:``; afterwards ``ticker.gaps``
    holds the seconds between consecutive wakes. While it ticks, the objects
    that existed before are frozen out of garbage collection: a full
    collection over a long test session's objects holds every thread for
    about 100 ms, which would read as a blocked loop whoever caused it.
    """

    def __init__(self, every: float = 0.01) -> None:
        self.every = every
        self.ticks: list[float] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Ticker:
        gc.freeze()
        self._task = asyncio.create_task(self._tick())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        try:
            if self._task is not None:
                await self._task
        finally:
            gc.unfreeze()

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


def signal_when_ready(
    command: list[str],
    ready: str,
    number: signal.Signals,
    scratch: Path,
    cwd: Path | None = None,
) -> tuple[int, str]:
    """Send ``number`` to ``command`` once it prints ``ready``.

    The command runs with ``scratch`` as its ``TMPDIR``, and some process
    must be using that folder (a server it started) when the signal goes.
    Returns its exit status and what it printed after ``ready``, standard
    output and error together.
    """
    process = subprocess.Popen(
        command,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "TMPDIR": str(scratch)},
    )
    try:
        assert process.stdout is not None
        seen = []
        for line in process.stdout:
            seen.append(line)
            if ready in line:
                break
        assert ready in seen[-1], "".join(seen)
        assert processes_using(scratch), "nothing runs in the scratch folder"

        process.send_signal(number)
        rest = process.communicate(timeout=60)[0]
    finally:
        if process.poll() is None:
            process.kill()
    return process.returncode, rest


def run_async_load(
    operation: Callable[[], Awaitable[object]],
    during: Callable[[], object],
    *,
    workers: int = 8,
) -> LoadResult:
    """Run ``operation`` on ``workers`` tasks before, during and after.

    ``during`` runs in a worker thread, so that the loop goes on meanwhile.
    Every run is recorded as the thread-based :class:`Load` records it.
    """
    result = LoadResult()

    async def work(stop: asyncio.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                await operation()
            except Exception as exc:
                record = Operation(
                    started,
                    time.monotonic() - started,
                    f"{type(exc).__name__}: {exc}",
                    rotsafe.classify(exc),
                )
            else:
                record = Operation(started, time.monotonic() - started)
            result.operations.append(record)

    async def until(count: int) -> None:
        deadline = time.monotonic() + 60
        while result.count < count and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    async def scenario() -> None:
        stop = asyncio.Event()
        tasks = [asyncio.create_task(work(stop)) for _ in range(workers)]
        await until(40)
        await asyncio.to_thread(during)
        await until(result.count + 40)
        stop.set()
        await asyncio.gather(*tasks)

    asyncio.run(scenario())
    return result


def locals_of(exc: BaseException) -> str:
    """The repr of every local that an error and its chain hold, tests aside.

    What an error reporter that records locals (Sentry does by default)
    would send along with the error, but for the frames of these tests.
    """
    found = []
    for error in _chain(exc):
        for frame, _ in traceback.walk_tb(error.__traceback__):
            if Path(frame.f_code.co_filename).parent == _TESTS:
                continue
            found += [
                f"{name}={value!r}" for name, value in frame.f_locals.items()
            ]
    return "\n".join(found)


def attributes_of(exc: BaseException) -> str:
    """The repr of every attribute an error and its chain hold, and theirs.

    What an error reporter that records exception attributes would send:
    each error's attributes, and the public attributes of those (psycopg's
    ``exc.pgconn.password`` is one such).
    """
    found = []
    for error in _chain(exc):
        for name, value in _attributes(error, private=True):
            found.append(f"{name}={value!r}")
            if not isinstance(value, (str, bytes, int, float, type(None))):
                found += [
                    f"{name}.{inner}={each!r}"
                    for inner, each in _attributes(value, private=False)
                ]
    return "\n".join(found)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """An error and every error chained to it, each once."""
    pending: list[BaseException | None] = [exc]
    seen: set[int] = set()
    while pending:
        error = pending.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        yield error
        pending += [error.__cause__, error.__context__]


def _attributes(thing: object, *, private: bool) -> list[tuple[str, object]]:
    found = []
    for name in dir(thing):
        if name.startswith("__") or (name.startswith("_") and not private):
            continue
        value = getattr(thing, name, None)
        if not callable(value):
            found.append((name, value))
    return found


def describe(result: LoadResult) -> str:
    """The first few failures of a load, one a line, for an assertion."""
    return "\n".join(each.error or "" for each in result.failures[:5])


def assert_unnoticed(result: LoadResult, calls: int) -> None:
    """Assert that a load went through a rotation as if none had happened.

    No operation failed; none stalled for as long as the tests' 2 s windows
    last (a fallback costs a few logins, while waiting for ``AWSCURRENT``
    to move would hold operations until finishSecret); and Secrets Manager
    was called a handful of times, not once per refusal.
    """
    assert result.count > 0, "the load ran"
    assert result.failed == 0, describe(result)
    assert result.slowest < 1.0, f"an operation took {result.slowest:.2f} s"
    assert calls <= 10, f"{calls} GetSecretValue calls"

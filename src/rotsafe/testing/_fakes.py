"""In-memory stand-ins for unit tests: a clock, a source, no waits.

They make tests fast and exact; behaviour that depends on Secrets Manager
or a database is also tested against the real thing.
"""

from __future__ import annotations

import contextlib
import copy
import json
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from rotsafe._errors import RotsafeError
from rotsafe._sources import (
    AWSCURRENT,
    AWSPREVIOUS,
    SecretSource,
    SecretVersion,
)
from rotsafe._waits import skip_waits, skipping


class ManualClock:
    """A monotonic clock that moves only when told to.

    Pass it as ``clock=`` and its :meth:`sleep` as ``sleep=`` where rotsafe
    takes them, so waits pass instantly and deadlines still count.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        with self._lock:
            self.now += seconds

    def sleep(self, seconds: float) -> None:
        """Pretend to sleep: move the clock forward and return at once."""
        self.advance(seconds)


class MemorySource:
    """A secret's versions and staging labels, kept in memory.

    Labels behave as in Secrets Manager: moving ``AWSCURRENT`` puts
    ``AWSPREVIOUS`` on the version that held it. Every read is recorded in
    :attr:`calls`, and :meth:`fail` makes reads raise.
    """

    def __init__(self, value: Mapping[str, Any] | str | None = None) -> None:
        self.calls: list[str] = []
        self._versions: dict[str, str | bytes] = {}
        self._stages: dict[str, str] = {}
        self._failure: RotsafeError | None = None
        self._lock = threading.Lock()
        if value is not None:
            self.put(value)

    def put(
        self,
        value: Mapping[str, Any] | str | bytes,
        stages: Iterable[str] = (AWSCURRENT,),
    ) -> str:
        """Store a new version under ``stages``; return its version id."""
        version_id = str(uuid.uuid4())
        if isinstance(value, Mapping):
            value = json.dumps(value)
        with self._lock:
            self._versions[version_id] = value
        for stage in stages:
            self.move(stage, version_id)
        return version_id

    def move(self, stage: str, version_id: str) -> None:
        """Put ``stage`` on ``version_id`` as UpdateSecretVersionStage does."""
        with self._lock:
            if version_id not in self._versions:
                msg = f"no version {version_id}"
                raise KeyError(msg)
            previous = self._stages.get(stage)
            self._stages[stage] = version_id
            if stage == AWSCURRENT and previous not in (None, version_id):
                self._stages[AWSPREVIOUS] = previous

    def remove(self, stage: str) -> None:
        """Take ``stage`` off whichever version carries it."""
        with self._lock:
            self._stages.pop(stage, None)

    def version_of(self, stage: str) -> str | None:
        """Return the id of the version that carries ``stage``."""
        return self._stages.get(stage)

    def fail(self, error: RotsafeError | None) -> None:
        """Make every read raise ``error``; ``None`` ends that."""
        self._failure = error

    def get(self, secret_id: str, stage: str) -> SecretVersion | None:
        """Return the version that carries ``stage``, or ``None``."""
        with self._lock:
            self.calls.append(stage)
            if self._failure is not None:
                raise copy.copy(self._failure)
            version_id = self._stages.get(stage)
            if version_id is None:
                return None
            return SecretVersion(self._versions[version_id], version_id)


class DelayedSource:
    """Wraps a source so that every read takes ``delay`` seconds.

    For tests of what a slow Secrets Manager does to callers and to an
    event loop.
    """

    def __init__(self, inner: SecretSource, delay: float) -> None:
        self.inner = inner
        self.delay = delay

    def get(self, secret_id: str, stage: str) -> SecretVersion | None:
        """Wait, then read from the wrapped source."""
        time.sleep(self.delay)
        return self.inner.get(secret_id, stage)


@contextlib.contextmanager
def no_waits() -> Iterator[None]:
    """Skip rotsafe's backoff waits inside the block, process-wide.

    Fallbacks and ``@retry_on_auth_error`` then retry at once. Deadlines
    still count on the secret's clock, so pair this with a
    :class:`ManualClock` when a test must reach one.
    """
    before = skipping()
    skip_waits(True)
    try:
        yield
    finally:
        skip_waits(before)

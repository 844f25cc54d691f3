"""Opening connections through a rotation: fallback over the stages, backoff.

A connection first uses what the secret serves. When the database refuses
it, the other stages are tried, then polled with backoff until a deadline.
Errors that are not about the credentials are never answered with a refresh.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, Generic, Protocol, TypeVar

import tenacity

from rotsafe._classify import ErrorKind, classify
from rotsafe._credentials import Credentials
from rotsafe._deadline import Deadline
from rotsafe._drivers import check_options, driver_for
from rotsafe._durations import Duration, to_seconds
from rotsafe._errors import (
    ConnectionSetupError,
    CredentialsRejected,
    RotsafeError,
)
from rotsafe._secret import RotatingSecret
from rotsafe._sources import AWSCURRENT, AWSPENDING, AWSPREVIOUS
from rotsafe._waits import async_wait, waiter

logger = logging.getLogger("rotsafe.connect")

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_DEADLINE = 30.0

# How many errors of a driver's chain lose their tracebacks, at most.
_CHAIN_LIMIT = 16

# Rounds of the fallback come after 0.25, 0.5, 1, 2, 4, then every 5 s (plus
# up to 0.25 s of jitter): about ten rounds in the default deadline.
_WAIT = tenacity.wait_exponential(
    multiplier=0.25, max=5
) + tenacity.wait_random(0, 0.25)

_SETUP_ADVICE = {
    ErrorKind.MISSING_CREDENTIALS: (
        "no password reached the database; check that nothing in the "
        "connect options or the URL replaces the secret's login"
    ),
    ErrorKind.HOST_BLOCKED: (
        "the server refuses this client host or this account (pg_hba.conf, "
        "MySQL host grants, a host blocked after connection errors, an "
        "account locked, or a PostgreSQL role without LOGIN); the driver's "
        "error below says which"
    ),
    ErrorKind.CONFIG: (
        "the server or the driver refused the connection's setup (TLS, the "
        "authentication method, a connect option, or the database name); "
        "the driver's error below says which"
    ),
}


class _AllRefused(Exception):
    """Every credential of one round was refused."""


def connect_with(
    secret: RotatingSecret,
    attempt: Callable[[Credentials], T],
    *,
    deadline: Duration = DEFAULT_DEADLINE,
    sleep: Callable[[float], None] | None = None,
) -> T:
    """Call ``attempt`` with the secret's credentials, through a rotation.

    ``attempt`` opens a connection with the credentials it is given. When it
    raises an ``AUTH`` error: ``AWSCURRENT`` is refreshed, then
    ``AWSPENDING`` and ``AWSPREVIOUS`` are tried; if none works, rounds
    repeat with exponential backoff and jitter until ``deadline``. A stage
    that works is served by the secret until ``AWSCURRENT`` moves. The
    caller's thread blocks for the rounds, at most about ``deadline``; the
    first round reads every stage however short it is.

    Args:
        secret: The secret to take credentials from.
        attempt: Opens a connection with the credentials given.
        deadline: How long to keep trying after the first refusal.
        sleep: Waits between rounds; the secret's ``sleep`` by default.

    Returns:
        What ``attempt`` returned.

    Raises:
        CredentialsRejected: Nothing worked before the deadline; chained to
            the last driver error.
        ConnectionSetupError: The database refused for a reason a retry
            cannot fix (no password sent, host blocked, TLS or client
            setup); chained to the driver error.
        Exception: Any other error from ``attempt`` (network, too many
            connections, permissions), as the driver raised it.
        SecretUnavailable: Secrets Manager could not be read and nothing
            is cached.
    """
    io = Blocking(waiter(sleep or secret.sleep))
    return fall_back(secret, attempt, to_seconds(deadline, "deadline"), io)


async def aconnect_with(
    secret: RotatingSecret,
    attempt: Callable[[Credentials], Awaitable[T]],
    *,
    deadline: Duration = DEFAULT_DEADLINE,
) -> T:
    """Await ``attempt`` with the secret's credentials, through a rotation.

    The coroutine form of :func:`connect_with`, with the same fallback. The
    event loop is never blocked: Secrets Manager is read in worker threads
    and backoff waits are ``asyncio.sleep``. Single-flight reads and shared
    fallback rounds hold across tasks and threads together. Needs
    ``greenlet`` (``pip install 'rotsafe[async]'``).

    Raises:
        The same as :func:`connect_with`.
    """
    from sqlalchemy.util import await_only, greenlet_spawn  # noqa: PLC0415

    seconds = to_seconds(deadline, "deadline")

    def attempt_in_greenlet(credentials: Credentials) -> T:
        return await_only(attempt(credentials))

    result: T = await greenlet_spawn(
        fall_back, secret, attempt_in_greenlet, seconds, InGreenlet()
    )
    return result


class Io(Protocol):
    """How the fallback blocks: in the caller's thread, or off the loop."""

    def call(self, function: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        """Run a function that may block."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait between rounds."""
        ...

    def acquire(self, lock: threading.Lock, timeout: float | None) -> bool:
        """Take a lock that another connection may hold for a while.

        ``None`` waits as long as the holder keeps it.
        """
        ...


class Blocking:
    """Blocks the calling thread: for synchronous drivers."""

    def __init__(self, sleep: Callable[[float], None]) -> None:
        self.sleep = sleep

    def call(self, function: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        return function(*args, **kwargs)

    def acquire(self, lock: threading.Lock, timeout: float | None) -> bool:
        return lock.acquire(timeout=-1 if timeout is None else timeout)


class InGreenlet:
    """Runs inside SQLAlchemy's greenlet bridge on an event loop.

    Calls that may block go to rotsafe's own worker threads, so that an
    application's busy default executor cannot starve them, and waits are
    ``asyncio.sleep``: the loop keeps running other tasks. A lock another
    task holds is polled from the loop rather than waited for in a thread,
    since waiting threads could take every worker the holder needs.
    """

    _POLL = 0.005

    def call(self, function: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        from sqlalchemy.util import await_only  # noqa: PLC0415

        loop = asyncio.get_running_loop()
        call = functools.partial(function, *args, **kwargs)
        result: R = await_only(loop.run_in_executor(_workers(), call))
        return result

    def sleep(self, seconds: float) -> None:
        from sqlalchemy.util import await_only  # noqa: PLC0415

        await_only(async_wait(seconds))

    def acquire(self, lock: threading.Lock, timeout: float | None) -> bool:
        from sqlalchemy.util import await_only  # noqa: PLC0415

        end = time.monotonic() + (math.inf if timeout is None else timeout)
        while not lock.acquire(blocking=False):
            if time.monotonic() >= end:
                return False
            await_only(asyncio.sleep(self._POLL))
        return True


_WORKERS: concurrent.futures.ThreadPoolExecutor | None = None
_WORKERS_LOCK = threading.Lock()


def _workers() -> concurrent.futures.ThreadPoolExecutor:
    """The threads async connections read Secrets Manager in."""
    global _WORKERS  # noqa: PLW0603 - one pool for the process
    with _WORKERS_LOCK:
        if _WORKERS is None:
            _WORKERS = concurrent.futures.ThreadPoolExecutor(
                max_workers=16, thread_name_prefix="rotsafe"
            )
        return _WORKERS


def _forget_workers() -> None:
    """A forked child has none of its parent's threads."""
    global _WORKERS, _WORKERS_LOCK  # noqa: PLW0603 - renewed in the child
    _WORKERS = None
    _WORKERS_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_workers)


def fall_back(
    secret: RotatingSecret,
    attempt: Callable[[Credentials], T],
    seconds: float,
    io: Io,
) -> T:
    """Connect as :func:`connect_with` describes, blocking as ``io`` says."""
    first = io.call(secret.credentials)
    try:
        return attempt(first)
    except Exception as exc:
        _reraise_unless_auth(secret, exc)
        refused: BaseException = exc
    refused_at = secret.rejected(first, within=seconds)

    logger.warning(
        "secret %s: the database refused %s (version %s); trying the other "
        "stages",
        secret.secret_id,
        first.stage,
        first.version_id,
    )
    until = Deadline(secret.clock, seconds)
    fallback = _Fallback(
        secret,
        attempt,
        first,
        refused,
        refused_at=refused_at,
        until=until,
        io=io,
    )
    retrying = tenacity.Retrying(
        wait=until.wait(_WAIT),
        stop=until.stop(),
        retry=tenacity.retry_if_exception_type(_AllRefused),
        sleep=io.sleep,
        before_sleep=fallback.log_round,
        reraise=True,
    )
    try:
        return retrying(fallback.round)
    except _AllRefused:
        error = CredentialsRejected(
            secret.secret_id,
            [(c.stage, c.version_id) for c in fallback.tried],
            seconds,
            secrets_manager_error=fallback.source_error,
        )
        logger.error("%s", error)
        raise error from _scrubbed(fallback.refused)


class _BaseConnector:
    """A secret, connect options and a deadline, ready to open connections."""

    def __init__(
        self,
        secret: RotatingSecret,
        options: dict[str, Any],
        deadline: Duration,
    ) -> None:
        check_options(options)
        self.secret = secret
        self.options = options
        self.deadline = to_seconds(deadline, "deadline")

    def __repr__(self) -> str:
        return f"<rotsafe {type(self).__name__} for {self.secret.secret_id!r}>"


class Connector(_BaseConnector):
    """A zero-argument callable that opens a DB-API connection from a secret.

    Made by :func:`rotsafe.creator`; see there.
    """

    def __call__(self) -> Any:
        return connect_with(self.secret, self._open, deadline=self.deadline)

    def _open(self, credentials: Credentials) -> Any:
        driver = driver_for(credentials, self.secret.driver)
        return driver.connect(credentials, self.options)


class AsyncConnector(_BaseConnector):
    """A coroutine function that opens an async driver's connection.

    Made by :func:`rotsafe.async_creator`; see there.
    """

    async def __call__(self) -> Any:
        return await aconnect_with(
            self.secret, self._open, deadline=self.deadline
        )

    def _open(self, credentials: Credentials) -> Awaitable[Any]:
        driver = driver_for(credentials, self.secret.driver, is_async=True)
        coroutine: Awaitable[Any] = driver.connect(credentials, self.options)
        return coroutine


def creator(
    secret: RotatingSecret,
    *,
    deadline: Duration = DEFAULT_DEADLINE,
    **connect_kwargs: Any,
) -> Connector:
    """Return a function that opens a connection with the secret's login.

    Pass it to ``sqlalchemy.create_engine(url, creator=...)``, or call it
    directly. Each call opens a new connection and survives a rotation as
    :func:`connect_with` describes. The driver is the secret's ``driver=``,
    or PyMySQL for MySQL and psycopg for PostgreSQL.

    Args:
        secret: The secret to take the login from.
        deadline: How long to keep trying after the database refuses the
            login; float seconds or ``timedelta``.
        **connect_kwargs: Passed to the driver's ``connect()`` untouched
            (TLS, timeouts, charset). The user and password come from the
            secret, and so do the host, port and database.

    Raises:
        ValueError: ``connect_kwargs`` hold a login or its target.
    """
    return Connector(secret, dict(connect_kwargs), deadline)


def async_creator(
    secret: RotatingSecret,
    *,
    deadline: Duration = DEFAULT_DEADLINE,
    **connect_kwargs: Any,
) -> AsyncConnector:
    """Return a coroutine function that opens an async driver's connection.

    Pass it to ``create_async_engine(url, async_creator=...)``, or await it
    directly. The fallback is :func:`aconnect_with`'s, and never blocks the
    event loop. The driver is the secret's ``driver=`` (``asyncpg``,
    ``psycopg_async``, ``aiomysql``, ``asyncmy``; ``psycopg`` means its async
    form), or asyncpg for PostgreSQL and aiomysql for MySQL.

    Args:
        secret: The secret to take the login from.
        deadline: How long to keep trying after the database refuses the
            login; float seconds or ``timedelta``.
        **connect_kwargs: Passed to the driver's ``connect()`` untouched.

    Raises:
        ValueError: ``connect_kwargs`` hold a login or its target.
    """
    return AsyncConnector(secret, dict(connect_kwargs), deadline)


class _Rounds:
    """Fallback rounds of one secret, run by one thread at a time.

    A crowd of threads refused together would otherwise each probe the
    database with every stage, round after round: a login storm, and with
    MySQL's FAILED_LOGIN_ATTEMPTS a locked account. A thread probes only if
    no other thread has probed since its own last look; otherwise it tries
    just what that round left the secret serving.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.completed = 0
        # Whether the last round to complete connected with some login.
        self.connected = False


_ROUNDS: weakref.WeakKeyDictionary[RotatingSecret, _Rounds] = (
    weakref.WeakKeyDictionary()
)
_ROUNDS_LOCK = threading.Lock()


def _rounds_of(secret: RotatingSecret) -> _Rounds:
    with _ROUNDS_LOCK:
        rounds = _ROUNDS.get(secret)
        if rounds is None:
            rounds = _ROUNDS[secret] = _Rounds()
        return rounds


def _forget_rounds() -> None:
    """A forked child must not wait for a round its parent's thread held."""
    global _ROUNDS, _ROUNDS_LOCK  # noqa: PLW0603 - renewed in the child
    _ROUNDS = weakref.WeakKeyDictionary()
    _ROUNDS_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_rounds)


class _Fallback(Generic[T]):
    """The state of one connection's fallback: what was tried, what failed."""

    def __init__(
        self,
        secret: RotatingSecret,
        attempt: Callable[[Credentials], T],
        first: Credentials,
        refused: BaseException,
        *,
        refused_at: float,
        until: Deadline,
        io: Io,
    ) -> None:
        self.secret = secret
        self.io = io
        self.attempt = attempt
        self.first = first
        self.refused = refused
        self.refused_at = refused_at
        self.until = until
        self.tried: list[Credentials] = [first]
        self.source_error: str | None = None
        self.rounds = 0
        self.probes = 0
        self.current: Credentials | None = None
        self.others: dict[str, Credentials | None] = {}
        self.unread = {AWSPENDING, AWSPREVIOUS}
        # Rounds any thread completed before this one looked.
        self.seen = _rounds_of(secret).completed

    def round(self) -> T:
        """Run one round, or share one another thread ran meanwhile.

        Raises:
            _AllRefused: Every credential tried was refused.
        """
        self.rounds += 1
        rounds = _rounds_of(self.secret)
        # The first round is whole however short the deadline, and so is
        # the wait for another thread's: it may be that thread's first.
        timeout = None if self.rounds == 1 else self.until.remaining()
        if not self.io.acquire(rounds.lock, timeout):
            raise _AllRefused
        try:
            shared = rounds.completed != self.seen
            if not shared:
                connected = False
                try:
                    connection = self._probe()
                    connected = True
                    return connection
                finally:
                    rounds.completed += 1
                    rounds.connected = connected
                    self.seen = rounds.completed
            self.seen = rounds.completed
            connected = rounds.connected
        finally:
            rounds.lock.release()
        return self._try_served(connected)

    def log_round(self, state: tenacity.RetryCallState) -> None:
        logger.warning(
            "secret %s: no stage's credentials were accepted (round %d); "
            "trying again in %.2f s",
            self.secret.secret_id,
            self.rounds,
            state.upcoming_sleep,
        )

    def _try_served(self, connected: bool) -> T:
        """Try what another thread's round left the secret serving.

        After a round that connected, that is the login it connected with,
        even if it is the one this thread was refused: the database may
        have taken it back. After a round that failed, it is tried only if
        it is another login.
        """
        served = self._served()
        if served is None or (not connected and served.same_login(self.first)):
            raise _AllRefused
        return self._try([served], tried_now=[])

    def _probe(self) -> T:
        """Try every distinct credential once, reading stages as needed.

        The login just refused is left out only in the round that follows
        its refusal; after a wait it is worth trying again.
        """
        self.probes += 1
        tried_now = [self.first] if self.rounds == 1 else []
        return self._try(self._candidates(), tried_now)

    def _try(
        self,
        candidates: Iterable[Credentials | None],
        tried_now: list[Credentials],
    ) -> T:
        for candidate in candidates:
            if candidate is None or any(
                candidate.same_login(done) for done in tried_now
            ):
                continue
            tried_now.append(candidate)
            try:
                connection = self.attempt(candidate)
            except Exception as exc:
                _reraise_unless_auth(self.secret, exc)
                self.refused = exc
                self._remember(candidate)
                logger.debug(
                    "secret %s: the database refused %s (version %s)",
                    self.secret.secret_id,
                    candidate.stage,
                    candidate.version_id,
                )
                continue

            self.secret.accepted(candidate)
            logger.info(
                "secret %s: connected with %s (version %s) after %d round(s)",
                self.secret.secret_id,
                candidate.stage,
                candidate.version_id,
                self.rounds,
            )
            return connection
        raise _AllRefused

    def _candidates(self) -> Iterator[Credentials | None]:
        """Yield the credentials worth trying in this round, best first.

        Each is read only when the ones before it were refused. First comes
        what the secret serves now, free: another connection may have found
        the working stage meanwhile. ``AWSCURRENT`` is read every round
        (rate-limited by the secret). ``AWSPENDING`` and ``AWSPREVIOUS`` are
        read until a read made since the refusal is seen, and again
        whenever ``AWSCURRENT`` moves: outside a new rotation they change
        only with it. In the round right after the refusal, a read any
        thread made since the database first refused this login is recent
        enough; in later rounds, one within the secret's
        ``min_refresh_interval``.
        """
        since = self.refused_at if self.rounds == 1 else None
        yield self._served()

        current = self._read(AWSCURRENT, since)[0]
        if current is not None:
            if self.current is not None and not current.same_login(
                self.current
            ):
                self.unread |= {AWSPENDING, AWSPREVIOUS}
            self.current = current
        yield self.current

        for stage in (AWSPENDING, AWSPREVIOUS):
            if stage in self.unread:
                found, read_at = self._read(stage, since)
                if read_at is not None:
                    self.others[stage] = found
                    if read_at >= self.refused_at:
                        self.unread.discard(stage)
            yield self.others.get(stage)

    def _served(self) -> Credentials | None:
        """What the secret serves now, or ``None`` if it cannot say."""
        try:
            return self.io.call(self.secret.credentials)
        except RotsafeError as exc:
            self._could_not_read("the served credentials", exc)
            return None

    def _read(
        self, stage: str, since: float | None
    ) -> tuple[Credentials | None, float | None]:
        """Read a stage as :meth:`RotatingSecret.stage` does.

        Returns the credentials (``None`` when no version carries the
        stage) and when the read behind them started; both are ``None``
        when nothing could be read. Past the deadline, a stage is read only
        in the first round, which looks at every stage however short the
        deadline, and only until a read fails: an unreachable Secrets
        Manager holds the caller beyond the deadline by the read in
        progress at most.
        """
        if self.until.remaining() <= 0 and (
            self.rounds > 1 or self.source_error is not None
        ):
            return None, None
        try:
            found, read_at, error = self.io.call(
                self.secret._stage_as_read, stage, since
            )
        except RotsafeError as exc:
            self._could_not_read(stage, exc)
            return None, None
        if error is not None:
            # The secret served its cache and logged the failure itself.
            self.source_error = str(error)
        return found, read_at

    def _could_not_read(self, what: str, exc: RotsafeError) -> None:
        self.source_error = str(exc)
        logger.warning(
            "secret %s: could not read %s during fallback: %s",
            self.secret.secret_id,
            what,
            exc,
        )

    def _remember(self, candidate: Credentials) -> None:
        if not any(candidate.same_login(done) for done in self.tried):
            self.tried.append(candidate)


def _reraise_unless_auth(secret: RotatingSecret, exc: Exception) -> None:
    """Let an ``AUTH`` error through; raise anything else at once."""
    kind = classify(exc)
    if kind is ErrorKind.AUTH:
        return
    advice = _SETUP_ADVICE.get(kind)
    if advice is not None:
        raise ConnectionSetupError(
            secret.secret_id, kind, advice
        ) from _scrubbed(exc)
    raise exc


def _scrubbed(exc: BaseException) -> BaseException:
    """Take the login out of a driver error rotsafe chains to its own.

    The driver's frames hold the login in their locals, and psycopg keeps
    the failed connection, password included, on the error; error
    reporters record both. The message and type say what the database
    answered, and stay.
    """
    pending: list[BaseException | None] = [exc]
    seen: set[int] = set()
    while pending and len(seen) < _CHAIN_LIMIT:
        each = pending.pop()
        if each is None or id(each) in seen:
            continue
        seen.add(id(each))
        each.__traceback__ = None
        if getattr(each, "_pgconn", None) is not None:
            # psycopg offers no public way to let go of it.
            each._pgconn = None  # type: ignore[attr-defined]
        pending += [each.__cause__, each.__context__]
        orig = getattr(each, "orig", None)
        if isinstance(orig, BaseException):
            pending.append(orig)
    return exc

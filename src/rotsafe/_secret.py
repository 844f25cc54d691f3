"""RotatingSecret: a short-TTL, rotation-aware cache of one database secret.

A warm read takes no lock. A refresh is single-flight, rate-limited, and
when Secrets Manager fails it keeps serving the cached value for a bounded
time. During a rotation it serves whichever stage the database accepted.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import logging
import math
import os
import random
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import tenacity

from rotsafe._credentials import Credentials, Target, parse_secret
from rotsafe._drivers import driver_named
from rotsafe._durations import Duration, to_seconds
from rotsafe._errors import RotsafeError, SecretUnavailable
from rotsafe._sources import (
    AWSCURRENT,
    BotoSource,
    SecretCacheSource,
    SecretSource,
    SecretVersion,
)
from rotsafe._timers import call_at

if TYPE_CHECKING:
    from aws_secretsmanager_caching import SecretCache

logger = logging.getLogger("rotsafe.secret")

# A read of a stage that finds nothing new makes the next forced read wait
# twice as long, up to this many seconds, so a stuck fleet polls gently.
_MAX_UNCHANGED_INTERVAL = 4.0

# How many parsed versions to keep: the stages of one rotation, and spare.
_PARSED_VERSIONS = 8

# How many logins that AWSCURRENT held before are remembered, so a
# SecretCache that still holds one is not mistaken for a rotation.
_SUPERSEDED = 4

# Every live secret, so that a forked child can renew its locks.
_SECRETS: weakref.WeakSet[RotatingSecret] = weakref.WeakSet()


@dataclass(frozen=True)
class Rotation:
    """``AWSCURRENT`` was seen to move to another version.

    Attributes:
        secret_id: The secret that rotated.
        previous_version_id: The version ``AWSCURRENT`` held before, when
            known.
        version_id: The version it holds now, when known.
        credentials: The credentials of the new version.
    """

    secret_id: str
    previous_version_id: str | None
    version_id: str | None
    credentials: Credentials


RotationCallback = Callable[[Rotation], object]


class _Served:
    """What a warm ``credentials()`` call returns, and until when."""

    __slots__ = ("credentials", "refresh_at")

    def __init__(self, credentials: Credentials, refresh_at: float) -> None:
        self.credentials = credentials
        self.refresh_at = refresh_at


@dataclass(frozen=True)
class _Read:
    """The outcome of the last successful read of one stage.

    ``direct`` says whether it came from Secrets Manager itself rather
    than from a SecretCache, which may be behind it: only a direct read
    answers a forced one.
    """

    credentials: Credentials | None
    at: float
    interval: float
    direct: bool


class _Stage:
    """One staging label's last read, and the lock that makes it single."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.read: _Read | None = None
        self.attempts = 0
        # When a read made for a ``since`` last found nothing new.
        self.fruitless_at = -math.inf
        self.failures = 0
        self.retry_at = 0.0
        self.error: RotsafeError | None = None


class RotatingSecret:
    """A database secret, cached and followed through its rotations.

    ``credentials()`` answers from memory. Once the TTL has passed, the
    first caller to notice starts a refresh of ``AWSCURRENT`` in a
    background thread and every caller keeps the cached value without
    waiting. If Secrets Manager fails, the cached value is served for up to
    ``max_stale`` past its TTL, with a warning, while refreshes back off
    from 1 s to a minute.

    When the database refuses ``AWSCURRENT`` during a rotation, rotsafe's
    connectors try ``AWSPENDING`` and ``AWSPREVIOUS``; the first that works is
    served by ``credentials()`` until ``AWSCURRENT`` moves.

    Durations are float seconds or ``timedelta``. Create secrets after a
    process forks, or let rotsafe renew their locks and its own boto3
    client in the child, which it does.

    Args:
        secret_id: The secret's name or ARN.
        ttl: How long a read of ``AWSCURRENT`` is served before the next;
            each refresh comes after 80 to 100 % of it, so a fleet spreads
            its calls.
        client: A boto3 ``secretsmanager`` client. Without one, a client is
            made on first use from boto3's default session (which needs a
            region, from ``AWS_DEFAULT_REGION`` or the AWS config), with a 2 s
            connect timeout, a 3 s read timeout and two attempts in all.
        cache: An ``aws_secretsmanager_caching.SecretCache`` to answer the
            TTL refreshes of ``AWSCURRENT``. Forced refreshes and the other
            stages still call ``GetSecretValue``, since that library's own
            forced refresh sleeps for seconds.
        source: Any :class:`rotsafe.SecretSource`, instead of ``client``.
        host: The host to connect to, overriding the secret's (a proxy) or
            filling in what an RDS-managed secret lacks.
        port: The port, likewise.
        database: The database, likewise.
        driver: The DB-API driver, as SQLAlchemy names it (``"pymysql"``,
            ``"psycopg"``). It also tells the engine family when the secret
            has no ``engine``.
        min_refresh_interval: The least time between two forced reads of one
            stage; concurrent callers within it share one read. While reads
            keep finding the same version, the interval doubles, up to 4 s
            (or ``min_refresh_interval`` if that is longer).
        max_stale: How long past its TTL a cached value may be served while
            Secrets Manager fails; ``None`` serves it for as long as it
            takes. A stale password is still checked by the database, so
            the default is generous.
        refresh_in_background: Whether TTL refreshes run in a short-lived
            daemon thread, so that no caller waits for Secrets Manager once
            a value is cached. With ``False`` the caller that notices the
            expiry makes the call, which suits tests with a manual clock.
        clock: The monotonic clock, in seconds, that TTLs, rate limits and
            deadlines of this secret are measured by; for tests. With the
            default, ``time.monotonic``, a warm read reads no clock at all:
            a timer thread marks the cached value expired when its time is
            up. Any other clock is read by every call.
        sleep: How backoff waits of this secret's connections wait; for
            tests, with a clock that it moves.

    Raises:
        ValueError: An argument is out of range, or ``driver`` is unknown.
    """

    def __init__(
        self,
        secret_id: str,
        *,
        ttl: Duration = 300.0,
        client: Any = None,
        cache: SecretCache | None = None,
        source: SecretSource | None = None,
        host: str | None = None,
        port: int | None = None,
        database: str | None = None,
        driver: str | None = None,
        min_refresh_interval: Duration = 1.0,
        max_stale: Duration | None = timedelta(hours=24),
        refresh_in_background: bool = True,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not isinstance(secret_id, str) or not secret_id.strip():
            msg = "secret_id must be a secret's name or ARN"
            raise ValueError(msg)
        if client is not None and source is not None:
            msg = "pass client= or source=, not both"
            raise ValueError(msg)

        self.secret_id = secret_id
        self.ttl = to_seconds(ttl, "ttl")
        if self.ttl == 0:
            msg = "ttl must be longer than zero"
            raise ValueError(msg)
        self.min_refresh_interval = to_seconds(
            min_refresh_interval, "min_refresh_interval"
        )
        self.max_stale = (
            None if max_stale is None else to_seconds(max_stale, "max_stale")
        )
        self.refresh_in_background = refresh_in_background
        named = driver_named(driver) if driver is not None else None
        self.driver = named.name if named else None
        self._target = Target(
            host=_text_or_none(host, "host"),
            port=_port_or_none(port),
            database=_text_or_none(database, "database"),
            family=named.family if named else None,
        )
        # What an attached engine's URL says, for fields nothing else gives.
        self._fallback = Target()
        self.clock = clock
        self.sleep = sleep
        # Only the real clock has a timer thread to expire values on it.
        self._timed = clock is time.monotonic

        self._source: SecretSource = source or BotoSource(client)
        self._steady: SecretSource = (
            SecretCacheSource(cache) if cache is not None else self._source
        )

        self._served: _Served | None = None
        # What the warm path returns without reading the clock: the served
        # credentials while their timer is pending, else None.
        self._fresh: Credentials | None = None
        self._stages: dict[str, _Stage] = {}
        self._pinned: Credentials | None = None
        self._superseded: list[Credentials] = []
        self._refusal: tuple[Credentials, float] | None = None
        self._parsed: dict[SecretVersion, Credentials] = {}
        self._callbacks: list[RotationCallback] = []
        self._renew_locks()
        # Failed reads are retried after 1 s, 2 s, 4 s... up to a minute,
        # each with full jitter.
        self._backoff = tenacity.Retrying(
            wait=tenacity.wait_random_exponential(multiplier=1, max=60)
        )
        _SECRETS.add(self)

    def __repr__(self) -> str:
        served = self._served
        version = served.credentials.version_id if served else None
        return (
            f"RotatingSecret({self.secret_id!r}, ttl={self.ttl:g}, "
            f"version_id={version!r})"
        )

    def credentials(self) -> Credentials:
        """Return the credentials a new connection should use now.

        That is ``AWSCURRENT``, or during a rotation the stage the database
        accepted instead. A warm call returns at once without locking. The
        first call reads Secrets Manager and blocks until it answers; after
        the TTL, the cached value is served while a refresh runs.

        Raises:
            SecretUnavailable: Secrets Manager could not be read and nothing
                usable is cached, or the cached value is past ``max_stale``.
            SecretFormatError: The secret's value is malformed and nothing
                usable is cached.
        """
        fresh = self._fresh
        if fresh is not None:
            return fresh

        served = self._served
        if served is not None and self.clock() < served.refresh_at:
            self._rearm(served)
            return served.credentials
        return self._refresh_expired(served)

    def refresh(self) -> Credentials:
        """Read ``AWSCURRENT`` now; return what ``credentials()`` will serve.

        Concurrent callers share one call, and calls within
        ``min_refresh_interval`` of the last (longer while reads keep finding
        the same version, see there) are answered from the cache, so a crowd
        of threads that all hit an authentication error make one
        ``GetSecretValue`` call. If Secrets Manager fails, the cached value
        is returned and a warning logged.

        Raises:
            SecretUnavailable: Secrets Manager could not be read and nothing
                usable is cached.
            SecretFormatError: The secret's value is malformed and nothing
                usable is cached.
        """
        self._read_stage(AWSCURRENT, self._source)
        return self._serving()

    def stage(
        self, stage: str, *, since: float | None = None
    ) -> Credentials | None:
        """Return the credentials under a staging label, or ``None``.

        ``None`` means no version carries the label (there is no
        ``AWSPENDING`` outside a rotation). Reads are shared and rate-limited
        like :meth:`refresh`.

        Args:
            stage: ``"AWSPENDING"``, ``"AWSPREVIOUS"``, ``"AWSCURRENT"`` or a
                custom label.
            since: A time on the secret's :attr:`clock`: a read that started
                then or later is recent enough, and is answered from the
                cache however long ago it was. An earlier one is read again,
                however recent, unless a read made for a ``since`` found
                nothing new within the stage's refresh interval: callers
                refused again and again make one read an interval. Without
                it, ``min_refresh_interval`` decides.

        Raises:
            SecretUnavailable: Secrets Manager could not be read and nothing
                is cached for the stage.
            SecretFormatError: The stage's value is malformed and nothing is
                cached for it.
        """
        read = self._read_stage(stage, self._source, since)
        return read.credentials if read else None

    def _stage_as_read(
        self, stage: str, since: float | None
    ) -> tuple[Credentials | None, float, RotsafeError | None]:
        """Do what :meth:`stage` does; say too how the answer was read.

        Returns the credentials, when the read behind them started (on
        :attr:`clock`), and the error of the stage's last read if it
        failed, in which case the credentials are the cached ones. Raises
        as :meth:`stage` does.
        """
        read = self._read_stage(stage, self._source, since)
        error = self._stage_state(stage).error
        if read is None:
            return None, -math.inf, error
        return read.credentials, read.at, error

    def on_rotation(self, callback: RotationCallback) -> RotationCallback:
        """Call ``callback`` each time ``AWSCURRENT`` is seen to move.

        The callback receives a :class:`Rotation`, runs in the thread that
        noticed the move, after the new value is served, and must not block
        for long. Exceptions it raises are logged, not propagated. Returns
        the callback, so this works as a decorator.
        """
        self._callbacks.append(callback)
        return callback

    def off_rotation(self, callback: RotationCallback) -> None:
        """Stop calling a callback registered with :meth:`on_rotation`."""
        with contextlib.suppress(ValueError):
            self._callbacks.remove(callback)

    def accepted(self, credentials: Credentials) -> None:
        """Record that the database accepted ``credentials``.

        Connectors call this after a fallback: credentials from a stage other
        than ``AWSCURRENT`` are then served by :meth:`credentials` until
        ``AWSCURRENT`` moves, so a rotation window costs one fallback per
        process rather than one per connection. A refusal of the same login
        on record (see :meth:`rejected`) ends.
        """
        with self._pin_lock:
            refusal = self._refusal
            if refusal is not None and credentials.same_login(refusal[0]):
                self._refusal = None
            current = self._current()
            if current is None:
                return
            if credentials.same_login(current):
                pinned = None
            elif self._pinned is not None and credentials.same_login(
                self._pinned
            ):
                return
            else:
                pinned = credentials
            if pinned is self._pinned:
                return

            self._pinned = pinned
            served = self._served
            refresh_at = served.refresh_at if served else self.clock()
            self._serve(pinned or current, refresh_at)

        if pinned is None:
            logger.info(
                "secret %s: back on AWSCURRENT (version %s)",
                self.secret_id,
                current.version_id,
            )
        else:
            logger.info(
                "secret %s: the database refuses AWSCURRENT (version %s); "
                "using %s (version %s) until AWSCURRENT moves",
                self.secret_id,
                current.version_id,
                pinned.stage,
                pinned.version_id,
            )

    def rejected(self, credentials: Credentials, *, within: float) -> float:
        """Record that the database refused ``credentials``.

        Returns when it began refusing that login, on :attr:`clock`: the
        database had changed by then, so a read of Secrets Manager made
        since is recent enough to look for the new password in, and one
        made before is not. A refusal on record ends when ``AWSCURRENT``
        moves, when the login is :meth:`accepted` again, or ``within``
        seconds after it began (a fallback's deadline): refused after that,
        the same login points at a new change.
        """
        with self._pin_lock:
            now = self.clock()
            refusal = self._refusal
            if (
                refusal is not None
                and credentials.same_login(refusal[0])
                and now < refusal[1] + within
            ):
                return refusal[1]
            self._refusal = (credentials, now)
            return now

    def _serve(self, credentials: Credentials, refresh_at: float) -> None:
        """Serve ``credentials`` until ``refresh_at``; hold ``_pin_lock``."""
        served = _Served(credentials, refresh_at)
        self._served = served
        self._arm(served)

    def _arm(self, served: _Served) -> None:
        """Let warm reads skip the clock until a timer expires ``served``.

        The caller holds ``_pin_lock``, which the timer takes too: a value
        is never marked fresh after its timer has run.
        """
        self._fresh = None
        if (
            self._timed
            and self.clock() < served.refresh_at
            and call_at(
                served.refresh_at,
                functools.partial(_expire, weakref.ref(self), served),
            )
        ):
            self._fresh = served.credentials

    def _rearm(self, served: _Served) -> None:
        """Arm again a value still fresh whose timer was lost in a fork."""
        if not self._timed:
            return
        with self._pin_lock:
            if self._served is served and self._fresh is None:
                self._arm(served)

    def _serving(self) -> Credentials:
        served = self._served
        if served is None:
            msg = "no credentials are served yet"
            raise RuntimeError(msg)
        return served.credentials

    def _refresh_expired(self, served: _Served | None) -> Credentials:
        """Serve past the TTL: start a refresh unless one runs or waits."""
        if served is None:
            self._read_stage(AWSCURRENT, self._steady)
            return self._serving()

        state = self._stage_state(AWSCURRENT)
        if self.clock() >= state.retry_at and state.lock.acquire(
            blocking=False
        ):
            if self._served is not served:
                state.lock.release()
            elif self.refresh_in_background:
                self._start_background_refresh(state)
            else:
                try:
                    rotation = self._read_locked(
                        AWSCURRENT, state, self._steady
                    )
                finally:
                    state.lock.release()
                self._notify(rotation)

        self._check_staleness()
        return self._serving()

    def _start_background_refresh(self, state: _Stage) -> None:
        """Refresh AWSCURRENT in a daemon thread; it releases the lock."""

        def refresh() -> None:
            rotation = None
            try:
                rotation = self._read_locked(AWSCURRENT, state, self._steady)
            except Exception:
                logger.exception(
                    "secret %s: the background refresh failed",
                    self.secret_id,
                )
            finally:
                state.lock.release()
            self._notify(rotation)

        thread = threading.Thread(
            target=refresh, name="rotsafe-refresh", daemon=True
        )
        try:
            thread.start()
        except RuntimeError:
            # No new threads at interpreter shutdown: refresh here instead.
            refresh()

    def _read_stage(
        self, stage: str, source: SecretSource, since: float | None = None
    ) -> _Read | None:
        """Read a stage once for every caller waiting, within rate limits.

        The last read answers this one if it came through ``source`` or
        straight from Secrets Manager, and it started at ``since`` or later,
        or it is within its interval (or finished while this caller
        waited). One older than ``since`` is read again even then, unless a
        read made for a ``since`` found nothing new within the interval: a
        refusal finds a change at once, and refusals that keep coming cost
        one read an interval.
        """
        state = self._stage_state(stage)
        attempt = state.attempts
        rotation = None
        with state.lock:
            now = self.clock()
            read = state.read
            fresh = False
            if read is not None and (
                read.direct or source is not self._source
            ):
                if since is not None and read.at >= since:
                    fresh = True
                elif (
                    state.attempts != attempt or now < read.at + read.interval
                ):
                    fresh = since is None or (
                        now < state.fruitless_at + read.interval
                    )
            if not (fresh or now < state.retry_at):
                rotation = self._read_locked(stage, state, source)
                if (
                    since is not None
                    and read is not None
                    and state.read is not None
                    and _same(read.credentials, state.read.credentials)
                ):
                    state.fruitless_at = now
            elif state.read is None and state.error is not None:
                raise copy.copy(state.error) from state.error.__cause__
            read = state.read
        self._notify(rotation)
        return read

    def _read_locked(
        self, stage: str, state: _Stage, source: SecretSource
    ) -> Rotation | None:
        """Make one read of ``stage``; the caller holds ``state.lock``.

        Raises:
            RotsafeError: The read failed and nothing is cached for it.
        """
        started = self.clock()
        error: RotsafeError | None = None
        try:
            version = source.get(self.secret_id, stage)
            credentials = self._parse(stage, version)
            if credentials is None and stage == AWSCURRENT:
                error = SecretUnavailable(
                    self.secret_id, stage, "no version carries AWSCURRENT"
                )
        except RotsafeError as exc:
            error = exc
        except Exception as exc:  # a failing source is a failed read
            error = SecretUnavailable(
                self.secret_id,
                stage,
                f"reading it failed unexpectedly ({type(exc).__name__})",
            )
            error.__cause__ = exc
        finally:
            # Counted once finished: whoever waited meanwhile shares it.
            state.attempts += 1

        if error is not None:
            self._read_failed(stage, state, error)
            return None

        previous = state.read
        if (
            stage == AWSCURRENT
            and source is not self._source
            and previous is not None
            and credentials is not None
            and any(credentials.same_login(old) for old in self._superseded)
        ):
            logger.debug(
                "secret %s: the cache still holds an older AWSCURRENT",
                self.secret_id,
            )
            credentials = previous.credentials

        state.failures = 0
        state.retry_at = 0.0
        state.error = None
        interval = self.min_refresh_interval
        if previous is not None and _same(previous.credentials, credentials):
            interval = max(
                interval,
                min(previous.interval * 2, _MAX_UNCHANGED_INTERVAL),
            )
        state.read = _Read(
            credentials, started, interval, direct=source is self._source
        )
        logger.debug(
            "secret %s: read %s (version %s)",
            self.secret_id,
            stage,
            credentials.version_id if credentials else None,
        )

        if stage != AWSCURRENT or credentials is None:
            return None
        return self._serve_current(previous, credentials)

    def _serve_current(
        self, previous: _Read | None, current: Credentials
    ) -> Rotation | None:
        """Serve a new read of ``AWSCURRENT``; the caller holds its lock."""
        before = previous.credentials if previous else None
        rotation = None
        if before is None:
            logger.info(
                "secret %s: read AWSCURRENT (version %s)",
                self.secret_id,
                current.version_id,
            )
        elif not _same(before, current):
            logger.info(
                "secret %s: AWSCURRENT moved from version %s to %s",
                self.secret_id,
                before.version_id,
                current.version_id,
            )
            rotation = Rotation(
                self.secret_id, before.version_id, current.version_id, current
            )
            self._superseded = [
                before,
                *(
                    old
                    for old in self._superseded
                    if not old.same_login(current)
                ),
            ][:_SUPERSEDED]

        jitter = random.uniform(0.8, 1.0)  # noqa: S311 - spreads load only
        with self._pin_lock:
            if rotation is not None:
                self._pinned = None
                self._refusal = None
            self._serve(
                self._pinned or current, self.clock() + self.ttl * jitter
            )
        return rotation

    def _read_failed(
        self, stage: str, state: _Stage, error: RotsafeError
    ) -> None:
        """Back off after a failed read, and serve the cache if allowed.

        Raises:
            RotsafeError: ``error``, when nothing is cached for the stage.
        """
        finished = self.clock()
        state.failures += 1
        state.error = error
        attempt = tenacity.RetryCallState(self._backoff, None, (), {})
        attempt.attempt_number = state.failures
        delay = max(1.0, self._backoff.wait(attempt))
        state.retry_at = finished + delay

        read = state.read
        if read is None:
            logger.error(
                "secret %s: reading %s failed and nothing is cached: %s",
                self.secret_id,
                stage,
                error,
            )
            raise error

        if stage == AWSCURRENT:
            limit = self._stale_limit()
            with self._pin_lock:
                served = self._serving()
                refresh_at = state.retry_at
                if limit is not None:
                    refresh_at = min(refresh_at, max(limit, finished))
                self._serve(served, refresh_at)
            if limit is not None and finished > limit:
                logger.error(
                    "secret %s: reading AWSCURRENT failed (%s) and the "
                    "cached value is past max_stale; refusing to serve it",
                    self.secret_id,
                    error,
                )
                return

        logger.warning(
            "secret %s: reading %s failed (%s); serving the value read "
            "%.0f s ago (version %s), next attempt in %.1f s",
            self.secret_id,
            stage,
            error,
            finished - read.at,
            read.credentials.version_id if read.credentials else None,
            delay,
        )

    def _stale_limit(self) -> float | None:
        """When the cached AWSCURRENT stops being served, if ever."""
        read = self._stage_state(AWSCURRENT).read
        if read is None or self.max_stale is None:
            return None
        return read.at + self.ttl + self.max_stale

    def _check_staleness(self) -> None:
        """Refuse to serve a value past ``max_stale``."""
        limit = self._stale_limit()
        if limit is None or self.clock() <= limit:
            return
        state = self._stage_state(AWSCURRENT)
        raise SecretUnavailable(
            self.secret_id,
            AWSCURRENT,
            f"the cached value is past ttl + max_stale "
            f"({self.ttl + (self.max_stale or 0):.0f} s) and no refresh has "
            f"succeeded since ({state.error})",
        ) from state.error

    def _parse(
        self, stage: str, version: SecretVersion | None
    ) -> Credentials | None:
        """Parse a version once, and label the result with ``stage``."""
        if version is None:
            return None
        # Keyed by the version itself, whose repr hides the value.
        key = version
        with self._parse_lock:
            parsed = self._parsed.get(key)
        if parsed is None:
            parsed = parse_secret(
                self.secret_id,
                version.value,
                self._target,
                stage=stage,
                version_id=version.version_id,
                fallback=self._fallback,
            )
            with self._parse_lock:
                while len(self._parsed) >= _PARSED_VERSIONS:
                    self._parsed.pop(next(iter(self._parsed)))
                self._parsed[key] = parsed
        if parsed.stage != stage:
            parsed = dataclasses.replace(parsed, stage=stage)
        return parsed

    def _assume(self, fallback: Target) -> None:
        """Use ``fallback``'s fields where neither argument nor secret has one.

        ``attach`` calls this with the engine's URL, so that a secret holding
        only a login (as RDS-managed ones do) needs nothing more. Fields an
        earlier engine supplied are kept.
        """
        current = self._fallback
        self._fallback = Target(
            host=current.host or fallback.host,
            port=current.port or fallback.port,
            database=current.database or fallback.database,
            family=current.family or fallback.family,
        )

    def _stage_state(self, stage: str) -> _Stage:
        state = self._stages.get(stage)
        if state is None:
            with self._stages_lock:
                state = self._stages.setdefault(stage, _Stage())
        return state

    def _current(self) -> Credentials | None:
        read = self._stage_state(AWSCURRENT).read
        return read.credentials if read else None

    def _notify(self, rotation: Rotation | None) -> None:
        if rotation is None:
            return
        for callback in list(self._callbacks):
            try:
                callback(rotation)
            except Exception:
                logger.exception(
                    "secret %s: a rotation callback failed", self.secret_id
                )

    def _renew_locks(self) -> None:
        """Make fresh locks: in a forked child, the parent's may be held."""
        self._stages_lock = threading.Lock()
        self._pin_lock = threading.Lock()
        self._parse_lock = threading.Lock()
        for state in self._stages.values():
            state.lock = threading.Lock()

    def _after_fork(self) -> None:
        self._renew_locks()
        self._fresh = None
        for source in {self._source, self._steady}:
            after_fork = getattr(source, "after_fork", None)
            if after_fork is not None:
                after_fork()


def _expire(secret_ref: weakref.ref[RotatingSecret], served: _Served) -> None:
    """Send warm reads to the clock once ``served`` is due for a refresh."""
    secret = secret_ref()
    if secret is None:
        return
    with secret._pin_lock:
        if secret._served is served:
            secret._fresh = None


def _after_fork_in_child() -> None:
    for secret in list(_SECRETS):
        secret._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _same(a: Credentials | None, b: Credentials | None) -> bool:
    """Return whether two reads hold the same version."""
    if a is None or b is None:
        return a is b
    if a.version_id is not None and b.version_id is not None:
        return a.version_id == b.version_id
    return a.same_login(b)


def _text_or_none(value: object, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        msg = f"{name} must be a non-empty string"
        raise ValueError(msg)
    return value.strip()


def _port_or_none(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        msg = "port must be an int"
        raise ValueError(msg)
    if not 0 < value < 65536:
        msg = "port must be between 1 and 65535"
        raise ValueError(msg)
    return value

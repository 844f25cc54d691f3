"""Opening connections through a rotation: fallback over the stages, backoff.

A connection first uses what the secret serves. When the database refuses
it, the other stages are tried, then polled with backoff until a deadline.
Errors that are not about the credentials are never answered with a refresh.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

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

logger = logging.getLogger("rotsafe.connect")

T = TypeVar("T")

DEFAULT_DEADLINE = 30.0

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
        "the server refuses this client host (pg_hba.conf, MySQL host "
        "grants, or a host blocked after connection errors: FLUSH HOSTS)"
    ),
    ErrorKind.CONFIG: (
        "TLS, the authentication plugin or the database name is wrong; "
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
    caller's thread blocks for the rounds, at most about ``deadline``.

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
    first = secret.credentials()
    try:
        return attempt(first)
    except Exception as exc:
        _reraise_unless_auth(secret, exc)
        refused: BaseException = exc
    refused_at = secret.rejected(first)

    logger.warning(
        "secret %s: the database refused %s (version %s); trying the other "
        "stages",
        secret.secret_id,
        first.stage,
        first.version_id,
    )
    fallback = _Fallback(secret, attempt, first, refused, refused_at)
    seconds = to_seconds(deadline, "deadline")
    until = Deadline(secret.clock, seconds)
    retrying = tenacity.Retrying(
        wait=until.wait(_WAIT),
        stop=until.stop(),
        retry=tenacity.retry_if_exception_type(_AllRefused),
        sleep=sleep or secret.sleep,
        before_sleep=fallback.log_round,
        reraise=True,
    )
    try:
        return retrying(fallback.round)
    except _AllRefused:
        raise CredentialsRejected(
            secret.secret_id,
            [(c.stage, c.version_id) for c in fallback.tried],
            seconds,
            secrets_manager_error=fallback.source_error,
        ) from fallback.refused


class Connector:
    """A zero-argument callable that opens a DB-API connection from a secret.

    Made by :func:`rotsafe.creator`; see there.
    """

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
        return f"<rotsafe connector for {self.secret.secret_id!r}>"

    def __call__(self) -> Any:
        return connect_with(self.secret, self._open, deadline=self.deadline)

    def _open(self, credentials: Credentials) -> Any:
        driver = driver_for(credentials, self.secret.driver)
        return driver.connect(credentials, self.options)


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
        ValueError: ``connect_kwargs`` hold a user or password.
    """
    return Connector(secret, dict(connect_kwargs), deadline)


class _Fallback(Generic[T]):
    """The state of one connection's fallback: what was tried, what failed."""

    def __init__(
        self,
        secret: RotatingSecret,
        attempt: Callable[[Credentials], T],
        first: Credentials,
        refused: BaseException,
        refused_at: float,
    ) -> None:
        self.secret = secret
        self.attempt = attempt
        self.refused = refused
        self.refused_at = refused_at
        self.tried: list[Credentials] = [first]
        self.source_error: str | None = None
        self.rounds = 0
        self.current: Credentials | None = None
        self.others: dict[str, Credentials | None] = {}

    def round(self) -> T:
        """Try every distinct credential once; raise if all are refused."""
        self.rounds += 1
        tried_now = [self.tried[0]] if self.rounds == 1 else []
        for candidate in self._candidates():
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

    def log_round(self, state: tenacity.RetryCallState) -> None:
        logger.warning(
            "secret %s: no stage's credentials were accepted (round %d); "
            "trying again in %.2f s",
            self.secret.secret_id,
            self.rounds,
            state.upcoming_sleep,
        )

    def _candidates(self) -> Iterator[Credentials | None]:
        """Yield the credentials worth trying in this round, best first.

        Each is read only when the ones before it were refused. First comes
        what the secret serves now, free: another connection may have found
        the working stage meanwhile. ``AWSCURRENT`` is read every round
        (rate-limited by the secret). ``AWSPENDING`` and ``AWSPREVIOUS`` are
        read in the first round and whenever ``AWSCURRENT`` moves: outside
        a new rotation they change only with it. In the first round, a read
        any thread made since the database first refused this login is
        recent enough: the database had changed by then.
        """
        since = self.refused_at if self.rounds == 1 else None
        yield self._read(None)

        current = self._read(AWSCURRENT, since)
        moved = current is not None and (
            self.current is None or not current.same_login(self.current)
        )
        if current is not None:
            self.current = current
        yield self.current

        for stage in (AWSPENDING, AWSPREVIOUS):
            if moved or self.rounds == 1:
                self.others[stage] = self._read(stage, since)
            yield self.others.get(stage)

    def _read(
        self, stage: str | None, since: float | None = None
    ) -> Credentials | None:
        """Read a stage, or with ``None`` what the secret serves now."""
        try:
            if stage is None:
                return self.secret.credentials()
            return self.secret.stage(stage, since=since)
        except RotsafeError as exc:
            self.source_error = str(exc)
            logger.warning(
                "secret %s: could not read %s during fallback: %s",
                self.secret.secret_id,
                stage,
                exc,
            )
            return None

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
        raise ConnectionSetupError(secret.secret_id, kind, advice) from exc
    raise exc

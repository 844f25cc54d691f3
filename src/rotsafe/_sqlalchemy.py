"""SQLAlchemy integration: credentials for each new connection, pool hooks.

``attach()`` hooks an engine's own events: ``do_connect`` supplies the
secret's login to every new physical connection, the pool hooks replace
connections made with an older login, and ``handle_error`` answers an
authentication error on an open connection by replacing just that one.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy.exc
from sqlalchemy import event
from sqlalchemy.engine import Dialect, Engine, ExceptionContext
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from rotsafe._classify import ErrorKind, classify
from rotsafe._connect import (
    DEFAULT_DEADLINE,
    Blocking,
    InGreenlet,
    Io,
    fall_back,
)
from rotsafe._credentials import Credentials, Target
from rotsafe._drivers import Driver, driver_named, driver_of_dialect
from rotsafe._durations import Duration, to_seconds
from rotsafe._errors import RotsafeError, SecretFormatError
from rotsafe._secret import RotatingSecret, Rotation
from rotsafe._waits import waiter

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

logger = logging.getLogger("rotsafe.sqlalchemy")

Policy = Literal["gradual", "eager", "none"]

#: The key under which each pooled connection's :class:`ConnectionOrigin`
#: is kept in its ``info`` dictionary.
ORIGIN_KEY = "rotsafe.origin"

_POLICIES = ("gradual", "eager", "none")


@dataclass(frozen=True)
class ConnectionOrigin:
    """Which secret version made a pooled connection.

    Kept in ``connection.info[rotsafe.ORIGIN_KEY]`` for each connection an
    attached engine opens.

    Attributes:
        secret_id: The secret the login came from.
        stage: The staging label it was read under.
        version_id: The secret version, when known.
    """

    secret_id: str
    stage: str
    version_id: str | None
    credentials: Credentials = field(repr=False, compare=False)

    def is_stale(self, secret: RotatingSecret) -> bool:
        """Return whether the secret now serves another login than this."""
        try:
            served = secret.credentials()
        except RotsafeError:
            return False
        return not self.credentials.same_login(served)


class Attachment:
    """The hooks :func:`attach` put on one engine.

    Attributes:
        engine: The engine.
        secret: The secret its connections log in with.
        policy: How connections made with an older login are replaced.
    """

    def __init__(
        self,
        engine: Engine,
        secret: RotatingSecret,
        policy: Policy,
        deadline: float,
        retire_interval: float,
    ) -> None:
        self.engine = engine
        self.secret = secret
        self.policy = policy
        self.deadline = deadline
        self.retire_interval = retire_interval
        self.driver = _driver_of(engine.dialect)
        if secret.driver is not None:
            wanted = driver_named(secret.driver)
            if wanted.family != self.driver.family:
                msg = (
                    f"the secret is set up for the {wanted.name} driver "
                    f"({wanted.family}), but the engine uses "
                    f"{self.driver.name} ({self.driver.family})"
                )
                raise ValueError(msg)
        url = engine.url
        if url.password is not None:
            msg = (
                "the engine's URL holds a password, which rotsafe would "
                "ignore (it logs in with the secret's) and the engine would "
                "keep: remove the user and password from the URL"
            )
            raise ValueError(msg)
        secret._assume(
            Target(
                host=url.host or None,
                port=url.port,
                database=url.database or None,
                family=self.driver.family,
            )
        )
        self.io: Io = (
            InGreenlet()
            if engine.dialect.is_async
            else Blocking(waiter(secret.sleep))
        )
        self._records: weakref.WeakSet[ConnectionPoolEntry] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._next_retirement = 0.0
        self._listeners: list[tuple[Engine, str, Callable[..., Any]]] = [
            (engine, "do_connect", self._do_connect),
            (engine, "checkin", self._checkin),
            (engine, "checkout", self._checkout),
            (engine, "handle_error", self._handle_error),
        ]
        for target, name, listener in self._listeners:
            event.listen(target, name, listener)
        secret.on_rotation(self._rotated)

    def __repr__(self) -> str:
        return (
            f"<rotsafe attachment of {self.secret.secret_id!r} to "
            f"{self.engine.url!r}, policy={self.policy!r}>"
        )

    def detach(self) -> None:
        """Remove the hooks; connections already made are left alone."""
        for target, name, listener in self._listeners:
            if event.contains(target, name, listener):
                event.remove(target, name, listener)
        self.secret.off_rotation(self._rotated)
        self.policy = "none"

    def retire_stale(self) -> int:
        """Mark every connection made with an older login for replacement.

        Soft invalidation: an idle connection is replaced when it is next
        checked out, one in use when it is next checked out after its
        return. Returns how many were marked.
        """
        with self._lock:
            records = list(self._records)
        stale = [
            record
            for record in records
            if (origin := _origin(record)) is not None
            and origin.is_stale(self.secret)
        ]
        for record in stale:
            record.invalidate(soft=True)
        if stale:
            logger.info(
                "secret %s: %d pooled connection(s) made with an older "
                "login marked for replacement",
                self.secret.secret_id,
                len(stale),
            )
        return len(stale)

    def _do_connect(
        self,
        dialect: Dialect,
        record: ConnectionPoolEntry,
        cargs: list[Any],
        cparams: dict[str, Any],
    ) -> Any:
        """Open the connection with the secret's login, through a rotation."""

        def attempt(credentials: Credentials) -> tuple[Any, Credentials]:
            if credentials.family != self.driver.family:
                # A login for another kind of server would only time out.
                raise SecretFormatError(
                    credentials.secret_id,
                    "engine",
                    f"'engine' is a {credentials.family} engine but the "
                    f"SQLAlchemy engine's driver, {self.driver.name}, is for "
                    f"{self.driver.family}",
                    stage=credentials.stage,
                    version_id=credentials.version_id,
                    remedy=(
                        f"Attach the secret to a {credentials.family} engine, "
                        f"or fix its 'engine' field in Secrets Manager"
                    ),
                )
            # A new dict per attempt: the engine's own arguments never see
            # a password. The login is the secret's; where to connect is
            # the URL's, where it says.
            login = self.driver.login_arguments(credentials)
            secret_only = (self.driver.user, self.driver.password)
            params = {
                **{k: v for k, v in login.items() if k not in secret_only},
                **cparams,
                **{k: login[k] for k in secret_only},
            }
            return dialect.connect(*cargs, **params), credentials

        connection, credentials = fall_back(
            self.secret, attempt, self.deadline, self.io
        )
        if record is not None:
            record.info[ORIGIN_KEY] = ConnectionOrigin(
                credentials.secret_id,
                credentials.stage,
                credentials.version_id,
                credentials,
            )
            with self._lock:
                self._records.add(record)
        logger.debug(
            "secret %s: new connection with %s (version %s)",
            self.secret.secret_id,
            credentials.stage,
            credentials.version_id,
        )
        return connection

    def _checkout(
        self,
        dbapi_connection: Any,
        record: ConnectionPoolEntry,
        proxy: PoolProxiedConnection,
    ) -> None:
        """Under the eager policy, never hand out a connection made stale."""
        if self.policy != "eager":
            return
        origin = _origin(record)
        if origin is not None and origin.is_stale(self.secret):
            logger.info(
                "secret %s: replacing a connection made with version %s "
                "at checkout",
                self.secret.secret_id,
                origin.version_id,
            )
            msg = "made with an older login of the secret"
            raise sqlalchemy.exc.DisconnectionError(msg)

    def _checkin(
        self, dbapi_connection: Any, record: ConnectionPoolEntry
    ) -> None:
        """Replace a returning connection made with an older login.

        Gradual: one per ``retire_interval`` at most, so a rotation never
        turns into a login storm. Eager: every one, at once.
        """
        if self.policy == "none" or dbapi_connection is None:
            return
        origin = _origin(record)
        if origin is None or not origin.is_stale(self.secret):
            return

        if self.policy == "gradual":
            now = self.secret.clock()
            with self._lock:
                if now < self._next_retirement:
                    return
                self._next_retirement = now + self.retire_interval
            record.invalidate(soft=True)
        else:
            record.invalidate()
        logger.info(
            "secret %s: retiring a connection made with version %s",
            self.secret.secret_id,
            origin.version_id,
        )

    def _handle_error(self, context: ExceptionContext) -> None:
        """Replace one open connection the database refused; keep the pool."""
        if context.connection is None and not context.is_pre_ping:
            return
        if classify(context.original_exception) is not ErrorKind.AUTH:
            return
        logger.warning(
            "secret %s: the database refused an open connection; replacing "
            "it and refreshing the secret",
            self.secret.secret_id,
        )
        context.is_disconnect = True
        context.invalidate_pool_on_disconnect = False
        try:
            self.io.call(self.secret.refresh)
        except RotsafeError as exc:
            logger.warning(
                "secret %s: refresh after a refused connection failed: %s",
                self.secret.secret_id,
                exc,
            )

    def _rotated(self, rotation: Rotation) -> None:
        if self.policy == "eager":
            self.retire_stale()


def attach(
    engine: Engine | AsyncEngine,
    secret: RotatingSecret,
    *,
    policy: Policy = "gradual",
    deadline: Duration = DEFAULT_DEADLINE,
    retire_interval: Duration = 1.0,
) -> Attachment:
    """Make ``engine`` take its login from ``secret``, through rotations.

    Every new physical connection gets the secret's username and password,
    and its host, port and database where the URL leaves them out, with the
    stage fallback, backoff and deadline of :func:`rotsafe.connect_with`.
    Each connection is made from a copy of the engine's connect arguments:
    the engine's URL and arguments never hold a password. Each pooled
    connection records which version made it, in
    ``connection.info[rotsafe.ORIGIN_KEY]``.

    An authentication error on an open connection (a proxy that drops
    sessions, a pre-ping) replaces that one connection and refreshes the
    secret; the pool is never disposed. Works with ``QueuePool``,
    ``NullPool`` and ``pool_pre_ping=True``. On an async engine, Secrets
    Manager is read in worker threads and waits are ``asyncio.sleep``: the
    event loop is never blocked.

    Args:
        engine: An engine made from a URL (not a ``creator``), synchronous
            or from ``create_async_engine``.
        secret: The secret to log in with.
        policy: What happens to pooled connections made with an older login
            once the secret serves a new one. ``"gradual"`` (the default):
            they keep working, since a password change does not end open
            sessions, and are replaced as they return to the pool, at most
            one per ``retire_interval``, so a rotation never causes a login
            storm. ``"eager"``, for a leaked credential: none is handed out
            again, idle ones are marked for replacement when ``AWSCURRENT``
            moves and ones in use are closed when returned. ``"none"``:
            nothing is replaced.
        deadline: How long a new connection keeps trying when the database
            refuses the login; float seconds or ``timedelta``.
        retire_interval: Under the gradual policy, the least time between
            two replacements.

    Returns:
        The :class:`Attachment`; its ``detach()`` removes the hooks.

    Raises:
        ValueError: The policy is unknown, rotsafe does not know the
            engine's driver, the engine's URL holds a password, or the
            secret was given a driver for another kind of server. A secret
            whose ``engine`` field names another kind of server is refused
            with :class:`SecretFormatError` when a connection is made.
    """
    if policy not in _POLICIES:
        msg = f"unknown policy {policy!r}; choose from {_POLICIES}"
        raise ValueError(msg)
    return Attachment(
        sync_engine_of(engine),
        secret,
        policy,
        to_seconds(deadline, "deadline"),
        to_seconds(retire_interval, "retire_interval"),
    )


def attachment_of(engine: Engine | AsyncEngine) -> Attachment | None:
    """Return the attachment hooked on ``engine``, if any."""
    for listener in sync_engine_of(engine).dialect.dispatch.do_connect:
        owner = getattr(listener, "__self__", None)
        if isinstance(owner, Attachment):
            return owner
    return None


def sync_engine_of(engine: Engine | AsyncEngine) -> Engine:
    """The engine whose events to hook: an async engine's sync face."""
    if isinstance(engine, Engine):
        return engine
    sync_engine: Engine = engine.sync_engine
    return sync_engine


def _origin(record: ConnectionPoolEntry) -> ConnectionOrigin | None:
    origin = record.info.get(ORIGIN_KEY)
    return origin if isinstance(origin, ConnectionOrigin) else None


def _driver_of(dialect: Dialect) -> Driver:
    try:
        return driver_of_dialect(dialect.driver, dialect.is_async)
    except ValueError:
        msg = (
            f"rotsafe cannot attach to a {dialect.name}+{dialect.driver} "
            f"engine: its driver is not supported"
        )
        raise ValueError(msg) from None

"""The two services a drill compares: a baseline and a rotsafe service.

Both run the same query through a SQLAlchemy engine with the same pool and
count their ``GetSecretValue`` calls; only the way they get their login
differs. The baselines do what most services do, and nothing more.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from rotsafe._classify import ErrorKind, classify
from rotsafe._drill._rig import ROWS, TABLE, Rig
from rotsafe._retry import retry_on_auth_error
from rotsafe._secret import RotatingSecret
from rotsafe._sqlalchemy import attach
from rotsafe.testing._harness import CallCounter

BASELINES = ("read-once", "reread-current")
POOLS = ("queue", "null")

_CONNECT_TIMEOUT = 5
_QUERY = text(
    f"SELECT note FROM {TABLE} WHERE id = :id"  # noqa: S608 - a constant
)


@dataclass(frozen=True)
class EngineOptions:
    """How both services pool their connections.

    Attributes:
        pool: ``"queue"`` (a pool of ``size`` connections, each replaced
            after ``recycle`` seconds) or ``"null"`` (a new connection for
            every operation).
        size: Connections in a queue pool: one per load thread.
        recycle: Seconds a pooled connection is used before it is replaced.
    """

    pool: str = "queue"
    size: int = 4
    recycle: float = 1.0

    def keywords(self) -> dict[str, Any]:
        """Return the ``create_engine`` keywords for this pooling."""
        if self.pool == "null":
            return {"poolclass": NullPool}
        return {
            "pool_size": self.size,
            "max_overflow": 0,
            "pool_recycle": self.recycle,
        }


@dataclass
class Tally:
    """Operations and failures so far, for a live display."""

    operations: int = 0
    failed: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, failed: bool) -> None:
        """Count one operation."""
        with self._lock:
            self.operations += 1
            self.failed += failed


@dataclass
class Service:
    """One service under drill: its engine, operation and call count.

    Attributes:
        name: ``"baseline"`` or ``"rotsafe"``.
        description: One line saying how it gets its login.
        engine: Its SQLAlchemy engine.
        operation: One request: runs the query once, raising on failure.
        counter: Counts its ``GetSecretValue`` calls.
        tally: Its operations and failures so far.
    """

    name: str
    description: str
    engine: Engine
    operation: Callable[[], object]
    counter: CallCounter
    tally: Tally = field(default_factory=Tally)

    def run_once(self) -> None:
        """Run the operation once, counting it."""
        try:
            self.operation()
        except Exception:
            self.tally.count(failed=True)
            raise
        self.tally.count(failed=False)

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def _query(engine: Engine) -> Callable[[], object]:
    """Return an operation that reads one row in its own connection."""

    def operation() -> object:
        with engine.connect() as connection:
            key = random.randint(1, ROWS)  # noqa: S311 - not for security
            return connection.execute(_QUERY, {"id": key}).scalar_one()

    return operation


def rotsafe_service(rig: Rig, pooling: EngineOptions) -> Service:
    """Return the service that uses rotsafe: ``attach`` and the decorator.

    Its ``RotatingSecret`` has the default TTL (300 s), so during the drill
    it reads Secrets Manager only when the database refuses a login.
    """
    counter = CallCounter()
    secret = RotatingSecret(rig.secret_id, client=rig.client(counter))
    engine = sqlalchemy.create_engine(
        rig.url(),
        connect_args={"connect_timeout": _CONNECT_TIMEOUT},
        **pooling.keywords(),
    )
    attach(engine, secret)
    operation = retry_on_auth_error(secret, engine=engine)(_query(engine))
    return Service(
        "rotsafe",
        "rotsafe.attach(engine, secret) and @retry_on_auth_error",
        engine,
        operation,
        counter,
    )


def baseline_service(rig: Rig, pooling: EngineOptions, kind: str) -> Service:
    """Return a service that logs in the way most services do.

    ``read-once`` reads ``AWSCURRENT`` at start and logs in with it for
    good. ``reread-current`` reads ``AWSCURRENT`` again whenever the
    database refuses the login, and tries once more, as the AWS database
    wrappers do.

    Raises:
        ValueError: ``kind`` is neither.
    """
    if kind not in BASELINES:
        msg = f"unknown baseline {kind!r}; choose from {BASELINES}"
        raise ValueError(msg)

    counter = CallCounter()
    login = _Login(rig.client(counter), rig.secret_id, rig.family)
    connect = login.connect if kind == "read-once" else login.reread_and_retry
    engine = sqlalchemy.create_engine(
        rig.url(), creator=connect, **pooling.keywords()
    )
    description = (
        "reads AWSCURRENT once at start and keeps that login"
        if kind == "read-once"
        else "re-reads AWSCURRENT when refused, then tries once more"
    )
    return Service("baseline", description, engine, _query(engine), counter)


class _Login:
    """A login read from ``AWSCURRENT``, as a service without rotsafe has."""

    def __init__(self, client: Any, secret_id: str, family: str) -> None:
        self._client = client
        self._secret_id = secret_id
        self._family = family
        self._value = self._read()

    def _read(self) -> dict[str, Any]:
        # Naming the stage changes nothing on AWS, but moto answers a read
        # without one from the version that first held AWSCURRENT.
        response = self._client.get_secret_value(
            SecretId=self._secret_id, VersionStage="AWSCURRENT"
        )
        value: dict[str, Any] = json.loads(response["SecretString"])
        return value

    def connect(self) -> Any:
        """Open a DB-API connection with the login held now."""
        value = self._value
        if self._family == "postgresql":
            import psycopg  # noqa: PLC0415 - only the family in use

            return psycopg.connect(
                host=value["host"],
                port=int(value["port"]),
                user=value["username"],
                password=value["password"],
                dbname=value["dbname"],
                connect_timeout=_CONNECT_TIMEOUT,
            )

        import pymysql  # noqa: PLC0415 - only the family in use

        return pymysql.connect(
            host=value["host"],
            port=int(value["port"]),
            user=value["username"],
            password=value["password"],
            database=value["dbname"],
            connect_timeout=_CONNECT_TIMEOUT,
        )

    def reread_and_retry(self) -> Any:
        """Connect; when refused, read ``AWSCURRENT`` again and retry once."""
        try:
            return self.connect()
        except Exception as exc:
            if classify(exc) is not ErrorKind.AUTH:
                raise
        self._value = self._read()
        return self.connect()

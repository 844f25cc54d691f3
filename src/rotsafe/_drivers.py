"""The drivers rotsafe connects with, and how each names its arguments.

Drivers are named as SQLAlchemy names them (``pymysql``, ``asyncpg``), so
the same table serves the creators and the SQLAlchemy integration. The
argument names are the ones SQLAlchemy's dialects pass, so that a login
added to a dialect's connect arguments never doubles one.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from rotsafe._credentials import Credentials, Family

# Connect options that would fight the secret over the login or its target,
# and the choice of driver, which is the secret's too.
_SECRET_FIELDS = frozenset(
    {
        "driver",
        "user",
        "username",
        "password",
        "passwd",
        "host",
        "port",
        "database",
        "dbname",
        "db",
    }
)


@dataclass(frozen=True)
class Driver:
    """A database driver and the names it gives to the login arguments.

    Attributes:
        name: The driver's name in rotsafe and, but for ``psycopg_async``,
            in SQLAlchemy URLs (``mysql+pymysql``).
        family: The engine family it speaks to.
        function: Where its connect function lives, as ``module:attribute``.
        extra: The rotsafe extra that installs it.
        is_async: Whether its connect function is a coroutine function.
        user, password, host, port, database: Its keyword arguments for
            each login field, as SQLAlchemy's dialect names them.
        password_form: How the password is handed over. ``"text"`` as it
            is; ``"utf8"`` as UTF-8 bytes; ``"latin1"`` as a string whose
            Latin-1 encoding is those UTF-8 bytes. PyMySQL, aiomysql and
            asyncmy encode a password as Latin-1, which would garble every
            other character: the servers hash its UTF-8 bytes.
    """

    name: str
    family: Family
    function: str
    extra: str
    is_async: bool = False
    user: str = "user"
    password: str = "password"
    host: str = "host"
    port: str = "port"
    database: str = "database"
    password_form: Literal["text", "utf8", "latin1"] = "text"

    def connect_function(self) -> Callable[..., Any]:
        """Import the driver and return its connect function.

        Raises:
            ImportError: The driver is not installed; the message names the
                extra that installs it.
        """
        module_name, _, attributes = self.function.partition(":")
        try:
            found: Any = importlib.import_module(module_name)
        except ImportError as exc:
            msg = (
                f"the {self.name} driver is not installed: "
                f"pip install 'rotsafe[{self.extra}]'"
            )
            raise ImportError(msg) from exc
        for attribute in attributes.split("."):
            found = getattr(found, attribute)
        return found  # type: ignore[no-any-return]

    def login_arguments(self, credentials: Credentials) -> dict[str, Any]:
        """Return the keyword arguments that log in with ``credentials``."""
        password: str | bytes = credentials.password
        if self.password_form != "text":
            password = credentials.password.encode("utf-8")
            if self.password_form == "latin1":
                password = password.decode("latin-1")
        arguments: dict[str, Any] = {
            self.user: credentials.username,
            self.password: password,
            self.host: credentials.host,
            self.port: credentials.port,
        }
        if credentials.database is not None:
            arguments[self.database] = credentials.database
        return arguments

    def connect(
        self, credentials: Credentials, options: Mapping[str, Any]
    ) -> Any:
        """Open a connection, or with an async driver return its coroutine.

        ``options`` (TLS, timeouts, charset) pass through untouched.
        """
        return self.connect_function()(
            **options, **self.login_arguments(credentials)
        )


DRIVERS: dict[str, Driver] = {
    driver.name: driver
    for driver in (
        Driver(
            "pymysql",
            "mysql",
            "pymysql:connect",
            extra="mysql",
            password_form="utf8",
        ),
        Driver(
            "mysqldb",
            "mysql",
            "MySQLdb:connect",
            extra="mysqlclient",
            password="passwd",
            database="db",
        ),
        Driver(
            "mysqlconnector",
            "mysql",
            "mysql.connector:connect",
            extra="mysql-connector",
        ),
        Driver(
            "aiomysql",
            "mysql",
            "aiomysql:connect",
            extra="aiomysql",
            is_async=True,
            database="db",
            password_form="latin1",
        ),
        Driver(
            "asyncmy",
            "mysql",
            "asyncmy:connect",
            extra="asyncmy",
            is_async=True,
            database="db",
            password_form="latin1",
        ),
        Driver(
            "psycopg",
            "postgresql",
            "psycopg:connect",
            extra="postgres",
            database="dbname",
        ),
        Driver(
            "psycopg_async",
            "postgresql",
            "psycopg:AsyncConnection.connect",
            extra="postgres-async",
            is_async=True,
            database="dbname",
        ),
        Driver(
            "psycopg2",
            "postgresql",
            "psycopg2:connect",
            extra="psycopg2",
            database="dbname",
        ),
        Driver("pg8000", "postgresql", "pg8000:connect", extra="pg8000"),
        Driver(
            "asyncpg",
            "postgresql",
            "asyncpg:connect",
            extra="asyncpg",
            is_async=True,
        ),
    )
}

_DEFAULT: dict[tuple[Family, bool], str] = {
    ("mysql", False): "pymysql",
    ("postgresql", False): "psycopg",
    ("mysql", True): "aiomysql",
    ("postgresql", True): "asyncpg",
}

# The same driver's other face, where it has both.
_COUNTERPART = {"psycopg": "psycopg_async", "psycopg_async": "psycopg"}


def driver_named(name: str) -> Driver:
    """Return the driver called ``name``.

    Raises:
        ValueError: rotsafe does not know that driver.
    """
    try:
        return DRIVERS[name]
    except KeyError:
        known = ", ".join(sorted(DRIVERS))
        msg = f"unknown driver {name!r}; rotsafe supports {known}"
        raise ValueError(msg) from None


def driver_for(
    credentials: Credentials, name: str | None, *, is_async: bool = False
) -> Driver:
    """Return the driver named ``name``, or the family's default driver.

    Raises:
        ValueError: The named driver does not match ``is_async``.
    """
    if name is None:
        return DRIVERS[_DEFAULT[credentials.family, is_async]]
    driver = driver_named(name)
    if driver.is_async != is_async:
        counterpart = _COUNTERPART.get(name)
        if counterpart is None:
            kind = "an async" if is_async else "a synchronous"
            msg = (
                f"the {name} driver cannot serve here: {kind} driver is needed"
            )
            raise ValueError(msg)
        driver = DRIVERS[counterpart]
    return driver


def driver_of_dialect(name: str, is_async: bool) -> Driver:
    """Return the driver behind a SQLAlchemy dialect.

    Raises:
        ValueError: rotsafe does not know that driver.
    """
    driver = driver_named(name)
    if driver.is_async != is_async and name in _COUNTERPART:
        driver = DRIVERS[_COUNTERPART[name]]
    return driver


def check_options(options: Mapping[str, Any]) -> None:
    """Refuse connect options that would override the secret's login.

    Raises:
        ValueError: ``options`` holds a user, password, host, port,
            database or driver.
    """
    clash = _SECRET_FIELDS.intersection(options)
    if clash:
        msg = (
            f"connect options must not hold {', '.join(sorted(clash))}: the "
            f"login comes from the secret; pass host=, port=, database= or "
            f"driver= to RotatingSecret instead"
        )
        raise ValueError(msg)

"""The DB-API drivers rotsafe connects with, and how each names its arguments.

Drivers are named as SQLAlchemy names them (``pymysql``, ``psycopg``), so
the same table serves ``creator`` and the SQLAlchemy integration.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from rotsafe._credentials import Credentials, Family

# Connect options that would fight the secret over the login or its target.
_SECRET_FIELDS = frozenset(
    {
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
    """A DB-API driver and the names it gives to the login arguments.

    Attributes:
        name: The driver's name in SQLAlchemy URLs (``mysql+pymysql``).
        family: The engine family it speaks to.
        module: The module that provides ``connect()``.
        extra: The rotsafe extra that installs it.
        user, password, host, port, database: The driver's keyword
            arguments for each login field.
        password_bytes: Whether the password is passed as UTF-8 bytes:
            PyMySQL encodes a ``str`` password as Latin-1, which garbles
            every other character.
    """

    name: str
    family: Family
    module: str
    extra: str
    user: str = "user"
    password: str = "password"
    host: str = "host"
    port: str = "port"
    database: str = "database"
    password_bytes: bool = False

    def load(self) -> ModuleType:
        """Import the driver's module.

        Raises:
            ImportError: The driver is not installed; the message names the
                extra that installs it.
        """
        try:
            return importlib.import_module(self.module)
        except ImportError as exc:
            msg = (
                f"the {self.name} driver is not installed: "
                f"pip install 'rotsafe[{self.extra}]'"
            )
            raise ImportError(msg) from exc

    def login_arguments(self, credentials: Credentials) -> dict[str, Any]:
        """Return the keyword arguments that log in with ``credentials``."""
        password: str | bytes = credentials.password
        if self.password_bytes:
            password = credentials.password.encode("utf-8")
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
        """Open a DB-API connection with ``credentials`` and ``options``.

        ``options`` (TLS, timeouts, charset) pass through untouched.
        """
        module = self.load()
        return module.connect(**options, **self.login_arguments(credentials))


DRIVERS: dict[str, Driver] = {
    driver.name: driver
    for driver in (
        Driver(
            "pymysql", "mysql", "pymysql", extra="mysql", password_bytes=True
        ),
        Driver(
            "psycopg",
            "postgresql",
            "psycopg",
            extra="postgres",
            database="dbname",
        ),
    )
}

DEFAULT_DRIVER: dict[Family, str] = {
    "mysql": "pymysql",
    "postgresql": "psycopg",
}


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


def driver_for(credentials: Credentials, name: str | None) -> Driver:
    """Return the driver named ``name``, or the family's default driver."""
    return driver_named(name or DEFAULT_DRIVER[credentials.family])


def check_options(options: Mapping[str, Any]) -> None:
    """Refuse connect options that would override the secret's login.

    Raises:
        ValueError: ``options`` holds a user, password, host, port or
            database.
    """
    clash = _SECRET_FIELDS.intersection(options)
    if clash:
        msg = (
            f"connect options must not hold {', '.join(sorted(clash))}: the "
            f"login comes from the secret; pass host=, port= or database= "
            f"to RotatingSecret to override the secret's"
        )
        raise ValueError(msg)

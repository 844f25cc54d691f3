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

_LOGIN_FIELDS = frozenset({"user", "username", "password", "passwd"})


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
        arguments: dict[str, Any] = {
            self.user: credentials.username,
            self.password: credentials.password,
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
        Driver("pymysql", "mysql", "pymysql", extra="mysql"),
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
        ValueError: ``options`` holds a user or password.
    """
    clash = _LOGIN_FIELDS.intersection(options)
    if clash:
        msg = (
            f"connect options must not hold {', '.join(sorted(clash))}: "
            f"the login comes from the secret"
        )
        raise ValueError(msg)

"""An existing database server the drill administers through an admin URL.

The drill creates a database and its users there and drops them again, so
nothing it made outlives the run.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from sqlalchemy.engine import URL, make_url

logger = logging.getLogger("rotsafe.drill")

_CONNECT_TIMEOUT = 5
_FAMILIES = {"postgresql": "postgresql", "postgres": "postgresql"}
_FAMILIES.update(dict.fromkeys(("mysql", "mariadb"), "mysql"))


class Administered(Protocol):
    """What the drill needs of a database server, throwaway or existing."""

    family: str
    host: str
    database: str

    @property
    def port(self) -> int:
        """The server's TCP port."""
        ...

    def connect(
        self, user: str, password: str, *, database: str | None = None
    ) -> Any:
        """Open an autocommit connection (to the drill's database)."""
        ...

    def create_user(
        self, name: str, password: str, database: str | None = None
    ) -> None:
        """Create a user with all rights on ``database``."""
        ...

    def set_password(self, name: str, password: str) -> None:
        """Change a user's password for new logins."""
        ...

    def drop_user(self, name: str) -> None:
        """Remove a user if it exists."""
        ...


class AdminURLError(ValueError):
    """The admin URL names no database family the drill supports."""


def family_of(url: str | URL) -> str:
    """Return ``"mysql"`` or ``"postgresql"`` for a SQLAlchemy URL.

    Raises:
        AdminURLError: The URL cannot be parsed or names another database.
    """
    try:
        parsed = make_url(url)
    except Exception as exc:
        msg = "the admin URL is not a SQLAlchemy URL"
        raise AdminURLError(msg) from exc

    family = _FAMILIES.get(parsed.get_backend_name())
    if family is None:
        msg = (
            f"the admin URL names {parsed.get_backend_name()!r}; the drill "
            "supports postgresql:// and mysql:// (or mariadb://) URLs"
        )
        raise AdminURLError(msg)

    return family


class ExistingServer:
    """A server reached with an admin login, holding a drill database.

    ``open()`` checks the login and creates ``database``; ``close()`` drops
    it, with every table the drill made. Users are created and dropped by
    the caller, like on the throwaway servers.

    Args:
        url: A SQLAlchemy URL of an admin account, such as
            ``postgresql://admin:pw@db:5432/postgres``.
        database: The name of the database to create for the drill.
    """

    def __init__(self, url: str | URL, database: str) -> None:
        self.family = family_of(url)
        self._url = make_url(url)
        self.host = self._url.host or "127.0.0.1"
        self.database = database
        self._created = False

    def __repr__(self) -> str:
        return (
            f"ExistingServer(family={self.family!r}, host={self.host!r}, "
            f"port={self.port!r}, database={self.database!r})"
        )

    @property
    def port(self) -> int:
        """The server's TCP port, the family's default if the URL has none."""
        default = 5432 if self.family == "postgresql" else 3306
        return self._url.port or default

    @property
    def admin_user(self) -> str:
        """The admin account the URL names."""
        return self._url.username or ""

    def open(self) -> None:
        """Log in as the admin and create the drill's database.

        Raises:
            psycopg.Error | pymysql.err.Error: The server refused.
        """
        self._admin_execute(f"CREATE DATABASE {self._quote(self.database)}")
        self._created = True
        logger.info("Created database %s on %s", self.database, self.host)

    def close(self) -> None:
        """Drop the drill's database, ending sessions still using it."""
        if not self._created:
            return

        self._created = False
        quoted = self._quote(self.database)
        if self.family == "postgresql":
            self._admin_execute(f"DROP DATABASE IF EXISTS {quoted} (FORCE)")
        else:
            self._admin_execute(f"DROP DATABASE IF EXISTS {quoted}")
        logger.info("Dropped database %s on %s", self.database, self.host)

    def connect(
        self, user: str, password: str, *, database: str | None = None
    ) -> Any:
        """Open an autocommit connection, to the drill's database by default.

        Raises:
            psycopg.Error | pymysql.err.Error: The login was refused or the
                server is unreachable.
        """
        return self._open(
            user, password, self.database if database is None else database
        )

    def create_user(
        self, name: str, password: str, database: str | None = None
    ) -> None:
        """Create a user with all rights on ``database``."""
        user = self._quote_user(name)
        if self.family == "postgresql":
            self._admin_execute(
                f"CREATE ROLE {user} LOGIN PASSWORD %s", (password,)
            )
        else:
            self._admin_execute(
                f"CREATE USER {user} IDENTIFIED BY %s", (password,)
            )
        if database is None:
            return

        target = self._quote(database)
        if self.family == "postgresql":
            self._admin_execute(f"GRANT ALL ON DATABASE {target} TO {user}")
            self._admin_execute(
                f"GRANT ALL ON SCHEMA public TO {user}", database=database
            )
        else:
            self._admin_execute(f"GRANT ALL ON {target}.* TO {user}")

    def set_password(self, name: str, password: str) -> None:
        """Change a user's password for new logins; sessions stay open."""
        user = self._quote_user(name)
        if self.family == "postgresql":
            self._admin_execute(f"ALTER ROLE {user} PASSWORD %s", (password,))
        else:
            self._admin_execute(
                f"ALTER USER {user} IDENTIFIED BY %s", (password,)
            )

    def drop_user(self, name: str) -> None:
        """Remove a user if it exists; call ``close()`` first on PostgreSQL,
        where a role cannot go while it owns a table."""
        user = self._quote_user(name)
        if self.family == "postgresql":
            self._admin_execute(f"DROP ROLE IF EXISTS {user}")
        else:
            self._admin_execute(f"DROP USER IF EXISTS {user}")

    def _admin_execute(
        self,
        statement: str,
        args: tuple[object, ...] = (),
        *,
        database: str | None = None,
    ) -> None:
        """Run one statement as the admin, in its own connection."""
        name = self._url.database if database is None else database
        if name is None and self.family == "postgresql":
            name = "postgres"
        connection = self._open(
            self.admin_user, self._url.password or "", name
        )
        try:
            cursor = connection.cursor()
            # Always with arguments, so a literal % is written %% in both.
            cursor.execute(statement, args)
            cursor.close()
        finally:
            connection.close()

    def _open(self, user: str, password: str, database: str | None) -> Any:
        """Open an autocommit connection to ``database`` (or none)."""
        if self.family == "postgresql":
            import psycopg  # noqa: PLC0415 - only the family in use

            return psycopg.connect(
                host=self.host,
                port=self.port,
                user=user,
                password=password,
                dbname=database,
                autocommit=True,
                connect_timeout=_CONNECT_TIMEOUT,
                # Client-side binding: DDL takes no server-side parameters.
                cursor_factory=psycopg.ClientCursor,
            )

        import pymysql  # noqa: PLC0415 - only the family in use

        return pymysql.connect(
            host=self.host,
            port=self.port,
            user=user,
            # PyMySQL encodes a text password as Latin-1; the server hashes
            # its UTF-8 bytes.
            password=password.encode("utf-8"),
            database=database,
            autocommit=True,
            connect_timeout=_CONNECT_TIMEOUT,
            charset="utf8mb4",
        )

    def _quote(self, name: str) -> str:
        """Quote an identifier the drill made (letters, digits, ``_``)."""
        if not name.replace("_", "").isalnum():
            msg = f"not a drill identifier: {name!r}"
            raise ValueError(msg)
        return f'"{name}"' if self.family == "postgresql" else f"`{name}`"

    def _quote_user(self, name: str) -> str:
        """Quote a user name the drill made, with MySQL's host part."""
        quoted = self._quote(name)
        return quoted if self.family == "postgresql" else f"'{name}'@'%%'"

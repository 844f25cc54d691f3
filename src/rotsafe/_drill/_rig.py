"""What a drill runs on: a database, Secrets Manager, a user and its secret.

The rig starts what it needs (an embedded PostgreSQL, a throwaway MariaDB,
moto) or uses what it is pointed at, and removes everything it made on the
way out, also when the run is interrupted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from rotsafe._drill._existing import Administered, ExistingServer, family_of
from rotsafe.testing._harness import CallCounter
from rotsafe.testing._rotation import RotationRecord, Rotator, Step
from rotsafe.testing._rotation import new_password as _new_password

logger = logging.getLogger("rotsafe.drill")

TABLE = "rotsafe_drill"
ROWS = 100

# The step of each strategy that changes the database's password (its
# last, when the drill rotates twice); a rollback changes it back.
CHANGE_STEP = {
    "single-user": "setSecret",
    "alternating-users": "setSecret",
    "rollback": "restorePassword",
    "out-of-band": "setPassword",
}

_ENGINE_NAME = {"mysql": "mysql", "postgresql": "postgres"}
_DIALECT = {"mysql": "mysql+pymysql", "postgresql": "postgresql+psycopg"}
# Between the two rotations of alternating-users.
_BETWEEN_ROTATIONS = 1.0

# Memory-backed, so MariaDB skips its disk syncs and starts sooner; the
# server makes a private folder inside it.
_SHARED_MEMORY = Path("/dev/shm")  # noqa: S108


class SetupError(Exception):
    """The drill could not set up; the message says what to do."""


@dataclass(frozen=True)
class RigOptions:
    """Where the drill's database and Secrets Manager come from.

    Attributes:
        database: ``"postgres"`` (embedded) or ``"mysql"`` (throwaway).
        admin_url: An admin account on an existing server instead.
        secrets_endpoint: A Secrets Manager endpoint instead of moto.
        region: The region of the Secrets Manager clients.
        clone: Whether to create the second user alternating-users needs.
        previous: Whether to rotate once before the drill, so the secret
            has an ``AWSPREVIOUS`` version to roll back to.
    """

    database: str = "postgres"
    admin_url: str | None = None
    secrets_endpoint: str | None = None
    region: str = "us-east-1"
    clone: bool = False
    previous: bool = False


def new_password() -> str:
    """Return a fresh password for the drill's users."""
    return _new_password()


class Rig:
    """A database user whose login lives in a secret, ready to rotate.

    Use it as a context manager: entering sets everything up (a few
    seconds), leaving removes it all. :attr:`passwords` holds every
    password the rig made, so output can be checked for them.

    Args:
        options: Where the database and Secrets Manager come from.
        say: Called with a short line for each setup step.

    Raises:
        SetupError: On entry, when something could not be set up.
    """

    def __init__(
        self, options: RigOptions, say: Callable[[str], object] = print
    ) -> None:
        self.options = options
        self._say = say
        self.passwords: list[str] = []
        self.secret_id = ""
        self.username = f"rotsafe_drill_{uuid.uuid4().hex[:8]}"
        self.description = ""
        self._kind = ""
        self._stack = contextlib.ExitStack()
        self._server: Administered | None = None
        self._admin_client: Any = None
        self._client_factory: Callable[[], Any] | None = None

    def __enter__(self) -> Rig:
        try:
            self._set_up()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stack.close()

    @property
    def server(self) -> Administered:
        """The database server the drill's users live on."""
        if self._server is None:
            msg = "the rig is not set up"
            raise RuntimeError(msg)
        return self._server

    @property
    def family(self) -> str:
        """``"mysql"`` or ``"postgresql"``."""
        return self.server.family

    def url(self) -> str:
        """Return a SQLAlchemy URL of the database, with no login in it."""
        server = self.server
        return (
            f"{_DIALECT[server.family]}://{server.host}:{server.port}/"
            f"{server.database}"
        )

    def client(self, counter: CallCounter | None = None) -> Any:
        """Return a new Secrets Manager client, counting calls if asked."""
        if self._client_factory is None:
            msg = "the rig is not set up"
            raise RuntimeError(msg)
        client = self._client_factory()
        return counter.attach(client) if counter is not None else client

    def rotate(
        self,
        strategy: str,
        window: float,
        on_step: Callable[[Step], object] | None = None,
    ) -> RotationRecord:
        """Rotate the secret with rotsafe's rotation driver.

        Blocks for the whole rotation, ``window`` seconds and a little.
        ``alternating-users`` rotates twice, a second apart: the first
        rotation changes the password of the user not in use, and only the
        second changes the one a service that kept its first login uses.
        """
        rotator = Rotator(
            self._admin_client, self.secret_id, self.server, on_step=on_step
        )
        if strategy == "rollback":
            return rotator.rollback(window=window)

        password = self._password()
        if strategy == "single-user":
            return rotator.single_user(window=window, password=password)
        if strategy == "alternating-users":
            rotator.alternating_users(window=window, password=password)
            time.sleep(_BETWEEN_ROTATIONS)
            return rotator.alternating_users(
                window=window, password=self._password()
            )
        return rotator.out_of_band(window=window, password=password)

    def _password(self) -> str:
        password = new_password()
        self.passwords.append(password)
        return password

    def _set_up(self) -> None:
        began = time.monotonic()
        self._start_database()
        self._start_secrets_manager()
        try:
            self._create_users()
        except Exception as exc:
            raise SetupError(
                f"could not create the drill's users and table: "
                f"{_first_line(exc)}"
            ) from exc
        self._create_secret()
        logger.debug("Rig ready in %.1f s", time.monotonic() - began)

    def _start_database(self) -> None:
        options = self.options
        if options.admin_url is not None:
            self._use_existing(options.admin_url)
        elif options.database == "mysql":
            self._start_throwaway_mysql()
        else:
            self._start_embedded_postgres()

    def _start_embedded_postgres(self) -> None:
        from rotsafe.testing._embedded import (  # noqa: PLC0415
            EmbeddedPostgresServer,
        )

        self._say("starting an embedded PostgreSQL (pgserver)")
        server = EmbeddedPostgresServer(database="drill")
        self._start(server)
        self._kind = "embedded"

    def _start_throwaway_mysql(self) -> None:
        from rotsafe.testing._servers import MariaDBServer  # noqa: PLC0415

        self._say(
            "starting a throwaway MariaDB/MySQL from the binaries on PATH"
        )
        # A memory-backed folder saves the server's disk syncs.
        tempdir = (
            _SHARED_MEMORY if os.access(_SHARED_MEMORY, os.W_OK) else None
        )
        server = MariaDBServer(database="drill", tempdir=tempdir)
        self._start(server)
        self._kind = "throwaway"

    def _start(self, server: Any) -> None:
        from rotsafe.testing._servers import (  # noqa: PLC0415
            ServerStartError,
            ServerUnavailable,
        )

        self._stack.callback(server.stop)
        try:
            server.start()
        except ServerUnavailable as exc:
            raise SetupError(str(exc)) from exc
        except ServerStartError as exc:
            raise SetupError(f"the database did not start: {exc}") from exc
        self._server = server

    def _use_existing(self, url: str) -> None:
        try:
            family_of(url)
        except ValueError as exc:
            raise SetupError(str(exc)) from exc

        server = ExistingServer(url, self.username)
        where = f"{server.host}:{server.port}"
        self._say(f"creating database {server.database} on {where}")
        self._stack.callback(server.close)
        try:
            server.open()
        except Exception as exc:
            raise SetupError(
                f"could not create a database on {where} as "
                f"{server.admin_user!r}: {_first_line(exc)}; check the admin "
                "URL and that its account may create databases and users"
            ) from exc
        self._server = server
        self._kind = f"at {where}"

    def _start_secrets_manager(self) -> None:
        endpoint = self.options.secrets_endpoint
        region = self.options.region
        if endpoint is not None:
            import boto3  # noqa: PLC0415

            self._say(f"using Secrets Manager at {endpoint}")
            self._client_factory = lambda: boto3.client(
                "secretsmanager", endpoint_url=endpoint, region_name=region
            )
        else:
            from rotsafe.testing._moto import (  # noqa: PLC0415
                SecretsManagerServer,
            )

            moto = SecretsManagerServer(region=region)
            self._stack.callback(moto.stop)
            moto.start()
            self._say(f"started Secrets Manager (moto) at {moto.endpoint_url}")
            self._client_factory = moto.client
        self._admin_client = self.client()

    def _create_users(self) -> None:
        server = self.server
        password = self._password()
        users = [self.username]
        if self.options.clone:
            users.append(self.username + "_clone")

        for user in users:
            self._stack.callback(self._drop_user, user)
            server.create_user(user, password, server.database)
        if isinstance(server, ExistingServer):
            # A PostgreSQL role cannot go while it owns the drill's table:
            # the database is dropped first.
            self._stack.callback(server.close)

        connection = server.connect(self.username, password)
        try:
            cursor = connection.cursor()
            cursor.execute("SELECT version()")
            product = _product(str(cursor.fetchone()[0]), server.family)
            self.description = (
                f"{self._kind} {product}"
                if self._kind in ("embedded", "throwaway")
                else f"{product} {self._kind}"
            )
            cursor.execute(
                f"CREATE TABLE {TABLE} (id INTEGER PRIMARY KEY, "
                "note VARCHAR(40) NOT NULL)"
            )
            for number in range(1, ROWS + 1):
                cursor.execute(
                    # The table name is a constant; values are parameters.
                    f"INSERT INTO {TABLE} VALUES (%s, %s)",  # noqa: S608
                    (number, f"row {number}"),
                )
            if self.options.clone and server.family == "postgresql":
                # MySQL grants the database; PostgreSQL wants the table too.
                cursor.execute(
                    f"GRANT SELECT ON {TABLE} TO {self.username}_clone"
                )
            cursor.close()
        finally:
            connection.close()

    def _drop_user(self, user: str) -> None:
        try:
            self.server.drop_user(user)
        except Exception:
            logger.exception("Could not drop the drill's user %s", user)

    def _create_secret(self) -> None:
        server = self.server
        self.secret_id = f"rotsafe-drill/{self.username}"
        value = {
            "engine": _ENGINE_NAME[server.family],
            "host": server.host,
            "port": server.port,
            "username": self.username,
            "password": self.passwords[0],
            "dbname": server.database,
        }
        try:
            self._admin_client.create_secret(
                Name=self.secret_id, SecretString=json.dumps(value)
            )
        except Exception as exc:
            raise SetupError(
                f"could not create the secret {self.secret_id!r}: "
                f"{_first_line(exc)}"
            ) from exc
        self._stack.callback(self._delete_secret)

        if self.options.previous:
            # A rollback needs a version under AWSPREVIOUS to go back to.
            Rotator(self._admin_client, self.secret_id, server).single_user(
                window=0, password=self._password()
            )

    def _delete_secret(self) -> None:
        try:
            self._admin_client.delete_secret(
                SecretId=self.secret_id, ForceDeleteWithoutRecovery=True
            )
        except Exception:
            logger.exception("Could not delete the secret %s", self.secret_id)


def _first_line(exc: BaseException) -> str:
    """Return the first line of an error's message, or its class name."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _product(version: str, family: str) -> str:
    """Turn ``SELECT version()`` into a product name and version."""
    if family == "postgresql":
        match = re.match(r"PostgreSQL [\d.]+", version)
        return match.group(0) if match else "PostgreSQL"
    number = re.match(r"[\d.]+", version)
    product = "MariaDB" if "mariadb" in version.lower() else "MySQL"
    return f"{product} {number.group(0)}" if number else product

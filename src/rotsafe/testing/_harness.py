"""A database login kept in a secret, ready to be rotated under load.

The harness creates a database and a user on a throwaway server and a
secret holding the login, hands out Secrets Manager clients that count
their calls, rotates the secret and runs load, then removes what it created.
"""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from collections.abc import Callable
from typing import Any

from rotsafe._secret import RotatingSecret
from rotsafe.testing._load import Load
from rotsafe.testing._moto import SecretsManagerServer
from rotsafe.testing._rotation import RotationRecord, Rotator, new_password
from rotsafe.testing._servers import DatabaseServer

_ENGINE = {"mysql": "mysql", "postgresql": "postgres"}
_DRIVER = {"mysql": "pymysql", "postgresql": "psycopg"}


class CallCounter:
    """Counts the ``GetSecretValue`` calls a boto3 client makes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def attach(self, client: Any) -> Any:
        """Count ``client``'s calls from now on; return the client."""
        client.meta.events.register(
            "before-call.secrets-manager.GetSecretValue", self._count
        )
        return client

    def _count(self, **_: Any) -> None:
        with self._lock:
            self.count += 1


class RotationHarness:
    """A user and a database of its own, whose login lives in a secret.

    Nothing one harness makes in its database outlives it, so tests that
    each use one start from an empty database.

    Args:
        server: A running throwaway server.
        secrets_manager: A running local Secrets Manager.
        clone_suffix: The suffix of the second user that alternating-users
            rotations switch to; it is created with the same grants.
    """

    def __init__(
        self,
        server: DatabaseServer,
        secrets_manager: SecretsManagerServer,
        *,
        clone_suffix: str = "_clone",
    ) -> None:
        self.server = server
        self.secrets_manager = secrets_manager
        self.username = f"app_{uuid.uuid4().hex[:10]}"
        self.clone = self.username + clone_suffix
        self.database = f"{self.username}_db"
        self.secret_id = f"rotsafe-test/{self.username}"
        self.family = server.family
        self.driver = _DRIVER[server.family]
        self.counter = CallCounter()
        self.client = self.counter.attach(secrets_manager.client())
        self._admin_client = secrets_manager.client()
        self.rotator = Rotator(
            self._admin_client,
            self.secret_id,
            _InDatabase(server, self.database),
        )
        self._created = False

    def __enter__(self) -> RotationHarness:
        try:
            self.create()
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.remove()

    @property
    def calls(self) -> int:
        """``GetSecretValue`` calls made through :attr:`client`."""
        return self.counter.count

    def create(self) -> None:
        """Create the database, both users and the secret of the first."""
        password = new_password()
        self._created = True
        self.server.create_database(self.database)
        self.server.create_user(self.username, password, self.database)
        self.server.create_user(
            self.clone, password, self.database, like=self.username
        )
        self._admin_client.create_secret(
            Name=self.secret_id, SecretString=json.dumps(self.value(password))
        )

    def remove(self) -> None:
        """Delete the secret, drop the database and the users."""
        if not self._created:
            return
        self._created = False
        with contextlib.suppress(
            self._admin_client.exceptions.ResourceNotFoundException
        ):
            self._admin_client.delete_secret(
                SecretId=self.secret_id, ForceDeleteWithoutRecovery=True
            )
        self.server.drop_database(self.database)
        for user in (self.clone, self.username):
            self.server.drop_user(user)

    def value(
        self, password: str, username: str | None = None
    ) -> dict[str, Any]:
        """Return a secret value for this server, as RDS templates write it."""
        return {
            "engine": _ENGINE[self.family],
            "host": self.server.host,
            "port": self.server.port,
            "username": username or self.username,
            "password": password,
            "dbname": self.database,
        }

    def secret(self, **options: Any) -> RotatingSecret:
        """Return a :class:`~rotsafe.RotatingSecret` on the counting client."""
        return RotatingSecret(self.secret_id, client=self.client, **options)

    def url(self, driver: str | None = None) -> str:
        """Return a SQLAlchemy URL for the server, with no user or password."""
        dialect = "mysql" if self.family == "mysql" else "postgresql"
        return (
            f"{dialect}+{driver or self.driver}://{self.server.host}:"
            f"{self.server.port}/{self.database}"
        )

    def rotate(
        self, strategy: str = "single-user", *, window: float = 2.0
    ) -> RotationRecord:
        """Rotate the secret and the password; see :class:`Rotator`."""
        return self.rotator.rotate(strategy, window=window)

    def load(
        self, operation: Callable[[], object], *, threads: int = 8
    ) -> Load:
        """Return a :class:`Load` running ``operation`` on ``threads``."""
        return Load(operation, threads=threads)


class _InDatabase:
    """A server whose logins go to one database unless told another.

    The rotation driver logs in to the database a secret names; a secret
    that names none (as RDS-managed ones do) means the harness's own.
    """

    def __init__(self, server: DatabaseServer, database: str) -> None:
        self.server = server
        self.database = database

    def set_password(self, name: str, password: str) -> None:
        self.server.set_password(name, password)

    def connect(
        self, user: str, password: str, *, database: str | None = None
    ) -> Any:
        return self.server.connect(
            user, password, database=database or self.database
        )

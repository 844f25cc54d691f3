"""The four ways a service can open connections through a rotation.

Each strategy opens one new connection per call, with the same driver and
the same connect options, and differs only in where its login comes from
and what it does when the database refuses it:

- ``read-once``: the secret read at start, never again.
- ``reread-current``: on a refused login, read ``AWSCURRENT`` again and
  retry once with it, as the AWS database wrappers do.
- ``secretcache``: ``aws_secretsmanager_caching.SecretCache``; on a refused
  login, ``refresh_secret_now()`` and retry once with the refreshed value.
- ``rotsafe``: ``rotsafe.creator`` over a ``RotatingSecret``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

from aws_secretsmanager_caching import SecretCache, SecretCacheConfig

import rotsafe

# The same for every strategy and for the bare driver.
CONNECT_TIMEOUT = 10

# rotsafe's default TTL; SecretCache is given the same refresh interval.
TTL = 300


class Strategy(Protocol):
    """Opens a new connection with a login from the secret."""

    def connect(self) -> Any:
        """Open and return a new DB-API connection."""
        ...


def open_fixed(login: dict[str, Any]) -> Any:
    """Open a connection with the bare driver and a fixed login.

    ``login`` is a secret value as the RDS templates write it.
    """
    if login["engine"] == "postgres":
        import psycopg  # noqa: PLC0415 - only the family in use is loaded

        return psycopg.connect(
            host=login["host"],
            port=login["port"],
            user=login["username"],
            password=login["password"],
            dbname=login["dbname"],
            connect_timeout=CONNECT_TIMEOUT,
        )

    import pymysql  # noqa: PLC0415 - only the family in use is loaded

    return pymysql.connect(
        host=login["host"],
        port=login["port"],
        user=login["username"],
        password=login["password"],
        database=login["dbname"],
        connect_timeout=CONNECT_TIMEOUT,
    )


def _read_current(client: Any, secret_id: str) -> dict[str, Any]:
    response = client.get_secret_value(
        SecretId=secret_id, VersionStage=rotsafe.AWSCURRENT
    )
    value: dict[str, Any] = json.loads(response["SecretString"])
    return value


class ReadOnce:
    """The secret read once at start; a rotation breaks every connection."""

    def __init__(self, client: Any, secret_id: str) -> None:
        self.login = _read_current(client, secret_id)

    def connect(self) -> Any:
        """Open a connection with the login read at start."""
        return open_fixed(self.login)


class RereadCurrent:
    """On a refused login, ``GetSecretValue`` for AWSCURRENT, retry once."""

    def __init__(self, client: Any, secret_id: str) -> None:
        self.client = client
        self.secret_id = secret_id
        self.login = _read_current(client, secret_id)

    def connect(self) -> Any:
        """Open a connection; re-read AWSCURRENT if the login is refused."""
        try:
            return open_fixed(self.login)
        except Exception as exc:
            if not rotsafe.is_auth_error(exc):
                raise
        self.login = _read_current(self.client, self.secret_id)
        return open_fixed(self.login)


class SecretCacheRefresh:
    """``SecretCache`` with ``refresh_secret_now()`` on a refused login."""

    def __init__(self, client: Any, secret_id: str) -> None:
        self.secret_id = secret_id
        self.cache = SecretCache(
            config=SecretCacheConfig(secret_refresh_interval=TTL),
            client=client,
        )
        self._login()

    def _login(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(
            self.cache.get_secret_string(self.secret_id)
        )
        return value

    def connect(self) -> Any:
        """Open a connection; force a refresh if the login is refused."""
        try:
            return open_fixed(self._login())
        except Exception as exc:
            if not rotsafe.is_auth_error(exc):
                raise
        self.cache.refresh_secret_now(self.secret_id)
        return open_fixed(self._login())


class Rotsafe:
    """``rotsafe.creator`` over a ``RotatingSecret`` with its defaults."""

    def __init__(self, client: Any, secret_id: str) -> None:
        self.secret = rotsafe.RotatingSecret(secret_id, ttl=TTL, client=client)
        self.secret.credentials()
        self.connector = rotsafe.creator(
            self.secret, connect_timeout=CONNECT_TIMEOUT
        )

    def connect(self) -> Any:
        """Open a connection through rotsafe's fallback."""
        return self.connector()


#: The strategies by name, in the order the tables show them. Each is made
#: with a boto3 client and a secret id, and reads the secret once at start.
STRATEGIES: dict[str, Callable[[Any, str], Strategy]] = {
    "read-once": ReadOnce,
    "reread-current": RereadCurrent,
    "secretcache": SecretCacheRefresh,
    "rotsafe": Rotsafe,
}

"""A PostgreSQL that takes only TLS, as RDS with rds.force_ssl does.

Under ``sslmode=prefer`` a client tries TLS first, then plain text; against
such a server a refused password can surface as the plain-text attempt's
pg_hba refusal. rotsafe must still read it as a refused password, and a
client that never tries TLS as a setup error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import asyncpg
import psycopg
import psycopg2
import pytest
import sqlalchemy
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

import rotsafe
from rotsafe.testing import PostgresServer, RotationHarness
from rotsafe.testing.plugin import _serve as serve
from support import assert_unnoticed, run_async_load

WRONG = "certainly-not-the-password"


@pytest.fixture(scope="module")
def tls_postgres(request: pytest.FixtureRequest) -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL that refuses plain-text logins over TCP."""
    yield from serve(PostgresServer(tls_only=True), request)


@pytest.fixture
def rig(tls_postgres, rotsafe_secrets_manager) -> Iterator[RotationHarness]:
    """A user on the TLS-only server whose login lives in a secret."""
    with RotationHarness(tls_postgres, rotsafe_secrets_manager) as harness:
        yield harness


def login(rig: RotationHarness, password: str) -> dict[str, object]:
    return {
        "host": rig.server.host,
        "port": rig.server.port,
        "user": rig.username,
        "password": password,
    }


def test_plain_text_is_refused_and_tls_accepted(rig):
    """The server really refuses plain text and accepts TLS."""
    with pytest.raises(psycopg.OperationalError, match="no encryption"):
        psycopg.connect(**login(rig, WRONG), dbname="app", sslmode="disable")
    password = rig.secret().credentials().password
    psycopg.connect(
        **login(rig, password), dbname="app", sslmode="require"
    ).close()


@pytest.mark.parametrize(
    "connect",
    [
        pytest.param(
            lambda args: psycopg.connect(**args, dbname="app"), id="psycopg"
        ),
        pytest.param(
            lambda args: psycopg2.connect(**args, dbname="app"), id="psycopg2"
        ),
        pytest.param(
            lambda args: asyncio.run(asyncpg.connect(**args, database="app")),
            id="asyncpg",
        ),
    ],
)
def test_a_refused_password_under_prefer_is_auth(rig, connect):
    """With sslmode=prefer, a wrong password is AUTH, not a pg_hba refusal."""
    with pytest.raises(Exception) as caught:  # noqa: PT011 - any driver's
        connect(login(rig, WRONG))

    assert rotsafe.classify(caught.value) is rotsafe.ErrorKind.AUTH


def test_a_client_that_never_tries_tls_fails_fast(rig):
    """sslmode=disable against a TLS-only server is a setup error, at once."""
    connect = rotsafe.creator(rig.secret(), sslmode="disable")

    with pytest.raises(rotsafe.ConnectionSetupError) as caught:
        connect()

    assert caught.value.kind is rotsafe.ErrorKind.HOST_BLOCKED
    assert rig.calls == 1


def test_rotation_over_tls_loses_no_operation(rig):
    """A rotation against the TLS-only server: no failed operation."""
    engine = sqlalchemy.create_engine(rig.url("psycopg"), poolclass=NullPool)
    rotsafe.attach(engine, rig.secret(driver="psycopg"))

    def select_one() -> None:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    with rig.load(select_one) as load:
        load.wait_for(30)
        rig.rotate("single-user", window=2)
        load.wait_for(load.result.count + 30)

    assert_unnoticed(load.result, rig.calls)


def test_async_rotation_over_tls_loses_no_operation(rig):
    """The same rotation through asyncpg on one event loop."""
    engine = create_async_engine(rig.url("asyncpg"), poolclass=NullPool)
    rotsafe.attach(engine, rig.secret(driver="asyncpg"))

    async def select_one() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    result = run_async_load(
        select_one, lambda: rig.rotate("single-user", window=2)
    )

    assert_unnoticed(result, rig.calls)

"""rotsafe's pytest plugin: local Secrets Manager, databases and rotations.

Installed with rotsafe and loaded by pytest on its own. Servers start only
when a test asks for them, once per session. A service test reads::

    def test_survives_rotation(rotation):
        service = make_service(rotation.secret(), rotation.url())
        with rotation.load(service.handle_request) as load:
            rotation.rotate("single-user", window=2)
        assert load.result.failed == 0

``rotation`` uses PostgreSQL; override the ``rotsafe_database`` fixture to
return ``rotsafe_mariadb`` (or parametrize it) for MySQL and MariaDB.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING, TypeVar

import pytest

# Loaded into every pytest run where rotsafe is installed: the servers, moto
# and the drivers are imported only when a test asks for them.
if TYPE_CHECKING:
    from rotsafe.testing._harness import RotationHarness
    from rotsafe.testing._moto import SecretsManagerServer
    from rotsafe.testing._servers import (
        DatabaseServer,
        MariaDBServer,
        PostgresServer,
    )

_Server = TypeVar("_Server", bound="DatabaseServer")

_REQUIRE = "ROTSAFE_REQUIRE_SERVERS"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--rotsafe-require-servers",
        action="store_true",
        default=bool(os.environ.get(_REQUIRE)),
        help=(
            "fail, instead of skipping, tests whose database server cannot "
            f"start (also set by the {_REQUIRE} environment variable)"
        ),
    )


@pytest.fixture(scope="session")
def rotsafe_secrets_manager() -> Iterator[SecretsManagerServer]:
    """A local Secrets Manager (moto) on a loopback port."""
    from rotsafe.testing._moto import SecretsManagerServer  # noqa: PLC0415

    with SecretsManagerServer() as server:
        yield server


@pytest.fixture(scope="session")
def rotsafe_mariadb(
    request: pytest.FixtureRequest,
) -> Iterator[MariaDBServer]:
    """A throwaway MariaDB (or MySQL) server from the machine's binaries."""
    from rotsafe.testing._servers import MariaDBServer  # noqa: PLC0415

    yield from _serve(MariaDBServer(), request)


@pytest.fixture(scope="session")
def rotsafe_postgres(
    request: pytest.FixtureRequest,
) -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server from the machine's binaries."""
    from rotsafe.testing._servers import PostgresServer  # noqa: PLC0415

    yield from _serve(PostgresServer(), request)


@pytest.fixture
def rotsafe_database(rotsafe_postgres: PostgresServer) -> DatabaseServer:
    """The server ``rotation`` uses; override it to choose another."""
    return rotsafe_postgres


@pytest.fixture
def rotsafe_no_waits() -> Iterator[None]:
    """Skip rotsafe's backoff waits for the test; see ``no_waits``."""
    from rotsafe.testing._fakes import no_waits  # noqa: PLC0415

    with no_waits():
        yield


@pytest.fixture
def rotation(
    rotsafe_database: DatabaseServer,
    rotsafe_secrets_manager: SecretsManagerServer,
) -> Iterator[RotationHarness]:
    """A fresh database user whose login is a secret, ready to rotate."""
    from rotsafe.testing._harness import RotationHarness  # noqa: PLC0415

    with RotationHarness(rotsafe_database, rotsafe_secrets_manager) as rig:
        yield rig


def _serve(
    server: _Server, request: pytest.FixtureRequest
) -> Iterator[_Server]:
    from rotsafe.testing._servers import ServerUnavailable  # noqa: PLC0415

    _interrupt_on_sigterm()
    try:
        server.start()
    except ServerUnavailable as exc:
        if request.config.getoption("--rotsafe-require-servers"):
            pytest.fail(str(exc), pytrace=False)
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        server.stop()


def _interrupt_on_sigterm() -> None:
    """Make SIGTERM end the session as Ctrl-C does, servers stopped.

    Left at its default, SIGTERM (a CI job's timeout) kills the process
    before any fixture or ``atexit`` hook runs, and the servers outlive it.
    A handler the program set itself is left alone.
    """
    if (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    ):
        signal.signal(signal.SIGTERM, _raise_interrupt)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"terminated by signal {signum}")

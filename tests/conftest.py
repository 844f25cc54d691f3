"""Fixtures shared by rotsafe's own tests; the plugin provides the servers."""

from __future__ import annotations

import pytest

from rotsafe.testing._servers import DatabaseServer


@pytest.fixture(params=["mariadb", "postgres"])
def rotsafe_database(request: pytest.FixtureRequest) -> DatabaseServer:
    """Run every rotation test on MariaDB and on PostgreSQL."""
    server: DatabaseServer = request.getfixturevalue(
        f"rotsafe_{request.param}"
    )
    return server

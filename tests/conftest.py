"""Fixtures shared by rotsafe's own tests; the plugin provides the servers."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from rotsafe.testing._servers import DatabaseServer


@pytest.fixture(params=["mariadb", "postgres"])
def rotsafe_database(request: pytest.FixtureRequest) -> DatabaseServer:
    """Run every rotation test on MariaDB and on PostgreSQL."""
    server: DatabaseServer = request.getfixturevalue(
        f"rotsafe_{request.param}"
    )
    return server


@pytest.fixture
def scratch() -> Iterator[Path]:
    """An empty folder every account can enter, to serve as TMPDIR.

    Run as root, PostgreSQL runs as another account, which cannot enter
    pytest's own folders.
    """
    folder = Path(tempfile.mkdtemp(prefix="rotsafe-scratch-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)

"""Specifications for the embedded PostgreSQL run from pgserver's binaries."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import psycopg
import pytest

from rotsafe.testing import EmbeddedPostgresServer
from rotsafe.testing._embedded import pgserver_bindir
from support import processes_using


def test_binaries_come_from_the_pgserver_wheel():
    """The server binaries are the ones pgserver ships, not the system's."""
    bindir = pgserver_bindir()

    assert "pgserver" in bindir.parts
    assert (bindir / "initdb").is_file()


def test_password_login_over_loopback_tcp():
    """A user logs in over 127.0.0.1 with its password; others are refused."""
    user = f"user_{uuid.uuid4().hex[:8]}"
    with EmbeddedPostgresServer() as server:
        server.create_user(user, "right p@ss'word", server.database)

        with server.connect(user, "right p@ss'word") as connection:
            row = connection.execute("SELECT inet_server_addr()").fetchone()
        assert row is not None
        assert str(row[0]) == "127.0.0.1"

        with pytest.raises(
            psycopg.OperationalError, match="password authentication failed"
        ):
            server.connect(user, "wrong password")


def test_unix_socket_logins_need_a_password_too():
    """Nothing is trusted: a login on the unix socket needs a password."""
    with (
        EmbeddedPostgresServer() as server,
        pytest.raises(psycopg.OperationalError, match="password"),
    ):
        psycopg.connect(
            host=str(server.socket_directory),
            port=server.port,
            user=server.admin_user,
            password="not the admin password",
            dbname="postgres",
        )


def test_stop_removes_the_process_and_the_folder():
    """stop() ends the server and deletes everything it wrote."""
    server = EmbeddedPostgresServer()
    server.start()
    directory = server.directory
    assert processes_using(directory)

    server.stop()

    assert not processes_using(directory)
    assert not directory.exists()


@pytest.mark.skipif(
    os.geteuid() != 0, reason="only root runs PostgreSQL as another account"
)
def test_binaries_out_of_the_accounts_reach_are_copied(tmp_path: Path):
    """Run as root from a folder the server's account cannot enter, the
    binaries are copied into the server's own folder and work."""
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    site = pgserver_bindir().parents[2]
    shutil.copytree(
        site / "pgserver",
        private / "pgserver",
        ignore=shutil.ignore_patterns("include", "__pycache__"),
    )
    shutil.copytree(site / "pgserver.libs", private / "pgserver.libs")
    bindir = private / "pgserver" / "pginstall" / "bin"

    with EmbeddedPostgresServer(bindir=bindir) as server:
        server.create_user("copied", "its password", server.database)
        server.connect("copied", "its password").close()
        assert (server.directory / "pgserver" / "pginstall").is_dir()

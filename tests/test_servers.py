"""Specifications for the throwaway database servers and Secrets Manager."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest

from rotsafe.testing._moto import SecretsManagerServer
from rotsafe.testing._servers import (
    DatabaseServer,
    MariaDBServer,
    PostgresServer,
    ServerStartError,
    ServerUnavailable,
)
from support import processes_using, signal_when_ready

SPECIAL_PASSWORD = "p%8Fw@rd:/?#[]&=+ '\"\\"
SERVER_CLASSES = [MariaDBServer, PostgresServer]


def _started(server: DatabaseServer) -> DatabaseServer:
    """Start a server, skipping the test when its binaries are missing."""
    try:
        server.start()
    except ServerUnavailable as exc:
        pytest.skip(str(exc))

    return server


@pytest.fixture(scope="session")
def mariadb() -> Iterator[DatabaseServer]:
    """One MariaDB server shared by this file's tests."""
    server = _started(MariaDBServer())
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[DatabaseServer]:
    """One PostgreSQL server shared by this file's tests."""
    server = _started(PostgresServer())
    yield server
    server.stop()


@pytest.fixture(params=["mariadb", "postgres"])
def server(request: pytest.FixtureRequest) -> DatabaseServer:
    """Each database server in turn."""
    started: DatabaseServer = request.getfixturevalue(request.param)
    return started


@pytest.fixture
def user() -> str:
    """A user name no other test uses."""
    return f"user_{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def secrets_manager() -> Iterator[SecretsManagerServer]:
    """One Secrets Manager server shared by this file's tests."""
    with SecretsManagerServer() as server:
        yield server


def _select_one(connection: Any) -> Any:
    """Run ``SELECT 1`` on a connection and return the value."""
    cursor = connection.cursor()
    try:
        cursor.execute("SELECT 1")
        return cursor.fetchone()[0]
    finally:
        cursor.close()


def _assert_login_refused(
    server: DatabaseServer, user: str, password: str
) -> None:
    """Assert that the server refuses a login for a bad password."""
    if server.family == "mysql":
        with pytest.raises(pymysql.err.OperationalError) as info:
            server.connect(user, password)

        # MariaDB answers some refused logins with 1698 rather than 1045;
        # both are refusals, and rotsafe reads both as AUTH.
        assert info.value.args[0] in {1045, 1698}
    else:
        with pytest.raises(
            psycopg.OperationalError, match="password authentication failed"
        ):
            server.connect(user, password)


def _driver_error(server: DatabaseServer) -> type[Exception]:
    """Return the base class of the server's driver errors."""
    return pymysql.err.Error if server.family == "mysql" else psycopg.Error


def test_admin_connects_over_loopback_with_autocommit(
    server: DatabaseServer,
) -> None:
    """The admin logs in over TCP on 127.0.0.1 with autocommit on."""
    assert server.host == "127.0.0.1"
    assert server.port not in (3306, 5432)

    connection = server.admin_connect()
    try:
        assert _select_one(connection) == 1
        if server.family == "mysql":
            assert connection.get_autocommit()
        else:
            assert connection.autocommit
    finally:
        connection.close()


def test_user_logs_in_and_uses_its_database(
    server: DatabaseServer, user: str
) -> None:
    """A created user logs in with its password and can use its database."""
    database = f"db_{user}"
    server.create_database(database)
    server.create_user(user, "right-password", database=database)

    connection = server.connect(user, "right-password", database=database)
    try:
        assert _select_one(connection) == 1
        cursor = connection.cursor()
        cursor.execute("CREATE TABLE items (x INT)")
        cursor.execute("INSERT INTO items VALUES (42)")
        cursor.execute("SELECT x FROM items")
        assert cursor.fetchone()[0] == 42
        cursor.close()
    finally:
        connection.close()


def test_wrong_password_is_refused(server: DatabaseServer, user: str) -> None:
    """A login with a wrong password is refused by the server."""
    server.create_user(user, "right-password", database=server.database)

    _assert_login_refused(server, user, "wrong-password")


def test_set_password_affects_new_logins_only(
    server: DatabaseServer, user: str
) -> None:
    """A new password applies to new logins; open sessions keep working."""
    server.create_user(user, "old-password", database=server.database)
    session = server.connect(user, "old-password")
    try:
        server.set_password(user, "new-password")

        assert _select_one(session) == 1
        _assert_login_refused(server, user, "old-password")
        fresh = server.connect(user, "new-password")
        assert _select_one(fresh) == 1
        fresh.close()
    finally:
        session.close()


@pytest.mark.parametrize("password", [SPECIAL_PASSWORD, "pässwörd-€-密码"])
def test_password_with_special_characters(
    server: DatabaseServer, user: str, password: str
) -> None:
    """A password of quoting, URL or non-Latin-1 characters logs in."""
    server.create_user(user, password, database=server.database)

    connection = server.connect(user, password)
    assert _select_one(connection) == 1
    connection.close()

    _assert_login_refused(server, user, password[:-1])


def test_names_needing_quotes(server: DatabaseServer) -> None:
    """User and database names with quotes and wildcards are quoted."""
    suffix = uuid.uuid4().hex[:6]
    database = f"odd `db` 'name'_{suffix}"
    user = f'o\'brien "q" %_{suffix}'
    server.create_database(database)
    server.create_user(user, "pw", database=database)

    connection = server.connect(user, "pw", database=database)
    try:
        cursor = connection.cursor()
        cursor.execute("CREATE TABLE quoted (x INT)")
        cursor.close()
    finally:
        connection.close()

    server.drop_user(user)
    _assert_login_refused(server, user, "pw")


def test_sessions_are_counted_and_terminated(
    server: DatabaseServer, user: str
) -> None:
    """terminate_sessions ends every session of one user and no other."""
    server.create_user(user, "pw", database=server.database)
    sessions = [server.connect(user, "pw") for _ in range(2)]
    admin = server.admin_connect()
    try:
        assert server.count_sessions(user) == 2

        assert server.terminate_sessions(user) == 2

        assert server.count_sessions(user) == 0
        for session in sessions:
            with pytest.raises(_driver_error(server)):
                _select_one(session)

        assert _select_one(admin) == 1
    finally:
        admin.close()
        for session in sessions:
            session.close()


def test_drop_user_refuses_new_logins(
    server: DatabaseServer, user: str
) -> None:
    """A dropped user, even one owning a table, can no longer log in."""
    server.create_user(user, "pw", database=server.database)
    connection = server.connect(user, "pw")
    cursor = connection.cursor()
    cursor.execute(f"CREATE TABLE owned_{user} (x INT)")
    cursor.close()
    connection.close()

    server.drop_user(user)
    server.drop_user(user)

    _assert_login_refused(server, user, "pw")


def test_postgres_has_no_trust_entries(postgres: DatabaseServer) -> None:
    """Every pg_hba.conf rule asks for a SCRAM password."""
    connection = postgres.admin_connect()
    try:
        cursor = connection.cursor()
        cursor.execute("SELECT DISTINCT auth_method FROM pg_hba_file_rules")
        assert cursor.fetchall() == [("scram-sha-256",)]
    finally:
        connection.close()


def test_postgres_does_not_run_as_root(postgres: DatabaseServer) -> None:
    """PostgreSQL's data folder belongs to an unprivileged account."""
    assert postgres.datadir.stat().st_uid != 0 or os.geteuid() != 0


def test_mariadb_root_cannot_log_in_over_tcp(mariadb: DatabaseServer) -> None:
    """MariaDB's root account has no password login over TCP."""
    _assert_login_refused(mariadb, "root", "")


def test_mariadb_users_use_native_passwords(
    mariadb: DatabaseServer, user: str
) -> None:
    """MariaDB users are created for any host with native passwords."""
    mariadb.create_user(user, "pw")
    connection = mariadb.admin_connect()
    try:
        cursor = connection.cursor()
        cursor.execute(
            "SELECT host, plugin FROM mysql.user WHERE user = %s", (user,)
        )
        assert cursor.fetchall() == (("%", "mysql_native_password"),)
    finally:
        connection.close()


@pytest.mark.parametrize("server_class", SERVER_CLASSES)
def test_settings_apply_and_stop_cleans_up(
    server_class: type[DatabaseServer],
) -> None:
    """Extra settings reach the server; stop removes its folder and port."""
    with server_class(settings={"max_connections": "12"}) as server:
        _started(server)
        directory = server.directory
        port = server.port
        connection = server.admin_connect()
        cursor = connection.cursor()
        if server.family == "mysql":
            cursor.execute("SELECT @@max_connections")
        else:
            cursor.execute("SHOW max_connections")
        assert str(cursor.fetchone()[0]) == "12"
        connection.close()

    assert not directory.exists()
    assert not server.running
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()

    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))

    server.stop()


@pytest.mark.parametrize("server_class", SERVER_CLASSES)
def test_failed_start_reports_server_log(
    server_class: type[DatabaseServer],
) -> None:
    """A server that cannot start raises with its log's last lines."""
    server = server_class(settings={"rotsafe_bogus": "1"})
    with pytest.raises((ServerStartError, ServerUnavailable)) as info:
        server.start()

    if info.type is ServerUnavailable:
        pytest.skip(str(info.value))

    assert "rotsafe_bogus" in str(info.value)
    assert not server.running
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.directory


@pytest.mark.parametrize(
    ("server_class", "package"),
    [(MariaDBServer, "mariadb-server"), (PostgresServer, "postgresql")],
)
def test_missing_binaries_say_what_to_install(
    server_class: type[DatabaseServer], package: str, tmp_path: Any
) -> None:
    """Without server binaries, start names the package to install."""
    server = server_class(bindir=tmp_path)

    with pytest.raises(ServerUnavailable, match=f"apt-get install {package}"):
        server.start()


def test_repr_hides_admin_password(server: DatabaseServer) -> None:
    """A server's repr names its port but never its admin password."""
    text = repr(server)

    assert str(server.port) in text
    assert server.admin_password not in text


def test_secrets_manager_serves_put_and_get(
    secrets_manager: SecretsManagerServer,
) -> None:
    """A boto3 client stores and reads a secret through the server."""
    client = secrets_manager.client()
    name = f"db-{uuid.uuid4().hex}"

    client.create_secret(Name=name, SecretString='{"password": "one"}')
    client.put_secret_value(SecretId=name, SecretString='{"password": "two"}')

    value = client.get_secret_value(SecretId=name)
    assert value["SecretString"] == '{"password": "two"}'
    assert secrets_manager.endpoint_url.startswith("http://127.0.0.1:")


def test_secrets_manager_moves_rotation_stages(
    secrets_manager: SecretsManagerServer,
) -> None:
    """Rotation stages move as in AWS: pending, current, then previous."""
    client = secrets_manager.client()
    name = f"db-{uuid.uuid4().hex}"
    first = client.create_secret(Name=name, SecretString="one")["VersionId"]
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_secret_value(SecretId=name, VersionStage="AWSPENDING")

    second = client.put_secret_value(
        SecretId=name, SecretString="two", VersionStages=["AWSPENDING"]
    )["VersionId"]
    pending = client.get_secret_value(SecretId=name, VersionStage="AWSPENDING")
    assert pending["SecretString"] == "two"
    client.update_secret_version_stage(
        SecretId=name,
        VersionStage="AWSCURRENT",
        MoveToVersionId=second,
        RemoveFromVersionId=first,
    )

    current = client.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")
    previous = client.get_secret_value(
        SecretId=name, VersionStage="AWSPREVIOUS"
    )
    assert (current["VersionId"], current["SecretString"]) == (second, "two")
    assert (previous["VersionId"], previous["SecretString"]) == (first, "one")


@pytest.mark.xfail(
    reason="moto 5.2 keeps a stale default version after a stage move, so "
    "a plain put leaves two AWSCURRENT versions; move stages explicitly",
)
def test_secrets_manager_plain_put_after_stage_move(
    secrets_manager: SecretsManagerServer,
) -> None:
    """A plain put after a stage move makes only the new version current."""
    client = secrets_manager.client()
    name = f"db-{uuid.uuid4().hex}"
    first = client.create_secret(Name=name, SecretString="one")["VersionId"]
    second = client.put_secret_value(
        SecretId=name, SecretString="two", VersionStages=["AWSPENDING"]
    )["VersionId"]
    client.update_secret_version_stage(
        SecretId=name,
        VersionStage="AWSCURRENT",
        MoveToVersionId=second,
        RemoveFromVersionId=first,
    )

    client.put_secret_value(SecretId=name, SecretString="three")

    current = client.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")
    assert current["SecretString"] == "three"


_RESET_SCRIPT = """
from rotsafe.testing._moto import SecretsManagerServer

with SecretsManagerServer() as server:
    client = server.client()
    client.create_secret(Name="doomed", SecretString="x")
    server.reset()
    print(len(client.list_secrets()["SecretList"]))
"""


def test_secrets_manager_reset_forgets_secrets() -> None:
    """reset() removes every stored secret."""
    # reset() clears moto's state for the whole process, so it runs in a
    # child process to spare the secrets of other tests.
    result = subprocess.run(
        [sys.executable, "-c", _RESET_SCRIPT],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        timeout=60,
    )

    assert result.stdout.strip() == "0"


def test_secrets_manager_client_ignores_aws_profile(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """Clients work even when AWS_PROFILE names a profile that is missing."""
    monkeypatch.setenv("AWS_PROFILE", "rotsafe-no-such-profile")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "missing"))

    with SecretsManagerServer(region="eu-west-1") as server:
        client = server.client()
        client.create_secret(Name=f"db-{uuid.uuid4().hex}", SecretString="x")

        assert client.meta.region_name == "eu-west-1"

    server.stop()
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.endpoint_url


def test_a_session_ended_by_sigterm_leaves_no_server(scratch: Path) -> None:
    """SIGTERM to a test run ends it as Ctrl-C does: its servers stop."""
    (scratch / "test_waits.py").write_text(
        "import time\n"
        "def test_waits(rotsafe_postgres):\n"
        "    print('server up', flush=True)\n"
        "    time.sleep(120)\n"
    )
    _, rest = signal_when_ready(
        [sys.executable, "-m", "pytest", "-s", "-p", "no:cacheprovider"],
        "server up",
        signal.SIGTERM,
        scratch,
        cwd=scratch,
    )

    assert "terminated by signal" in rest
    assert not processes_using(scratch)
    assert [each.name for each in scratch.iterdir()] == ["test_waits.py"]

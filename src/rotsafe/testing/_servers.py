"""Throwaway MariaDB and PostgreSQL servers for tests and drills.

Each server runs from the machine's binaries in a private temporary folder,
listens on 127.0.0.1 only and is removed again by ``stop()``.
"""

from __future__ import annotations

import abc
import atexit
import contextlib
import logging
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, Any, ClassVar, Protocol, TypeVar

import psycopg
import pymysql
from psycopg import sql

from rotsafe._durations import Duration, to_seconds

logger = logging.getLogger(__name__)

_S = TypeVar("_S", bound="DatabaseServer")

_HOST = "127.0.0.1"
_ADMIN_USER = "rotsafe_admin"
_LOG_TAIL_LINES = 40
_PORT_ATTEMPTS = 3
_POLL_INTERVAL = 0.05
# Unix socket paths are limited to about 107 bytes; keep well below.
_MAX_SOCKET_DIR_LENGTH = 80
_SETTING_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")

# MariaDB's answer to KILL for a session that has already ended.
_ER_NO_SUCH_THREAD = 1094


class ServerUnavailable(RuntimeError):
    """The database server binaries are not installed on this machine."""


class ServerStartError(RuntimeError):
    """The database server was found but did not start or initialise."""


class DBAPIConnection(Protocol):
    """The part of a DB-API 2.0 connection that callers may rely on."""

    def cursor(self) -> Any:
        """Return a new cursor."""

    def close(self) -> None:
        """Close the connection."""


def _free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((_HOST, 0))
        port: int = probe.getsockname()[1]

    return port


def _which(name: str, search: Sequence[Path] | None) -> Path | None:
    """Return the path of an executable, from ``search`` or PATH + sbin."""
    if search is None:
        extra = ["/usr/sbin", "/usr/libexec", "/usr/local/sbin"]
        path = os.pathsep.join([os.environ.get("PATH", ""), *extra])
    else:
        path = os.pathsep.join(str(folder) for folder in search)

    found = shutil.which(name, path=path)
    return Path(found) if found is not None else None


def _unprivileged_user() -> pwd.struct_passwd | None:
    """Return the account to run PostgreSQL as, or None to stay as is."""
    if os.geteuid() != 0:
        return None

    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue

    raise ServerUnavailable(
        "PostgreSQL refuses to run as root and neither a 'postgres' nor a "
        "'nobody' account exists; run the tests as an ordinary user."
    )


def _validated_settings(settings: Mapping[str, str] | None) -> dict[str, str]:
    """Return a copy of extra server settings after checking their names."""
    checked = dict(settings or {})
    for name in checked:
        if not _SETTING_NAME.fullmatch(name):
            raise ValueError(f"not a valid server setting name: {name!r}")

    return checked


def _tail(path: Path, start: int = 0) -> str:
    """Return the last lines of a log file written after offset ``start``."""
    try:
        with path.open("rb") as log:
            log.seek(start)
            text = log.read().decode("utf-8", "replace")
    except OSError:
        return "(no server log)"

    lines = text.splitlines()[-_LOG_TAIL_LINES:]
    return "\n".join(lines) if lines else "(server log is empty)"


def _write_private(path: Path, text: str) -> None:
    """Write a file that only its owner can read."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)


class _Exited(Exception):
    """The server process ended before it accepted connections."""


class DatabaseServer(abc.ABC):
    """A private database server started from local binaries.

    The server lives in a fresh temporary folder, listens on 127.0.0.1 on a
    free port and has an admin account with a random password. ``start()``
    blocks until the server accepts connections; ``stop()`` shuts it down
    and deletes the folder. Both are safe to call more than once, and an
    ``atexit`` hook stops any server still running when the interpreter
    exits. A process killed by a signal it does not handle (SIGKILL, and
    SIGTERM unless the program turns it into an exception) runs no such
    hook and leaves its servers behind. Use the server as a context manager
    to get both calls for free.

    Durations are float seconds or ``timedelta``.
    """

    family: ClassVar[str]
    # A database that exists before ``database`` is created.
    _probe_database: ClassVar[str]
    host: str = _HOST
    admin_user: str = _ADMIN_USER

    def __init__(
        self,
        *,
        database: str = "app",
        settings: Mapping[str, str] | None = None,
        bindir: str | os.PathLike[str] | None = None,
        tempdir: str | os.PathLike[str] | None = None,
        start_timeout: Duration = 60.0,
        stop_timeout: Duration = 20.0,
    ) -> None:
        """Describe a server; nothing runs until ``start()``.

        Args:
            database: Name of a database created at start for tests to use.
            settings: Extra server settings, such as
                ``{"max_connections": "10"}``; they override the defaults.
            bindir: Folder holding the server binaries; by default they
                are looked up on PATH and in the usual install folders.
            tempdir: Folder to create the server's temporary folder in;
                the system's temporary folder by default. A memory-backed
                folder such as ``/dev/shm`` saves the server's disk syncs
                and makes MariaDB start about a second sooner.
            start_timeout: How long ``start()`` waits for the server.
            stop_timeout: How long ``stop()`` waits for a graceful shutdown
                before killing the server.

        Raises:
            ValueError: A setting name is not a plain identifier, or a
                duration is negative.
        """
        self.database = database
        self.admin_password = secrets.token_urlsafe(24)
        self.settings = _validated_settings(settings)
        self.bindir = Path(bindir) if bindir is not None else None
        self.tempdir = Path(tempdir) if tempdir is not None else None
        self.start_timeout = to_seconds(start_timeout, "start_timeout")
        self.stop_timeout = to_seconds(stop_timeout, "stop_timeout")

        self._lock = threading.RLock()
        self._owner_pid = os.getpid()
        self._port: int | None = None
        self._directory: Path | None = None
        self._socket_directory: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def __repr__(self) -> str:
        """Return a description without the admin password."""
        return (
            f"{type(self).__name__}(host={self.host!r}, "
            f"port={self._port!r}, admin_user={self.admin_user!r}, "
            f"database={self.database!r}, running={self.running!r})"
        )

    def __enter__(self: _S) -> _S:
        """Start the server and return it."""
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Stop the server and remove its folder."""
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def port(self) -> int:
        """The TCP port the server listens on.

        Raises:
            RuntimeError: The server has not been started.
        """
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} is not started")

        return self._port

    @property
    def directory(self) -> Path:
        """The temporary folder holding data, log and socket.

        Raises:
            RuntimeError: The server has not been started.
        """
        if self._directory is None:
            raise RuntimeError(f"{type(self).__name__} is not started")

        return self._directory

    @property
    def datadir(self) -> Path:
        """The server's data folder inside ``directory``."""
        return self.directory / "data"

    @property
    def log_path(self) -> Path:
        """The file receiving the server's and the initialiser's output."""
        return self.directory / "server.log"

    @property
    def socket_directory(self) -> Path:
        """A short folder for the server's unix socket."""
        if self._socket_directory is None:
            raise RuntimeError(f"{type(self).__name__} is not started")

        return self._socket_directory

    def start(self) -> None:
        """Initialise a fresh data folder and start the server.

        Blocks until the server accepts the admin over TCP, usually a few
        seconds, at most ``start_timeout`` per step. Does nothing if the
        server has already been started.

        Raises:
            ServerUnavailable: The server binaries are not installed.
            ServerStartError: Initialisation or start failed; the message
                ends with the tail of the server log.
        """
        with self._lock:
            if self._process is not None:
                return

            self._find_binaries()
            began = time.monotonic()
            try:
                self._prepare_directory()
                self._initialize()
                initialized = time.monotonic()
                self._launch()
                self._after_start()
            except BaseException:
                self._cleanup()
                raise

            atexit.register(self._stop_at_exit)
            logger.info(
                "Started %s on %s:%s in %.1f s (initialise %.1f s)",
                self.family,
                self.host,
                self._port,
                time.monotonic() - began,
                initialized - began,
            )

    def stop(self) -> None:
        """Shut the server down and delete its temporary folder.

        Asks for a graceful shutdown and kills the server if it has not
        ended within ``stop_timeout``. Safe to call again, or before
        ``start()``.
        """
        with self._lock:
            if self._directory is None and self._process is None:
                return

            atexit.unregister(self._stop_at_exit)
            self._cleanup()
            logger.info("Stopped %s server", self.family)

    def admin_connect(self, database: str | None = None) -> DBAPIConnection:
        """Open a connection as the admin, with autocommit on.

        Args:
            database: Database to connect to; ``self.database`` if None.

        Returns:
            A new driver connection the caller must close.
        """
        return self.connect(
            self.admin_user, self.admin_password, database=database
        )

    @abc.abstractmethod
    def connect(
        self,
        user: str,
        password: str,
        *,
        database: str | None = None,
        timeout: Duration = 10.0,
    ) -> DBAPIConnection:
        """Open a driver connection over TCP, with autocommit on.

        Args:
            user: Account to log in as.
            password: Its password.
            database: Database to connect to; ``self.database`` if None.
            timeout: How long to wait for the connection.

        Returns:
            A new driver connection the caller must close.

        Raises:
            pymysql.err.OperationalError: MariaDB refused the login
                (errno 1045 for a wrong password).
            psycopg.OperationalError: PostgreSQL refused the login.
        """

    @abc.abstractmethod
    def create_database(self, name: str) -> None:
        """Create a database.

        Args:
            name: Its name; any characters are quoted properly.
        """

    @abc.abstractmethod
    def drop_database(self, name: str) -> None:
        """Drop a database and everything in it, if it exists.

        Sessions connected to it are ended first where the server requires
        it (PostgreSQL).

        Args:
            name: Its name.
        """

    @abc.abstractmethod
    def create_user(
        self,
        name: str,
        password: str,
        database: str | None = None,
        *,
        like: str | None = None,
    ) -> None:
        """Create a user who can log in over TCP from 127.0.0.1.

        Args:
            name: The user name; any characters are quoted properly.
            password: Its password, which may contain any characters.
            database: A database the user gets full rights on, if any.
            like: An existing user whose tables the new one may use as its
                own, as the second user of an alternating-users rotation
                must.
        """

    @abc.abstractmethod
    def set_password(self, name: str, password: str) -> None:
        """Change a user's password.

        New logins need the new password at once; sessions already open
        stay open.

        Args:
            name: The user name.
            password: The new password.
        """

    @abc.abstractmethod
    def drop_user(self, name: str) -> None:
        """Remove a user if it exists; its open sessions are not ended.

        Args:
            name: The user name.
        """

    @abc.abstractmethod
    def count_sessions(self, name: str) -> int:
        """Return how many sessions a user has open.

        Args:
            name: The user name.

        Returns:
            The number of server sessions of that user.
        """

    @abc.abstractmethod
    def _kill_sessions(self, name: str) -> int:
        """Ask the server to end every session of a user; return how many."""

    def terminate_sessions(self, name: str, timeout: Duration = 10.0) -> int:
        """End every session of a user and wait until they are gone.

        Args:
            name: The user name.
            timeout: How long to wait for the sessions to disappear.

        Returns:
            How many sessions were asked to end.

        Raises:
            TimeoutError: Sessions were still open after ``timeout``.
        """
        killed = self._kill_sessions(name)
        wait = to_seconds(timeout, "timeout")
        deadline = time.monotonic() + wait
        while self.count_sessions(name) > 0:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"sessions of {name!r} still open after {wait:g} s"
                )

            time.sleep(_POLL_INTERVAL)

        logger.debug("Terminated %s sessions of %s", killed, name)
        return killed

    @abc.abstractmethod
    def _find_binaries(self) -> None:
        """Locate the server binaries or raise ServerUnavailable."""

    @abc.abstractmethod
    def _initialize(self) -> None:
        """Create the data folder and the admin account."""

    @abc.abstractmethod
    def _server_command(self, port: int) -> list[str]:
        """Return the command line that runs the server on ``port``."""

    @property
    @abc.abstractmethod
    def _stop_signals(self) -> Sequence[signal.Signals]:
        """Signals asking for a graceful, then a quicker shutdown."""

    def _after_start(self) -> None:  # noqa: B027 (optional hook)
        """Prepare the running server; by default nothing is needed."""

    def _process_options(self) -> dict[str, Any]:
        """Return extra ``subprocess`` options for the server's commands."""
        return {}

    def _prepare_directory(self) -> None:
        """Create the temporary folder, the socket folder and the log."""
        directory = Path(
            tempfile.mkdtemp(
                prefix=f"rotsafe-{self.family}-", dir=self.tempdir
            )
        )
        self._directory = directory
        self._socket_directory = directory
        if len(str(directory)) > _MAX_SOCKET_DIR_LENGTH:
            # mkdtemp makes a private folder, so a fixed parent is safe.
            short = tempfile.mkdtemp(prefix="rs-", dir="/tmp")
            self._socket_directory = Path(short)

        self._log = self.log_path.open("ab")

    @property
    def _log_file(self) -> IO[bytes]:
        """The open server log, which exists between start and stop."""
        if self._log is None:
            raise RuntimeError(f"{type(self).__name__} is not started")

        return self._log

    def _run(self, command: list[str], what: str) -> None:
        """Run an initialisation command with its output in the log.

        Raises:
            ServerStartError: The command failed or took too long.
        """
        log = self._log_file
        logger.debug("Running %s for %s", Path(command[0]).name, self.family)
        start = log.tell()
        try:
            result = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=self.start_timeout,
                check=False,
                cwd=self.directory,
                **self._process_options(),
            )
        except subprocess.TimeoutExpired as exc:
            raise self._start_error(f"{what} timed out", start) from exc

        if result.returncode != 0:
            raise self._start_error(
                f"{what} failed with exit code {result.returncode}", start
            )

    def _launch(self) -> None:
        """Start the server process and wait until it accepts the admin.

        Retries on a new port when another process took the chosen one
        between probing and binding.
        """
        log = self._log_file
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            port = _free_port()
            start = log.tell()
            self._port = port
            self._process = process = subprocess.Popen(
                self._server_command(port),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                start_new_session=True,
                **self._process_options(),
            )
            try:
                self._wait_until_ready(process)
            except _Exited as exc:
                self._process = None
                tail = _tail(self.log_path, start)
                if "already in use" in tail and attempt < _PORT_ATTEMPTS:
                    logger.debug("Port %s was taken, trying another", port)
                    continue

                raise self._start_error(str(exc), start) from None
            except TimeoutError as exc:
                raise self._start_error(str(exc), start) from None

            return

    def _wait_until_ready(self, process: subprocess.Popen[bytes]) -> None:
        """Poll until the admin can log in.

        Raises:
            _Exited: The server process ended.
            TimeoutError: ``start_timeout`` passed first.
        """
        deadline = time.monotonic() + self.start_timeout
        while True:
            code = process.poll()
            if code is not None:
                raise _Exited(f"server exited with code {code} during start")

            try:
                connection = self.connect(
                    self.admin_user,
                    self.admin_password,
                    database=self._probe_database,
                    timeout=2.0,
                )
            except (pymysql.err.OperationalError, psycopg.OperationalError):
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        "server did not accept connections within "
                        f"{self.start_timeout:g} s"
                    ) from None

                time.sleep(_POLL_INTERVAL)
                continue

            connection.close()
            return

    def _start_error(self, what: str, log_offset: int) -> ServerStartError:
        """Return an exception naming what failed plus the log's tail."""
        tail = _tail(self.log_path, log_offset)
        return ServerStartError(
            f"{self.family} test server: {what}. "
            f"Last lines of its log:\n{tail}"
        )

    def _stop_at_exit(self) -> None:
        """Stop the server when the interpreter exits, in its owner only."""
        if os.getpid() == self._owner_pid:
            self.stop()

    def _cleanup(self) -> None:
        """End the process, close the log and delete the folders."""
        if self._process is not None:
            self._terminate(self._process)
            self._process = None

        if self._log is not None:
            self._log.close()
            self._log = None

        for folder in {self._socket_directory, self._directory}:
            if folder is not None:
                self._remove(folder)

        self._directory = None
        self._socket_directory = None
        self._port = None

    def _terminate(self, process: subprocess.Popen[bytes]) -> None:
        """Ask the process to shut down, escalating to SIGKILL."""
        signals = list(self._stop_signals)
        wait = self.stop_timeout / len(signals)
        for number in signals:
            if process.poll() is not None:
                return

            process.send_signal(number)
            try:
                process.wait(wait)
            except subprocess.TimeoutExpired:
                logger.warning(
                    "%s server ignored %s for %.1f s",
                    self.family,
                    number.name,
                    wait,
                )
            else:
                return

        # The server runs in its own session; kill its helpers as well.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

        process.wait()

    def _remove(self, folder: Path) -> None:
        """Delete a folder, logging rather than raising on failure."""
        try:
            shutil.rmtree(folder)
        except FileNotFoundError:
            pass
        except OSError:
            logger.exception("Could not remove test server folder %s", folder)


def _mysql_identifier(name: str) -> str:
    """Quote a MariaDB identifier with backticks."""
    if "\x00" in name:
        raise ValueError("identifiers cannot contain NUL")

    return "`" + name.replace("`", "``") + "`"


def _mysql_grant_database(name: str) -> str:
    """Quote a database name for GRANT, where ``_`` and ``%`` are wildcards."""
    escaped = (
        name.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%")
    )
    return _mysql_identifier(escaped)


def _mysql_string(value: str) -> str:
    """Quote a MariaDB string literal for a file run without a driver."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


class MariaDBServer(DatabaseServer):
    """A private MariaDB server with small buffers and no binary log.

    Users are created for host ``'%'`` with MariaDB's normal password
    authentication; the admin connection uses PyMySQL.
    """

    family: ClassVar[str] = "mysql"
    _probe_database: ClassVar[str] = "mysql"

    _install_db: Path
    _mariadbd: Path

    @property
    def _stop_signals(self) -> Sequence[signal.Signals]:
        """SIGTERM makes MariaDB shut down cleanly."""
        return (signal.SIGTERM,)

    def connect(
        self,
        user: str,
        password: str,
        *,
        database: str | None = None,
        timeout: Duration = 10.0,
    ) -> pymysql.connections.Connection:
        """Open a PyMySQL connection over TCP, with autocommit on.

        Args:
            user: Account to log in as.
            password: Its password.
            database: Database to connect to; ``self.database`` if None.
            timeout: How long to wait for the connection.

        Returns:
            A new PyMySQL connection the caller must close.

        Raises:
            pymysql.err.OperationalError: The login was refused (errno
                1045 for a wrong password) or the server is unreachable.
        """
        return pymysql.connect(
            host=self.host,
            port=self.port,
            user=user,
            # PyMySQL encodes a text password as Latin-1; the server hashes
            # its UTF-8 bytes.
            password=password.encode("utf-8"),
            database=self.database if database is None else database,
            autocommit=True,
            connect_timeout=to_seconds(timeout, "timeout"),
            charset="utf8mb4",
        )

    def create_database(self, name: str) -> None:
        """Create a database.

        Args:
            name: Its name; any characters are quoted properly.
        """
        self._execute(f"CREATE DATABASE {_mysql_identifier(name)}")

    def drop_database(self, name: str) -> None:
        """Drop a database and everything in it, if it exists.

        Args:
            name: Its name.
        """
        self._execute(f"DROP DATABASE IF EXISTS {_mysql_identifier(name)}")

    def create_user(
        self,
        name: str,
        password: str,
        database: str | None = None,
        *,
        like: str | None = None,
    ) -> None:
        """Create a user who can log in over TCP from any host.

        Args:
            name: The user name; any characters are quoted properly.
            password: Its password, which may contain any characters.
            database: A database the user gets all rights on, if any.
            like: Needs nothing more here: MariaDB grants rights on a
                database, not through who made a table, so two users with
                rights on one database share its tables.
        """
        self._execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (name, password))
        if database is not None:
            target = _mysql_grant_database(database)
            self._execute(f"GRANT ALL ON {target}.* TO %s@'%%'", (name,))

    def set_password(self, name: str, password: str) -> None:
        """Change a user's password for new logins; open sessions stay.

        Args:
            name: The user name.
            password: The new password.
        """
        self._execute("ALTER USER %s@'%%' IDENTIFIED BY %s", (name, password))

    def drop_user(self, name: str) -> None:
        """Remove a user if it exists; its open sessions are not ended.

        Args:
            name: The user name.
        """
        self._execute("DROP USER IF EXISTS %s@'%%'", (name,))

    def count_sessions(self, name: str) -> int:
        """Return how many sessions a user has open.

        Args:
            name: The user name.

        Returns:
            The number of server sessions of that user.
        """
        rows = self._execute(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST"
            " WHERE USER = %s",
            (name,),
        )
        return int(rows[0][0])

    def _kill_sessions(self, name: str) -> int:
        """Kill every connection of a user; return how many were killed."""
        rows = self._execute(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s",
            (name,),
        )
        killed = 0
        for (session_id,) in rows:
            try:
                self._execute("KILL CONNECTION %s", (int(session_id),))
            except pymysql.err.MySQLError as exc:
                if exc.args[0] != _ER_NO_SUCH_THREAD:
                    raise
            else:
                killed += 1

        return killed

    def _execute(
        self, query: str, args: Sequence[object] = ()
    ) -> list[tuple[Any, ...]]:
        """Run one statement as the admin and return its rows."""
        connection = self.admin_connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute(query, args or None)
                return list(cursor.fetchall())
        finally:
            connection.close()

    def _find_binaries(self) -> None:
        """Locate mariadb-install-db and mariadbd.

        Raises:
            ServerUnavailable: Either is missing.
        """
        search = [self.bindir] if self.bindir is not None else None
        install = _which("mariadb-install-db", search) or _which(
            "mysql_install_db", search
        )
        server = _which("mariadbd", search) or _which("mysqld", search)
        if install is None or server is None:
            raise ServerUnavailable(
                "MariaDB server binaries (mariadb-install-db and mariadbd) "
                "were not found on PATH, /usr/sbin or /usr/libexec; install "
                "them, on Debian or Ubuntu with "
                "'apt-get install mariadb-server'."
            )

        self._install_db = install
        self._mariadbd = server

    def _common_options(self) -> list[str]:
        """Return the options shared by the installer and the server."""
        options = [
            "--no-defaults",
            f"--datadir={self.datadir}",
            f"--tmpdir={self.directory}",
            "--innodb-buffer-pool-size=32M",
            "--innodb-log-file-size=16M",
            "--skip-log-bin",
            "--skip-name-resolve",
            # Durability is worthless for a throwaway server.
            "--innodb-flush-log-at-trx-commit=0",
            "--innodb-doublewrite=0",
        ]
        if os.geteuid() == 0:
            options.append("--user=root")

        return options

    def _initialize(self) -> None:
        """Install the system tables, the admin and the default database."""
        setup = self.directory / "setup.sql"
        _write_private(
            setup,
            # Bootstrap runs without grant tables until they are loaded.
            "FLUSH PRIVILEGES;\n"
            f"CREATE USER {_mysql_string(self.admin_user)}@'%' "
            f"IDENTIFIED BY {_mysql_string(self.admin_password)};\n"
            "GRANT ALL PRIVILEGES ON *.* TO "
            f"{_mysql_string(self.admin_user)}@'%' WITH GRANT OPTION;\n"
            f"CREATE DATABASE {_mysql_identifier(self.database)};\n",
        )
        try:
            self._run(
                [
                    str(self._install_db),
                    *self._common_options(),
                    "--auth-root-authentication-method=socket",
                    "--skip-test-db",
                    f"--extra-file={setup}",
                ],
                "mariadb-install-db",
            )
        finally:
            setup.unlink()

    def _server_command(self, port: int) -> list[str]:
        """Return the mariadbd command line for ``port``."""
        extra = [f"--{key}={value}" for key, value in self.settings.items()]
        return [
            str(self._mariadbd),
            *self._common_options(),
            f"--bind-address={self.host}",
            f"--port={port}",
            f"--socket={self.socket_directory / 'mysqld.sock'}",
            f"--pid-file={self.directory / 'mariadbd.pid'}",
            f"--log-error={self.log_path}",
            "--max-connections=500",
            "--character-set-server=utf8mb4",
            *extra,
        ]


def _postgres_bindir(bindir: Path | None) -> Path:
    """Return the folder holding initdb and postgres.

    Raises:
        ServerUnavailable: No folder holds both.
    """
    candidates: list[Path] = []
    if bindir is not None:
        candidates.append(bindir)
    else:
        for name in ("initdb", "pg_ctl"):
            found = shutil.which(name)
            if found is not None:
                candidates.append(Path(found).resolve().parent)

        pg_config = shutil.which("pg_config")
        if pg_config is not None:
            result = subprocess.run(
                [pg_config, "--bindir"],
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode == 0 and result.stdout.strip():
                candidates.append(Path(result.stdout.strip()))

        installed = Path("/usr/lib/postgresql").glob("*/bin")
        candidates.extend(sorted(installed, key=_version_key, reverse=True))

    for candidate in candidates:
        if (candidate / "initdb").is_file() and (
            candidate / "postgres"
        ).is_file():
            return candidate

    raise ServerUnavailable(
        "PostgreSQL server binaries (initdb and postgres) were not found on "
        "PATH, through pg_config or under /usr/lib/postgresql; install them, "
        "on Debian or Ubuntu with 'apt-get install postgresql'."
    )


def _version_key(path: Path) -> tuple[int, ...]:
    """Sort /usr/lib/postgresql/<version>/bin folders by version."""
    return tuple(int(part) for part in re.findall(r"\d+", path.parent.name))


def _pg_setting(value: str) -> str:
    """Quote a value for postgresql.conf."""
    escaped = value.replace("\\", "\\\\").replace("'", "''")
    return f"'{escaped}'"


_PG_HBA = """\
# Written by rotsafe.testing: every login needs its password.
local all all scram-sha-256
{tcp} all all 127.0.0.1/32 scram-sha-256
"""


def _write_self_signed_certificate(key_path: Path, cert_path: Path) -> None:
    """Write a throwaway TLS key and certificate for 127.0.0.1."""
    from cryptography import x509  # noqa: PLC0415 - only for a TLS server
    from cryptography.hazmat.primitives import (  # noqa: PLC0415
        hashes,
        serialization,
    )
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import NameOID  # noqa: PLC0415

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _HOST)])
    now = datetime.now(timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=7))
        .sign(key, hashes.SHA256())
    )
    _write_private(
        key_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii"),
    )
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


class PostgresServer(DatabaseServer):
    """A private PostgreSQL server tuned for speed over durability.

    Every login, over TCP or the unix socket, needs a SCRAM-SHA-256
    password. When run as root, the server runs as the ``postgres``
    account (else ``nobody``), since PostgreSQL refuses to run as root.
    """

    family: ClassVar[str] = "postgresql"
    _probe_database: ClassVar[str] = "postgres"

    _bin: Path
    _account: pwd.struct_passwd | None = None

    def __init__(self, *, tls_only: bool = False, **options: Any) -> None:
        """Describe a server; nothing runs until ``start()``.

        Args:
            tls_only: Serve TLS with a throwaway self-signed certificate
                and refuse plain-text logins over TCP, as an RDS instance
                with ``rds.force_ssl`` does. Needs the ``cryptography``
                package.
            options: As for :class:`DatabaseServer`.
        """
        super().__init__(**options)
        self.tls_only = tls_only

    @property
    def _stop_signals(self) -> Sequence[signal.Signals]:
        """SIGINT is a fast shutdown, SIGQUIT an immediate one."""
        return (signal.SIGINT, signal.SIGQUIT)

    def connect(
        self,
        user: str,
        password: str,
        *,
        database: str | None = None,
        timeout: Duration = 10.0,
    ) -> psycopg.Connection[tuple[Any, ...]]:
        """Open a psycopg connection over TCP, with autocommit on.

        Args:
            user: Account to log in as.
            password: Its password.
            database: Database to connect to; ``self.database`` if None.
            timeout: How long to wait for the connection; libpq waits
                at least 2 s.

        Returns:
            A new psycopg connection the caller must close.

        Raises:
            psycopg.OperationalError: The login was refused (the message
                says "password authentication failed" for a wrong
                password) or the server is unreachable.
        """
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=user,
            password=password,
            dbname=self.database if database is None else database,
            autocommit=True,
            connect_timeout=max(2, round(to_seconds(timeout, "timeout"))),
        )

    def create_database(self, name: str) -> None:
        """Create a database owned by the admin.

        Args:
            name: Its name; any characters are quoted properly.
        """
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        self._execute(query)

    def drop_database(self, name: str) -> None:
        """Drop a database and everything in it, ending its sessions first.

        Args:
            name: Its name.
        """
        self._execute(
            sql.SQL(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()"
            ),
            (name,),
        )
        self._execute(
            sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name))
        )

    def create_user(
        self,
        name: str,
        password: str,
        database: str | None = None,
        *,
        like: str | None = None,
    ) -> None:
        """Create a user who can log in with a password.

        Args:
            name: The user name; any characters are quoted properly.
            password: Its password, which may contain any characters.
            database: A database the user gets all rights on, including
                its ``public`` schema, if any.
            like: An existing user the new one becomes a member of, so that
                it may use that user's tables as their owner.
        """
        role = sql.Identifier(name)
        self._execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                role, sql.Literal(password)
            )
        )
        if like is not None:
            self._execute(
                sql.SQL("GRANT {} TO {}").format(sql.Identifier(like), role)
            )
        if database is not None:
            self._execute(
                sql.SQL("GRANT ALL ON DATABASE {} TO {}").format(
                    sql.Identifier(database), role
                )
            )
            self._execute(
                sql.SQL("GRANT ALL ON SCHEMA public TO {}").format(role),
                database=database,
            )

    def set_password(self, name: str, password: str) -> None:
        """Change a user's password for new logins; open sessions stay.

        Args:
            name: The user name.
            password: The new password.
        """
        self._execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(name), sql.Literal(password)
            )
        )

    def drop_user(self, name: str) -> None:
        """Remove a user, what it owns and its grants; sessions stay open.

        Args:
            name: The user name.
        """
        exists = self._execute(
            sql.SQL("SELECT 1 FROM pg_roles WHERE rolname = %s"), (name,)
        )
        if not exists:
            return

        role = sql.Identifier(name)
        databases = self._execute(
            sql.SQL(
                "SELECT datname FROM pg_database"
                " WHERE datallowconn AND NOT datistemplate"
            )
        )
        for (database,) in databases:
            self._execute(
                sql.SQL("DROP OWNED BY {}").format(role), database=database
            )

        self._execute(sql.SQL("DROP ROLE {}").format(role))

    def count_sessions(self, name: str) -> int:
        """Return how many sessions a user has open.

        Args:
            name: The user name.

        Returns:
            The number of server sessions of that user.
        """
        rows = self._execute(
            sql.SQL(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = %s"
            ),
            (name,),
        )
        return int(rows[0][0])

    def _kill_sessions(self, name: str) -> int:
        """Terminate every backend of a user; return how many were hit."""
        rows = self._execute(
            sql.SQL(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))"
                " FROM pg_stat_activity"
                " WHERE usename = %s AND pid <> pg_backend_pid()"
            ),
            (name,),
        )
        return int(rows[0][0])

    def _execute(
        self,
        query: sql.SQL | sql.Composed,
        args: Sequence[object] = (),
        *,
        database: str | None = None,
    ) -> list[tuple[Any, ...]]:
        """Run one statement as the admin and return its rows, if any."""
        with (
            self.admin_connect(database) as connection,
            connection.cursor() as cursor,
        ):
            cursor.execute(query, args or None)
            if cursor.description is None:
                return []

            return cursor.fetchall()

    def admin_connect(
        self, database: str | None = None
    ) -> psycopg.Connection[tuple[Any, ...]]:
        """Open a psycopg connection as the admin, with autocommit on.

        Args:
            database: Database to connect to; ``self.database`` if None.

        Returns:
            A new psycopg connection the caller must close.
        """
        return self.connect(
            self.admin_user, self.admin_password, database=database
        )

    def _find_binaries(self) -> None:
        """Locate initdb and postgres, and the account to run them as.

        Raises:
            ServerUnavailable: They are missing, or no account fits.
        """
        self._bin = _postgres_bindir(self.bindir)
        self._account = _unprivileged_user()

    def _process_options(self) -> dict[str, Any]:
        """Run as the unprivileged account when started as root."""
        if self._account is None:
            return {}

        return {
            "user": self._account.pw_uid,
            "group": self._account.pw_gid,
            "extra_groups": [],
        }

    def _prepare_directory(self) -> None:
        """Create the folders and hand them to the server's account."""
        super()._prepare_directory()
        if self._account is not None:
            for folder in {self.directory, self.socket_directory}:
                os.chown(folder, self._account.pw_uid, self._account.pw_gid)

    def _initialize(self) -> None:
        """Run initdb, then write the settings and pg_hba.conf."""
        password_file = self.directory / "admin-password"
        _write_private(password_file, self.admin_password + "\n")
        if self._account is not None:
            os.chown(password_file, self._account.pw_uid, self._account.pw_gid)

        try:
            self._run(
                [
                    str(self._bin / "initdb"),
                    f"--pgdata={self.datadir}",
                    f"--username={self.admin_user}",
                    f"--pwfile={password_file}",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                ],
                "initdb",
            )
        finally:
            password_file.unlink()

        settings = {
            "listen_addresses": self.host,
            "unix_socket_directories": str(self.socket_directory),
            "password_encryption": "scram-sha-256",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "300",
            "shared_buffers": "32MB",
            "logging_collector": "off",
            "timezone": "UTC",
            **self.settings,
        }
        if self.tls_only:
            settings.update(
                ssl="on", ssl_cert_file="server.crt", ssl_key_file="server.key"
            )
            key_path = self.datadir / "server.key"
            cert_path = self.datadir / "server.crt"
            _write_self_signed_certificate(key_path, cert_path)
            if self._account is not None:
                for path in (key_path, cert_path):
                    os.chown(path, self._account.pw_uid, self._account.pw_gid)
        lines = [f"{key} = {_pg_setting(v)}" for key, v in settings.items()]
        with (self.datadir / "postgresql.conf").open("a") as conf:
            conf.write("\n# rotsafe.testing\n" + "\n".join(lines) + "\n")

        tcp = "hostssl" if self.tls_only else "host"
        (self.datadir / "pg_hba.conf").write_text(_PG_HBA.format(tcp=tcp))

    def _server_command(self, port: int) -> list[str]:
        """Return the postgres command line for ``port``."""
        return [
            str(self._bin / "postgres"),
            "-D",
            str(self.datadir),
            "-p",
            str(port),
        ]

    def _after_start(self) -> None:
        """Create the default database unless it exists already."""
        with self.connect(
            self.admin_user, self.admin_password, database="postgres"
        ) as connection:
            exists = connection.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s",
                (self.database,),
            ).fetchone()
            if exists is None:
                connection.execute(
                    sql.SQL("CREATE DATABASE {}").format(
                        sql.Identifier(self.database)
                    )
                )

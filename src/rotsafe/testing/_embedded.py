"""A throwaway PostgreSQL that needs no system install: pgserver's binaries.

The ``pgserver`` package ships PostgreSQL's binaries in a wheel. This server
runs them the way :class:`PostgresServer` runs the system's: a private
folder, SCRAM passwords for every login, TCP on 127.0.0.1 only.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import subprocess
from pathlib import Path
from typing import ClassVar

from rotsafe.testing._servers import PostgresServer, ServerUnavailable

logger = logging.getLogger(__name__)

_VERSION_TIMEOUT = 10.0


def pgserver_bindir() -> Path:
    """Return the folder of PostgreSQL binaries that pgserver installed.

    The package is located, not imported: importing it sets up pgserver's
    own server management, which rotsafe does not use.

    Raises:
        ServerUnavailable: pgserver is not installed, or holds no server.
    """
    spec = importlib.util.find_spec("pgserver")
    locations = spec.submodule_search_locations if spec else None
    if not locations:
        raise ServerUnavailable(
            "the embedded PostgreSQL needs the pgserver package: "
            "pip install 'rotsafe[drill]'"
        )

    bindir = Path(next(iter(locations))) / "pginstall" / "bin"
    if not (bindir / "postgres").is_file():
        raise ServerUnavailable(
            f"pgserver is installed but {bindir} holds no postgres binary; "
            "reinstall it: pip install --force-reinstall pgserver"
        )

    return bindir


class EmbeddedPostgresServer(PostgresServer):
    """A private PostgreSQL server run from pgserver's binaries.

    It behaves as :class:`PostgresServer` does (a fresh folder, SCRAM
    passwords over TCP on 127.0.0.1, a random admin password, everything
    removed by ``stop()``) and starts in about a second, with nothing
    installed but ``pip install 'rotsafe[drill]'``. pgserver's own server
    management, which trusts every local login, is not used.

    Run as root, the server runs as the ``postgres`` account (else
    ``nobody``); when that account cannot read the virtual environment,
    each start copies the binaries (about 30 MB) into the server's folder.
    """

    family: ClassVar[str] = "postgresql"

    _copy_from: Path | None = None

    def _find_binaries(self) -> None:
        """Locate pgserver's binaries and check the server account runs them.

        Raises:
            ServerUnavailable: pgserver is not installed.
        """
        if self.bindir is None:
            self.bindir = pgserver_bindir()

        super()._find_binaries()
        self._copy_from = None
        if self._account is not None and not self._runs():
            # A virtual environment in root's home, say: the server's
            # account cannot reach it, so each start copies the binaries.
            self._copy_from = self._bin.parent

    def _prepare_directory(self) -> None:
        """Create the folders, and copy the binaries there if need be.

        Raises:
            ServerUnavailable: The server's account cannot run even the
                copied binaries.
        """
        super()._prepare_directory()
        if self._copy_from is None:
            return

        # The wheel's binaries find its shared libraries through an RPATH
        # of $ORIGIN/../../../pgserver.libs: the layout is kept.
        target = self.directory / "pgserver" / "pginstall"
        logger.debug("Copying %s to %s", self._copy_from, target)
        shutil.copytree(
            self._copy_from, target, ignore=shutil.ignore_patterns("include")
        )
        libraries = self._copy_from.parent.parent / "pgserver.libs"
        if libraries.is_dir():
            shutil.copytree(libraries, self.directory / "pgserver.libs")
        self._bin = target / "bin"
        if not self._runs():
            assert self._account is not None  # noqa: S101 - set when copying
            raise ServerUnavailable(
                "PostgreSQL refuses to run as root, and the "
                f"{self._account.pw_name!r} account cannot run pgserver's "
                f"binaries even from {target}; run as an ordinary user."
            )

    def _runs(self) -> bool:
        """Return whether the server's account can run ``postgres``."""
        try:
            subprocess.run(
                [str(self._bin / "postgres"), "--version"],
                capture_output=True,
                check=True,
                timeout=_VERSION_TIMEOUT,
                **self._process_options(),
            )
        except (OSError, subprocess.SubprocessError):
            return False
        return True

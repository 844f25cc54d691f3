"""A throwaway PostgreSQL that needs no system install: pgserver's binaries.

The ``pgserver`` package ships PostgreSQL's binaries in a wheel. This server
runs them the way :class:`PostgresServer` runs the system's: a private
folder, SCRAM passwords for every login, TCP on 127.0.0.1 only.
"""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path
from typing import ClassVar

from rotsafe.testing._servers import PostgresServer, ServerUnavailable

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
    ``nobody``), which must be able to read the virtual environment.
    """

    family: ClassVar[str] = "postgresql"

    def _find_binaries(self) -> None:
        """Locate pgserver's binaries and check the server account runs them.

        Raises:
            ServerUnavailable: pgserver is missing, or the account that
                runs the server cannot read its binaries.
        """
        if self.bindir is None:
            self.bindir = pgserver_bindir()

        super()._find_binaries()
        if self._account is None:
            return

        try:
            subprocess.run(
                [str(self._bin / "postgres"), "--version"],
                capture_output=True,
                check=True,
                timeout=_VERSION_TIMEOUT,
                **self._process_options(),
            )
        except (OSError, subprocess.SubprocessError):
            raise ServerUnavailable(
                "PostgreSQL refuses to run as root, and the "
                f"{self._account.pw_name!r} account cannot run the binaries "
                f"in {self._bin}; install rotsafe in a folder every account "
                "can read, or run as an ordinary user."
            ) from None

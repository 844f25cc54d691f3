"""The public namespaces: complete, sorted, and importable without extras."""

from __future__ import annotations

import importlib.metadata
import pickle
import subprocess
import sys
import types

import pytest

import rotsafe
import rotsafe.testing


@pytest.mark.parametrize("module", [rotsafe, rotsafe.testing])
def test_all_lists_every_public_name(module: types.ModuleType):
    """__all__ is sorted and names exactly the public attributes."""
    public = {
        name
        for name in dir(module)
        if not name.startswith("_")
        and not isinstance(getattr(module, name), types.ModuleType)
        and name not in {"annotations", "importlib", "TYPE_CHECKING", "Any"}
    }
    # Sorted as ruff sorts it: constants, then classes, then functions.
    assert module.__all__ == sorted(
        module.__all__,
        key=lambda name: (not name.isupper(), not name[0].isupper(), name),
    )
    assert public <= set(module.__all__)
    for name in module.__all__:
        assert getattr(module, name) is not None


def test_version_comes_from_the_package_metadata():
    """__version__ is the installed distribution's version."""
    assert rotsafe.__version__ == importlib.metadata.version("rotsafe")


def test_importing_needs_no_driver_and_no_moto():
    """rotsafe and rotsafe.testing import without drivers, moto or boto3."""
    code = (
        "import sys\n"
        "for name in ('pymysql', 'psycopg', 'moto', 'boto3'):\n"
        "    sys.modules[name] = None\n"
        "import rotsafe, rotsafe.testing, rotsafe.testing.plugin\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.stdout.strip() == "ok", done.stderr


@pytest.mark.parametrize(
    "error",
    [
        rotsafe.SecretFormatError(
            "prod/app/db",
            "port",
            "'port' is not a TCP port number",
            stage="AWSPENDING",
            version_id="v2",
        ),
        rotsafe.SecretFormatError(
            "prod/app/db",
            "engine",
            "'engine' is a mysql engine",
            remedy="Attach the secret to a mysql engine",
        ),
        rotsafe.SecretUnavailable("prod/app/db", "AWSCURRENT", "throttled"),
        rotsafe.CredentialsRejected(
            "prod/app/db",
            [("AWSCURRENT", "v1"), ("AWSPENDING", None)],
            30.0,
            secrets_manager_error="AWSPREVIOUS: access denied",
        ),
        rotsafe.ConnectionSetupError(
            "prod/app/db", rotsafe.ErrorKind.HOST_BLOCKED, "check pg_hba.conf"
        ),
    ],
    ids=lambda error: type(error).__name__,
)
def test_errors_cross_process_boundaries_whole(error: rotsafe.RotsafeError):
    """A pickled error (a worker process's, say) keeps message and fields."""
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes

    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert vars(copy) == vars(error)

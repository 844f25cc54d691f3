"""The public namespaces: complete, sorted, and importable without extras."""

from __future__ import annotations

import importlib.metadata
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

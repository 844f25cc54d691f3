"""Tools for testing code that uses rotsafe: fakes, servers, rotations.

The fakes need nothing beyond rotsafe. The servers, the local Secrets
Manager and the rotation harness need the ``testing`` extra (moto and both
drivers) and are imported on first use; the embedded PostgreSQL needs the
``drill`` extra (pgserver).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from rotsafe.testing._fakes import (
    DelayedSource,
    ManualClock,
    MemorySource,
    no_waits,
)

if TYPE_CHECKING:
    from rotsafe.testing._embedded import EmbeddedPostgresServer
    from rotsafe.testing._harness import CallCounter, RotationHarness
    from rotsafe.testing._load import Load, LoadResult, Operation
    from rotsafe.testing._moto import SecretsManagerServer
    from rotsafe.testing._rotation import (
        STRATEGIES,
        RotationRecord,
        Rotator,
        Step,
        new_password,
    )
    from rotsafe.testing._servers import (
        DatabaseServer,
        MariaDBServer,
        PostgresServer,
        ServerStartError,
        ServerUnavailable,
    )

__all__ = [
    "STRATEGIES",
    "CallCounter",
    "DatabaseServer",
    "DelayedSource",
    "EmbeddedPostgresServer",
    "Load",
    "LoadResult",
    "ManualClock",
    "MariaDBServer",
    "MemorySource",
    "Operation",
    "PostgresServer",
    "RotationHarness",
    "RotationRecord",
    "Rotator",
    "SecretsManagerServer",
    "ServerStartError",
    "ServerUnavailable",
    "Step",
    "new_password",
    "no_waits",
]

_LAZY = {
    "EmbeddedPostgresServer": "_embedded",
    "CallCounter": "_harness",
    "RotationHarness": "_harness",
    "Load": "_load",
    "LoadResult": "_load",
    "Operation": "_load",
    "SecretsManagerServer": "_moto",
    "STRATEGIES": "_rotation",
    "RotationRecord": "_rotation",
    "Rotator": "_rotation",
    "Step": "_rotation",
    "new_password": "_rotation",
    "DatabaseServer": "_servers",
    "MariaDBServer": "_servers",
    "PostgresServer": "_servers",
    "ServerStartError": "_servers",
    "ServerUnavailable": "_servers",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)

"""rotsafe: database connections that survive Secrets Manager rotation."""

from __future__ import annotations

from typing import Any

from rotsafe._classify import ErrorKind, classify, is_auth_error
from rotsafe._connect import (
    AsyncConnector,
    Connector,
    aconnect_with,
    async_creator,
    connect_with,
    creator,
)
from rotsafe._credentials import Credentials
from rotsafe._errors import (
    ConnectionSetupError,
    CredentialsRejected,
    RotsafeError,
    SecretFormatError,
    SecretUnavailable,
)
from rotsafe._retry import retry_on_auth_error
from rotsafe._secret import RotatingSecret, Rotation
from rotsafe._sources import (
    AWSCURRENT,
    AWSPENDING,
    AWSPREVIOUS,
    BotoSource,
    SecretCacheSource,
    SecretSource,
    SecretVersion,
)
from rotsafe._sqlalchemy import (
    ORIGIN_KEY,
    Attachment,
    ConnectionOrigin,
    attach,
)

__all__ = [
    "AWSCURRENT",
    "AWSPENDING",
    "AWSPREVIOUS",
    "ORIGIN_KEY",
    "AsyncConnector",
    "Attachment",
    "BotoSource",
    "ConnectionOrigin",
    "ConnectionSetupError",
    "Connector",
    "Credentials",
    "CredentialsRejected",
    "ErrorKind",
    "RotatingSecret",
    "Rotation",
    "RotsafeError",
    "SecretCacheSource",
    "SecretFormatError",
    "SecretSource",
    "SecretUnavailable",
    "SecretVersion",
    "aconnect_with",
    "async_creator",
    "attach",
    "classify",
    "connect_with",
    "creator",
    "is_auth_error",
    "retry_on_auth_error",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import version  # noqa: PLC0415

        return version("rotsafe")
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)

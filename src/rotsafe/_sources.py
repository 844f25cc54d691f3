"""Where secret values come from: boto3's GetSecretValue, or a SecretCache.

A source reads one staging label of one secret and turns every AWS failure
into :class:`~rotsafe.SecretUnavailable` with advice on what to fix.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ReadTimeoutError,
)

from rotsafe._errors import SecretFormatError, SecretUnavailable
from rotsafe._redact import redact_botocore_logs

if TYPE_CHECKING:
    from aws_secretsmanager_caching import SecretCache

logger = logging.getLogger("rotsafe.source")

# Before any client exists: botocore logs secret values at DEBUG.
redact_botocore_logs()

AWSCURRENT = "AWSCURRENT"
AWSPENDING = "AWSPENDING"
AWSPREVIOUS = "AWSPREVIOUS"

# Short timeouts and two attempts in all: a forced refresh runs in a
# caller's thread, so a Secrets Manager outage must cost it seconds.
DEFAULT_CLIENT_CONFIG = Config(
    connect_timeout=2,
    read_timeout=3,
    retries={"mode": "standard", "total_max_attempts": 2},
)

# boto3's default session is not safe to make clients from concurrently.
_CLIENT_LOCK = threading.Lock()


def _renew_client_lock() -> None:
    """A forked child must not wait for a client its parent was making."""
    global _CLIENT_LOCK  # noqa: PLW0603 - renewed in the child
    _CLIENT_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_renew_client_lock)

_ADVICE = {
    "AccessDeniedException": (
        "access denied: the caller needs secretsmanager:GetSecretValue on "
        "the secret, and kms:Decrypt on its key"
    ),
    "DecryptionFailure": (
        "KMS could not decrypt the value: the caller needs kms:Decrypt on "
        "the secret's key"
    ),
    "InvalidRequestException": (
        "Secrets Manager refused the request; a secret scheduled for "
        "deletion cannot be read until it is restored"
    ),
    "ThrottlingException": (
        "Secrets Manager is throttling this account's requests; a longer "
        "ttl makes fewer calls"
    ),
    "InternalServiceError": "Secrets Manager failed internally; retry later",
}


@dataclass(frozen=True)
class SecretVersion:
    """One version of a secret, as a source returned it.

    Attributes:
        value: ``SecretString``, or the ``SecretBinary`` bytes.
        version_id: The version's id, when the source reports it.
    """

    value: str | bytes
    version_id: str | None

    def __repr__(self) -> str:
        return f"SecretVersion(value=<hidden>, version_id={self.version_id!r})"


class SecretSource(Protocol):
    """Something that reads a secret's value under a staging label."""

    def get(self, secret_id: str, stage: str) -> SecretVersion | None:
        """Return the version that carries ``stage``, or ``None`` if none does.

        Raises:
            SecretUnavailable: The secret could not be read.
            SecretFormatError: The response holds no value.
        """
        ...


class BotoSource:
    """Reads secrets with ``GetSecretValue`` through a boto3 client.

    Args:
        client: A boto3 ``secretsmanager`` client. Without one, a client is
            made on first use from boto3's default session, with short
            timeouts, and made again in a forked child.
    """

    def __init__(self, client: Any = None) -> None:
        self._client = client
        self._own_client = client is None

    def get(self, secret_id: str, stage: str) -> SecretVersion | None:
        """Return the version that carries ``stage``, or ``None`` if none does.

        Raises:
            SecretUnavailable: The secret could not be read.
            SecretFormatError: The response holds no value.
        """
        try:
            response = self._get_client().get_secret_value(
                SecretId=secret_id, VersionStage=stage
            )
        except NoRegionError as exc:
            raise SecretUnavailable(
                secret_id,
                stage,
                "boto3 has no AWS region: set AWS_DEFAULT_REGION (boto3 "
                "does not read AWS_REGION), or pass a client made for the "
                "secret's region",
            ) from exc
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ResourceNotFoundException" and stage != AWSCURRENT:
                return None
            raise unavailable(secret_id, stage, exc) from exc
        except BotoCoreError as exc:
            raise unavailable(secret_id, stage, exc) from exc

        return version_from_response(secret_id, response)

    @property
    def client(self) -> Any:
        """The boto3 client, made now if rotsafe makes its own."""
        return self._get_client()

    def after_fork(self) -> None:
        """Drop a client rotsafe made: its connections belong to the parent."""
        if self._own_client:
            self._client = None

    def _get_client(self) -> Any:
        client = self._client
        if client is None:
            import boto3  # noqa: PLC0415 - a second or so to import

            with _CLIENT_LOCK:
                if self._client is None:
                    self._client = boto3.client(
                        "secretsmanager", config=DEFAULT_CLIENT_CONFIG
                    )
                client = self._client
        return client


class SecretCacheSource:
    """Reads ``AWSCURRENT`` through an ``aws_secretsmanager_caching`` cache.

    For services that already keep a ``SecretCache``: steady-state reads are
    answered from it. It reports no version ids, so rotsafe tells versions
    apart by their values.
    """

    def __init__(self, cache: SecretCache) -> None:
        self.cache = cache

    def get(self, secret_id: str, stage: str) -> SecretVersion | None:
        """Return the cached version that carries ``stage``.

        Raises:
            SecretUnavailable: The cache could not read the secret.
            SecretFormatError: The cache holds no value for it.
        """
        try:
            text = self.cache.get_secret_string(secret_id, stage)
            value = (
                text
                if text is not None
                else self.cache.get_secret_binary(secret_id, stage)
            )
        except (ClientError, BotoCoreError) as exc:
            raise unavailable(secret_id, stage, exc) from exc

        if value is None:
            if stage != AWSCURRENT:
                return None
            raise SecretFormatError(
                secret_id,
                "SecretString",
                "the response holds neither SecretString nor SecretBinary",
            )
        return SecretVersion(value=value, version_id=None)


def version_from_response(
    secret_id: str, response: dict[str, Any]
) -> SecretVersion:
    """Return the value and version id of a ``GetSecretValue`` response.

    Raises:
        SecretFormatError: The response holds neither ``SecretString`` nor
            ``SecretBinary``.
    """
    value = response.get("SecretString")
    if value is None:
        value = response.get("SecretBinary")
    if value is None:
        raise SecretFormatError(
            secret_id,
            "SecretString",
            "the response holds neither SecretString nor SecretBinary",
        )
    return SecretVersion(value=value, version_id=response.get("VersionId"))


def unavailable(
    secret_id: str, stage: str, exc: BotoCoreError | ClientError
) -> SecretUnavailable:
    """Return the :class:`SecretUnavailable` that explains a boto3 error."""
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "ResourceNotFoundException":
            problem = (
                "Secrets Manager has no such secret; check its name or ARN "
                "and the client's region"
            )
        else:
            problem = _ADVICE.get(code, f"Secrets Manager answered {code}")
    elif isinstance(exc, (EndpointConnectionError, ConnectTimeoutError)):
        problem = (
            "the Secrets Manager endpoint could not be reached; check the "
            "network path (VPC endpoint, NAT, proxy) and the region"
        )
    elif isinstance(exc, ReadTimeoutError):
        problem = "the Secrets Manager endpoint did not answer in time"
    elif isinstance(exc, NoCredentialsError):
        problem = "boto3 found no AWS credentials for the client"
    else:
        problem = f"boto3 failed ({type(exc).__name__})"
    return SecretUnavailable(secret_id, stage, problem)

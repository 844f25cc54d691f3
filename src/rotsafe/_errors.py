"""The exceptions rotsafe raises, one class for each thing a caller can do.

::

    RotsafeError
    ├── SecretFormatError      the secret's value cannot become credentials
    ├── SecretUnavailable      Secrets Manager cannot be read, nothing cached
    ├── CredentialsRejected    the database refused every credential in time
    └── ConnectionSetupError   the database refused for a reason a retry
                               cannot fix: no password sent, host blocked,
                               TLS or client setup wrong

No message ever holds a secret's value: they name the secret, its stages and
its version ids, and the field that is wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rotsafe._classify import ErrorKind


class RotsafeError(Exception):
    """Base class of every error rotsafe raises itself."""


# Fields of a secret that RotatingSecret can supply or override itself.
_ARGUMENT_FOR_FIELD = {
    "host": "host",
    "port": "port",
    "dbname": "database",
    "database": "database",
    "engine": "driver",
}


class SecretFormatError(RotsafeError, ValueError):
    """The secret's value cannot be turned into database credentials.

    Attributes:
        secret_id: The secret, as the caller named it.
        field: The JSON field (or response member) that is missing or wrong.
        stage: The staging label the value was read under, when known.
        version_id: The version that holds the value, when known.
        remedy: What to do about it, ending the message. By default: fix
            the value, or pass the field to RotatingSecret if it takes one.
    """

    def __init__(
        self,
        secret_id: str,
        field: str,
        problem: str,
        *,
        stage: str | None = None,
        version_id: str | None = None,
        remedy: str | None = None,
    ) -> None:
        self.secret_id = secret_id
        self.field = field
        self.problem = problem
        self.stage = stage
        self.version_id = version_id
        where = ", ".join(
            part
            for part in (stage, version_id and f"version {version_id}")
            if part
        )
        if remedy is None:
            remedy = "Fix the secret's value in Secrets Manager"
            argument = _ARGUMENT_FOR_FIELD.get(field)
            if argument is not None:
                remedy += f", or pass {argument}= to RotatingSecret"
        self.remedy = remedy
        super().__init__(
            f"secret {secret_id!r}{f' ({where})' if where else ''}: "
            f"{problem}. {remedy}."
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild,
            (
                type(self),
                (self.secret_id, self.field, self.problem),
                {
                    "stage": self.stage,
                    "version_id": self.version_id,
                    "remedy": self.remedy,
                },
            ),
        )


class SecretUnavailable(RotsafeError):
    """Secrets Manager could not be read and no usable value is cached.

    Chained (``__cause__``) to the boto3 error.

    Attributes:
        secret_id: The secret, as the caller named it.
        stage: The staging label that was being read.
    """

    def __init__(self, secret_id: str, stage: str, problem: str) -> None:
        self.secret_id = secret_id
        self.stage = stage
        self.problem = problem
        super().__init__(
            f"secret {secret_id!r} ({stage}) could not be read: {problem}"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.secret_id, self.stage, self.problem))


class CredentialsRejected(RotsafeError):
    """The database refused every credential rotsafe found before a deadline.

    Chained (``__cause__``) to the last driver error.

    Attributes:
        secret_id: The secret, as the caller named it.
        tried: The ``(stage, version_id)`` pairs that were refused.
        deadline: How long rotsafe kept trying, in seconds.
    """

    def __init__(
        self,
        secret_id: str,
        tried: Sequence[tuple[str, str | None]],
        deadline: float,
        *,
        secrets_manager_error: str | None = None,
    ) -> None:
        self.secret_id = secret_id
        self.tried = tuple(tried)
        self.deadline = deadline
        self.secrets_manager_error = secrets_manager_error
        versions = ", ".join(
            f"{stage} {version_id or '(version unknown)'}"
            for stage, version_id in self.tried
        )
        message = (
            f"the database refused every credential of secret {secret_id!r} "
            f"for {deadline:g} s (tried {versions or 'nothing'}). Check that "
            f"the password in Secrets Manager matches the database, and "
            f"that no rotation is stuck between setSecret and finishSecret."
        )
        if secrets_manager_error:
            message += (
                f" Some stages could not be used: {secrets_manager_error}"
            )
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild,
            (
                type(self),
                (self.secret_id, self.tried, self.deadline),
                {"secrets_manager_error": self.secrets_manager_error},
            ),
        )


class ConnectionSetupError(RotsafeError):
    """The database refused the connection for a reason a retry cannot fix.

    Raised at once, with no refresh and no retry, for a connection that sent
    no password, a client host the server blocks, or TLS and client settings
    the server does not accept. Chained (``__cause__``) to the driver error.

    Attributes:
        secret_id: The secret whose credentials were used.
        kind: The :class:`rotsafe.ErrorKind` the driver error was given.
    """

    def __init__(self, secret_id: str, kind: ErrorKind, advice: str) -> None:
        self.secret_id = secret_id
        self.kind = kind
        self.advice = advice
        super().__init__(
            f"connecting with secret {secret_id!r} failed "
            f"({kind.name}): {advice}"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.secret_id, self.kind, self.advice))


def _rebuild(
    cls: type[RotsafeError], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> RotsafeError:
    """Rebuild an error with keyword arguments when it is unpickled."""
    return cls(*args, **kwargs)

"""Credentials, and how a Secrets Manager value becomes them.

Secret values come in the shapes AWS's rotation templates and real
deployments write: string or missing ports, several engine names, ``dbname``
or ``database``, RDS-managed secrets that hold only a username and password,
and binary secrets holding JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from rotsafe._errors import SecretFormatError

Family: TypeAlias = Literal["mysql", "postgresql"]

# Every engine name the RDS templates and rotation functions write.
_FAMILY_OF_ENGINE: dict[str, Family] = {
    "mysql": "mysql",
    "mariadb": "mysql",
    "aurora": "mysql",
    "aurora-mysql": "mysql",
    "postgres": "postgresql",
    "postgresql": "postgresql",
    "aurora-postgresql": "postgresql",
}

DEFAULT_PORT: dict[Family, int] = {"mysql": 3306, "postgresql": 5432}


@dataclass(frozen=True, repr=False)
class Credentials:
    """One set of database credentials, read from one secret version.

    The password never appears in ``repr`` or ``str``.

    Attributes:
        username: The database user.
        password: The password, exactly as stored in the secret.
        host: The database host.
        port: The database port.
        database: The database to connect to, or ``None`` for the server's
            default.
        family: ``"mysql"`` (MySQL, MariaDB, Aurora MySQL) or
            ``"postgresql"`` (PostgreSQL, Aurora PostgreSQL).
        secret_id: The secret these came from.
        stage: The staging label they were read under, such as
            ``"AWSCURRENT"``.
        version_id: The secret version they were read from, when known.
    """

    username: str
    password: str
    host: str
    port: int
    database: str | None
    family: Family
    secret_id: str
    stage: str
    version_id: str | None

    def __repr__(self) -> str:
        return (
            f"Credentials(username={self.username!r}, password=<hidden>, "
            f"host={self.host!r}, port={self.port}, "
            f"database={self.database!r}, family={self.family!r}, "
            f"secret_id={self.secret_id!r}, stage={self.stage!r}, "
            f"version_id={self.version_id!r})"
        )

    __str__ = __repr__

    def same_login(self, other: Credentials) -> bool:
        """Return whether both would log in the same way to the same server.

        Two versions of a secret that hold the same values are one login:
        trying the second after the first was refused is pointless.
        """
        return (
            self.username == other.username
            and self.password == other.password
            and self.host == other.host
            and self.port == other.port
            and self.database == other.database
        )


@dataclass(frozen=True)
class Target:
    """What the caller tells rotsafe about the database, beside the secret.

    A field given here wins over the secret's own: it fills in what an
    RDS-managed secret lacks, or points at a proxy instead of the instance.
    """

    host: str | None = None
    port: int | None = None
    database: str | None = None
    family: Family | None = None


def family_of_engine(engine: str) -> Family | None:
    """Return the engine family of an RDS engine name, or ``None``."""
    return _FAMILY_OF_ENGINE.get(engine.strip().lower())


def parse_secret(
    secret_id: str,
    value: str | bytes,
    target: Target,
    *,
    stage: str,
    version_id: str | None,
    fallback: Target = Target(),
) -> Credentials:
    """Build credentials from a secret's value and the caller's target.

    Args:
        secret_id: The secret's name or ARN, for error messages.
        value: ``SecretString``, or ``SecretBinary`` as boto3 returns it
            (already base64-decoded bytes).
        target: What the caller passed to fill in or override fields.
        stage: The staging label the value was read under.
        version_id: The version the value belongs to, when known.
        fallback: Fields to use only where neither ``target`` nor the
            secret has one: what an engine's URL says, under ``attach``.

    Raises:
        SecretFormatError: The value is not a JSON object, or a field is
            missing or malformed. The message names the field, never a
            value, and the traceback holds no frame whose locals do.
    """
    try:
        return _credentials_from(
            secret_id,
            value,
            target,
            stage=stage,
            version_id=version_id,
            fallback=fallback,
        )
    except Exception as exc:
        error = exc

    # The frames the error came through hold the value in their locals, as
    # would this one: an error reporter that records locals must see none.
    del value
    raise error.with_traceback(None)


def _credentials_from(
    secret_id: str,
    value: str | bytes,
    target: Target,
    *,
    stage: str,
    version_id: str | None,
    fallback: Target,
) -> Credentials:
    """Do what :func:`parse_secret` says; its frames hold the value."""

    def fail(field: str, problem: str) -> SecretFormatError:
        return SecretFormatError(
            secret_id, field, problem, stage=stage, version_id=version_id
        )

    fields = _decode(value, fail)

    def text(name: str, *aliases: str, blank: bool = False) -> str | None:
        for key in (name, *aliases):
            found = fields.get(key)
            if found is None:
                continue
            if not isinstance(found, str) or not (
                found if blank else found.strip()
            ):
                raise fail(key, f"{key!r} is not a non-empty string")
            if "\x00" in found:
                raise fail(key, f"{key!r} holds a NUL character")
            return found
        return None

    username = text("username")
    if username is None:
        raise fail("username", "'username' is missing")
    # A password is whatever the database was given, spaces and all.
    password = text("password", blank=True)
    if password is None:
        raise fail("password", "'password' is missing")

    family = _family(
        text("engine"), target.family, fail, assumed=fallback.family
    )

    host = target.host or text("host") or fallback.host
    if host is None:
        raise fail(
            "host",
            "'host' is missing (RDS-managed secrets hold only a username and "
            "password)",
        )

    if target.port is not None:
        port = target.port
    elif "port" in fields:
        port = _port(fields["port"], fail)
    else:
        port = fallback.port or DEFAULT_PORT[family]

    return Credentials(
        username=username,
        password=password,
        host=host.strip(),
        port=port,
        database=(
            target.database or text("dbname", "database") or fallback.database
        ),
        family=family,
        secret_id=secret_id,
        stage=stage,
        version_id=version_id,
    )


_Fail = Callable[[str, str], SecretFormatError]


def _decode(value: str | bytes, fail: _Fail) -> dict[str, Any]:
    member = "SecretBinary" if isinstance(value, bytes) else "SecretString"
    # No error below is chained or raised while handling another: the
    # decoders' errors carry the whole secret.
    text: str | None
    if isinstance(value, bytes):
        try:
            text = value.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = None
        if text is None:
            raise fail(member, "SecretBinary is not UTF-8 text")
    else:
        text = value.removeprefix("\ufeff")

    try:
        decoded = json.loads(text)
    except (ValueError, RecursionError):
        decoded = None
    if not isinstance(decoded, dict):
        raise fail(
            member,
            f"{member} is not a JSON object (a plain password string cannot "
            f"say which user and host it is for)",
        )
    return decoded


def _family(
    engine: str | None,
    wanted: Family | None,
    fail: _Fail,
    *,
    assumed: Family | None = None,
) -> Family:
    """The secret's engine family, checked against the driver's.

    ``wanted`` is the family of the driver given to RotatingSecret;
    ``assumed`` serves only when neither the secret nor ``wanted`` says.
    """
    if engine is None:
        family = wanted or assumed
        if family is None:
            raise fail(
                "engine",
                "'engine' is missing and no driver was given",
            )
        return family

    family = family_of_engine(engine)
    if family is None:
        supported = ", ".join(sorted(_FAMILY_OF_ENGINE))
        raise fail(
            "engine",
            f"'engine' names an engine rotsafe does not support "
            f"(supported: {supported})",
        )
    if wanted is not None and wanted != family:
        raise fail(
            "engine",
            f"'engine' is a {family} engine but the driver given to "
            f"RotatingSecret is for {wanted}",
        )
    return family


def _port(raw: object, fail: _Fail) -> int:
    port: int | None = None
    if isinstance(raw, int) and not isinstance(raw, bool):
        port = raw
    elif isinstance(raw, str):
        digits = raw.strip()
        if digits.isascii() and digits.isdigit() and len(digits) <= 5:
            port = int(digits)
    if port is None or not 0 < port < 65536:
        raise fail("port", "'port' is not a TCP port number")
    return port

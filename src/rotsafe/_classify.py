"""What a database error means for credentials: the kind decides the action.

Only ``AUTH`` is answered with a refresh and the other stages. The drivers
are recognised by their error numbers and SQLSTATEs where they give one, and
by their message text where they do not (libpq reports connect-time errors
with no SQLSTATE). Text is read only where no code decides, and only from
drivers and the operating system: a query's error can quote row data, and an
application's own error can say anything.
"""

from __future__ import annotations

import enum
import re
import ssl
from collections.abc import Iterator

from rotsafe._errors import (
    ConnectionSetupError,
    CredentialsRejected,
    SecretFormatError,
    SecretUnavailable,
)

# Exceptions are followed through SQLAlchemy's ``.orig`` and Python's
# ``__cause__`` and ``__context__`` this many levels deep.
_MAX_DEPTH = 8

_MYSQL_MODULES = frozenset(
    {"pymysql", "MySQLdb", "mysql", "aiomysql", "asyncmy", "mariadb"}
)

# The drivers whose message text says what a refusal was.
_DRIVER_MODULES = _MYSQL_MODULES | {"psycopg", "psycopg2", "pg8000", "asyncpg"}


class ErrorKind(enum.Enum):
    """What an error says about the credentials that were used."""

    AUTH = "auth"
    """The database refused these credentials: refresh and try the stages."""

    MISSING_CREDENTIALS = "missing_credentials"
    """No password was sent at all: a configuration error, never retried."""

    PERMISSION = "permission"
    """Logged in, but not allowed to do this: never a reason to refresh."""

    CAPACITY = "capacity"
    """Too many connections: back off, do not refresh."""

    HOST_BLOCKED = "host_blocked"
    """The server refuses this client host or a locked account: fail fast."""

    NETWORK = "network"
    """The server could not be reached or dropped the connection."""

    CONFIG = "config"
    """TLS, the authentication plugin or the database name is wrong."""

    OTHER = "other"
    """Anything else: not a credential problem."""


_MYSQL_ERRNO: dict[int, ErrorKind] = {
    **dict.fromkeys((1045, 1698, 1820, 1862), ErrorKind.AUTH),
    **dict.fromkeys((1044, 1142, 1143, 1227, 1370), ErrorKind.PERMISSION),
    **dict.fromkeys((1040, 1203, 1226, 1135), ErrorKind.CAPACITY),
    **dict.fromkeys((1129, 1130, 3118, 3955, 4151), ErrorKind.HOST_BLOCKED),
    **dict.fromkeys(
        (
            1053,
            1152,
            1158,
            1159,
            1160,
            1161,
            2002,
            2003,
            2005,
            2006,
            2012,
            2013,
            2055,
        ),
        ErrorKind.NETWORK,
    ),
    **dict.fromkeys(
        (1043, 1049, 1251, 2026, 2059, 2061, 3159), ErrorKind.CONFIG
    ),
}

_SQLSTATE: dict[str, ErrorKind] = {
    "28P01": ErrorKind.AUTH,
    "53300": ErrorKind.CAPACITY,
    "42501": ErrorKind.PERMISSION,
    "3D000": ErrorKind.CONFIG,
    "57P01": ErrorKind.NETWORK,
    "57P02": ErrorKind.NETWORK,
    "57P03": ErrorKind.NETWORK,
}

# Checked in order: the first match decides. libpq joins the messages of
# every attempt it made, so a refused password outranks what follows it.
# Shortcoming: these are the English texts, and libpq's connect errors have
# no SQLSTATE, so a server with lc_messages in another language is read as
# OTHER; an English lc_messages on the server lifts it.
_TEXT: list[tuple[ErrorKind, re.Pattern[str]]] = [
    (kind, re.compile(pattern, re.IGNORECASE))
    for kind, pattern in (
        (ErrorKind.MISSING_CREDENTIALS, r"no password supplied"),
        (ErrorKind.MISSING_CREDENTIALS, r"using password: no\b"),
        (ErrorKind.HOST_BLOCKED, r"account is (locked|blocked)"),
        (ErrorKind.HOST_BLOCKED, r"is not permitted to log in"),
        (ErrorKind.AUTH, r"password authentication failed"),
        (ErrorKind.AUTH, r"(pam|ldap|radius) authentication failed"),
        (ErrorKind.AUTH, r"access denied for user .*using password: yes"),
        (ErrorKind.AUTH, r"password (has )?expired"),
        (ErrorKind.CONFIG, r"(ident|peer|certificate|gssapi|sspi) auth"),
        (ErrorKind.PERMISSION, r"permission denied"),
        (ErrorKind.PERMISSION, r"access denied for user .* to database"),
        (ErrorKind.PERMISSION, r"command denied to user"),
        (ErrorKind.PERMISSION, r"does not have connect privilege"),
        (ErrorKind.CAPACITY, r"too many (connections|clients)"),
        (ErrorKind.CAPACITY, r"connection slots are reserved"),
        (ErrorKind.CAPACITY, r"max_user_connections"),
        (ErrorKind.CAPACITY, r"connection limit exceeded"),
        (ErrorKind.HOST_BLOCKED, r"blocked because of many connection"),
        (ErrorKind.HOST_BLOCKED, r"not allowed to connect to this"),
        (ErrorKind.HOST_BLOCKED, r"pg_hba\.conf (entry|rejects)"),
        (ErrorKind.NETWORK, r"ssl syscall error|eof detected"),
        (ErrorKind.CONFIG, r"server does not support ssl"),
        (ErrorKind.CONFIG, r"ssl (connection )?(is )?required"),
        (ErrorKind.CONFIG, r"secure transport"),
        (ErrorKind.CONFIG, r"certificate verify failed|root certificate"),
        (ErrorKind.CONFIG, r"\bsslmode\b|ssl error|wrong version number"),
        (ErrorKind.CONFIG, r"authentication (plugin|method|protocol)"),
        (ErrorKind.CONFIG, r"scram authentication requires"),
        (ErrorKind.CONFIG, r"unknown database|database .* does not exist"),
        (ErrorKind.CONFIG, r"invalid (connection option|dsn)"),
        (ErrorKind.NETWORK, r"connection refused|connection reset"),
        (ErrorKind.NETWORK, r"can't connect to (mysql|mariadb) server"),
        (ErrorKind.NETWORK, r"lost connection to (mysql|mariadb) server"),
        (ErrorKind.NETWORK, r"server has gone away|broken pipe"),
        (ErrorKind.NETWORK, r"could not (connect to|translate host)"),
        (ErrorKind.NETWORK, r"server closed the connection"),
        (ErrorKind.NETWORK, r"name or service not known|name resolution"),
        (ErrorKind.NETWORK, r"no route to host|network is unreachable"),
        (ErrorKind.NETWORK, r"timeout expired|timed out"),
        (ErrorKind.NETWORK, r"database system is (starting|shutting)"),
        (ErrorKind.NETWORK, r"terminating connection due to admin"),
    )
]


_HBA_REFUSAL = re.compile(r"no pg_hba\.conf entry", re.IGNORECASE)


def classify(exc: BaseException) -> ErrorKind:
    """Return what ``exc`` says about the credentials that were used.

    Looks through SQLAlchemy's wrappers (``.orig``) and exception chains
    (``__cause__``, and ``__context__`` unless suppressed), to a bounded
    depth and safe against cycles. The first error that is recognised as a
    database error decides; wrappers that say nothing are looked through.
    A pg_hba refusal decides only if no refused password stands behind it.

    Args:
        exc: Any exception: a driver's, SQLAlchemy's, rotsafe's or an
            application's own raised from one of those.

    Returns:
        The kind, :attr:`ErrorKind.OTHER` when nothing is recognised.
    """
    return verdict(exc)[0]


def verdict(exc: BaseException) -> tuple[ErrorKind, BaseException | None]:
    """Return :func:`classify`'s kind and the error in the chain that gave it.

    The error is ``None`` when nothing was recognised.
    """
    provisional: tuple[ErrorKind, BaseException] | None = None
    for candidate in _chain(exc):
        kind = _kind_of(candidate)
        if kind is None:
            continue
        if provisional is None and _HBA_REFUSAL.search(str(candidate)):
            # A driver that retried without TLS may report the second
            # attempt's pg_hba refusal, chained to the refused password.
            provisional = (kind, candidate)
            continue
        if provisional is not None and kind is not ErrorKind.AUTH:
            return provisional
        return kind, candidate
    return provisional or (ErrorKind.OTHER, None)


def is_auth_error(exc: BaseException) -> bool:
    """Return whether the database refused the credentials that were used."""
    return classify(exc) is ErrorKind.AUTH


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()

    def visit(
        candidate: BaseException | None, depth: int
    ) -> Iterator[BaseException]:
        if candidate is None or depth > _MAX_DEPTH or id(candidate) in seen:
            return
        seen.add(id(candidate))

        # A wrapper's own text repeats the driver's; the driver's error
        # number, when it has one, is the better witness.
        original = getattr(candidate, "orig", None)
        if isinstance(original, BaseException):
            yield from visit(original, depth + 1)
        yield candidate
        yield from visit(candidate.__cause__, depth + 1)
        if not candidate.__suppress_context__:
            yield from visit(candidate.__context__, depth + 1)

    return visit(exc, 0)


def _kind_of(exc: BaseException) -> ErrorKind | None:
    """Return the kind of one error, or ``None`` to keep looking."""
    if isinstance(exc, CredentialsRejected):
        return ErrorKind.AUTH
    if isinstance(exc, ConnectionSetupError):
        return exc.kind
    if isinstance(exc, (SecretFormatError, SecretUnavailable)):
        # Rotsafe's verdict on the secret, not the database's on a login;
        # what it chains is Secrets Manager's, whose words are not a
        # database's either.
        return ErrorKind.OTHER

    kind = _kind_by_code(exc)
    if kind is not None:
        return kind

    if isinstance(exc, OSError):
        kind = _by_text(exc)
        if kind is None and isinstance(exc, ssl.SSLError):
            kind = ErrorKind.CONFIG
        if kind is None and isinstance(exc, (ConnectionError, TimeoutError)):
            kind = ErrorKind.NETWORK
        return kind

    if _module_of(exc) in _DRIVER_MODULES:
        return _by_text(exc)
    return None


def _kind_by_code(exc: BaseException) -> ErrorKind | None:
    """Judge by a MySQL error number or a SQLSTATE, if the error has one.

    A code decides alone, but for the two that cover several causes.
    """
    errno = _mysql_errno(exc)
    if errno is not None:
        kind = _MYSQL_ERRNO.get(errno, ErrorKind.OTHER)
        if kind is ErrorKind.AUTH and _matches(
            exc, ErrorKind.MISSING_CREDENTIALS
        ):
            return ErrorKind.MISSING_CREDENTIALS
        return kind

    sqlstate = _sqlstate(exc)
    if sqlstate is None:
        return None
    if sqlstate.startswith("28"):
        # Class 28 holds refused passwords, pg_hba and TLS refusals alike;
        # the authentication phase quotes no data.
        return _by_text(exc) or _SQLSTATE.get(sqlstate, ErrorKind.AUTH)
    if sqlstate.startswith("08"):
        return ErrorKind.NETWORK
    return _SQLSTATE.get(sqlstate, ErrorKind.OTHER)


def _module_of(exc: BaseException) -> str:
    """The top-level package that defines the error's class."""
    return type(exc).__module__.split(".", 1)[0]


def _mysql_errno(exc: BaseException) -> int | None:
    if _module_of(exc) not in _MYSQL_MODULES:
        return None
    errno = getattr(exc, "errno", None)
    if isinstance(errno, int) and errno > 0:
        return errno
    if exc.args and isinstance(exc.args[0], int):
        return exc.args[0]
    return None


def _sqlstate(exc: BaseException) -> str | None:
    for attribute in ("sqlstate", "pgcode"):
        value = getattr(exc, attribute, None)
        if isinstance(value, str) and len(value) == 5:
            return value.upper()
    # pg8000 puts the server's error fields, code "C" among them, in args[0].
    if exc.args and isinstance(exc.args[0], dict):
        code = exc.args[0].get("C")
        if isinstance(code, str) and len(code) == 5:
            return code.upper()
    return None


def _by_text(exc: BaseException) -> ErrorKind | None:
    text = str(exc)
    for kind, pattern in _TEXT:
        if pattern.search(text):
            return kind
    return None


def _matches(exc: BaseException, kind: ErrorKind) -> bool:
    text = str(exc)
    return any(pattern.search(text) for each, pattern in _TEXT if each is kind)

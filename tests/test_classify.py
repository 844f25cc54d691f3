"""classify(): what a driver error says about the credentials used."""

from __future__ import annotations

import ssl

import asyncpg
import mysql.connector.errors
import MySQLdb
import pg8000.exceptions
import psycopg
import psycopg2
import pymysql
import pytest
import sqlalchemy.exc
from botocore.exceptions import EndpointConnectionError

import rotsafe
from rotsafe import ErrorKind

PG_AUTH = (
    'connection failed: connection to server at "10.0.0.5", port 5432 '
    'failed: FATAL:  password authentication failed for user "app_user"'
)
MYSQL_AUTH = pymysql.err.OperationalError(
    1045,
    "Access denied for user 'app_user'@'10.0.0.12' (using password: YES)",
)


def wrapped(orig: BaseException) -> sqlalchemy.exc.OperationalError:
    return sqlalchemy.exc.OperationalError(None, None, orig)


class AppError(Exception):
    """An application's own error."""


def raised_from(cause: BaseException) -> AppError:
    try:
        raise AppError("loading the user failed") from cause
    except AppError as exc:
        return exc


def unique_violation_mysql() -> sqlalchemy.exc.IntegrityError:
    orig = pymysql.err.IntegrityError(
        1062, "Duplicate entry 'a' for key 'PRIMARY'"
    )
    return sqlalchemy.exc.IntegrityError("INSERT", {}, orig)


def unique_violation_postgres() -> sqlalchemy.exc.IntegrityError:
    orig = psycopg.errors.UniqueViolation(
        'duplicate key value violates unique constraint "users_pkey"'
    )
    return sqlalchemy.exc.IntegrityError("INSERT", {}, orig)


FIELD_CASES = [
    pytest.param(MYSQL_AUTH, ErrorKind.AUTH, id="pymysql 1045"),
    pytest.param(
        pymysql.err.OperationalError(
            2003,
            "Can't connect to MySQL server on 'db.example.internal' "
            "([Errno 111] Connection refused)",
        ),
        ErrorKind.NETWORK,
        id="pymysql 2003",
    ),
    pytest.param(
        pymysql.err.OperationalError(1040, "Too many connections"),
        ErrorKind.CAPACITY,
        id="pymysql 1040",
    ),
    pytest.param(
        pymysql.err.OperationalError(
            1044, "Access denied for user 'app_user'@'%' to database 'app'"
        ),
        ErrorKind.PERMISSION,
        id="pymysql 1044",
    ),
    pytest.param(
        psycopg.OperationalError(PG_AUTH),
        ErrorKind.AUTH,
        id="psycopg password failed, no sqlstate",
    ),
    pytest.param(
        psycopg.OperationalError(
            'connection failed: connection to server at "10.0.0.5", port '
            "5432 failed: fe_sendauth: no password supplied"
        ),
        ErrorKind.MISSING_CREDENTIALS,
        id="psycopg no password supplied",
    ),
    pytest.param(
        wrapped(MYSQL_AUTH), ErrorKind.AUTH, id="sqlalchemy wrapping 1045"
    ),
    pytest.param(
        raised_from(wrapped(MYSQL_AUTH)),
        ErrorKind.AUTH,
        id="application error raised from it",
    ),
    pytest.param(
        unique_violation_mysql(), ErrorKind.OTHER, id="integrity 1062"
    ),
    pytest.param(
        unique_violation_postgres(), ErrorKind.OTHER, id="integrity 23505"
    ),
]


@pytest.mark.parametrize(("error", "kind"), FIELD_CASES)
def test_driver_errors_from_the_field(error, kind):
    """Each driver error met in the field gets the kind the table gives."""
    assert rotsafe.classify(error) is kind
    assert rotsafe.is_auth_error(error) is (kind is ErrorKind.AUTH)


def driver_refusals() -> list[object]:
    """Each other driver's refused password, as that driver raises it."""

    denied = (
        "Access denied for user 'app_user'@'10.0.0.12' (using password: YES)"
    )
    return [
        pytest.param(
            asyncpg.exceptions.InvalidPasswordError(
                'password authentication failed for user "app_user"'
            ),
            id="asyncpg 28P01",
        ),
        pytest.param(
            mysql.connector.errors.ProgrammingError(
                msg=denied, errno=1045, sqlstate="28000"
            ),
            id="mysql-connector 1045",
        ),
        pytest.param(
            MySQLdb.OperationalError(1045, denied), id="mysqlclient 1045"
        ),
        pytest.param(
            psycopg2.OperationalError(
                'connection to server at "10.0.0.5", port 5432 failed: '
                'FATAL:  password authentication failed for user "app_user"'
            ),
            id="psycopg2 without pgcode",
        ),
        pytest.param(
            pg8000.exceptions.DatabaseError(
                {
                    "S": "FATAL",
                    "C": "28P01",
                    "M": 'password authentication failed for user "app_user"',
                }
            ),
            id="pg8000 dict",
        ),
    ]


@pytest.mark.parametrize("error", driver_refusals())
def test_every_drivers_refused_password_is_auth(error):
    """Each driver's refusal is AUTH, raw and wrapped by SQLAlchemy."""
    assert rotsafe.classify(error) is ErrorKind.AUTH
    assert rotsafe.classify(wrapped(error)) is ErrorKind.AUTH
    assert rotsafe.classify(raised_from(wrapped(error))) is ErrorKind.AUTH


def test_psycopg_connect_errors_have_no_sqlstate():
    """The field case holds: psycopg's connect-time error has no SQLSTATE."""
    assert psycopg.OperationalError(PG_AUTH).sqlstate is None


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (
            pymysql.err.OperationalError(
                1045,
                "Access denied for user 'app_user'@'h' (using password: NO)",
            ),
            ErrorKind.MISSING_CREDENTIALS,
        ),
        (
            pymysql.err.OperationalError(
                1129,
                "Host '10.0.0.12' is blocked because of many connection"
                " errors; unblock with 'mariadb-admin flush-hosts'",
            ),
            ErrorKind.HOST_BLOCKED,
        ),
        (
            pymysql.err.OperationalError(
                1130,
                "Host '10.0.0.12' is not allowed to connect to this "
                "MariaDB server",
            ),
            ErrorKind.HOST_BLOCKED,
        ),
        (
            pymysql.err.OperationalError(1049, "Unknown database 'nope'"),
            ErrorKind.CONFIG,
        ),
        (
            pymysql.err.OperationalError(
                2013, "Lost connection to MySQL server during query"
            ),
            ErrorKind.NETWORK,
        ),
        (
            psycopg.OperationalError(
                'connection to server at "10.0.0.5", port 5432 failed: '
                'FATAL:  no pg_hba.conf entry for host "10.0.0.12", user '
                '"app_user", database "app", SSL encryption'
            ),
            ErrorKind.HOST_BLOCKED,
        ),
        (
            psycopg.OperationalError(
                'connection to server at "10.0.0.5", port 5432 failed: '
                "FATAL:  sorry, too many clients already"
            ),
            ErrorKind.CAPACITY,
        ),
        (
            psycopg.OperationalError(
                'connection to server at "10.0.0.5", port 5432 failed: '
                "Connection refused\n\tIs the server running on that host "
                "and accepting TCP/IP connections?"
            ),
            ErrorKind.NETWORK,
        ),
        (
            psycopg.OperationalError(
                'connection to server at "10.0.0.5", port 5432 failed: '
                "server does not support SSL, but SSL was required"
            ),
            ErrorKind.CONFIG,
        ),
        (
            psycopg.errors.InsufficientPrivilege(
                "permission denied for table users"
            ),
            ErrorKind.PERMISSION,
        ),
        (
            psycopg.errors.InvalidPassword("password authentication failed"),
            ErrorKind.AUTH,
        ),
        (
            psycopg.errors.TooManyConnections("too many connections"),
            ErrorKind.CAPACITY,
        ),
        (ConnectionRefusedError(111, "Connection refused"), ErrorKind.NETWORK),
        (TimeoutError("timed out"), ErrorKind.NETWORK),
        (ssl.SSLCertVerificationError("bad cert"), ErrorKind.CONFIG),
        (ValueError("nothing to do with databases"), ErrorKind.OTHER),
    ],
)
def test_other_errors(error, kind):
    """Errors beyond the field table get the kind their code or text says."""
    assert rotsafe.classify(error) is kind


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("no encryption", ErrorKind.HOST_BLOCKED),
        ("SSL encryption", ErrorKind.HOST_BLOCKED),
    ],
)
def test_a_pg_hba_refusal_is_never_a_password_problem(message, kind):
    """No pg_hba.conf entry means the host is refused, with or without TLS."""
    error = psycopg.OperationalError(
        'connection to server at "10.0.0.5", port 5432 failed: FATAL:  no '
        'pg_hba.conf entry for host "10.0.0.12", user "app_user", database '
        f'"app", {message}'
    )
    assert rotsafe.classify(error) is kind


def test_a_refused_password_behind_a_pg_hba_refusal_wins():
    """asyncpg's second, plain-text attempt is chained to the real refusal."""
    first = asyncpg.exceptions.InvalidPasswordError(
        'password authentication failed for user "app_user"'
    )
    second = asyncpg.exceptions.InvalidAuthorizationSpecificationError(
        'no pg_hba.conf entry for host "10.0.0.12", user "app_user", '
        'database "app", no encryption'
    )
    second.__cause__ = first

    assert rotsafe.classify(second) is ErrorKind.AUTH
    assert rotsafe.classify(wrapped(second)) is ErrorKind.AUTH
    second.__cause__ = None
    assert rotsafe.classify(second) is ErrorKind.HOST_BLOCKED


@pytest.mark.parametrize(
    ("method", "kind"),
    [
        ("PAM", ErrorKind.AUTH),
        ("LDAP", ErrorKind.AUTH),
        ("Peer", ErrorKind.CONFIG),
        ("Ident", ErrorKind.CONFIG),
        ("certificate", ErrorKind.CONFIG),
        ("GSSAPI", ErrorKind.CONFIG),
    ],
)
def test_only_password_methods_are_auth(method, kind):
    """A refused password is AUTH; a refused certificate or peer is not."""
    error = psycopg.OperationalError(
        f'FATAL:  {method} authentication failed for user "app_user"'
    )
    assert rotsafe.classify(error) is kind


@pytest.mark.parametrize("errno", [3118, 3955, 4151])
def test_a_locked_account_fails_fast(errno):
    """A locked account is not a password to look for elsewhere."""
    error = pymysql.err.OperationalError(
        errno, "Access denied for user 'app_user'@'h'. Account is locked."
    )
    assert rotsafe.classify(error) is ErrorKind.HOST_BLOCKED


def test_libpq_joined_messages_favour_the_refused_password():
    """When libpq reports several attempts, a refused password wins."""
    error = psycopg.OperationalError(
        PG_AUTH + '\nconnection to server at "10.0.0.5", port 5432 failed: '
        'FATAL:  no pg_hba.conf entry for host "10.0.0.12", user '
        '"app_user", database "app", no encryption'
    )
    assert rotsafe.classify(error) is ErrorKind.AUTH


def test_a_context_chain_is_followed():
    """An error raised while handling an auth error is classified by it."""

    def handle(suppress: bool) -> None:
        try:
            raise MYSQL_AUTH
        except pymysql.err.OperationalError:
            error = AppError("could not load")
            if suppress:
                raise error from None
            raise error  # noqa: B904 - an implicit context is the point

    with pytest.raises(AppError) as suppressed:
        handle(suppress=True)
    with pytest.raises(AppError) as implicit:
        handle(suppress=False)

    assert rotsafe.classify(suppressed.value) is ErrorKind.OTHER
    assert rotsafe.classify(implicit.value) is ErrorKind.AUTH


def test_cycles_and_depth_are_safe():
    """A cyclic chain or a very deep one ends without recursion errors."""
    a, b = AppError("a"), AppError("b")
    a.__cause__, b.__cause__ = b, a
    assert rotsafe.classify(a) is ErrorKind.OTHER

    deep: BaseException = MYSQL_AUTH
    for level in range(100):
        outer = AppError(f"level {level}")
        outer.__cause__ = deep
        deep = outer
    assert rotsafe.classify(deep) is ErrorKind.OTHER, "beyond the bound"


def test_rotsafe_errors_keep_their_meaning():
    """CredentialsRejected is AUTH; ConnectionSetupError keeps its kind."""
    rejected = rotsafe.CredentialsRejected("s", [("AWSCURRENT", "v1")], 30)
    setup = rotsafe.ConnectionSetupError("s", ErrorKind.HOST_BLOCKED, "x")
    assert rotsafe.classify(rejected) is ErrorKind.AUTH
    assert rotsafe.classify(setup) is ErrorKind.HOST_BLOCKED


LOGIN_WORDS = (
    'password authentication failed for user "app_user" '
    "(using password: YES), password expired"
)


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(
            pymysql.err.IntegrityError(
                1062, f"Duplicate entry '{LOGIN_WORDS}' for key 'note'"
            ),
            id="mysql 1062 quoting a row",
        ),
        pytest.param(
            psycopg.errors.UniqueViolation(
                'duplicate key value violates unique constraint "note"\n'
                f"DETAIL:  Key (body)=({LOGIN_WORDS}) already exists."
            ),
            id="postgres 23505 quoting a row",
        ),
        pytest.param(
            psycopg.errors.RaiseException(LOGIN_WORDS),
            id="postgres P0001 from a function",
        ),
        pytest.param(AppError(LOGIN_WORDS), id="an application's own"),
    ],
)
def test_words_in_data_or_an_application_error_are_not_a_refusal(error):
    """An error with a code is judged by it, not by the data it quotes."""
    assert rotsafe.classify(error) is ErrorKind.OTHER
    assert rotsafe.classify(wrapped(error)) is ErrorKind.OTHER
    assert rotsafe.classify(raised_from(wrapped(error))) is ErrorKind.OTHER


def test_an_application_error_is_looked_through_to_its_cause():
    """An application's error says nothing itself; what it chains decides."""
    error = AppError("no password supplied")
    error.__cause__ = MYSQL_AUTH
    assert rotsafe.classify(error) is ErrorKind.AUTH


def test_errors_about_the_secret_are_not_read_as_a_databases():
    """Secret errors are OTHER, whatever their own or chained text says."""
    unreadable = rotsafe.SecretUnavailable(
        "s", "AWSCURRENT", "Could not connect to the endpoint URL"
    )
    unreadable.__cause__ = EndpointConnectionError(
        endpoint_url="https://secretsmanager.example"
    )
    malformed = rotsafe.SecretFormatError(
        "s", "engine", "'engine' says password authentication failed"
    )
    for error in (unreadable, malformed):
        wrapped = sqlalchemy.exc.OperationalError("connect", {}, error)
        assert rotsafe.classify(error) is ErrorKind.OTHER
        assert rotsafe.classify(wrapped) is ErrorKind.OTHER

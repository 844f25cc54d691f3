"""attach(): SQLAlchemy engines through real rotations, on real servers."""

from __future__ import annotations

import json
import logging
import time

import psycopg
import pymysql
import pytest
import sqlalchemy
from sqlalchemy import event, text
from sqlalchemy.pool import NullPool, QueuePool

import rotsafe
from support import assert_unnoticed, describe

SENTINEL = "sentinel-Sa-8e21f0"


def select_one(engine: sqlalchemy.Engine) -> None:
    with engine.connect() as connection:
        assert connection.execute(text("SELECT 1")).scalar() == 1


def origin(connection: sqlalchemy.Connection) -> rotsafe.ConnectionOrigin:
    found = connection.info[rotsafe.ORIGIN_KEY]
    assert isinstance(found, rotsafe.ConnectionOrigin)
    return found


def run_through(rotation, engine, strategy="single-user", *, window=2.0):
    with rotation.load(lambda: select_one(engine), threads=8) as load:
        load.wait_for(40)
        rotation.rotate(strategy, window=window)
        load.wait_for(load.result.count + 40)
    return load.result


@pytest.mark.parametrize(
    "pooling",
    [
        {"poolclass": QueuePool, "pool_size": 4, "pool_recycle": 1},
        {"poolclass": NullPool},
        {"pool_size": 4, "pool_pre_ping": True},
    ],
    ids=["queuepool-recycle", "nullpool", "pre-ping"],
)
def test_rotation_under_load_loses_no_operation(rotation, pooling):
    """Eight threads through a single-user rotation: no failed operation."""
    engine = sqlalchemy.create_engine(rotation.url(), **pooling)
    rotsafe.attach(engine, rotation.secret())

    result = run_through(rotation, engine)

    assert_unnoticed(result, rotation.calls)
    engine.dispose()


def test_one_connection_is_replaced_by_the_next_version(rotation):
    """pool_size=1: made with v1, rotated, replaced by one made with v2."""
    engine = sqlalchemy.create_engine(
        rotation.url(), pool_size=1, max_overflow=0
    )
    url_before = engine.url
    args_before = engine.dialect.create_connect_args(engine.url)
    seen: list[dict[str, object]] = []

    @event.listens_for(engine, "do_connect")
    def record_arguments(dialect, record, cargs, cparams):
        seen.append(dict(cparams))

    secret = rotation.secret(min_refresh_interval=0)
    rotsafe.attach(engine, secret)

    with engine.connect() as first:
        v1 = origin(first).version_id
        first_dbapi = first.connection.dbapi_connection
    record = rotation.rotate("single-user", window=0.2)
    secret.refresh()

    with engine.connect() as still_first:
        assert still_first.connection.dbapi_connection is first_dbapi
        assert origin(still_first).version_id == v1
    with engine.connect() as second:
        assert second.connection.dbapi_connection is not first_dbapi
        assert origin(second).version_id == record.version_id != v1
        assert second.execute(text("SELECT 1")).scalar() == 1

    assert engine.url == url_before
    assert engine.url.password is None
    assert engine.dialect.create_connect_args(engine.url) == args_before
    assert len(seen) == 2
    assert all("password" not in each for each in seen)
    engine.dispose()


def test_eager_policy_never_hands_out_an_old_connection(rotation):
    """Eager: after a rotation, every connection handed out is of v2."""
    engine = sqlalchemy.create_engine(rotation.url(), pool_size=4)
    secret = rotation.secret(min_refresh_interval=0)
    rotsafe.attach(engine, secret, policy="eager")
    held = [engine.connect() for _ in range(4)]
    old = {origin(each).version_id for each in held}
    held[2].close()
    held[3].close()

    record = rotation.rotate("single-user", window=0.2)
    secret.refresh()
    for each in held[:2]:
        assert each.execute(text("SELECT 1")).scalar() == 1
        each.close()

    for _ in range(3):
        handed = [engine.connect() for _ in range(4)]
        assert {origin(each).version_id for each in handed} == {
            record.version_id
        }
        for each in handed:
            each.close()
    assert record.version_id not in old
    engine.dispose()


def test_gradual_policy_replaces_one_at_a_time(rotation):
    """Gradual: returning connections of v1 are retired one per interval."""
    engine = sqlalchemy.create_engine(rotation.url(), pool_size=4)
    secret = rotation.secret(min_refresh_interval=0)
    rotsafe.attach(engine, secret, retire_interval=60)
    retired = []
    event.listen(
        engine, "soft_invalidate", lambda *args: retired.append(args[1])
    )
    held = [engine.connect() for _ in range(4)]
    dbapi = [each.connection.dbapi_connection for each in held]

    rotation.rotate("single-user", window=0.2)
    secret.refresh()
    for each in held:
        assert each.execute(text("SELECT 1")).scalar() == 1, "still open"
        assert each.connection.dbapi_connection in dbapi
        each.close()

    assert len(retired) == 1
    engine.dispose()


def test_none_policy_keeps_every_connection(rotation):
    """Policy none: connections of v1 are kept after the rotation."""
    engine = sqlalchemy.create_engine(rotation.url(), pool_size=2)
    secret = rotation.secret(min_refresh_interval=0)
    rotsafe.attach(engine, secret, policy="none")
    with engine.connect() as first:
        before = first.connection.dbapi_connection

    rotation.rotate("single-user", window=0.2)
    secret.refresh()
    for _ in range(3):
        with engine.connect() as again:
            assert again.connection.dbapi_connection is before
    engine.dispose()


def test_auth_error_on_an_open_connection_replaces_only_it(rotation):
    """An AUTH error mid-session invalidates that connection, not the pool."""
    engine = sqlalchemy.create_engine(rotation.url(), pool_size=2)
    secret = rotation.secret()
    rotsafe.attach(engine, secret)
    first, second = engine.connect(), engine.connect()
    kept = second.connection.dbapi_connection
    second.close()
    # The server never refuses an open session; a proxy may. The error is
    # raised where the driver would raise it, inside SQLAlchemy's handling.
    refused = (
        pymysql.err.OperationalError(
            1045, "Access denied for user 'x'@'h' (using password: YES)"
        )
        if rotation.family == "mysql"
        else psycopg.OperationalError(
            'FATAL:  password authentication failed for user "x"'
        )
    )

    @event.listens_for(engine, "do_execute")
    def refuse(cursor, statement, parameters, context):
        if "refuse me" in statement:
            raise refused

    calls = rotation.calls
    with pytest.raises(sqlalchemy.exc.DBAPIError) as caught:
        first.execute(text("SELECT 1 /* refuse me */"))
    assert caught.value.connection_invalidated
    first.close()

    with engine.connect() as again:
        assert again.connection.dbapi_connection is kept
    assert rotation.calls <= calls + 1
    engine.dispose()


def test_unknown_policy_and_driver_are_refused(rotation):
    """attach refuses a policy or a driver it does not know."""
    engine = sqlalchemy.create_engine(rotation.url())
    with pytest.raises(ValueError, match="policy"):
        rotsafe.attach(engine, rotation.secret(), policy="sometimes")
    sqlite = sqlalchemy.create_engine("sqlite://")
    with pytest.raises(ValueError, match="sqlite"):
        rotsafe.attach(sqlite, rotation.secret())


def test_a_url_holding_a_password_is_refused(rotation):
    """A password in the URL would be ignored and kept: attach refuses it."""
    url = sqlalchemy.engine.make_url(rotation.url()).set(
        username="someone", password="sentinel-Url-5d1c"
    )
    engine = sqlalchemy.create_engine(url)
    with pytest.raises(ValueError, match="URL holds a password") as caught:
        rotsafe.attach(engine, rotation.secret())
    assert "sentinel-Url-5d1c" not in str(caught.value)
    assert rotsafe._sqlalchemy.attachment_of(engine) is None, "no hooks left"


def test_detach_removes_the_hooks(rotation):
    """After detach, the engine logs in with its URL alone again."""
    engine = sqlalchemy.create_engine(rotation.url(), poolclass=NullPool)
    attachment = rotsafe.attach(engine, rotation.secret())
    select_one(engine)

    attachment.detach()

    with pytest.raises(sqlalchemy.exc.OperationalError):
        select_one(engine)


def test_no_password_in_any_log_at_debug(rotation, caplog):
    """DEBUG logs of every logger hold no password through a rotation."""
    engine = sqlalchemy.create_engine(rotation.url(), pool_size=2)
    secret = rotation.secret(ttl=0.5)
    rotsafe.attach(engine, secret)
    first = secret.credentials().password

    with (
        caplog.at_level(logging.DEBUG),
        rotation.load(lambda: select_one(engine), threads=4) as load,
    ):
        load.wait_for(20)
        rotation.rotator.single_user(window=1.0, password=SENTINEL)
        load.wait_for(load.result.count + 20)

    assert "botocore" in caplog.text, "botocore's DEBUG lines were captured"
    assert SENTINEL not in caplog.text
    assert first not in caplog.text
    engine.dispose()


def test_the_engine_is_usable_from_many_threads_during_eager_refresh(rotation):
    """Eager retirement while threads use the pool loses no operation."""
    engine = sqlalchemy.create_engine(rotation.url(), pool_size=4)
    secret = rotation.secret(ttl=0.5)
    rotsafe.attach(engine, secret, policy="eager")

    result = run_through(rotation, engine)

    assert result.failed == 0, describe(result)
    assert result.slowest < 1.0, "no operation waited out the window"
    engine.dispose()


def test_attachment_repr_names_no_password(rotation):
    """An attachment's repr names the secret and the URL, no password."""
    engine = sqlalchemy.create_engine(rotation.url())
    secret = rotation.secret()
    attachment = rotsafe.attach(engine, secret)
    password = secret.credentials().password

    assert rotation.secret_id in repr(attachment)
    assert password not in repr(attachment)


def test_a_secret_for_another_server_kind_is_refused_at_once(rotation):
    """An engine of the other family fails fast, naming the 'engine' field."""
    other = (
        "postgresql+psycopg" if rotation.family == "mysql" else "mysql+pymysql"
    )
    server = rotation.server
    engine = sqlalchemy.create_engine(
        f"{other}://{server.host}:{server.port}/{server.database}",
        poolclass=NullPool,
        connect_args={"connect_timeout": 30},
    )
    rotsafe.attach(engine, rotation.secret())

    started = time.monotonic()
    with pytest.raises(rotsafe.SecretFormatError) as caught:
        engine.connect()

    assert caught.value.field == "engine"
    assert "Attach the secret to a" in str(caught.value)
    # The driver was never asked to log in to a server it cannot speak to.
    assert time.monotonic() - started < 10
    assert rotation.calls == 1


def test_a_secret_given_another_families_driver_cannot_attach(rotation):
    """attach() refuses a secret set up for a driver of the other family."""
    driver = "psycopg" if rotation.family == "mysql" else "pymysql"
    engine = sqlalchemy.create_engine(rotation.url())

    with pytest.raises(ValueError, match=f"set up for the {driver} driver"):
        rotsafe.attach(engine, rotation.secret(driver=driver))


def test_a_login_only_secret_takes_the_rest_from_the_url(rotation):
    """An RDS-managed secret (a login and nothing else) works with attach."""
    client = rotation.rotator.client
    full = json.loads(
        client.get_secret_value(SecretId=rotation.secret_id)["SecretString"]
    )
    login = {key: full[key] for key in ("username", "password")}
    client.put_secret_value(
        SecretId=rotation.secret_id, SecretString=json.dumps(login)
    )
    engine = sqlalchemy.create_engine(rotation.url(), pool_size=4)
    rotsafe.attach(engine, rotation.secret())

    result = run_through(rotation, engine)

    assert_unnoticed(result, rotation.calls)
    stored = client.get_secret_value(SecretId=rotation.secret_id)
    assert set(json.loads(stored["SecretString"])) == {"username", "password"}
    engine.dispose()

"""Every supported driver, sync and async, through rotations on servers."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

import rotsafe
import rotsafe.testing
from rotsafe.testing import DelayedSource, RotationHarness
from rotsafe.testing._servers import DatabaseServer
from support import Ticker, assert_unnoticed, attributes_of, run_async_load

SYNC = [
    "pymysql",
    "mysqldb",
    "mysqlconnector",
    "psycopg",
    "psycopg2",
    "pg8000",
]
ASYNC = ["aiomysql", "asyncmy", "asyncpg", "psycopg_async"]
FAMILY = {name: rotsafe._drivers.DRIVERS[name].family for name in SYNC + ASYNC}


@pytest.fixture(params=SYNC + ASYNC)
def driver(request: pytest.FixtureRequest) -> str:
    """Each supported driver in turn."""
    return str(request.param)


@pytest.fixture
def harness(
    driver: str, request: pytest.FixtureRequest, rotsafe_secrets_manager
) -> Iterator[RotationHarness]:
    """A user and secret on the server the driver speaks to."""
    server: DatabaseServer = request.getfixturevalue(
        "rotsafe_mariadb" if FAMILY[driver] == "mysql" else "rotsafe_postgres"
    )
    with RotationHarness(server, rotsafe_secrets_manager) as rig:
        yield rig


def test_rotation_loses_no_operation(harness: RotationHarness, driver: str):
    """Eight workers, a new connection each, through a 2 s window: no error."""
    secret = harness.secret(driver=driver)

    if driver in SYNC:
        engine = sqlalchemy.create_engine(
            harness.url(driver), poolclass=NullPool
        )
        rotsafe.attach(engine, secret)

        def select_one() -> None:
            with engine.connect() as connection:
                assert connection.execute(text("SELECT 1")).scalar() == 1

        with harness.load(select_one) as load:
            load.wait_for(40)
            harness.rotate("single-user", window=2)
            load.wait_for(load.result.count + 40)
        assert_unnoticed(load.result, harness.calls)
        engine.dispose()
        return

    async_engine = create_async_engine(harness.url(driver), poolclass=NullPool)
    rotsafe.attach(async_engine, secret)

    async def select_one_async() -> None:
        async with async_engine.connect() as connection:
            result = await connection.execute(text("SELECT 1"))
            assert result.scalar() == 1

    result = run_async_load(
        select_one_async, lambda: harness.rotate("single-user", window=2)
    )
    assert result.count >= 80
    assert_unnoticed(result, harness.calls)


def test_the_creators_fall_back_for_every_driver(
    harness: RotationHarness, driver: str
):
    """creator and async_creator find the new password after a change."""
    secret = harness.secret(driver=driver, min_refresh_interval=0)
    url = harness.url(driver).split("://")[0] + "://"

    if driver in SYNC:
        engine = sqlalchemy.create_engine(
            url, creator=rotsafe.creator(secret), poolclass=NullPool
        )
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        harness.rotator.out_of_band(window=0)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT 1")).scalar() == 1
        return

    async def scenario() -> None:
        engine = create_async_engine(
            url,
            async_creator=rotsafe.async_creator(secret),
            poolclass=NullPool,
        )
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        await asyncio.to_thread(harness.rotator.out_of_band, window=0)
        async with engine.connect() as connection:
            result = await connection.execute(text("SELECT 1"))
            assert result.scalar() == 1
        await engine.dispose()

    asyncio.run(scenario())


def test_a_refused_login_is_auth_raw_and_wrapped(
    harness: RotationHarness, driver: str
):
    """Each driver's refusal of a wrong password is AUTH, raw or wrapped."""
    secret = harness.secret(driver=driver)
    wrong = rotsafe.Credentials(
        **{
            **secret.credentials().__dict__,
            "password": "certainly-not-the-password",
        }
    )
    spec = rotsafe._drivers.DRIVERS[driver]
    url = sqlalchemy.engine.make_url(harness.url(driver)).set(
        username=wrong.username, password=wrong.password
    )

    if driver in SYNC:
        with pytest.raises(Exception) as raw:  # noqa: PT011 - any driver's
            spec.connect(wrong, {})
        engine = sqlalchemy.create_engine(url, poolclass=NullPool)
        with pytest.raises(Exception) as wrapped:  # noqa: PT011
            engine.connect()
    else:

        async def refused() -> tuple[BaseException, BaseException]:
            try:
                await spec.connect(wrong, {})
            except Exception as exc:
                first: BaseException = exc
            engine = create_async_engine(url, poolclass=NullPool)
            try:
                await engine.connect()
            except Exception as exc:
                second: BaseException = exc
            await engine.dispose()
            return first, second

        raw_error, wrapped_error = asyncio.run(refused())
        raw = pytest.ExceptionInfo.from_exc_info(
            (type(raw_error), raw_error, raw_error.__traceback__)
        )
        wrapped = pytest.ExceptionInfo.from_exc_info(
            (type(wrapped_error), wrapped_error, wrapped_error.__traceback__)
        )

    assert rotsafe.classify(raw.value) is rotsafe.ErrorKind.AUTH, raw.value
    assert rotsafe.classify(wrapped.value) is rotsafe.ErrorKind.AUTH
    assert wrong.password not in str(wrapped.value)


def test_a_disabled_login_fails_fast_for_every_driver(
    harness: RotationHarness, driver: str
):
    """A locked account or a role that may not log in is no lost password."""
    secret = harness.secret(driver=driver)
    password = secret.credentials().password
    admin = harness.server.admin_connect()
    try:
        if FAMILY[driver] == "mysql":
            admin.cursor().execute(
                "ALTER USER %s@'%%' ACCOUNT LOCK", (harness.username,)
            )
        else:
            admin.cursor().execute(f'ALTER ROLE "{harness.username}" NOLOGIN')
    finally:
        admin.close()

    def connect() -> object:
        if driver in SYNC:
            return rotsafe.creator(secret)()
        return asyncio.run(rotsafe.async_creator(secret)())

    with pytest.raises(rotsafe.ConnectionSetupError) as caught:
        connect()

    assert caught.value.kind is rotsafe.ErrorKind.HOST_BLOCKED
    assert harness.calls <= 1, "no stage was looked for"
    assert password not in attributes_of(caught.value)


LOGIN_WORDS = (
    "password authentication failed for user (using password: YES), "
    "password expired"
)


def test_a_query_error_quoting_login_words_is_not_a_refusal(
    harness: RotationHarness, driver: str
):
    """A duplicate key that reads like a refused login is still OTHER."""
    secret = harness.secret(driver=driver)
    table = f"notes_{harness.username}"
    insert = f"INSERT INTO {table} VALUES ('{LOGIN_WORDS}')"  # noqa: S608
    statements = [
        f"CREATE TABLE {table} (body VARCHAR(200) UNIQUE)",
        insert,
        insert,
    ]
    if FAMILY[driver] == "postgresql":
        # A function's own exception, with words of the application's.
        statements.append(
            f"DO $$ BEGIN RAISE EXCEPTION '{LOGIN_WORDS}'; END $$"
        )

    def refused(run: Callable[[str], object]) -> list[BaseException]:
        errors = []
        for statement in statements:
            try:
                run(statement)
            except sqlalchemy.exc.DBAPIError as exc:
                errors.append(exc)
        return errors

    if driver in SYNC:
        engine = sqlalchemy.create_engine(harness.url(driver))
        rotsafe.attach(engine, secret)

        def run(statement: str) -> None:
            with engine.begin() as connection:
                connection.execute(text(statement))

        errors = refused(run)
        engine.dispose()
    else:
        async_engine = create_async_engine(harness.url(driver))
        rotsafe.attach(async_engine, secret)

        async def run_async(statement: str) -> None:
            async with async_engine.begin() as connection:
                await connection.execute(text(statement))

        async def scenario() -> list[BaseException]:
            loop = asyncio.get_running_loop()

            def run(statement: str) -> None:
                asyncio.run_coroutine_threadsafe(
                    run_async(statement), loop
                ).result(timeout=30)

            found = await asyncio.to_thread(refused, run)
            await async_engine.dispose()
            return found

        errors = asyncio.run(scenario())

    assert len(errors) == len(statements) - 2, errors
    for error in errors:
        assert LOGIN_WORDS in str(error)
        assert rotsafe.classify(error) is rotsafe.ErrorKind.OTHER, error
        assert rotsafe.classify(error.orig) is rotsafe.ErrorKind.OTHER


def test_non_ascii_passwords_log_in(harness: RotationHarness, driver: str):
    """Each driver sends a non-ASCII password as the server stored it."""
    harness.rotator.out_of_band(window=0, password="pässwörd-€-密码")
    secret = harness.secret(driver=driver)
    spec = rotsafe._drivers.DRIVERS[driver]

    if driver in SYNC:
        spec.connect(secret.credentials(), {}).close()
        return

    async def log_in() -> None:
        engine = create_async_engine(
            harness.url(driver).split("://")[0] + "://",
            async_creator=rotsafe.async_creator(secret),
            poolclass=NullPool,
        )
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        await engine.dispose()

    asyncio.run(log_in())


def test_an_async_crowd_refused_together_all_connect(
    rotsafe_postgres, rotsafe_secrets_manager
):
    """Many tasks refused at once share the fallback without starving it."""
    with RotationHarness(rotsafe_postgres, rotsafe_secrets_manager) as rig:
        secret = rig.secret(driver="asyncpg")
        engine = create_async_engine(rig.url("asyncpg"), poolclass=NullPool)
        rotsafe.attach(engine, secret, deadline=10)
        window_open = threading.Event()
        crowd_done = threading.Event()

        def hold_window(step: rotsafe.testing.Step) -> None:
            if step.name == "testSecret":
                window_open.set()
                crowd_done.wait(timeout=60)

        async def select_one() -> int:
            async with engine.connect() as connection:
                result = await connection.execute(text("SELECT 1"))
                return int(result.scalar_one())

        async def scenario() -> list[object]:
            await select_one()
            rig.rotator.on_step = hold_window
            rotating = asyncio.create_task(
                asyncio.to_thread(rig.rotate, "single-user", window=0)
            )
            await asyncio.to_thread(window_open.wait, 30)
            outcomes = await asyncio.gather(
                *(select_one() for _ in range(48)), return_exceptions=True
            )
            crowd_done.set()
            await rotating
            await engine.dispose()
            return outcomes

        outcomes = asyncio.run(scenario())

    assert outcomes == [1] * 48


def test_a_slow_refresh_never_stalls_the_event_loop(
    rotsafe_postgres, rotsafe_secrets_manager
):
    """While a slow Secrets Manager is read, other tasks keep their ticks."""
    with RotationHarness(rotsafe_postgres, rotsafe_secrets_manager) as rig:
        secret = rotsafe.RotatingSecret(
            rig.secret_id,
            source=DelayedSource(rotsafe.BotoSource(rig.client), delay=0.5),
            min_refresh_interval=0,
            driver="asyncpg",
        )
        connect = rotsafe.async_creator(secret)

        async def connect_watched() -> list[float]:
            async with Ticker() as ticker:
                connection = await connect()
                await connection.close()
            return ticker.gaps

        async def scenario() -> list[float]:
            # The first connection reads the secret cold; after the
            # rotation, the refused login reads it again. The rotation
            # itself runs unwatched: it is the test's work (and moto's, in
            # this process), not rotsafe's.
            gaps = await connect_watched()
            await asyncio.to_thread(rig.rotator.out_of_band, window=0)
            return gaps + await connect_watched()

        gaps = asyncio.run(scenario())

    assert len(gaps) > 80, "each connection waited for a slow read"
    late = sorted(gaps)[-3:]
    assert max(gaps) < 0.06, f"the loop stalled: longest gaps {late}"

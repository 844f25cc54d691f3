"""@retry_on_auth_error: retries on refused logins only, sync and async."""

from __future__ import annotations

import asyncio
import inspect
import time

import pymysql
import pytest
import sqlalchemy
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

import rotsafe
from rotsafe.testing import DelayedSource, ManualClock, MemorySource, no_waits
from support import Ticker

REFUSED = pymysql.err.OperationalError(
    1045, "Access denied for user 'app'@'h' (using password: YES)"
)
SECRET = {
    "engine": "mysql",
    "host": "h",
    "username": "app",
    "password": "pw-v1",
}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def fake_secret(clock) -> rotsafe.RotatingSecret:
    return rotsafe.RotatingSecret(
        "prod/app/db",
        source=MemorySource(SECRET),
        clock=clock,
        sleep=clock.sleep,
    )


def naive_select(rotation, secret: rotsafe.RotatingSecret) -> int:
    """Log in with whatever the secret serves, with no fallback at all."""
    credentials = secret.credentials()
    connection = rotation.server.connect(
        credentials.username,
        credentials.password,
        database=credentials.database,
    )
    try:
        cursor = connection.cursor()
        cursor.execute("SELECT 1")
        return int(cursor.fetchone()[0])
    finally:
        connection.close()


def test_a_refused_call_succeeds_after_the_refresh(rotation):
    """A call refused with a stale password is retried with the new one."""
    secret = rotation.secret(min_refresh_interval=0)
    calls = []

    @rotsafe.retry_on_auth_error(secret)
    def load() -> int:
        calls.append(1)
        return naive_select(rotation, secret)

    assert load() == 1
    rotation.rotator.out_of_band(window=0)

    assert load() == 1
    assert len(calls) == 3


def test_an_integrity_error_is_not_retried(rotation):
    """A unique-key violation propagates at once from the only call."""
    engine = sqlalchemy.create_engine(rotation.url())
    secret = rotation.secret()
    rotsafe.attach(engine, secret)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE users (id INT PRIMARY KEY)"))
        connection.execute(text("INSERT INTO users VALUES (1)"))
    calls = []

    @rotsafe.retry_on_auth_error(secret, engine=engine)
    def insert_duplicate() -> None:
        calls.append(1)
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO users VALUES (1)"))

    with pytest.raises(sqlalchemy.exc.IntegrityError) as caught:
        insert_duplicate()

    assert len(calls) == 1
    assert not getattr(caught.value, "__notes__", None)
    engine.dispose()


def test_an_async_retry_does_not_block_the_loop(rotation):
    """While a coroutine is refreshed and retried, other tasks keep running."""
    secret = rotsafe.RotatingSecret(
        rotation.secret_id,
        source=DelayedSource(rotsafe.BotoSource(rotation.client), delay=0.3),
        min_refresh_interval=0,
    )
    calls = []

    @rotsafe.retry_on_auth_error(secret)
    async def load() -> int:
        calls.append(1)
        return await asyncio.to_thread(naive_select, rotation, secret)

    async def scenario() -> float:
        async with Ticker() as ticker:
            assert await load() == 1
        return max(ticker.gaps)

    asyncio.run(asyncio.to_thread(secret.credentials))
    rotation.rotator.out_of_band(window=0)
    longest_gap = asyncio.run(scenario())

    assert len(calls) == 2
    # The slow refresh takes 0.3 s; on the loop it would stop the ticker.
    assert longest_gap < 0.2


def test_gives_up_with_the_last_error_and_a_note(fake_secret):
    """After the attempts, the original error is raised with a note."""
    calls = []

    @rotsafe.retry_on_auth_error(fake_secret, attempts=3)
    def always_refused() -> None:
        calls.append(1)
        raise REFUSED

    with pytest.raises(pymysql.err.OperationalError) as caught:
        always_refused()

    assert caught.value is REFUSED
    assert len(calls) == 3
    assert "gave up after 3 attempts" in caught.value.__notes__[-1]
    REFUSED.__notes__.clear()


def test_other_errors_propagate_at_once_untouched(fake_secret):
    """An error that is not AUTH is raised from the first call, as it was."""
    error = ValueError("bad input")
    calls = []

    @rotsafe.retry_on_auth_error(fake_secret)
    def broken() -> None:
        calls.append(1)
        raise error

    with pytest.raises(ValueError) as caught:  # noqa: PT011 - the same object
        broken()
    assert caught.value is error
    assert len(calls) == 1
    assert not hasattr(error, "__notes__")


class ServiceError(Exception):
    """An application's own error."""


@pytest.mark.parametrize("wrapped", [False, True])
def test_credentials_rejected_is_not_retried(fake_secret, wrapped):
    """The connection layer's own deadline is not multiplied by retries."""
    calls = []

    @rotsafe.retry_on_auth_error(fake_secret)
    def rejected() -> None:
        calls.append(1)
        error = rotsafe.CredentialsRejected("prod/app/db", [], 30)
        if wrapped:
            raise ServiceError("the database is unavailable") from error
        raise error

    with pytest.raises((rotsafe.CredentialsRejected, ServiceError)):
        rejected()
    assert len(calls) == 1


def test_the_deadline_bounds_the_retries(fake_secret, clock):
    """No retry starts after the deadline, whatever attempts allow."""
    calls = []

    @rotsafe.retry_on_auth_error(fake_secret, attempts=1000, deadline=5)
    def always_refused() -> None:
        calls.append(1)
        clock.advance(1)
        raise pymysql.err.OperationalError(*REFUSED.args)

    with pytest.raises(pymysql.err.OperationalError):
        always_refused()
    assert 2 <= len(calls) <= 6


def test_no_waits_skips_the_backoff(source_secret_real_clock):
    """Inside no_waits, retries come at once: no real time passes."""
    calls = []

    @rotsafe.retry_on_auth_error(source_secret_real_clock, attempts=5)
    def always_refused() -> None:
        calls.append(time.monotonic())
        raise pymysql.err.OperationalError(*REFUSED.args)

    with no_waits(), pytest.raises(pymysql.err.OperationalError):
        always_refused()

    assert len(calls) == 5
    assert calls[-1] - calls[0] < 0.5


@pytest.fixture
def source_secret_real_clock() -> rotsafe.RotatingSecret:
    return rotsafe.RotatingSecret(
        "prod/app/db",
        source=MemorySource(SECRET),
        min_refresh_interval=0,
        sleep=lambda seconds: pytest.fail("no_waits must skip every wait"),
    )


def test_signature_and_metadata_are_kept(fake_secret):
    """The wrapper has the function's name, docstring and parameters."""

    def load_user(user_id: int, *, fresh: bool = False) -> dict[str, int]:
        """Load one user."""
        return {"id": user_id}

    wrapped = rotsafe.retry_on_auth_error(fake_secret)(load_user)

    assert wrapped.__name__ == "load_user"
    assert wrapped.__doc__ == "Load one user."
    assert inspect.signature(wrapped) == inspect.signature(load_user)
    assert wrapped(7) == {"id": 7}


def test_methods_and_coroutines_are_wrapped(fake_secret):
    """Methods keep self; coroutine functions stay coroutine functions."""

    class Repository:
        calls = 0

        @rotsafe.retry_on_auth_error(fake_secret)
        def load(self, user_id: int) -> int:
            self.calls += 1
            if self.calls == 1:
                raise pymysql.err.OperationalError(*REFUSED.args)
            return user_id

        @rotsafe.retry_on_auth_error(fake_secret)
        async def load_async(self, user_id: int) -> int:
            return user_id

    repository = Repository()
    assert repository.load(3) == 3
    assert repository.calls == 2
    assert inspect.iscoroutinefunction(Repository.load_async)
    assert asyncio.run(repository.load_async(4)) == 4


def test_attempts_must_be_positive(fake_secret):
    """Zero attempts is refused when decorating."""
    with pytest.raises(ValueError, match="attempts"):
        rotsafe.retry_on_auth_error(fake_secret, attempts=0)


def test_a_bare_decorator_is_refused(fake_secret):
    """Used without its arguments, the decorator says how to use it."""
    with pytest.raises(TypeError, match=r"@retry_on_auth_error\(secret\)"):

        @rotsafe.retry_on_auth_error  # type: ignore[arg-type]
        def load_user(user_id: int) -> int:
            return user_id


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"engine": "postgresql://db/app"}, TypeError),
        ({"attempts": 1.5}, ValueError),
        ({"attempts": True}, ValueError),
    ],
)
def test_wrong_options_are_refused_when_decorating(
    fake_secret, options, error
):
    """A non-engine, or attempts that are not whole, fail at decoration."""
    with pytest.raises(error):
        rotsafe.retry_on_auth_error(fake_secret, **options)


def test_an_async_engine_is_taken(fake_secret):
    """A coroutine's engine may be the AsyncEngine it uses."""
    engine = create_async_engine("postgresql+asyncpg://db.internal/app")
    decorate = rotsafe.retry_on_auth_error(fake_secret, engine=engine)

    @decorate
    async def load() -> int:
        return 1

    assert asyncio.run(load()) == 1

"""connect_with(): the fallback over stages, with fakes for exact counts.

The same behaviour runs against real servers in test_connect.py; here a
fake database accepts one password, so every login attempt can be counted.
"""

from __future__ import annotations

import logging
import os
import threading
import time

import pymysql
import pytest

import rotsafe
from rotsafe.testing import ManualClock, MemorySource, no_waits

SECRET = {
    "engine": "mysql",
    "host": "db.example.internal",
    "username": "app_user",
    "password": "pw-v1",
}


class FakeDatabase:
    """Accepts one password at a time and counts every login attempt."""

    def __init__(self, password: str) -> None:
        self.password = password
        self.attempts: list[str] = []
        self._lock = threading.Lock()

    def connect(self, credentials: rotsafe.Credentials) -> str:
        with self._lock:
            self.attempts.append(credentials.password)
        if credentials.password != self.password:
            raise pymysql.err.OperationalError(
                1045,
                f"Access denied for user '{credentials.username}'@'h' "
                "(using password: YES)",
            )
        return f"connection as {credentials.username}"

    def connect_once(self, credentials: rotsafe.Credentials, then: str) -> str:
        """Log in, and whatever happens take ``then`` as the password."""
        try:
            return self.connect(credentials)
        finally:
            self.password = then


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def source() -> MemorySource:
    return MemorySource(SECRET)


@pytest.fixture
def secret(source, clock) -> rotsafe.RotatingSecret:
    return on_clock(source, clock)


def on_clock(
    source: rotsafe.SecretSource, clock: ManualClock, **options: float
) -> rotsafe.RotatingSecret:
    """A secret read from ``source`` that lives and waits on ``clock``."""
    return rotsafe.RotatingSecret(
        "prod/app/db",
        source=source,
        clock=clock,
        sleep=clock.sleep,
        refresh_in_background=False,
        **options,
    )


def start_rotation(source: MemorySource, database: FakeDatabase) -> str:
    """createSecret and setSecret: AWSPENDING holds the only good password."""
    version = source.put(
        {**SECRET, "password": "pw-v2"}, stages=["AWSPENDING"]
    )
    database.password = "pw-v2"
    return version


def test_pending_is_tried_and_then_served(secret, source, clock):
    """In the window, AWSPENDING works and is then used without failing."""
    database = FakeDatabase("pw-v1")
    secret.credentials()
    start_rotation(source, database)
    clock.advance(2)

    assert rotsafe.connect_with(secret, database.connect)
    assert database.attempts == ["pw-v1", "pw-v2"]
    assert source.calls == ["AWSCURRENT", "AWSCURRENT", "AWSPENDING"]

    for _ in range(10):
        rotsafe.connect_with(secret, database.connect)
    assert database.attempts[2:] == ["pw-v2"] * 10
    assert len(source.calls) == 3


def test_previous_is_tried_after_a_rollback(secret, source, clock):
    """AWSCURRENT moved back before the password: AWSPREVIOUS works."""
    database = FakeDatabase("pw-v1")
    secret.credentials()
    source.put({**SECRET, "password": "pw-v2"})
    database.password = "pw-v2"
    clock.advance(400)
    assert secret.credentials().password == "pw-v2"

    rollback = source.version_of("AWSPREVIOUS")
    assert rollback is not None
    source.move("AWSCURRENT", rollback)
    clock.advance(400)

    assert rotsafe.connect_with(secret, database.connect)
    assert database.attempts[-1] == "pw-v2"
    assert secret.credentials().stage == "AWSPREVIOUS"


def test_a_failed_stage_read_is_retried_next_round(secret, source):
    """If reading AWSPENDING fails once, a later round reads it again."""
    database = FakeDatabase("pw-v1")
    secret.credentials()
    start_rotation(source, database)
    flaky = FlakyStage(source, "AWSPENDING", failures=1)
    secret._source = flaky

    assert rotsafe.connect_with(secret, database.connect)
    assert flaky.failed == 1
    assert database.attempts[-1] == "pw-v2"


def test_no_stage_holds_the_password(secret, source, clock, caplog):
    """Nothing works: CredentialsRejected at the deadline, calls bounded."""
    database = FakeDatabase("pw-unknown")
    secret.credentials()
    started = clock()

    with (
        caplog.at_level(logging.ERROR, logger="rotsafe"),
        pytest.raises(rotsafe.CredentialsRejected) as caught,
    ):
        rotsafe.connect_with(secret, database.connect, deadline=30)

    assert 29 <= clock() - started <= 31
    assert len(source.calls) <= 15
    assert caught.value.tried == (
        ("AWSCURRENT", source.version_of("AWSCURRENT")),
    )
    assert "refused every credential" in caplog.text


@pytest.mark.parametrize("deadline", [30, 0])
def test_a_crowd_refused_together_probes_once(secret, source, deadline):
    """Threads refused at once share one round instead of one each.

    With no deadline to wait in, a thread still waits for the round under
    way: its first round, whole, is another thread's.
    """
    database = FakeDatabase("pw-v1")
    secret.credentials()
    start_rotation(source, database)
    herd = threading.Barrier(32)
    results: list[str] = []

    def slow_login(credentials: rotsafe.Credentials) -> str:
        time.sleep(0.05)
        return database.connect(credentials)

    def member() -> None:
        herd.wait(timeout=10)
        results.append(
            rotsafe.connect_with(secret, slow_login, deadline=deadline)
        )

    threads = [threading.Thread(target=member) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert len(results) == 32
    refused = database.attempts.count("pw-v1")
    accepted = database.attempts.count("pw-v2")
    assert accepted == 32
    assert refused <= 32, "each thread's own first attempt, and no more"
    assert len(source.calls) <= 3


def test_a_stuck_crowd_does_not_storm_the_database(source):
    """Threads stuck together share their rounds' login attempts."""
    secret = rotsafe.RotatingSecret(
        "prod/app/db", source=source, refresh_in_background=False
    )
    database = FakeDatabase("pw-unknown")
    secret.credentials()
    rejected: list[BaseException] = []

    def member() -> None:
        with pytest.raises(rotsafe.CredentialsRejected) as caught:
            rotsafe.connect_with(secret, database.connect, deadline=2)
        rejected.append(caught.value)

    threads = [threading.Thread(target=member) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert len(rejected) == 8
    # Alone, each thread would make about seven attempts in two seconds.
    assert len(database.attempts) <= 8 + 12


def test_a_refusal_long_past_does_not_hide_a_rollback(secret, source, clock):
    """An hour after a login was refused, its refusal says nothing new."""
    database = FakeDatabase("pw-v1")
    secret.credentials()
    database.password = "pw-v2"
    clock.advance(400)

    def finish_out_of_band(seconds: float) -> None:
        clock.advance(seconds)
        if not finished:
            finished.append(source.put({**SECRET, "password": "pw-v2"}))

    finished: list[str] = []

    assert rotsafe.connect_with(
        secret, database.connect, sleep=finish_out_of_band
    )
    assert database.attempts[-1] == "pw-v2"

    clock.advance(3600)
    source.move("AWSCURRENT", source.version_of("AWSPREVIOUS"))
    clock.advance(400)
    attempts = len(database.attempts)
    rounds = Waits(clock)

    assert rotsafe.connect_with(secret, database.connect, sleep=rounds.sleep)
    assert database.attempts[attempts:] == ["pw-v1", "pw-v2"]
    assert rounds.waited == [], (
        "AWSPREVIOUS was read again, in the first round"
    )


def test_a_brief_refusal_does_not_hide_the_next_rotation(
    secret, source, clock
):
    """A login refused for a moment, then working, is looked after afresh."""
    database = FakeDatabase("pw-v1")
    secret.credentials()
    database.password = "pw-blip"

    def blip_ends(seconds: float) -> None:
        clock.advance(seconds)
        database.password = "pw-v1"

    assert rotsafe.connect_with(secret, database.connect, sleep=blip_ends)
    clock.advance(5)
    start_rotation(source, database)
    clock.advance(1)
    attempts = len(database.attempts)
    rounds = Waits(clock)

    assert rotsafe.connect_with(secret, database.connect, sleep=rounds.sleep)
    assert database.attempts[attempts:] == ["pw-v1", "pw-v2"]
    assert rounds.waited == [], "AWSPENDING was read again, in the first round"


def test_a_second_rotation_right_after_the_first_is_found(
    secret, source, clock
):
    """A stage read in the last rotation is read again in the next one."""
    database = FakeDatabase("pw-v1")
    secret.credentials()
    second = {**SECRET, "password": "pw-v3"}

    start_rotation(source, database)
    assert rotsafe.connect_with(secret, database.connect)
    source.move("AWSCURRENT", source.version_of("AWSPENDING"))
    source.remove("AWSPENDING")
    clock.advance(0.5)
    source.put(second, stages=["AWSPENDING"])
    database.password = "pw-v3"
    attempts = len(database.attempts)
    rounds = Waits(clock)

    assert rotsafe.connect_with(secret, database.connect, sleep=rounds.sleep)
    assert database.attempts[-1] == "pw-v3"
    assert rounds.waited == [], "found in the first round, with no wait"
    assert len(database.attempts) - attempts <= 3


def test_a_login_refused_now_and_then_costs_few_reads(secret, source, clock):
    """Refusals that keep coming are answered with a read an interval."""
    database = FakeDatabase("pw-v1")
    secret.credentials()
    started = clock()
    source.calls.clear()

    for attempt in range(200):
        # A replica lagging a password change refuses one login in three.
        database.password = "pw-lagging" if attempt % 3 == 0 else "pw-v1"
        assert rotsafe.connect_with(
            secret, lambda c: database.connect_once(c, then="pw-v1")
        )
        clock.advance(0.1)

    elapsed = clock() - started
    # Each stage is read at most once per 4 s, its longest interval, after
    # the 1 s and 2 s intervals it starts with.
    assert len(source.calls) <= 3 * (elapsed / 4 + 3)


def test_a_slow_secrets_manager_cannot_hold_a_caller_past_the_deadline(
    source, clock
):
    """After the first round, no stage is read past the deadline."""

    class Slow:
        """Each read takes 1.5 s, and AWSCURRENT moves at every one."""

        def get(self, secret_id: str, stage: str) -> rotsafe.SecretVersion:
            clock.advance(1.5)
            if stage == "AWSCURRENT":
                source.put({**SECRET, "password": f"pw-at-{clock()}"})
            return source.get(secret_id, stage)

    secret = on_clock(Slow(), clock, min_refresh_interval=0)
    database = FakeDatabase("pw-unknown")
    secret.credentials()
    started = clock()

    # Every round reads all three stages: 4.5 s. The third starts at 9 s.
    with no_waits(), pytest.raises(rotsafe.CredentialsRejected):
        rotsafe.connect_with(secret, database.connect, deadline=10)

    assert clock() - started <= 10 + 1.5, "the read under way, no more"


def test_an_unreachable_secrets_manager_holds_a_caller_one_read_at_most(
    source, clock
):
    """Past the deadline, a failed read ends the reading, first round too."""

    class Unreachable:
        """Each read gives up after 1.5 s, once the secret is cached."""

        def __init__(self) -> None:
            self.up = True

        def get(self, secret_id: str, stage: str) -> rotsafe.SecretVersion:
            if self.up:
                return source.get(secret_id, stage)
            clock.advance(1.5)
            raise rotsafe.SecretUnavailable(secret_id, stage, "timed out")

    unreachable = Unreachable()
    secret = on_clock(unreachable, clock)
    database = FakeDatabase("pw-unknown")
    secret.credentials()
    unreachable.up = False
    started = clock()

    with pytest.raises(rotsafe.CredentialsRejected) as caught:
        rotsafe.connect_with(secret, database.connect, deadline=0)

    assert clock() - started <= 1.5, "one read, the one under way"
    assert "timed out" in str(caught.value)


def test_a_zero_deadline_still_tries_every_stage_once(secret, source, clock):
    """With no time to wait, the first round still looks at every stage."""
    database = FakeDatabase("pw-v1")
    secret.credentials()
    start_rotation(source, database)
    clock.advance(2)

    assert rotsafe.connect_with(secret, database.connect, deadline=0)
    assert database.attempts == ["pw-v1", "pw-v2"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_child_forked_during_a_round_can_fall_back(secret, source):
    """A round the parent's thread held never blocks a forked child."""
    database = FakeDatabase("pw-v1")
    secret.credentials()
    start_rotation(source, database)
    in_round = threading.Event()
    forked = threading.Event()

    def slow_connect(credentials: rotsafe.Credentials) -> str:
        if credentials.password == "pw-v2":
            in_round.set()
            forked.wait(timeout=10)
        return database.connect(credentials)

    parent = threading.Thread(
        target=rotsafe.connect_with, args=(secret, slow_connect)
    )
    parent.start()
    assert in_round.wait(timeout=10)

    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        try:
            rotsafe.connect_with(secret, database.connect, deadline=3)
            os._exit(0)
        except BaseException:
            os._exit(1)

    forked.set()
    parent.join(timeout=10)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child connected"


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (pymysql.err.OperationalError(2003, "Can't connect"), None),
        (pymysql.err.OperationalError(1040, "Too many connections"), None),
        (
            pymysql.err.OperationalError(1129, "Host is blocked"),
            rotsafe.ErrorKind.HOST_BLOCKED,
        ),
    ],
)
def test_other_errors_are_never_answered_with_a_refresh(
    secret, source, error, kind
):
    """Network and capacity errors propagate; setup errors are wrapped."""
    secret.credentials()

    def attempt(credentials: rotsafe.Credentials) -> str:
        raise error

    with pytest.raises(Exception) as caught:  # noqa: PT011 - checked below
        rotsafe.connect_with(secret, attempt)

    if kind is None:
        assert caught.value is error
    else:
        assert isinstance(caught.value, rotsafe.ConnectionSetupError)
        assert caught.value.kind is kind
        assert caught.value.__cause__ is error
    assert source.calls == ["AWSCURRENT"]


class Waits:
    """A sleep for connect_with that records each wait and moves the clock."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.waited: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.waited.append(seconds)
        self.clock.advance(seconds)


class FlakyStage:
    """Wraps a source so that reads of one stage fail a number of times."""

    def __init__(self, inner: MemorySource, stage: str, failures: int) -> None:
        self.inner = inner
        self.stage = stage
        self.remaining = failures
        self.failed = 0

    def get(self, secret_id: str, stage: str) -> rotsafe.SecretVersion | None:
        if stage == self.stage and self.remaining:
            self.remaining -= 1
            self.failed += 1
            raise rotsafe.SecretUnavailable(secret_id, stage, "throttled")
        return self.inner.get(secret_id, stage)

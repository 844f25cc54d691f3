"""RotatingSecret: caching, refresh, staleness and rotation, with fakes."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from datetime import timedelta

import boto3
import pytest

import rotsafe
from rotsafe.testing import ManualClock, MemorySource

SECRET = {
    "engine": "mysql",
    "host": "db.example.internal",
    "port": 3306,
    "username": "app_user",
    "password": "pw-v1",
    "dbname": "app",
}


def value(password: str, **changes: object) -> dict[str, object]:
    return {**SECRET, "password": password, **changes}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def source() -> MemorySource:
    return MemorySource(SECRET)


def make(
    source: MemorySource, clock: ManualClock, **options: object
) -> rotsafe.RotatingSecret:
    """A secret on a manual clock, refreshing in the caller's thread."""
    options.setdefault("refresh_in_background", False)
    return rotsafe.RotatingSecret(
        "prod/app/db", source=source, clock=clock, **options
    )


def test_first_read_then_warm_reads_make_no_calls(source, clock):
    """The first call reads AWSCURRENT once; warm calls never call again."""
    secret = make(source, clock, ttl=300)

    first = secret.credentials()
    for _ in range(1000):
        assert secret.credentials() is first

    assert source.calls == ["AWSCURRENT"]
    assert first.password == "pw-v1"
    assert first.stage == "AWSCURRENT"
    assert first.version_id == source.version_of("AWSCURRENT")


def test_refresh_comes_after_80_to_100_percent_of_the_ttl(source, clock):
    """Each TTL refresh is jittered within the last fifth of the TTL."""
    secret = make(source, clock, ttl=timedelta(seconds=100))
    secret.credentials()

    clock.advance(79.9)
    secret.credentials()
    assert len(source.calls) == 1

    clock.advance(20.2)
    secret.credentials()
    assert len(source.calls) == 2


def test_a_version_is_parsed_once(source, clock):
    """A TTL refresh that finds the same version serves the same object."""
    secret = make(source, clock, ttl=10)
    first = secret.credentials()

    clock.advance(11)
    again = secret.credentials()

    assert len(source.calls) == 2
    assert again is first


def test_a_new_version_is_noticed_and_reported(source, clock):
    """A TTL refresh that finds another version serves it and calls hooks."""
    secret = make(source, clock, ttl=10)
    old = secret.credentials()
    seen: list[rotsafe.Rotation] = []
    secret.on_rotation(seen.append)

    new_id = source.put(value("pw-v2"))
    clock.advance(11)

    assert secret.credentials().password == "pw-v2"
    assert len(seen) == 1
    assert seen[0].previous_version_id == old.version_id
    assert seen[0].version_id == new_id
    assert seen[0].credentials.password == "pw-v2"


def test_a_failing_rotation_hook_is_logged_not_raised(source, clock, caplog):
    """An exception in a rotation callback never reaches the caller."""
    secret = make(source, clock, ttl=10)
    secret.credentials()

    @secret.on_rotation
    def broken(rotation: rotsafe.Rotation) -> None:
        raise RuntimeError("hook failed")

    source.put(value("pw-v2"))
    clock.advance(11)
    with caplog.at_level(logging.ERROR, logger="rotsafe"):
        assert secret.credentials().password == "pw-v2"

    assert "rotation callback failed" in caplog.text


def test_expired_ttl_serves_others_while_one_refreshes(clock):
    """While one caller refreshes, the others get the cached value at once."""
    source = SlowSource(SECRET)
    secret = make(source, clock, ttl=10)
    cached = secret.credentials()
    source.put(value("pw-v2"))
    clock.advance(11)

    source.hold()
    refresher = threading.Thread(target=secret.credentials)
    refresher.start()
    source.entered.wait(timeout=10)

    served = [secret.credentials() for _ in range(100)]

    source.release()
    refresher.join(timeout=10)
    assert all(each is cached for each in served)
    assert source.calls == ["AWSCURRENT", "AWSCURRENT"]
    assert secret.credentials().password == "pw-v2"


def test_background_refresh_keeps_every_caller_waiting_for_nothing(clock):
    """By default the TTL refresh runs in a thread of its own."""
    source = SlowSource(SECRET)
    secret = make(source, clock, ttl=10, refresh_in_background=True)
    cached = secret.credentials()
    source.put(value("pw-v2"))
    clock.advance(11)

    source.hold()
    served = [secret.credentials() for _ in range(100)]
    assert source.entered.wait(timeout=10), "a refresh was started"
    assert all(each is cached for each in served)
    assert threading.current_thread().name == "MainThread"

    source.release()
    wait_until(lambda: secret.credentials().password == "pw-v2")
    assert source.calls == ["AWSCURRENT", "AWSCURRENT"]


def test_a_warm_read_on_the_real_clock_reads_no_clock(source):
    """With the default clock, a timer, not each call, ends the TTL."""
    secret = rotsafe.RotatingSecret("prod/app/db", source=source)
    first = secret.credentials()
    reads = []
    real_clock = secret.clock
    secret.clock = lambda: reads.append(1) or real_clock()

    for _ in range(1000):
        assert secret.credentials() is first

    assert reads == []
    assert source.calls == ["AWSCURRENT"]


def test_the_ttl_ends_on_the_real_clock(source):
    """A timer expires the value, and the next call reads the new one."""
    secret = rotsafe.RotatingSecret(
        "prod/app/db", source=source, ttl=0.2, refresh_in_background=False
    )
    assert secret.credentials().password == "pw-v1"
    source.put(value("pw-v2"))

    wait_until(lambda: secret.credentials().password == "pw-v2")
    assert source.calls == ["AWSCURRENT", "AWSCURRENT"]


def test_a_value_is_never_served_past_max_stale_on_the_real_clock(source):
    """The timer also ends a stale value's service while reads fail."""
    secret = rotsafe.RotatingSecret(
        "prod/app/db",
        source=source,
        ttl=0.2,
        max_stale=0.3,
        refresh_in_background=False,
    )
    secret.credentials()
    source.fail(rotsafe.SecretUnavailable("prod/app/db", "AWSCURRENT", "down"))

    def refused() -> bool:
        try:
            secret.credentials()
        except rotsafe.SecretUnavailable:
            return True
        return False

    wait_until(refused)
    assert refused(), "once past max_stale, every call is refused"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_keeps_following_the_secret(source):
    """A child has no timer thread of its parent's, yet its TTLs still end."""
    secret = rotsafe.RotatingSecret(
        "prod/app/db", source=source, ttl=0.2, refresh_in_background=False
    )
    secret.credentials()

    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        try:
            source.put(value("pw-v2"))
            wait_until(lambda: secret.credentials().password == "pw-v2", 10)
            os._exit(0)
        except BaseException:
            os._exit(1)

    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child saw pw-v2"
    assert secret.credentials().password == "pw-v1", "the parent is apart"


def test_failed_refresh_serves_the_cache_and_backs_off(source, clock, caplog):
    """With Secrets Manager down, the cache is served and calls thin out."""
    secret = make(source, clock, ttl=10, max_stale=3600)
    cached = secret.credentials()
    source.fail(rotsafe.SecretUnavailable("prod/app/db", "AWSCURRENT", "down"))

    with caplog.at_level(logging.WARNING, logger="rotsafe"):
        for _ in range(600):
            clock.advance(1)
            assert secret.credentials() is cached

    attempts = source.calls.count("AWSCURRENT") - 1
    # 590 seconds of outage: exponential backoff capped at a minute, not one
    # call per second.
    assert 8 <= attempts < 60
    assert "serving the value read" in caplog.text
    assert "pw-v1" not in caplog.text

    source.fail(None)
    clock.advance(61)
    secret.credentials()
    clock.advance(1)
    assert secret.credentials() is cached
    calls = len(source.calls)
    clock.advance(5)
    secret.credentials()
    assert len(source.calls) == calls, "back to the TTL after a success"


def test_staleness_is_bounded(source, clock):
    """Past ttl + max_stale without a successful read, every call fails."""
    secret = make(source, clock, ttl=10, max_stale=20)
    secret.credentials()
    source.fail(rotsafe.SecretUnavailable("prod/app/db", "AWSCURRENT", "down"))

    for _ in range(29):
        clock.advance(1)
        secret.credentials()
    clock.advance(2)
    for _ in range(120):
        clock.advance(0.5)
        with pytest.raises(rotsafe.SecretUnavailable, match="max_stale"):
            secret.credentials()

    source.fail(None)
    clock.advance(61)
    assert secret.credentials().password == "pw-v1"


def test_an_unexpected_source_error_is_a_failed_read(source, clock):
    """A source that raises anything at all is backed off like an outage."""
    secret = make(source, clock, ttl=10)
    cached = secret.credentials()
    source.put(value("pw-v2", port="3306\u00b2"))

    for _ in range(100):
        clock.advance(0.2)
        assert secret.credentials() is cached

    assert len(source.calls) < 10


def test_nothing_cached_raises_and_backs_off(source, clock):
    """A first read that fails raises, and callers do not hammer the API."""
    source.fail(rotsafe.SecretUnavailable("prod/app/db", "AWSCURRENT", "down"))
    secret = make(source, clock)

    with pytest.raises(rotsafe.SecretUnavailable) as caught:
        secret.credentials()
    assert "down" in str(caught.value)

    for _ in range(50):
        with pytest.raises(rotsafe.SecretUnavailable, match="down"):
            secret.credentials()
    assert len(source.calls) == 1

    source.fail(None)
    clock.advance(120)
    assert secret.credentials().password == "pw-v1"


def test_forced_refreshes_are_single_flight(clock):
    """Sixty-four threads refreshing at once make one call."""
    source = SlowSource(SECRET)
    secret = make(source, clock, min_refresh_interval=0)
    secret.credentials()
    source.put(value("pw-v2"))
    clock.advance(5)

    source.hold()
    barrier = threading.Barrier(64)
    results: list[rotsafe.Credentials] = []

    def refresh() -> None:
        barrier.wait()
        results.append(secret.refresh())

    threads = [threading.Thread(target=refresh) for _ in range(64)]
    for thread in threads:
        thread.start()
    source.entered.wait(timeout=10)
    wait_until_waiting_in(threads, "_read_stage", count=63)
    source.release()
    for thread in threads:
        thread.join(timeout=10)

    assert source.calls == ["AWSCURRENT", "AWSCURRENT"]
    assert len(results) == 64
    assert {each.password for each in results} == {"pw-v2"}


def test_forced_refreshes_are_rate_limited(source, clock):
    """Refreshes within the minimum interval are answered from the cache."""
    secret = make(source, clock, min_refresh_interval=1.0)
    secret.credentials()

    for _ in range(10):
        secret.refresh()
    assert len(source.calls) == 1

    clock.advance(1.5)
    secret.refresh()
    assert len(source.calls) == 2


def test_unchanged_reads_space_out(source, clock):
    """Forced reads that find nothing new wait longer, up to a few seconds."""
    secret = make(source, clock, min_refresh_interval=1.0)
    secret.credentials()

    for _ in range(60):
        clock.advance(0.5)
        secret.refresh()

    # 30 s of a refresh every half second: the intervals grow to 4 s.
    assert 8 <= len(source.calls) <= 12


def test_other_stages_are_read_on_demand(source, clock):
    """AWSPENDING is None outside a rotation and readable during one."""
    secret = make(source, clock)
    assert secret.stage("AWSPENDING") is None

    pending_id = source.put(value("pw-v2"), stages=["AWSPENDING"])
    clock.advance(2)
    pending = secret.stage("AWSPENDING")

    assert pending is not None
    assert pending.password == "pw-v2"
    assert pending.stage == "AWSPENDING"
    assert pending.version_id == pending_id
    assert secret.credentials().password == "pw-v1"


def test_accepted_stage_is_served_until_current_moves(source, clock):
    """A stage the database accepted is served until AWSCURRENT moves."""
    secret = make(source, clock, ttl=10)
    secret.credentials()
    pending_id = source.put(value("pw-v2"), stages=["AWSPENDING"])
    pending = secret.stage("AWSPENDING")
    assert pending is not None

    secret.accepted(pending)
    assert secret.credentials() is pending

    clock.advance(11)
    assert secret.credentials() is pending, "AWSCURRENT has not moved yet"

    source.move("AWSCURRENT", pending_id)
    clock.advance(11)
    served = secret.credentials()
    assert served.stage == "AWSCURRENT"
    assert served.password == "pw-v2"


def test_accepting_current_again_ends_the_fallback(source, clock):
    """Accepting AWSCURRENT's login drops a stage served instead of it."""
    secret = make(source, clock)
    current = secret.credentials()
    source.put(value("pw-v0"), stages=["AWSPREVIOUS"])
    previous = secret.stage("AWSPREVIOUS")
    assert previous is not None

    secret.accepted(previous)
    assert secret.credentials() is previous
    secret.accepted(current)
    assert secret.credentials() is current


def test_a_lagging_cache_does_not_undo_a_rotation(clock):
    """A SecretCache still holding the old value is not read as a rotation."""
    cache = StringCache(value("pw-v1"))
    direct = MemorySource(SECRET)
    secret = make(direct, clock, cache=cache, ttl=10)
    rotations: list[rotsafe.Rotation] = []
    secret.on_rotation(rotations.append)
    secret.credentials()

    direct.put(value("pw-v2"))
    clock.advance(2)
    assert secret.refresh().password == "pw-v2"
    for _ in range(5):
        clock.advance(11)
        assert secret.credentials().password == "pw-v2"

    cache.value = json.dumps(value("pw-v2"))
    clock.advance(11)
    assert secret.credentials().password == "pw-v2"
    cache.value = json.dumps(value("pw-v3"))
    clock.advance(11)
    assert secret.credentials().password == "pw-v3"
    assert len(rotations) == 2


def test_secret_cache_answers_ttl_refreshes(clock):
    """With a SecretCache, steady reads go to it and forced ones do not."""
    cache = StringCache(value("pw-v1"))
    direct = MemorySource(SECRET)
    secret = make(direct, clock, cache=cache, ttl=10)

    assert secret.credentials().password == "pw-v1"
    clock.advance(11)
    secret.credentials()
    assert cache.reads == 2
    assert direct.calls == []

    clock.advance(2)
    secret.refresh()
    assert direct.calls == ["AWSCURRENT"]


def test_a_forced_read_never_takes_the_caches_answer(clock):
    """A refresh right after a SecretCache read still asks Secrets Manager."""
    cache = StringCache(value("pw-v1"))
    direct = MemorySource(value("pw-v2"))
    secret = make(direct, clock, cache=cache, ttl=10)
    assert secret.credentials().password == "pw-v1"

    assert secret.refresh().password == "pw-v2"
    assert direct.calls == ["AWSCURRENT"]
    assert secret.stage("AWSCURRENT", since=clock()).password == "pw-v2"
    assert direct.calls == ["AWSCURRENT"], "a direct read answers it"


def test_a_forced_read_waiting_behind_a_cache_read_still_asks(clock):
    """A refresh that waited while the SecretCache was read asks AWS."""
    cache = HeldCache(value("pw-v1"))
    direct = MemorySource(value("pw-v2"))
    secret = make(direct, clock, cache=cache, ttl=10)
    secret.credentials()
    clock.advance(11)

    cache.hold()
    expiry = threading.Thread(target=secret.credentials)
    expiry.start()
    assert cache.entered.wait(timeout=10)
    forced: list[rotsafe.Credentials] = []
    refresh = threading.Thread(target=lambda: forced.append(secret.refresh()))
    refresh.start()
    wait_until_waiting_in([refresh], "_read_stage", 1)
    cache.release()
    for thread in (expiry, refresh):
        thread.join(timeout=10)

    assert [each.password for each in forced] == ["pw-v2"]
    assert direct.calls == ["AWSCURRENT"]


def test_repr_hides_the_password(source, clock):
    """Neither the secret nor its credentials show the password."""
    source.put(value("sentinel-7f3a"))
    secret = make(source, clock)
    credentials = secret.credentials()

    for text in (repr(secret), repr(credentials), str(credentials)):
        assert "sentinel-7f3a" not in text
    assert "app_user" in repr(credentials)


@pytest.mark.parametrize(
    ("option", "bad"),
    [
        ("ttl", 0),
        ("ttl", -1),
        ("min_refresh_interval", float("nan")),
        ("port", "3306"),
        ("port", True),
        ("port", 0),
        ("port", 3306.5),
        ("host", ""),
        ("host", 123),
        ("database", " "),
        ("driver", ""),
    ],
)
def test_bad_arguments_are_refused(source, option, bad):
    """Durations, ports, hosts and databases are checked when given."""
    with pytest.raises(ValueError, match=option):
        rotsafe.RotatingSecret("prod/app/db", source=source, **{option: bad})


def test_a_missing_region_is_a_clear_error(monkeypatch, tmp_path):
    """With no region anywhere, the first read says what to set."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    secret = rotsafe.RotatingSecret("prod/app/db")

    with pytest.raises(rotsafe.SecretUnavailable, match="AWS_DEFAULT_REGION"):
        secret.credentials()


def test_the_region_advice_works(
    monkeypatch, tmp_path, rotsafe_secrets_manager
):
    """Setting the variable the error names lets the default client read."""
    server = rotsafe_secrets_manager
    server.client().create_secret(
        Name="region/advice",
        SecretString=json.dumps(value("pw-region")),
    )
    for name in ("AWS_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", server.endpoint_url)
    monkeypatch.setenv("AWS_DEFAULT_REGION", server.region)
    # A fresh default session, so that it reads the variables set here.
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)

    secret = rotsafe.RotatingSecret("region/advice")

    assert secret.credentials().password == "pw-region"


def test_an_unknown_driver_is_refused(source):
    """A driver rotsafe does not know is named in the error."""
    with pytest.raises(ValueError, match="oracledb"):
        rotsafe.RotatingSecret("prod/app/db", source=source, driver="oracledb")


def wait_until(condition, timeout: float = 10.0) -> None:
    """Block until ``condition()`` is true; a bound against hangs."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the condition never held")
        time.sleep(0.001)


def wait_until_waiting_in(
    threads: list[threading.Thread], function: str, count: int
) -> None:
    """Block until ``count`` of ``threads`` are paused inside ``function``."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        frames = sys._current_frames()
        waiting = sum(
            1
            for thread in threads
            if thread.ident in frames
            and frames[thread.ident].f_code.co_name == function
        )
        if waiting >= count:
            return
        time.sleep(0.001)
    raise TimeoutError(f"threads did not reach {function}")


class SlowSource(MemorySource):
    """A MemorySource whose reads can be held until released."""

    def __init__(self, value: dict[str, object]) -> None:
        super().__init__(value)
        self.entered = threading.Event()
        self._gate = threading.Event()
        self._gate.set()

    def hold(self) -> None:
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    def get(self, secret_id, stage):
        self.entered.set()
        self._gate.wait(timeout=10)
        return super().get(secret_id, stage)


class HeldCache:
    """A SecretCache whose reads can be held until released."""

    def __init__(self, value: dict[str, object]) -> None:
        self.value = json.dumps(value)
        self.entered = threading.Event()
        self._gate = threading.Event()
        self._gate.set()

    def hold(self) -> None:
        self._gate.clear()
        self.entered.clear()

    def release(self) -> None:
        self._gate.set()

    def get_secret_string(self, secret_id, version_stage=None):
        self.entered.set()
        self._gate.wait(timeout=10)
        return self.value

    def get_secret_binary(self, secret_id, version_stage=None):
        return None


class StringCache:
    """The part of aws_secretsmanager_caching.SecretCache rotsafe uses."""

    def __init__(self, value: dict[str, object]) -> None:
        self.value = json.dumps(value)
        self.reads = 0

    def get_secret_string(self, secret_id, version_stage=None):
        self.reads += 1
        return self.value

    def get_secret_binary(self, secret_id, version_stage=None):
        return None

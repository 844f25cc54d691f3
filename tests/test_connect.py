"""creator(): new connections through real rotations, on real servers.

Every test here runs against a throwaway MariaDB and a throwaway PostgreSQL
server, and moto's Secrets Manager reached through a real boto3 client.
"""

from __future__ import annotations

import logging
import socket
import threading
import traceback

import pytest

import rotsafe
from rotsafe.testing import ManualClock
from rotsafe.testing._moto import SecretsManagerServer
from support import assert_unnoticed, attributes_of, describe, locals_of

SENTINEL = "sentinel-Pw-4c1d9e"


def select_one(connect: rotsafe.Connector) -> None:
    connection = connect()
    try:
        cursor = connection.cursor()
        cursor.execute("SELECT 1")
        assert cursor.fetchone()[0] == 1
    finally:
        connection.close()


def run_through(rotation, connect, strategy, *, window=2.0, threads=8):
    """Run load, rotate in the middle of it, and return the load's result."""
    with rotation.load(lambda: select_one(connect), threads=threads) as load:
        load.wait_for(40)
        rotation.rotate(strategy, window=window)
        settled = load.result.count
        load.wait_for(settled + 40)
    return load.result


def test_single_user_rotation_loses_no_operation(rotation):
    """A single-user rotation under load: no failure, few API calls."""
    connect = rotsafe.creator(rotation.secret(), connect_timeout=10)

    result = run_through(rotation, connect, "single-user")

    assert_unnoticed(result, rotation.calls)


def test_the_window_costs_one_fallback_per_process(rotation, caplog):
    """Once a stage works, new connections use it without failing first."""
    secret = rotation.secret()
    connect = rotsafe.creator(secret)
    select_one(connect)
    steps = []

    def connect_during_window(step) -> None:
        steps.append(step.name)
        if step.name == "testSecret":
            with caplog.at_level(logging.INFO, logger="rotsafe"):
                for _ in range(20):
                    select_one(connect)

    rotation.rotator.on_step = connect_during_window
    record = rotation.rotate("single-user", window=0.1)

    assert steps[-1] == "finishSecret"
    assert caplog.text.count("trying the other stages") == 1
    assert secret.credentials().version_id == record.version_id


@pytest.mark.parametrize("strategy", ["alternating-users", "out-of-band"])
def test_other_strategies_lose_no_operation(rotation, strategy):
    """Alternating users and an out-of-band change: no failed operation."""
    connect = rotsafe.creator(rotation.secret())

    result = run_through(rotation, connect, strategy)

    assert result.failed == 0, describe(result)


def test_emergency_rollback_loses_no_operation(rotation):
    """AWSCURRENT moved back, then the password put back: no failure."""
    connect = rotsafe.creator(rotation.secret(ttl=1))
    rotation.rotate("single-user", window=0)

    result = run_through(rotation, connect, "rollback")

    assert result.failed == 0, describe(result)


@pytest.mark.parametrize("then", ["single-user", "rollback"])
def test_a_rotation_right_after_another_loses_no_operation(rotation, then):
    """A rotation, or a rollback, straight after another: found as fast."""
    connect = rotsafe.creator(rotation.secret())

    with rotation.load(lambda: select_one(connect)) as load:
        load.wait_for(40)
        rotation.rotate("single-user", window=0.3)
        rotation.rotate(then, window=2)
        load.wait_for(load.result.count + 40)

    assert_unnoticed(load.result, rotation.calls)


def test_out_of_band_after_other_rotations_is_found_soon(rotation):
    """Threads that waited out earlier rounds still poll AWSCURRENT often."""
    connect = rotsafe.creator(rotation.secret())

    with rotation.load(lambda: select_one(connect), threads=6) as load:
        load.wait_for(40)
        for strategy in ("single-user", "rollback", "out-of-band"):
            rotation.rotate(strategy, window=0.5)
        load.wait_for(load.result.count + 40)

    assert load.result.failed == 0, describe(load.result)
    # Out of band, nothing holds the password until AWSCURRENT moves; then
    # it is found within a poll or two.
    assert load.result.slowest < 5


def test_a_password_changed_by_hand_and_back_loses_no_operation(rotation):
    """Threads refused a login that then works again all carry on with it."""
    secret = rotation.secret()
    connect = rotsafe.creator(secret, deadline=30)
    select_one(connect)
    password = secret.credentials().password

    with rotation.load(lambda: select_one(connect)) as load:
        load.wait_for(40)
        rotation.server.set_password(rotation.username, SENTINEL)
        threading.Event().wait(2.0)
        rotation.server.set_password(rotation.username, password)
        settled = load.result.count
        load.wait_for(settled + 40)

    assert load.result.failed == 0, describe(load.result)
    # Held for the two seconds, and one backoff wait more at most.
    assert load.result.slowest < 10


def locked_out(rotation, clock: ManualClock, deadline: float):
    """Connect once, then give the database a password no stage holds."""
    secret = rotation.secret(clock=clock, sleep=clock.sleep)
    connect = rotsafe.creator(secret, deadline=deadline)
    select_one(connect)
    rotation.server.set_password(rotation.username, SENTINEL)
    return secret, connect


def test_a_password_no_stage_holds_is_rejected_in_time(rotation):
    """No stage holds the password: CredentialsRejected, few API calls."""
    clock = ManualClock()
    secret, connect = locked_out(rotation, clock, deadline=30)
    started = clock()

    with pytest.raises(rotsafe.CredentialsRejected) as caught:
        select_one(connect)

    assert clock() - started <= 30.5
    assert rotation.calls <= 15
    assert caught.value.secret_id == rotation.secret_id
    assert ("AWSCURRENT", caught.value.tried[0][1]) == caught.value.tried[0]
    assert rotsafe.is_auth_error(caught.value.__cause__)
    shown = "".join(traceback.format_exception(caught.value))
    assert "AWSCURRENT" in shown
    held = locals_of(caught.value)
    assert "refused" in held, "the frames were walked"
    attributes = attributes_of(caught.value)
    assert "secret_id=" in attributes, "the attributes were walked"
    for text in (shown, held, attributes):
        assert SENTINEL not in text
        assert secret.credentials().password not in text


def test_refusals_that_keep_coming_cost_a_read_an_interval(rotation):
    """A login refused again and again reads each stage once an interval."""
    clock = ManualClock()
    _, connect = locked_out(rotation, clock, deadline=0)
    before = rotation.calls
    started = clock()

    for _ in range(300):
        with pytest.raises(rotsafe.CredentialsRejected):
            select_one(connect)
        clock.advance(0.1)

    elapsed = clock() - started
    # Each of three stages once per 4 s, its longest interval, after the
    # 1 s and 2 s intervals it starts with.
    assert rotation.calls - before <= 3 * (elapsed / 4 + 3)


@pytest.mark.parametrize("deadline", [30, 0])
def test_sixty_four_threads_refused_together_share_two_calls(
    rotation, deadline
):
    """A herd refused at once all connect, with two forced API calls."""
    secret = rotation.secret()
    connect = rotsafe.creator(secret, deadline=deadline)
    select_one(connect)
    before = rotation.calls

    herd = threading.Barrier(64)
    set_secret_done = threading.Event()
    herd_done = threading.Event()
    failures: list[BaseException] = []

    def member() -> None:
        herd.wait(timeout=30)
        try:
            select_one(connect)
        except Exception as exc:
            failures.append(exc)

    def hold_window_open(step) -> None:
        if step.name == "testSecret":
            set_secret_done.set()
            herd_done.wait(timeout=60)

    members = [threading.Thread(target=member) for _ in range(64)]
    rotation.rotator.on_step = hold_window_open
    rotator = threading.Thread(
        target=rotation.rotate, args=("single-user",), kwargs={"window": 0}
    )
    rotator.start()
    assert set_secret_done.wait(timeout=30)
    for thread in members:
        thread.start()
    for thread in members:
        thread.join(timeout=60)
    herd_done.set()
    rotator.join(timeout=30)

    assert failures == []
    assert rotation.calls - before <= 2


def test_cached_value_outlives_an_unreachable_secrets_manager(rotation):
    """With Secrets Manager gone, connections go on for longer than the TTL."""
    with SecretsManagerServer() as doomed:
        client = doomed.client()
        secret = rotsafe.RotatingSecret(
            rotation.secret_id, client=client, ttl=0.5
        )
        connect = rotsafe.creator(secret)
        select_one(connect)

    with rotation.load(lambda: select_one(connect), threads=4) as load:
        load.wait_for(20)
        threading.Event().wait(2.0)
    assert load.result.failed == 0, describe(load.result)


def test_an_unreachable_secrets_manager_is_read_once_past_the_deadline(
    rotation,
):
    """With no time left, a failed read ends the looking, first round too."""
    with SecretsManagerServer() as doomed:
        client = doomed.client()
        secret = rotsafe.RotatingSecret(rotation.secret_id, client=client)
        connect = rotsafe.creator(secret, deadline=0)
        select_one(connect)
    reads: list[str] = []
    client.meta.events.register(
        "before-call.secrets-manager.GetSecretValue",
        # AWSCURRENT is the stage a read naming none gets.
        lambda params, **_: reads.append(
            params.get("VersionStage", "AWSCURRENT")
        ),
    )
    rotation.server.set_password(rotation.username, SENTINEL)

    with pytest.raises(rotsafe.CredentialsRejected) as caught:
        select_one(connect)

    assert reads == ["AWSCURRENT"]
    assert caught.value.secrets_manager_error


def test_errors_that_are_not_auth_get_no_refresh(rotation):
    """A database the user may not use fails at once, with no refresh.

    PostgreSQL says the database does not exist (a setup error); MariaDB
    says the user may not use it (a permission error, raised as it is).
    """
    connect = rotsafe.creator(rotation.secret(database="no_such_db"))

    with pytest.raises(Exception) as caught:  # noqa: PT011 - depends on server
        select_one(connect)

    if rotation.family == "postgresql":
        assert isinstance(caught.value, rotsafe.ConnectionSetupError)
        assert caught.value.kind is rotsafe.ErrorKind.CONFIG
        assert "no_such_db" in str(caught.value.__cause__)
    else:
        assert rotsafe.classify(caught.value) is rotsafe.ErrorKind.PERMISSION
        assert type(caught.value).__module__.startswith("pymysql")
    assert rotation.calls == 1


def test_network_errors_propagate_untouched(rotation, unused_port):
    """An unreachable database raises the driver's error, no refresh."""
    secret = rotation.secret(port=unused_port)
    connect = rotsafe.creator(secret, connect_timeout=5)

    with pytest.raises(Exception) as caught:  # noqa: PT011 - any driver's
        select_one(connect)

    assert rotsafe.classify(caught.value) is rotsafe.ErrorKind.NETWORK
    assert type(caught.value).__module__.split(".")[0] in {
        "pymysql",
        "psycopg",
    }
    assert rotation.calls == 1


@pytest.mark.parametrize(
    "password",
    ["p%8Fw@rd:/?#[]&=+ '\"\\", "pässwörd-€-密码", "  spaced\tout  "],
    ids=["url-and-quotes", "non-ascii", "edged-with-spaces"],
)
def test_special_characters_reach_the_driver_unchanged(rotation, password):
    """URL, quoting, non-ASCII and edge-space passwords log in as stored."""
    rotation.rotator.out_of_band(window=0, password=password)
    secret = rotation.secret()

    select_one(rotsafe.creator(secret))

    assert secret.credentials().password == password


def test_no_password_reaches_the_logs(rotation, caplog):
    """At DEBUG, a rotation with fallbacks logs no password at all."""
    connect = rotsafe.creator(rotation.secret())
    first = rotation.secret().credentials().password

    with (
        caplog.at_level(logging.DEBUG),
        rotation.load(lambda: select_one(connect), threads=4) as load,
    ):
        load.wait_for(20)
        rotation.rotator.single_user(window=1.0, password=SENTINEL)
        load.wait_for(load.result.count + 20)

    assert "trying the other stages" in caplog.text
    assert SENTINEL not in caplog.text
    assert first not in caplog.text


@pytest.mark.parametrize(
    "option", ["password", "user", "host", "dbname", "driver"]
)
def test_connect_options_may_not_carry_a_login(rotation, option):
    """Login, target and driver options are refused: the secret has them."""
    with pytest.raises(ValueError, match=option) as caught:
        rotsafe.creator(rotation.secret(), **{option: "x"})
    assert "to RotatingSecret instead" in str(caught.value)


@pytest.fixture
def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]

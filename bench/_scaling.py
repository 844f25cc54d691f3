"""Section 5: how the rotation figures grow with threads and with a fleet.

Threads: the rotation of section 3 with 1 to 64 threads. Fleet: Secrets
Manager calls per hour for 1, 10 and 1,000 processes, from each
strategy's measured per-process calls: in steady state (an hour simulated
on a manual clock against the local Secrets Manager) and per rotation
(section 3's longest window), set against the documented request quota.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any
from unittest import mock

from aws_secretsmanager_caching import SecretCache, SecretCacheConfig
from aws_secretsmanager_caching.cache import items

import rotsafe
from bench._calls import ApiCalls
from bench._strategies import STRATEGIES, TTL
from bench._window import run_repeatedly, summarize_runs
from rotsafe.testing import (
    DatabaseServer,
    ManualClock,
    RotationHarness,
    SecretsManagerServer,
)

#: Secrets Manager's quota, per account and Region: "Combined rate of
#: DescribeSecret and GetSecretValue API requests: 10,000 per second", not
#: adjustable (AWS Secrets Manager User Guide, "AWS Secrets Manager
#: quotas"). Only AWS's announcement of March 2025 gives DescribeSecret a
#: separate 40,000; the combined figure is the cautious one.
QUOTA_PER_SECOND = 10_000
QUOTA_SOURCE = (
    "https://docs.aws.amazon.com/secretsmanager/latest/userguide/"
    "reference_limits.html"
)

FLEETS = (1, 10, 1_000)

# Simulated steady state: this many hours, one read per second.
_HOURS = 4
_STEP = 1.0


def thread_scaling(
    server: DatabaseServer,
    secrets_manager: SecretsManagerServer,
    *,
    threads: tuple[int, ...],
    window: float,
    repeats: int,
    lead: float,
    tail: float,
    pause: float,
) -> dict[str, Any]:
    """Run every strategy through a rotation with each thread count."""
    rows = []
    for count in threads:
        for strategy in STRATEGIES:
            runs = run_repeatedly(
                server,
                secrets_manager,
                strategy,
                repeats,
                threads=count,
                window=window,
                lead=lead,
                tail=tail,
                pause=pause,
            )
            rows.append(
                {
                    "threads": count,
                    "strategy": strategy,
                    "rotations": repeats,
                    **summarize_runs(runs),
                }
            )
    return {"window_s": window, "rows": rows}


@contextlib.contextmanager
def _secretcache_clock(clock: ManualClock) -> Iterator[None]:
    """Make aws_secretsmanager_caching read the time from ``clock``."""
    epoch = datetime.now(timezone.utc)
    start = clock()

    class Shifted(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Shifted:
            moment = epoch + timedelta(seconds=clock() - start)
            return cls.fromtimestamp(moment.timestamp(), tz)

    with mock.patch.object(items, "datetime", Shifted):
        yield


def steady_state(
    server: DatabaseServer, secrets_manager: SecretsManagerServer
) -> dict[str, float]:
    """Return each strategy's Secrets Manager calls per process per hour.

    rotsafe and SecretCache run their real code for a few simulated hours
    with one read a second; read-once and reread-current read only at
    start and on a refused login, so they make none.
    """
    with RotationHarness(server, secrets_manager) as harness:
        clock = ManualClock()
        calls = ApiCalls()
        secret = rotsafe.RotatingSecret(
            harness.secret_id,
            ttl=TTL,
            client=calls.attach(secrets_manager.client()),
            clock=clock,
            # A background refresh would still be in flight while the
            # loop below moves the clock on by hours, and a refresh that
            # never lands looks like no refresh was needed.
            refresh_in_background=False,
        )
        secret.credentials()
        mark = calls.mark()
        for _ in range(int(_HOURS * 3600 / _STEP)):
            clock.advance(_STEP)
            secret.credentials()
        rotsafe_calls = calls.count(mark)

        clock = ManualClock()
        calls = ApiCalls()
        with _secretcache_clock(clock):
            cache = SecretCache(
                config=SecretCacheConfig(secret_refresh_interval=TTL),
                client=calls.attach(secrets_manager.client()),
            )
            cache.get_secret_string(harness.secret_id)
            mark = calls.mark()
            for _ in range(int(_HOURS * 3600 / _STEP)):
                clock.advance(_STEP)
                cache.get_secret_string(harness.secret_id)
        secretcache_calls = calls.count(mark)

    return {
        "read-once": 0.0,
        "reread-current": 0.0,
        "secretcache": secretcache_calls / _HOURS,
        "rotsafe": rotsafe_calls / _HOURS,
    }


def fleet(
    steady: dict[str, float], rotation: dict[str, Any]
) -> dict[str, Any]:
    """Scale per-process calls to fleets and set them against the quota.

    Args:
        steady: Calls per process per hour without a rotation.
        rotation: Section 3's results; its longest window gives the calls
            per process per rotation and the peak calls per second.
    """
    longest = max(row["window_s"] for row in rotation["rows"])
    per_rotation = {
        row["strategy"]: row
        for row in rotation["rows"]
        if row["window_s"] == longest
    }
    rows = []
    for processes in FLEETS:
        for strategy in STRATEGIES:
            measured = per_rotation[strategy]
            calls = measured["api_calls"]["median"]
            peak = measured["peak_calls_per_second"]["median"]
            fleet_peak = processes * peak
            rows.append(
                {
                    "processes": processes,
                    "strategy": strategy,
                    "steady_calls_per_hour": processes * steady[strategy],
                    "rotation_hour_calls": processes
                    * (steady[strategy] + calls),
                    "peak_calls_per_second": fleet_peak,
                    "share_of_quota": fleet_peak / QUOTA_PER_SECOND,
                }
            )
    return {
        "ttl_s": TTL,
        "window_s": longest,
        "threads_per_process": rotation["threads"],
        "steady_calls_per_process_hour": steady,
        "quota_per_second": QUOTA_PER_SECOND,
        "quota_source": QUOTA_SOURCE,
        "rows": rows,
        "assumption": (
            "every process sees the rotation in the same second, and its "
            "calls per rotation are those one process measured"
        ),
    }

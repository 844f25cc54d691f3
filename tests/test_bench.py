"""Specifications for the benchmark: it runs end to end and reports it all.

Nothing here is about time: the benchmark's figures are checked by running
it, and its README table comes from a full run.
"""

from __future__ import annotations

import json

import pytest
from aws_secretsmanager_caching.cache.items import SecretCacheObject
from bench._calls import ApiCalls
from bench._cli import Sizes, measure
from bench._report import render, spread
from bench._scaling import steady_state
from bench._stats import ratios, summarize
from bench._strategies import STRATEGIES, TTL
from bench._window import CONTROL

from rotsafe.testing import (
    DatabaseServer,
    MariaDBServer,
    PostgresServer,
    SecretsManagerServer,
)

TINY = Sizes(
    warm_rounds=1,
    warm_seconds=0.001,
    connect_rounds=1,
    connect_per_round=1,
    windows={0.2: 1},
    threads=2,
    pause=0.01,
    lead=0.1,
    tail=0.1,
    herd_threads=4,
    herd_repeats=1,
    scaling_threads=(1,),
    scaling_window=0.2,
    scaling_repeats=1,
)

TITLES = (
    "1. Warm read",
    "2. Connect overhead",
    "3. The rotation window",
    "4. Thundering herd",
    "5. Scaling",
    "Targets",
)


def test_tiny_run_fills_every_section(
    rotsafe_secrets_manager: SecretsManagerServer,
    rotsafe_mariadb: MariaDBServer,
    rotsafe_postgres: PostgresServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A tiny run reports all five sections, every strategy and target."""
    # SecretCache's forced refresh sleeps 2.5 to 5 s; a few milliseconds
    # keep this test short and change nothing that it checks.
    monkeypatch.setattr(SecretCacheObject, "FORCE_REFRESH_JITTER_SLEEP", 20)
    server: DatabaseServer = rotsafe_postgres

    results = measure(
        TINY,
        secrets_manager=rotsafe_secrets_manager,
        mariadb=rotsafe_mariadb,
        postgres=rotsafe_postgres,
        rotating=server,
        command="pytest",
    )

    assert json.loads(json.dumps(results)) == results
    report = render(results)
    for title in TITLES:
        assert f"### {title}\n" in report
    assert [row["strategy"] for row in results["rotation"]["rows"]] == [
        CONTROL,
        *STRATEGIES,
    ]
    assert [row["strategy"] for row in results["herd"]["rows"]] == list(
        STRATEGIES
    )
    assert [each["database"] for each in results["connect"]] == [
        "mysql",
        "postgresql",
    ]
    assert len(results["scaling"]["fleet"]["rows"]) == 3 * len(STRATEGIES)
    assert results["warm_read"]["api_calls_while_timing"] == 0
    assert len(results["targets"]) == 2 + 4 * 2 + 3 + 2
    assert all(isinstance(each["met"], bool) for each in results["targets"])


def test_ratios_pair_samples_of_the_same_round() -> None:
    """A ratio is taken within each round before the rounds are summarized."""
    summary = ratios([2.0, 30.0, 4.0], [1.0, 10.0, 1.0])

    assert summary.samples == (2.0, 3.0, 4.0)
    assert summary.median == 3.0
    assert (summary.low, summary.high) == (2.0, 4.0)


def test_spread_shows_median_then_range() -> None:
    """A figure reads as its median followed by its smallest and largest."""
    expected = "2.5 [1.5\N{EN DASH}9]"
    assert spread(summarize([1.5, 2.5, 9.0]).as_json()) == expected
    assert spread(summarize([7, 7]).as_json()) == "7"


def test_peak_rate_counts_calls_within_one_second() -> None:
    """The peak is the most calls whose stamps fall within one second."""
    stamps = iter([0.0, 0.1, 0.5, 0.95, 2.0, 2.5])
    calls = ApiCalls(clock=lambda: next(stamps))

    for _ in range(6):
        calls.record("GetSecretValue")

    assert calls.peak_per_second() == 4
    assert calls.by_operation() == {"GetSecretValue": 6}


def test_steady_state_counts_one_read_per_jittered_ttl(
    rotsafe_secrets_manager: SecretsManagerServer,
    rotsafe_postgres: PostgresServer,
) -> None:
    """Simulated hours at a 300 s TTL cost 12 to 15 reads an hour.

    Each refresh comes after 80 to 100 % of the TTL, so an hour holds
    between 3600 / 300 and 3600 / 240 of them.
    """
    hourly = steady_state(rotsafe_postgres, rotsafe_secrets_manager)

    assert 3600 / TTL <= hourly["rotsafe"] <= 3600 / (0.8 * TTL) + 1
    assert hourly["secretcache"] > 0

"""Section 1: the warm read, once the secret is cached.

Each candidate is timed as the statement service code would write, with
``timeit``: the candidates take turns within each round, and each round's
ratios are taken before the rounds are summarized.
"""

from __future__ import annotations

import json
import timeit
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters.constants import (
    DEFAULT_PROVIDERS,
)
from aws_secretsmanager_caching import SecretCache, SecretCacheConfig

import rotsafe
from bench._calls import ApiCalls
from bench._stats import ratios, summarize, target
from bench._strategies import TTL

DICT = "dict lookup"
DICT_IN_FUNCTION = "dict lookup in a function"
ROTSAFE = "rotsafe credentials()"
SECRETCACHE = "SecretCache get_secret_string + json.loads"
POWERTOOLS = "Powertools get_secret(max_age=300, transform='json')"


def _candidates(client: Any, secret_id: str) -> dict[str, timeit.Timer]:
    """Return a timer per candidate, each with its cache already warm."""
    response = client.get_secret_value(SecretId=secret_id)
    store: dict[str, dict[str, Any]] = {
        secret_id: json.loads(response["SecretString"])
    }

    def lookup() -> dict[str, Any]:
        return store[secret_id]

    secret = rotsafe.RotatingSecret(secret_id, ttl=TTL, client=client)
    cache = SecretCache(
        config=SecretCacheConfig(secret_refresh_interval=TTL), client=client
    )
    DEFAULT_PROVIDERS["secrets"] = parameters.SecretsProvider(
        boto3_client=client
    )
    names: dict[str, Any] = {
        "store": store,
        "key": secret_id,
        "lookup": lookup,
        "secret": secret,
        "cache": cache,
        "json": json,
        "get_secret": parameters.get_secret,
    }
    statements = {
        DICT: "store[key]",
        DICT_IN_FUNCTION: "lookup()",
        ROTSAFE: "secret.credentials()",
        SECRETCACHE: "json.loads(cache.get_secret_string(key))",
        POWERTOOLS: "get_secret(key, max_age=300, transform='json')",
    }
    timers = {
        name: timeit.Timer(statement, globals=names)
        for name, statement in statements.items()
    }
    for timer in timers.values():
        timer.timeit(1)
    return timers


def _calibrate(timer: timeit.Timer, seconds: float) -> int:
    """Return how many calls take about ``seconds``."""
    number, taken = timer.autorange()
    return max(1, round(number * seconds / max(taken, 1e-9)))


def warm_read(
    client_factory: Callable[[], Any],
    secret_id: str,
    *,
    rounds: int,
    seconds: float,
) -> dict[str, Any]:
    """Time each candidate's warm read over ``rounds`` rounds.

    Args:
        client_factory: Makes a boto3 Secrets Manager client.
        secret_id: A secret holding a database login.
        rounds: How many rounds each candidate is timed in.
        seconds: About how long each candidate runs per round.

    Returns:
        Nanoseconds per read and ratios, per candidate, as JSON values.
    """
    calls = ApiCalls()
    timers = _candidates(calls.attach(client_factory()), secret_id)
    numbers = {
        name: _calibrate(timer, seconds) for name, timer in timers.items()
    }
    mark = calls.mark()

    samples: dict[str, list[float]] = {name: [] for name in timers}
    order = list(timers)
    for round_number in range(rounds):
        shift = round_number % len(order)
        for name in order[shift:] + order[:shift]:
            taken = timers[name].timeit(numbers[name])
            samples[name].append(taken / numbers[name] * 1e9)

    nanoseconds = {name: summarize(each) for name, each in samples.items()}
    versus_secretcache = ratios(samples[SECRETCACHE], samples[ROTSAFE])
    versus_dict = ratios(samples[ROTSAFE], samples[DICT])
    rows = []
    for name, summary in nanoseconds.items():
        rows.append(
            {
                "candidate": name,
                "ns_per_read": summary.as_json(),
                "versus_rotsafe": ratios(
                    samples[name], samples[ROTSAFE]
                ).as_json(),
                "reads_per_round": numbers[name],
            }
        )
    return {
        "rounds": rounds,
        "rows": rows,
        "api_calls_while_timing": calls.count(mark),
        "secretcache_over_rotsafe": versus_secretcache.as_json(),
        "rotsafe_over_dict": versus_dict.as_json(),
        "targets": [
            target(
                "warm read: rotsafe at least 100x faster than "
                "aws-secretsmanager-caching",
                f"{versus_secretcache.median:,.0f}x",
                met=versus_secretcache.median >= 100,
            ),
            target(
                "warm read: rotsafe within 3x of a dict lookup",
                f"{versus_dict.median:.2f}x",
                met=versus_dict.median <= 3,
            ),
        ],
    }

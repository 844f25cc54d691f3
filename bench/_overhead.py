"""Section 2: what rotsafe adds to opening a new connection.

Four ways to open a connection take turns within each round: the bare
driver with a fixed login, ``rotsafe.creator``, a SQLAlchemy engine with
the login in its URL, and the same engine with ``rotsafe.attach``. Both
engines use ``NullPool``, so every checkout opens a new connection. A
round's figure for each way is the median time to open and close one.
"""

from __future__ import annotations

import importlib
import json
import statistics
import time
import timeit
from collections.abc import Callable
from typing import Any
from unittest import mock

import sqlalchemy
from sqlalchemy.pool import NullPool

import rotsafe
from bench._stats import Summary, ratios, summarize, target
from bench._strategies import CONNECT_TIMEOUT, TTL, open_fixed
from rotsafe.testing import (
    DatabaseServer,
    RotationHarness,
    SecretsManagerServer,
)

BARE = "bare driver connect()"
CREATOR = "rotsafe.creator"
ENGINE = "SQLAlchemy engine (NullPool)"
ATTACHED = "same engine + rotsafe.attach"

# rotsafe's own cost must stay under this share of a new connection.
TARGET = 0.05

# Calls per round when the driver's connect() is stubbed out.
_STUBBED_CALLS = 2000

_MODULES = {"mysql": "pymysql", "postgresql": "psycopg"}


class _StubConnection:
    """What the stubbed driver returns: a connection that only closes."""

    def close(self) -> None:
        """Do nothing."""


class _Openers:
    """One function per way of connecting, each opening and closing one."""

    def __init__(self, harness: RotationHarness) -> None:
        response = harness.client.get_secret_value(SecretId=harness.secret_id)
        login: dict[str, Any] = json.loads(response["SecretString"])
        secret = rotsafe.RotatingSecret(
            harness.secret_id, ttl=TTL, client=harness.client
        )
        secret.credentials()
        connector = rotsafe.creator(secret, connect_timeout=CONNECT_TIMEOUT)

        url = sqlalchemy.make_url(harness.url()).set(
            username=login["username"], password=login["password"]
        )
        options: dict[str, Any] = {
            "poolclass": NullPool,
            "connect_args": {"connect_timeout": CONNECT_TIMEOUT},
        }
        self.plain = sqlalchemy.create_engine(url, **options)
        self.attached = sqlalchemy.create_engine(harness.url(), **options)
        rotsafe.attach(self.attached, secret)

        self.login = login
        self.connector = connector
        self.ways: dict[str, Callable[[], None]] = {
            BARE: lambda: open_fixed(login).close(),
            CREATOR: lambda: connector().close(),
            ENGINE: lambda: self.plain.connect().close(),
            ATTACHED: lambda: self.attached.connect().close(),
        }

    def dispose(self) -> None:
        """Release both engines."""
        self.plain.dispose()
        self.attached.dispose()


def connect_overhead(
    server: DatabaseServer,
    secrets_manager: SecretsManagerServer,
    *,
    rounds: int,
    per_round: int,
) -> dict[str, Any]:
    """Time each way of connecting to ``server`` over ``rounds`` rounds.

    Returns:
        Milliseconds per connection and ratios, per way, as JSON values.
    """
    with RotationHarness(server, secrets_manager) as harness:
        openers = _Openers(harness)
        try:
            samples = _measure(openers.ways, rounds, per_round)
            own = _own_cost(openers, _MODULES[server.family], rounds)
        finally:
            openers.dispose()

    rows = []
    for name, each in samples.items():
        row: dict[str, Any] = {
            "way": name,
            "ms_per_connection": summarize(each).as_json(),
            "versus_bare": ratios(each, samples[BARE]).as_json(),
        }
        if name == ATTACHED:
            row["versus_engine"] = ratios(each, samples[ENGINE]).as_json()
        rows.append(row)

    creator = ratios(samples[CREATOR], samples[BARE])
    attach = ratios(samples[ATTACHED], samples[ENGINE])
    attach_bare = ratios(samples[ATTACHED], samples[BARE])
    own_share = own.median / (summarize(samples[BARE]).median * 1e3)
    database = server.family
    return {
        "database": database,
        "rounds": rounds,
        "connections_per_round": per_round,
        "rows": rows,
        "creator_own_us": own.as_json(),
        "creator_own_share": own_share,
        "targets": [
            target(
                f"connect ({database}): rotsafe.creator adds under 5 % to "
                f"the bare driver",
                _percent(creator.median),
                met=creator.median < 1 + TARGET,
            ),
            target(
                f"connect ({database}): rotsafe.creator's own time, the "
                f"driver stubbed, under 5 % of a bare connection",
                f"{own.median:.1f} µs, {own_share:.2%}",
                met=own_share < TARGET,
            ),
            target(
                f"connect ({database}): rotsafe.attach adds under 5 % to "
                f"the same engine without it",
                _percent(attach.median),
                met=attach.median < 1 + TARGET,
            ),
            target(
                f"connect ({database}): an attached engine adds under 5 % "
                f"to the bare driver (SQLAlchemy's own cost included)",
                _percent(attach_bare.median),
                met=attach_bare.median < 1 + TARGET,
            ),
        ],
    }


def _measure(
    ways: dict[str, Callable[[], None]], rounds: int, per_round: int
) -> dict[str, list[float]]:
    """Return each way's median milliseconds per connection, per round.

    Within a round the ways take turns connection by connection, so a
    burst of load from elsewhere on the machine falls on all of them.
    """
    for way in ways.values():
        way()

    samples: dict[str, list[float]] = {name: [] for name in ways}
    order = list(ways)
    for round_number in range(rounds):
        times: dict[str, list[float]] = {name: [] for name in ways}
        for turn in range(per_round):
            shift = (round_number + turn) % len(order)
            for name in order[shift:] + order[:shift]:
                started = time.perf_counter()
                ways[name]()
                times[name].append((time.perf_counter() - started) * 1e3)
        for name, each in times.items():
            samples[name].append(statistics.median(each))
    return samples


def _own_cost(openers: _Openers, module_name: str, rounds: int) -> Summary:
    """Return the microseconds rotsafe.creator adds to a driver's connect.

    The driver's ``connect()`` is replaced by a stub for both the bare call
    and the creator, so what remains of the difference is rotsafe's own
    work: reading the cached login, building the arguments, the fallback's
    bookkeeping. A round's figure is the creator's time minus the bare
    call's.
    """
    module = importlib.import_module(module_name)
    login = openers.login
    connector = openers.connector
    bare = timeit.Timer(lambda: open_fixed(login).close())
    through_creator = timeit.Timer(lambda: connector().close())

    added = []
    stub = _StubConnection()
    with mock.patch.object(module, "connect", return_value=stub):
        for _ in range(rounds):
            base = bare.timeit(_STUBBED_CALLS)
            total = through_creator.timeit(_STUBBED_CALLS)
            added.append((total - base) / _STUBBED_CALLS * 1e6)
    return summarize(added)


def _percent(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.1f} %"

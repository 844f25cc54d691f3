"""Section 4: many threads refused at the same moment.

Each strategy starts with the secret cached. A rotation changes the
password in the database and is held open there (through the rotation
driver's ``on_step``), so ``AWSCURRENT`` still holds the old password.
Once the cached read is older than rotsafe's one-second refresh limit, a
barrier releases every thread at once, each opening one connection.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from bench._calls import ApiCalls
from bench._stats import summarize, target
from bench._strategies import STRATEGIES
from rotsafe.testing import (
    DatabaseServer,
    RotationHarness,
    SecretsManagerServer,
    Step,
)

# The rotation step after which the herd runs: the database holds the new
# password, AWSPENDING holds it too, AWSCURRENT still the old one.
_HOLD_AFTER = "testSecret"

# How old the cached read must be when the herd starts, in seconds: older
# than RotatingSecret's min_refresh_interval, as it would be in service.
_CACHE_AGE = 1.2

# No strategy may keep the rotation held longer than this, in seconds.
_TIMEOUT = 120.0

MAX_CALLS = 2


class _Herd:
    """The outcome of one connection attempt per thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seconds: list[float] = []
        self.errors: list[str] = []

    def record(self, seconds: float, error: str | None) -> None:
        """Record one thread's attempt: how long, and its error if any."""
        with self.lock:
            self.seconds.append(seconds)
            if error is not None:
                self.errors.append(error)


def herd_once(
    server: DatabaseServer,
    secrets_manager: SecretsManagerServer,
    strategy: str,
    *,
    threads: int,
) -> dict[str, float]:
    """Release ``threads`` threads at once into a rotation's window."""
    with RotationHarness(server, secrets_manager) as harness:
        calls = ApiCalls()
        client = calls.attach(secrets_manager.client())
        connector = STRATEGIES[strategy](client, harness.secret_id)
        cached_at = time.monotonic()

        held = threading.Event()
        release = threading.Event()

        def hold(step: Step) -> None:
            if step.name == _HOLD_AFTER:
                held.set()
                release.wait(_TIMEOUT)

        harness.rotator.on_step = hold
        rotation = threading.Thread(
            target=harness.rotate, kwargs={"window": 0}, daemon=True
        )
        rotation.start()
        try:
            held.wait(_TIMEOUT)
            time.sleep(max(0.0, cached_at + _CACHE_AGE - time.monotonic()))
            outcome = _run_herd(connector.connect, threads, calls)
        finally:
            release.set()
            rotation.join(_TIMEOUT)
    return outcome


def _run_herd(connect: Any, threads: int, calls: ApiCalls) -> dict[str, float]:
    herd = _Herd()
    barrier = threading.Barrier(threads)

    def one() -> None:
        barrier.wait(_TIMEOUT)
        started = time.monotonic()
        error = None
        try:
            connect().close()
        except Exception as exc:
            error = type(exc).__name__
        herd.record(time.monotonic() - started, error)

    mark = calls.mark()
    workers = [
        threading.Thread(target=one, daemon=True) for _ in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(_TIMEOUT)
    return {
        "succeeded": len(herd.seconds) - len(herd.errors),
        "failed": len(herd.errors) + threads - len(herd.seconds),
        "slowest_ms": max(herd.seconds, default=0.0) * 1e3,
        "api_calls": calls.count(mark),
    }


def thundering_herd(
    server: DatabaseServer,
    secrets_manager: SecretsManagerServer,
    *,
    threads: int,
    repeats: int,
) -> dict[str, Any]:
    """Run the herd ``repeats`` times per strategy."""
    rows = []
    targets = []
    for strategy in STRATEGIES:
        runs = [
            herd_once(server, secrets_manager, strategy, threads=threads)
            for _ in range(repeats)
        ]
        rows.append(
            {
                "strategy": strategy,
                "herds": repeats,
                **{
                    figure: summarize(run[figure] for run in runs).as_json()
                    for figure in runs[0]
                },
            }
        )
        if strategy == "rotsafe":
            calls = max(run["api_calls"] for run in runs)
            succeeded = min(run["succeeded"] for run in runs)
            targets += [
                target(
                    f"herd: {threads} threads make at most {MAX_CALLS} "
                    f"Secrets Manager calls",
                    f"{calls:.0f} in the worst of {repeats}",
                    met=calls <= MAX_CALLS,
                ),
                target(
                    f"herd: all {threads} threads succeed",
                    f"{succeeded:.0f} in the worst of {repeats}",
                    met=succeeded == threads,
                ),
            ]
    return {
        "database": server.family,
        "threads": threads,
        "rows": rows,
        "targets": targets,
    }

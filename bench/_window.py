"""Section 3: the same load through the same rotation, per strategy.

Threads open a new connection per operation through the strategy under
test, on a fresh user and secret, while a single-user rotation changes the
password and leaves ``AWSCURRENT`` stale for the window. The load starts a
little before the rotation and stops a little after ``finishSecret``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from bench._calls import ApiCalls
from bench._stats import summarize, target
from bench._strategies import STRATEGIES
from rotsafe.testing import (
    DatabaseServer,
    Load,
    RotationHarness,
    SecretsManagerServer,
)

# rotsafe's targets during a rotation.
MAX_SLOWEST_MS = 250.0
MAX_CALLS = 4

#: The control row: the secret read once, the same load, no rotation. Its
#: slowest operation and p99 are the machine's own, with nothing to survive.
CONTROL = "no rotation (read-once)"


@dataclass(frozen=True)
class Run:
    """What one strategy did through one rotation.

    Attributes:
        operations: How many connections were attempted.
        failed: How many raised.
        slowest_ms: The longest operation.
        p99_ms: The 99th percentile of operation latency.
        api_calls: Secrets Manager calls made while the load ran.
        peak_calls_per_second: The most calls within any one second.
        seconds: How long the load ran.
    """

    operations: int
    failed: int
    slowest_ms: float
    p99_ms: float
    api_calls: int
    peak_calls_per_second: int
    seconds: float


def run_once(
    server: DatabaseServer,
    secrets_manager: SecretsManagerServer,
    strategy: str,
    *,
    threads: int,
    window: float,
    lead: float,
    tail: float,
    pause: float,
) -> Run:
    """Rotate a fresh user's password under load through ``strategy``.

    The strategy reads the secret once before the load starts; that read
    is not counted. With :data:`CONTROL` the load runs as long, through
    no rotation.
    """
    control = strategy == CONTROL
    with RotationHarness(server, secrets_manager) as harness:
        calls = ApiCalls()
        client = calls.attach(secrets_manager.client())
        make = STRATEGIES["read-once" if control else strategy]
        connector = make(client, harness.secret_id)

        def operation() -> None:
            connector.connect().close()

        mark = calls.mark()
        started = time.monotonic()
        with Load(operation, threads=threads, pause=pause) as load:
            time.sleep(lead)
            if control:
                time.sleep(window)
            else:
                harness.rotate("single-user", window=window)
            time.sleep(tail)
        seconds = time.monotonic() - started

    result = load.result
    return Run(
        operations=result.count,
        failed=result.failed,
        slowest_ms=result.slowest * 1e3,
        p99_ms=result.percentile(99) * 1e3,
        api_calls=calls.count(mark),
        peak_calls_per_second=calls.peak_per_second(mark),
        seconds=seconds,
    )


def run_repeatedly(
    server: DatabaseServer,
    secrets_manager: SecretsManagerServer,
    strategy: str,
    repeats: int,
    **load: Any,
) -> list[Run]:
    """Run ``strategy`` through ``repeats`` rotations; see :func:`run_once`."""
    return [
        run_once(server, secrets_manager, strategy, **load)
        for _ in range(repeats)
    ]


def summarize_runs(runs: list[Run]) -> dict[str, Any]:
    """Return the median and spread of each figure over ``runs``."""
    figures = (
        "operations",
        "failed",
        "slowest_ms",
        "p99_ms",
        "api_calls",
        "peak_calls_per_second",
        "seconds",
    )
    return {
        figure: summarize(getattr(run, figure) for run in runs).as_json()
        for figure in figures
    }


def rotation_window(
    server: DatabaseServer,
    secrets_manager: SecretsManagerServer,
    *,
    windows: dict[float, int],
    threads: int,
    lead: float,
    tail: float,
    pause: float,
) -> dict[str, Any]:
    """Run every strategy through rotations with each window.

    Args:
        windows: Each window's length in seconds, and how many rotations
            each strategy goes through with it.
        threads: How many threads open connections.
        lead: Seconds of load before the rotation starts.
        tail: Seconds of load after ``finishSecret``.
        pause: Seconds each thread waits between two operations.
    """
    rows = []
    targets = []
    for window, repeats in windows.items():
        for strategy in (CONTROL, *STRATEGIES):
            runs = run_repeatedly(
                server,
                secrets_manager,
                strategy,
                repeats,
                threads=threads,
                window=window,
                lead=lead,
                tail=tail,
                pause=pause,
            )
            rows.append(
                {
                    "window_s": window,
                    "strategy": strategy,
                    "rotations": repeats,
                    **summarize_runs(runs),
                }
            )
            if strategy == "rotsafe":
                targets.extend(_rotsafe_targets(window, runs))
    return {
        "database": server.family,
        "threads": threads,
        "lead_s": lead,
        "tail_s": tail,
        "pause_s": pause,
        "rows": rows,
        "targets": targets,
    }


def _rotsafe_targets(window: float, runs: list[Run]) -> list[dict[str, Any]]:
    """Judge rotsafe's rotations by their worst run, not their median."""
    failed = max(run.failed for run in runs)
    slowest = max(run.slowest_ms for run in runs)
    calls = max(run.api_calls for run in runs)
    return [
        target(
            f"rotation ({window:g} s window): rotsafe, 0 failed operations",
            f"{failed} in the worst of {len(runs)}",
            met=failed == 0,
        ),
        target(
            f"rotation ({window:g} s window): rotsafe's slowest operation "
            f"under {MAX_SLOWEST_MS:g} ms",
            f"{slowest:.0f} ms in the worst of {len(runs)}",
            met=slowest < MAX_SLOWEST_MS,
        ),
        target(
            f"rotation ({window:g} s window): rotsafe, at most {MAX_CALLS} "
            f"API calls per process per rotation",
            f"{calls} in the worst of {len(runs)}",
            met=calls <= MAX_CALLS,
        ),
    ]

"""The figures a drill reports, computed from every operation it recorded.

All times are seconds since the load started. The figures hold counts,
latencies, step names and error kinds, and never a login.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from rotsafe.testing._load import LoadResult, Operation

# The timeline's slices are the first of these that fits the run into
# this many columns.
_COLUMNS = 60
_SLICES = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


@dataclass(frozen=True)
class StepTime:
    """A rotation step and when it finished, in seconds since the start."""

    name: str
    at_seconds: float


@dataclass(frozen=True)
class ServiceFigures:
    """What one service saw during the drill.

    Attributes:
        name: ``"baseline"`` or ``"rotsafe"``.
        description: How the service gets its login.
        operations: Operations started during the load.
        failed: How many of them raised.
        error_rate: ``failed / operations``.
        latency_p50_seconds, latency_p99_seconds, latency_max_seconds:
            Operation latencies, failures included.
        secrets_manager_calls: ``GetSecretValue`` calls the service made.
        recovery_seconds: From the database's password change to the first
            success after the last failure; 0 with no failure, ``None``
            when the service never recovered.
        errors: Failed operations by :class:`rotsafe.ErrorKind` name.
        operations_per_slice, failed_per_slice: The timeline.
    """

    name: str
    description: str
    operations: int
    failed: int
    error_rate: float
    latency_p50_seconds: float
    latency_p99_seconds: float
    latency_max_seconds: float
    secrets_manager_calls: int
    recovery_seconds: float | None
    errors: dict[str, int]
    operations_per_slice: list[int] = field(repr=False)
    failed_per_slice: list[int] = field(repr=False)


@dataclass(frozen=True)
class DrillFigures:
    """Everything a drill reports, for the terminal and for ``--json``.

    Attributes:
        database: The server's product, version and where it ran.
        strategy: The rotation strategy.
        window_seconds: Time between the database change and the
            Secrets Manager change.
        duration_seconds: How long the load ran.
        threads: Load threads per service.
        pool: ``"queue"`` or ``"null"``.
        recycle_seconds: How long a pooled connection lived, for ``queue``.
        baseline: ``"read-once"`` or ``"reread-current"``.
        change_step: The step that changed the database's password;
            recovery is measured from it.
        steps: The rotation's steps.
        slice_seconds: The width of one timeline slice.
        services: The baseline's figures, then rotsafe's.
        exit_status: 0 when rotsafe's service saw no failure, else 1.
    """

    database: str
    strategy: str
    window_seconds: float
    duration_seconds: float
    threads: int
    pool: str
    recycle_seconds: float
    baseline: str
    change_step: str
    steps: list[StepTime]
    slice_seconds: float
    services: list[ServiceFigures]
    exit_status: int

    def service(self, name: str) -> ServiceFigures:
        """Return the figures of the service called ``name``."""
        for figures in self.services:
            if figures.name == name:
                return figures
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        """Return the figures as plain JSON types."""
        return asdict(self)


def slice_for(duration: float) -> float:
    """Return a round slice width that fits ``duration`` in the timeline."""
    for width in _SLICES:
        if duration / width <= _COLUMNS:
            return width
    return _SLICES[-1]


def service_figures(
    name: str,
    description: str,
    operations: Sequence[Operation],
    *,
    calls: int,
    change_at: float | None,
    slice_seconds: float,
    duration: float,
) -> ServiceFigures:
    """Return one service's figures from its operations.

    Args:
        name: The service's name.
        description: How it gets its login.
        operations: Its operations, with ``started`` in seconds since the
            load began; only those started before ``duration`` count.
        calls: Its ``GetSecretValue`` calls.
        change_at: When the database's password changed.
        slice_seconds: The timeline's slice width.
        duration: How long the load ran.
    """
    counted = sorted(
        (each for each in operations if each.started < duration),
        key=lambda each: each.started,
    )
    result = LoadResult(list(counted))
    failures = result.failures
    columns = max(1, math.ceil(duration / slice_seconds - 1e-9))
    per_slice = [0] * columns
    failed_per_slice = [0] * columns
    for each in counted:
        column = min(columns - 1, int(each.started / slice_seconds))
        per_slice[column] += 1
        failed_per_slice[column] += each.failed

    kinds = Counter(
        each.kind.name if each.kind is not None else "OTHER"
        for each in failures
    )
    return ServiceFigures(
        name=name,
        description=description,
        operations=result.count,
        failed=result.failed,
        error_rate=result.failed / result.count if result.count else 0.0,
        latency_p50_seconds=result.percentile(50),
        latency_p99_seconds=result.percentile(99),
        latency_max_seconds=result.slowest,
        secrets_manager_calls=calls,
        recovery_seconds=recovery(counted, change_at),
        errors=dict(sorted(kinds.items())),
        operations_per_slice=per_slice,
        failed_per_slice=failed_per_slice,
    )


def recovery(
    operations: Sequence[Operation], change_at: float | None
) -> float | None:
    """Return the time to recover after the database's password changed.

    That is the time from the change to the end of the first successful
    operation that started after the last failed one: 0 when nothing
    failed, ``None`` when nothing succeeded after the last failure.
    """
    failures = [each for each in operations if each.failed]
    if not failures:
        return 0.0

    last = max(each.started for each in failures)
    ends = [
        each.started + each.seconds
        for each in operations
        if not each.failed and each.started > last
    ]
    if not ends:
        return None

    return max(0.0, min(ends) - (change_at or 0.0))

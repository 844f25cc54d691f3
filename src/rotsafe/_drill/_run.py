"""One drill run: load on both services, a rotation in the middle, figures.

The load starts, the rotation begins after a quarter of the duration (at
most 2 s), and the load goes on until the duration is over and at least
2 s past the last step. Operations are stamped from the load's start.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rotsafe._drill._figures import (
    DrillFigures,
    StepTime,
    service_figures,
    slice_for,
)
from rotsafe._drill._rig import CHANGE_STEP, Rig
from rotsafe._drill._services import (
    EngineOptions,
    Service,
    baseline_service,
    rotsafe_service,
)
from rotsafe.testing._load import Load
from rotsafe.testing._rotation import STRATEGIES, Step

logger = logging.getLogger("rotsafe.drill")

# Each load thread waits this long between two operations, so the two
# services and the database share two cores without starving each other.
PAUSE = 0.01
_LEAD = 2.0
_TAIL = 2.0
_STOP_WAIT = 3.0


@dataclass(frozen=True)
class DrillOptions:
    """How a drill runs.

    Attributes:
        strategy: The rotation strategy.
        window: Seconds between the database change and the Secrets
            Manager change.
        duration: Seconds of load in all, at least 2 s past the last step.
        threads: Load threads per service.
        pool: ``"queue"`` or ``"null"``.
        recycle: Seconds a pooled connection lives, for ``queue``.
        baseline: ``"read-once"`` or ``"reread-current"``.
    """

    strategy: str = "single-user"
    window: float = 5.0
    duration: float = 12.0
    threads: int = 4
    pool: str = "queue"
    recycle: float = 1.0
    baseline: str = "read-once"

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            msg = f"unknown strategy {self.strategy!r}"
            raise ValueError(msg)
        if self.window < 0 or self.duration <= 0 or self.recycle <= 0:
            msg = "window, duration and recycle must be positive"
            raise ValueError(msg)
        if self.threads < 1:
            msg = "threads must be at least 1"
            raise ValueError(msg)

    @property
    def lead(self) -> float:
        """Seconds of load before the rotation starts."""
        return min(_LEAD, self.duration / 4)


@dataclass
class Progress:
    """What a live display shows while the drill runs.

    Attributes:
        options: The drill's options.
        services: The services, once built.
        started_at: When the load started, on ``time.monotonic``.
        ends_at: When the load is planned to stop.
        step: The last rotation step, once one finished.
        steps: Every step so far.
    """

    options: DrillOptions
    services: list[Service] = field(default_factory=list)
    started_at: float | None = None
    ends_at: float | None = None
    step: str | None = None
    steps: list[StepTime] = field(default_factory=list)


def run(
    rig: Rig,
    options: DrillOptions,
    progress: Progress | None = None,
    on_step: Callable[[StepTime], object] | None = None,
) -> DrillFigures:
    """Run both services through a rotation and return their figures.

    Blocks for the duration (longer if the rotation needs it). Interrupted,
    it stops the load, closes the engines and re-raises.

    Args:
        rig: A set-up rig.
        options: How the drill runs.
        progress: Updated as the drill goes, for a display.
        on_step: Called with each rotation step as it finishes.
    """
    progress = progress or Progress(options)
    pooling = EngineOptions(options.pool, options.threads, options.recycle)
    services = [
        baseline_service(rig, pooling, options.baseline),
        rotsafe_service(rig, pooling),
    ]
    progress.services = services
    loads = [
        Load(service.run_once, threads=options.threads, pause=PAUSE)
        for service in services
    ]
    try:
        started, ended, steps = _rotate_under_load(
            rig, options, loads, progress, on_step
        )
    finally:
        _stop(loads)
        for service in services:
            service.close()

    duration = ended - started
    width = slice_for(duration)
    change_at = max(
        (
            s.at_seconds
            for s in steps
            if s.name == CHANGE_STEP[options.strategy]
        ),
        default=None,
    )
    figures = [
        service_figures(
            service.name,
            service.description,
            [
                dataclasses.replace(each, started=each.started - started)
                for each in load.result.operations
            ],
            calls=service.counter.count,
            change_at=change_at,
            slice_seconds=width,
            duration=duration,
        )
        for service, load in zip(services, loads, strict=True)
    ]
    rotsafe_failed = figures[-1].failed
    return DrillFigures(
        database=rig.description,
        strategy=options.strategy,
        window_seconds=options.window,
        duration_seconds=round(duration, 3),
        threads=options.threads,
        pool=options.pool,
        recycle_seconds=options.recycle,
        baseline=options.baseline,
        change_step=CHANGE_STEP[options.strategy],
        steps=steps,
        slice_seconds=width,
        services=figures,
        exit_status=0 if rotsafe_failed == 0 else 1,
    )


def _rotate_under_load(
    rig: Rig,
    options: DrillOptions,
    loads: list[Load],
    progress: Progress,
    on_step: Callable[[StepTime], object] | None,
) -> tuple[float, float, list[StepTime]]:
    """Start the load, rotate, wait out the duration; return the times."""
    steps: list[StepTime] = []
    started = time.monotonic()
    progress.started_at = started
    progress.ends_at = started + options.duration
    for load in loads:
        load.start()

    def record(step: Step) -> None:
        stamped = StepTime(step.name, round(step.at - started, 3))
        steps.append(stamped)
        progress.steps.append(stamped)
        progress.step = step.name
        logger.info(
            "Rotation step %s at %.2f s", step.name, stamped.at_seconds
        )
        if on_step is not None:
            on_step(stamped)

    time.sleep(options.lead)
    rig.rotate(options.strategy, options.window, on_step=record)

    ends = max(started + options.duration, time.monotonic() + _TAIL)
    progress.ends_at = ends
    time.sleep(max(0.0, ends - time.monotonic()))
    return started, ends, steps


def _stop(loads: list[Load]) -> None:
    """Stop every load at once; give up waiting after a few seconds.

    An operation may be waiting on the database; the load threads are
    daemons, so one left running ends with the process.
    """
    stoppers = [
        threading.Thread(target=load.stop, name="rotsafe-drill-stop")
        for load in loads
    ]
    for stopper in stoppers:
        stopper.daemon = True
        stopper.start()
    deadline = time.monotonic() + _STOP_WAIT
    for stopper in stoppers:
        stopper.join(max(0.0, deadline - time.monotonic()))

"""How a drill looks in a terminal: live progress, a table, a timeline.

Everything here turns figures into rich renderables; nothing measures.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from rotsafe._drill._figures import DrillFigures, ServiceFigures, StepTime
from rotsafe._drill._run import PAUSE, Progress

_BARS = " ▁▂▃▄▅▆▇█"
_LABEL_WIDTH = 16
_TICK_EVERY = 10

# A letter for each step on the timeline, and what it means for a login.
_STEPS = {
    "createSecret": ("c", "AWSPENDING holds a new password"),
    "setSecret": (
        "S",
        "the database wants the new password; AWSCURRENT still holds the old",
    ),
    "testSecret": ("t", "the new password works"),
    "finishSecret": ("F", "AWSCURRENT holds the new password"),
    "moveCurrentBack": (
        "B",
        "AWSCURRENT is back on the previous version; the database still "
        "wants the newer password",
    ),
    "restorePassword": ("R", "the database wants the previous password"),
    "setPassword": ("P", "the database wants a password no stage holds"),
    "putCurrent": ("U", "AWSCURRENT holds the new password"),
}

_BASELINE_TITLES = {
    "read-once": "baseline (read once)",
    "reread-current": "baseline (re-read)",
}


def describe_step(step: StepTime) -> str:
    """Return one line saying what a step did, for progress output."""
    meaning = _STEPS.get(step.name, ("?", ""))[1]
    return f"{step.at_seconds:6.2f} s  {step.name}: {meaning}"


class LiveView:
    """The progress display: elapsed time, current step, running counts."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def __rich__(self) -> RenderableType:
        progress = self.progress
        options = progress.options
        heading = Text.assemble(
            ("rotsafe drill ", "bold"),
            f"· {options.strategy} · window {options.window:g} s",
        )
        if progress.started_at is None or progress.ends_at is None:
            return Group(heading, Text("setting up the services…"))

        elapsed = time.monotonic() - progress.started_at
        total = progress.ends_at - progress.started_at
        bar = Table.grid(padding=(0, 1))
        bar.add_row(
            ProgressBar(total=total, completed=min(elapsed, total), width=40),
            Text(f"{min(elapsed, total):5.1f} / {total:.1f} s"),
        )
        if progress.steps:
            steps = Text(
                "\n".join(describe_step(each) for each in progress.steps)
            )
        else:
            steps = Text("before the rotation", style="dim")

        counts = Table.grid(padding=(0, 2))
        for service in progress.services:
            tally = service.tally
            counts.add_row(
                service.name,
                f"{tally.operations:,} operations",
                Text(
                    f"{tally.failed:,} failed",
                    style="red" if tally.failed else "green",
                ),
            )
        return Group(heading, bar, counts, steps)


def report(figures: DrillFigures) -> Group:
    """Return the whole end-of-run report: table, timeline and notes."""
    return Group(
        heading(figures),
        Text(),
        summary(figures),
        Text(),
        timeline(figures),
        Text(),
        notes(figures),
        Text(),
        verdict(figures),
    )


def heading(figures: DrillFigures) -> Text:
    """Return the report's first line: what was drilled, on what.

    With any strategy, a window of a few digits and a database the drill
    started, it fits in 80 columns. The database comes last, so a longer
    line (an existing server's address) breaks inside its description,
    not between a number and its unit.
    """
    return Text.assemble(
        ("rotsafe drill", "bold"),
        f" · {figures.strategy} · window {figures.window_seconds:g} s · "
        f"{figures.database}",
    )


def summary(figures: DrillFigures) -> Table:
    """Return the side-by-side table of both services' figures."""
    baseline = figures.service("baseline")
    protected = figures.service("rotsafe")
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("")
    table.add_column(_BASELINE_TITLES[figures.baseline], justify="right")
    table.add_column("rotsafe", justify="right")

    rows: list[tuple[str, str, str]] = [
        (
            "operations",
            _count(baseline.operations),
            _count(protected.operations),
        ),
        ("failed", _count(baseline.failed), _count(protected.failed)),
        ("error rate", _rate(baseline), _rate(protected)),
        (
            "latency p50",
            latency(baseline.latency_p50_seconds),
            latency(protected.latency_p50_seconds),
        ),
        (
            "latency p99",
            latency(baseline.latency_p99_seconds),
            latency(protected.latency_p99_seconds),
        ),
        (
            "latency max",
            latency(baseline.latency_max_seconds),
            latency(protected.latency_max_seconds),
        ),
        (
            "Secrets Manager calls",
            _count(baseline.secrets_manager_calls),
            _count(protected.secrets_manager_calls),
        ),
        (
            f"recovered after {figures.change_step}",
            recovery(baseline.recovery_seconds),
            recovery(protected.recovery_seconds),
        ),
    ]
    for label, left, right in rows:
        table.add_row(
            label,
            Text(left, style=_style(label, baseline)),
            Text(right, style=_style(label, protected)),
        )
    return table


def timeline(figures: DrillFigures) -> Text:
    """Return operations and failures per time slice, steps marked."""
    width = figures.slice_seconds
    columns = len(figures.services[0].operations_per_slice)
    peak = max(
        max(service.operations_per_slice, default=0)
        for service in figures.services
    )
    text = Text()
    text.append(
        f"timeline, {width:g} s per column (ok: successes; "
        "failed share: failed / all)\n",
        style="bold",
    )
    text.append(_label("seconds") + _axis(columns, width) + "\n", style="dim")
    text.append(_label("rotation"))
    marks = _markers(figures.steps, columns, width)
    text.append(marks + "\n", style="bold")
    for service in figures.services:
        succeeded = [
            done - failed
            for done, failed in zip(
                service.operations_per_slice,
                service.failed_per_slice,
                strict=True,
            )
        ]
        shares = [
            failed / done if done else 0.0
            for done, failed in zip(
                service.operations_per_slice,
                service.failed_per_slice,
                strict=True,
            )
        ]
        text.append(_label(f"{service.name} ok"))
        text.append(
            _bars([n / peak if peak else 0.0 for n in succeeded]) + "\n",
            style="green",
        )
        text.append(_label("  failed share"))
        text.append(_bars(shares, "·") + "\n", style="red")
    text.append(_legend(figures.steps, marks, width), style="dim")
    return text


def notes(figures: DrillFigures) -> Text:
    """Return what the two services are and how they were compared."""
    baseline = figures.service("baseline")
    protected = figures.service("rotsafe")
    if figures.pool == "queue":
        pooling = (
            f"a pool of {figures.threads} connections, each replaced after "
            f"{figures.recycle_seconds:g} s, so both log in again and again "
            "as a real service does over hours (recycling, scaling, "
            "restarts)"
        )
    else:
        pooling = "a new connection for every operation"
    lines = [
        f"baseline: {baseline.description}.",
        f"rotsafe:  {protected.description}.",
        f"Both run the same query on {figures.threads} threads (a "
        f"{PAUSE * 1000:g} ms pause after each), with {pooling}.",
        f"Recovered: from {figures.change_step}, when the database's "
        "password changed, to the end of the first success after the last "
        "failure; 0 with no failure, never if failures lasted to the end.",
    ]
    if figures.strategy == "alternating-users":
        lines.append(
            "alternating-users changes the password of the user not in use, "
            "so the drill rotates twice: the second rotation changes the "
            "password of the user a service that kept its first login uses."
        )
    return Text("\n".join(lines), style="dim")


def verdict(figures: DrillFigures) -> Text:
    """Return the last line: did rotsafe's service see a failure?"""
    failed = figures.service("rotsafe").failed
    if failed == 0:
        return Text(
            "rotsafe's service saw no failed operation (exit status 0).",
            style="bold green",
        )
    return Text(
        f"rotsafe's service saw {failed:,} failed operation(s) "
        "(exit status 1); run with --verbose to see why.",
        style="bold red",
    )


def latency(seconds: float) -> str:
    """Format a latency: milliseconds below a second, else seconds."""
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds:.2f} s"


def recovery(seconds: float | None) -> str:
    """Format a time to recover; ``None`` means it never did."""
    return "never" if seconds is None else f"{seconds:.2f} s"


def _count(value: int) -> str:
    return f"{value:,}"


def _rate(service: ServiceFigures) -> str:
    return f"{service.error_rate * 100:.1f} %"


def _style(label: str, service: ServiceFigures) -> str:
    if label in ("failed", "error rate"):
        return "red" if service.failed else "green"
    if label.startswith("recovered"):
        return "red" if service.recovery_seconds is None else ""
    return ""


def _label(name: str) -> str:
    return name.ljust(_LABEL_WIDTH)[:_LABEL_WIDTH]


def _bars(fractions: Iterable[float], empty: str = " ") -> str:
    """Draw fractions of a full column as block characters."""
    drawn = []
    for fraction in fractions:
        if fraction <= 0:
            drawn.append(empty)
            continue
        level = max(1, round(min(fraction, 1.0) * (len(_BARS) - 1)))
        drawn.append(_BARS[level])
    return "".join(drawn)


def _axis(columns: int, width: float) -> str:
    """Label every tenth column with its time in seconds."""
    axis = [" "] * columns
    for column in range(0, columns, _TICK_EVERY):
        label = f"{column * width:g}s"
        if column + len(label) > columns:
            break
        axis[column : column + len(label)] = label
    return "".join(axis)


def _markers(steps: list[StepTime], columns: int, width: float) -> str:
    """Put each step's letter in its column; capitals win a shared one."""
    marks = ["·"] * columns
    for step in steps:
        letter = _STEPS.get(step.name, ("?", ""))[0]
        column = _column(step, columns, width)
        if marks[column] == "·" or letter.isupper():
            marks[column] = letter
    return "".join(marks)


def _column(step: StepTime, columns: int, width: float) -> int:
    """The timeline column a step falls in; the last holds any later."""
    return min(columns - 1, int(step.at_seconds / width))


def _legend(steps: list[StepTime], marks: str, width: float) -> str:
    """Name each step's letter; say where one is hidden under another."""
    lines = []
    for step in steps:
        letter = _STEPS.get(step.name, ("?", ""))[0]
        line = f"{_label('')}{letter} = {step.name} at {step.at_seconds:.2f} s"
        shown = marks[_column(step, len(marks), width)]
        if shown != letter:
            line += f" (in the column marked {shown})"
        lines.append(line)
    return "\n".join(lines)

"""``--plot``: the drill's timeline drawn with matplotlib, one PNG."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rotsafe._drill._figures import DrillFigures

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

_COLORS = {"baseline": "tab:orange", "rotsafe": "tab:blue"}
# The steps' names above the plot: their size, and the space kept below
# and between them, in points.
_FONT_SIZE = 8.0
_GAP = 3.0


def check_matplotlib() -> None:
    """Make sure matplotlib can be imported, before a drill runs.

    Raises:
        ImportError: It is not installed; the message names the extra.
    """
    try:
        import matplotlib  # noqa: F401, PLC0415
    except ImportError as exc:
        msg = "--plot needs matplotlib: pip install 'rotsafe[plot]'"
        raise ImportError(msg) from exc


def plot(figures: DrillFigures, path: Path) -> None:
    """Draw operations and failures per second of both services to ``path``.

    The rotation's steps are vertical lines, named above the plot; the
    format follows the file name's suffix (PNG, SVG, PDF).
    """
    from matplotlib import pyplot  # noqa: PLC0415 - an optional extra

    fig = draw(figures)
    fig.savefig(path)
    pyplot.close(fig)


def draw(figures: DrillFigures) -> Figure:
    """Return the figure ``plot`` saves; close it with ``pyplot.close``."""
    import matplotlib  # noqa: PLC0415 - an optional extra

    matplotlib.use("Agg")
    from matplotlib import pyplot  # noqa: PLC0415

    width = figures.slice_seconds
    fig, (done, failed) = pyplot.subplots(
        2, 1, sharex=True, figsize=(10, 5), layout="constrained"
    )
    for service in figures.services:
        times = [n * width for n in range(len(service.operations_per_slice))]
        color = _COLORS.get(service.name)
        succeeded = [
            (done_in - failed_in) / width
            for done_in, failed_in in zip(
                service.operations_per_slice,
                service.failed_per_slice,
                strict=True,
            )
        ]
        done.step(
            times,
            succeeded,
            where="post",
            label=service.name,
            color=color,
        )
        failed.step(
            times,
            [n / width for n in service.failed_per_slice],
            where="post",
            label=service.name,
            color=color,
        )

    for axes in (done, failed):
        for step in figures.steps:
            axes.axvline(step.at_seconds, color="grey", linestyle=":")

    done.set_ylabel("successes / s")
    failed.set_ylabel("failed / s")
    failed.set_xlabel("seconds since the load started")
    done.legend(loc="lower left")
    fig.suptitle(
        f"rotsafe drill: {figures.strategy} rotation, {figures.database}, "
        f"window {figures.window_seconds:g} s"
    )
    _name_steps(fig, done, figures)
    return fig


def _name_steps(fig: Figure, axes: Axes, figures: DrillFigures) -> None:
    """Name the steps above ``axes``, those close together in one label.

    A label starts at its step's line, or ends there if it would run past
    the right edge, and a dotted line leads from it down to the axes. A
    label that would overlap a later one goes a row above it, so that no
    leader crosses a label.
    """
    fig.draw_without_rendering()  # the layout settles the axes' width
    right = axes.get_window_extent().x1
    gap = fig.dpi * _GAP / 72
    placed: list[tuple[float, float, int]] = []  # start, end (pixels), row
    for at, names in reversed(_grouped(figures)):
        text = ", ".join(names)
        # Measured with the renderer's own font, then put where it fits.
        probe = axes.text(0, 0, text, fontsize=_FONT_SIZE)
        width = probe.get_window_extent().width
        probe.remove()
        x = axes.transData.transform((at, 0))[0]
        leftward = x + width > right
        start, end = (x - width, x) if leftward else (x, x + width)

        row = 1 + max(
            (
                other_row
                for other_start, other_end, other_row in placed
                if start < other_end + gap and other_start < end + gap
            ),
            default=-1,
        )
        placed.append((start, end, row))
        axes.annotate(
            text,
            (at, 1),
            xycoords=("data", "axes fraction"),
            xytext=(0, _GAP + row * (_FONT_SIZE + _GAP)),
            textcoords="offset points",
            ha="right" if leftward else "left",
            va="bottom",
            fontsize=_FONT_SIZE,
            color="grey",
            arrowprops={
                "arrowstyle": "-",
                "color": "grey",
                "linestyle": ":",
                "relpos": (1 if leftward else 0, 0),
                "shrinkA": 0,
                "shrinkB": 0,
            },
        )


def _grouped(figures: DrillFigures) -> list[tuple[float, list[str]]]:
    """Return the steps with those too close to label apart joined."""
    near = figures.duration_seconds / 50
    groups: list[tuple[float, list[str]]] = []
    for step in figures.steps:
        if groups and step.at_seconds - groups[-1][0] < near:
            groups[-1][1].append(step.name)
        else:
            groups.append((step.at_seconds, [step.name]))
    return groups

"""``--plot``: the drill's timeline drawn with matplotlib, one PNG."""

from __future__ import annotations

from pathlib import Path

from rotsafe._drill._figures import DrillFigures

_COLORS = {"baseline": "tab:orange", "rotsafe": "tab:blue"}


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

    The rotation's steps are vertical lines; the format follows the file
    name's suffix (PNG, SVG, PDF).
    """
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
    for at, names in _grouped(figures):
        done.annotate(
            ", ".join(names),
            (at, 1),
            xycoords=("data", "axes fraction"),
            rotation=90,
            va="top",
            ha="right",
            fontsize=8,
            color="grey",
        )

    done.set_ylabel("successes / s")
    failed.set_ylabel("failed / s")
    failed.set_xlabel("seconds since the load started")
    done.legend(loc="lower left")
    done.set_title(
        f"rotsafe drill: {figures.strategy} rotation, {figures.database}, "
        f"window {figures.window_seconds:g} s"
    )
    fig.savefig(path)
    pyplot.close(fig)


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

"""Medians with their spread, the only way a figure is reported here."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Summary:
    """Repeated measurements of one figure: its median and its spread.

    Attributes:
        median: The median of the samples.
        low: The smallest sample.
        high: The largest sample.
        samples: Every sample, in the order measured.
    """

    median: float
    low: float
    high: float
    samples: tuple[float, ...]

    def as_json(self) -> dict[str, Any]:
        """Return the summary as plain JSON values."""
        data = asdict(self)
        data["samples"] = list(self.samples)
        return data


def summarize(samples: Iterable[float]) -> Summary:
    """Return the median and min–max spread of ``samples``.

    Raises:
        ValueError: There are no samples.
    """
    values = tuple(float(each) for each in samples)
    if not values:
        msg = "a summary needs at least one sample"
        raise ValueError(msg)
    return Summary(statistics.median(values), min(values), max(values), values)


def ratios(
    numerators: Sequence[float], denominators: Sequence[float]
) -> Summary:
    """Summarize the ratios of paired samples taken in the same round.

    Each pair was measured side by side, so machine noise that slows one
    round slows both of its figures and mostly cancels in the ratio.
    """
    return summarize(
        n / d if d else float("inf")
        for n, d in zip(numerators, denominators, strict=True)
    )


def target(name: str, measured: str, *, met: bool) -> dict[str, Any]:
    """Return a target, what was measured, and whether it was met."""
    return {"target": name, "measured": measured, "met": met}

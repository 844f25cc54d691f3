"""Durations as rotsafe accepts them: float seconds or a ``timedelta``."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import TypeAlias

Duration: TypeAlias = "float | timedelta"


def to_seconds(value: Duration, name: str) -> float:
    """Return a duration as float seconds, refusing negative or NaN values.

    Raises:
        ValueError: The duration is negative, not a number, or infinite.
    """
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        msg = f"{name} must be float seconds or a timedelta, not {value!r}"
        raise TypeError(msg)

    if not math.isfinite(seconds) or seconds < 0:
        msg = f"{name} must be a finite, non-negative duration"
        raise ValueError(msg)
    return seconds

"""Numbers read from environment variables, one way for every setting: unset, blank, not a number or
not finite gives the setting's default; a value outside the bounds is brought to the nearest bound."""

from __future__ import annotations

import math
import os


def env_number(name: str, default: float | None, minimum: float | None = None, maximum: float | None = None):
    """The number in environment variable `name`, or `default`."""
    raw = os.environ.get(name, "").strip()
    try:
        value = float(raw) if raw else None
    except ValueError:
        value = None
    if value is None or not math.isfinite(value):
        return default
    if minimum is not None:
        value = max(minimum, value)
    if maximum is not None:
        value = min(maximum, value)
    return value


def env_int(name: str, default: int | None, minimum: int | None = None, maximum: int | None = None) -> int | None:
    """`env_number` as a whole number (a fraction is cut: "2.5" is 2)."""
    value = env_number(name, default, minimum, maximum)
    return None if value is None else int(value)

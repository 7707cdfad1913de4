"""Durations written as text in specs (``5 seconds``, ``500 ms``, ``2 min``)."""

from __future__ import annotations

import re

from headwater.errors import ConfigError

_UNITS = {
    "ms": 0.001, "millisecond": 0.001, "milliseconds": 0.001,
    "s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0,
    "m": 60.0, "min": 60.0, "mins": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hour": 3600.0, "hours": 3600.0,
}  # fmt: skip
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)\s*$")


def parse_duration(text: str | float | int) -> float:
    """Seconds in ``text``.

    Example:
        >>> parse_duration("500 ms"), parse_duration("2 min")
        (0.5, 120.0)
    """
    if isinstance(text, int | float):
        return float(text)
    m = _PATTERN.match(text)
    if not m or m.group(2).lower() not in _UNITS:
        raise ConfigError(f"invalid duration {text!r}; use e.g. '500 ms', '5 seconds', '2 min'")
    return float(m.group(1)) * _UNITS[m.group(2).lower()]

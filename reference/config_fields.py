"""Reading the fields of a `config.json`: each one's type and range checked before a model sees it.

A config file comes from anywhere (a hub download, a hand edit), so a field can hold any JSON
value: a string where a size belongs, a float id, a list. Each reader below takes the parsed dict
and a key, applies the field's default when the key is absent, and raises a TypeError (wrong type)
or a ValueError (out of range) that names the key, what it expects and what it got.
"""

from __future__ import annotations

import math
from typing import Any

_ABSENT = object()


def _field(config: dict, key: str, default: Any) -> Any:
    value = config.get(key, default)
    if value is _ABSENT:
        raise ValueError(f"config field {key} is missing")
    return value


def _got(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def require_dict(value: Any, name: str = "config") -> dict:
    """`value` if it is a dict (a JSON object), else a TypeError naming `name`."""
    if not isinstance(value, dict):
        raise TypeError(f"{name} must be a JSON object (a dict), got {_got(value)}")
    return value


def int_field(
    config: dict, key: str, default: Any = _ABSENT, low: int = 1, high: int | None = None
) -> int:
    """An int (not a bool) in [low, high); the default when the key is absent."""
    value = _field(config, key, default)
    if not _is_int(value):
        raise TypeError(f"config field {key} must be an int, got {_got(value)}")
    if value < low or (high is not None and value >= high):
        interval = f">= {low}" if high is None else f"in [{low}, {high})"
        raise ValueError(f"config field {key} must be an int {interval}, got {value}")
    return value


def optional_int_field(config: dict, key: str, default: Any = None, low: int = 0) -> int | None:
    """None, or an int (not a bool) >= low."""
    value = _field(config, key, default)
    return None if value is None else int_field(config, key, default, low)


def float_field(
    config: dict, key: str, default: Any, low: float, high: float, *, low_open: bool = False
) -> float:
    """A number (int or float, not a bool) in [low, high), or (low, high) when `low_open`.
    NaN is never in range."""
    value = _field(config, key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"config field {key} must be a number, got {_got(value)}")
    inside = (low < value if low_open else low <= value) and value < high
    if not inside:
        interval = f"{'(' if low_open else '['}{low}, {'inf' if high == math.inf else high})"
        raise ValueError(f"config field {key} must be in {interval}, got {value!r}")
    return float(value)


def bool_field(config: dict, key: str, default: bool) -> bool:
    """true or false (JSON's booleans; 0 and 1 are not accepted)."""
    value = _field(config, key, default)
    if not isinstance(value, bool):
        raise TypeError(f"config field {key} must be true or false, got {_got(value)}")
    return value


def str_field(config: dict, key: str, default: Any) -> str:
    """A string (its allowed values are the caller's to check)."""
    value = _field(config, key, default)
    if not isinstance(value, str):
        raise TypeError(f"config field {key} must be a string, got {_got(value)}")
    return value

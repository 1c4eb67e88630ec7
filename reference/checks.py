"""Argument checks shared by the ops, the layers and the random generator.

Every public function checks its arguments before it computes anything, and a bad argument gets a
`TypeError` (wrong kind of value) or a `ValueError` (right kind, wrong value) whose message names
the argument, says what was expected and shows what was given. Both backends call these same
functions, so the same bad input gets the same error in each.

Sizes have a ceiling: a tensor built from size arguments holds at most `MAX_NUMEL` numbers (a
32-bit count), and a request beyond it is refused at once instead of running for hours or
exhausting memory.

    >>> check_count("T", 3)
    3
    >>> check_eps(0.0)
    Traceback (most recent call last):
    ...
    ValueError: eps must be a finite number > 0 (a constant row would divide by zero), got 0.0
"""

from __future__ import annotations

import math
from typing import Any

MAX_NUMEL = 2**31 - 1  # the most numbers one tensor (or one call to the generator) may hold


def check_count(name: str, value: Any, low: int = 0, high: int = MAX_NUMEL) -> int:
    """`value` as an int in [low, high], or a TypeError / ValueError naming `name`."""
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    value = value.__index__()  # numpy integers pass as Python ints
    if not low <= value <= high:
        raise ValueError(f"{name} must be an int in [{low}, {high}], got {value}")
    return value


def check_numbers(name: str, x: Any) -> None:
    """TypeError unless `x` is a number or nested lists of numbers (ints, floats; a bool counts
    as 0 or 1). Element types are checked before shapes, in both backends, so a list of strings
    is a TypeError whatever its shape."""
    stack = [x]
    while stack:
        v = stack.pop()
        if isinstance(v, (list, tuple)):
            stack.extend(v)
        elif not isinstance(v, (int, float)):
            raise TypeError(f"{name} must hold numbers, got {type(v).__name__} {_short(v)}")


def check_ints(name: str, x: Any) -> None:
    """TypeError unless `x` is an int or nested lists of ints (ids, labels; bools are not ids)."""
    stack = [x]
    while stack:
        v = stack.pop()
        if isinstance(v, (list, tuple)):
            stack.extend(v)
        elif isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{name} must hold ints, got {type(v).__name__} {_short(v)}")


def check_flag(name: str, value: Any) -> bool:
    """A yes/no option: a bool, or a TypeError naming `name`."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {_short(value)}")
    return value


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def check_shape_arg(name: str, shape: Any) -> tuple[int, ...]:
    """A shape argument: a tuple or list of ints >= 0 holding at most MAX_NUMEL numbers."""
    if not isinstance(shape, (tuple, list)):
        raise TypeError(f"{name} must be a tuple of ints, got {type(shape).__name__} {shape!r}")
    dims = tuple(check_count(f"{name}[{i}]", d) for i, d in enumerate(shape))
    check_numel(name, dims)
    return dims


def check_numel(name: str, dims: tuple[int, ...]) -> int:
    """The number of elements of shape `dims`, or a ValueError if it exceeds MAX_NUMEL."""
    n = 1
    for d in dims:
        n *= d
    if n > MAX_NUMEL:
        raise ValueError(f"{name} {tuple(dims)} must hold at most {MAX_NUMEL} numbers, got {n}")
    return n


def _as_float(name: str, value: Any) -> float:
    """A real number (int, float or numpy scalar) as a float, or a TypeError naming `name`."""
    if isinstance(value, (bool, str, bytes)) or not hasattr(value, "__float__"):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    if isinstance(value, complex):
        raise TypeError(f"{name} must be a real number, got complex {value!r}")
    return float(value)


def check_number(name: str, value: Any, *, positive: bool = False) -> float:
    """`value` as a finite float (> 0 if `positive`), or a TypeError / ValueError naming `name`."""
    v = _as_float(name, value)
    if not math.isfinite(v) or (positive and not v > 0.0):
        what = "a finite number > 0" if positive else "a finite number"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return v


def check_eps(eps: Any, name: str = "eps") -> float:
    """Layer norm's eps: a finite number > 0, so that a constant row (variance 0) gives
    (x - mean) * 1/sqrt(eps) = 0 instead of dividing by zero."""
    v = _as_float(name, eps)
    if not (math.isfinite(v) and v > 0.0):
        raise ValueError(
            f"{name} must be a finite number > 0 (a constant row would divide by zero), got {eps!r}"
        )
    return v

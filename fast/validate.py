"""Checks at the public boundary: kernels do no bounds checks, so nothing unchecked reaches them.

Every error names the argument, what was expected and what was given.
"""

from __future__ import annotations

import numpy as np


def as_float_array(x, name: str, dtype=None) -> np.ndarray:
    """`x` as a float array (of `dtype` when given), or a TypeError naming `name`."""
    try:
        a = np.asarray(x)
    except ValueError:
        raise ValueError(f"{name} must be rectangular (every row the same length)") from None
    if a.dtype == object:
        a = _object_floats(a, name)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers, got dtype {a.dtype}")
    if dtype is not None:
        return a.astype(dtype, copy=False)
    if a.dtype not in (np.float32, np.float64):
        a = a.astype(np.float64)
    return a


def as_index_array(x, name: str) -> np.ndarray:
    """`x` as an int64 array of ids/labels, or a TypeError naming `name` (bools and floats are
    not ids)."""
    try:
        a = np.asarray(x)
    except ValueError:
        raise ValueError(f"{name} must be rectangular (every row the same length)") from None
    if a.dtype == object or a.dtype.kind == "f":
        refuse_ids_beyond_int64(x, name)  # numpy holds such ints as objects or floats
    if a.dtype == object:
        raise TypeError(f"{name} must hold ints, got {_first_odd_type(a)}")
    if a.dtype.kind == "u" and a.size and a.max() > np.iinfo(np.int64).max:
        refuse_ids_beyond_int64(a.tolist(), name)
    if a.dtype.kind not in "iu":
        if a.size == 0:
            return a.astype(np.int64)
        raise TypeError(f"{name} must hold ints (ids or class labels), got dtype {a.dtype}")
    return np.ascontiguousarray(a, dtype=np.int64)


def check_finite(x: np.ndarray, name: str) -> None:
    """ValueError naming the first non-finite position of `x`."""
    if not np.isfinite(x).all():
        bad = np.argwhere(~np.isfinite(x))[0]
        pos = "".join(f"[{i}]" for i in bad)
        raise ValueError(f"{name}{pos} must be finite, got {x[tuple(bad)]}")


def check_ids(ids: np.ndarray, vocab_size: int, name: str = "idx") -> None:
    """ValueError naming the first id outside [0, vocab_size)."""
    bad = (ids < 0) | (ids >= vocab_size)
    if bad.any():
        pos = np.argwhere(bad)[0]
        where = "".join(f"[{i}]" for i in pos)
        raise ValueError(
            f"token id {int(ids[tuple(pos)])} out of range for vocab_size {vocab_size} "
            f"({name}{where})"
        )


def refuse_ids_beyond_int64(x, name: str) -> None:
    """ValueError naming the first Python int of nested lists `x` outside int64's range (an id
    no table can have): numpy would store such a list as floats or objects, and the dtype in its
    error would hide the real cause."""
    stack = [(x, "")]
    while stack:
        node, where = stack.pop()
        if isinstance(node, (list, tuple)):
            stack.extend((v, f"{where}[{i}]") for i, v in reversed(list(enumerate(node))))
        elif isinstance(node, int) and not -(2**63) <= node < 2**63:
            raise ValueError(
                f"{name} value {node} out of range: ids must fit in int64 ({name}{where})"
            )


def _first_odd_type(a: np.ndarray) -> str:
    """The type of the first element of object array `a` that is not an int or a float."""
    for v in a.reshape(-1):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return f"{type(v).__name__} {v!r:.40}"
    return "object"


def _object_floats(a: np.ndarray, name: str) -> np.ndarray:
    """An object array (ints beyond int64, or things that are not numbers at all) as float64,
    or a TypeError naming `name` and the first element that is not a number."""
    for v in a.reshape(-1):
        if not isinstance(v, (int, float)):
            raise TypeError(f"{name} must hold numbers, got {type(v).__name__} {v!r:.40}")
    return a.astype(np.float64)

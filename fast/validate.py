"""Checks at the public boundary: kernels do no bounds checks, so nothing unchecked reaches them.

Every error names the argument, what was expected and what was given.

What a public function keeps for later (a backward reads its forward's cache) must not be memory
the caller can still write: a data loader that refills its batch buffer between forward and
backward would otherwise change the gradient, or, with ids, send the embedding's scatter-add out
of bounds. So the checks below hand back an array the caller cannot reach: ids and labels are
always copied (they are small); a float array is copied only when checking did not already make
a new one. Inside a fast model's own forward and backward (`model_owned`), the arrays passing
between layers are the model's activations, which nobody else holds: those are not copied.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import numbers

import numpy as np

_MODEL_OWNED = contextvars.ContextVar("fast_model_owned", default=False)


@contextlib.contextmanager
def model_owned():
    """Within this block the floats reaching the checks are a fast model's own activations (its
    boundary already copied what came from the caller), so `as_float_array` does not copy them."""
    token = _MODEL_OWNED.set(True)
    try:
        yield
    finally:
        _MODEL_OWNED.reset(token)


def owns_inputs(method):
    """Run a model method under `model_owned`: for methods whose caller's arrays are all ids
    (always copied) or copied explicitly with `private`."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with model_owned():
            return method(*args, **kwargs)

    return wrapper


def models_own_inputs() -> bool:
    """True inside `model_owned` (fast/cuda's checks ask this too)."""
    return _MODEL_OWNED.get()


def private(a: np.ndarray, source) -> np.ndarray:
    """`a`, an array made from the caller's `source`, in memory the caller cannot write: `a`
    itself when making it already copied (a list, a dtype conversion, a contiguous copy), else a
    copy (C-contiguous)."""
    if isinstance(source, (list, tuple, numbers.Number)):
        return a  # numpy built a new array from Python objects
    if isinstance(source, np.ndarray) and not np.may_share_memory(a, source):
        return a  # a conversion made a new array
    return np.array(a, order="C", copy=True)


def as_float_array(x, name: str, dtype=None, *, kept: bool = True) -> np.ndarray:
    """`x` as a float array (of `dtype` when given), or a TypeError naming `name`. Never the
    caller's memory (see the module docstring) unless inside `model_owned`, or `kept=False`:
    the function reads `x` only while it runs."""
    try:
        a = np.asarray(x)
    except ValueError:
        raise ValueError(f"{name} must be rectangular (every row the same length)") from None
    if a.dtype == object:
        a = _object_floats(a, name)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers, got dtype {a.dtype}")
    if dtype is not None:
        a = a.astype(dtype, copy=False)
    elif a.dtype not in (np.float32, np.float64):
        a = a.astype(np.float64)
    return private(a, x) if kept and not _MODEL_OWNED.get() else a


def as_index_array(x, name: str) -> np.ndarray:
    """`x` as a new C-contiguous int64 array of ids/labels (never the caller's memory), or a
    TypeError naming `name` (bools and floats are not ids)."""
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
    return np.array(a, dtype=np.int64, order="C", copy=True)


def int_batch(x) -> np.ndarray | None:
    """`x` as a new (B, T) int64 array (a copy: the caller may refill x after the forward) if it
    is a numpy int array with B, T >= 1 whose values fit int64, else None: the caller then runs
    the reference's checks on it, which raise the error (or accept a nested list)."""
    if not isinstance(x, np.ndarray) or x.ndim != 2 or 0 in x.shape or x.dtype.kind not in "iu":
        return None
    if x.dtype.kind == "u" and x.max() > np.iinfo(np.int64).max:
        return None
    return np.array(x, dtype=np.int64, order="C", copy=True)


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

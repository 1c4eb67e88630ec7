"""Nested lists of floats: the reference's only tensor.

The reference keeps every tensor as plain Python lists (a matrix is a list of rows) so that a reader
sees each number. These helpers give such a list its shape, build zero-filled ones, and flatten or
rebuild them, which is all the optimizers and the checkpoint format need, and add two of the same
shape (`add`: where a residual branch rejoins the stream in the model files).

    >>> shape_of([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    (2, 3)
    >>> unflatten([1.0, 2.0, 3.0, 4.0], (2, 2))
    [[1.0, 2.0], [3.0, 4.0]]
"""

from __future__ import annotations

import math
from typing import Any


def shape_of(x: Any) -> tuple[int, ...]:
    """Shape of a rectangular nested list; a number has shape ()."""
    shape = []
    while isinstance(x, (list, tuple)):
        shape.append(len(x))
        if not x:
            break
        x = x[0]
    return tuple(shape)


def numel(shape: tuple[int, ...]) -> int:
    """Number of elements in a tensor of this shape (1 for a scalar)."""
    n = 1
    for s in shape:
        n *= s
    return n


def zeros(shape: tuple[int, ...]) -> Any:
    """A nested list of 0.0 with the given shape (fresh lists at every level)."""
    if not shape:
        return 0.0
    if len(shape) == 1:
        return [0.0] * shape[0]
    return [zeros(shape[1:]) for _ in range(shape[0])]


def add(a: Any, b: Any) -> Any:
    """a + b, number by number, for two nested lists of the same shape (a new list).

    The models use it where a residual branch rejoins the stream and, backwards, where two
    gradients of the same tensor meet; the callers have already made the shapes agree.

    >>> add([[1.0, 2.0], [3.0, 4.0]], [[0.5, 0.5], [0.5, 0.5]])
    [[1.5, 2.5], [3.5, 4.5]]
    """
    if a and isinstance(a[0], list):
        return [add(x, y) for x, y in zip(a, b)]
    return [u + v for u, v in zip(a, b)]


def flatten(x: Any) -> list:
    """All numbers of a nested list in row-major order: [[1, 2], [3, 4]] -> [1, 2, 3, 4]."""
    if not isinstance(x, (list, tuple)):
        return [x]
    out: list = []
    stack = [x]
    # Row-major order without recursion: walk the tree depth first, left to right.
    while stack:
        node = stack.pop()
        if node and isinstance(node[0], (list, tuple)):
            stack.extend(reversed(node))
        else:
            out.extend(node)
    return out


def unflatten(flat: list, shape: tuple[int, ...]) -> Any:
    """Rebuild a nested list of `shape` from row-major `flat` (the inverse of `flatten`)."""
    if len(flat) != numel(shape):
        raise ValueError(f"cannot reshape {len(flat)} numbers into shape {shape}")
    if not shape:
        return flat[0]
    out = list(flat)
    for size in reversed(shape[1:]):
        out = [out[i : i + size] for i in range(0, len(out), size)]
    return out


def check_shape(name: str, x: Any, shape: tuple[int, ...]) -> None:
    """Raise a ValueError naming `name` unless nested list `x` is rectangular with `shape`."""
    if shape_of(x) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {shape_of(x)}")
    # shape_of only looks at the first element of each level; check every row.
    if len(shape) > 1:
        for i, row in enumerate(x):
            check_shape(f"{name}[{i}]", row, shape[1:])


def check_finite(name: str, values: list) -> None:
    """Raise a ValueError if a flat list holds NaN or infinity, naming the first position."""
    for i, v in enumerate(values):
        if not math.isfinite(v):
            raise ValueError(f"{name} must be finite, found {v} at flat position {i}")

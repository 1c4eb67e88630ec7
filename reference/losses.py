"""Loss functions: how far the network's output is from the desired output.

Each loss returns the loss *and* its gradient with respect to the network's output, because that
gradient is where backpropagation starts (the first factor, dE/dy, of the chain rule).

    >>> loss, grad = mse_loss([[1.0, 2.0]], [[0.0, 2.0]])
    >>> loss, grad
    (0.5, [[1.0, 0.0]])
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .checks import check_ints, check_numbers
from .nested import check_shape, shape_of


def _row(name: str, row: Sequence[float]) -> None:
    """A non-empty list of numbers, or a clear error."""
    check_numbers(name, row)
    if not isinstance(row, (list, tuple)) or not row:
        raise ValueError(f"{name} must be a non-empty list of numbers, got {row!r:.40}")


def softmax(row: Sequence[float]) -> list[float]:
    """exp(z_i) / sum_j exp(z_j), computed after subtracting the max so exp never overflows.

    >>> softmax([1000.0, 1000.0])
    [0.5, 0.5]

    A list of rows (any depth) gets the softmax of each row.
    """
    _row("row", row)
    if isinstance(row[0], (list, tuple)):
        check_shape("row", row, shape_of(row))
        return [softmax(r) for r in row]
    m = max(row)
    exps = [math.exp(z - m) for z in row]
    total = sum(exps)
    return [e / total for e in exps]


def log_softmax(row: Sequence[float]) -> list[float]:
    """z_i - logsumexp(z), stable for any finite logits (log never sees 0); row by row for a
    list of rows."""
    _row("row", row)
    if isinstance(row[0], (list, tuple)):
        check_shape("row", row, shape_of(row))
        return [log_softmax(r) for r in row]
    m = max(row)
    lse = m + math.log(sum(math.exp(z - m) for z in row))
    return [z - lse for z in row]


def mse_loss(outputs: Sequence[Sequence[float]], targets: Sequence[Sequence[float]]):
    """Mean squared error over every element: mean((y - t)^2); gradient 2 (y - t) / N.

    `outputs` and `targets` are (B, K) nested lists. Returns (loss, dE/dy) with dE/dy (B, K).
    """
    check_numbers("outputs", outputs), check_numbers("targets", targets)
    shape = shape_of(outputs)
    if len(shape) != 2:
        raise ValueError(f"outputs must have shape (B, K), got {shape}")
    check_shape("outputs", outputs, shape)
    if shape_of(targets) != shape:
        raise ValueError(f"targets must have shape {shape} like outputs, got {shape_of(targets)}")
    n = 0
    for b, (y, t) in enumerate(zip(outputs, targets)):
        if len(y) != len(t):
            raise ValueError(f"targets[{b}] must have length {len(y)}, got {len(t)}")
        n += len(y)
    if n == 0:
        raise ValueError("mse_loss needs at least one element")
    loss = sum((yi - ti) * (yi - ti) for y, t in zip(outputs, targets) for yi, ti in zip(y, t)) / n
    grad = [[2.0 * (yi - ti) / n for yi, ti in zip(y, t)] for y, t in zip(outputs, targets)]
    return loss, grad


def softmax_cross_entropy(
    logits: Sequence[Sequence[float]],
    targets: Sequence[int],
    ignore_index: int | None = None,
):
    """Softmax followed by cross-entropy, fused: mean over rows of -log softmax(z)[target].

    Fusing the two keeps the loss finite for logits of +-1000 (it never takes log of a rounded-off
    probability) and gives the famously simple gradient dE/dz = (softmax(z) - onehot(target)) / N.
    Rows whose target equals `ignore_index` contribute nothing, and N counts only the other rows;
    if every row is ignored the loss is 0.0 with a zero gradient.

    `logits` is (N, V), `targets` N ints in [0, V). Returns (loss, dE/dz) with dE/dz (N, V).

    >>> loss, grad = softmax_cross_entropy([[0.0, 0.0]], [1])
    >>> round(loss, 6), grad
    (0.693147, [[0.5, -0.5]])
    """
    check_numbers("logits", logits), check_ints("targets", targets)
    shape = shape_of(logits)
    if len(shape) != 2:
        raise ValueError(f"logits must have shape (N, V), got {shape}")
    check_shape("logits", logits, shape)
    if not isinstance(targets, (list, tuple)):
        raise TypeError(f"targets must be a list of ints, got {type(targets).__name__}")
    if len(logits) != len(targets):
        raise ValueError(f"targets must have {len(logits)} entries like logits, got {len(targets)}")
    counted = 0
    for i, (row, t) in enumerate(zip(logits, targets)):
        if isinstance(t, (list, tuple)):
            raise ValueError(f"targets must have shape ({len(logits)},), got nested lists")
        if isinstance(t, bool) or not isinstance(t, int):
            raise TypeError(f"targets[{i}] must be an int class index, got {type(t).__name__}")
        if t == ignore_index:
            continue
        if not 0 <= t < len(row):
            raise ValueError(f"targets[{i}] = {t} out of range for {len(row)} classes")
        counted += 1
    loss = 0.0
    grad = []
    for row, t in zip(logits, targets):
        if t == ignore_index:
            grad.append([0.0] * len(row))
            continue
        logp = log_softmax(row)
        loss -= logp[t]
        g = [math.exp(lp) / counted for lp in logp]
        g[t] -= 1.0 / counted
        grad.append(g)
    return (loss / counted if counted else 0.0), grad

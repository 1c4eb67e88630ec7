"""The losses on the CPU: numpy's SIMD exp for the softmax, and one Numba loop for the sums.

The softmax and cross-entropy of large blocks run on numpy's SIMD exp (measured 3x faster than a
Numba loop calling the scalar libm exp); the reduction to the loss is `ordered_sum`, kept serial so
the loss is the same whatever the thread count, and in the reference's order. Small blocks (under
`SMALL` elements, the digit network's (32, 10) batch) take one serial Numba loop instead: there the
dozen numpy calls of the vectorized path cost more than the exps (30 us against 2 us at (32, 10)).
The launchers below are the ones `fast/losses.py` calls on numpy arrays, by the names and
signatures of `fast/cuda/losses.py`.
"""

import math

import numpy as np
from numba import njit


@njit(cache=True)
def ordered_sum(x):
    """x[0] + x[1] + ... left to right (deterministic, the reference's order)."""
    s = 0.0
    for i in range(x.size):
        s += x[i]
    return s


SMALL = 4096  # elements: below, one Numba loop beats numpy's per-call overhead


@njit(cache=True)
def softmax_small(x, log, out):
    """out = softmax (or log_softmax) of each row of x, one row at a time, sums in float64."""
    R, V = x.shape
    for r in range(R):
        m = x[r, 0]
        for j in range(1, V):
            m = max(m, x[r, j])
        s = 0.0
        for j in range(V):
            s += math.exp(x[r, j] - m)
        if log:
            lse = m + math.log(s)
            for j in range(V):
                out[r, j] = x[r, j] - lse
        else:
            for j in range(V):
                out[r, j] = math.exp(x[r, j] - m) / s


@njit(cache=True)
def cross_entropy_small(x, t, counted, count, grad):
    """The loss (mean over counted rows, summed in row order) and grad = (softmax - onehot) /
    count on counted rows, 0 elsewhere: `cross_entropy_rows` in one pass per row."""
    R, V = x.shape
    scale = 1.0 / max(count, 1)
    total = 0.0
    for r in range(R):
        if not counted[r]:
            for j in range(V):
                grad[r, j] = 0.0
            continue
        m = x[r, 0]
        for j in range(1, V):
            m = max(m, x[r, j])
        s = 0.0
        for j in range(V):
            s += math.exp(x[r, j] - m)
        total += (m + math.log(s)) - x[r, t[r]]
        for j in range(V):
            grad[r, j] = math.exp(x[r, j] - m) / s * scale
        grad[r, t[r]] -= scale
    return total / count if count else 0.0


# -- the launchers: inputs already checked by the public functions of fast/losses.py ---------
def softmax_rows(x: np.ndarray, log: bool) -> np.ndarray:
    """softmax (or log_softmax) of each row of x (R, V)."""
    x = np.ascontiguousarray(x)
    if x.size < SMALL:
        out = np.empty_like(x)
        softmax_small(x, log, out)
        return out
    if log:
        m = x.max(axis=1, keepdims=True)
        lse = m + np.log(np.exp(x - m).sum(axis=1, keepdims=True))
        return x - lse
    e = x - x.max(axis=1, keepdims=True)
    np.exp(e, out=e)
    e /= e.sum(axis=1, keepdims=True)
    return e


def mse_rows(y: np.ndarray, t: np.ndarray):
    """(mean of (y - t)^2 as a float, 2 (y - t) / n), the sum in order."""
    diff = y - t
    n = y.size
    loss = ordered_sum(np.ascontiguousarray(diff * diff).reshape(-1)) / n
    return float(loss), 2.0 * diff / n


def cross_entropy_rows(x: np.ndarray, t: np.ndarray, counted: np.ndarray, count: int):
    """(mean loss over the counted rows, dE/dx (N, V)) for targets t already checked.

    Vectorized over the whole (N, V) block: exp is the costly part, and numpy's SIMD exp is
    several times faster than a scalar call per element in a Numba loop. Sums are numpy's
    (pairwise, single-threaded), so the result does not depend on the thread count."""
    N = x.shape[0]
    x = np.ascontiguousarray(x)
    if x.size < SMALL:
        grad = np.empty_like(x)
        return float(cross_entropy_small(x, t, counted, count, grad)), grad
    m = x.max(axis=1, keepdims=True)  # (N, 1)
    e = x - m
    np.exp(e, out=e)  # (N, V)
    s = e.sum(axis=1, keepdims=True, dtype=np.float64)  # (N, 1)
    rows = np.arange(N)
    safe_t = np.where(counted, t, 0)
    row_loss = (m[:, 0] + np.log(s[:, 0])) - x[rows, safe_t]  # -log softmax(x)[t], (N,)
    loss = float(ordered_sum(np.where(counted, row_loss, 0.0))) / count if count else 0.0
    e /= (s * max(count, 1)).astype(e.dtype)  # softmax / count
    e[rows[counted], t[counted]] -= 1.0 / max(count, 1)
    e[~counted] = 0.0
    return loss, e

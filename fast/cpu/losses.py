"""The losses on the CPU: Numba loops over rows, and numpy's SIMD exp where Numba has none.

The cross-entropy (the language models' head: (B*T, V) logits) is one kernel parallel over rows
in float32, with the vectorizable polynomial exp of `fast/cpu/elementwise.py` (1,024 x 2,048:
6.2 ms on numpy's path of a dozen passes, 2.0 ms here). In float64, exp is libm's scalar call,
slower than numpy's SIMD exp on large blocks, so large float64 blocks stay on numpy's vectorized
path; small blocks (under `SMALL` elements, the digit network's (32, 10) batch) take the kernel in
either dtype, where numpy's per-call overhead is what costs. The loss over rows is `ordered_sum`,
serial, in the reference's order, whatever the thread count. The launchers below are the ones
`fast/losses.py` calls on numpy arrays, by the names and signatures of `fast/cuda/losses.py`.
"""

import math

import numpy as np
from numba import njit, prange

from . import PER_ELEMENT_CALL, parallel_kernel
from .elementwise import exp_nonpositive


@njit(cache=True)
def ordered_sum(x):
    """x[0] + x[1] + ... left to right (deterministic, the reference's order)."""
    s = 0.0
    for i in range(x.size):
        s += x[i]
    return s


SMALL = 4096  # elements: below, one serial Numba loop beats numpy's per-call overhead


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


@parallel_kernel(PER_ELEMENT_CALL)
def cross_entropy_kernel(x, t, counted, count, grad, row_loss):
    """Per row r (in parallel): row_loss[r] = -log softmax(x[r])[t[r]] and grad[r] = (softmax -
    onehot) / count, or 0 and a zero row where not counted[r]. The exp is `exp_nonpositive` (in
    float32 a polynomial LLVM vectorizes; math.exp in float64), in a loop of its own; the row's
    sum runs in float64 over four interleaved partial sums (a fixed order, whatever the thread
    count), so the adds are not one long chain of latencies."""
    R, V = x.shape
    scale = 1.0 / max(count, 1)
    for r in prange(R):
        if not counted[r]:
            for j in range(V):
                grad[r, j] = 0.0
            row_loss[r] = 0.0
            continue
        m = x[r, 0]
        for j in range(1, V):
            m = max(m, x[r, j])
        for j in range(V):
            grad[r, j] = exp_nonpositive(x[r, j] - m)
        s0 = s1 = s2 = s3 = 0.0
        V4 = V - V % 4
        for j in range(0, V4, 4):
            s0 += grad[r, j]
            s1 += grad[r, j + 1]
            s2 += grad[r, j + 2]
            s3 += grad[r, j + 3]
        for j in range(V4, V):
            s0 += grad[r, j]
        s = (s0 + s1) + (s2 + s3)
        row_loss[r] = (m + math.log(s)) - x[r, t[r]]
        d = grad[r, 0] - grad[r, 0] + s * max(count, 1)  # s * count, in grad's dtype
        for j in range(V):
            grad[r, j] = grad[r, j] / d
        grad[r, t[r]] -= scale


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

    `cross_entropy_kernel` for float32 and for small blocks; else (large float64) vectorized
    over the whole block with numpy's SIMD exp and pairwise row sums. Neither depends on the
    thread count."""
    N = x.shape[0]
    x = np.ascontiguousarray(x)
    if x.dtype == np.float32 or x.size < SMALL:
        grad = np.empty_like(x)
        row_loss = np.empty(N, dtype=np.float64)
        cross_entropy_kernel(x, t, counted, count, grad, row_loss)
        return (float(ordered_sum(row_loss)) / count if count else 0.0), grad
    return cross_entropy_vectorized(x, t, counted, count)


def cross_entropy_vectorized(x: np.ndarray, t: np.ndarray, counted: np.ndarray, count: int):
    """`cross_entropy_rows` on numpy's whole-block operations (x contiguous)."""
    N = x.shape[0]
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

"""Softmax and the fused softmax cross-entropy, one row per parallel iteration.

Rows are independent, so each thread owns whole rows and the result does not depend on the thread
count; the loss is summed over rows serially, in row order, after the parallel part.
"""

import math

from numba import njit, prange


@njit(cache=True, parallel=True)
def softmax_rows(x, out):
    """out[r] = softmax(x[r]) for each row r of a (N, V) array; subtracts the row max."""
    N, V = x.shape
    for r in prange(N):
        m = x[r, 0]
        for j in range(1, V):
            if x[r, j] > m:
                m = x[r, j]
        s = 0.0
        for j in range(V):
            e = math.exp(x[r, j] - m)
            out[r, j] = e
            s += e
        for j in range(V):
            out[r, j] = out[r, j] / s


@njit(cache=True, parallel=True)
def log_softmax_rows(x, out):
    """out[r] = x[r] - logsumexp(x[r])."""
    N, V = x.shape
    for r in prange(N):
        m = x[r, 0]
        for j in range(1, V):
            if x[r, j] > m:
                m = x[r, j]
        s = 0.0
        for j in range(V):
            s += math.exp(x[r, j] - m)
        lse = m + math.log(s)
        for j in range(V):
            out[r, j] = x[r, j] - lse


@njit(cache=True, parallel=True)
def cross_entropy_rows(logits, targets, ignore_index, use_ignore, count, row_loss, dlogits):
    """Per row: row_loss[r] = -log softmax(logits[r])[t] and
    dlogits[r] = (softmax(logits[r]) - onehot(t)) / count, as the reference writes it;
    rows whose target is ignored get 0."""
    N, V = logits.shape
    for r in prange(N):
        t = targets[r]
        if use_ignore and t == ignore_index:
            row_loss[r] = 0.0
            for j in range(V):
                dlogits[r, j] = 0.0
            continue
        m = logits[r, 0]
        for j in range(1, V):
            if logits[r, j] > m:
                m = logits[r, j]
        s = 0.0
        for j in range(V):
            s += math.exp(logits[r, j] - m)
        lse = m + math.log(s)
        row_loss[r] = lse - logits[r, t]
        for j in range(V):
            dlogits[r, j] = math.exp(logits[r, j] - lse) / count
        dlogits[r, t] -= 1.0 / count


@njit(cache=True)
def ordered_sum(x):
    """x[0] + x[1] + ... left to right (deterministic, the reference's order)."""
    s = 0.0
    for i in range(x.size):
        s += x[i]
    return s


@njit(cache=True)
def scale_inplace(x, c):
    flat = x.reshape(-1)
    for i in range(flat.size):
        flat[i] = flat[i] * c

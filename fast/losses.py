"""Loss functions on numpy arrays: the reference's `losses.py`, one fused kernel per call.

Each loss returns the loss (a Python float) and its gradient with respect to the network's output
(an array), the start of backpropagation.
"""

from __future__ import annotations

import numpy as np

from .cpu import losses as k
from .device import cuda_ops, is_device_array, to_device
from .validate import as_float_array, as_index_array


def _gpu():
    """The GPU kernels' launchers (`fast/cuda/losses.py`), imported on first use."""
    return cuda_ops("losses")


def _floats(x, name: str):
    """x as a float array: a DeviceArray (float32/float64) stays on the GPU, anything else is
    checked as numpy input."""
    if is_device_array(x):
        return _gpu().device_input(x, name)
    return as_float_array(x, name, kept=False)  # a loss keeps nothing of its inputs


def _rows(x, name):
    a = _floats(x, name)
    if a.ndim == 0:
        raise ValueError(f"{name} must have at least one axis, got a scalar")
    if a.shape[-1] == 0:
        raise ValueError(f"{name} must have a non-empty last axis, got shape {a.shape}")
    if is_device_array(a):
        return a.reshape(-1, a.shape[-1]), a.shape
    return np.ascontiguousarray(a.reshape(-1, a.shape[-1])), a.shape


def softmax(row):
    """exp(z - max) / sum, along the last axis (numpy's SIMD exp)."""
    x, shape = _rows(row, "row")
    if is_device_array(x):
        return _gpu().softmax_rows(x, log=False).reshape(shape)
    e = x - x.max(axis=1, keepdims=True)
    np.exp(e, out=e)
    e /= e.sum(axis=1, keepdims=True)
    return e.reshape(shape)


def log_softmax(row):
    """z - logsumexp(z), along the last axis."""
    x, shape = _rows(row, "row")
    if is_device_array(x):
        return _gpu().softmax_rows(x, log=True).reshape(shape)
    m = x.max(axis=1, keepdims=True)
    lse = m + np.log(np.exp(x - m).sum(axis=1, keepdims=True))
    return (x - lse).reshape(shape)


def mse_loss(outputs, targets):
    """Mean squared error over every element: (loss, dE/dy = 2 (y - t) / N)."""
    y = _floats(outputs, "outputs")
    if is_device_array(targets):  # targets already on the GPU
        t = targets if targets.dtype == y.dtype else targets.astype(y.dtype)
    else:
        t = as_float_array(targets, "targets", y.dtype)
    if y.ndim != 2:
        raise ValueError(f"outputs must have shape (B, K), got {y.shape}")
    if t.shape != y.shape:
        raise ValueError(f"targets must have shape {y.shape} like outputs, got {t.shape}")
    if y.size == 0:
        raise ValueError("mse_loss needs at least one element")
    if is_device_array(y) or is_device_array(t):
        return _gpu().mse_rows(to_device(y, "cuda"), to_device(t, "cuda"))
    diff = y - t
    n = y.size
    loss = k.ordered_sum(np.ascontiguousarray(diff * diff).reshape(-1)) / n
    return float(loss), 2.0 * diff / n


def softmax_cross_entropy(logits, targets, ignore_index: int | None = None):
    """Fused softmax + cross-entropy over rows: (mean loss, dE/dlogits (N, V)).

    Rows whose target equals `ignore_index` count for nothing; all ignored gives (0.0, zeros).
    """
    x = _floats(logits, "logits")
    if x.ndim != 2:
        raise ValueError(f"logits must have shape (N, V), got {x.shape}")
    N, V = x.shape
    t = as_index_array(targets, "targets")
    if t.shape != (N,):
        raise ValueError(f"targets must have {N} entries like logits, got shape {t.shape}")
    use_ignore = ignore_index is not None
    counted = t != ignore_index if use_ignore else np.ones(N, dtype=bool)
    bad = counted & ((t < 0) | (t >= V))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"targets[{i}] = {int(t[i])} out of range for {V} classes")
    count = int(counted.sum())
    if is_device_array(x):
        return _gpu().cross_entropy_rows(x, t, counted, count)
    # Vectorized over the whole (N, V) block: exp is the costly part, and numpy's SIMD exp is
    # several times faster than a scalar call per element in a Numba loop. Sums are numpy's
    # (pairwise, single-threaded), so the result does not depend on the thread count.
    x = np.ascontiguousarray(x)
    m = x.max(axis=1, keepdims=True)  # (N, 1)
    e = x - m
    np.exp(e, out=e)  # (N, V)
    s = e.sum(axis=1, keepdims=True, dtype=np.float64)  # (N, 1)
    rows = np.arange(N)
    safe_t = np.where(counted, t, 0)
    row_loss = (m[:, 0] + np.log(s[:, 0])) - x[rows, safe_t]  # -log softmax(x)[t], (N,)
    loss = float(k.ordered_sum(np.where(counted, row_loss, 0.0))) / count if count else 0.0
    e /= (s * max(count, 1)).astype(e.dtype)  # softmax / count
    e[rows[counted], t[counted]] -= 1.0 / max(count, 1)
    e[~counted] = 0.0
    return loss, e

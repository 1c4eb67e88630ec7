"""Loss functions on numpy arrays: the reference's `losses.py`, one fused kernel per call.

Each loss returns the loss (a Python float) and its gradient with respect to the network's output
(an array), the start of backpropagation. Each public function checks its inputs here, then
calls the launcher of their device (`fast.device.kernels("losses", ...)`: `fast/cpu/losses.py` or
`fast/cuda/losses.py`, same names and signatures).
"""

from __future__ import annotations

import numpy as np

from .device import device_of, floats, kernels, to_device
from .validate import as_index_array


def _floats(x, name: str):
    """x as a float array on its device; a loss keeps nothing of its inputs."""
    return floats(x, name, kept=False, ints=False)


def _rows(x, name):
    a = _floats(x, name)
    if a.ndim == 0:
        raise ValueError(f"{name} must have at least one axis, got a scalar")
    if a.shape[-1] == 0:
        raise ValueError(f"{name} must have a non-empty last axis, got shape {a.shape}")
    return a.reshape(-1, a.shape[-1]), a.shape


def softmax(row):
    """exp(z - max) / sum, along the last axis (numpy's SIMD exp on the CPU)."""
    x, shape = _rows(row, "row")
    return kernels("losses", x).softmax_rows(x, log=False).reshape(shape)


def log_softmax(row):
    """z - logsumexp(z), along the last axis."""
    x, shape = _rows(row, "row")
    return kernels("losses", x).softmax_rows(x, log=True).reshape(shape)


def mse_loss(outputs, targets):
    """Mean squared error over every element: (loss, dE/dy = 2 (y - t) / N)."""
    y = _floats(outputs, "outputs")
    t = floats(targets, "targets", y.dtype, device=device_of(targets), kept=False)
    if y.ndim != 2:
        raise ValueError(f"outputs must have shape (B, K), got {y.shape}")
    if t.shape != y.shape:
        raise ValueError(f"targets must have shape {y.shape} like outputs, got {t.shape}")
    if y.size == 0:
        raise ValueError("mse_loss needs at least one element")
    device = device_of(y, t)  # (one operand on the GPU takes the other there)
    y, t = to_device(y, device), to_device(t, device)
    return kernels("losses", y, t).mse_rows(y, t)


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
    return kernels("losses", x).cross_entropy_rows(x, t, counted, count)

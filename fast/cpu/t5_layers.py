"""T5's layer norm on the CPU: the fused kernels and the launchers `fast/t5_layers.py` calls on
numpy arrays (the names and signatures of `fast/cuda/t5_layers.py`'s).

The other T5 ops need no kernels of their own: the relative position bias is the embedding's
gather and scatter-add (`fast/cpu/layers.py`), the gated GELU the activation launchers, and the
unscaled biased attention the attention kernels (`fast/cpu/attention.py`).

Each row is one thread's and its sum runs in channel order; the weight's gradient is summed per
channel in row order: no result depends on the thread count.
"""

import math

import numpy as np
from numba import njit, prange


@njit(cache=True, parallel=True)
def t5_norm_forward_kernel(x, weight, eps, out, rstd):
    """x (N, C) -> out (N, C) = weight * x * r, r = 1 / sqrt(mean(x^2) + eps) saved per row."""
    N, C = x.shape
    for r in prange(N):
        s = 0.0
        for c in range(C):
            s += x[r, c] * x[r, c]
        rs = 1.0 / math.sqrt(s / C + eps)
        for c in range(C):
            out[r, c] = weight[c] * (x[r, c] * rs)
        rstd[r] = rs


@njit(cache=True, parallel=True)
def t5_norm_backward_kernel(dout, x, weight, rstd, dx, dweight):
    """dx (N, C) row-parallel: r (g - x r^2 mean(g x)), g = dout * weight; dweight (C,)
    channel-parallel, sum over rows of dout * x * r."""
    N, C = x.shape
    for r in prange(N):
        rs = rstd[r]
        gx = 0.0
        for c in range(C):
            gx += dout[r, c] * weight[c] * x[r, c]
        gx_mean = gx / C
        for c in range(C):
            dx[r, c] = rs * (dout[r, c] * weight[c] - x[r, c] * rs * rs * gx_mean)
    for c in prange(C):
        dw = 0.0
        for r in range(N):
            dw += dout[r, c] * (x[r, c] * rstd[r])
        dweight[c] = dw


# -- the launchers: arrays already checked by fast/t5_layers.py ------------------------------------
def t5_norm_rows(x2: np.ndarray, w: np.ndarray, eps: float):
    """(out, rstd) for the rows of x2 (N, C) (contiguous); rstd in float64."""
    out = np.empty_like(x2)
    rstd = np.empty(x2.shape[0], dtype=np.float64)
    t5_norm_forward_kernel(x2, w, eps, out, rstd)
    return out, rstd


def t5_norm_rows_backward(d, x2, w, rstd):
    """(dx, dweight) for `t5_norm_rows`, one fused kernel."""
    dx = np.empty_like(x2)
    dweight = np.empty(w.shape[0], dtype=w.dtype)
    t5_norm_backward_kernel(d, x2, w, rstd, dx, dweight)
    return dx, dweight

"""Kernels for the Transformer layers that BLAS does not cover.

Layer norm is fused (mean, variance, normalise, scale and shift in one pass over each row) and its
backward is split in two deterministic parallel loops: rows for dx, channels for dweight/dbias, so
no two threads ever add into the same number. The embedding's scatter-add is parallel over
channels for the same reason. Dropout draws its keep decisions from Philox inside the loop.

Below the kernels, the launchers `fast/layers.py` calls on numpy arrays, by the names and
signatures of `fast/cuda/layers.py`'s (`fast.device.kernels("layers", ...)` picks one of the two).
"""

import math

import numpy as np
from numba import njit, prange

from .elementwise import (
    GELU,
    activation_backward_kernel,
    activation_kernel,
    derivative_kernel,
    gelu_backward_from_tanh,
    gelu_tanh_parts,
)
from .rng import philox_word

INV_2_32 = 1.0 / 4294967296.0


@njit(cache=True, parallel=True)
def layer_norm_forward_kernel(x, weight, bias, eps, out, mean, rstd):
    """x (N, C) -> out (N, C); saves mean and 1/std per row. Two-pass variance, as the reference."""
    N, C = x.shape
    for r in prange(N):
        s = 0.0
        for c in range(C):
            s += x[r, c]
        m = s / C
        v = 0.0
        for c in range(C):
            d = x[r, c] - m
            v += d * d
        rs = 1.0 / math.sqrt(v / C + eps)
        for c in range(C):
            out[r, c] = (x[r, c] - m) * rs * weight[c] + bias[c]
        mean[r] = m
        rstd[r] = rs


@njit(cache=True, parallel=True)
def layer_norm_backward_kernel(dout, x, weight, mean, rstd, dx, dweight, dbias):
    """dx (N, C) row-parallel; dweight, dbias (C,) channel-parallel (each summed in row order)."""
    N, C = x.shape
    for r in prange(N):
        m, rs = mean[r], rstd[r]
        g_sum = 0.0
        gx_sum = 0.0
        for c in range(C):
            g = dout[r, c] * weight[c]
            g_sum += g
            gx_sum += g * ((x[r, c] - m) * rs)
        g_mean = g_sum / C
        gx_mean = gx_sum / C
        for c in range(C):
            xhat = (x[r, c] - m) * rs
            dx[r, c] = rs * (dout[r, c] * weight[c] - g_mean - xhat * gx_mean)
    for c in prange(C):
        dw = 0.0
        db = 0.0
        for r in range(N):
            dw += dout[r, c] * ((x[r, c] - mean[r]) * rstd[r])
            db += dout[r, c]
        dweight[c] = dw
        dbias[c] = db


@njit(cache=True, parallel=True)
def embedding_backward_kernel(ids, dout, dweight):
    """dweight[ids[n]] += dout[n] for every n; channel-parallel so each sum runs in token order."""
    N, C = dout.shape
    for c in prange(C):
        for n in range(N):
            dweight[ids[n], c] += dout[n, c]


@njit(cache=True, parallel=True)
def dropout_kernel(x, p, seed, stream, out, mult):
    """out = x * mult with mult = 1/(1-p) where uniform(seed, stream, i) >= p, else 0."""
    s_lo, s_hi = seed & np.uint64(0xFFFFFFFF), seed >> np.uint64(32)
    t_lo, t_hi = stream & np.uint64(0xFFFFFFFF), stream >> np.uint64(32)
    scale = 1.0 / (1.0 - p) if p < 1.0 else 0.0
    for i in prange(x.size):
        u = float(philox_word(s_lo, s_hi, t_lo, t_hi, np.uint64(i))) * INV_2_32
        k = scale if u >= p else 0.0
        mult[i] = k
        out[i] = x[i] * k


# -- the launchers: arrays already checked by the public functions of fast/layers.py -----------
def gather_rows(w: np.ndarray, flat: np.ndarray, shape: tuple) -> np.ndarray:
    """w[ids] for ids `flat` (checked in range) shaped `shape`: shape + (C,)."""
    return w[flat.reshape(shape)]


def scatter_add_rows(d: np.ndarray, flat: np.ndarray, num: int) -> np.ndarray:
    """dweight (num, C) with row flat[n] += d[n] for every n, each sum in token order."""
    dweight = np.zeros((num, d.shape[1]), dtype=d.dtype)
    embedding_backward_kernel(flat, d, dweight)
    return dweight


def layer_norm_rows(x2: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float):
    """(out, mean, rstd) for the rows of x2 (N, C) (contiguous); mean and rstd in float64."""
    out = np.empty_like(x2)
    mean = np.empty(x2.shape[0], dtype=np.float64)
    rstd = np.empty(x2.shape[0], dtype=np.float64)
    layer_norm_forward_kernel(x2, w, b, eps, out, mean, rstd)
    return out, mean, rstd


def layer_norm_rows_backward(d, x2, w, mean, rstd):
    """(dx, dweight, dbias) for `layer_norm_rows`, one fused kernel."""
    C = w.shape[0]
    dx = np.empty_like(x2)
    dweight = np.empty(C, dtype=w.dtype)
    dbias = np.empty(C, dtype=w.dtype)
    layer_norm_backward_kernel(d, x2, w, mean, rstd, dx, dweight, dbias)
    return dx, dweight, dbias


def activation(kind: int, x: np.ndarray):
    """(f(x), saved) for contiguous x: GELU (tanh form) by numpy's SIMD tanh, saving the tanh
    for the backward; the others one fused loop, saving nothing (None)."""
    if kind == GELU:
        return gelu_tanh_parts(x)
    out = np.empty_like(x)
    activation_kernel(kind, x.reshape(-1), out.reshape(-1))
    return out, None


def activation_backward(kind: int, dout: np.ndarray, x: np.ndarray, saved) -> np.ndarray:
    """dout * f'(x), one fused loop (GELU's from the tanh `activation` saved)."""
    dx = np.empty_like(x)
    if saved is not None:
        gelu_backward_from_tanh(x.reshape(-1), saved.reshape(-1), dout.reshape(-1), dx.reshape(-1))
    else:
        activation_backward_kernel(kind, x.reshape(-1), dout.reshape(-1), dx.reshape(-1))
    return dx


def elementwise(kind: int, x: np.ndarray, derivative: bool = False) -> np.ndarray:
    """f(x), or f'(x) when `derivative`, for the activation numbered `kind`, one fused loop."""
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty_like(flat)
    (derivative_kernel if derivative else activation_kernel)(kind, flat, out)
    return out.reshape(x.shape)


def times_derivative(kind: int, dout: np.ndarray, x: np.ndarray) -> np.ndarray:
    """dout * f'(x): the chain rule through an activation, one fused loop."""
    return activation_backward(kind, np.ascontiguousarray(dout, dtype=x.dtype), x, None)


def dropout(xa: np.ndarray, p: float, seed: int, stream: int):
    """(out, mult): the keep multipliers from Philox words 0 .. n-1 of (seed, stream)."""
    out = np.empty_like(xa)
    mult = np.empty(xa.size, dtype=xa.dtype)
    dropout_kernel(xa.reshape(-1), p, np.uint64(seed), np.uint64(stream), out.reshape(-1), mult)
    return out, mult

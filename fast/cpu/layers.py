"""Kernels for the Transformer layers that BLAS does not cover.

Layer norm is fused (mean, variance, normalise, scale and shift in one pass over each row) and its
backward is split in two deterministic parallel loops: rows for dx, channels for dweight/dbias, so
no two threads ever add into the same number. The embedding's scatter-add is parallel over
channels for the same reason. Dropout draws its keep decisions from Philox inside the loop.
"""

import math

import numpy as np
from numba import njit, prange

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

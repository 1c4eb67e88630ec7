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
from numba import prange

from . import PER_ELEMENT_CALL, PER_ROW_REDUCTION, parallel_kernel
from .elementwise import (
    GELU,
    SILU,
    _df,
    _f,
    activation_backward_kernel,
    activation_kernel,
    derivative_kernel,
    gelu_backward_from_s,
    gelu_tanh_parts,
)
from .rng import philox_word

INV_2_32 = 1.0 / 4294967296.0
CHANNEL_BLOCK = 32  # channels per parallel task of the norms' weight gradients


@parallel_kernel(PER_ROW_REDUCTION)
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


@parallel_kernel(PER_ROW_REDUCTION)
def layer_norm_backward_kernel(dout, x, weight, mean, rstd, dx, dweight, dbias):
    """dx (N, C) row-parallel; dweight, dbias (C,) parallel over blocks of CHANNEL_BLOCK channels,
    each channel summed in row order. A block sweeps the rows once, adding a row's channels as
    one vector: reading a column at a time (stride C) cost three times as much at C = 384."""
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
    for b in prange((C + CHANNEL_BLOCK - 1) // CHANNEL_BLOCK):
        c0 = b * CHANNEL_BLOCK
        c1 = min(C, c0 + CHANNEL_BLOCK)
        dw = np.zeros(c1 - c0)
        db = np.zeros(c1 - c0)
        for r in range(N):  # row order, each row's block of channels in one vector sweep
            m, rs = mean[r], rstd[r]
            for c in range(c0, c1):
                dw[c - c0] += dout[r, c] * ((x[r, c] - m) * rs)
                db[c - c0] += dout[r, c]
        for c in range(c0, c1):
            dweight[c] = dw[c - c0]
            dbias[c] = db[c - c0]


@parallel_kernel(PER_ROW_REDUCTION)
def rms_norm_forward_kernel(x, weight, eps, out, rstd):
    """x (N, C) -> out (N, C) = x * rstd * weight, rstd = 1 / sqrt(mean(x^2) + eps) per row
    (saved); the sum of squares in channel order, as the reference."""
    N, C = x.shape
    for r in prange(N):
        s = 0.0
        for c in range(C):
            s += x[r, c] * x[r, c]
        rs = 1.0 / math.sqrt(s / C + eps)
        for c in range(C):
            out[r, c] = x[r, c] * rs * weight[c]
        rstd[r] = rs


@parallel_kernel(PER_ROW_REDUCTION)
def rms_norm_backward_kernel(dout, x, weight, rstd, dx, dweight):
    """dx = rstd (g - xhat mean(g xhat)), g = dout * weight, row-parallel; dweight = the sum of
    dout * xhat over rows, channel-parallel (each in row order)."""
    N, C = x.shape
    for r in prange(N):
        rs = rstd[r]
        gx_sum = 0.0
        for c in range(C):
            gx_sum += (dout[r, c] * weight[c]) * (x[r, c] * rs)
        gx_mean = gx_sum / C
        for c in range(C):
            dx[r, c] = rs * (dout[r, c] * weight[c] - (x[r, c] * rs) * gx_mean)
    for b in prange((C + CHANNEL_BLOCK - 1) // CHANNEL_BLOCK):
        c0 = b * CHANNEL_BLOCK
        c1 = min(C, c0 + CHANNEL_BLOCK)
        dw = np.zeros(c1 - c0)
        for r in range(N):  # row order, as layer_norm_backward_kernel's
            rs = rstd[r]
            for c in range(c0, c1):
                dw[c - c0] += dout[r, c] * (x[r, c] * rs)
        for c in range(c0, c1):
            dweight[c] = dw[c - c0]


@parallel_kernel(PER_ROW_REDUCTION)
def rope_kernel(x, cos, sin, T, n_head, sign, out):
    """Rotary embeddings on rows x (B*T, C), row r at position r % T: pair i of each head,
    channels (i, i + hs/2), turned by the table's angle, times `sign` (1 forward, -1 to rotate a
    gradient back)."""
    N, C = x.shape
    hs = C // n_head
    half = hs // 2
    for r in prange(N):
        t = r % T
        for h in range(n_head):
            o = h * hs
            for i in range(half):
                c = cos[t, i]
                s = sin[t, i] * sign
                x1 = x[r, o + i]
                x2 = x[r, o + half + i]
                out[r, o + i] = x1 * c - x2 * s
                out[r, o + half + i] = x2 * c + x1 * s


@parallel_kernel(PER_ELEMENT_CALL)
def swiglu_kernel(gate, up, out):
    """out = silu(gate) * up (flat arrays)."""
    for i in prange(gate.size):
        out[i] = _f(SILU, gate[i]) * up[i]


@parallel_kernel(PER_ELEMENT_CALL)
def swiglu_backward_kernel(dout, gate, up, dgate, dup):
    """dgate = dout * up * silu'(gate), dup = dout * silu(gate) (flat arrays)."""
    for i in prange(gate.size):
        dgate[i] = dout[i] * up[i] * _df(SILU, gate[i])
        dup[i] = dout[i] * _f(SILU, gate[i])


@parallel_kernel(PER_ROW_REDUCTION)
def embedding_backward_kernel(ids, dout, dweight):
    """dweight[ids[n]] += dout[n] for every n; channel-parallel so each sum runs in token order."""
    N, C = dout.shape
    for c in prange(C):
        for n in range(N):
            dweight[ids[n], c] += dout[n, c]


@parallel_kernel(PER_ELEMENT_CALL)
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


def rms_norm_rows(x2: np.ndarray, w: np.ndarray, eps: float):
    """(out, rstd) for the rows of x2 (N, C) (contiguous); rstd in float64."""
    out = np.empty_like(x2)
    rstd = np.empty(x2.shape[0], dtype=np.float64)
    rms_norm_forward_kernel(x2, w, eps, out, rstd)
    return out, rstd


def rms_norm_rows_backward(d, x2, w, rstd):
    """(dx, dweight) for `rms_norm_rows`, one fused kernel."""
    dx = np.empty_like(x2)
    dweight = np.empty(w.shape[0], dtype=w.dtype)
    rms_norm_backward_kernel(d, x2, w, rstd, dx, dweight)
    return dx, dweight


def rope_rows(x2, cos, sin, T: int, n_head: int, sign: float):
    """Rotary embeddings on the rows x2 (B*T, C) (contiguous), tables (T, hs/2) in x2's dtype:
    a fresh (B*T, C); sign 1 turns forward, -1 back (the backward)."""
    out = np.empty_like(x2)
    rope_kernel(x2, cos, sin, T, n_head, x2.dtype.type(sign), out)
    return out


def swiglu(gate, up):
    """silu(gate) * up, a fresh array of gate's shape (both contiguous, one dtype)."""
    out = np.empty_like(gate)
    swiglu_kernel(gate.reshape(-1), up.reshape(-1), out.reshape(-1))
    return out


def swiglu_backward(d, gate, up):
    """(dgate, dup) for `swiglu`, one fused loop."""
    dgate, dup = np.empty_like(gate), np.empty_like(gate)
    swiglu_backward_kernel(
        d.reshape(-1), gate.reshape(-1), up.reshape(-1), dgate.reshape(-1), dup.reshape(-1)
    )
    return dgate, dup


def layer_norm_rows_backward(d, x2, w, mean, rstd):
    """(dx, dweight, dbias) for `layer_norm_rows`, one fused kernel."""
    C = w.shape[0]
    dx = np.empty_like(x2)
    dweight = np.empty(C, dtype=w.dtype)
    dbias = np.empty(C, dtype=w.dtype)
    layer_norm_backward_kernel(d, x2, w, mean, rstd, dx, dweight, dbias)
    return dx, dweight, dbias


def activation(kind: int, x: np.ndarray):
    """(f(x), saved) for contiguous x: GELU (tanh form) by `gelu_tanh_parts`, saving
    sigmoid(2u) for the backward; the others one fused loop, saving nothing (None)."""
    if kind == GELU:
        return gelu_tanh_parts(x)
    out = np.empty_like(x)
    activation_kernel(kind, x.reshape(-1), out.reshape(-1))
    return out, None


def activation_backward(kind: int, dout: np.ndarray, x: np.ndarray, saved) -> np.ndarray:
    """dout * f'(x), one fused loop (GELU's from what `activation` saved)."""
    dx = np.empty_like(x)
    if saved is not None:
        gelu_backward_from_s(x.reshape(-1), saved.reshape(-1), dout.reshape(-1), dx.reshape(-1))
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

"""The Transformer layers' GPU kernels, and the launchers `fast/layers.py` calls on DeviceArrays.

The public functions (their checks, caches and errors) are `fast/layers.py`'s, one definition for
both devices; this file holds what differs on the GPU. Read `reference/layers.py` for the math:
- linear layers are `gemm` calls on (N, C) views (the weight's transpose is a view, not a copy);
  the bias is one broadcast add and its gradient one column-sum kernel;
- layer norm is one block per row: the block's threads stride over the row and combine their
  partial sums with `reduce.block_sum` (a fixed tree: deterministic). Its weight and
  bias gradients are summed over rows in two fixed-order stages (chunks of rows, then the
  chunks), like `DeviceArray.sum`;
- activations and their derivatives are one elementwise kernel that calls the CPU backend's own
  scalar formulas (`fast/cpu/elementwise.py`): numba-cuda compiles those @njit functions for the
  GPU, so both backends evaluate one definition;
- dropout draws the same Philox words as the CPU (`fast/cpu/rng.py::philox_word`, also compiled
  for the GPU), so a mask is bit-identical on every backend;
- the embedding's backward is a scatter-add without atomics: the ids are on the host (they were
  checked there), so the host sorts positions by id once, and one thread per (id, channel) adds
  that id's rows in token order.

Ids and targets are checked on the host (by fast/layers.py) before anything is copied to the
GPU: kernels do no bounds checks.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, float64, types

from ..cpu.elementwise import SILU, _df, _f
from ..cpu.rng import philox_word
from .array import DeviceArray, ascontiguous, empty, empty_like, sum_chunks_kernel, to_device, zeros
from .launch import ELEMENTWISE_THREADS, ROW_THREADS, column_chunks, grid_1d
from .reduce import block_sum

MASK32 = np.uint64(0xFFFFFFFF)
INV_2_32 = 1.0 / 4294967296.0


# -- kernels ---------------------------------------------------------------------------------------
@cuda.jit
def layer_norm_forward_kernel(x, weight, bias, eps, C, out, mean, rstd):
    """Row blockIdx.x of x (N, C) flat: two-pass mean and variance, then scale and shift."""
    shared = cuda.shared.array(ROW_THREADS, float64)
    r, t = cuda.blockIdx.x, cuda.threadIdx.x
    base = r * C
    s = 0.0
    for c in range(t, C, ROW_THREADS):
        s += x[base + c]
    m = block_sum(shared, s) / C
    v = 0.0
    for c in range(t, C, ROW_THREADS):
        d = x[base + c] - m
        v += d * d
    rs = 1.0 / math.sqrt(block_sum(shared, v) / C + eps)
    for c in range(t, C, ROW_THREADS):
        out[base + c] = (x[base + c] - m) * rs * weight[c] + bias[c]
    if t == 0:
        mean[r] = m
        rstd[r] = rs


@cuda.jit
def layer_norm_backward_dx_kernel(dout, x, weight, mean, rstd, C, dx):
    """Row blockIdx.x: dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dout * weight."""
    shared = cuda.shared.array(ROW_THREADS, float64)
    r, t = cuda.blockIdx.x, cuda.threadIdx.x
    base, m, rs = r * C, mean[r], rstd[r]
    g_sum = 0.0
    gx_sum = 0.0
    for c in range(t, C, ROW_THREADS):
        g = dout[base + c] * weight[c]
        g_sum += g
        gx_sum += g * ((x[base + c] - m) * rs)
    g_mean = block_sum(shared, g_sum) / C
    gx_mean = block_sum(shared, gx_sum) / C
    for c in range(t, C, ROW_THREADS):
        xhat = (x[base + c] - m) * rs
        dx[base + c] = rs * (dout[base + c] * weight[c] - g_mean - xhat * gx_mean)


@cuda.jit
def layer_norm_backward_params_kernel(dout, x, mean, rstd, N, C, chunk, dweight_part, dbias_part):
    """Thread (c, k): channel c's dweight and dbias summed over the rows of chunk k, in order
    (float64 partials; `array.sum_chunks_kernel` then adds the chunks in order)."""
    c = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    k = cuda.blockIdx.y
    if c < C:
        dw = 0.0
        db = 0.0
        for r in range(k * chunk, min((k + 1) * chunk, N)):
            d = dout[r * C + c]
            dw += d * ((x[r * C + c] - mean[r]) * rstd[r])
            db += d
        dweight_part[k * C + c] = dw
        dbias_part[k * C + c] = db


@cuda.jit
def rms_norm_forward_kernel(x, weight, eps, C, out, rstd):
    """Row blockIdx.x of x (N, C) flat: out = x * rstd * weight, rstd = 1/sqrt(mean(x^2) + eps)."""
    shared = cuda.shared.array(ROW_THREADS, float64)
    r, t = cuda.blockIdx.x, cuda.threadIdx.x
    base = r * C
    s = 0.0
    for c in range(t, C, ROW_THREADS):
        s += x[base + c] * x[base + c]
    rs = 1.0 / math.sqrt(block_sum(shared, s) / C + eps)
    for c in range(t, C, ROW_THREADS):
        out[base + c] = x[base + c] * rs * weight[c]
    if t == 0:
        rstd[r] = rs


@cuda.jit
def rms_norm_backward_dx_kernel(dout, x, weight, rstd, C, dx):
    """Row blockIdx.x: dx = rstd * (g - xhat * mean(g * xhat)), g = dout * weight."""
    shared = cuda.shared.array(ROW_THREADS, float64)
    r, t = cuda.blockIdx.x, cuda.threadIdx.x
    base, rs = r * C, rstd[r]
    gx_sum = 0.0
    for c in range(t, C, ROW_THREADS):
        gx_sum += (dout[base + c] * weight[c]) * (x[base + c] * rs)
    gx_mean = block_sum(shared, gx_sum) / C
    for c in range(t, C, ROW_THREADS):
        dx[base + c] = rs * (dout[base + c] * weight[c] - (x[base + c] * rs) * gx_mean)


@cuda.jit
def rms_norm_backward_params_kernel(dout, x, rstd, N, C, chunk, dweight_part):
    """Thread (c, k): channel c's dweight summed over the rows of chunk k, in order (float64
    partials; `array.sum_chunks_kernel` then adds the chunks in order)."""
    c = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    k = cuda.blockIdx.y
    if c < C:
        dw = 0.0
        for r in range(k * chunk, min((k + 1) * chunk, N)):
            dw += dout[r * C + c] * (x[r * C + c] * rstd[r])
        dweight_part[k * C + c] = dw


@cuda.jit
def rope_kernel(x, cos, sin, T, n_head, C, sign, out):
    """One thread per (row, head, pair) of x (B*T, C) flat: pair i of a head, channels
    (i, i + hs/2), turned by the angle of row r's position r % T, times `sign`."""
    hs = C // n_head
    half = hs // 2
    n = x.size // C * n_head * half
    start, step = cuda.grid(1), cuda.gridsize(1)
    for k in range(start, n, step):
        i = k % half
        rh = k // half
        h = rh % n_head
        r = rh // n_head
        t = r % T
        c = cos[t * half + i]
        s = sin[t * half + i] * sign
        a = r * C + h * hs + i
        x1 = x[a]
        x2 = x[a + half]
        out[a] = x1 * c - x2 * s
        out[a + half] = x2 * c + x1 * s


@cuda.jit
def swiglu_kernel(gate, up, out):
    """out = silu(gate) * up, elementwise (the CPU backend's scalar silu)."""
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, gate.size, step):
        out[i] = _f(SILU, gate[i]) * up[i]


@cuda.jit
def swiglu_backward_kernel(dout, gate, up, dgate, dup):
    """dgate = dout * up * silu'(gate), dup = dout * silu(gate)."""
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, gate.size, step):
        dgate[i] = dout[i] * up[i] * _df(SILU, gate[i])
        dup[i] = dout[i] * _f(SILU, gate[i])


@cuda.jit
def activation_kernel(kind, x, out):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, x.size, step):
        out[i] = _f(kind, x[i])


@cuda.jit
def derivative_kernel(kind, x, out):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, x.size, step):
        out[i] = _df(kind, x[i])


@cuda.jit
def activation_backward_kernel(kind, x, dout, dx):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, x.size, step):
        dx[i] = dout[i] * _df(kind, x[i])


@cuda.jit
def dropout_kernel(x, p, seed, stream, out, mult):
    """out = x * mult, mult = 1/(1-p) where word i of (seed, stream) / 2**32 >= p, else 0."""
    s_lo, s_hi = seed & MASK32, seed >> np.uint64(32)
    t_lo, t_hi = stream & MASK32, stream >> np.uint64(32)
    scale = 1.0 / (1.0 - p) if p < 1.0 else 0.0
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, x.size, step):
        u = float(philox_word(s_lo, s_hi, t_lo, t_hi, np.uint64(i))) * INV_2_32
        k = scale if u >= p else 0.0
        mult[i] = k
        out[i] = x[i] * k


@cuda.jit
def gather_rows_kernel(weight, ids, N, C, out):
    """out[n, c] = weight[ids[n], c]."""
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, N * C, step):
        n = i // C
        out[i] = weight[ids[n] * C + (i - n * C)]


@cuda.jit
def scatter_rows_kernel(dout, order, seg_start, seg_id, U, C, dweight):
    """dweight[seg_id[u], c] = sum of dout[order[k], c] for k in segment u, in token order."""
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, U * C, step):
        u = i // C
        c = i - u * C
        s = 0.0
        for k in range(seg_start[u], seg_start[u + 1]):
            s += dout[order[k] * C + c]
        dweight[seg_id[u] * C + c] = s


def _ptx_kernels():
    i64, f64, u64 = types.int64, types.float64, types.uint64
    pairs = []
    for dt in (types.float32, types.float64):
        a, ids = dt[::1], types.int64[::1]
        pairs += [
            (layer_norm_forward_kernel, types.void(a, a, a, f64, i64, a, f64[::1], f64[::1])),
            (layer_norm_backward_dx_kernel, types.void(a, a, a, f64[::1], f64[::1], i64, a)),
            (
                layer_norm_backward_params_kernel,
                types.void(a, a, f64[::1], f64[::1], i64, i64, i64, f64[::1], f64[::1]),
            ),
            (rms_norm_forward_kernel, types.void(a, a, f64, i64, a, f64[::1])),
            (rms_norm_backward_dx_kernel, types.void(a, a, a, f64[::1], i64, a)),
            (
                rms_norm_backward_params_kernel,
                types.void(a, a, f64[::1], i64, i64, i64, f64[::1]),
            ),
            (rope_kernel, types.void(a, a, a, i64, i64, i64, dt, a)),
            (swiglu_kernel, types.void(a, a, a)),
            (swiglu_backward_kernel, types.void(a, a, a, a, a)),
            (activation_kernel, types.void(i64, a, a)),
            (derivative_kernel, types.void(i64, a, a)),
            (activation_backward_kernel, types.void(i64, a, a, a)),
            (dropout_kernel, types.void(a, f64, u64, u64, a, a)),
            (gather_rows_kernel, types.void(a, ids, i64, i64, a)),
            (scatter_rows_kernel, types.void(a, ids, ids, ids, i64, i64, a)),
        ]
    return pairs


PTX_KERNELS = _ptx_kernels()


# -- the launchers: arrays already checked by the public functions of fast/layers.py -----------
# (the names and signatures of fast/cpu/layers.py's launchers: fast.device.kernels picks one)
def _launch(kernel, n, *args):
    blocks, threads = grid_1d(n)
    if n:
        kernel[blocks, threads](*args)


def gather_rows(w: DeviceArray, flat: np.ndarray, shape: tuple) -> DeviceArray:
    """w[ids] for host ids `flat` (checked in range): shape + (C,)."""
    N, C = flat.size, w.shape[1]
    out = empty(tuple(shape) + (C,), w.dtype)
    _launch(gather_rows_kernel, N * C, w.flat(), to_device(flat).flat(), N, C, out.flat())
    return out


def scatter_add_rows(d: DeviceArray, flat: np.ndarray, num: int) -> DeviceArray:
    """dweight (num, C) with row flat[n] += d[n] for every n, without atomics: the host sorts
    the positions by id (stably), and one thread per (id, channel) adds that id's rows in token
    order."""
    C = d.shape[1]
    dweight = zeros((num, C), d.dtype)
    if flat.size:
        order = np.argsort(flat, kind="stable")  # positions grouped by id, token order kept
        ids_sorted = flat[order]
        starts = np.flatnonzero(np.r_[True, ids_sorted[1:] != ids_sorted[:-1]])
        seg_start = np.append(starts, flat.size).astype(np.int64)
        seg_id = ids_sorted[starts]
        U = len(seg_id)
        _launch(
            scatter_rows_kernel, U * C, d.flat(), to_device(order).flat(),
            to_device(seg_start).flat(), to_device(seg_id).flat(), U, C, dweight.flat(),
        )  # fmt: skip
    return dweight


def layer_norm_rows(x2: DeviceArray, w: DeviceArray, b: DeviceArray, eps: float):
    """(out, mean, rstd) for the rows of x2 (N, C): one block per row."""
    N, C = x2.shape
    out = empty_like(x2)
    mean, rstd = empty((N,), np.float64), empty((N,), np.float64)
    if N and C:
        layer_norm_forward_kernel[N, ROW_THREADS](
            x2.flat(), w.flat(), b.flat(), eps, C, out.flat(), mean.flat(), rstd.flat()
        )
    return out, mean, rstd


def layer_norm_rows_backward(d, x2, w, mean, rstd):
    """(dx, dweight, dbias): dx one block per row; the parameter gradients in two fixed-order
    stages over row chunks (as DeviceArray.sum)."""
    N, C = x2.shape
    dx = empty_like(x2)
    dweight, dbias = empty((C,), w.dtype), empty((C,), w.dtype)
    if N and C:
        xb, db = x2.flat(), d.flat()
        layer_norm_backward_dx_kernel[N, ROW_THREADS](
            db, xb, w.flat(), mean.flat(), rstd.flat(), C, dx.flat()
        )
        chunk, chunks = column_chunks(N)
        parts = [empty((chunks * C,), np.float64) for _ in range(2)]
        threads = ELEMENTWISE_THREADS
        layer_norm_backward_params_kernel[(-(-C // threads), chunks), threads](
            db, xb, mean.flat(), rstd.flat(), N, C, chunk, parts[0].flat(), parts[1].flat()
        )
        for part, out in zip(parts, (dweight, dbias)):
            _launch(sum_chunks_kernel, C, part.flat(), chunks, C, out.flat())
    return dx, dweight, dbias


def rms_norm_rows(x2: DeviceArray, w: DeviceArray, eps: float):
    """(out, rstd) for the rows of x2 (N, C): one block per row."""
    N, C = x2.shape
    out = empty_like(x2)
    rstd = empty((N,), np.float64)
    if N and C:
        rms_norm_forward_kernel[N, ROW_THREADS](
            x2.flat(), w.flat(), eps, C, out.flat(), rstd.flat()
        )
    return out, rstd


def rms_norm_rows_backward(d, x2, w, rstd):
    """(dx, dweight): dx one block per row; dweight in two fixed-order stages over row chunks."""
    N, C = x2.shape
    dx = empty_like(x2)
    dweight = empty((C,), w.dtype)
    if N and C:
        xb, db = x2.flat(), d.flat()
        rms_norm_backward_dx_kernel[N, ROW_THREADS](db, xb, w.flat(), rstd.flat(), C, dx.flat())
        chunk, chunks = column_chunks(N)
        part = empty((chunks * C,), np.float64)
        threads = ELEMENTWISE_THREADS
        rms_norm_backward_params_kernel[(-(-C // threads), chunks), threads](
            db, xb, rstd.flat(), N, C, chunk, part.flat()
        )
        _launch(sum_chunks_kernel, C, part.flat(), chunks, C, dweight.flat())
    return dx, dweight


def rope_rows(x2, cos, sin, T: int, n_head: int, sign: float):
    """Rotary embeddings on the rows x2 (B*T, C), tables (T, hs/2) in x2's dtype: a fresh
    (B*T, C); sign 1 turns forward, -1 back (the backward)."""
    x2 = ascontiguous(x2)
    out = empty_like(x2)
    N, C = x2.shape
    pairs = N * C // 2
    _launch(
        rope_kernel, pairs, x2.flat(), ascontiguous(cos).flat(), ascontiguous(sin).flat(),
        T, n_head, C, x2.dtype.type(sign), out.flat(),
    )  # fmt: skip
    return out


def swiglu(gate: DeviceArray, up: DeviceArray) -> DeviceArray:
    """silu(gate) * up, one elementwise kernel."""
    gate, up = ascontiguous(gate), ascontiguous(up)
    out = empty_like(gate)
    _launch(swiglu_kernel, gate.size, gate.flat(), up.flat(), out.flat())
    return out


def swiglu_backward(d, gate, up):
    """(dgate, dup) for `swiglu`, one elementwise kernel."""
    d = ascontiguous(d)
    dgate, dup = empty_like(gate), empty_like(gate)
    _launch(
        swiglu_backward_kernel, gate.size, d.flat(), gate.flat(), up.flat(), dgate.flat(),
        dup.flat(),
    )  # fmt: skip
    return dgate, dup


def elementwise(kind: int, x: DeviceArray, derivative: bool = False) -> DeviceArray:
    """f(x), or f'(x) when `derivative`, for the activation numbered `kind` (the numbering of
    fast/cpu/elementwise.py, whose scalar formulas the kernels call)."""
    x = ascontiguous(x)
    out = empty_like(x)
    kernel = derivative_kernel if derivative else activation_kernel
    _launch(kernel, x.size, kind, x.flat(), out.flat())
    return out


def times_derivative(kind: int, dout: DeviceArray, x: DeviceArray) -> DeviceArray:
    """dout * f'(x): the chain rule through an activation, one kernel (a host dout is copied
    over, in x's dtype)."""
    x, dout = ascontiguous(x), ascontiguous(to_device(dout, x.dtype))
    dx = empty_like(x)
    _launch(activation_backward_kernel, x.size, kind, x.flat(), dout.flat(), dx.flat())
    return dx


def activation(kind: int, x: DeviceArray):
    """(f(x), saved): one elementwise kernel; the backward needs nothing beyond x (None)."""
    return elementwise(kind, x), None


def activation_backward(kind: int, dout: DeviceArray, x: DeviceArray, saved) -> DeviceArray:
    """dout * f'(x) (`saved` is `activation`'s None)."""
    return times_derivative(kind, dout, x)


def dropout(xa: DeviceArray, p: float, seed: int, stream: int):
    """(out, mult): the keep multipliers from Philox words 0 .. n-1 of (seed, stream)."""
    out, mult = empty_like(xa), empty((xa.size,), xa.dtype)
    _launch(
        dropout_kernel, xa.size, xa.flat(), float(p),
        np.uint64(seed), np.uint64(stream), out.flat(), mult.flat(),
    )  # fmt: skip
    return out, mult

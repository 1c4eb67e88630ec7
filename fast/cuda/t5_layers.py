"""T5's layer norm on the GPU: the kernels and the launchers `fast/t5_layers.py` calls on
DeviceArrays (the names and signatures of `fast/cpu/t5_layers.py`'s).

As `layers.py`'s layer norm: one block per row, the block's threads striding over the row and
combining their partial sums with `reduce.block_sum` (a fixed tree, so the same bits every run);
the weight's gradient is summed over rows in two fixed-order stages (chunks of rows, then the
chunks), with no atomics. The other T5 ops reuse existing kernels (see `fast/t5_layers.py`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, float64, types

from .array import DeviceArray, empty, empty_like, sum_chunks_kernel
from .launch import ELEMENTWISE_THREADS, ROW_THREADS, column_chunks, grid_1d
from .reduce import block_sum


@cuda.jit
def t5_norm_forward_kernel(x, weight, eps, C, out, rstd):
    """Row blockIdx.x of x (N, C) flat: r = 1 / sqrt(mean(x^2) + eps), out = weight * x * r."""
    shared = cuda.shared.array(ROW_THREADS, float64)
    r, t = cuda.blockIdx.x, cuda.threadIdx.x
    base = r * C
    s = 0.0
    for c in range(t, C, ROW_THREADS):
        s += x[base + c] * x[base + c]
    rs = 1.0 / math.sqrt(block_sum(shared, s) / C + eps)
    for c in range(t, C, ROW_THREADS):
        out[base + c] = weight[c] * (x[base + c] * rs)
    if t == 0:
        rstd[r] = rs


@cuda.jit
def t5_norm_backward_dx_kernel(dout, x, weight, rstd, C, dx):
    """Row blockIdx.x: dx = r (g - x r^2 mean(g x)), g = dout * weight."""
    shared = cuda.shared.array(ROW_THREADS, float64)
    r, t = cuda.blockIdx.x, cuda.threadIdx.x
    base, rs = r * C, rstd[r]
    gx = 0.0
    for c in range(t, C, ROW_THREADS):
        gx += dout[base + c] * weight[c] * x[base + c]
    gx_mean = block_sum(shared, gx) / C
    for c in range(t, C, ROW_THREADS):
        dx[base + c] = rs * (dout[base + c] * weight[c] - x[base + c] * rs * rs * gx_mean)


@cuda.jit
def t5_norm_backward_weight_kernel(dout, x, rstd, N, C, chunk, dweight_part):
    """Thread (c, k): channel c's dweight over the rows of chunk k, in order (float64 partials;
    `array.sum_chunks_kernel` then adds the chunks in order)."""
    c = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    k = cuda.blockIdx.y
    if c < C:
        dw = 0.0
        for r in range(k * chunk, min((k + 1) * chunk, N)):
            dw += dout[r * C + c] * (x[r * C + c] * rstd[r])
        dweight_part[k * C + c] = dw


def _ptx_kernels():
    i64, f64 = types.int64, types.float64
    pairs = []
    for dt in (types.float32, types.float64):
        a, r = dt[::1], f64[::1]
        pairs += [
            (t5_norm_forward_kernel, types.void(a, a, f64, i64, a, r)),
            (t5_norm_backward_dx_kernel, types.void(a, a, a, r, i64, a)),
            (t5_norm_backward_weight_kernel, types.void(a, a, r, i64, i64, i64, r)),
        ]
    return pairs


PTX_KERNELS = _ptx_kernels()


# -- the launchers: arrays already checked by fast/t5_layers.py ------------------------------------
def t5_norm_rows(x2: DeviceArray, w: DeviceArray, eps: float):
    """(out, rstd) for the rows of x2 (N, C): one block per row; rstd in float64."""
    N, C = x2.shape
    out = empty_like(x2)
    rstd = empty((N,), np.float64)
    if N and C:
        t5_norm_forward_kernel[N, ROW_THREADS](
            x2.flat(), w.flat(), float(eps), C, out.flat(), rstd.flat()
        )
    return out, rstd


def t5_norm_rows_backward(d, x2, w, rstd):
    """(dx, dweight): dx one block per row; dweight in two fixed-order stages over row chunks."""
    N, C = x2.shape
    dx = empty_like(x2)
    dweight = empty((C,), w.dtype)
    if N and C:
        db, xb = d.flat(), x2.flat()
        t5_norm_backward_dx_kernel[N, ROW_THREADS](db, xb, w.flat(), rstd.flat(), C, dx.flat())
        chunk, chunks = column_chunks(N)
        part = empty((chunks * C,), np.float64)
        threads = ELEMENTWISE_THREADS
        t5_norm_backward_weight_kernel[(-(-C // threads), chunks), threads](
            db, xb, rstd.flat(), N, C, chunk, part.flat()
        )
        blocks, threads = grid_1d(C)
        sum_chunks_kernel[blocks, threads](part.flat(), chunks, C, dweight.flat())
    return dx, dweight

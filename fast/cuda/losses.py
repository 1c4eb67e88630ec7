"""Loss functions on the GPU: the kernels and launchers behind `fast/losses.py`.

The public functions (their checks and errors) are `fast/losses.py`'s, one definition for both
devices; on DeviceArrays they call the launchers here, one fused kernel per call. Each returns
the loss (a Python float, the one number that comes back to the host) and its gradient with
respect to the network's output (a DeviceArray, where backpropagation starts). Targets come from
the host and are checked there, so nothing out of range ever reaches a kernel. Logits are read
in place through their strides (a transposed or sliced view costs no copy).

How a row reduction works: one block of ROW_THREADS threads per row (blocks stride over the rows
when there are more rows than blocks); thread t visits columns t, t + ROW_THREADS, ... and the
block combines the partials with `reduce.block_max` / `reduce.block_sum`, fixed trees, so the
result is the same run to run (no atomics). Softmax takes two such reductions per row: the max
(so exp never overflows, as in the reference), then the sum of exp(z - max), in float64 whatever
the input dtype.

The mean over rows is deterministic too: each row writes its loss to a float64 buffer, and
`ordered_sum` adds that buffer up in one block, in a fixed order (thread t sums entries t,
t + ROW_THREADS, ... in order, then the tree), so only one float crosses back to the host.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, float64, types

from .array import DeviceArray, empty, to_device, zeros
from .launch import MAX_BLOCKS, ROW_THREADS
from .reduce import block_max, block_sum

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


# -- kernels ---------------------------------------------------------------------------------------
@cuda.jit
def _ordered_sum_kernel(x, x_off, x_st, n, out):
    """out[0] = x[0] + ... + x[n-1] (a strided vector) in float64, by one block in a fixed order."""
    sh = cuda.shared.array(ROW_THREADS, float64)
    t = cuda.threadIdx.x
    s = 0.0
    for i in range(t, n, ROW_THREADS):
        s += float64(x[x_off + i * x_st])
    s = block_sum(sh, s)
    if t == 0:
        out[0] = s


@cuda.jit(device=True, inline=True)
def row_max_and_sum_exp(sh, x, base, s1, n_cols):
    """(max, sum of exp(z - max)) of the row z = x[base + c*s1], c < n_cols, in float64, by the
    whole block (every thread calls it): the two reductions of a stable softmax."""
    t = cuda.threadIdx.x
    m = -math.inf
    for c in range(t, n_cols, ROW_THREADS):
        m = max(m, float64(x[base + c * s1]))
    m = block_max(sh, m)
    s = 0.0
    for c in range(t, n_cols, ROW_THREADS):
        s += math.exp(float64(x[base + c * s1]) - m)
    return m, block_sum(sh, s)


@cuda.jit
def _softmax_kernel(x, x_off, s0, s1, n_rows, n_cols, log, out):
    """out[r] = softmax(x[r]) (or log_softmax when `log`), one block per row; out is contiguous."""
    sh = cuda.shared.array(ROW_THREADS, float64)
    t = cuda.threadIdx.x
    for r in range(cuda.blockIdx.x, n_rows, cuda.gridDim.x):
        base = x_off + r * s0
        o = r * n_cols
        m, s = row_max_and_sum_exp(sh, x, base, s1, n_cols)
        if log:
            lse = m + math.log(s)
            for c in range(t, n_cols, ROW_THREADS):
                out[o + c] = float64(x[base + c * s1]) - lse
        else:
            for c in range(t, n_cols, ROW_THREADS):
                out[o + c] = math.exp(float64(x[base + c * s1]) - m) / s


@cuda.jit
def _cross_entropy_kernel(x, x_off, s0, s1, n_rows, n_cols, targets, count, grad, row_loss):
    """Fused softmax + cross-entropy, one block per row of logits x.

    targets[r] < 0 marks an ignored row (the host maps ignore_index to -1): zero gradient and
    loss. Otherwise row_loss[r] = logsumexp(x[r]) - x[r, target] and
    grad[r] = (softmax(x[r]) - onehot(target)) / count, computed as the CPU does:
    exp(z - max) / (sum * count), then 1 / count taken off at the target."""
    sh = cuda.shared.array(ROW_THREADS, float64)
    t = cuda.threadIdx.x
    inv_count = 1.0 / count
    for r in range(cuda.blockIdx.x, n_rows, cuda.gridDim.x):
        base = x_off + r * s0
        o = r * n_cols
        target = targets[r]
        if target < 0:  # the same branch for the whole block: its barriers stay matched
            for c in range(t, n_cols, ROW_THREADS):
                grad[o + c] = 0.0
            if t == 0:
                row_loss[r] = 0.0
            continue
        m, s = row_max_and_sum_exp(sh, x, base, s1, n_cols)
        denom = s * count
        for c in range(t, n_cols, ROW_THREADS):
            p = math.exp(float64(x[base + c * s1]) - m) / denom
            if c == target:
                p -= inv_count
            grad[o + c] = p
        if t == 0:
            row_loss[r] = (m + math.log(s)) - float64(x[base + target * s1])


@cuda.jit
def _mse_kernel(y, y_off, ys0, ys1, tg, t_off, ts0, ts1, n_rows, n_cols, n, grad, row_loss):
    """grad = 2 (y - t) / n elementwise, row_loss[r] = sum over the row of (y - t)^2 (float64)."""
    sh = cuda.shared.array(ROW_THREADS, float64)
    t = cuda.threadIdx.x
    for r in range(cuda.blockIdx.x, n_rows, cuda.gridDim.x):
        o = r * n_cols
        s = 0.0
        for c in range(t, n_cols, ROW_THREADS):
            d = float64(y[y_off + r * ys0 + c * ys1]) - float64(tg[t_off + r * ts0 + c * ts1])
            grad[o + c] = 2.0 * d / n
            s += d * d
        s = block_sum(sh, s)
        if t == 0:
            row_loss[r] = s


def _signatures():
    """Every kernel above with an explicit signature, for float32 and float64 data."""
    i64, f64, vec64, ids = types.int64, types.float64, types.float64[::1], types.int64[::1]
    sigs = []
    for ft in (types.float32, types.float64):
        vec = ft[::1]
        sigs += [
            (_ordered_sum_kernel, (vec, i64, i64, i64, vec64)),
            (_softmax_kernel, (vec, i64, i64, i64, i64, i64, types.boolean, vec)),
            (_cross_entropy_kernel, (vec, i64, i64, i64, i64, i64, ids, f64, vec, vec64)),
            (_mse_kernel, (vec, i64, i64, i64, vec, i64, i64, i64, i64, i64, i64, vec, vec64)),
        ]
    return sigs


PTX_KERNELS = _signatures()


# -- host side -------------------------------------------------------------------------------------
def _blocks(rows: int) -> int:
    return max(1, min(MAX_BLOCKS, rows))


def _matrix_view(a: DeviceArray):
    """(buffer, offset, row stride, column stride) of a 2-D view: kernels read it in place."""
    return a.buffer, a.offset, a.strides[0], a.strides[1]


def ordered_sum(x: DeviceArray) -> float:
    """Sum of a 1-D DeviceArray (any dtype of float, any stride) in float64, in a fixed order,
    as a Python float: one single-block kernel, then one 8-byte copy back."""
    if not isinstance(x, DeviceArray):
        raise TypeError(f"ordered_sum takes a DeviceArray, got {type(x).__name__}")
    if x.ndim != 1:
        raise ValueError(f"ordered_sum takes a 1-D DeviceArray, got shape {x.shape}")
    if x.size == 0:
        return 0.0
    out = empty((1,), np.float64)
    _ordered_sum_kernel[1, ROW_THREADS](x.buffer, x.offset, x.strides[0], x.size, out.buffer)
    return float(out.copy_to_host()[0])


# -- the launchers: inputs already checked by the public functions of fast/losses.py ---------
def softmax_rows(x: DeviceArray, log: bool) -> DeviceArray:
    """softmax (or log_softmax) of each row of x (R, V), any strides: one block per row."""
    n_rows, n_cols = x.shape
    out = empty((n_rows, n_cols), x.dtype)
    if n_rows:
        _softmax_kernel[_blocks(n_rows), ROW_THREADS](
            *_matrix_view(x), n_rows, n_cols, log, out.buffer
        )
    return out


def mse_rows(y: DeviceArray, t: DeviceArray):
    """(mean of (y - t)^2 as a float, 2 (y - t) / n): per-row sums, then one ordered sum."""
    n_rows, n_cols = y.shape
    grad = empty(y.shape, y.dtype)
    row_loss = empty((n_rows,), np.float64)
    _mse_kernel[_blocks(n_rows), ROW_THREADS](
        *_matrix_view(y), *_matrix_view(t), n_rows, n_cols, y.size, grad.buffer, row_loss.buffer
    )
    return ordered_sum(row_loss) / y.size, grad


def cross_entropy_rows(x: DeviceArray, t: np.ndarray, counted: np.ndarray, count: int):
    """(mean loss over the counted rows, dE/dx (N, V)) for host targets t already checked."""
    N, V = x.shape
    if count == 0:
        return 0.0, zeros((N, V), x.dtype)
    # Checked: every counted target is in [0, V), so -1 is free to mean "ignored" on the device.
    ids = to_device(np.where(counted, t, -1).astype(np.int64))
    grad = empty((N, V), x.dtype)
    row_loss = empty((N,), np.float64)
    _cross_entropy_kernel[_blocks(N), ROW_THREADS](
        *_matrix_view(x), N, V, ids.buffer, float(count), grad.buffer, row_loss.buffer
    )
    return ordered_sum(row_loss) / count, grad

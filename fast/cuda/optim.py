"""Optimizer updates on the GPU: the CUDA twins of `fast/cpu/optim.py`'s kernels, and a grad norm.

The update kernels take the CPU kernels' arguments, term for term: flat parameter, gradient and
state buffers (a group's tensors packed into one buffer each), the hyperparameters as float64
scalars and the flags as booleans. Each thread updates elements i, i + gridsize, ... (a
grid-stride loop); every element is independent and written by one thread, so the result does
not depend on the launch size. As on the CPU, each buffer element is read into a float64 scalar
first and all arithmetic is float64; only the stores round back to the buffer's dtype.

`grad_norm_sq` is the one reduction an optimizer step needs (for gradient clipping), done in two
fixed-order stages and no atomics, so it is the same run to run: (1) for each buffer, each block
sums the squares its threads visited and combines them with `reduce.block_sum`, one float64
partial per block into a partials buffer; (2) one block adds all the partials up in a fixed order
(`losses.ordered_sum`); only that total comes back to the host.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, float64, types

from .array import DeviceArray, empty
from .launch import MAX_BLOCKS, ROW_THREADS, grid_1d
from .losses import FLOAT_DTYPES, ordered_sum
from .reduce import block_sum


# -- kernels ---------------------------------------------------------------------------------------
@cuda.jit
def sgd_kernel(w, g, buf, lr, momentum, weight_decay, nesterov, first):
    """SGD with optional momentum (buf), Nesterov and L2 weight decay, in place."""
    for i in range(cuda.grid(1), w.size, cuda.gridsize(1)):
        wi = float64(w[i])
        d = float64(g[i])
        if weight_decay != 0.0:
            d = d + weight_decay * wi
        if momentum != 0.0:
            if first:
                v = d
            else:
                v = momentum * float64(buf[i]) + d
            buf[i] = v
            if nesterov:
                d = d + momentum * v
            else:
                d = v
        w[i] = wi - lr * d


@cuda.jit
def adam_kernel(w, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, step_size, sqrt_bc2):
    """Adam / AdamW in PyTorch's arrangement: w -= step_size * m / (sqrt(v) / sqrt_bc2 + eps)."""
    for i in range(cuda.grid(1), w.size, cuda.gridsize(1)):
        gi = float64(g[i])
        wi = float64(w[i])
        if weight_decay != 0.0:
            if decoupled:
                wi = wi * (1.0 - lr * weight_decay)
            else:
                gi = gi + weight_decay * wi
        mi = beta1 * float64(m[i]) + (1.0 - beta1) * gi
        vi = beta2 * float64(v[i]) + (1.0 - beta2) * gi * gi
        m[i] = mi
        v[i] = vi
        w[i] = wi - step_size * mi / (math.sqrt(vi) / sqrt_bc2 + eps)


@cuda.jit
def _sum_sq_kernel(x, partials, p_off):
    """partials[p_off + block] = the sum of x[i]^2 over the elements this block's threads visit
    (a grid-stride loop), in float64, reduced over the block as a fixed tree."""
    sh = cuda.shared.array(ROW_THREADS, float64)
    t = cuda.threadIdx.x
    s = 0.0
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        xi = float64(x[i])
        s += xi * xi
    s = block_sum(sh, s)
    if t == 0:
        partials[p_off + cuda.blockIdx.x] = s


def _signatures():
    """Every kernel above with an explicit signature, for float32 and float64 buffers."""
    f64, b1 = types.float64, types.boolean
    sigs = []
    for ft in (types.float32, types.float64):
        vec = ft[::1]
        sigs += [
            (sgd_kernel, (vec, vec, vec, f64, f64, f64, b1, b1)),
            (adam_kernel, (vec, vec, vec, vec, f64, f64, f64, f64, f64, b1, f64, f64)),
            (_sum_sq_kernel, (vec, types.float64[::1], types.int64)),
        ]
    return sigs


PTX_KERNELS = _signatures()


# -- host side -------------------------------------------------------------------------------------
def _flat(x, name: str):
    """The numba buffer under a 1-D contiguous float DeviceArray, sliced to exactly its elements
    (a view, no copy): what the kernels take."""
    if not isinstance(x, DeviceArray):
        raise TypeError(f"{name} must be a DeviceArray, got {type(x).__name__}")
    if x.ndim != 1 or not x.is_contiguous():
        raise ValueError(f"{name} must be a 1-D contiguous DeviceArray, got shape {x.shape}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must hold float32 or float64 numbers, got dtype {x.dtype}")
    if x.offset == 0 and len(x.buffer) == x.size:
        return x.buffer
    return x.buffer[x.offset : x.offset + x.size]


def _check_like(w: DeviceArray, **others) -> None:
    for name, x in others.items():
        if x.dtype != w.dtype:
            raise TypeError(f"{name} must have w's dtype {w.dtype}, got {x.dtype}")
        if x.size != w.size:
            raise ValueError(f"{name} must have {w.size} elements like w, got {x.size}")


def sgd_update(w, g, buf, lr, momentum, weight_decay, nesterov, first) -> None:
    """One SGD step over a flat group, in place (see `sgd_kernel`). `buf` is the momentum
    buffer; it may be None when momentum == 0, as it is then never read or written."""
    if buf is None:
        if float(momentum) != 0.0:
            raise ValueError("buf (the momentum buffer) is needed when momentum != 0")
        buf = w
    fw, fg, fb = _flat(w, "w"), _flat(g, "g"), _flat(buf, "buf")
    _check_like(w, g=g, buf=buf)
    if w.size == 0:
        return
    blocks, threads = grid_1d(w.size)
    sgd_kernel[blocks, threads](
        fw, fg, fb, float(lr), float(momentum), float(weight_decay), bool(nesterov), bool(first)
    )


def adam_update(
    w, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, step_size, sqrt_bc2
) -> None:
    """One Adam/AdamW step over a flat group, in place (see `adam_kernel`); the bias corrections
    step_size = lr / (1 - beta1^t) and sqrt_bc2 = sqrt(1 - beta2^t) come from the host."""
    fw, fg, fm, fv = _flat(w, "w"), _flat(g, "g"), _flat(m, "m"), _flat(v, "v")
    _check_like(w, g=g, m=m, v=v)
    if w.size == 0:
        return
    blocks, threads = grid_1d(w.size)
    adam_kernel[blocks, threads](
        fw, fg, fm, fv, float(lr), float(beta1), float(beta2), float(eps), float(weight_decay),
        bool(decoupled), float(step_size), float(sqrt_bc2),
    )  # fmt: skip


def _reduce_blocks(n: int) -> int:
    """Blocks of ROW_THREADS threads for a reduction over n elements (grid-stride beyond)."""
    return max(1, min(MAX_BLOCKS, -(-n // ROW_THREADS)))


def grad_norm_sq(buffers) -> float:
    """sum(x_i^2) over every element of a list of 1-D contiguous DeviceArrays (float32 or
    float64), in float64 and a fixed order: one partials kernel per buffer into a shared float64
    partials buffer, then one single-block sum of the partials. One float comes back."""
    flats = [_flat(x, f"buffers[{i}]") for i, x in enumerate(buffers)]
    flats = [f for f in flats if f.size]
    if not flats:
        return 0.0
    blocks = [_reduce_blocks(f.size) for f in flats]
    partials = empty((sum(blocks),), np.float64)
    p_off = 0
    for f, nb in zip(flats, blocks):
        _sum_sq_kernel[nb, ROW_THREADS](f, partials.buffer, p_off)
        p_off += nb
    return ordered_sum(partials)


def scale_(x: DeviceArray, s: float) -> DeviceArray:
    """x *= s in place (the elementwise kernel of `array.py`); returns x."""
    if not isinstance(x, DeviceArray):
        raise TypeError(f"x must be a DeviceArray, got {type(x).__name__}")
    x *= float(s)
    return x

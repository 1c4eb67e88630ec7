"""Matrix multiplication on the GPU: the classic tiled, shared-memory kernel.

C = alpha * A @ B + beta * C, batched over up to two leading axes, for any strided views (a
transposed weight, one head of q, k or v inside (B, T, C)): the kernel reads A[z, i, k] at
a_off + z0*a_st[0] + z1*a_st[1] + i*a_st[2] + k*a_st[3], so no operand is ever copied to make it
contiguous.

How it works: each block of TILE x TILE threads computes a TILE x TILE tile of C. It walks along K
one tile at a time: every thread loads one element of A's tile and one of B's into shared memory,
the block synchronizes, then each thread adds the TILE products for its own C element from shared
memory (fast, on-chip) and the block synchronizes again before the next loads. Each C element is
one thread's sum in K order, so results are deterministic. Partial tiles at the edges load zeros.

This is the reference-grade GPU kernel, not cuBLAS: it has no register blocking or tensor cores.
It is what the simulator runs and what every GPU path falls back on.
"""

from __future__ import annotations

import numpy as np
from numba import cuda, float32, float64

from .array import DeviceArray, empty
from .launch import SIMULATOR, TILE


def _make_gemm(dtype):
    @cuda.jit(cache=not SIMULATOR)
    def gemm(M, N, K, nb1, alpha, beta, a, a_off, a_st, b, b_off, b_st, c, c_off, c_st):
        sa = cuda.shared.array((TILE, TILE), dtype)
        sb = cuda.shared.array((TILE, TILE), dtype)
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        col = cuda.blockIdx.x * TILE + tx
        row = cuda.blockIdx.y * TILE + ty
        z0, z1 = cuda.blockIdx.z // nb1, cuda.blockIdx.z % nb1
        a_base = a_off + z0 * a_st[0] + z1 * a_st[1] + row * a_st[2]
        b_base = b_off + z0 * b_st[0] + z1 * b_st[1] + col * b_st[3]
        acc = dtype(0.0)
        for k0 in range(0, K, TILE):
            ka, kb = k0 + tx, k0 + ty
            if row < M and ka < K:
                sa[ty, tx] = a[a_base + ka * a_st[3]]
            else:
                sa[ty, tx] = 0.0
            if kb < K and col < N:
                sb[ty, tx] = b[b_base + kb * b_st[2]]
            else:
                sb[ty, tx] = 0.0
            cuda.syncthreads()
            for kk in range(TILE):
                acc += sa[ty, kk] * sb[kk, tx]
            cuda.syncthreads()
        if row < M and col < N:
            o = c_off + z0 * c_st[0] + z1 * c_st[1] + row * c_st[2] + col * c_st[3]
            if beta == 0.0:
                c[o] = alpha * acc
            else:
                c[o] = alpha * acc + beta * c[o]

    return gemm


GEMM_KERNELS = {
    np.dtype(np.float32): _make_gemm(float32),
    np.dtype(np.float64): _make_gemm(float64),
}


def _ptx_kernels():
    from numba import types

    i64, f64, t4 = types.int64, types.float64, types.UniTuple(types.int64, 4)
    pairs = []
    for dt, kernel in zip((types.float32, types.float64), GEMM_KERNELS.values()):
        a = dt[::1]
        sig = types.void(i64, i64, i64, i64, f64, f64, a, i64, t4, a, i64, t4, a, i64, t4)
        pairs.append((kernel, sig))
    return pairs


PTX_KERNELS = _ptx_kernels()


def _batched(x: DeviceArray):
    """(n0, n1, strides4) of a (M, K), (n, M, K) or (n0, n1, M, K) view."""
    if x.ndim == 2:
        return 1, 1, (0, 0) + x.strides
    if x.ndim == 3:
        return 1, x.shape[0], (0,) + x.strides
    if x.ndim == 4:
        return x.shape[0], x.shape[1], x.strides
    raise ValueError(f"matmul takes 2-D to 4-D arrays, got shape {x.shape}")


def gemm(a: DeviceArray, b: DeviceArray, out: DeviceArray, alpha=1.0, beta=0.0) -> DeviceArray:
    """out = alpha * a @ b + beta * out, batched over equal leading axes (any strides)."""
    if not (isinstance(a, DeviceArray) and isinstance(b, DeviceArray)):
        raise TypeError("matmul of a DeviceArray needs DeviceArray operands on the same device")
    if a.dtype != b.dtype or out.dtype != a.dtype:
        raise TypeError(f"matmul operands must share a dtype: {a.dtype}, {b.dtype}, {out.dtype}")
    if a.ndim != b.ndim or a.shape[:-2] != b.shape[:-2] or a.shape[-1] != b.shape[-2]:
        raise ValueError(f"matmul shapes do not match: {a.shape} @ {b.shape}")
    M, K, N = a.shape[-2], a.shape[-1], b.shape[-1]
    if out.shape != a.shape[:-2] + (M, N):
        raise ValueError(f"out must have shape {a.shape[:-2] + (M, N)}, got {out.shape}")
    n0, n1, a_st = _batched(a)
    _, _, b_st = _batched(b)
    _, _, c_st = _batched(out)
    if M == 0 or N == 0 or n0 * n1 == 0:
        return out
    if K == 0:
        out *= beta
        return out
    grid = (-(-N // TILE), -(-M // TILE), n0 * n1)
    GEMM_KERNELS[a.dtype][grid, (TILE, TILE)](
        M, N, K, n1, float(alpha), float(beta), a.buffer, a.offset, a_st,
        b.buffer, b.offset, b_st, out.buffer, out.offset, c_st,
    )  # fmt: skip
    return out


def matmul(a: DeviceArray, b: DeviceArray) -> DeviceArray:
    """a @ b into a new array."""
    if not isinstance(b, DeviceArray):
        raise TypeError(f"a DeviceArray can only be multiplied by a DeviceArray, got {type(b)}")
    return gemm(a, b, empty(a.shape[:-1] + b.shape[-1:], a.dtype))

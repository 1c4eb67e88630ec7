"""Matrix multiplication on the GPU: the classic tiled, shared-memory kernel, register-blocked.

A kernel and its launcher, nothing more: `gemm` writes into an output view the caller allocated
(`DeviceArray.__matmul__` allocates one), so this module needs no array type of its own and
`array.py` (the view type) imports it, never the other way round.

C = alpha * A @ B + beta * C, batched over up to two leading axes, for any strided views (a
transposed weight, one head of q, k or v inside (B, T, C)): the kernel reads A[z, i, k] at
a_off + z0*a_st[0] + z1*a_st[1] + i*a_st[2] + k*a_st[3], so no operand is ever copied to make it
contiguous.

How it works, in three ideas:
1. Shared-memory tiles. A block of TILE x TILE threads owns a BM x BN tile of C (BM = BN =
   TILE * RB). It walks along K one slab of TILE at a time: the threads copy a BM x TILE slab of A
   and a TILE x BN slab of B into shared memory (fast, on-chip) together, synchronize, multiply
   out of shared memory, and synchronize again before the next slab. Each number of A and B is
   read from global memory once per block instead of once per output.
2. Register blocking. Each thread computes RB x RB outputs, not one: per step along K it reads
   RB numbers of A's slab and RB of B's into registers and does RB * RB multiply-adds with them,
   so shared-memory reads per multiply-add drop RB-fold. Thread (ty, tx) owns rows ty + i*TILE
   and columns tx + j*TILE (i, j < RB).
3. Coalesced loads. Neighbouring threads (tx) load neighbouring addresses whichever way an
   operand is laid out: for a row-major A they walk its k axis, for a transposed view (x.T, k^T)
   its rows (the choice is made per operand from its strides), so the transposes of the backward
   pass cost no extra memory transactions.
Each C element is one thread's sum in K order: deterministic, run to run. Partial tiles at the
edges load zeros. On a GPU: TILE 16, RB 4 (64 x 64 tiles, 256 threads); under the simulator TILE
4, RB 2 (fewer simulated threads).

This is the reference-grade GPU kernel, not cuBLAS: no tensor cores, no double buffering, no
vectorized loads. Expect it well below cuBLAS (docs/benchmarks.md).
"""

from __future__ import annotations

import numpy as np
from numba import cuda, float32, float64

from .launch import RB, TILE

BM = TILE * RB  # rows (and columns) of C per block
BM_PADDED = BM + 1  # a row of the A slab in shared memory (see the kernel)
MAX_GRID_YZ = 65535  # CUDA's limit on grid.y and grid.z


def _make_gemm(dtype):
    @cuda.jit
    def gemm(M, N, K, nb1, alpha, beta, a, a_off, a_st, b, b_off, b_st, c, c_off, c_st):
        # The slabs, k-major: sa[k, row], sb[k, column]. One padding column each: when the 16
        # threads of a half-warp store sa[tx, ...] for 16 values of tx, rows of exactly BM words
        # (a multiple of 32) would put them all in one shared-memory bank, 16 ways serialized.
        sa = cuda.shared.array((TILE, BM_PADDED), dtype)
        sb = cuda.shared.array((TILE, BM_PADDED), dtype)
        acc = cuda.local.array((RB, RB), dtype)
        av = cuda.local.array(RB, dtype)
        bv = cuda.local.array(RB, dtype)
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        row0, col0 = cuda.blockIdx.y * BM, cuda.blockIdx.x * BM
        z0, z1 = cuda.blockIdx.z // nb1, cuda.blockIdx.z % nb1
        a_base = a_off + z0 * a_st[0] + z1 * a_st[1]
        b_base = b_off + z0 * b_st[0] + z1 * b_st[1]
        for i in range(RB):
            for j in range(RB):
                acc[i, j] = 0.0
        # Who loads what: neighbouring threads (tx) read neighbouring addresses when they walk
        # the operand's unit-stride axis, so the load layout follows the strides: A stored
        # row-major (x) walks k with tx, A transposed (x.T) walks rows with tx; likewise B.
        a_k_fast = a_st[3] == 1 or a_st[2] != 1
        b_n_fast = b_st[3] == 1 or b_st[2] != 1
        for k0 in range(0, K, TILE):
            for i in range(RB):
                if a_k_fast:
                    m, k = ty + i * TILE, tx
                else:
                    m, k = tx + i * TILE, ty
                if row0 + m < M and k0 + k < K:
                    sa[k, m] = a[a_base + (row0 + m) * a_st[2] + (k0 + k) * a_st[3]]
                else:
                    sa[k, m] = 0.0
                if b_n_fast:
                    n, k = tx + i * TILE, ty
                else:
                    n, k = ty + i * TILE, tx
                if k0 + k < K and col0 + n < N:
                    sb[k, n] = b[b_base + (k0 + k) * b_st[2] + (col0 + n) * b_st[3]]
                else:
                    sb[k, n] = 0.0
            cuda.syncthreads()
            for kk in range(TILE):
                for i in range(RB):
                    av[i] = sa[kk, ty + i * TILE]
                    bv[i] = sb[kk, tx + i * TILE]
                for i in range(RB):
                    for j in range(RB):
                        acc[i, j] += av[i] * bv[j]
            cuda.syncthreads()
        c_base = c_off + z0 * c_st[0] + z1 * c_st[1]
        for i in range(RB):
            r = row0 + ty + i * TILE
            for j in range(RB):
                col = col0 + tx + j * TILE
                if r < M and col < N:
                    o = c_base + r * c_st[2] + col * c_st[3]
                    if beta == 0.0:
                        c[o] = alpha * acc[i, j]
                    else:
                        c[o] = alpha * acc[i, j] + beta * c[o]

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


def _batched(x):
    """(n0, n1, strides4) of a (M, K), (n, M, K) or (n0, n1, M, K) view."""
    if x.ndim == 2:
        return 1, 1, (0, 0) + x.strides
    if x.ndim == 3:
        return 1, x.shape[0], (0,) + x.strides
    if x.ndim == 4:
        return x.shape[0], x.shape[1], x.strides
    raise ValueError(f"matmul takes 2-D to 4-D arrays, got shape {x.shape}")


def _is_view(x) -> bool:
    """A DeviceArray (by its class marker: this module imports no array type)."""
    return getattr(type(x), "is_device_array", False)


def gemm(a, b, out, alpha=1.0, beta=0.0):
    """out = alpha * a @ b + beta * out, batched over equal leading axes (any strides); a, b and
    out are DeviceArray views (buffer, shape, strides, offset). Returns out."""
    if not (_is_view(a) and _is_view(b) and _is_view(out)):
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
    if K == 0:  # an empty sum: alpha * 0 + beta * out (never beta * garbage)
        if beta == 0.0:
            out.fill(0.0)
        else:
            out *= beta
        return out
    grid = (-(-N // BM), -(-M // BM), n0 * n1)
    if grid[1] > MAX_GRID_YZ or grid[2] > MAX_GRID_YZ:
        raise ValueError(
            f"matmul too large for one launch: {M} rows ({grid[1]} row tiles) x {n0 * n1} "
            f"batches; at most {MAX_GRID_YZ} of each"
        )
    GEMM_KERNELS[a.dtype][grid, (TILE, TILE)](
        M, N, K, n1, float(alpha), float(beta), a.buffer, a.offset, a_st,
        b.buffer, b.offset, b_st, out.buffer, out.offset, c_st,
    )  # fmt: skip
    return out

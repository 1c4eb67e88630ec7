"""Launch sizes, and the two ways CUDA code runs here: on a GPU, or in Numba's CUDA simulator.

The simulator (`NUMBA_ENABLE_CUDASIM=1`, read when numba is imported) runs each GPU thread as a
Python thread, about 0.2 ms apiece, bounds-checking every access. So the constants below are
small there (16-thread matmul blocks, 8-thread row blocks, one block for elementwise work) and
realistic on a GPU (256-thread matmul blocks on 64x64 tiles, 128-thread row blocks, 256-thread
elementwise blocks). The kernels are the
same code either way; only these sizes change.

Kernels are compiled once per process, on first launch, and not cached on disk: their machine
code depends on constants and helpers from other files (ROW_THREADS here, `reduce.block_reduce`,
the CPU backend's scalar formulas and Philox), which numba-cuda's disk cache does not track, so
a stale cache could launch a kernel built for other block sizes. No bounds checks on a GPU make
that memory corruption, not an error; compiling on first use in each process is the price.
(The simulator compiles nothing.) Some launches are deliberately small (one block for the loss's
final sum, one thread per column for column sums): numba may warn about low occupancy there.
"""

from __future__ import annotations

import sys
import threading

import numpy as np
from numba import config

SIMULATOR = bool(config.ENABLE_CUDASIM)

ELEMENTWISE_THREADS = 16 if SIMULATOR else 256
MAX_BLOCKS = 1 if SIMULATOR else 4096  # grid-stride loops cover the rest
ROW_THREADS = 8 if SIMULATOR else 128  # one block per row for row reductions (a power of two)
TILE = 4 if SIMULATOR else 16  # matmul: threads per block TILE * TILE, K slab TILE
RB = 2 if SIMULATOR else 4  # matmul: each thread computes RB x RB outputs (C tile TILE * RB)


ROWS_PER_CHUNK = 4 if SIMULATOR else 256  # column sums: rows one thread adds (see array.py)


def column_chunks(rows: int) -> tuple[int, int]:
    """(rows per chunk, chunks) for a two-stage column sum; chunks fit grid.y (<= 65535)."""
    chunk = max(ROWS_PER_CHUNK, -(-rows // 65535))
    return chunk, max(1, -(-rows // chunk))


def grid_1d(n: int) -> tuple[int, int]:
    """(blocks, threads) for a grid-stride loop over n elements."""
    threads = ELEMENTWISE_THREADS
    return max(1, min(MAX_BLOCKS, -(-n // threads))), threads


def cuda_available() -> bool:
    """True on a working GPU, or under the simulator."""
    from numba import cuda

    return SIMULATOR or cuda.is_available()


def warm_up_shared_helpers() -> None:
    """Compile (or load) the @njit helpers the CUDA kernels share with the CPU backend.

    Under the simulator a kernel calls them as ordinary jitted functions; the first call compiles
    or loads them, and doing that from 32 simulated threads at once took 8-12 s instead of ~1 s
    (measured): so do it once here, in the main thread.
    """
    if not SIMULATOR:
        return
    from ..cpu.elementwise import _df, _f
    from ..cpu.rng import philox_word

    u = np.uint64(1)
    philox_word(u, u, u, u, u)
    for x in (1.0, np.float32(1.0)):
        _f(0, x)
        _df(0, x)


def _make_simulated_shared_memory_thread_safe() -> None:
    """Fix a race in the simulator's `cuda.shared.array` (numba-cuda 0.30.4).

    It finds a block's shared array by the calling line, with a check-then-insert that is not
    locked: two simulated threads can both miss, each allocate, and then no longer share memory.
    We saw it as wrong results in 1 of ~5 forward passes with a fine thread switch interval.
    The same lookup, under a lock. New shared arrays are filled with NaN (a GPU leaves them
    uninitialised), so a kernel that reads shared memory before writing it shows up in tests.
    """
    from numba.core import types
    from numba.cuda.simulator import kernelapi
    from numba.np import numpy_support

    original = kernelapi.FakeCUDAShared.array
    lock = threading.Lock()

    def array(self, shape, dtype, alignment=None):
        if shape == 0 or alignment is not None:  # dynamic shared memory: no lookup by line
            return original(self, shape, dtype, alignment)
        frame = sys._getframe(1)
        caller = (frame.f_code.co_filename, frame.f_lineno)
        with lock:
            res = self._allocations.get(caller)
            if res is None:
                if isinstance(dtype, types.Type):
                    dtype = numpy_support.as_dtype(dtype)
                res = np.empty(shape, dtype)
                if res.dtype.kind == "f":
                    res.fill(np.nan)
                self._allocations[caller] = res
        return res

    kernelapi.FakeCUDAShared.array = array


if SIMULATOR:
    _make_simulated_shared_memory_thread_safe()
    # The simulator runs each GPU thread as a Python thread and polls them from the main one;
    # with Python's default 5 ms switch interval every syncthreads waits for a switch. 10 us
    # made a tiny GPT's simulated training step ~3x faster (measured). Simulator runs only.
    sys.setswitchinterval(1e-5)

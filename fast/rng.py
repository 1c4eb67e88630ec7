"""The shared counter-based generator (Philox-4x32-10), vectorized with Numba.

The same numbers as `reference.rng`, bit for bit: `uniform(seed, stream, i)` is the `i`-th number
of stream `stream` of seed `seed`, however many threads draw them.
"""

from __future__ import annotations

import numpy as np

from reference.checks import MAX_NUMEL, check_count
from reference.rng import below, check_draws, check_u64, philox4x32

from .cpu.rng import permutation_kernel, random_u32s_kernel

__all__ = ["philox4x32", "random_u32", "random_u32s", "uniform", "uniforms", "permutation", "below"]


def random_u32s(seed: int, stream: int, n: int, start: int = 0) -> np.ndarray:
    """Words `start` .. `start + n - 1` of (seed, stream) as a uint64 array of 32-bit values."""
    check_draws(seed, stream, n, start)
    n = int(n)
    out = np.empty(n, dtype=np.uint64)
    random_u32s_kernel(np.uint64(seed), np.uint64(stream), n, np.uint64(start), out)
    return out


def random_u32(seed: int, stream: int, index: int) -> int:
    """The `index`-th random 32-bit word of (seed, stream)."""
    check_u64("seed", seed), check_u64("stream", stream), check_u64("index", index)
    return int(random_u32s(seed, stream, 1, index)[0])


def uniforms(seed: int, stream: int, n: int, start: int = 0) -> np.ndarray:
    """`n` consecutive uniforms in [0, 1) (float64: word / 2**32, exact)."""
    return random_u32s(seed, stream, n, start).astype(np.float64) / 4294967296.0


def uniform(seed: int, stream: int, index: int) -> float:
    return random_u32(seed, stream, index) / 4294967296.0


def permutation(seed: int, stream: int, n: int) -> np.ndarray:
    """The reference's Fisher-Yates permutation of range(n), as an int64 array."""
    n = check_count("n", n, 0, MAX_NUMEL)
    words = random_u32s(seed, stream, max(n - 1, 0))
    order = np.empty(n, dtype=np.int64)
    permutation_kernel(words, n, order)
    return order

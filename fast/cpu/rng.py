"""Philox-4x32-10 in Numba, bit-identical to `reference.rng` (see there for the addressing).

All arithmetic is on uint64 holding 32-bit words, so products of two words never overflow and
numba never promotes to float (mixing signed and unsigned 64-bit integers would).
"""

import numpy as np
from numba import njit, prange

from . import PER_ELEMENT_CALL, parallel_kernel

M0 = np.uint64(0xD2511F53)
M1 = np.uint64(0xCD9E8D57)
W0 = np.uint64(0x9E3779B9)
W1 = np.uint64(0xBB67AE85)
MASK32 = np.uint64(0xFFFFFFFF)
SHIFT = np.uint64(32)


@njit(cache=True, inline="always")
def philox_word(seed_lo, seed_hi, stream_lo, stream_hi, index):
    """Word `index % 4` of the Philox block `index // 4` (all arguments uint64)."""
    block = index >> np.uint64(2)
    c0 = block & MASK32
    c1 = block >> SHIFT
    c2 = stream_lo
    c3 = stream_hi
    k0 = seed_lo
    k1 = seed_hi
    for _ in range(10):
        p0 = M0 * c0
        p1 = M1 * c2
        n0 = ((p1 >> SHIFT) ^ c1 ^ k0) & MASK32
        n1 = p1 & MASK32
        n2 = ((p0 >> SHIFT) ^ c3 ^ k1) & MASK32
        n3 = p0 & MASK32
        c0, c1, c2, c3 = n0, n1, n2, n3
        k0 = (k0 + W0) & MASK32
        k1 = (k1 + W1) & MASK32
    w = index & np.uint64(3)
    if w == 0:
        return c0
    if w == 1:
        return c1
    if w == 2:
        return c2
    return c3


@parallel_kernel(PER_ELEMENT_CALL)
def random_u32s_kernel(seed, stream, n, start, out):
    """out[i] = word start + i of (seed, stream), in parallel: each number is independent."""
    s_lo, s_hi = seed & MASK32, seed >> SHIFT
    t_lo, t_hi = stream & MASK32, stream >> SHIFT
    for i in prange(n):
        out[i] = philox_word(s_lo, s_hi, t_lo, t_hi, start + np.uint64(i))


@njit(cache=True)
def permutation_kernel(words, n, order):
    """Fisher-Yates with swap k drawing words[k]: j = (word * (i + 1)) >> 32, as the reference."""
    for i in range(n):
        order[i] = i
    k = 0
    for i in range(n - 1, 0, -1):
        j = np.int64((words[k] * np.uint64(i + 1)) >> SHIFT)
        order[i], order[j] = order[j], order[i]
        k += 1

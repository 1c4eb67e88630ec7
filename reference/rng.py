"""One counter-based random generator, shared bit for bit by every backend (Philox-4x32-10).

Why counter-based: a dropout mask or an MLM masking decision must be the same in `reference`, in
`fast` on the CPU and on a GPU, however the work is split across threads. A counter-based generator
is a pure function `random(key, counter)`: element i of a mask needs no state, only its own index,
so any backend, in any order, on any number of threads, draws the same numbers.

Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011) is the
generator cuRAND, PyTorch and JAX use on GPUs. It scrambles a 128-bit counter with a 64-bit key by
ten rounds of 32-bit multiplies and xors.

How we address numbers: `uniform(seed, stream, index)` is the `index`-th number of the stream
`stream` of seed `seed`. Four consecutive indices share one Philox block:
counter = (index // 4 low, index // 4 high, stream low, stream high), key = (seed low, seed high),
and the number is output word `index % 4` divided by 2**32.

    >>> [hex(w) for w in philox4x32((0, 0, 0, 0), (0, 0))]
    ['0x6627e8d5', '0xe169c58d', '0xbc57ac4c', '0x9b00dbd8']
"""

from __future__ import annotations

from .checks import MAX_NUMEL, check_count

MASK32 = 0xFFFFFFFF
MASK64 = 0xFFFFFFFFFFFFFFFF
PHILOX_M0 = 0xD2511F53
PHILOX_M1 = 0xCD9E8D57
PHILOX_W0 = 0x9E3779B9  # golden ratio
PHILOX_W1 = 0xBB67AE85  # sqrt(3) - 1
PHILOX_ROUNDS = 10


def philox4x32(counter: tuple[int, int, int, int], key: tuple[int, int]) -> tuple[int, ...]:
    """Philox-4x32-10: four 32-bit words of counter, two of key -> four random 32-bit words."""
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for _ in range(PHILOX_ROUNDS):
        p0 = PHILOX_M0 * c0  # 64-bit products: the high half mixes, the low half carries on
        p1 = PHILOX_M1 * c2
        c0, c1, c2, c3 = (
            ((p1 >> 32) ^ c1 ^ k0) & MASK32,
            p1 & MASK32,
            ((p0 >> 32) ^ c3 ^ k1) & MASK32,
            p0 & MASK32,
        )
        k0 = (k0 + PHILOX_W0) & MASK32  # the key schedule: a Weyl sequence
        k1 = (k1 + PHILOX_W1) & MASK32
    return c0, c1, c2, c3


def check_u64(name: str, v: int) -> int:
    """`v` as an int in [0, 2**64) (a seed, a stream or an index), or an error naming `name`."""
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    if not 0 <= v <= MASK64:
        raise ValueError(f"{name} must be in [0, 2**64), got {v}")
    return v


def check_seed_stream(seed: int, stream: int) -> None:
    """seed and stream as ints in [0, 2**64), or the error `uniforms` would raise."""
    check_u64("seed", seed), check_u64("stream", stream)


def check_draws(seed: int, stream: int, n: int, start: int) -> None:
    """The arguments of a call that draws `n` numbers from index `start`: seed, stream and start
    in [0, 2**64), n in [0, MAX_NUMEL] (a bigger request is refused, never run for hours), and
    the last index start + n - 1 still below 2**64."""
    check_u64("seed", seed), check_u64("stream", stream), check_u64("start", start)
    check_count("n", n, 0, MAX_NUMEL)
    if start + n > MASK64 + 1:
        raise ValueError(f"start + n must be at most 2**64 (the last index), got {start + n}")


def random_u32(seed: int, stream: int, index: int) -> int:
    """The `index`-th random 32-bit word of (`seed`, `stream`)."""
    check_u64("seed", seed), check_u64("stream", stream), check_u64("index", index)
    block = index >> 2
    words = philox4x32(
        (block & MASK32, block >> 32, stream & MASK32, stream >> 32),
        (seed & MASK32, seed >> 32),
    )
    return words[index & 3]


def random_u32s(seed: int, stream: int, n: int, start: int = 0) -> list[int]:
    """Words `start` .. `start + n - 1` of (`seed`, `stream`), one Philox call per four."""
    check_draws(seed, stream, n, start)
    key = (seed & MASK32, seed >> 32)
    s0, s1 = stream & MASK32, stream >> 32
    out: list[int] = []
    index = start
    end = start + n
    while index < end:
        block = index >> 2
        words = philox4x32((block & MASK32, block >> 32, s0, s1), key)
        take = min(4 - (index & 3), end - index)
        out.extend(words[(index & 3) : (index & 3) + take])
        index += take
    return out


def uniform(seed: int, stream: int, index: int) -> float:
    """A float in [0, 1): word / 2**32 (exact in float64)."""
    return random_u32(seed, stream, index) / 4294967296.0


def uniforms(seed: int, stream: int, n: int, start: int = 0) -> list[float]:
    """`n` consecutive uniforms in [0, 1), starting at `start`."""
    return [w / 4294967296.0 for w in random_u32s(seed, stream, n, start)]


def below(word: int, n: int) -> int:
    """Map a 32-bit word to an integer in [0, n) by the multiply-shift rule: (word * n) >> 32.

    Integer arithmetic only, so every backend agrees exactly (no float rounding at the edges).
    """
    return (word * n) >> 32


def permutation(seed: int, stream: int, n: int) -> list[int]:
    """A random permutation of range(n) by Fisher-Yates, drawing word k for the k-th swap.

    >>> sorted(permutation(0, 0, 5))
    [0, 1, 2, 3, 4]
    """
    check_count("n", n, 0, MAX_NUMEL)
    order = list(range(n))
    words = random_u32s(seed, stream, max(n - 1, 0))
    for k, i in enumerate(range(n - 1, 0, -1)):
        j = below(words[k], i + 1)
        order[i], order[j] = order[j], order[i]
    return order

"""The shared counter-based generator: Philox-4x32-10 known-answer vectors and its addressing."""

import pytest

from reference import permutation, philox4x32, random_u32, random_u32s, uniform, uniforms
from reference.rng import below


@pytest.mark.parametrize(
    "counter, key, expected",
    [  # the Random123 known-answer tests for philox4x32-10
        ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
        ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
        (
            (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
            (0xA4093822, 0x299F31D0),
            (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
        ),
    ],
)
def test_known_answers(counter, key, expected):
    assert philox4x32(counter, key) == expected


def test_addressing_by_index():
    seed, stream = 2**40 + 17, 2**33 + 5
    words = random_u32s(seed, stream, 11, start=3)
    assert words == [random_u32(seed, stream, i) for i in range(3, 14)]
    block = philox4x32((1, 0, stream & 0xFFFFFFFF, stream >> 32), (seed & 0xFFFFFFFF, seed >> 32))
    assert random_u32(seed, stream, 6) == block[2]  # index 6 = block 1, word 2
    assert uniforms(seed, stream, 3, start=2) == [uniform(seed, stream, i) for i in (2, 3, 4)]


def test_uniforms_are_uniform():
    u = uniforms(1, 2, 20000)
    assert all(0.0 <= x < 1.0 for x in u)
    assert abs(sum(u) / len(u) - 0.5) < 0.01
    assert abs(sum(x < 0.1 for x in u) / len(u) - 0.1) < 0.01


def test_streams_and_seeds_differ():
    assert uniforms(0, 0, 8) != uniforms(0, 1, 8) != uniforms(1, 0, 8)


def test_below_and_permutation():
    assert below(0, 10) == 0 and below(0xFFFFFFFF, 10) == 9
    p = permutation(3, 4, 50)
    assert sorted(p) == list(range(50)) and p != list(range(50))
    assert permutation(3, 4, 50) == p and permutation(3, 5, 50) != p
    assert permutation(0, 0, 0) == [] and permutation(0, 0, 1) == [0]


def test_bad_arguments():
    with pytest.raises(ValueError, match="seed must be in"):
        uniform(-1, 0, 0)
    with pytest.raises(TypeError, match="stream must be an int"):
        uniform(0, 1.5, 0)
    with pytest.raises(ValueError, match="index must be in"):
        random_u32(0, 0, 2**64)

"""Initial weights: which random stream each tensor draws from, and the Xavier/Glorot draw.

A model is built with every weight drawn from the shared Philox generator (`rng.py`), so two
builds with the same seed are the same model. The normal draw itself, `normal_tensor`, lives
with the layers that call it (`layers.py`); this module holds what the families add on top:

- `InitStreams` (BERT): hands out the streams 2**63 + 0, 1, 2, ... in construction order, each
  with the config's std, as keyword arguments for `Embedding` and `Linear`.
- `xavier_uniform` and `XavierInit` (the 2017 encoder-decoder): U(-a, a) with
  a = sqrt(6 / (fan_in + fan_out)), the recipe `torch.nn.Transformer` resets its matrices with.

The streams start at 2**63, far from every dropout stream (step * 2**16 + site), so no weight
shares a number with a dropout mask. Initialisation only has to be seeded and reproducible:
weights move between backends by `state_dict`, so `fast` may draw the same streams vectorised
(docs/design.md, "Random numbers").

    >>> streams = InitStreams(seed=0, std=0.02)
    >>> streams()["stream"] - INIT_STREAM_BASE, streams()["stream"] - INIT_STREAM_BASE
    (0, 1)
    >>> bound = math.sqrt(6 / (3 + 2))
    >>> all(abs(v) < bound for row in xavier_uniform((2, 3), 0, INIT_STREAM_BASE) for v in row)
    True
"""

from __future__ import annotations

import math
from typing import Any

from .layers import Linear
from .rng import uniforms

INIT_STREAM_BASE = 1 << 63  # initialisation tensor k draws from stream 2**63 + k


class InitStreams:
    """Hands out the initialisation streams 2**63 + 0, 1, 2, ... in construction order, as
    `Embedding(..., **init())` / `Linear(..., **init())` keyword arguments (std, seed, stream)."""

    def __init__(self, seed: int, std: float):
        self.seed, self.std, self.k = seed, std, 0

    def __call__(self) -> dict[str, Any]:
        self.k += 1
        return {"std": self.std, "seed": self.seed, "stream": INIT_STREAM_BASE + self.k - 1}


def xavier_uniform(shape: tuple[int, int], seed: int, stream: int) -> list[list[float]]:
    """A (fan_out, fan_in) matrix ~ U(-a, a), a = sqrt(6 / (fan_in + fan_out)) (Glorot 2010).

    The bound keeps the variance of activations and of gradients about equal across layers.
    """
    fan_out, fan_in = shape
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    u = uniforms(seed, stream, fan_out * fan_in)
    return [
        [(2.0 * x - 1.0) * bound for x in u[r * fan_in : (r + 1) * fan_in]] for r in range(fan_out)
    ]


class XavierInit:
    """Hands out Xavier-uniform matrices, each from the next stream 2**63 + 0, 1, 2, ..."""

    def __init__(self, seed: int):
        self.seed, self.k = seed, 0

    def next_stream(self) -> int:
        self.k += 1
        return INIT_STREAM_BASE + self.k - 1

    def matrix(self, shape: tuple[int, int]) -> list[list[float]]:
        return xavier_uniform(shape, self.seed, self.next_stream())

    def linear(self, in_features: int, out_features: int) -> Linear:
        """A `Linear` whose weight is the next Xavier matrix (its bias stays zero)."""
        layer = Linear(in_features, out_features)
        layer.weight.data = self.matrix((out_features, in_features))
        return layer


__all__ = ["INIT_STREAM_BASE", "InitStreams", "xavier_uniform", "XavierInit"]

"""T5's pretraining objective, span corruption: which spans of a text are hidden, and how the
input and the target say it.

T5 (Raffel et al., 2019, section 3.1.4) learns by filling in gaps: about `noise_density` (15%)
of a sequence's tokens are hidden, in spans of mean length `mean_noise_span_length` (3). In the
input each hidden span becomes ONE sentinel token (sentinel k for the k-th span); the target
lists each sentinel followed by the tokens it hides. Both end with eos:

    text    : the cat sat on the mat today
    input   : the <0> on the <1> today <eos>            (spans "cat sat" and "mat")
    target  : <0> cat sat <1> mat <eos>

So the input stays short, and the decoder writes only what was hidden.

The recipe for one sequence of L >= 2 tokens (`noise_span_lengths`, the T5 code's
`random_spans_noise_mask`):
- n_noise = clamp(floor(L * noise_density + 1/2), 1, L - 1) tokens are hidden, in
  n_spans = clamp(floor(n_noise / mean_noise_span_length + 1/2), 1, min(n_noise, L - n_noise))
  spans;
- the n_noise hidden tokens are split into n_spans spans of length >= 1, and the L - n_noise
  kept tokens into n_spans runs of length >= 1, each uniformly among such splits: choose
  n_spans - 1 distinct cut points among the n - 1 gaps by a partial Fisher-Yates shuffle;
- the sequence is kept run 0, span 0, kept run 1, span 1, ...: as in T5's code it starts
  with kept tokens and ends with a hidden span.

Every draw comes from the shared Philox generator (`rng.py`), so every backend corrupts alike:
sequence b's shuffles use words b * 2**32 + k of (seed, stream), the hidden tokens' cuts first
(k = 0, 1, ...), then the kept tokens' (k = 2**31 + 0, 1, ...); swap k of a shuffle over the
items i .. n-1 takes item i + below(word k, n - i). A training loop passes stream step * 2**16 + 0
(site 0, which dropout leaves free), as for BERT's masking.
"""

from __future__ import annotations

import math
from typing import Any

from .checks import check_count, is_int
from .rng import below, check_seed_stream, random_u32s

ROW_WORDS = 1 << 32  # sequence b draws words b * 2**32 + ...
KEPT_WORDS = 1 << 31  # ... the kept runs' cuts from offset 2**31


def _check_rates(noise_density: Any, mean_noise_span_length: Any) -> tuple[float, float]:
    for name, value in (
        ("noise_density", noise_density),
        ("mean_noise_span_length", mean_noise_span_length),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not 0.0 < noise_density < 1.0:  # also rejects NaN
        raise ValueError(f"noise_density must be in (0, 1), got {noise_density}")
    if not 1.0 <= mean_noise_span_length < math.inf:
        raise ValueError(
            f"mean_noise_span_length must be >= 1 and finite, got {mean_noise_span_length}"
        )
    return float(noise_density), float(mean_noise_span_length)


def _split(n: int, parts: int, seed: int, stream: int, start: int) -> list[int]:
    """n items split into `parts` runs of length >= 1, uniformly among such splits: the cuts are
    the first parts - 1 of the gaps 1 .. n-1 after a partial Fisher-Yates shuffle drawing words
    start, start + 1, ... of (seed, stream)."""
    gaps = list(range(1, n))
    words = random_u32s(seed, stream, parts - 1, start) if parts > 1 else []
    for k, word in enumerate(words):
        j = k + below(word, len(gaps) - k)
        gaps[k], gaps[j] = gaps[j], gaps[k]
    cuts = [0, *sorted(gaps[: parts - 1]), n]
    return [b - a for a, b in zip(cuts, cuts[1:])]


def noise_span_lengths(
    length: int,
    seed: int,
    stream: int,
    row: int = 0,
    noise_density: float = 0.15,
    mean_noise_span_length: float = 3.0,
) -> tuple[list[int], list[int]]:
    """(kept run lengths, hidden span lengths), n_spans each, for a sequence of `length` >= 2
    tokens that is sequence `row` of its batch: the order is kept 0, hidden 0, kept 1, ...

    >>> noise_span_lengths(40, seed=0, stream=0)  # 6 hidden tokens in 2 spans
    ([30, 4], [2, 4])
    """
    length = check_count("length", length, low=2)
    row = check_count("row", row, high=(1 << 32) - 1)
    check_seed_stream(seed, stream)
    density, mean = _check_rates(noise_density, mean_noise_span_length)
    n_noise = min(max(math.floor(length * density + 0.5), 1), length - 1)
    n_spans = math.floor(n_noise / mean + 0.5)
    n_spans = min(max(n_spans, 1), n_noise, length - n_noise)
    base = row * ROW_WORDS
    noise = _split(n_noise, n_spans, seed, stream, base)
    kept = _split(length - n_noise, n_spans, seed, stream, base + KEPT_WORDS)
    return kept, noise


def span_corruption(
    sequences: Any,
    sentinel_ids: Any,
    eos_id: int,
    seed: int,
    stream: int,
    noise_density: float = 0.15,
    mean_noise_span_length: float = 3.0,
) -> tuple[list[list[int]], list[list[int]]]:
    """T5's span corruption of B token sequences -> (inputs, targets), B lists each, unpadded.

    `sequences`: B sequences of >= 2 token ids (ints >= 0; their lengths may differ).
    `sentinel_ids`: the ids that mark spans, the k-th span getting sentinel_ids[k] (T5's
    <extra_id_k>, counted down from the top of its vocabulary); it must hold as many as the most
    spans a sequence gets. Input: kept tokens with each hidden span replaced by its sentinel,
    then eos_id; target: each sentinel followed by the tokens it hides, then eos_id.

    >>> span_corruption([list(range(10, 22))], [99, 98], 1, seed=0, stream=0, noise_density=0.5)
    ([[10, 11, 12, 13, 14, 99, 17, 98, 1]], [[99, 15, 16, 98, 18, 19, 20, 21, 1]])
    """
    if hasattr(sequences, "tolist"):
        sequences = sequences.tolist()
    if not isinstance(sequences, (list, tuple)) or not sequences:
        raise TypeError(f"sequences must be a non-empty list of token id lists, got {sequences!r}")
    rows = []
    for b, seq in enumerate(sequences):
        if hasattr(seq, "tolist"):
            seq = seq.tolist()
        if not isinstance(seq, (list, tuple)):
            raise TypeError(f"sequences[{b}] must be a list of token ids, got {type(seq).__name__}")
        if len(seq) < 2:
            raise ValueError(f"sequences[{b}] must hold at least 2 tokens, got {len(seq)}")
        for t, i in enumerate(seq):
            if not is_int(i) or i < 0:
                raise ValueError(f"sequences[{b}][{t}] must be a token id (an int >= 0), got {i!r}")
        rows.append(list(seq))
    if hasattr(sentinel_ids, "tolist"):
        sentinel_ids = sentinel_ids.tolist()
    if not isinstance(sentinel_ids, (list, tuple)) or not all(
        is_int(s) and s >= 0 for s in sentinel_ids
    ):
        raise TypeError(
            f"sentinel_ids must be a list of token ids (ints >= 0), got {sentinel_ids!r}"
        )
    if not is_int(eos_id) or eos_id < 0:
        raise ValueError(f"eos_id must be a token id (an int >= 0), got {eos_id!r}")
    check_seed_stream(seed, stream)
    _check_rates(noise_density, mean_noise_span_length)
    inputs, targets = [], []
    for b, seq in enumerate(rows):
        kept, noise = noise_span_lengths(
            len(seq), seed, stream, b, noise_density, mean_noise_span_length
        )
        if len(noise) > len(sentinel_ids):
            raise ValueError(
                f"sequences[{b}] gets {len(noise)} spans but sentinel_ids holds only "
                f"{len(sentinel_ids)} sentinels"
            )
        source, target, t = [], [], 0
        for k, (n_kept, n_noise) in enumerate(zip(kept, noise)):
            source.extend(seq[t : t + n_kept])
            t += n_kept
            source.append(sentinel_ids[k])
            target.append(sentinel_ids[k])
            target.extend(seq[t : t + n_noise])
            t += n_noise
        inputs.append(source + [eos_id])
        targets.append(target + [eos_id])
    return inputs, targets


__all__ = ["span_corruption", "noise_span_lengths", "ROW_WORDS", "KEPT_WORDS"]

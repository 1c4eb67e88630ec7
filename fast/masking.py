"""BERT's masked-language-model recipe on numpy arrays: `reference/masking.py`, made fast.

The same decisions exactly (the reference's docstring gives the recipe and the words each position
draws): all 3 * B * T Philox words come from one Numba call and every decision is an array mask.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from reference import masking as reference_masking
from reference.checks import IGNORE_INDEX, check_special_token_ids, int_grid
from reference.masking import MASK_ACTION_WORD, MASK_RANDOM_WORD, MASK_SELECT_WORD

from .rng import random_u32s
from .validate import int_batch

__all__ = ["mask_tokens"]


def mask_tokens(
    idx: Any,
    vocab_size: int,
    mask_token_id: int,
    special_token_ids: Any,
    seed: int,
    stream: int,
    mask_prob: float = 0.15,
) -> tuple[np.ndarray, np.ndarray]:
    """BERT's corruption of a (B, T) batch -> (inputs, labels), int64 arrays: the reference's
    decisions exactly (see `reference.mask_tokens` for the recipe), with the 3 B T words drawn in
    one Numba call and every decision made with array masks."""
    rows = int_batch(idx)
    if rows is None:  # lists, or not ints: the reference's checks (they raise the error, if any)
        rows = np.asarray(int_grid("idx", idx), np.int64)
    # the other arguments: the reference's checks, in its order and with its messages, on 1 x 1
    args = (vocab_size, mask_token_id, special_token_ids, seed, stream, mask_prob)
    reference_masking.mask_tokens([[0]], *args)
    B, T = rows.shape
    special = np.isin(rows, list(check_special_token_ids(special_token_ids)))  # (B, T)
    threshold = math.ceil(float(mask_prob) * 4294967296.0)  # u < p <=> word < threshold
    words = random_u32s(seed, stream, 3 * B * T).reshape(B, T, 3)  # position i owns 3i .. 3i+2
    selected = ~special & (words[..., MASK_SELECT_WORD] < threshold)
    action = (words[..., MASK_ACTION_WORD] * np.uint64(10)) >> np.uint64(32)  # below(word, 10)
    inputs = rows.copy()
    inputs[selected & (action <= 7)] = mask_token_id  # 80%: [MASK]
    randomised = selected & (action == 8)  # 10%: a random token; the last 10% stay unchanged
    word = words[..., MASK_RANDOM_WORD][randomised]
    if vocab_size < 1 << 32:  # below(word, V) = (word V) >> 32 fits in 64 bits
        inputs[randomised] = (word * np.uint64(vocab_size)) >> np.uint64(32)
    else:
        inputs[randomised] = [(int(w) * vocab_size) >> 32 for w in word]
    labels = np.where(selected, rows, IGNORE_INDEX)  # predict the original where selected
    return inputs, labels

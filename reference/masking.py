"""BERT's masked-language-model recipe: which tokens a batch hides, and what it shows instead.

BERT learns by filling in blanks (Devlin et al., 2018): about 15% of the ordinary tokens of a batch
are selected; the model sees [MASK] at 80% of them, a random token at 10% and the token itself at
the other 10%, and is asked for the original token at every selected position (label -100, the
ignore index, everywhere else). Showing a random or the true token now and then keeps the model
from learning that only [MASK] positions matter.

Every decision is an integer function of the shared Philox generator (`rng.py`), so both backends
hide the same tokens; a training loop passes stream step * 2**16 + 0 (site 0, which
`layers.set_dropout_rng` leaves free for it; docs/design.md, "Random numbers").
"""

from __future__ import annotations

import math
from typing import Any

from .checks import IGNORE_INDEX, check_special_token_ids, int_grid, is_int
from .rng import below, random_u32s

MASK_SELECT_WORD, MASK_ACTION_WORD, MASK_RANDOM_WORD = 0, 1, 2  # position i owns words 3i + these


def mask_tokens(
    idx: Any,
    vocab_size: int,
    mask_token_id: int,
    special_token_ids: Any,
    seed: int,
    stream: int,
    mask_prob: float = 0.15,
) -> tuple[list[list[int]], list[list[int]]]:
    """BERT's corruption of a (B, T) batch -> (inputs, labels), drawn from the shared generator.

    Position i (row-major flat index b*T + t) owns words 3i, 3i+1, 3i+2 of (seed, stream):
    - selected iff its token is not in `special_token_ids` and word 3i < ceil(mask_prob * 2**32)
      (the same as uniform(seed, stream, 3i) < mask_prob, decided in integers);
    - a selected position gets label = its token, and r = below(word 3i+1, 10) decides:
      r <= 7 -> `mask_token_id` (80%), r == 8 -> below(word 3i+2, vocab_size) (a random token,
      10%), r == 9 -> the token unchanged (10%);
    - every other position keeps its token and gets label -100.
    Pass the number of ordinary tokens as `vocab_size` to keep special tokens out of the random
    replacements, and the padding id among `special_token_ids` so padding is never selected.

    With mask_prob 1 every ordinary token is selected and the padding 0 is not; here r = 8, 9, 0,
    1 for positions 0-3, so the 5 becomes the random token below(word 2, 9) = 6, the 6 stays and
    the 7 and 8 become [MASK] (id 9):

    >>> mask_tokens([[5, 6, 7, 8, 0]], 9, 9, {0}, seed=0, stream=0, mask_prob=1.0)
    ([[6, 6, 9, 9, 0]], [[5, 6, 7, 8, -100]])
    """
    rows = int_grid("idx", idx)
    B, T = len(rows), len(rows[0])
    if not is_int(vocab_size) or vocab_size < 1:
        raise ValueError(f"vocab_size must be a positive int, got {vocab_size!r}")
    if not is_int(mask_token_id) or mask_token_id < 0:
        raise ValueError(f"mask_token_id must be a non-negative int, got {mask_token_id!r}")
    if isinstance(mask_prob, bool) or not isinstance(mask_prob, (int, float)):
        raise TypeError(f"mask_prob must be a float in [0, 1], got {type(mask_prob).__name__}")
    if not 0.0 <= mask_prob <= 1.0:
        raise ValueError(f"mask_prob must be in [0, 1], got {mask_prob}")
    special = check_special_token_ids(special_token_ids)
    # mask_prob * 2**32 is exact in floating point (a power-of-two scale); u < p <=> word < ceil.
    threshold = math.ceil(float(mask_prob) * 4294967296.0)
    words = random_u32s(seed, stream, 3 * B * T)
    inputs, labels = [], []
    for b in range(B):
        in_row, label_row = [], []
        for t in range(T):
            token, i = rows[b][t], b * T + t
            if token in special or words[3 * i + MASK_SELECT_WORD] >= threshold:
                in_row.append(token)
                label_row.append(IGNORE_INDEX)
                continue
            label_row.append(token)  # predict the original, whatever the input shows
            action = below(words[3 * i + MASK_ACTION_WORD], 10)
            if action <= 7:
                in_row.append(mask_token_id)
            elif action == 8:
                in_row.append(below(words[3 * i + MASK_RANDOM_WORD], vocab_size))
            else:
                in_row.append(token)
        inputs.append(in_row)
        labels.append(label_row)
    return inputs, labels


__all__ = ["mask_tokens", "MASK_SELECT_WORD", "MASK_ACTION_WORD", "MASK_RANDOM_WORD"]

"""Argument checks shared by the ops, the layers, the random generator and the models.

Every public function checks its arguments before it computes anything, and a bad argument gets a
`TypeError` (wrong kind of value) or a `ValueError` (right kind, wrong value) whose message names
the argument, says what was expected and shows what was given. Both backends call these same
functions, so the same bad input gets the same error in each.

Sizes have a ceiling: a tensor built from size arguments holds at most `MAX_NUMEL` numbers (a
32-bit count), and a request beyond it is refused at once instead of running for hours or
exhausting memory.

The models' input checks (token-id grids, targets, labels, masks) are at the end, one group per
family, so that each model file keeps to its architecture.

    >>> check_count("T", 3)
    3
    >>> check_eps(0.0)
    Traceback (most recent call last):
    ...
    ValueError: eps must be a finite number > 0 (a constant row would divide by zero), got 0.0
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from .nested import shape_of

MAX_NUMEL = 2**31 - 1  # the most numbers one tensor (or one call to the generator) may hold
IGNORE_INDEX = -100  # a target that counts for nothing (torch / Hugging Face labels)


def check_count(name: str, value: Any, low: int = 0, high: int = MAX_NUMEL) -> int:
    """`value` as an int in [low, high], or a TypeError / ValueError naming `name`."""
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    value = value.__index__()  # numpy integers pass as Python ints
    if not low <= value <= high:
        raise ValueError(f"{name} must be an int in [{low}, {high}], got {value}")
    return value


def check_int(name: str, value: Any, low: int = 1) -> int:
    """`value` as an int >= low (a bool is not an int here), or a TypeError / ValueError."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value}")
    return value


def check_interval(name: str, value: Any, low: float, high: float, high_open: bool) -> float:
    """`value` as a float in [low, high) (`high_open`) or [low, high]; NaN is in neither."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    ok = low <= value < high if high_open else low <= value <= high  # also rejects NaN
    if not ok:
        interval = f"[{low}, {high})" if high_open else f"[{low}, {high}]"
        raise ValueError(f"{name} must be in {interval}, got {value}")
    return float(value)


def check_numbers(name: str, x: Any) -> None:
    """TypeError unless `x` is a number or nested lists of numbers (ints, floats; a bool counts
    as 0 or 1). Element types are checked before shapes, in both backends, so a list of strings
    is a TypeError whatever its shape."""
    stack = [x]
    while stack:
        v = stack.pop()
        if isinstance(v, (list, tuple)):
            stack.extend(v)
        elif not isinstance(v, (int, float)):
            raise TypeError(f"{name} must hold numbers, got {type(v).__name__} {_short(v)}")


def check_ints(name: str, x: Any) -> None:
    """TypeError unless `x` is an int or nested lists of ints (ids, labels; bools are not ids)."""
    stack = [x]
    while stack:
        v = stack.pop()
        if isinstance(v, (list, tuple)):
            stack.extend(v)
        elif isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{name} must hold ints, got {type(v).__name__} {_short(v)}")


def check_flag(name: str, value: Any) -> bool:
    """A yes/no option: a bool, or a TypeError naming `name`."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {_short(value)}")
    return value


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def check_shape_arg(name: str, shape: Any) -> tuple[int, ...]:
    """A shape argument: a tuple or list of ints >= 0 holding at most MAX_NUMEL numbers."""
    if not isinstance(shape, (tuple, list)):
        raise TypeError(f"{name} must be a tuple of ints, got {type(shape).__name__} {shape!r}")
    dims = tuple(check_count(f"{name}[{i}]", d) for i, d in enumerate(shape))
    check_numel(name, dims)
    return dims


def check_numel(name: str, dims: tuple[int, ...]) -> int:
    """The number of elements of shape `dims`, or a ValueError if it exceeds MAX_NUMEL."""
    n = 1
    for d in dims:
        n *= d
    if n > MAX_NUMEL:
        raise ValueError(f"{name} {tuple(dims)} must hold at most {MAX_NUMEL} numbers, got {n}")
    return n


def _as_float(name: str, value: Any) -> float:
    """A real number (int, float or numpy scalar) as a float, or a TypeError naming `name`."""
    if isinstance(value, (bool, str, bytes)) or not hasattr(value, "__float__"):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    if isinstance(value, complex):
        raise TypeError(f"{name} must be a real number, got complex {value!r}")
    return float(value)


def check_number(name: str, value: Any, *, positive: bool = False) -> float:
    """`value` as a finite float (> 0 if `positive`), or a TypeError / ValueError naming `name`."""
    v = _as_float(name, value)
    if not math.isfinite(v) or (positive and not v > 0.0):
        what = "a finite number > 0" if positive else "a finite number"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return v


def check_eps(eps: Any, name: str = "eps") -> float:
    """Layer norm's eps: a finite number > 0, so that a constant row (variance 0) gives
    (x - mean) * 1/sqrt(eps) = 0 instead of dividing by zero."""
    v = _as_float(name, eps)
    if not (math.isfinite(v) and v > 0.0):
        raise ValueError(
            f"{name} must be a finite number > 0 (a constant row would divide by zero), got {eps!r}"
        )
    return v


# -- model inputs: GPT -----------------------------------------------------------------------------
def check_gpt_idx(
    idx: Any,
    vocab_size: int,
    name: str = "idx",
    max_len: int | None = None,
    max_len_name: str = "block_size",
) -> list:
    """idx as a (B, T) list of lists of ints in [0, vocab_size), T <= max_len if given (the
    model's `max_len_name`: GPT's block_size, LLaMA's max_position_embeddings)."""
    if hasattr(idx, "tolist"):
        idx = idx.tolist()  # a numpy array
    if not isinstance(idx, (list, tuple)) or not all(isinstance(r, (list, tuple)) for r in idx):
        raise TypeError(f"{name} must be a (B, T) nested list of token ids, got {idx!r:.60}")
    if not idx or not idx[0]:
        raise ValueError(
            f"{name} must have shape (B, T) with B >= 1 and T >= 1, got {shape_of(idx)}"
        )
    T = len(idx[0])
    for b, row in enumerate(idx):
        if len(row) != T:
            raise ValueError(
                f"{name} must be rectangular: row 0 has {T} ids, row {b} has {len(row)}"
            )
    if max_len is not None and T > max_len:
        raise ValueError(
            f"sequence length T={T} exceeds {max_len_name}={max_len} (the model has {max_len} "
            f"positions; crop {name} to its last {max_len} tokens)"
        )
    for b, row in enumerate(idx):
        for t, i in enumerate(row):
            if isinstance(i, bool) or not isinstance(i, int):
                raise TypeError(
                    f"{name} must hold ints, got {type(i).__name__} {i!r} at [{b}][{t}]"
                )
            if not 0 <= i < vocab_size:
                raise ValueError(
                    f"token id {i} out of range for vocab_size {vocab_size} (at {name}[{b}][{t}])"
                )
    return [list(row) for row in idx]


def check_gpt_targets(targets: Any, B: int, T: int, vocab_size: int) -> list:
    """targets as a (B, T) list of lists of ids in [0, vocab_size) or IGNORE_INDEX."""
    if hasattr(targets, "tolist"):
        targets = targets.tolist()
    if shape_of(targets) != (B, T) or any(len(row) != T for row in targets):
        raise ValueError(f"targets must have the shape of idx ({B}, {T}), got {shape_of(targets)}")
    for b, row in enumerate(targets):
        for t, i in enumerate(row):
            if isinstance(i, bool) or not isinstance(i, int):
                raise TypeError(
                    f"targets must hold ints, got {type(i).__name__} {i!r} at [{b}][{t}]"
                )
            if i != IGNORE_INDEX and not 0 <= i < vocab_size:
                raise ValueError(
                    f"target id {i} out of range for vocab_size {vocab_size} (at "
                    f"targets[{b}][{t}]; {IGNORE_INDEX} means ignore)"
                )
    return [list(row) for row in targets]


# -- model inputs: BERT ----------------------------------------------------------------------------
def is_int(v: Any) -> bool:
    """True for an int that is not a bool (to Python True is an int; here never a count or id)."""
    return isinstance(v, int) and not isinstance(v, bool)


def int_grid(name: str, x: Any, shape: tuple[int, int] | None = None) -> list[list[int]]:
    """`x` as a (B, T) list of lists of ints, or a TypeError / ValueError naming `name`."""
    if hasattr(x, "tolist"):  # a numpy array from a caller that uses both backends
        x = x.tolist()
    if (
        not isinstance(x, (list, tuple))
        or not x
        or not all(isinstance(r, (list, tuple)) for r in x)
    ):
        raise ValueError(f"{name} must be a non-empty (B, T) nested list of ints, got {x!r:.80}")
    got = (len(x), len(x[0]))
    if got[1] == 0 or any(len(r) != got[1] for r in x):
        raise ValueError(
            f"{name} must be rectangular with T >= 1, got rows of lengths {[len(r) for r in x][:8]}"
        )
    if shape is not None and got != shape:
        raise ValueError(f"{name} must have shape {shape} like idx, got {got}")
    for b, row in enumerate(x):
        for t, v in enumerate(row):
            if not is_int(v):
                raise TypeError(f"{name} must hold ints, got {type(v).__name__} at [{b}][{t}]")
    return [list(r) for r in x]


def check_in_range(name: str, rows: list[list[int]], high: int, what: str, ok=()) -> None:
    """ValueError unless every id of `rows` is in [0, high) or one of `ok`."""
    for b, row in enumerate(rows):
        for t, v in enumerate(row):
            if not 0 <= v < high and v not in ok:
                raise ValueError(f"{name} value {v} out of range for {what} {high} at [{b}][{t}]")


def check_bert_inputs(
    config: Any, idx: Any, token_type_ids: Any = None, attention_mask: Any = None
) -> tuple[list[list[int]], list[list[int]], list[list[bool]] | None]:
    """Validate a BERT batch -> (idx, token_type_ids, key_padding_mask or None), each (B, T).

    Hugging Face's attention_mask has 1 for a real token and 0 for padding; attention wants the
    opposite (True = a padded key no query may see), so the mask is inverted here.
    """
    idx = int_grid("idx", idx)
    B, T = len(idx), len(idx[0])
    if T > config.block_size:
        raise ValueError(
            f"sequence length T={T} exceeds block_size (max_position_embeddings) "
            f"{config.block_size}"
        )
    check_in_range("idx", idx, config.vocab_size, "vocab_size")
    if token_type_ids is None:
        token_type_ids = [[0] * T for _ in range(B)]  # every token in segment A
    token_type_ids = int_grid("token_type_ids", token_type_ids, (B, T))
    check_in_range("token_type_ids", token_type_ids, config.type_vocab_size, "type_vocab_size")
    if attention_mask is None:
        return idx, token_type_ids, None
    if hasattr(attention_mask, "tolist"):
        attention_mask = attention_mask.tolist()
    if shape_of(attention_mask) != (B, T) or any(len(r) != T for r in attention_mask):
        raise ValueError(
            f"attention_mask must have shape {(B, T)} like idx, got {shape_of(attention_mask)}"
        )
    for b, row in enumerate(attention_mask):
        for t, m in enumerate(row):
            if isinstance(m, (list, tuple)) or m not in (0, 1):  # bools pass: True == 1
                raise ValueError(
                    f"attention_mask must hold 0/1 (1 = real token), got {m!r} at [{b}][{t}]"
                )
    return idx, token_type_ids, [[m == 0 for m in row] for row in attention_mask]


def check_mlm_labels(labels: Any, B: int, T: int, vocab_size: int) -> list[list[int]]:
    """Masked-LM labels: (B, T) ids in [0, vocab_size) or IGNORE_INDEX."""
    rows = int_grid("labels", labels, (B, T))
    check_in_range("labels", rows, vocab_size, "vocab_size (or -100)", ok=(IGNORE_INDEX,))
    return rows


def check_class_labels(labels: Any, B: int, num_labels: int) -> list[int]:
    """Classification labels: B class ids in [0, num_labels)."""
    if hasattr(labels, "tolist"):
        labels = labels.tolist()
    if not isinstance(labels, (list, tuple)) or len(labels) != B:
        raise ValueError(f"labels must be a list of {B} class ids, got {labels!r:.80}")
    for b, y in enumerate(labels):
        if not is_int(y):
            raise TypeError(f"labels must hold ints, got {type(y).__name__} at [{b}]")
        if not 0 <= y < num_labels:
            raise ValueError(f"labels value {y} out of range for num_labels {num_labels} at [{b}]")
    return list(labels)


def check_special_token_ids(special_token_ids: Any) -> set[int]:
    """The ids never to mask, as a set: any collection of non-negative ints (a list, a set, a 1-D
    array), or a TypeError / ValueError naming `special_token_ids`.

    >>> sorted(check_special_token_ids((0, 2, 2)))
    [0, 2]
    """
    value = special_token_ids
    if hasattr(value, "tolist"):  # a numpy array from a caller that uses both backends
        value = value.tolist()
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple, set, frozenset)):
        raise TypeError(
            "special_token_ids must be a collection of token ids (a list, tuple or set of ints), "
            f"got {type(special_token_ids).__name__}"
        )
    special = set()
    for v in value:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise TypeError(f"special_token_ids must hold ints, got {type(v).__name__} {v!r}")
        if v < 0:
            raise ValueError(f"special_token_ids must hold token ids >= 0, got {v}")
        special.add(int(v))
    return special


def check_num_labels(num_labels: Any) -> int:
    """A classifier's number of classes: an int >= 2."""
    if not is_int(num_labels) or num_labels < 2:
        raise ValueError(f"num_labels must be an int >= 2 (classification), got {num_labels!r}")
    return num_labels


# -- model inputs: the encoder-decoder Transformer -------------------------------------------------
def check_seq2seq_ids(name: str, ids: Any, vocab_size: int, vocab_name: str, max_len: int) -> list:
    """`ids` as a (B, T) list of lists of ints in [0, vocab_size), 1 <= T <= max_len, or a clear
    TypeError / ValueError naming the argument."""
    if hasattr(ids, "tolist"):  # a numpy array is welcome too
        ids = ids.tolist()
    if not isinstance(ids, (list, tuple)) or not ids:
        raise TypeError(f"{name} must be a non-empty (B, T) nested list of token ids, got {ids!r}")
    T = None
    for b, row in enumerate(ids):
        if not isinstance(row, (list, tuple)):
            raise TypeError(
                f"{name} must be a (B, T) nested list of token ids, but {name}[{b}] is a "
                f"{type(row).__name__}"
            )
        if T is None:
            T = len(row)
        elif len(row) != T:
            raise ValueError(
                f"{name} must be rectangular (pad with pad_id): {name}[0] has length {T}, "
                f"{name}[{b}] has length {len(row)}"
            )
        for t, i in enumerate(row):
            if isinstance(i, bool) or not isinstance(i, int):
                raise TypeError(f"{name}[{b}][{t}] must be an int token id, got {i!r}")
            if not 0 <= i < vocab_size:
                raise ValueError(
                    f"{name} token id {i} out of range for {vocab_name}={vocab_size} "
                    f"(at [{b}][{t}])"
                )
    if T == 0:
        raise ValueError(f"{name} must hold at least one token per sequence, got length 0")
    if T > max_len:
        raise ValueError(f"{name} has length {T}, longer than max_len={max_len}")
    return [list(row) for row in ids]


def check_seq2seq_targets(
    targets: Any, shape: tuple[int, int], vocab_size: int, pad_id: int
) -> list[list[int]]:
    """(B, Tt) target ids in [0, vocab_size) or IGNORE_INDEX, with pad_id turned into
    IGNORE_INDEX (padding is never predicted)."""
    if hasattr(targets, "tolist"):
        targets = targets.tolist()
    if shape_of(targets) != shape or any(len(row) != shape[1] for row in targets):
        raise ValueError(f"targets must have tgt's shape {shape}, got {shape_of(targets)}")
    out = []
    for b, row in enumerate(targets):
        for t, i in enumerate(row):
            if isinstance(i, bool) or not isinstance(i, int):
                raise TypeError(f"targets[{b}][{t}] must be an int token id, got {i!r}")
            if not (0 <= i < vocab_size or i == IGNORE_INDEX):
                raise ValueError(
                    f"targets token id {i} out of range for tgt_vocab_size={vocab_size} (at "
                    f"[{b}][{t}]; use {IGNORE_INDEX} or pad_id={pad_id} for positions to ignore)"
                )
        out.append([IGNORE_INDEX if i == pad_id else i for i in row])
    return out

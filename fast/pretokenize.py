"""Pre-tokenization, fast: `reference.pretokenize`'s named patterns as Numba scanners.

Same chunks as the reference on every text (the conformance suite checks it). How it is made
fast: the text becomes an array of code points in one C call, each character's class (letter,
number, whitespace, other) is read from a byte table, and the scanners in `fast/cpu/pretokenize.py`
run over whole batches of texts at once. The table is filled lazily from the reference's own
`is_letter` / `is_number` / `is_whitespace`, only for the code points a text uses, so the Unicode
classes keep one definition. A user's compiled `re.Pattern` still splits in Python, as in the
reference.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

from reference.pretokenize import SPLIT_PATTERNS, is_letter, is_number, is_whitespace
from reference.pretokenize import get_splitter as _reference_splitter

from .cpu import pretokenize as _k

__all__ = ["SPLIT_PATTERNS", "get_splitter"]

MODES = {
    "gpt2": _k.GPT2,
    "cl100k": _k.CL100K,
    "cl100k_tiktoken": _k.CL100K_TIKTOKEN,
    None: _k.NO_SPLIT,
}

# Code point -> class, filled on demand (1.1 MB; UNKNOWN until a text uses the code point).
_classes = np.zeros(0x110000, np.uint8)


def split_mode(pattern: str | re.Pattern | None) -> int | None:
    """The scanner for `pattern` (a `fast/cpu/pretokenize.py` mode), or None for a user's
    `re.Pattern`, which only Python's `re` can run. Unknown names raise as in the reference."""
    _reference_splitter(pattern)  # the reference's checks and errors for a bad pattern
    return None if isinstance(pattern, re.Pattern) else MODES[pattern]


def _class_of(ch: str) -> int:
    if is_letter(ch):
        return _k.LETTER
    if is_number(ch):
        return _k.NUMBER
    if is_whitespace(ch):
        return _k.SPACE
    return _k.OTHER


def codepoints(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(cps, text_starts): the code points of all `texts` back to back (uint32), and where each
    text starts (int64, one past the end last), with every code point's class in the table.

    Texts must be valid (no lone surrogates: the tokenizer cleans them first).
    >>> codepoints(["hi", "é"])
    (array([104, 105, 233], dtype=uint32), array([0, 2, 3]))
    """
    joined = texts[0] if len(texts) == 1 else "".join(texts)
    cps = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), np.uint32)
    text_starts = np.zeros(len(texts) + 1, np.int64)
    np.cumsum([len(t) for t in texts], out=text_starts[1:])
    pending = _k.unknown_codepoints(cps, _classes)
    try:
        for cp in pending.tolist():
            _classes[cp] = _class_of(chr(cp))
    except BaseException:  # (an interrupt) leave no code point half looked up
        _classes[pending] = _k.UNKNOWN
        raise
    return cps, text_starts


def split_batch(texts: list[str], mode: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split and UTF-8 encode a batch: (data, bounds, text_chunks).

    data: the texts' UTF-8 bytes back to back (uint8); chunk j is data[bounds[j]:bounds[j + 1]];
    text t holds chunks text_chunks[t] .. text_chunks[t + 1].
    """
    cps, text_starts = codepoints(texts)
    bounds, text_chunks = _k.split_codepoints(cps, text_starts, _classes, mode)
    data, byte_bounds = _k.utf8_bytes(cps, bounds)
    return data, byte_bounds, text_chunks


def get_splitter(pattern: str | re.Pattern | None) -> Callable[[str], list[str]]:
    """The function that splits text for `pattern` (the reference's, with Numba scanners).

    >>> get_splitter("gpt2")("a b")
    ['a', ' b']
    """
    mode = split_mode(pattern)
    if mode is None:
        return _reference_splitter(pattern)

    def split(text: str) -> list[str]:
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        cps, text_starts = codepoints([text])
        bounds, _ = _k.split_codepoints(cps, text_starts, _classes, mode)
        cuts = bounds.tolist()
        return [text[a:b] for a, b in zip(cuts, cuts[1:])]

    return split

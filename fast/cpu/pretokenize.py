"""Pre-tokenization in Numba: `reference.pretokenize`'s scanners, rule for rule, over code points.

The reference's scanners call `unicodedata` once per character, which makes splitting (about
20 s for 10 MB) the bottleneck of both training and encoding. Here the text arrives as an array of
code points (`str.encode("utf-32-le")`, a C loop) and each character's class comes from a byte
table indexed by code point, filled in Python from the reference's own class functions for the
code points a text actually uses (`fast.pretokenize`), so the classes have one definition.

Every `*_match_end` below is the twin of the reference function of the same name; read them side
by side. Texts are batched: `text_starts` cuts the code points into independent texts (a chunk never
crosses a text boundary, and "end of text" in the patterns means the end of each text).
"""

import numpy as np
from numba import njit

# Character classes, one per code point: the four the patterns distinguish. UNKNOWN marks code
# points whose class has not been looked up yet, PENDING those being looked up.
UNKNOWN, LETTER, NUMBER, SPACE, OTHER, PENDING = 0, 1, 2, 3, 4, 255
# Split modes: the named patterns, and no split at all (pattern=None).
GPT2, CL100K, CL100K_TIKTOKEN, NO_SPLIT = 0, 1, 2, 3

APOSTROPHE, SPACE_CHAR, NEWLINE, RETURN, LONG_S = 39, 32, 10, 13, 0x17F
# Flags as numpy values, not Python literals: Numba compiles a helper once per literal argument.
CASE_SENSITIVE, IGNORE_CASE = np.bool_(False), np.bool_(True)


@njit(cache=True)
def unknown_codepoints(cps, classes):
    """The distinct code points of `cps` whose class is UNKNOWN; marks them PENDING in `classes`.

    >>> unknown_codepoints(np.array([97, 98, 97], np.uint32), classes)  # nothing known yet
    array([97, 98])
    """
    found = []
    for cp in cps:
        if classes[cp] == UNKNOWN:
            classes[cp] = PENDING
            found.append(np.int64(cp))
    out = np.empty(len(found), np.int64)
    for k in range(len(found)):
        out[k] = found[k]
    return out


@njit(cache=True)
def _fold(cp, ignore_case):
    """The letter a contraction compares: cp itself, or under (?i) its ASCII lower case, with
    U+017F LONG S folding to "s" (the reference's _CASELESS table)."""
    if ignore_case:
        if 65 <= cp <= 90:
            return cp + 32
        if cp == LONG_S:
            return 115
    return cp


@njit(cache=True)
def _contraction_end(cps, i, n, ignore_case):
    """End of `'s|'t|'re|'ve|'m|'ll|'d` matched at i (cps[i] == "'"), or 0 when none matches.

    The suffixes start with distinct letters, so at most one can match and their order is moot.
    """
    if i + 1 >= n:
        return 0
    c1 = _fold(np.int64(cps[i + 1]), ignore_case)
    if c1 == 115 or c1 == 116 or c1 == 109 or c1 == 100:  # s t m d
        return i + 2
    if i + 2 >= n:
        return 0
    c2 = _fold(np.int64(cps[i + 2]), ignore_case)
    if (c1 == 114 and c2 == 101) or (c1 == 118 and c2 == 101) or (c1 == 108 and c2 == 108):
        return i + 3  # re ve ll
    return 0


# In the two scanners below, `while end < n and classes[cps[end]] == X: end += 1` is the greedy
# run `X+` (the reference's _run_end), written out: small helpers cost compile time in Numba.


@njit(cache=True)
def _gpt2_match_end(cps, classes, i, n):
    """End of the GPT-2 pattern's match starting at i."""
    c = np.int64(cps[i])
    if c == APOSTROPHE:
        end = _contraction_end(cps, i, n, CASE_SENSITIVE)
        if end:
            return end
    # ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: a space joins the run of the class after it.
    start = i
    if c == SPACE_CHAR and i + 1 < n and classes[cps[i + 1]] != SPACE:
        start = i + 1
    cls = classes[cps[start]]
    end = start + 1
    while end < n and classes[cps[end]] == cls:
        end += 1
    if cls != SPACE:
        return end
    # \s+(?!\S)|\s+ : the whitespace run, less its last character when a non-space follows and
    # the run is longer than one (the reference's _whitespace_end).
    if end == n or end - i == 1:
        return end
    return end - 1


@njit(cache=True)
def _cl100k_match_end(cps, classes, i, n, trailing_whitespace_whole):
    """End of the cl100k pattern's match starting at i."""
    c = np.int64(cps[i])
    cls = classes[c]
    if c == APOSTROPHE:
        end = _contraction_end(cps, i, n, IGNORE_CASE)
        if end:
            return end
    # [^\r\n\p{L}\p{N}]?\p{L}+
    start = -1
    if cls == LETTER:
        start = i
    elif c != NEWLINE and c != RETURN and cls != NUMBER and i + 1 < n:
        if classes[cps[i + 1]] == LETTER:
            start = i + 1
    if start >= 0:
        end = start + 1
        while end < n and classes[cps[end]] == LETTER:
            end += 1
        return end
    # \p{N}{1,3}
    if cls == NUMBER:
        end = i + 1
        while end < n and end < i + 3 and classes[cps[end]] == NUMBER:
            end += 1
        return end
    # ` ?[^\s\p{L}\p{N}]+[\r\n]*`
    start = i
    if c == SPACE_CHAR and i + 1 < n and classes[cps[i + 1]] == OTHER:
        start = i + 1
    if classes[cps[start]] == OTHER:
        end = start + 1
        while end < n and classes[cps[end]] == OTHER:
            end += 1
        while end < n and (cps[end] == NEWLINE or cps[end] == RETURN):
            end += 1
        return end
    # c is whitespace from here on.
    end = i + 1
    while end < n and classes[cps[end]] == SPACE:
        end += 1
    if trailing_whitespace_whole and end == n:  # \s++$
        return n
    for k in range(end - 1, i - 1, -1):  # \s*[\r\n]+: up to the run's last newline
        if cps[k] == NEWLINE or cps[k] == RETURN:
            return k + 1
    # \s+(?!\S)|\s+
    if end == n or end - i == 1:
        return end
    return end - 1


@njit(cache=True)
def _scan(cps, classes, i, n, mode, bounds, m):
    """Record chunk starts from position i of a text ending at n into bounds[m:], until the text
    or the room in `bounds` runs out; returns (i, m) to resume from."""
    while i < n and m < len(bounds):
        bounds[m] = i
        m += 1
        if mode == NO_SPLIT:
            i = n
        elif mode == GPT2:
            i = _gpt2_match_end(cps, classes, i, n)
        else:
            i = _cl100k_match_end(cps, classes, i, n, mode == CL100K_TIKTOKEN)
    return i, m


@njit(cache=True)
def split_codepoints(cps, text_starts, classes, mode):
    """Chunk boundaries of each text: (bounds, text_chunks), both int64.

    Chunk j is cps[bounds[j]:bounds[j + 1]]; text t's chunks are text_chunks[t] .. text_chunks[t+1].
    >>> split_codepoints(cps_of("a b"), np.array([0, 3]), classes, GPT2)
    (array([0, 1, 3]), array([0, 2]))
    """
    n_texts = len(text_starts) - 1
    bounds = np.empty(len(cps) // 4 + 16, np.int64)
    text_chunks = np.empty(n_texts + 1, np.int64)
    m = np.int64(0)
    for t in range(n_texts):
        text_chunks[t] = m
        i, n = text_starts[t], text_starts[t + 1]
        while i < n:
            if m == len(bounds):  # grown here, outside the scanning loop (see fast/cpu/bpe.py)
                grown = np.empty(2 * len(bounds), np.int64)
                for k in range(m):
                    grown[k] = bounds[k]
                bounds = grown
            i, m = _scan(cps, classes, i, n, mode, bounds, m)
    text_chunks[n_texts] = m
    # Chunks tile the texts, which lie back to back: chunk j ends where chunk j + 1 starts, and
    # the last one where the last text ends.
    out = np.empty(m + 1, np.int64)
    for k in range(m):
        out[k] = bounds[k]
    out[m] = text_starts[n_texts]
    return out, text_chunks


@njit(cache=True)
def utf8_bytes(cps, bounds):
    """UTF-8 encode the code points and map chunk boundaries to byte offsets: (data, byte_bounds).

    >>> utf8_bytes(cps_of("aé"), np.array([0, 1, 2]))
    (array([97, 195, 169], dtype=uint8), array([0, 1, 3]))
    """
    total = 0
    for cp in cps:
        total += 1 if cp < 0x80 else (2 if cp < 0x800 else (3 if cp < 0x10000 else 4))
    data = np.empty(total, np.uint8)
    byte_bounds = np.empty(len(bounds), np.int64)
    j = 0  # byte position
    b = 0  # next boundary to map
    for i in range(len(cps)):
        while b < len(bounds) and bounds[b] == i:
            byte_bounds[b] = j
            b += 1
        cp = cps[i]
        if cp < 0x80:
            data[j] = cp
            j += 1
        elif cp < 0x800:
            data[j] = 0xC0 | (cp >> 6)
            data[j + 1] = 0x80 | (cp & 0x3F)
            j += 2
        elif cp < 0x10000:
            data[j] = 0xE0 | (cp >> 12)
            data[j + 1] = 0x80 | ((cp >> 6) & 0x3F)
            data[j + 2] = 0x80 | (cp & 0x3F)
            j += 3
        else:
            data[j] = 0xF0 | (cp >> 18)
            data[j + 1] = 0x80 | ((cp >> 12) & 0x3F)
            data[j + 2] = 0x80 | ((cp >> 6) & 0x3F)
            data[j + 3] = 0x80 | (cp & 0x3F)
            j += 4
    while b < len(bounds):
        byte_bounds[b] = j
        b += 1
    return data, byte_bounds

r"""Pre-tokenization: split text into chunks before byte-pair merging, so no token crosses a chunk.

GPT-2 and GPT-4 split text with a regular expression that needs a Unicode-aware engine (`\p{L}`
letters, `\p{N}` numbers), which Python's `re` is not. Here each pattern is a hand-written scanner
that reproduces the regex's leftmost-first, backtracking semantics exactly:

    gpt2    's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
    cl100k  (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}
            | ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+

A regex engine tries the alternatives in order at the current position and takes the first that
matches; the scanners below test the same alternatives in the same order, each written out as the
plain loop it amounts to. Every character is a letter, a number, whitespace or "other", and some
alternative always matches it, so the chunks tile the text: `"".join(split(t)) == t`.

Character classes follow the `regex` package and tiktoken: `\p{L}` / `\p{N}` are the Unicode
general categories L* / N* (from `unicodedata`, so the Unicode version is the running Python's),
and `\s` is the Unicode White_Space property (25 code points; unlike `str.isspace`, it excludes
U+001C..U+001F).

"cl100k_tiktoken" is the form tiktoken ships today for cl100k_base: it adds `\s++$` before the
newline rule, so whitespace that runs to the end of the text is one chunk ("a\n  " splits as
["a", "\n  "] rather than ["a", "\n", "  "]). It is otherwise identical to "cl100k".

The fast backend reuses this module as it is: splitting is not the hot loop of BPE.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable

# The regex sources of the named patterns, for engines that support \p (the `regex` package,
# tiktoken). Our scanners are tested against them.
GPT2_SPLIT_PATTERN = (
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
)
CL100K_SPLIT_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"""
    r""" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
CL100K_TIKTOKEN_SPLIT_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+|"""
    r""" ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
SPLIT_PATTERNS = {
    "gpt2": GPT2_SPLIT_PATTERN,
    "cl100k": CL100K_SPLIT_PATTERN,
    "cl100k_tiktoken": CL100K_TIKTOKEN_SPLIT_PATTERN,
}

# Unicode White_Space: what `\s` matches in the `regex` package and in Rust's regex (tiktoken).
WHITESPACE = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680"
    "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
NEWLINES = frozenset("\r\n")

# Under (?i), each contraction letter also matches its case variants. The only non-ASCII one is
# U+017F LATIN SMALL LETTER LONG S, whose simple case folding is "s" (checked against `regex`
# and tiktoken over every code point).
_CASELESS = {
    "s": "sSſ",
    "t": "tT",
    "m": "mM",
    "d": "dD",
    "r": "rR",
    "e": "eE",
    "v": "vV",
    "l": "lL",
}
_CONTRACTIONS = ("s", "t", "re", "ve", "m", "ll", "d")  # after the apostrophe, in pattern order


def is_letter(ch: str) -> bool:
    """`\\p{L}`: the Unicode general category is L* (Lu, Ll, Lt, Lm, Lo). is_letter("é") -> True"""
    return unicodedata.category(ch)[0] == "L"


def is_number(ch: str) -> bool:
    """`\\p{N}`: the Unicode general category is N* (Nd, Nl, No). is_number("½") -> True"""
    return unicodedata.category(ch)[0] == "N"


def is_whitespace(ch: str) -> bool:
    """`\\s`: Unicode White_Space. is_whitespace("\\u3000") -> True; is_whitespace("\\x1c") -> False
    (str.isspace says True for U+001C..U+001F, the regex engines say False)."""
    return ch in WHITESPACE


def is_other(ch: str) -> bool:
    """`[^\\s\\p{L}\\p{N}]`: neither whitespace, letter nor number (punctuation, symbols, marks)."""
    return ch not in WHITESPACE and unicodedata.category(ch)[0] not in "LN"


def _run_end(text: str, i: int, in_class: Callable[[str], bool]) -> int:
    """End of the longest run of `in_class` characters starting at i (a greedy `X+`)."""
    n = len(text)
    while i < n and in_class(text[i]):
        i += 1
    return i


def _contraction_end(text: str, i: int, ignore_case: bool) -> int:
    """End of `'s|'t|'re|'ve|'m|'ll|'d` matched at i (text[i] == "'"), or 0 when none matches."""
    for suffix in _CONTRACTIONS:
        end = i + 1 + len(suffix)
        if end > len(text):
            continue
        candidate = text[i + 1 : end]
        if ignore_case:
            matched = all(c in _CASELESS[s] for c, s in zip(candidate, suffix))
        else:
            matched = candidate == suffix
        if matched:
            return end
    return 0


def _whitespace_end(text: str, i: int, end_of_run: int) -> int:
    """`\\s+(?!\\S)|\\s+` at i, given the maximal whitespace run text[i:end_of_run].

    `\\s+(?!\\S)` first takes the whole run; if a non-space follows, it backtracks one character,
    leaving the last space to prefix the next word (" b" in "a   b"). A run of one space before a
    non-space cannot give anything back, so `\\s+` takes it alone.
    """
    if end_of_run == len(text) or end_of_run - i == 1:
        return end_of_run
    return end_of_run - 1


def _gpt2_match_end(text: str, i: int) -> int:
    """End of the GPT-2 pattern's match starting at i."""
    c = text[i]
    has_next = i + 1 < len(text)
    # 's|'t|'re|'ve|'m|'ll|'d  (case-sensitive)
    if c == "'":
        end = _contraction_end(text, i, ignore_case=False)
        if end:
            return end
    # ` ?\p{L}+`, then ` ?\p{N}+`, then ` ?[^\s\p{L}\p{N}]+`: an optional space, then a run of one
    # class. The space is taken only when the class follows (else the regex backtracks past it).
    for in_class in (is_letter, is_number, is_other):
        if c == " " and has_next and in_class(text[i + 1]):
            return _run_end(text, i + 1, in_class)
        if in_class(c):
            return _run_end(text, i, in_class)
    # c is whitespace: \s+(?!\S)|\s+
    return _whitespace_end(text, i, _run_end(text, i, is_whitespace))


def _cl100k_match_end(text: str, i: int, trailing_whitespace_whole: bool) -> int:
    """End of the cl100k pattern's match starting at i."""
    c = text[i]
    n = len(text)
    # (?i:'s|'t|'re|'ve|'m|'ll|'d)
    if c == "'":
        end = _contraction_end(text, i, ignore_case=True)
        if end:
            return end
    # [^\r\n\p{L}\p{N}]?\p{L}+ : one optional non-newline, non-letter, non-number prefix (a space,
    # a tab, "(" or an apostrophe), then letters.
    if is_letter(c):
        return _run_end(text, i, is_letter)
    if c not in NEWLINES and not is_number(c) and i + 1 < n and is_letter(text[i + 1]):
        return _run_end(text, i + 1, is_letter)
    # \p{N}{1,3} : numbers in groups of at most three digits ("12345" -> "123", "45").
    if is_number(c):
        return min(_run_end(text, i, is_number), i + 3)
    # ` ?[^\s\p{L}\p{N}]+[\r\n]*` : punctuation with an optional leading space, plus any newlines
    # right after it.
    start = i + 1 if c == " " and i + 1 < n and is_other(text[i + 1]) else i
    if is_other(text[start]):
        end = _run_end(text, start, is_other)
        return _run_end(text, end, NEWLINES.__contains__)
    # c is whitespace from here on.
    end_of_run = _run_end(text, i, is_whitespace)
    # \s++$ (cl100k_tiktoken only): whitespace that reaches the end of the text is one chunk.
    if trailing_whitespace_whole and end_of_run == n:
        return n
    # \s*[\r\n]+ : \s* first takes the whole run, then backtracks until [\r\n]+ can match, so the
    # chunk ends just after the run's last newline character.
    for k in range(end_of_run - 1, i - 1, -1):
        if text[k] in NEWLINES:
            return k + 1
    # \s+(?!\S)|\s+
    return _whitespace_end(text, i, end_of_run)


def _scan(text: str, match_end: Callable[[str, int], int]) -> list[str]:
    """Apply a scanner at 0, then where its last match ended, until the text is used up."""
    chunks = []
    i = 0
    while i < len(text):
        end = match_end(text, i)
        chunks.append(text[i:end])
        i = end
    return chunks


def split_gpt2(text: str) -> list[str]:
    """Split `text` exactly as GPT-2's pattern does.

    >>> split_gpt2("Hello world's  123!\\n")
    ['Hello', ' world', "'s", ' ', ' 123', '!', '\\n']
    """
    return _scan(text, _gpt2_match_end)


def split_cl100k(text: str) -> list[str]:
    """Split `text` exactly as GPT-4's cl100k pattern (the published form) does.

    >>> split_cl100k("Hello WORLD'S 12345!!\\n\\n")
    ['Hello', ' WORLD', "'S", ' ', '123', '45', '!!\\n\\n']
    """
    return _scan(text, lambda t, i: _cl100k_match_end(t, i, trailing_whitespace_whole=False))


def split_cl100k_tiktoken(text: str) -> list[str]:
    """Split as tiktoken's current cl100k_base pattern: cl100k, but trailing whitespace is whole.

    >>> split_cl100k_tiktoken("a\\n  ")
    ['a', '\\n  ']
    """
    return _scan(text, lambda t, i: _cl100k_match_end(t, i, trailing_whitespace_whole=True))


def split_none(text: str) -> list[str]:
    """No pre-tokenization: the whole text is one chunk (none for the empty text)."""
    return [text] if text else []


def split_with_re(text: str, pattern: re.Pattern) -> list[str]:
    """Split with a user's `re` pattern: the non-empty matches, in order (as tiktoken does).

    Text the pattern does not match is dropped, so choose a pattern that covers every character.
    >>> split_with_re("ab, cd", re.compile(r"\\w+|\\W"))
    ['ab', ',', ' ', 'cd']
    """
    return [m.group(0) for m in pattern.finditer(text) if m.group(0)]


def split_on_special(text: str, special: Iterable[str]) -> list[tuple[str, bool]]:
    """Cut `text` around special tokens: [(piece, is_special), ...], empty pieces left out.

    At a position where several special tokens start, the longest wins.
    >>> split_on_special("a<|eot|>b", ["<|eot|>"])
    [('a', False), ('<|eot|>', True), ('b', False)]
    """
    special = sorted(special, key=len, reverse=True)
    if not special:
        return [(text, False)] if text else []
    pieces = []
    start = 0
    for match in re.finditer("|".join(map(re.escape, special)), text):
        if match.start() > start:
            pieces.append((text[start : match.start()], False))
        pieces.append((match.group(0), True))
        start = match.end()
    if start < len(text):
        pieces.append((text[start:], False))
    return pieces


_NAMED_SPLITTERS = {
    "gpt2": split_gpt2,
    "cl100k": split_cl100k,
    "cl100k_tiktoken": split_cl100k_tiktoken,
}


def get_splitter(pattern: str | re.Pattern | None) -> Callable[[str], list[str]]:
    """The function that splits text for `pattern`.

    pattern: "gpt2", "cl100k", "cl100k_tiktoken", None (no split), or a `re.Pattern` compiled by
    the caller (Python's `re`, so no `\\p{...}`).
    >>> get_splitter("gpt2")("a b")
    ['a', ' b']
    """
    if pattern is None:
        return split_none
    if isinstance(pattern, re.Pattern):
        return lambda text: split_with_re(text, pattern)
    if isinstance(pattern, str):
        if pattern in _NAMED_SPLITTERS:
            return _NAMED_SPLITTERS[pattern]
        raise ValueError(
            f"pattern must be one of {sorted(_NAMED_SPLITTERS)}, None or a compiled re.Pattern, "
            f"got {pattern!r} (compile a custom pattern with re.compile)"
        )
    raise TypeError(
        f"pattern must be a str name, None or a compiled re.Pattern, got {type(pattern).__name__}"
    )

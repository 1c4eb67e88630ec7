"""The split patterns: hand-worked examples, then the `regex` package running the true patterns.

The oracle is `regex.findall(pattern, text)` with the published GPT-2 / cl100k patterns (and the
forms tiktoken ships today). Generated text avoids code points unassigned in the running Python's
Unicode database: the `regex` package carries a newer Unicode version, so characters assigned since
then are letters to it and unassigned (neither letter nor number) to `unicodedata`.
"""

import re
import sys
import unicodedata

import pytest
import regex
from hypothesis import given
from hypothesis import strategies as st

from reference.pretokenize import (
    CL100K_SPLIT_PATTERN,
    CL100K_TIKTOKEN_SPLIT_PATTERN,
    GPT2_SPLIT_PATTERN,
    SPLIT_PATTERNS,
    WHITESPACE,
    get_splitter,
    is_letter,
    is_number,
    is_other,
    is_whitespace,
    split_cl100k,
    split_cl100k_tiktoken,
    split_gpt2,
    split_none,
)

# tiktoken's current gpt2/r50k form (possessive quantifiers, `\s++$`); equivalent to GPT-2's.
R50K_TIKTOKEN_PATTERN = (
    r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
)
SPLITTERS = {"gpt2": split_gpt2, "cl100k": split_cl100k, "cl100k_tiktoken": split_cl100k_tiktoken}
ORACLES = [
    ("gpt2", GPT2_SPLIT_PATTERN),
    ("gpt2", R50K_TIKTOKEN_PATTERN),
    ("cl100k", CL100K_SPLIT_PATTERN),
    ("cl100k_tiktoken", CL100K_TIKTOKEN_SPLIT_PATTERN),
]

# Pieces that exercise every alternative: contractions in both cases (and the long s, which
# case-folds to "s"), every kind of whitespace, digits of several scripts, letters, marks, emoji.
FRAGMENTS = [
    "'", "s", "S", "ſ", "t", "T", "re", "RE", "rE", "ve", "Ve", "ll", "lL", "m", "M", "d", "D",
    "'s", "'T", "'Re", "'ll", "'LL", "'ve", "'m", "'d", " ", "  ", "   ", "\n", "\r", "\r\n",
    "\n\n", "\t", "\v", "\f", "\xa0", "\x85", "\u2028", "\u3000", "\x1c", "\x1f", "1", "123",
    "12345", "٣", "Ⅻ", "½", "²", "a", "é", "e\u0301", "中文", "ß", "Ω", "😀", "👍🏽", "\u200d",
    "!", "?", ".", "(", ")", "...", "#", "_", "$", "-", "don't", "I'M", "hello", "World",
]  # fmt: skip
assigned = st.characters(exclude_categories=("Cs", "Cn"))
texts = st.lists(st.one_of(st.sampled_from(FRAGMENTS), assigned), max_size=40).map("".join)


def first_mismatch(got, want):
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            return f"chunk {i}: got {g!r}, want {w!r}; got {got[: i + 3]} want {want[: i + 3]}"
    return f"lengths differ: got {len(got)} chunks, want {len(want)}"


# -- hand-worked examples -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, want",
    [
        # contractions: case-sensitive in GPT-2, so "'S" falls to the punctuation rule
        ("don't", ["don", "'t"]),
        ("we'll they're I've", ["we", "'ll", " they", "'re", " I", "'ve"]),
        ("DON'T", ["DON", "'", "T"]),
        ("'sa", ["'s", "a"]),
        # letters and numbers take one optional leading space; digits run on
        ("Hello world 12345", ["Hello", " world", " 12345"]),
        ("abc123", ["abc", "123"]),
        # punctuation runs, with one optional space
        ("Hi!!! ?.", ["Hi", "!!!", " ?."]),
        # whitespace gives its last character to the word after it
        ("a   b", ["a", "  ", " b"]),
        ("a\n\nb", ["a", "\n", "\n", "b"]),
        ("a \nb", ["a", " ", "\n", "b"]),
        ("a  \n  b", ["a", "  \n ", " b"]),
        ("end  ", ["end", "  "]),
        ("\r\n", ["\r\n"]),
        # non-Latin letters are letters; a combining mark is not
        ("中文 世界", ["中文", " 世界"]),
        ("e\u0301t\u00e9", ["e", "\u0301", "t\u00e9"]),
        ("Привет мир", ["Привет", " мир"]),
        # a space before an emoji joins it as "other"
        ("ok 😀😀", ["ok", " 😀😀"]),
        ("", []),
    ],
)
def test_gpt2_hand_worked(text, want):
    assert split_gpt2(text) == want


@pytest.mark.parametrize(
    "text, want",
    [
        # contractions are case-insensitive, and U+017F (long s) folds to "s"
        ("DON'T", ["DON", "'T"]),
        ("we'LL", ["we", "'LL"]),
        ("it'ſ", ["it", "'ſ"]),
        # one non-letter, non-number, non-newline character may lead a word
        ("(hello) 'quoted'", ["(hello", ")", " '", "quoted", "'"]),
        ("\tindent", ["\tindent"]),
        ("a\nb", ["a", "\n", "b"]),
        # numbers in groups of at most three, never with a leading space
        ("12345678", ["123", "456", "78"]),
        ("x 42", ["x", " ", "42"]),
        # punctuation keeps the newlines right after it
        ("end.\n\nNext", ["end", ".\n\n", "Next"]),
        ("a ??\r\n", ["a", " ??\r\n"]),
        # whitespace up to the last newline is one chunk; then \s+(?!\S) as in GPT-2
        ("a  \n\n  b", ["a", "  \n\n", " ", " b"]),
        ("a\n  ", ["a", "\n", "  "]),
        ("x\r\n", ["x", "\r\n"]),
        ("a   b", ["a", "  ", " b"]),
        ("中文，世界", ["中文", "，世界"]),
        ("", []),
    ],
)
def test_cl100k_hand_worked(text, want):
    assert split_cl100k(text) == want


def test_cl100k_tiktoken_keeps_trailing_whitespace_whole():
    assert split_cl100k_tiktoken("a\n  ") == ["a", "\n  "]
    assert split_cl100k_tiktoken("a\n  b") == split_cl100k("a\n  b") == ["a", "\n", " ", " b"]


# -- character classes against `regex`, over every assigned code point ----------------------------


def test_character_classes_match_regex_on_every_assigned_code_point():
    chars = "".join(
        chr(c)
        for c in range(sys.maxunicode + 1)
        if unicodedata.category(chr(c)) not in ("Cn", "Cs")
    )
    for name, ours, pattern in [
        ("\\p{L}", is_letter, r"\p{L}"),
        ("\\p{N}", is_number, r"\p{N}"),
        ("\\s", is_whitespace, r"\s"),
        ("[^\\s\\p{L}\\p{N}]", is_other, r"[^\s\p{L}\p{N}]"),
    ]:
        want = regex.findall(pattern, chars)
        got = [c for c in chars if ours(c)]
        assert got == want, f"{name}: {first_mismatch(got, want)}"


def test_whitespace_is_unicode_white_space_not_str_isspace():
    assert len(WHITESPACE) == 25
    assert not is_whitespace("\x1c") and "\x1c".isspace()
    assert is_whitespace("\x85") and is_whitespace("\u3000")


# -- the oracle: the true patterns under a \p-capable engine -------------------------------------


@pytest.mark.parametrize("name, pattern", ORACLES, ids=lambda x: x[:20])
@given(text=texts)
def test_split_matches_regex_oracle(name, pattern, text):
    got, want = SPLITTERS[name](text), regex.findall(pattern, text)
    assert got == want, first_mismatch(got, want)
    assert "".join(got) == text


@given(text=st.text(alphabet=st.sampled_from(" \t\n\r\x0b\xa0a'1.sS"), max_size=30))
def test_split_matches_oracle_on_dense_whitespace(text):
    for name, pattern in ORACLES:
        assert SPLITTERS[name](text) == regex.findall(pattern, text), (name, text)


def test_named_patterns_are_exported():
    assert SPLIT_PATTERNS["gpt2"] == GPT2_SPLIT_PATTERN
    assert SPLIT_PATTERNS["cl100k"] == CL100K_SPLIT_PATTERN


# -- other patterns and bad arguments ---------------------------------------------------------


def test_no_split_and_user_re_pattern():
    assert split_none("a b") == ["a b"] and split_none("") == []
    assert get_splitter(None)("x y") == ["x y"]
    words = get_splitter(re.compile(r"\w+|\s+|[^\w\s]+"))
    assert words("hi, you") == ["hi", ",", " ", "you"]
    # empty matches are skipped, as tiktoken does
    assert get_splitter(re.compile(r"a*"))("baab") == ["aa"]


def test_bad_pattern_arguments():
    with pytest.raises(ValueError, match="pattern must be one of"):
        get_splitter("gtp2")
    with pytest.raises(TypeError, match="pattern must be"):
        get_splitter(42)

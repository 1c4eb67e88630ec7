"""The BPE tokenizer across backends: the same merges, ids, files, special tokens and errors.

Tokenizers must agree exactly, so every comparison here is `==` on the whole result: the merges
learned, the ids of an encoding, the bytes of each saved file, and for a call that fails, the
exception's type and message. Training texts are chosen to make ties: the reference breaks a tie
between equally frequent pairs by the earliest first occurrence in the current, merged text, and
a backend that counts pairs incrementally has to reproduce that rule, not just the counts.
"""

import base64
import os
import re
import warnings

import pytest
from hypothesis import given
from hypothesis import strategies as st

EOT = "<|endoftext|>"
PAD = "<|pad|>"
PATTERNS = ["gpt2", "cl100k", "cl100k_tiktoken", None]
CORPUS = (
    "The quick brown fox jumps over the lazy dog. It's the dog's day; we'll see, they're sure.\n"
    "def encode(self, text):\n    return [ord(c) for c in text]  # 12345 67890\n\n"
    "中文文本的分词测试，你好世界。日本語のテキスト。한국어 텍스트. Привет, мир! Ελληνικά.\n"
    "emoji 😀😀👍🏽 café naïve e\u0301 \t\r\n  indented   spaces\n"
) * 3
FRAGMENTS = [
    "the", " the", "dog", "'s", "'S", "'LL", "ſ", " ", "  ", "\n", "\r\n", "\t", "123", "4567",
    "中文", "你好", "😀", "👍🏽", "é", "e\u0301", "!", "...", "(", "aaaa", "ab", "ba", "\xa0",
    "\u3000", "\x1c", "\x00",
]  # fmt: skip
# Texts: fragments that exercise the split patterns, any character (CJK, emoji, combining marks,
# lone surrogates), and repetition, the usual source of tied and overlapping pairs.
any_char = st.characters(exclude_categories=("Cn",))
pieces = st.lists(st.sampled_from(FRAGMENTS) | any_char, max_size=25).map("".join)
texts = pieces | st.builds(lambda s, n: s * n, pieces, st.integers(1, 6)) | st.just("")
# Texts with a small alphabet: few distinct pairs, so nearly every round is a tie.
tie_texts = st.text(alphabet="ab \n", max_size=60) | st.builds(
    lambda s, n: s * n, st.text(alphabet="abc ", min_size=1, max_size=6), st.integers(2, 12)
)
ADVERSARIAL = [
    "",
    "a",
    "aa",
    "aaaa",
    "a" * 65,
    "ab" * 40,
    "aaabdaaabac",
    "zzyyzzyy",
    "ba ab ab ba",
    "abab baba abab baba",
    "aaa aaa aaaa aaaaa",
    "a b a b a b",
    "中文中文中文 中文",
    "😀😀😀 😀😀",
    "abcabcabc bcabcabca cabcabcab",
    "\n\n\n  \n\n   \t\t",
    "x" * 7 + " " + "x" * 9 + " " + "y" * 8,
]


@pytest.fixture(autouse=True)
def _needs_a_tokenizer(candidate):
    """A backend that declares the tokenizer not yet implemented skips this file (test_api.py
    checks that the declaration is exact)."""
    if "BPETokenizer" in getattr(candidate, "NOT_YET_IMPLEMENTED", ()):
        pytest.skip(f"{candidate.__name__} declares BPETokenizer not yet implemented")


def outcome(call, *args, **kwargs):
    """(what call returned or raised, the warnings it gave), comparable with ==."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = ("returned", call(*args, **kwargs))
        except Exception as e:  # the type and the message must both agree
            result = ("raised", type(e).__name__, str(e))
    return result, [(w.category.__name__, str(w.message)) for w in caught]


def trained(backend, pattern, text, vocab_size, special_tokens=None):
    tok = backend.BPETokenizer(pattern, special_tokens=special_tokens)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # short texts run out of pairs
        tok.train(text, vocab_size)
    return tok


def first_mismatch(got, want):
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            return f"position {i}: got {g}, want {w}; got {got[i : i + 5]}, want {want[i : i + 5]}"
    return f"lengths differ: got {len(got)}, want {len(want)}"


@pytest.fixture(scope="module")
def pair(candidate, ref):
    """(candidate, reference) tokenizer factories trained on CORPUS, cached per pattern."""
    cache = {}

    def get(pattern, vocab_size=400):
        key = (pattern, vocab_size)
        if key not in cache:
            special = {EOT: vocab_size, PAD: vocab_size + 7}
            cache[key] = tuple(
                trained(b, pattern, CORPUS, vocab_size, special) for b in (candidate, ref)
            )
        return cache[key]

    return get


# -- training ------------------------------------------------------------------------------------


@pytest.mark.parametrize("pattern", PATTERNS)
@given(text=texts, num_merges=st.integers(0, 40))
def test_train_identical_merges(candidate, ref, pattern, text, num_merges):
    """Same merges (and the same early-stop warning) on any text, any vocabulary size."""
    tok, ref_tok = candidate.BPETokenizer(pattern), ref.BPETokenizer(pattern)
    got, want = (outcome(t.train, text, 256 + num_merges) for t in (tok, ref_tok))
    assert got == want
    assert tok.merges == ref_tok.merges
    assert tok.vocab == ref_tok.vocab
    # encoding the training text replays the merges exactly
    assert tok.encode_ordinary(text) == ref_tok.encode_ordinary(text)


@pytest.mark.parametrize("pattern", [None, "gpt2"])
@given(text=tie_texts)
def test_train_ties_follow_first_occurrence(candidate, ref, pattern, text):
    """Small alphabets tie nearly every round; train until no pair is left."""
    vocab_size = 256 + len(text)
    tok, ref_tok = (trained(b, pattern, text, vocab_size) for b in (candidate, ref))
    assert tok.merges == ref_tok.merges


@pytest.mark.parametrize("text", ADVERSARIAL)
@pytest.mark.parametrize("pattern", PATTERNS)
def test_train_adversarial(candidate, ref, pattern, text):
    """Overlapping pairs ("aaaa"), periodic text, ties across chunks, multi-byte characters."""
    for vocab_size in (257, 258, 260, 256 + len(text.encode())):
        tok, ref_tok = (trained(b, pattern, text, vocab_size) for b in (candidate, ref))
        assert tok.merges == ref_tok.merges, (vocab_size, text)


def test_train_on_weighted_repeats(candidate, ref):
    """Counts weighted by how often a chunk repeats, with ties between chunks of equal weight."""
    text = " ".join(["abc"] * 7 + ["bca"] * 7 + ["cab"] * 7 + ["ab ba"] * 3 + ["aaaa"] * 5) * 2
    for pattern in PATTERNS:
        tok, ref_tok = (trained(b, pattern, text, 300) for b in (candidate, ref))
        assert tok.merges == ref_tok.merges, pattern


def test_retrain_starts_from_bytes(candidate, ref):
    toks = [b.BPETokenizer() for b in (candidate, ref)]
    for tok in toks:
        tok.train("aaaa aaaa", 258)
        tok.train("bbbb bbbb", 257)
    assert toks[0].merges == toks[1].merges == [((98, 98), 256)]


def test_train_with_user_re_pattern(candidate, ref):
    pattern = re.compile(r"\w+|\s+|[^\w\s]+")
    tok, ref_tok = (trained(b, pattern, CORPUS, 320) for b in (candidate, ref))
    assert tok.merges == ref_tok.merges
    assert tok.encode_ordinary(CORPUS) == ref_tok.encode_ordinary(CORPUS)


# -- splitting -----------------------------------------------------------------------------------


@pytest.mark.parametrize("pattern", PATTERNS)
@given(text=texts)
def test_split_identical(candidate, ref, pattern, text):
    assert candidate.get_splitter(pattern)(text) == ref.get_splitter(pattern)(text)


# -- encoding and decoding ------------------------------------------------------------------------


@pytest.mark.parametrize("pattern", PATTERNS)
@given(text=texts)
def test_encode_identical(pair, pattern, text):
    tok, ref_tok = pair(pattern)
    assert tok.merges == ref_tok.merges
    got, want = tok.encode_ordinary(text), ref_tok.encode_ordinary(text)
    assert got == want, first_mismatch(got, want)
    assert tok.encode(text, disallowed_special=()) == want
    assert tok.decode(got) == ref_tok.decode(want)
    assert tok.decode_bytes(got) == ref_tok.decode_bytes(want)


@pytest.mark.parametrize(
    "text",
    ["a" * 20000, " " * 5000, "\n" * 3000, "ab" * 10000, "中" * 3000, "😀" * 2000, CORPUS * 3],
)
def test_encode_long_repetitive(pair, text):
    for pattern in ("gpt2", None):
        tok, ref_tok = pair(pattern)
        got, want = tok.encode_ordinary(text), ref_tok.encode_ordinary(text)
        assert got == want, first_mismatch(got, want)


@given(ids=st.lists(st.integers(-3, 420), max_size=20))
def test_decode_identical_including_bad_ids(pair, ids):
    tok, ref_tok = pair("gpt2")
    assert outcome(tok.decode, ids) == outcome(ref_tok.decode, ids)
    assert outcome(tok.decode_bytes, ids) == outcome(ref_tok.decode_bytes, ids)


# -- special tokens ------------------------------------------------------------------------------

special_texts = st.lists(
    st.sampled_from([EOT, PAD, "<|", "|>", "<|endof", "hi", " there", "中文", "\n"]) | any_char,
    max_size=12,
).map("".join)
special_sets = st.sampled_from(["all", set(), {EOT}, {PAD}, {EOT, PAD}, ("<|nope|>",), "none"])


@given(text=special_texts, allowed=special_sets, disallowed=special_sets | st.just(()))
def test_special_tokens_identical(pair, text, allowed, disallowed):
    tok, ref_tok = pair("cl100k")
    got = outcome(tok.encode, text, allowed_special=allowed, disallowed_special=disallowed)
    want = outcome(ref_tok.encode, text, allowed_special=allowed, disallowed_special=disallowed)
    assert got == want


def test_register_special_tokens_identical(pair, candidate, ref):
    for special in ({"<A>": 65}, {"<a>": 900, "<b>": 900}, {"<a>": -1}, {"": 900}, {"x": 1.5}):
        got, want = (outcome(b.BPETokenizer, special_tokens=special) for b in (candidate, ref))
        assert got[0][0] == want[0][0] == "raised" and got == want, special
    toks = pair("gpt2")
    got, want = (outcome(tok.register_special_tokens, {"<x>": 300}) for tok in toks)
    assert got == want


# -- files ---------------------------------------------------------------------------------------


def read_tree(path):
    """{relative path: bytes} of every file under `path`."""
    files = {}
    for folder, _, names in os.walk(path):
        for name in names:
            full = os.path.join(folder, name)
            with open(full, "rb") as f:
                files[os.path.relpath(full, path)] = f.read()
    return files


@pytest.mark.parametrize("pattern", PATTERNS)
def test_files_identical(pair, candidate, ref, tmp_path, pattern):
    tok, ref_tok = pair(pattern)
    for name, tokenizer in (("candidate", tok), ("reference", ref_tok)):
        folder = tmp_path / name
        folder.mkdir()
        tokenizer.save(folder / "tok.bpe")
        tokenizer.save_tiktoken(folder / "tok.tiktoken")
        tokenizer.save_huggingface(folder / "hf")
    files = read_tree(tmp_path / "reference")
    assert sorted(files) == ["hf/merges.txt", "hf/vocab.json", "tok.bpe", "tok.tiktoken"]
    assert read_tree(tmp_path / "candidate") == files
    # each backend reads the other's files into the same tokenizer
    path = tmp_path / "reference"
    loaded = [
        candidate.BPETokenizer.load(path / "tok.bpe"),
        candidate.BPETokenizer.load_tiktoken(path / "tok.tiktoken", pattern, {EOT: 400}),
        candidate.BPETokenizer.load_huggingface(path / "hf", pattern),
    ]
    text = CORPUS + EOT + " unseen wörds 99 " + "z" * 300
    want = ref_tok.encode(text, allowed_special={EOT})
    for back in loaded:
        assert isinstance(back, candidate.BPETokenizer)
        assert back.merges == ref_tok.merges and back.vocab == ref_tok.vocab
        assert back.encode(text, allowed_special={EOT}) == want


def test_permuted_byte_ids_identical(candidate, ref, tmp_path):
    """A rank file that does not rank byte b as b (GPT-2's real files): ids follow the file."""
    tok = trained(ref, "gpt2", CORPUS, 330)
    order = sorted(range(256), key=lambda b: (b % 7, b))  # some permutation of the byte ranks
    rank_of = {token_id: order.index(token_id) for token_id in range(256)}
    rank_of.update({i: i for i in tok.vocab if i >= 256})
    path = tmp_path / "permuted.tiktoken"
    path.write_text(
        "".join(f"{base64.b64encode(tok.vocab[i]).decode()} {rank_of[i]}\n" for i in tok.vocab)
    )
    got, want = (b.BPETokenizer.load_tiktoken(path, "gpt2") for b in (candidate, ref))
    text = CORPUS + "\x00\xff unseen"
    assert got.encode(text) == want.encode(text)
    assert got.decode(got.encode(text)) == text


# -- errors --------------------------------------------------------------------------------------


def test_errors_identical(pair, candidate, ref, tmp_path):
    tok, ref_tok = pair("gpt2")
    calls = [
        lambda t: t.encode(b"bytes"),
        lambda t: t.encode_ordinary(None),
        lambda t: t.encode("x", allowed_special="none"),
        lambda t: t.encode(f"a{EOT}b"),
        lambda t: t.encode(f"a{PAD}b{EOT}", allowed_special={EOT}),
        lambda t: t.decode([1, 5000]),
        lambda t: t.decode([-1]),
        lambda t: t.decode([1.5]),
        lambda t: t.decode([256, 401]),
        lambda t: t.decode(["a"]),
        lambda t: t.decode_bytes([[1, 2]]),
        lambda t: type(t)().train("abc", 100),
        lambda t: type(t)().train("abcabc", 10**12),  # stops early, with the same warning
        lambda t: type(t)().train("abc", 300.0),
        lambda t: type(t)().train("abc", True),
        lambda t: type(t)().train(["abc"], 300),
        lambda t: type(t)(special_tokens={EOT: 300}).train(CORPUS, 400),
        lambda t: type(t)(pattern="gpt5"),
        lambda t: type(t)(pattern=5),
        lambda t: type(t)(special_tokens=[EOT]),
    ]
    for k, call in enumerate(calls):
        got, want = outcome(call, tok), outcome(call, ref_tok)
        assert got == want, (k, got, want)
    # damaged files
    path = tmp_path / "tok.bpe"
    ref_tok.save(path)
    good = path.read_text(encoding="utf-8")
    bad_files = [
        good.replace("bpe v1", "bpe v2", 1),
        "hello\n",
        "",
        "\n".join(good.split("\n")[:-5]) + "\n",
        good.replace("\n256 ", "\n9999 ", 1),
    ]
    for k, content in enumerate(bad_files):
        bad = tmp_path / f"bad{k}.bpe"
        bad.write_text(content, encoding="utf-8")
        got, want = (outcome(b.BPETokenizer.load, bad) for b in (candidate, ref))
        assert got == want, (k, got, want)

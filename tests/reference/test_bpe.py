"""Byte-level BPE: hand-worked merges, a from-scratch oracle trainer, round trips, file formats, and
interoperability with tiktoken and Hugging Face `tokenizers` on the same vocabulary."""

import base64
import json
import os
import re
import subprocess
import sys
import unicodedata
import warnings

import pytest
import tiktoken
import tiktoken.load
from hypothesis import given
from hypothesis import strategies as st
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

from reference.bpe import (
    BPETokenizer,
    TokenizerFileError,
    bytes_to_unicode,
    count_pairs,
    encode_chunk,
    merge_pair,
    train_merges,
)
from reference.pretokenize import SPLIT_PATTERNS, get_splitter, split_on_special

EOT = "<|endoftext|>"
CORPUS = (
    "The quick brown fox jumps over the lazy dog. It's the dog's day; we'll see, they're sure.\n"
    "def encode(self, text):\n    return [ord(c) for c in text]  # 12345 67890\n\n"
    "中文文本的分词测试，你好世界。日本語のテキスト。한국어 텍스트. Привет, мир! Ελληνικά.\n"
    "emoji 😀😀👍🏽 café naïve e\u0301 \t\r\n  indented   spaces\n"
) * 3
FRAGMENTS = [
    "the", " the", "dog", "'s", "'S", "ſ", " ", "  ", "\n", "\r\n", "\t", "123", "45", "中文",
    "你好", "😀", "é", "e\u0301", "!", ".", "(", "aaaa", EOT, "<|", "|>", "\xa0", "\u3000",
]  # fmt: skip
# Assigned code points only: tiktoken and `tokenizers` carry newer Unicode tables than Python 3.11.
assigned = st.characters(exclude_categories=("Cs", "Cn"))
texts = st.lists(st.one_of(st.sampled_from(FRAGMENTS), assigned), max_size=30).map("".join)

_trained = {}


def trained(pattern="gpt2", vocab_size=360, special=True):
    """A tokenizer trained on CORPUS (cached: training is the slow part)."""
    key = (pattern, vocab_size, special)
    if key not in _trained:
        tok = BPETokenizer(pattern, special_tokens={EOT: vocab_size} if special else None)
        tok.train(CORPUS, vocab_size)
        _trained[key] = tok
    return _trained[key]


def first_mismatch(got, want):
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            return f"position {i}: got {g}, want {w}; got {got[i : i + 5]}, want {want[i : i + 5]}"
    return f"lengths differ: got {len(got)}, want {len(want)}"


# -- the oracle trainer: recount everything each round, as the minimal trainers do ---------------


def naive_merge(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if ids[i : i + 2] == list(pair):
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def naive_train(text, num_merges, split):
    """minbpe's rule: a dict of counts in first-occurrence order, `max` keeps the first of a tie."""
    chunks = [list(c.encode("utf-8")) for c in split(text)]
    merges = []
    for k in range(num_merges):
        stats = {}
        for ids in chunks:
            for pair in zip(ids, ids[1:]):
                stats[pair] = stats.get(pair, 0) + 1
        if not stats:
            break
        pair = max(stats, key=stats.get)
        chunks = [naive_merge(ids, pair, 256 + k) for ids in chunks]
        merges.append((pair, 256 + k))
    return merges, chunks


# -- the algorithm on hand-worked examples ---------------------------------------------------------


def test_count_and_merge_pairs():
    assert count_pairs([1, 2, 3, 1, 2]) == {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    assert count_pairs(list(b"aaaa")) == {(97, 97): 3}  # overlapping occurrences all count
    assert merge_pair(list(b"aaaa"), (97, 97), 256) == [256, 256]
    assert merge_pair(list(b"aaa"), (97, 97), 256) == [256, 97]  # left to right, no overlap
    assert merge_pair([], (1, 2), 3) == []


def test_aaabdaaabac_merge_order():
    # aaabdaaabac: (a,a) occurs 4 times (overlaps count) -> Z=256: Z a b d Z a b a c.
    # (Z,a) and (a,b) tie at 2; (Z,a) occurs first -> Y=257: Y b d Y b a c. (Y,b) -> X=258:
    # X d X a c. Now every pair occurs once, so each round merges the first pair: X d -> 259,
    # 259 X -> 260, 260 a -> 261, 261 c -> 262, and one token is left.
    tok = BPETokenizer(pattern=None)
    with pytest.warns(UserWarning, match="no adjacent pair is left"):
        tok.train("aaabdaaabac", vocab_size=300)
    a, b, c, d = 97, 98, 99, 100
    assert tok.merges == [
        ((a, a), 256),
        ((256, a), 257),
        ((257, b), 258),
        ((258, d), 259),
        ((259, 258), 260),
        ((260, a), 261),
        ((261, c), 262),
    ]
    assert tok.vocab_size == 263 and tok.vocab[262] == b"aaabdaaabac"
    assert tok.encode("aaabdaaabac") == [262]
    assert tok.encode("aaaa") == [256, 256]
    assert tok.encode("aaab") == [258]  # (a,a) first, then (Z,a), then (Y,b)


def test_tie_goes_to_first_occurrence_across_chunks():
    # gpt2 chunks: "ba", " ab", " ab", " ba". (b,a), (' ',a) and (a,b) all occur twice; (b,a)
    # occurs first in the text though it is neither the smallest pair nor in the most chunks.
    tok = BPETokenizer("gpt2")
    with pytest.warns(UserWarning):
        tok.train("ba ab ab ba", vocab_size=270)
    sp, a, b = 32, 97, 98
    assert tok.merges == [((b, a), 256), ((sp, a), 257), ((257, b), 258), ((sp, 256), 259)]


def test_ties_follow_current_merged_text_not_lexicographic_order():
    tok = BPETokenizer(pattern=None)
    tok.train("zzyyzzyy", vocab_size=257)
    assert tok.merges == [((122, 122), 256)]  # (z,z) first in the text, though (y,y) < (z,z)


def test_pairs_never_cross_chunks():
    tok = BPETokenizer("gpt2")
    with pytest.warns(UserWarning):
        tok.train("a b a b a b", vocab_size=300)
    # chunks "a", " b", " a", " b", " a", " b": " b" (3), then " a" (2); never "a" + " "
    assert tok.merges == [((32, 98), 256), ((32, 97), 257)]


@pytest.mark.parametrize("pattern", [None, "gpt2", "cl100k"])
@given(
    text=st.text(alphabet=st.sampled_from("ab c\n'sé中😀1"), max_size=60),
    num_merges=st.integers(0, 30),
)
def test_train_matches_from_scratch_oracle(pattern, text, num_merges):
    """Incremental counting must learn exactly what recounting from scratch learns."""
    split = get_splitter(pattern)
    want_merges, want_chunks = naive_train(text, num_merges, split)
    tok = BPETokenizer(pattern)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # short texts may run out of pairs
        tok.train(text, 256 + num_merges)
    assert tok.merges == want_merges
    # encoding the training text by rank reproduces the merged training text
    assert tok.encode_ordinary(text) == [i for ids in want_chunks for i in ids]


def test_train_merges_function_does_not_modify_its_input():
    chunks = [[97, 97, 97], [98, 97]]
    assert train_merges(chunks, [2, 1], 5) == [(97, 97), (256, 97), (98, 97)]
    assert chunks == [[97, 97, 97], [98, 97]]


def test_encode_chunk_merges_lowest_rank_first():
    # (b,c) has the lower rank, so "abc" becomes a + bc, and (a,b) never applies
    ranks, ids = {(98, 99): 0, (97, 98): 1}, {(98, 99): 256, (97, 98): 257}
    assert encode_chunk(list(b"abc"), ranks, ids) == [97, 256]
    assert encode_chunk([], ranks, ids) == [] and encode_chunk([97], ranks, ids) == [97]


def test_early_stop_warns_and_keeps_what_it_learned():
    tok = BPETokenizer(pattern=None)
    with pytest.warns(UserWarning, match="stopped at vocab_size 257 of the 1000"):
        tok.train("ab", vocab_size=1000)
    assert tok.vocab_size == 257
    tok.train("", vocab_size=256)  # nothing asked, nothing warned
    assert tok.merges == []


def test_retraining_starts_from_bytes():
    tok = BPETokenizer()
    tok.train("aaaa aaaa", 258)
    tok.train("bbbb bbbb", 257)
    assert tok.merges == [((98, 98), 256)]


# -- round trips ---------------------------------------------------------------------------------


@pytest.mark.parametrize("pattern", ["gpt2", "cl100k", None])
@given(text=st.text() | texts)
def test_decode_encode_round_trip(pattern, text):
    tok = trained(pattern)
    ids = tok.encode_ordinary(text)
    assert tok.decode(ids) == text
    assert tok.encode(text, disallowed_special=()) == ids


@pytest.mark.parametrize(
    "text",
    [
        "",
        "a" * 10000,
        " " * 1000,
        "\n\n\t  \r\n \r\n",
        "\r\n",
        "中文文本的分词测试" * 20,
        "😀👍🏽👨‍👩‍👧",
        "e\u0301\u0302\u0303 Z\u0335\u0336",
        "ſ'S 'LL 'll",
        "\x00\x01\x7f\xff",
    ],
)
def test_round_trip_adversarial(text):
    for pattern in ("gpt2", "cl100k"):
        tok = trained(pattern)
        assert tok.decode(tok.encode(text)) == text


def test_catastrophically_repetitive_text_is_fast_and_compact():
    tok = BPETokenizer()
    tok.train("a" * 64, vocab_size=262)  # learns a, aa, aaaa, ... 2**6
    ids = tok.encode("a" * 10000)
    assert tok.decode(ids) == "a" * 10000 and len(ids) < 10000 // 32 + 10


def test_multibyte_training_merges_bytes_across_characters():
    # 中 = e4 b8 ad, 文 = e6 96 87. Every pair occurs 4 times, so merges follow the text:
    # e4 b8, then + ad (= 中), then + e6, then + 96; tokens need not end on a character boundary.
    tok = BPETokenizer("gpt2")
    tok.train("中文中文中文 中文", 260)
    assert tok.merges == [
        ((228, 184), 256),
        ((256, 173), 257),
        ((257, 230), 258),
        ((258, 150), 259),
    ]
    assert tok.vocab[257] == "中".encode()
    assert tok.encode("中文") == [259, 0x87] and tok.decode([259]) == "中\ufffd"


def test_lone_surrogates_become_replacement_characters():
    tok = trained()
    assert tok.decode(tok.encode("a\ud800b")) == "a\ufffdb"


# -- special tokens --------------------------------------------------------------------------------


def test_special_tokens_follow_tiktoken_rules():
    tok = trained()
    eot = tok.special_tokens[EOT]
    text = f"hi{EOT}there"
    assert tok.encode(text, allowed_special="all") == [
        *tok.encode_ordinary("hi"),
        eot,
        *tok.encode_ordinary("there"),
    ]
    assert tok.encode(text, allowed_special={EOT}) == tok.encode(text, allowed_special="all")
    assert tok.encode(text, disallowed_special=()) == tok.encode_ordinary(text)
    assert eot not in tok.encode_ordinary(text)
    with pytest.raises(
        ValueError, match=r"disallowed special token '<\|endoftext\|>' \(position 2"
    ):
        tok.encode(text)
    with pytest.raises(ValueError, match="allowed_special names unknown special tokens"):
        tok.encode(text, allowed_special={"<|nope|>"})
    with pytest.raises(TypeError, match="allowed_special must be 'all' or a collection"):
        tok.encode(text, allowed_special="none")
    assert tok.decode([eot]) == EOT and tok.decode_bytes([eot]) == EOT.encode()


def test_special_tokens_longest_match_and_adjacent():
    assert split_on_special("<a><ab><a>", ["<a>", "<ab>"]) == [
        ("<a>", True),
        ("<ab>", True),
        ("<a>", True),
    ]
    assert split_on_special("<ab>", ["<a", "<ab>"]) == [("<ab>", True)]
    assert split_on_special("", ["x"]) == [] and split_on_special("x", []) == [("x", False)]


def test_special_token_collisions():
    with pytest.raises(ValueError, match="already the ordinary token b'A'"):
        BPETokenizer(special_tokens={"<A>": 65})
    with pytest.raises(ValueError, match="collides with another"):
        BPETokenizer(special_tokens={"<a>": 300, "<b>": 300})
    with pytest.raises(ValueError, match=r"needs an id in \[0, 2\*\*31\), got -1"):
        BPETokenizer(special_tokens={"<a>": -1})
    with pytest.raises(ValueError, match=r"needs an id in \[0, 2\*\*31\), got 2147483648"):
        BPETokenizer(special_tokens={"<a>": 2**31})
    with pytest.raises(ValueError, match="needs an int id, got 3.0"):
        BPETokenizer(special_tokens={"<a>": 3.0})
    with pytest.raises(ValueError, match="non-empty str"):
        BPETokenizer(special_tokens={"": 300})
    tok = BPETokenizer(special_tokens={EOT: 300})
    with pytest.raises(ValueError, match=r"special token '<\|endoftext\|>' has id 300, inside"):
        tok.train(CORPUS, vocab_size=400)
    tok = trained()
    with pytest.raises(ValueError, match="already the ordinary token"):
        tok.register_special_tokens({"<x>": 300})


# -- decoding and bad input ------------------------------------------------------------------------


def test_decode_partial_utf8_replaces_never_raises():
    tok = BPETokenizer()
    zhong = list("中".encode())
    assert tok.decode(zhong[:2]) == "\ufffd"
    assert tok.decode_bytes(zhong[:2]) == bytes(zhong[:2])
    assert tok.decode(zhong) == "中"
    assert tok.decode([]) == "" and tok.decode_bytes([]) == b""


def test_bad_input_errors():
    tok = trained()
    with pytest.raises(
        ValueError, match=r"token id 5000 out of range for n_vocab 361 \(position 1\)"
    ):
        tok.decode([1, 5000])
    with pytest.raises(ValueError, match="token id -1 out of range"):
        tok.decode([-1])
    with pytest.raises(TypeError):
        tok.decode([1.5])
    with pytest.raises(TypeError, match="text must be str, got bytes"):
        tok.encode(b"bytes")
    with pytest.raises(TypeError, match="text must be str, got NoneType"):
        tok.encode_ordinary(None)
    fresh = BPETokenizer()
    with pytest.raises(ValueError, match="vocab_size must be >= 256 .* got 100"):
        fresh.train("abc", 100)
    with pytest.raises(TypeError, match="vocab_size must be an int, got float"):
        fresh.train("abc", 300.0)
    with pytest.raises(TypeError, match="text must be str, got list"):
        fresh.train(["abc"], 300)


def test_gap_in_vocabulary_is_reported():
    # special tokens above the ordinary ids leave a gap: 256 is below n_vocab yet no token
    tok = BPETokenizer(special_tokens={EOT: 400})
    with pytest.raises(ValueError, match=r"token id 256 \(position 0\) is not in the vocabulary"):
        tok.decode([256])


# -- the project's file format -------------------------------------------------------------------


@pytest.mark.parametrize("pattern", ["gpt2", "cl100k", None, re.compile(r"\w+|\s+|[^\w\s]+", re.I)])
def test_save_load_round_trip(tmp_path, pattern):
    tok = BPETokenizer(pattern, special_tokens={EOT: 400, "<|pad|>\n": 401})
    tok.train(CORPUS, 300)
    path = tmp_path / "tok.bpe"
    tok.save(path)
    back = BPETokenizer.load(path)
    assert back.merges == tok.merges and back.special_tokens == tok.special_tokens
    if isinstance(pattern, re.Pattern):
        assert back.pattern.pattern == pattern.pattern and back.pattern.flags == pattern.flags
    else:
        assert back.pattern == pattern
    text = CORPUS + EOT + "<|pad|>\n"
    assert back.encode(text, allowed_special="all") == tok.encode(text, allowed_special="all")


def test_load_rejects_bad_files(tmp_path):
    tok = trained()
    path = tmp_path / "tok.bpe"
    tok.save(path)
    good = path.read_text(encoding="utf-8")
    lines = good.split("\n")

    def load(text=None, raw=None):
        bad = tmp_path / "bad.bpe"
        if raw is not None:
            bad.write_bytes(raw)
        else:
            bad.write_text(text, encoding="utf-8")
        return BPETokenizer.load(bad)

    with pytest.raises(TokenizerFileError, match="format version '2', this code reads v1"):
        load(good.replace("bpe v1", "bpe v2", 1))
    with pytest.raises(TokenizerFileError, match="not a model-archaeology bpe file"):
        load("hello\n")
    with pytest.raises(TokenizerFileError, match="not a model-archaeology bpe file"):
        load("")
    with pytest.raises(TokenizerFileError, match="truncated"):
        load("\n".join(lines[:-5]) + "\n")
    with pytest.raises(TokenizerFileError, match="truncated"):
        load("\n".join(lines[:2]))
    with pytest.raises(TokenizerFileError, match="corrupt"):
        load("\n".join([lines[0], "{not json", *lines[2:]]))
    with pytest.raises(TokenizerFileError, match="corrupt"):
        load("\n".join([*lines[:2], "1 x 256", *lines[3:]]))
    with pytest.raises(TokenizerFileError, match="corrupt"):
        load("\n".join([*lines[:2], "9999 1 256", *lines[3:]]))  # refers to no token
    with pytest.raises(TokenizerFileError, match="not UTF-8"):
        load(raw=good.encode()[:40] + b"\xff\xfe" + good.encode()[40:])


# -- tiktoken's rank file and tiktoken itself ------------------------------------------------------


def read_ranks(path):
    """A rank file read by tiktoken's own loader, with its download cache switched off."""
    saved = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = ""  # read the local file, cache nothing
    try:
        return tiktoken.load.load_tiktoken_bpe(str(path))
    finally:
        if saved is None:
            del os.environ["TIKTOKEN_CACHE_DIR"]
        else:
            os.environ["TIKTOKEN_CACHE_DIR"] = saved


def tiktoken_encoding(tok, path, pattern):
    """A tiktoken.Encoding built from `tok`'s exported rank file."""
    tok.save_tiktoken(path)
    return tiktoken.Encoding(
        name=f"test-{pattern}",
        pat_str=SPLIT_PATTERNS[pattern],
        mergeable_ranks=read_ranks(path),
        special_tokens=tok.special_tokens,
    )


_encodings = {}


@pytest.mark.parametrize("pattern", ["gpt2", "cl100k", "cl100k_tiktoken"])
@given(text=texts)
def test_ids_equal_tiktoken_on_same_vocabulary(tmp_path_factory, pattern, text):
    tok = trained(pattern)
    if pattern not in _encodings:
        path = tmp_path_factory.mktemp("tiktoken") / "ranks.tiktoken"
        _encodings[pattern] = tiktoken_encoding(tok, path, pattern)
    enc = _encodings[pattern]
    want = enc.encode_ordinary(text)
    assert tok.encode_ordinary(text) == want, first_mismatch(tok.encode_ordinary(text), want)
    assert tok.encode(text, allowed_special="all") == enc.encode(text, allowed_special="all")
    assert tok.decode(want) == enc.decode(want)


def test_long_s_contraction_agrees_with_tiktoken(tmp_path):
    # "'ſx": cl100k's case-insensitive "'s" also takes U+017F, so the chunks are "'ſ", "x"
    tok = BPETokenizer("cl100k")
    tok.train("ſxſxſx'ſ", 259)  # learns the bytes of ſ, then ſx, then 'ſ
    enc = tiktoken_encoding(tok, tmp_path / "r.tiktoken", "cl100k")
    assert tok.encode("'ſx") == enc.encode("'ſx") == [*tok.encode("'ſ"), ord("x")]


def test_tiktoken_rank_file_round_trip(tmp_path):
    tok = trained("cl100k")
    path = tmp_path / "r.tiktoken"
    tok.save_tiktoken(path)
    line = path.read_text().split("\n")[300]
    assert line == f"{base64.b64encode(tok.vocab[300]).decode()} 300"
    back = BPETokenizer.load_tiktoken(path, pattern="cl100k", special_tokens=tok.special_tokens)
    assert back.merges == tok.merges and back.vocab == tok.vocab
    assert back.encode(CORPUS + EOT, allowed_special="all") == tok.encode(
        CORPUS + EOT, allowed_special="all"
    )


def test_tiktoken_file_with_permuted_byte_ranks(tmp_path):
    """Real rank files (GPT-2's) do not rank byte b as b; our ids must follow the file's ranks."""
    tok = trained("gpt2", special=False)
    order = list(bytes_to_unicode())  # GPT-2's rank order of the single bytes
    rank_of = {token_id: order.index(token_id) for token_id in range(256)}
    rank_of.update({token_id: token_id for token_id in tok.vocab if token_id >= 256})
    path = tmp_path / "permuted.tiktoken"
    path.write_text(
        "".join(f"{base64.b64encode(tok.vocab[i]).decode()} {rank_of[i]}\n" for i in tok.vocab)
    )
    ours = BPETokenizer.load_tiktoken(path, pattern="gpt2")
    enc = tiktoken.Encoding(
        name="perm",
        pat_str=SPLIT_PATTERNS["gpt2"],
        mergeable_ranks=read_ranks(path),
        special_tokens={},
    )
    text = CORPUS + "\x00\xff unseen wörds 99"
    assert ours.encode(text) == enc.encode_ordinary(text)
    assert ours.encode(text) == [rank_of[i] for i in tok.encode(text)]
    assert ours.decode(ours.encode(text)) == text


def test_tiktoken_bad_files(tmp_path):
    path = tmp_path / "bad.tiktoken"
    path.write_text("not-base64!! 0\n")
    with pytest.raises(TokenizerFileError, match="line 1 is not 'base64 rank'"):
        BPETokenizer.load_tiktoken(path, pattern="gpt2")
    path.write_text("".join(f"{base64.b64encode(bytes([b])).decode()} {b}\n"
                            for b in range(255)))  # fmt: skip
    with pytest.raises(TokenizerFileError, match=r"single bytes missing .*\[255\]"):
        BPETokenizer.load_tiktoken(path, pattern="gpt2")
    b64 = base64.b64encode
    lines = [f"{b64(bytes([b])).decode()} {b}" for b in range(256)]
    path.write_text("\n".join([*lines, f"{b64(b'abc').decode()} 256"]))  # no "ab" or "bc" first
    with pytest.raises(TokenizerFileError, match="no merge of two lower-ranked tokens"):
        BPETokenizer.load_tiktoken(path, pattern="gpt2")


# -- Hugging Face vocab.json + merges.txt ----------------------------------------------------------


def hf_tokenizer(directory):
    hf = Tokenizer(
        models.BPE.from_file(
            os.path.join(directory, "vocab.json"), os.path.join(directory, "merges.txt")
        )
    )
    # ByteLevel's split is GPT-2's pattern, so the comparison is meaningful for pattern="gpt2" only
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    return hf


_hf = {}


@given(text=texts)
def test_ids_equal_huggingface_tokenizers_under_gpt2(tmp_path_factory, text):
    tok = trained("gpt2")
    if "hf" not in _hf:
        directory = tmp_path_factory.mktemp("hf")
        tok.save_huggingface(directory)
        _hf["hf"] = hf_tokenizer(directory)
    hf = _hf["hf"]
    # HF would read EOT in the text as ordinary characters too, as encode_ordinary does
    want = hf.encode(text).ids
    assert tok.encode_ordinary(text) == want, first_mismatch(tok.encode_ordinary(text), want)
    assert hf.decode(want) == tok.decode(want)


def test_huggingface_export_import(tmp_path):
    tok = trained("gpt2")
    tok.save_huggingface(tmp_path)
    vocab = json.loads((tmp_path / "vocab.json").read_text(encoding="utf-8"))
    merges = (tmp_path / "merges.txt").read_text(encoding="utf-8").split("\n")
    assert merges[0] == "#version: 0.2" and vocab[EOT] == tok.special_tokens[EOT]
    assert vocab["Ġ"] == 32 and vocab["a"] == 97
    back = BPETokenizer.load_huggingface(tmp_path)
    assert back.merges == tok.merges and back.special_tokens == tok.special_tokens
    assert back.encode(CORPUS + EOT, allowed_special="all") == tok.encode(
        CORPUS + EOT, allowed_special="all"
    )


def test_huggingface_bad_files(tmp_path):
    trained("gpt2").save_huggingface(tmp_path)
    (tmp_path / "merges.txt").write_text("#version: 0.2\nĠ nosuchtoken\n")
    with pytest.raises(TokenizerFileError, match="merges.txt: line 2: the right token 'nosuchto"):
        BPETokenizer.load_huggingface(tmp_path)


def test_bytes_to_unicode_is_gpt2s_map():
    mapping = bytes_to_unicode()
    assert len(set(mapping.values())) == 256
    assert mapping[32] == "Ġ" and mapping[10] == "Ċ" and mapping[ord("!")] == "!"
    assert all(unicodedata.category(c)[0] != "C" and not c.isspace() for c in mapping.values())


# -- the script ---------------------------------------------------------------------------------


def test_train_tokenizer_script(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS, encoding="utf-8")
    out = tmp_path / "tok.bpe"
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    result = subprocess.run(
        [sys.executable, os.path.join(root, "scripts", "train_tokenizer.py"), "--input",
         str(corpus), "--vocab-size", "300", "--out", str(out), "--sample", "中文 hello"],
        capture_output=True, text=True, cwd=root, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "bytes per token" in result.stdout and "中文 hello" in result.stdout
    assert BPETokenizer.load(out).vocab_size == 300

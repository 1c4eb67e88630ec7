"""fast's BPE on its own: the kernels against the reference's functions, both merge paths,
batches, the cache, long inputs that must stay fast, numpy ids, and the fallbacks."""

import base64
import re
import time
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference
from fast.bpe import BPETokenizer, TokenizerFileError
from fast.cpu import bpe as kernels
from fast.pretokenize import MODES, get_splitter, split_batch
from reference.bpe import train_merges

EOT = "<|endoftext|>"
CORPUS = (
    "The quick brown fox jumps over the lazy dog. It's the dog's day; we'll see.\n"
    "def encode(self, text):\n    return [ord(c) for c in text]  # 12345\n\n"
    "中文文本的分词测试，你好世界。 emoji 😀😀👍🏽 café naïve \t\r\n  indented   spaces\n"
) * 4
texts = st.text(alphabet=st.sampled_from("ab c\n'sé中😀1"), max_size=80) | st.text(max_size=30)

_trained = {}


def trained(pattern="gpt2", vocab_size=400):
    key = (pattern, vocab_size)
    if key not in _trained:
        pair = []
        for cls in (BPETokenizer, reference.BPETokenizer):
            tok = cls(pattern, special_tokens={EOT: 1000})
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                tok.train(CORPUS, vocab_size)
            pair.append(tok)
        _trained[key] = tuple(pair)
    return _trained[key]


# -- the training kernel against reference.bpe.train_merges ---------------------------------------

chunk_lists = st.lists(
    st.tuples(st.lists(st.integers(0, 5), max_size=12), st.integers(1, 4)), max_size=12
)


@given(chunks=chunk_lists, num_merges=st.integers(0, 20))
def test_train_kernel_matches_reference_train_merges(chunks, num_merges):
    """Distinct chunks with weights (as training gives them), ids from a tiny alphabet: ties."""
    ids = [c for c, _ in chunks]
    counts = [n for _, n in chunks]
    want = train_merges(ids, counts, num_merges, first_id=10)
    flat = np.array([i for c in ids for i in c], np.int64)
    starts = np.cumsum([0] + [len(c) for c in ids]).astype(np.int64)
    got = kernels.train_merges(flat, starts, np.array(counts, np.int64), num_merges, 10)
    assert [tuple(p) for p in got.tolist()] == want


def test_count_chunks_keeps_distinct_chunks_in_order_of_first_appearance():
    # 180,000 chunks, 5 distinct; memory follows the 3 distinct ones that hold a pair
    data, bounds, _ = split_batch(["hello world, hello world!" * 30000], MODES["gpt2"])
    ids, starts, counts = kernels.count_chunks(data, bounds)
    chunks = [bytes(ids[a:b].tolist()) for a, b in zip(starts[:-1], starts[1:])]
    assert chunks == [b"hello", b" world", b" hello"]  # then ",", "!": one byte, no pair
    assert counts.tolist() == [30000, 60000, 30000]


@pytest.mark.parametrize("text", ["abcd" * 5000, "aab" * 3000 + "ba" * 4000])
def test_long_repetitive_chunk_trains_exactly_and_fast(text):
    """pattern=None: the whole text is one chunk, every merge touches thousands of places."""
    tok, ref = BPETokenizer(pattern=None), reference.BPETokenizer(pattern=None)
    for t in (tok, ref):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            t.train(text, 300)
    assert tok.merges == ref.merges
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        tok.train(text * 100, 300)  # 2 MB in one chunk: only the pairs a merge touches change
    assert time.perf_counter() - start < 10.0
    assert tok.decode(tok.encode(text * 3)) == text * 3


# -- encoding: the short and the long merge paths, the cache, batches ----------------------------


class HeapOnly(BPETokenizer):
    SHORT_CHUNK = 1  # every chunk of two bytes or more takes the heap path


@pytest.mark.parametrize("pattern", ["gpt2", None])
@given(text=texts)
def test_short_and_heap_paths_agree_with_the_reference(pattern, text):
    tok, ref = trained(pattern)
    heap = HeapOnly(pattern)
    heap._set_vocabulary(tok.byte_ids, tok.merges)
    want = ref.encode_ordinary(text)
    assert tok.encode_ordinary(text) == want
    assert heap.encode_ordinary(text) == want


def test_long_repetitive_input_is_fast_and_exact():
    tok = BPETokenizer()
    tok.train("a" * 64, vocab_size=262)  # a, aa, aaaa, ... 2**6
    ref = reference.BPETokenizer()
    ref._set_vocabulary(tok.byte_ids, tok.merges)
    tok.encode("a" * 100)  # compile
    start = time.perf_counter()
    ids = tok.encode("a" * 100000)
    assert time.perf_counter() - start < 1.0  # O(n log n), not O(n^2)
    assert ids == ref.encode("a" * 100000)
    assert len(ids) == 100000 // 64 + 1  # 1562 tokens of 64 a, one of 32


def test_cache_repeats_are_exact():
    tok, ref = trained()
    text = ("the dog the dog's the " * 1000) + "thedog " * 10
    assert tok.encode_ordinary(text) == ref.encode_ordinary(text)


def test_encode_chunk_twin():
    tok, ref = trained()
    for chunk in [b"", b"a", b" the", "中文".encode(), b"\xff\xfe", b"x" * 300]:
        assert tok._encode_chunk(chunk) == ref._encode_chunk(chunk)


def test_encode_batch_matches_encode():
    tok, ref = trained()
    batch = ["", "hello", f"a{EOT}b", CORPUS, "中文 😀", "hello", "\ud800x"]
    assert tok.encode_ordinary_batch(batch) == [ref.encode_ordinary(t) for t in batch]
    want = [ref.encode(t, allowed_special="all") for t in batch]
    assert tok.encode_batch(batch, allowed_special="all") == want
    assert tok.encode_batch(batch, disallowed_special=()) == [
        ref.encode(t, disallowed_special=()) for t in batch
    ]
    with pytest.raises(ValueError, match="disallowed special token"):
        tok.encode_batch(batch)
    with pytest.raises(ValueError, match="allowed_special names unknown special tokens"):
        tok.encode_batch(["x"], allowed_special={"<|nope|>"})
    with pytest.raises(TypeError, match="texts must be a collection of str, got str"):
        tok.encode_batch("hello")
    with pytest.raises(TypeError, match="text must be str, got int"):
        tok.encode_ordinary_batch(["a", 1])
    assert tok.encode_batch([]) == []


def test_user_re_pattern_splits_in_python_and_encodes_in_the_kernel():
    pattern = re.compile(r"\w+|\s+|[^\w\s]+")
    tok, ref = BPETokenizer(pattern), reference.BPETokenizer(pattern)
    tok.train(CORPUS, 300)
    ref.train(CORPUS, 300)
    assert tok.merges == ref.merges
    assert tok.encode_ordinary_batch([CORPUS, "", "x"]) == [
        ref.encode_ordinary(t) for t in (CORPUS, "", "x")
    ]


# -- decoding ------------------------------------------------------------------------------------


def test_decode_takes_numpy_ids_and_reports_bad_ids_as_the_reference():
    tok, ref = trained()
    ids = tok.encode(CORPUS + EOT, allowed_special="all")
    for form in (ids, tuple(ids), np.array(ids), np.array(ids, np.int32), iter(ids)):
        assert tok.decode(form) == CORPUS + EOT
    assert tok.decode(np.array([True, False])) == ref.decode([1, 0])
    assert tok.decode([]) == "" and tok.decode(np.array([], np.int64)) == ""
    for bad in ([1, 5000], [-1], [1.5], [700], np.array([2**63], np.uint64)):
        with pytest.raises((ValueError, TypeError)) as got:
            tok.decode(bad)
        with pytest.raises(type(got.value), match=re.escape(str(got.value))):
            ref.decode(list(bad))


def test_sparse_special_ids_fall_back_to_the_reference_decoder():
    tok = BPETokenizer(special_tokens={EOT: 10**9})
    assert tok.decode([104, 10**9]) == "h" + EOT
    with pytest.raises(ValueError, match="token id 256 .* is not in the vocabulary"):
        tok.decode([256])


# -- ids outside the kernels' range are refused, as the reference refuses them --------------------


def test_huge_ids_from_a_rank_file_are_refused(tmp_path):
    tok, _ = trained(vocab_size=300)
    path = tmp_path / "big.tiktoken"
    rank = {i: i if i < 256 else 2**31 + i for i in tok.vocab}
    path.write_text("".join(f"{base64.b64encode(tok.vocab[i]).decode()} {rank[i]}\n"
                            for i in tok.vocab))  # fmt: skip
    for backend in (BPETokenizer, reference.BPETokenizer):
        with pytest.raises(TokenizerFileError, match=r"line 257, field rank must be a token id in "
                           r"\[0, 2\*\*31\), got 2147483904"):  # fmt: skip
            backend.load_tiktoken(path, pattern="gpt2")


# -- splitting -----------------------------------------------------------------------------------


@pytest.mark.parametrize("pattern", ["gpt2", "cl100k", "cl100k_tiktoken", None])
@given(text=st.text() | texts)
def test_splitter_matches_reference(pattern, text):
    assert get_splitter(pattern)(text) == reference.get_splitter(pattern)(text)


def test_splitter_errors():
    with pytest.raises(ValueError, match="pattern must be one of"):
        get_splitter("gpt5")
    with pytest.raises(TypeError, match="text must be str, got bytes"):
        get_splitter("gpt2")(b"abc")

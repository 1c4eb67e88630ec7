"""Byte-level BPE, fast: the reference's tokenizer with its hot loops in Numba.

`BPETokenizer` is `reference.BPETokenizer` (same vocabulary, special tokens, file formats, errors:
they are inherited, not rewritten) with these parts replaced:

- training: the text is split by the Numba scanners (`fast/pretokenize.py`), its distinct chunks
  are counted in a hash table over the UTF-8 bytes, and the merges are learned by
  `fast/cpu/bpe.py:train_merges`, which updates only the pair counts a merge touches and keeps the
  reference's tie-break (the earliest first occurrence) with a lazily corrected priority queue.
- encoding: a whole batch of texts is split and encoded in one kernel call; each distinct chunk is
  encoded once (rank-based merging, O(n log n) for long chunks) and copied on later occurrences.
- decoding: one gather over a byte pool.

Extra methods (not in the reference): `encode_ordinary_batch(texts)` and `encode_batch(texts, ...)`.
Ids come back as lists of ints, as from the reference (and tiktoken), so results compare with ==.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable

import numpy as np

from reference import bpe as _ref
from reference.bpe import TokenizerFileError, clean_text

from .cpu import bpe as _k
from .pretokenize import split_batch, split_mode

__all__ = ["BPETokenizer", "TokenizerFileError"]

MAX_ID = _ref.MAX_ID  # the kernels pack a pair of ids into one int64


class BPETokenizer(_ref.BPETokenizer):
    """Byte-level BPE with the reference's API and results, trained and applied in Numba.

    >>> tok = BPETokenizer(pattern="gpt2", special_tokens={"<|endoftext|>": 300})
    >>> tok.train("low lower lowest " * 50, vocab_size=260)
    >>> tok.decode(tok.encode("lowest<|endoftext|>", allowed_special="all"))
    'lowest<|endoftext|>'
    """

    SHORT_CHUNK = 64  # bytes: shorter chunks merge by an O(n^2) scan, longer ones through a heap

    def __init__(
        self,
        pattern: str | re.Pattern | None = "gpt2",
        special_tokens: dict[str, int] | None = None,
    ) -> None:
        self._encoder = self._decoder = None
        super().__init__(pattern, special_tokens)
        self._mode = split_mode(pattern)  # None: a user's re.Pattern, split by Python's re

    # -- vocabulary: the reference's, plus the packed tables the kernels read ------------------

    def _set_vocabulary(self, byte_ids: list[int], merges: list[tuple[_ref.Pair, int]]) -> None:
        super()._set_vocabulary(byte_ids, merges)
        self._encoder = self._decoder = None  # rebuilt on first use

    def register_special_tokens(self, special_tokens: dict[str, int]) -> None:
        super().register_special_tokens(special_tokens)
        self._decoder = None

    def _encoding_tables(self):
        """(byte_ids, merge table) for `encode_chunks`. Every id lies in [0, 2**31), as
        `_set_vocabulary` requires, so each pair packs into one int64."""
        if self._encoder is None:
            pairs = [pair for pair, _ in self.merges]
            made = [new_id for _, new_id in self.merges]
            left = np.array([a for a, _ in pairs], np.int64)
            right = np.array([b for _, b in pairs], np.int64)
            table = _k.merge_table(left, right, np.array(made, np.int64))
            self._encoder = (np.array(self.byte_ids, np.int64), table)
        return self._encoder

    def _decoding_table(self):
        """(tok_start, tok_len, pool) for `decode_bytes`, or False when the ids are too sparse
        for a dense table (then the reference's code decodes)."""
        if self._decoder is None:
            tokens = {
                **self.vocab,
                **{i: s.encode("utf-8") for s, i in self.special_tokens.items()},
            }
            size = self.n_vocab
            if min(tokens) < 0 or size > 4 * len(tokens) + 1024:
                self._decoder = False
            else:
                tok_start = np.zeros(size, np.int64)
                tok_len = np.full(size, -1, np.int64)
                ids = list(tokens)
                lengths = np.array([len(tokens[i]) for i in ids], np.int64)
                tok_len[ids] = lengths
                tok_start[ids] = np.cumsum(lengths) - lengths
                pool = np.frombuffer(bytearray(b"".join(tokens.values())), np.uint8)
                self._decoder = (tok_start, tok_len, pool)
        return self._decoder

    # -- training -----------------------------------------------------------------------------

    def train(self, text: str, vocab_size: int) -> None:
        """Learn merges from `text` until there are `vocab_size` ordinary tokens (see the
        reference). Splitting, counting distinct chunks and merging all run in Numba."""
        if self._mode is None:
            # A user's re.Pattern splits in Python; the merges are still learned by the kernel
            # (through _train_merges).
            super().train(text, vocab_size)
            return
        text = clean_text(text)
        # The reference's argument checks, word for word (the conformance suite compares them).
        if not isinstance(vocab_size, int) or isinstance(vocab_size, bool):
            raise TypeError(f"vocab_size must be an int, got {type(vocab_size).__name__}")
        if vocab_size < 256:
            raise ValueError(f"vocab_size must be >= 256 (the single bytes), got {vocab_size}")
        for name, token_id in self.special_tokens.items():
            if token_id < vocab_size:
                raise ValueError(
                    f"special token {name!r} has id {token_id}, inside the ids 0..{vocab_size - 1} "
                    f"that training to vocab_size {vocab_size} fills; give it an id >= {vocab_size}"
                )
        data, bounds, _ = split_batch([text], self._mode)
        ids, starts, counts = _k.count_chunks(data, bounds)
        num_merges = min(vocab_size - 256, MAX_ID)  # (more merges than positions never happen)
        pairs = _k.train_merges(ids, starts, counts, num_merges, 256).tolist()
        self._set_vocabulary(
            list(range(256)), [((a, b), 256 + k) for k, (a, b) in enumerate(pairs)]
        )
        if len(self.vocab) < vocab_size:
            warnings.warn(
                f"training stopped at vocab_size {len(self.vocab)} of the {vocab_size} asked for: "
                "no adjacent pair is left in the text",
                stacklevel=2,
            )

    def _train_merges(self, chunks: list[list[int]], counts: list[int], num_merges: int):
        """The reference's hot loop on the Numba kernel: chunks packed into one array."""
        lengths = np.array([len(ids) for ids in chunks], np.int64)
        starts = np.zeros(len(chunks) + 1, np.int64)
        np.cumsum(lengths, out=starts[1:])
        ids = np.fromiter((i for chunk in chunks for i in chunk), np.int64, int(starts[-1]))
        num_merges = min(num_merges, len(ids))  # each merge removes a position, at least
        if len(ids) and (ids.min() < 0 or ids.max() + num_merges > MAX_ID):
            return super()._train_merges(chunks, counts, num_merges)  # ids the kernel cannot pack
        weights = np.array(counts, np.int64)
        merges = _k.train_merges(ids, starts, weights, num_merges, 256)
        return [(a, b) for a, b in merges.tolist()]

    # -- encoding -----------------------------------------------------------------------------

    def _encode_texts(self, texts: list[str]) -> list[list[int]]:
        """Encode cleaned texts as ordinary text, all in one kernel call."""
        tables = self._encoding_tables()
        if self._mode is None:  # a user's re.Pattern: split in Python, encode in the kernel
            chunks = [self._split(text) for text in texts]
            pieces = [chunk.encode("utf-8") for text_chunks in chunks for chunk in text_chunks]
            data = np.frombuffer(bytearray(b"".join(pieces)), np.uint8)
            bounds = np.zeros(len(pieces) + 1, np.int64)
            np.cumsum([len(p) for p in pieces], out=bounds[1:])
            groups = np.zeros(len(texts) + 1, np.int64)
            np.cumsum([len(c) for c in chunks], out=groups[1:])
        else:
            data, bounds, groups = split_batch(texts, self._mode)
        ids, offsets = _k.encode_chunks(data, bounds, groups, *tables, self.SHORT_CHUNK)
        if len(texts) == 1:
            return [ids.tolist()]
        cuts = offsets.tolist()
        return [ids[a:b].tolist() for a, b in zip(cuts, cuts[1:])]

    def _encode_chunk(self, chunk: bytes) -> list[int]:
        """The encoding hot loop on one chunk (the batch kernel with a batch of one)."""
        tables = self._encoding_tables()
        data = np.frombuffer(bytearray(chunk), np.uint8)
        bounds = np.array([0, len(chunk)], np.int64)
        groups = np.array([0, 1], np.int64)
        ids, _ = _k.encode_chunks(data, bounds, groups, *tables, self.SHORT_CHUNK)
        return ids.tolist()

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode `text`, treating special-token text as ordinary text.

        >>> BPETokenizer().encode_ordinary("hi")  # untrained: one id per byte
        [104, 105]
        """
        return self._encode_texts([clean_text(text)])[0]

    def encode_ordinary_batch(self, texts: Iterable[str]) -> list[list[int]]:
        """`[encode_ordinary(t) for t in texts]` in one kernel call (chunks cached across texts).

        >>> BPETokenizer().encode_ordinary_batch(["hi", ""])
        [[104, 105], []]
        """
        return self._encode_texts(self._clean_texts(texts))

    def encode_batch(
        self,
        texts: Iterable[str],
        allowed_special: str | Iterable[str] = frozenset(),
        disallowed_special: str | Iterable[str] = "all",
    ) -> list[list[int]]:
        """`[encode(t, allowed_special, disallowed_special) for t in texts]`, batched.

        Texts holding no special-token text are encoded in one kernel call; the others go through
        `encode`, which applies the reference's special-token rules (and raises its errors).
        """
        texts = self._clean_texts(texts)
        self.encode("", allowed_special, disallowed_special)  # the reference's argument checks
        names = list(self.special_tokens)
        plain = [k for k, text in enumerate(texts) if not any(name in text for name in names)]
        out: list[list[int] | None] = [None] * len(texts)
        for k, ids in zip(plain, self._encode_texts([texts[k] for k in plain])):
            out[k] = ids
        for k, text in enumerate(texts):
            if out[k] is None:
                out[k] = self.encode(text, allowed_special, disallowed_special)
        return out

    @staticmethod
    def _clean_texts(texts: Iterable[str]) -> list[str]:
        if isinstance(texts, (str, bytes)):
            raise TypeError(f"texts must be a collection of str, got {type(texts).__name__}")
        return [clean_text(text) for text in texts]

    # -- decoding -----------------------------------------------------------------------------

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The bytes of a sequence of ids (lists or numpy arrays); special tokens give their
        UTF-8 text. Invalid ids raise the reference's errors (its code reports them).

        >>> BPETokenizer().decode_bytes([104, 105])
        b'hi'
        """
        if not isinstance(ids, (list, tuple, np.ndarray)):
            ids = list(ids)  # an iterator can be read only once
        table = self._decoding_table()
        array = _as_id_array(ids)
        if table and array is not None:
            out, bad = _k.decode_bytes(array, *table)
            if bad < 0:
                return out.tobytes()
        return super().decode_bytes(ids)  # not plain ids, or an invalid one: the reference says why


def _as_id_array(ids) -> np.ndarray | None:
    """`ids` as a 1-d int64 array, or None when they are not plainly integers (floats, objects)."""
    try:
        array = np.asarray(ids)
    except (ValueError, TypeError):
        return None
    if array.ndim != 1:
        return None
    if array.size == 0:
        return np.empty(0, np.int64)
    if array.dtype.kind == "u" and array.dtype.itemsize == 8:
        return None  # may not fit int64; the reference's code checks each id
    if array.dtype.kind not in "biu":
        return None
    return array.astype(np.int64, copy=False)

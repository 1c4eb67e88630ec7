"""Byte-level byte-pair encoding (BPE): the tokenizer that turns text into the ids a model reads.

Start from the 256 single bytes, so every string is representable. Training repeatedly finds the
most frequent adjacent pair of tokens and merges it into a new token; encoding replays the learned
merges on new text, earliest learned first (GPT-2's and tiktoken's algorithm). Text is first cut
into chunks by a pre-tokenization pattern (`reference.pretokenize`), and no pair crosses a chunk
boundary, so tokens never glue a word to the punctuation after it.

Names: `ids` are token ids, a `pair` is `(left_id, right_id)`, `merges` lists `(pair, new_id)`
in the order learned; the rank of a merge is its position in that list.

The pieces the fast backend replaces are the two hot loops, `train_merges` and `encode_chunk`;
it reuses the rest (splitting, special tokens, file formats) through the class below.
"""

from __future__ import annotations

import base64
import binascii
import json
import operator
import os
import re
import warnings
from collections import Counter
from collections.abc import Iterable

from .fileio import atomic_write
from .pretokenize import get_splitter, split_on_special

Pair = tuple[int, int]
FORMAT_NAME = "model-archaeology bpe"
FORMAT_VERSION = 1


MAX_ID = 2**31 - 1  # ids are int32 in tiktoken, Hugging Face and torch's embedding lookups
_ID_TEXT = re.compile(r"[0-9]+")  # an id as a text file spells it: ASCII digits only
_PATTERN_FLAGS = re.IGNORECASE | re.MULTILINE | re.DOTALL | re.VERBOSE | re.ASCII | re.UNICODE


class TokenizerFileError(ValueError):
    """A tokenizer file is truncated, corrupt, of another version, or not a tokenizer file."""


def _show(value: object) -> str:
    """A short repr for an error message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _file_id(value: object, where: str) -> int:
    """`value` if it is a token id (an int in [0, 2**31)), else a TokenizerFileError; `where`
    names the file and the field."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TokenizerFileError(
            f"{where} must be an int token id, got {type(value).__name__} {_show(value)}"
        )
    if not 0 <= value <= MAX_ID:
        raise TokenizerFileError(f"{where} must be a token id in [0, 2**31), got {value}")
    return value


def _check_token_ids(table: dict, field_of, kind: str) -> None:
    """Every key of a token -> id table is non-empty text and every id a token id that no other
    key has; else a TokenizerFileError naming the field (`field_of(token)`)."""
    owner: dict[int, str] = {}
    for token, token_id in table.items():
        field = field_of(token)
        if not token:
            raise TokenizerFileError(f"{field}: a {kind} must be non-empty text")
        if _file_id(token_id, field) in owner:
            raise TokenizerFileError(f"{field}: id {token_id} is also {_show(owner[token_id])}")
        owner[token_id] = token


def _text_id(text: str, where: str) -> int:
    """A token id written as decimal digits in a text file (no sign, no spaces, no '_')."""
    if not _ID_TEXT.fullmatch(text):
        raise TokenizerFileError(f"{where} must be a token id in decimal digits, got {_show(text)}")
    if len(text) > 10:  # more digits than any id in [0, 2**31) has
        raise TokenizerFileError(f"{where} must be a token id in [0, 2**31), got {_show(text)}")
    return _file_id(int(text), where)


def _read_text(path: str | os.PathLike) -> str:
    """A tokenizer file's text; a file that is not UTF-8 raises TokenizerFileError."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            return f.read()
    except UnicodeDecodeError as e:
        raise TokenizerFileError(
            f"{os.fspath(path)}: corrupt tokenizer file (not UTF-8 at byte {e.start})"
        ) from None


def _read_json(text: str, where: str) -> object:
    """Parse JSON text (NaN and Infinity refused), or raise TokenizerFileError naming `where`."""

    def refuse(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    try:
        return json.loads(text, parse_constant=refuse)
    except json.JSONDecodeError as e:
        raise TokenizerFileError(
            f"{where} is not valid JSON (the parser stops at line {e.lineno}, column {e.colno})"
        ) from None
    except (ValueError, RecursionError) as e:
        raise TokenizerFileError(f"{where} is not valid JSON ({_show(e)})") from None


# ---------------------------------------------------------------------------------------------
# The algorithm: counting pairs, merging a pair, training, encoding one chunk
# ---------------------------------------------------------------------------------------------


def count_pairs(ids: list[int]) -> dict[Pair, int]:
    """Count every adjacent pair, overlapping occurrences included, in order of first occurrence.

    >>> count_pairs([1, 2, 3, 1, 2])
    {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    >>> count_pairs([97, 97, 97, 97])  # "aaaa" holds three (a, a) pairs
    {(97, 97): 3}
    """
    counts: dict[Pair, int] = {}
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def merge_pair(ids: list[int], pair: Pair, new_id: int) -> list[int]:
    """Replace each occurrence of `pair` by `new_id`, scanning left to right without overlap.

    >>> merge_pair([1, 2, 3, 1, 2], (1, 2), 4)
    [4, 3, 4]
    >>> merge_pair([97, 97, 97], (97, 97), 256)  # "aaa" -> "aa" + "a"
    [256, 97]
    """
    out = []
    i = 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def train_merges(
    chunks: list[list[int]], counts: list[int], num_merges: int, first_id: int = 256
) -> list[Pair]:
    """Learn up to `num_merges` merges from distinct chunks (byte ids) with their frequencies.

    Each round merges the pair with the highest count; a tie goes to the pair that occurs first
    in the current text (chunks in order of first appearance, then position in the chunk). The
    k-th merge makes token `first_id + k`. Returns fewer merges when no pair remains.

    Counting the distinct chunks once, then updating only the chunks that hold the merged pair,
    keeps a round far cheaper than recounting the whole text.
    >>> train_merges([[97, 97, 97, 98, 100, 97, 97, 97, 98, 97, 99]], [1], 3)
    [(97, 97), (256, 97), (257, 98)]
    """
    chunks = [list(ids) for ids in chunks]  # merged in place below; the caller's lists stay
    pair_counts: dict[Pair, int] = {}  # pair -> occurrences in the whole text
    chunks_with: dict[Pair, set[int]] = {}  # pair -> indices of the chunks that hold it
    for index, (ids, count) in enumerate(zip(chunks, counts)):
        for pair, n in count_pairs(ids).items():
            pair_counts[pair] = pair_counts.get(pair, 0) + n * count
            chunks_with.setdefault(pair, set()).add(index)

    def first_occurrence(pair: Pair) -> tuple[int, int]:
        # Chunk indices follow the text's order, and equal chunks merge alike, so the first chunk
        # holding the pair is where the pair first occurs in the text.
        index = min(chunks_with[pair])
        ids = chunks[index]
        position = next(i for i in range(len(ids) - 1) if (ids[i], ids[i + 1]) == pair)
        return index, position

    merges = []
    for k in range(num_merges):
        if not pair_counts:
            break
        top = max(pair_counts.values())
        tied = [pair for pair, n in pair_counts.items() if n == top]
        best = tied[0] if len(tied) == 1 else min(tied, key=first_occurrence)
        new_id = first_id + k
        for index in sorted(chunks_with[best]):
            old, count = chunks[index], counts[index]
            new = merge_pair(old, best, new_id)
            before, after = count_pairs(old), count_pairs(new)
            # Move this chunk's contribution from its old pairs to its new ones.
            for pair, n in before.items():
                pair_counts[pair] -= n * count
                if pair not in after:
                    chunks_with[pair].discard(index)
                if pair_counts[pair] == 0:
                    del pair_counts[pair], chunks_with[pair]
            for pair, n in after.items():
                pair_counts[pair] = pair_counts.get(pair, 0) + n * count
                chunks_with.setdefault(pair, set()).add(index)
            chunks[index] = new
        merges.append(best)
    return merges


def encode_chunk(ids: list[int], ranks: dict[Pair, int], merge_ids: dict[Pair, int]) -> list[int]:
    """Apply merges to one chunk's ids: repeatedly merge the adjacent pair of lowest rank.

    `ranks[pair]` is the merge's position in the order learned, `merge_ids[pair]` the token it
    makes. With merges (97, 97) -> 256 (rank 0) and (256, 97) -> 257 (rank 1):
    >>> encode_chunk([97, 97, 97, 97], {(97, 97): 0, (256, 97): 1}, {(97, 97): 256, (256, 97): 257})
    [256, 256]
    """
    while len(ids) >= 2:
        pair = min(zip(ids, ids[1:]), key=lambda p: ranks.get(p, float("inf")))
        if pair not in ranks:
            break  # nothing left to merge
        ids = merge_pair(ids, pair, merge_ids[pair])
    return ids


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from each byte to a printable character (Hugging Face files use it).

    Printable Latin-1 bytes map to themselves; the other 68 to U+0100 onwards, in byte order.
    >>> bytes_to_unicode()[ord("a")], bytes_to_unicode()[ord(" ")]
    ('a', 'Ġ')
    """
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    mapping = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


def clean_text(text: object, name: str = "text") -> str:
    """Check that `text` is a str; lone surrogates (not encodable) become U+FFFD, as in tiktoken."""
    if not isinstance(text, str):
        raise TypeError(f"{name} must be str, got {type(text).__name__}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


# ---------------------------------------------------------------------------------------------
# The tokenizer
# ---------------------------------------------------------------------------------------------


class BPETokenizer:
    """Byte-level BPE with a pre-tokenization pattern and special tokens.

    >>> tok = BPETokenizer(pattern="gpt2", special_tokens={"<|endoftext|>": 300})
    >>> tok.train("low lower lowest " * 50, vocab_size=260)
    >>> tok.decode(tok.encode("lowest<|endoftext|>", allowed_special="all"))
    'lowest<|endoftext|>'

    Attributes: `vocab` {id: bytes} of the ordinary tokens; `merges` [((left, right), new_id)] in
    the order learned; `special_tokens` {text: id}; `pattern` as given.
    """

    def __init__(
        self,
        pattern: str | re.Pattern | None = "gpt2",
        special_tokens: dict[str, int] | None = None,
    ) -> None:
        self._split = get_splitter(pattern)
        self.pattern = pattern
        self._set_vocabulary(list(range(256)), [])
        self.special_tokens: dict[str, int] = {}
        self.register_special_tokens(special_tokens or {})

    # -- vocabulary ---------------------------------------------------------------------------

    def _set_vocabulary(self, byte_ids: list[int], merges: list[tuple[Pair, int]]) -> None:
        """Build the vocabulary from the id of each byte value and the merges, checking both."""
        if len(byte_ids) != 256 or len(set(byte_ids)) != 256:
            raise ValueError(
                f"byte_ids must be 256 distinct ids, got {len(set(byte_ids))} distinct"
            )
        for token_id in [*byte_ids, *(i for (a, b), new_id in merges for i in (a, b, new_id))]:
            if isinstance(token_id, bool) or not isinstance(token_id, int):
                raise TypeError(f"token ids must be ints, got {type(token_id).__name__}")
            if not 0 <= token_id <= MAX_ID:
                raise ValueError(f"token ids must be in [0, 2**31), got {token_id}")
        vocab = {token_id: bytes([b]) for b, token_id in enumerate(byte_ids)}
        for rank, ((left, right), new_id) in enumerate(merges):
            for part in (left, right):
                if part not in vocab:
                    raise ValueError(f"merge {rank} uses token {part}, which does not exist yet")
            if new_id in vocab:
                raise ValueError(f"merge {rank} makes token {new_id}, which already exists")
            vocab[new_id] = vocab[left] + vocab[right]
        self.byte_ids = list(byte_ids)  # byte value -> token id (identity after training)
        self.vocab: dict[int, bytes] = vocab
        self.merges: list[tuple[Pair, int]] = list(merges)
        self._ranks = {pair: rank for rank, (pair, _) in enumerate(merges)}
        self._merge_ids = dict(merges)
        if len(self._ranks) != len(merges):
            raise ValueError("merges must not repeat a pair")

    def register_special_tokens(self, special_tokens: dict[str, int]) -> None:
        """Add special tokens {text: id}; ids must not collide with ordinary or special tokens."""
        if not isinstance(special_tokens, dict):
            raise TypeError(f"special_tokens must be a dict, got {type(special_tokens).__name__}")
        taken = {token_id: name for name, token_id in self.special_tokens.items()}
        for name, token_id in special_tokens.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"special token names must be non-empty str, got {name!r}")
            if not isinstance(token_id, int) or isinstance(token_id, bool):
                raise ValueError(f"special token {name!r} needs an int id, got {token_id!r}")
            if not 0 <= token_id <= MAX_ID:
                raise ValueError(
                    f"special token {name!r} needs an id in [0, 2**31), got {token_id}"
                )
            if token_id in self.vocab:
                raise ValueError(
                    f"special token {name!r} has id {token_id}, which is already the ordinary "
                    f"token {self.vocab[token_id]!r}"
                )
            if taken.get(token_id, name) != name or name in self.special_tokens:
                raise ValueError(f"special token {name!r} (id {token_id}) collides with another")
            taken[token_id] = name
        self.special_tokens.update(special_tokens)
        self._special_by_id = {token_id: name for name, token_id in self.special_tokens.items()}

    @property
    def vocab_size(self) -> int:
        """The number of ordinary tokens: 256 bytes plus one per merge (special tokens excluded)."""
        return len(self.vocab)

    @property
    def n_vocab(self) -> int:
        """One past the largest id, special tokens included: the size a model's embedding needs."""
        return max([*self.vocab, *self._special_by_id]) + 1

    # -- training -----------------------------------------------------------------------------

    def train(self, text: str, vocab_size: int) -> None:
        """Learn merges from `text` until there are `vocab_size` ordinary tokens.

        Starts again from the 256 bytes. Stops early, with a warning, when no adjacent pair is
        left. Special tokens in the training text are treated as ordinary text.
        """
        text = clean_text(text)
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
        # Each distinct chunk once, with its count, in order of first appearance.
        chunk_counts = Counter(self._split(text))
        chunks = [list(chunk.encode("utf-8")) for chunk in chunk_counts]
        pairs = self._train_merges(chunks, list(chunk_counts.values()), vocab_size - 256)
        self._set_vocabulary(list(range(256)), [(pair, 256 + k) for k, pair in enumerate(pairs)])
        if len(self.vocab) < vocab_size:
            warnings.warn(
                f"training stopped at vocab_size {len(self.vocab)} of the {vocab_size} asked for: "
                "no adjacent pair is left in the text",
                stacklevel=2,
            )

    def _train_merges(self, chunks: list[list[int]], counts: list[int], num_merges: int):
        """The training hot loop (the fast backend overrides this one method)."""
        return train_merges(chunks, counts, num_merges)

    # -- encoding -----------------------------------------------------------------------------

    def _encode_chunk(self, chunk: bytes) -> list[int]:
        """The encoding hot loop (the fast backend overrides this one method)."""
        return encode_chunk([self.byte_ids[b] for b in chunk], self._ranks, self._merge_ids)

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode `text`, treating special-token text as ordinary text.

        >>> BPETokenizer().encode_ordinary("hi")  # untrained: one id per byte
        [104, 105]
        """
        text = clean_text(text)
        ids: list[int] = []
        cache: dict[str, list[int]] = {}  # words repeat; encode each distinct chunk once
        for chunk in self._split(text):
            if chunk not in cache:
                cache[chunk] = self._encode_chunk(chunk.encode("utf-8"))
            ids.extend(cache[chunk])
        return ids

    def _special_set(self, value: object, name: str) -> set[str]:
        if value == "all":
            return set(self.special_tokens)
        if isinstance(value, str):
            raise TypeError(
                f"{name} must be 'all' or a collection of special tokens, got {value!r}"
            )
        unknown = set(value) - set(self.special_tokens)
        if unknown:
            raise ValueError(f"{name} names unknown special tokens {sorted(unknown)}")
        return set(value)

    def encode(
        self,
        text: str,
        allowed_special: str | Iterable[str] = frozenset(),
        disallowed_special: str | Iterable[str] = "all",
    ) -> list[int]:
        """Encode `text`; special tokens follow tiktoken's rules.

        `allowed_special` ("all" or a set) are encoded as their special ids. Text matching a
        `disallowed_special` token ("all" means every special token not allowed) raises a
        ValueError, so user text cannot smuggle in control tokens; pass `disallowed_special=()` to
        encode it as ordinary text instead.
        """
        text = clean_text(text)
        allowed = self._special_set(allowed_special, "allowed_special")
        if disallowed_special == "all":
            disallowed = set(self.special_tokens) - allowed
        else:
            disallowed = self._special_set(disallowed_special, "disallowed_special")
        found = [(text.find(name), name) for name in disallowed if name in text]
        if found:
            position, name = min(found)
            raise ValueError(
                f"text contains the disallowed special token {name!r} (position {position}); "
                f"pass allowed_special={{{name!r}}} to encode it as a special token, or "
                "disallowed_special=() to encode it as ordinary text"
            )
        ids: list[int] = []
        for piece, is_special in split_on_special(text, allowed):
            ids.extend([self.special_tokens[piece]] if is_special else self.encode_ordinary(piece))
        return ids

    # -- decoding -----------------------------------------------------------------------------

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The bytes of a sequence of ids; special tokens give their UTF-8 text.

        >>> BPETokenizer().decode_bytes([104, 105])
        b'hi'
        """
        parts = []
        for position, token_id in enumerate(ids):
            token_id = operator.index(token_id)  # ints, or numpy integers from the fast backend
            if token_id in self.vocab:
                parts.append(self.vocab[token_id])
            elif token_id in self._special_by_id:
                parts.append(self._special_by_id[token_id].encode("utf-8"))
            elif 0 <= token_id < self.n_vocab:
                raise ValueError(
                    f"token id {token_id} (position {position}) is not in the vocabulary"
                )
            else:
                raise ValueError(
                    f"token id {token_id} out of range for n_vocab {self.n_vocab} "
                    f"(position {position})"
                )
        return b"".join(parts)

    def decode(self, ids: Iterable[int]) -> str:
        """The text of a sequence of ids. Bytes that are not valid UTF-8 (a character cut between
        tokens) become U+FFFD, so any valid ids decode.

        >>> BPETokenizer().decode([228, 184])  # the first two of the three bytes of "中"
        '�'
        """
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    # -- the project's own file format -------------------------------------------------------------

    def _pattern_to_json(self) -> object:
        if isinstance(self.pattern, re.Pattern):
            return {"re": self.pattern.pattern, "flags": int(self.pattern.flags)}
        return self.pattern

    def save(self, path: str | os.PathLike) -> None:
        """Save to the project's versioned text format (atomically).

        Line 1 names format and version; line 2 is a JSON header (pattern, special tokens, the
        id of each byte, the merge count); then one merge per line, `left right new_id`, in the
        order learned; then `end`, so a truncated file is detected.
        """
        header = {
            "pattern": self._pattern_to_json(),
            "special_tokens": self.special_tokens,
            "byte_ids": None if self.byte_ids == list(range(256)) else self.byte_ids,
            "num_merges": len(self.merges),
        }
        lines = [f"{FORMAT_NAME} v{FORMAT_VERSION}", json.dumps(header, ensure_ascii=False)]
        lines += [f"{left} {right} {new_id}" for (left, right), new_id in self.merges]
        lines.append("end")
        atomic_write(path, "\n".join(lines) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> BPETokenizer:
        """Load a tokenizer written by `save`. A wrong version or a damaged file raises
        TokenizerFileError naming the file, the line and the field."""
        name = os.fspath(path)
        lines = _read_text(path).split("\n")
        if lines[-1] == "":
            lines.pop()  # the final newline
        first = lines[0] if lines else ""
        if not first.startswith(FORMAT_NAME + " v"):
            raise TokenizerFileError(
                f"{name}: not a {FORMAT_NAME} file (first line {first[:60]!r})"
            )
        version = first[len(FORMAT_NAME) + 2 :]
        if version != str(FORMAT_VERSION):
            raise TokenizerFileError(
                f"{name}: tokenizer format version {version!r}, this code reads v{FORMAT_VERSION}"
            )
        if len(lines) < 2:
            raise TokenizerFileError(f"{name}: truncated tokenizer file (no header line)")
        pattern, special, byte_ids, num_merges = _read_header(
            lines[1], f"{name}: corrupt tokenizer file: line 2 (header)"
        )
        if len(lines) != 3 + num_merges or lines[-1] != "end":
            raise TokenizerFileError(
                f"{name}: truncated or corrupt tokenizer file: the header promises {num_merges} "
                f"merge lines then 'end', found {len(lines) - 2} lines ending in {lines[-1][:60]!r}"
            )
        known = set(byte_ids)
        merges = []
        for number, line in enumerate(lines[2:-1], start=3):
            where = f"{name}: corrupt tokenizer file: line {number} (merge {number - 3})"
            fields = line.split(" ")
            if len(fields) != 3:
                raise TokenizerFileError(f"{where} must be 'left right new_id', got {_show(line)}")
            left, right, new_id = (
                _text_id(text, f"{where}, field {field}")
                for text, field in zip(fields, ("left", "right", "new_id"))
            )
            for part, field in ((left, "left"), (right, "right")):
                if part not in known:
                    raise TokenizerFileError(
                        f"{where}, field {field}: token {part} does not exist before this merge"
                    )
            if new_id in known:
                raise TokenizerFileError(f"{where}, field new_id: token {new_id} already exists")
            known.add(new_id)
            merges.append(((left, right), new_id))
        for token, token_id in special.items():
            if token_id in known:
                raise TokenizerFileError(
                    f"{name}: corrupt tokenizer file: line 2 (header), field "
                    f"special_tokens[{_show(token)}]: id {token_id} is already an ordinary token"
                )
        try:
            tok = cls(pattern=pattern)
            tok._set_vocabulary(byte_ids, merges)
            tok.register_special_tokens(special)
        except (TypeError, ValueError) as e:  # already checked above; kept as a last guard
            raise TokenizerFileError(f"{name}: corrupt tokenizer file ({e})") from None
        return tok

    # -- tiktoken's rank file ------------------------------------------------------------------

    def save_tiktoken(self, path: str | os.PathLike) -> None:
        """Write tiktoken's rank file: `base64(token bytes) id` per line, in id order.

        tiktoken ranks are our ids (the earliest merge has the lowest). Like tiktoken's files,
        it holds no pattern and no special tokens: pass those to `tiktoken.Encoding`.
        """
        lines = [
            f"{base64.b64encode(self.vocab[i]).decode('ascii')} {i}" for i in sorted(self.vocab)
        ]
        atomic_write(path, "\n".join(lines) + "\n")

    @classmethod
    def load_tiktoken(
        cls,
        path: str | os.PathLike,
        pattern: str | re.Pattern | None,
        special_tokens: dict[str, int] | None = None,
    ) -> BPETokenizer:
        """Read a tiktoken rank file; the merges are recovered from the ranks.

        A token of rank r is the merge of the two parts that BPE with the ranks below r makes of
        its bytes (exactly two, or the file is not a BPE vocabulary).
        """
        tok = cls(pattern=pattern)  # a bad argument raises its own error first
        name = os.fspath(path)
        ranks: dict[bytes, int] = {}
        line_of: dict[int, int] = {}  # rank -> the line that gave it
        with open(path, "rb") as f:
            for number, line in enumerate(f.read().splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    token_b64, rank_text = line.split()
                    token = base64.b64decode(token_b64, validate=True)
                except (ValueError, binascii.Error):
                    raise TokenizerFileError(
                        f"{name}: line {number} is not 'base64 rank': {line[:60]!r}"
                    ) from None
                rank = _text_id(rank_text.decode("latin-1"), f"{name}: line {number}, field rank")
                if not token:
                    raise TokenizerFileError(f"{name}: line {number}, field token: empty token")
                if token in ranks:
                    raise TokenizerFileError(
                        f"{name}: line {number}, field token: {token[:40]!r} is repeated"
                    )
                if rank in line_of:
                    raise TokenizerFileError(
                        f"{name}: line {number}, field rank: {rank} is also the rank on line "
                        f"{line_of[rank]}"
                    )
                ranks[token], line_of[rank] = rank, number
        missing = [b for b in range(256) if bytes([b]) not in ranks]
        if missing:
            raise TokenizerFileError(f"{name}: single bytes missing from the ranks: {missing[:8]}")
        merges = []
        for token, rank in sorted(ranks.items(), key=lambda item: item[1]):
            if len(token) == 1:
                continue
            parts = _byte_pair_parts(token, ranks, max_rank=rank)
            if len(parts) != 2:
                raise TokenizerFileError(
                    f"{name}: line {line_of[rank]}: token {token[:40]!r} (rank {rank}) is no merge "
                    "of two lower-ranked tokens"
                )
            merges.append(((ranks[parts[0]], ranks[parts[1]]), rank))
        tok._set_vocabulary([ranks[bytes([b])] for b in range(256)], merges)
        tok.register_special_tokens(special_tokens or {})
        return tok

    # -- Hugging Face's vocab.json + merges.txt -------------------------------------------------

    def save_huggingface(self, directory: str | os.PathLike) -> None:
        """Write Hugging Face's byte-level BPE files `vocab.json` and `merges.txt` into `directory`.

        Tokens are spelled with GPT-2's byte-to-unicode map (a space is "Ġ"); special tokens go
        into vocab.json under their own text, as GPT-2's "<|endoftext|>" does.
        """
        byte_encoder = bytes_to_unicode()

        def spell(token_id: int) -> str:
            return "".join(byte_encoder[b] for b in self.vocab[token_id])

        vocab = {spell(i): i for i in sorted(self.vocab)}
        for name, token_id in self.special_tokens.items():
            if name in vocab:
                raise ValueError(
                    f"special token {name!r} is spelled like ordinary token {vocab[name]}"
                )
            vocab[name] = token_id
        merges = ["#version: 0.2"] + [f"{spell(a)} {spell(b)}" for (a, b), _ in self.merges]
        os.makedirs(directory, exist_ok=True)
        atomic_write(os.path.join(directory, "vocab.json"), json.dumps(vocab, ensure_ascii=False))
        atomic_write(os.path.join(directory, "merges.txt"), "\n".join(merges) + "\n")

    @classmethod
    def load_huggingface(
        cls, directory: str | os.PathLike, pattern: str | re.Pattern | None = "gpt2"
    ) -> BPETokenizer:
        """Read `vocab.json` + `merges.txt` (byte-level BPE, as GPT-2's). Entries of vocab.json
        that are neither a single byte nor made by a merge become special tokens."""
        tok = cls(pattern=pattern)  # a bad argument raises its own error first
        vocab_path = os.path.join(os.fspath(directory), "vocab.json")
        merges_path = os.path.join(os.fspath(directory), "merges.txt")
        vocab = _read_json(_read_text(vocab_path), vocab_path)
        if not isinstance(vocab, dict):
            raise TokenizerFileError(
                f"{vocab_path} must be a JSON object of token -> id, got {type(vocab).__name__}"
            )
        _check_token_ids(vocab, lambda token: f"{vocab_path}: key {_show(token)}", "token")
        byte_encoder = bytes_to_unicode()
        missing = [byte_encoder[b] for b in range(256) if byte_encoder[b] not in vocab]
        if missing:
            raise TokenizerFileError(f"{vocab_path}: single-byte tokens missing: {missing[:8]}")
        byte_ids = [vocab[byte_encoder[b]] for b in range(256)]
        known = set(byte_ids)  # the ids made so far: the bytes, then each merge's
        merges = []
        for number, line in enumerate(_read_text(merges_path).split("\n"), start=1):
            line = line.removesuffix("\r")
            if not line or (number == 1 and line.startswith("#version")):
                continue  # only the first line may be the header: "#" is also a token
            where = f"{merges_path}: line {number}"
            parts = line.split(" ")
            if len(parts) != 2 or not all(parts):
                raise TokenizerFileError(
                    f"{where} must be two tokens separated by one space, got {_show(line)}"
                )
            for part, side in zip(parts, ("left", "right")):
                if part not in vocab:
                    raise TokenizerFileError(
                        f"{where}: the {side} token {_show(part)} is not in vocab.json"
                    )
                if vocab[part] not in known:
                    raise TokenizerFileError(
                        f"{where}: the {side} token {_show(part)} is made by no earlier merge"
                    )
            merged = parts[0] + parts[1]
            if merged not in vocab:
                raise TokenizerFileError(
                    f"{where}: the merged token {_show(merged)} is not in vocab.json"
                )
            if vocab[merged] in known:
                raise TokenizerFileError(
                    f"{where}: the merged token {_show(merged)} (id {vocab[merged]}) is already a "
                    "byte or made by an earlier merge"
                )
            known.add(vocab[merged])
            merges.append(((vocab[parts[0]], vocab[parts[1]]), vocab[merged]))
        special = {token: i for token, i in vocab.items() if i not in known}
        try:
            tok._set_vocabulary(byte_ids, merges)
            tok.register_special_tokens(special)
        except (TypeError, ValueError) as e:  # already checked above; kept as a last guard
            raise TokenizerFileError(f"{directory}: corrupt Hugging Face BPE files ({e})") from None
        return tok


_HEADER_FIELDS = {"pattern", "special_tokens", "byte_ids", "num_merges"}


def _read_header(text: str, where: str) -> tuple[object, dict[str, int], list[int], int]:
    """The header line of a `.bpe` file, every field checked: (pattern, special tokens, the id
    of each byte, the number of merges)."""
    header = _read_json(text, where)
    if not isinstance(header, dict) or set(header) != _HEADER_FIELDS:
        got = sorted(header) if isinstance(header, dict) else type(header).__name__
        raise TokenizerFileError(
            f"{where} must be a JSON object with the fields {sorted(_HEADER_FIELDS)}, got {got}"
        )
    num_merges = _file_id(header["num_merges"], f"{where}, field num_merges")
    pattern = _file_pattern(header["pattern"], f"{where}, field pattern")
    byte_ids = header["byte_ids"]
    if byte_ids is None:
        byte_ids = list(range(256))
    elif not isinstance(byte_ids, list) or len(byte_ids) != 256:
        raise TokenizerFileError(
            f"{where}, field byte_ids must be null or a list of 256 ids, got {_show(byte_ids)}"
        )
    for b, token_id in enumerate(byte_ids):
        _file_id(token_id, f"{where}, field byte_ids[{b}]")
    if len(set(byte_ids)) != 256:
        raise TokenizerFileError(f"{where}, field byte_ids must hold 256 distinct ids")
    special = header["special_tokens"]
    if not isinstance(special, dict):
        raise TokenizerFileError(
            f"{where}, field special_tokens must be a JSON object, got {_show(special)}"
        )
    _check_token_ids(
        special, lambda token: f"{where}, field special_tokens[{_show(token)}]", "special token"
    )
    return pattern, special, byte_ids, num_merges


def _file_pattern(value: object, where: str) -> object:
    """A pattern as the file stores it: a name, null, or {"re": text, "flags": int}, compiled."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            get_splitter(value)
        except ValueError as e:
            raise TokenizerFileError(f"{where}: {e}") from None
        return value
    if not isinstance(value, dict) or set(value) != {"re", "flags"}:
        raise TokenizerFileError(
            f'{where} must be a name, null or {{"re": ..., "flags": ...}}, got {_show(value)}'
        )
    text, flags = value["re"], value["flags"]
    if not isinstance(text, str):
        raise TokenizerFileError(f"{where}, re must be text, got {_show(text)}")
    if isinstance(flags, bool) or not isinstance(flags, int) or flags & ~_PATTERN_FLAGS:
        raise TokenizerFileError(
            f"{where}, flags must be an int of re's I, M, S, X, A and U flags, got {_show(flags)}"
        )
    try:
        return re.compile(text, flags)
    except (re.error, RecursionError, OverflowError, ValueError) as e:
        raise TokenizerFileError(f"{where}: {_show(text)} does not compile ({e})") from None


def _byte_pair_parts(token: bytes, ranks: dict[bytes, int], max_rank: int) -> list[bytes]:
    """Split `token` into the parts tiktoken's BPE reaches using only ranks below `max_rank`.

    >>> _byte_pair_parts(b"abc", {b"a": 0, b"b": 1, b"c": 2, b"ab": 3, b"abc": 4}, 4)
    [b'ab', b'c']
    """
    parts = [bytes([b]) for b in token]
    while True:
        best_index, best_rank = None, max_rank
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1])
            if rank is not None and rank < best_rank:
                best_index, best_rank = i, rank
        if best_index is None:
            return parts
        parts[best_index : best_index + 2] = [parts[best_index] + parts[best_index + 1]]

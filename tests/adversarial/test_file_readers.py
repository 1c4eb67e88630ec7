"""File readers under adversarial files: every field checked, errors name the file and the field.

Covers the safetensors reader (both backends share its header checks, and their outcomes must
agree), config dictionaries, tokenizer files and IDX files. A corrupt file gets the reader's error
class (a ValueError) or, where the damage happens to leave a valid file, a correct load.
"""

from __future__ import annotations

import gzip
import json
import random
import struct
import sys

import numpy as np
import pytest
from safetensors.numpy import load as st_load

import fast
import reference
from reference import CheckpointError
from tests.adversarial.harness import INTERNAL_MESSAGES, is_clear_error, run_many

# -- safetensors ----------------------------------------------------------------------------------


def _file(header: dict | bytes, body: bytes) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + body


def _good_header() -> tuple[dict, bytes]:
    header = {
        "a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
        "b": {"dtype": "I16", "shape": [3], "data_offsets": [16, 22]},
        "e": {"dtype": "F64", "shape": [0, 5], "data_offsets": [22, 22]},
        "__metadata__": {"format": "pt"},
    }
    body = struct.pack("<4f", 1.5, -2.0, 0.25, 8.0) + struct.pack("<3h", 7, -8, 9)
    return header, body


def _outcome(loader, path):
    """("ok", tensors) or ("error", message) for a CheckpointError; anything else propagates."""
    try:
        return "ok", loader(path)
    except CheckpointError as e:
        return "error", str(e)


def _package_loads(data: bytes) -> dict | None:
    """What the `safetensors` package makes of `data`, or None when it refuses it."""
    try:
        return st_load(data)
    except Exception:  # its own error, or numpy's for a dtype it lacks
        return None
    except BaseException as e:  # a Rust panic surfaces as a BaseException
        if isinstance(e, KeyboardInterrupt):
            raise
        return None


def _same_tensors(ref: dict, arrays: dict) -> None:
    assert list(ref) == list(arrays)
    for name, value in ref.items():
        got = np.asarray(arrays[name])
        want = np.asarray(value, dtype=got.dtype if got.dtype.kind != "f" else np.float64)
        assert want.size == got.size, name
        if got.size:
            assert want.shape == got.shape, name
        np.testing.assert_array_equal(want.ravel(), got.ravel().astype(want.dtype), err_msg=name)


def _check_file(tmp_path, data: bytes, *mentions: str) -> str:
    """Load `data` with both backends; they must agree, and agree with the `safetensors` package
    whenever it refuses the file. Returns "ok" or "error"; an error must mention `mentions`."""
    path = tmp_path / "fuzz.safetensors"
    path.write_bytes(data)
    kind, ref = _outcome(reference.load_safetensors, path)
    fast_kind, arrays = _outcome(fast.load_safetensors, path)
    assert kind == fast_kind, (ref, arrays)
    package = _package_loads(data)
    if kind == "error":
        assert ref == arrays  # the same message: one header reader serves both
        assert str(path) in ref
        for m in mentions:
            assert m in ref, (m, ref)
        return kind
    assert package is not None, "we loaded a file the safetensors package refuses"
    _same_tensors(ref, arrays)
    _same_tensors(ref, {name: package[name] for name in ref})
    return kind


def test_the_good_file_loads_in_all_three(tmp_path):
    header, body = _good_header()
    assert _check_file(tmp_path, _file(header, body)) == "ok"
    path = tmp_path / "fuzz.safetensors"
    assert reference.load_safetensors(path)["e"] == []
    assert fast.load_safetensors(path)["e"].shape == (0, 5)
    assert reference.load_safetensors_metadata(path) == {"format": "pt"}


BAD_VALUES = [
    None,
    True,
    False,
    0,
    -1,
    1.5,
    2.0,
    "",
    "F32",
    [],
    {},
    [1],
    [-1],
    [1.0],
    [True],
    [0, 16, 16],
    ["0", "16"],
    [16, 0],
    {"0": 16},
    [2**64, 0],
    [[0], [16]],
]


@pytest.mark.parametrize("field", ["dtype", "shape", "data_offsets"])
def test_wrongly_typed_fields(tmp_path, field):
    header, body = _good_header()
    for value in BAD_VALUES:
        if value == header["a"][field]:
            continue
        bad = json.loads(json.dumps(header))
        bad["a"][field] = value
        kind = _check_file(tmp_path, _file(bad, body), "'a'", field)
        assert kind == "error", (field, value)


def test_malformed_entries_and_metadata(tmp_path):
    header, body = _good_header()
    cases = {
        "entry not an object": ({**header, "a": [1, 2]}, ["'a'", "JSON object"]),
        "entry a string": ({**header, "a": "F32"}, ["'a'", "JSON object"]),
        "missing field": ({**header, "a": {"dtype": "F32", "shape": [4]}}, ["'a'", "fields"]),
        "extra field": ({**header, "a": {**header["a"], "x": 1}}, ["'a'", "fields"]),
        "empty name": ({**header, "": header["a"]}, ["empty name"]),
        "metadata list": ({**header, "__metadata__": ["x"]}, ["__metadata__"]),
        "metadata int value": ({**header, "__metadata__": {"k": 1}}, ["__metadata__"]),
        "unknown dtype": ({**header, "a": {**header["a"], "dtype": "F33"}}, ["'a'", "dtype"]),
        "dtype other case": ({**header, "a": {**header["a"], "dtype": "f32"}}, ["'a'", "dtype"]),
        "shape mismatch": ({**header, "a": {**header["a"], "shape": [3]}}, ["'a'", "shape"]),
        "overlap": (
            {**header, "b": {**header["b"], "data_offsets": [14, 20]}},
            ["'b'", "data_offsets"],
        ),
        "gap": ({**header, "a": {**header["a"], "shape": [3], "data_offsets": [4, 16]}}, ["gap"]),
        "huge dims": ({**header, "e": {**header["e"], "shape": [0, 2**62]}}, ["'e'", "shape"]),
        "many empty rows": ({**header, "e": {**header["e"], "shape": [2**40, 0]}}, ["'e'"]),
        "too many dims": ({**header, "e": {**header["e"], "shape": [0] * 65}}, ["'e'", "shape"]),
    }
    cases["gap"] = (cases["gap"][0], ["'a'", "data_offsets"])
    for name, (bad, mentions) in cases.items():
        assert _check_file(tmp_path, _file(bad, body), *mentions) == "error", name
    # tensors that do not cover the data section: trailing bytes
    assert _check_file(tmp_path, _file(header, body + b"\0\0"), "data bytes") == "error"
    # not an object at all, and JSON that only looks like a header
    for raw in (
        b"[]",
        b"null",
        b"7",
        b'"a"',
        b"[" * 100_000,
        b"{" + b'"a":' * 50_000,
        b"1" * 5000,
        b"\xff\xfe{}",
        b'{"a": NaN}',
        b"{}x",
    ):
        assert _check_file(tmp_path, _file(raw, b""), "header") == "error", raw[:20]
    # metadata null is what the package accepts too
    assert _check_file(tmp_path, _file({**header, "__metadata__": None}, body)) == "ok"


def test_header_length_field(tmp_path):
    header, body = _good_header()
    data = _file(header, body)
    for n in (0, 1, len(data) - 7, 2**63, 2**64 - 1, 100 * 1024 * 1024 + 1):
        assert _check_file(tmp_path, struct.pack("<Q", n) + data[8:], "header") == "error", n


def test_every_truncation_fails_cleanly(tmp_path):
    header, body = _good_header()
    data = _file(header, body)
    for cut in range(len(data)):
        assert _check_file(tmp_path, data[:cut]) == "error", cut


def test_random_byte_flips(tmp_path):
    header, body = _good_header()
    data = _file(header, body)
    rng = random.Random(1234)
    kinds = set()
    for _ in range(600):
        damaged = bytearray(data)
        for _ in range(rng.choice((1, 1, 2, 3))):
            position = rng.randrange(len(damaged))
            damaged[position] = (
                rng.randrange(256)
                if rng.random() < 0.5
                else damaged[position] ^ (1 << rng.randrange(8))
            )
        kinds.add(_check_file(tmp_path, bytes(damaged)))
    assert kinds == {"ok", "error"}  # flips in the data section load, most others do not


def test_random_headers(tmp_path):
    """Headers assembled from random, often wrong, parts."""
    rng = random.Random(99)
    pieces = [
        None,
        True,
        0,
        3,
        -1,
        1.5,
        "F32",
        "BF16",
        "U8",
        "x",
        [],
        [0],
        [1, 2],
        [2, 3],
        [0, 4],
        [4, 8],
        [0, 0],
        {},
        {"k": "v"},
    ]
    for _ in range(400):
        header = {}
        for name in rng.sample(["a", "b", "c", "__metadata__"], rng.randrange(1, 4)):
            if name == "__metadata__" or rng.random() < 0.1:
                header[name] = rng.choice(pieces)
                continue
            entry = {k: rng.choice(pieces) for k in ("dtype", "shape", "data_offsets")}
            if rng.random() < 0.5:
                entry["dtype"] = rng.choice(["F32", "U8", "I16", "BOOL"])
            header[name] = entry
        _check_file(
            tmp_path, _file(header, bytes(rng.randrange(256) for _ in range(rng.randrange(0, 12))))
        )


# -- config.json fields ---------------------------------------------------------------------------

GPT2_CONFIG = reference.GPTConfig(
    vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=4, bos_token_id=3, eos_token_id=3
).to_hf_dict()
BERT_CONFIG = reference.BERTConfig(
    vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=4
).to_hf_dict()
SEQ2SEQ_CONFIG = {"model_type": "transformer", "src_vocab_size": 9, "tgt_vocab_size": 7,
                  "d_model": 4, "nhead": 2, "num_encoder_layers": 1, "num_decoder_layers": 1,
                  "dim_feedforward": 8}  # fmt: skip

WRONG_TYPES = [None, True, "4", 4.0, [4], {"n": 4}]


def _config_error(read, config: dict, key: str) -> None:
    with pytest.raises((TypeError, ValueError)) as info:
        read(config)
    message = str(info.value)
    assert key in message, message
    for internal in (*INTERNAL_MESSAGES, "not supported between", "unexpected keyword"):
        assert internal not in message, message


@pytest.mark.parametrize(
    "key, bad",
    [
        *[(k, v) for k in ("vocab_size", "n_positions", "n_layer", "n_head", "n_embd")
          for v in [*WRONG_TYPES, 0, -3]],
        *[(k, v) for k in ("embd_pdrop", "resid_pdrop", "attn_pdrop")
          for v in [None, True, "0.1", [0.1], -0.1, 1.0, float("nan")]],
        *[("layer_norm_epsilon", v) for v in [None, "1e-5", [1e-5], 0.0, -1.0, float("inf")]],
        *[("activation_function", v) for v in [None, 5, ["gelu_new"], "relu", "gelu"]],
        *[("n_inner", v) for v in [True, 16.0, "16", [16], 0, 17]],
        *[(k, v) for k in ("scale_attn_weights", "tie_word_embeddings")
          for v in [None, 1, "true", [True], False]],
        *[(k, v) for k in ("scale_attn_by_inverse_layer_idx", "add_cross_attention")
          for v in [None, 0, "false", [False], True]],
        *[(k, v) for k in ("bos_token_id", "eos_token_id") for v in [True, 3.0, "3", [3], {}]],
        *[("model_archaeology", v) for v in ["seed", 7, [1], True]],
        ("n_embd", 5),  # not divisible by n_head
    ],
)  # fmt: skip
def test_gpt2_config_fields(key, bad):
    _config_error(reference.GPTConfig.from_hf_dict, {**GPT2_CONFIG, key: bad}, key)


def test_gpt2_config_nested_and_lenient_fields():
    for seed in (-1, 2**64, 1.0, "0", None):
        config = {**GPT2_CONFIG, "model_archaeology": {"seed": seed}}
        _config_error(reference.GPTConfig.from_hf_dict, config, "seed")
    _config_error(reference.GPTConfig.from_hf_dict, [("vocab_size", 11)], "config")
    # foreign configs hold ids outside the vocabulary: those become None, as before
    config = reference.GPTConfig.from_hf_dict({**GPT2_CONFIG, "bos_token_id": 50256})
    assert config.bos_token_id is None and config.eos_token_id == 3


@pytest.mark.parametrize(
    "key, bad",
    [
        *[(k, v) for k in ("vocab_size", "max_position_embeddings", "num_hidden_layers",
                           "num_attention_heads", "hidden_size", "type_vocab_size")
          for v in [*WRONG_TYPES, 0, -3]],
        *[("intermediate_size", v) for v in [True, "16", 16.0, [16], 0]],
        *[(k, v) for k in ("hidden_dropout_prob", "attention_probs_dropout_prob")
          for v in [True, "0.1", [0.1], -0.1, 1.0, float("nan")]],
        *[(k, v) for k in ("layer_norm_eps", "initializer_range")
          for v in [None, True, "1e-12", [1e-12], 0.0, -1.0, float("inf")]],
        *[("pad_token_id", v) for v in [True, 0.0, "0", [0], -1, 11]],
        *[("seed", v) for v in [None, True, 1.0, "0", -1, 2**64]],
        *[(k, v) for k in ("model_type", "hidden_act", "position_embedding_type")
          for v in [None, 5, ["bert"], "gpt2"]],
        *[(k, v) for k in ("is_decoder", "add_cross_attention") for v in [None, 0, "false", True]],
        *[("tie_word_embeddings", v) for v in [None, 1, "true", False]],
        ("hidden_size", 5),  # not divisible by num_attention_heads
    ],
)  # fmt: skip
def test_bert_config_fields(key, bad):
    _config_error(reference.BERTConfig.from_hf_dict, {**BERT_CONFIG, key: bad}, key)


@pytest.mark.parametrize(
    "key, bad",
    [
        *[(k, v) for k in ("src_vocab_size", "tgt_vocab_size", "d_model", "nhead",
                           "num_encoder_layers", "dim_feedforward", "max_len")
          for v in [*WRONG_TYPES, 0, -3]],
        *[("dropout", v) for v in [None, True, "0.1", [0.1], -0.1, 1.0, float("nan")]],
        *[("layer_norm_eps", v) for v in [None, "1e-5", 0.0, -1.0]],
        *[(k, v) for k in ("pad_id", "bos_id", "eos_id") for v in [None, True, 1.0, "1", -1, 99]],
        *[("seed", v) for v in [None, True, 1.0, -1, 2**64]],
        ("model_type", "gpt2"),
        ("model_type", None),
        ("colour", "blue"),  # a field the config does not have
        ("d_model", 5),  # not divisible by nhead
    ],
)  # fmt: skip
def test_seq2seq_config_fields(key, bad):
    for backend in (reference, fast):
        config = {**SEQ2SEQ_CONFIG, key: bad}
        _config_error(backend.Transformer.from_config_dict, config, key)


def test_configs_that_are_not_objects():
    for read in (
        reference.GPTConfig.from_hf_dict,
        reference.BERTConfig.from_hf_dict,
        reference.TransformerConfig.from_dict,
    ):
        for bad in (None, "config", [1, 2], 5):
            with pytest.raises(TypeError, match="config must be a JSON object"):
                read(bad)
    missing = {k: v for k, v in SEQ2SEQ_CONFIG.items() if k != "tgt_vocab_size"}
    _config_error(reference.TransformerConfig.from_dict, missing, "tgt_vocab_size")


# -- tokenizer files ------------------------------------------------------------------------------

TEXT = "low lower lowest newer newest wider widest " * 20


@pytest.fixture(scope="module")
def token_files(tmp_path_factory):
    """A small trained tokenizer saved in all three formats: {format: text of the file(s)}."""
    tok = reference.BPETokenizer(pattern="gpt2", special_tokens={"<|e|>": 300})
    tok.train(TEXT, vocab_size=270)
    folder = tmp_path_factory.mktemp("tok")
    tok.save(folder / "tok.bpe")
    tok.save_tiktoken(folder / "tok.tiktoken")
    tok.save_huggingface(folder / "hf")
    return {
        "bpe": (folder / "tok.bpe").read_text(encoding="utf-8"),
        "tiktoken": (folder / "tok.tiktoken").read_text(encoding="utf-8"),
        "vocab": json.loads((folder / "hf" / "vocab.json").read_text(encoding="utf-8")),
        "merges": (folder / "hf" / "merges.txt").read_text(encoding="utf-8"),
    }


def _file_error(load, path, *mentions: str) -> str:
    """Both backends raise TokenizerFileError (a ValueError) with the same message, naming the
    file and `mentions`."""
    messages = []
    for backend in (reference, fast):
        with pytest.raises(backend.TokenizerFileError) as info:
            load(backend.BPETokenizer, path)
        assert isinstance(info.value, ValueError)
        messages.append(str(info.value))
    assert messages[0] == messages[1]
    for m in (str(path), *mentions):
        assert m in messages[0], (m, messages[0])
    return messages[0]


def _bpe_with(text: str, header: dict | None = None, merges: list | None = None) -> str:
    lines = text.split("\n")
    if header is not None:
        lines[1] = json.dumps({**json.loads(lines[1]), **header})
    if merges is not None:
        lines[2 : 2 + len(merges)] = merges
    return "\n".join(lines)


BAD_IDS = [2.0, 2.5, "2", True, None, -1, 2**31, 10**30, [2]]


def test_bpe_header_fields(tmp_path, token_files):
    good = token_files["bpe"]
    path = tmp_path / "bad.bpe"

    def load(cls, p):
        return cls.load(p)

    cases = [
        *[({"num_merges": v}, "num_merges") for v in ["14", 14.0, True, None, -1, [14]]],
        *[({"byte_ids": [v, *range(1, 256)]}, "byte_ids[0]") for v in BAD_IDS],
        ({"byte_ids": list(range(255))}, "byte_ids"),
        ({"byte_ids": [1, *range(1, 256)]}, "distinct"),
        ({"byte_ids": "all"}, "byte_ids"),
        *[({"special_tokens": {"<|e|>": v}}, "special_tokens['<|e|>']") for v in BAD_IDS],
        ({"special_tokens": {"": 300}}, "special_tokens['']"),
        ({"special_tokens": {"<a>": 300, "<b>": 300}}, "special_tokens['<b>']"),
        ({"special_tokens": {"<|e|>": 97}}, "already an ordinary token"),
        ({"special_tokens": ["<|e|>"]}, "special_tokens"),
        *[({"pattern": v}, "pattern") for v in [5, True, [], "nosuch", {"re": "a"}]],
        ({"pattern": {"re": "(", "flags": 0}}, "does not compile"),
        ({"pattern": {"re": 7, "flags": 0}}, "re must be text"),
        ({"pattern": {"re": "a", "flags": 128}}, "flags"),  # re.DEBUG would print to stdout
        ({"pattern": {"re": "a", "flags": 1.0}}, "flags"),
        ({"extra": 1}, "fields"),
    ]
    for header, words in cases:
        path.write_text(_bpe_with(good, header=header), encoding="utf-8")
        _file_error(load, path, "line 2", words)
    for raw in ("[]", "null", '"x"', "{", '{"num_merges": NaN}', "[" * 100_000):
        lines = good.split("\n")
        lines[1] = raw
        path.write_text("\n".join(lines), encoding="utf-8")
        _file_error(load, path, "line 2")


def test_bpe_merge_lines(tmp_path, token_files):
    good = token_files["bpe"]
    path = tmp_path / "bad.bpe"

    def load(cls, p):
        return cls.load(p)

    cases = [
        ("97 98", "left right new_id"),
        ("97 98 256 1", "left right new_id"),
        ("97  98 256", "left right new_id"),
        (" 97 98 256", "left right new_id"),
        ("a 98 256", "field left"),
        ("-1 98 256", "field left"),
        ("+97 98 256", "field left"),
        ("97 9_8 256", "field right"),
        ("97 98 25.6", "field new_id"),
        ("97 98 \u0662\u0665\u0666", "field new_id"),  # Arabic-Indic digits: int() reads them
        ("97 98 2147483648", "field new_id"),
        ("97 98 99999999999999999999", "field new_id"),
        ("97 98 97", "already exists"),
        ("97 999 256", "does not exist"),
        ("97 257 256", "does not exist"),  # made by a later merge
    ]
    for line, words in cases:
        path.write_text(_bpe_with(good, merges=[line]), encoding="utf-8")
        _file_error(load, path, "line 3", words)


def test_huggingface_files(tmp_path, token_files):
    vocab, merges = token_files["vocab"], token_files["merges"]

    def write(v=vocab, m=merges, raw_vocab=None):
        (tmp_path / "vocab.json").write_text(
            raw_vocab if raw_vocab is not None else json.dumps(v), encoding="utf-8"
        )
        (tmp_path / "merges.txt").write_text(m, encoding="utf-8")

    def load(cls, p):
        return cls.load_huggingface(p)

    vocab_file = str(tmp_path / "vocab.json")
    for value in BAD_IDS:
        write({**vocab, "a": value})
        _file_error(load, tmp_path, vocab_file, "key 'a'")
    write({**vocab, "a": vocab["b"]})
    _file_error(load, tmp_path, vocab_file, "key", "is also")
    write({**vocab, "": 400})
    _file_error(load, tmp_path, vocab_file, "key ''")
    write({k: v for k, v in vocab.items() if k != "a"})
    _file_error(load, tmp_path, vocab_file, "single-byte tokens missing")
    for raw in ("[]", '"x"', "{", '{"a": NaN}', "[" * 100_000):
        write(raw_vocab=raw)
        _file_error(load, tmp_path, vocab_file)
    lines = merges.split("\n")
    merges_file = str(tmp_path / "merges.txt")
    for line, words in [
        ("l", "two tokens"),
        ("l o w", "two tokens"),
        ("l  o", "two tokens"),
        ("l nosuch", "right token 'nosuch' is not in vocab.json"),
        ("Ġ Ġ", "merged token"),
        (lines[1], "already"),  # the first merge again
    ]:
        write(m="\n".join([lines[0], lines[1], line, *lines[2:]]))
        _file_error(load, tmp_path, merges_file, "line 3", words)
    # Windows line ends are read as Hugging Face's `tokenizers` reads them
    write(m=merges.replace("\n", "\r\n"))
    want = reference.BPETokenizer.load_huggingface(tmp_path).merges
    assert want == fast.BPETokenizer.load_huggingface(tmp_path).merges and len(want) == 14


def test_tiktoken_rank_files(tmp_path, token_files):
    lines = token_files["tiktoken"].split("\n")
    path = tmp_path / "bad.tiktoken"

    def load(cls, p):
        return cls.load_tiktoken(p, pattern="gpt2")

    token = lines[0].split(" ")[0]
    for rank, words in [
        ("-1", "decimal digits"),
        ("+0", "decimal digits"),
        ("0_0", "decimal digits"),
        ("0.0", "decimal digits"),
        ("\u0660", "decimal digits"),
        ("2147483648", "[0, 2**31)"),
        ("9" * 5000, "[0, 2**31)"),
        ("1", "line 2, field rank: 1 is also the rank on line 1"),
    ]:
        path.write_text("\n".join([f"{token} {rank}", *lines[1:]]), encoding="utf-8")
        _file_error(load, path, "line 1", words)
    path.write_text("\n".join([*lines[:-1], lines[0].split(" ")[0] + " 999"]), encoding="utf-8")
    _file_error(load, path, "repeated")


def test_files_written_by_tokenizers_and_tiktoken_still_load(tmp_path, monkeypatch):
    import types

    from tiktoken.load import dump_tiktoken_bpe
    from tokenizers import ByteLevelBPETokenizer

    theirs = ByteLevelBPETokenizer()
    theirs.train_from_iterator(
        [TEXT], vocab_size=300, min_frequency=1, show_progress=False, special_tokens=["<|e|>"]
    )
    theirs.save_model(str(tmp_path))
    # tiktoken writes through `blobfile` (not installed here); local paths only need `open`
    monkeypatch.setitem(sys.modules, "blobfile", types.SimpleNamespace(BlobFile=open))
    ours = reference.BPETokenizer(pattern="gpt2")
    ours.train(TEXT, vocab_size=270)
    dump_tiktoken_bpe({t: i for i, t in ours.vocab.items()}, str(tmp_path / "ranks.tiktoken"))
    for backend in (reference, fast):
        tok = backend.BPETokenizer.load_huggingface(tmp_path)
        assert tok.encode("lowest newer widths") == theirs.encode("lowest newer widths").ids
        assert tok.special_tokens == {"<|e|>": 0}
        back = backend.BPETokenizer.load_tiktoken(tmp_path / "ranks.tiktoken", pattern="gpt2")
        assert back.merges == ours.merges


def test_bad_tokenizer_files_never_reach_the_kernels(tmp_path, token_files):
    """In a child interpreter: a file that slipped through would hand the Numba encoder ids it
    cannot pack; each must stop at the reader with a clear error instead."""
    good = token_files["bpe"]
    cases = {}
    for name, header, merges in [
        ("float byte id", {"byte_ids": [0.0, *range(1, 256)]}, None),
        ("huge byte id", {"byte_ids": [2**40, *range(1, 256)]}, None),
        ("negative special id", {"special_tokens": {"<|e|>": -5}}, None),
        ("huge merge id", None, ["97 98 4294967296"]),
        ("string merge id", None, ["97 98 x"]),
    ]:
        path = tmp_path / f"{name.replace(' ', '_')}.bpe"
        path.write_text(_bpe_with(good, header=header, merges=merges), encoding="utf-8")
        cases[name] = (
            f"tok = fast.BPETokenizer.load({str(path)!r})\n"
            "result = (tok.encode('lowest newer'), tok.decode(tok.encode('lowest newer')))"
        )
    outcomes = run_many("import fast", cases)
    for name, outcome in outcomes.items():
        assert is_clear_error(outcome, str(tmp_path)), (name, outcome.describe())
        assert outcome.type == "TokenizerFileError", (name, outcome.describe())


# -- IDX files and text ---------------------------------------------------------------------------


def _idx(type_byte: int, shape: tuple, payload: bytes) -> bytes:
    return bytes([0, 0, type_byte, len(shape)]) + struct.pack(f">{len(shape)}I", *shape) + payload


def _idx_error(tmp_path, data: bytes, *mentions: str) -> str:
    path = tmp_path / "bad.idx"
    path.write_bytes(data)
    messages = []
    for backend in (reference, fast):
        with pytest.raises(ValueError) as info:
            backend.read_idx(path)
        messages.append(str(info.value))
    assert messages[0] == messages[1]
    for m in (str(path), *mentions):
        assert m in messages[0], (m, messages[0])
    return messages[0]


def test_idx_header_fields(tmp_path):
    good = _idx(0x08, (2, 3), bytes(range(6)))
    _idx_error(tmp_path, b"\x01" + good[1:], "magic number")
    _idx_error(tmp_path, good[:1] + b"\x03" + good[2:], "magic number")
    _idx_error(tmp_path, good[:2] + b"\x07" + good[3:], "type byte 0x07")
    _idx_error(tmp_path, good[:3] + b"\xff" + good[4:], "255 dimensions")
    _idx_error(tmp_path, good[:3] + b"\x01" + good[4:], "needs 2 data bytes")  # 1-D of size 2
    _idx_error(tmp_path, _idx(0x08, (2**32 - 1, 2**32 - 1), b""), "truncated or corrupt")
    _idx_error(tmp_path, _idx(0x0E, (2,), b"\0" * 15), "needs 16 data bytes")
    _idx_error(tmp_path, good + b"\0", "truncated or corrupt")  # a trailing byte
    for cut in range(len(good)):
        _idx_error(tmp_path, good[:cut])
    for damaged in (gzip.compress(good)[:-4], gzip.compress(good)[:12] + b"\xff" * 8):
        _idx_error(tmp_path, damaged, "gzip")
    path = tmp_path / "ok.idx"
    path.write_bytes(_idx(0x08, (0, 4), b""))
    assert reference.read_idx(path) == ((0, 4), []) and fast.read_idx(path)[1].size == 0


def test_mnist_pairs_need_unsigned_bytes(tmp_path):
    (tmp_path / "img").write_bytes(_idx(0x08, (1, 2, 2), bytes(4)))
    (tmp_path / "lbl").write_bytes(_idx(0x0D, (1,), struct.pack(">f", 7.5)))
    for backend in (reference, fast):
        with pytest.raises(ValueError, match=r"lbl'.*labels are unsigned bytes.*type 0x0d"):
            backend.load_mnist_idx(tmp_path / "img", tmp_path / "lbl")


@pytest.mark.parametrize(
    "row, words",
    [
        ("1,2,x,4,7", "field 3: expected a number, got 'x'"),
        ("1,2,3,4,nan", "field 5 (the label)"),
        ("1,2,3,4,inf", "field 5 (the label)"),
        ("1,2,3,4,7.5", "field 5 (the label)"),
        ("1,2,3,4,10", "field 5 (the label)"),
        ("1,2,nan,4,7", "field 3: a pixel must be in [0, 16]"),
        ("1,2,-1,4,7", "field 3: a pixel must be in [0, 16]"),
        ("1,2,17,4,7", "field 3: a pixel must be in [0, 16]"),
        ("1,2,3,7", "expected 5 fields"),
    ],
)
def test_csv_digits_name_the_line_and_field(tmp_path, row, words):
    from reference.data import _read_csv_digits

    path = tmp_path / "digits.csv.gz"
    path.write_bytes(gzip.compress(("0,0,0,0,1\n" + row + "\n").encode()))
    with pytest.raises(ValueError) as info:
        _read_csv_digits(str(path), 4, 16.0)
    assert str(path) in str(info.value) and "line 2" in str(info.value)
    assert words in str(info.value)


def test_text_corpus_errors(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\xe9".encode("latin-1"))
    for backend in (reference, fast):
        with pytest.raises(ValueError, match=r"latin1.txt' is not UTF-8 text \(byte 3"):
            backend.load_text_corpus(path=path)
        with pytest.raises(TypeError, match="max_bytes must be None or an int"):
            backend.load_text_corpus(max_bytes=1.5, path=path)
        with pytest.raises(ValueError, match="max_bytes must be >= 0"):
            backend.load_text_corpus(max_bytes=-1, path=path)

"""File readers under adversarial files: every field checked, errors name the file and the field.

Covers the safetensors reader (both backends share its header checks, and their outcomes must
agree), config dictionaries, tokenizer files and IDX files. A corrupt file gets the reader's error
class (a ValueError) or, where the damage happens to leave a valid file, a correct load.
"""

from __future__ import annotations

import json
import random
import struct

import numpy as np
import pytest
from safetensors.numpy import load as st_load

import fast
import reference
from reference import CheckpointError
from tests.adversarial.harness import INTERNAL_MESSAGES

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

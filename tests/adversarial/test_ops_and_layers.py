"""Bad arguments for every public op, layer, loss, attention op, generator function and config.

A table names each function's arguments with a kind and a valid value; per kind, generators make
bad values (wrong type, wrong dtype, wrong rank, ragged, out of range, NaN/inf, empty, huge) and
layout variants (non-contiguous, read-only, Fortran order). Every case runs in a child interpreter
(`harness.run_many`, one child per backend per group), so a crash or a hang fails the test
instead of killing the run. The rule (issue: memory safety and clear errors):

- a value marked "error" must get a clear ValueError/TypeError naming the argument, in both
  backends, of the same type;
- a value marked "either" may instead give a result, which must equal the reference's result
  (and the reference must accept it too);
- a layout variant ("ok") must give the reference's result.

Run with `-s` for the summary counts.
"""

from __future__ import annotations

import ast
import json
import math
from collections import Counter
from dataclasses import dataclass, field

import pytest

from tests.adversarial.harness import is_clear_error, run_many

SETUP = """
import dataclasses, json, math
import numpy as np
import {backend} as m
FAST = m.__name__ == "fast"
NAN, INF = float("nan"), float("inf")

def _plain(v):
    if hasattr(v, "tolist"):
        return _plain(v.tolist())
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if dataclasses.is_dataclass(v):
        return _plain(dataclasses.astuple(v))
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, int):
        return v
    return float(v)

def _show(v):
    return json.dumps(_plain(v))

def _arr(a):
    return np.asarray(a) if FAST else np.asarray(a).tolist()

def _noncontig(v):
    a = np.asarray(v, dtype=np.float64)
    wide = np.repeat(a[..., None], 2, axis=-1)
    out = wide[..., 0]
    return out if FAST else out.tolist()

def _readonly(v):
    a = np.array(v, dtype=np.float64)
    a.flags.writeable = False
    return a if FAST else a.tolist()

def _fortran(v):
    a = np.asfortranarray(np.array(v, dtype=np.float64))
    return a if FAST else a.tolist()

def _with(v, value):
    a = np.array(v, dtype=np.float64)
    a.reshape(-1)[0] = value
    return a if FAST else a.tolist()

def _shapes(module):
    return [list(np.shape(p.data)) for _, p in module.named_parameters()]
"""


# -- bad values per kind: (label, code, expectation) ---------------------------------------------
def _tensor(valid: str) -> list[tuple[str, str, str]]:
    return [
        ("str", "'abc'", "error"),
        ("none", "None", "error"),
        ("dict", "{'a': 1}", "error"),
        ("ragged", "[[1.0, 2.0], [3.0]]", "error"),
        ("strings", "[['a', 'b'], ['c', 'd']]", "error"),
        ("complex", f"_arr(np.asarray({valid}) + 1j)", "error"),
        ("extra_rank", f"[{valid}]", "either"),
        ("scalar", "1.5", "either"),
        ("empty", "[]", "either"),
        ("nan", f"_with({valid}, NAN)", "either"),
        ("inf", f"_with({valid}, INF)", "either"),
        ("huge", f"_with({valid}, 1e308)", "either"),
        ("noncontig", f"_noncontig({valid})", "ok"),
        ("readonly", f"_readonly({valid})", "ok"),
        ("fortran", f"_fortran({valid})", "ok"),
    ]


def _ids(valid: str) -> list[tuple[str, str, str]]:
    return [
        ("str", "'abc'", "error"),
        ("none", "None", "error"),
        ("floats", "[[0.5, 1.0]]", "error"),
        ("bools", "[[True, False]]", "error"),
        ("negative", "[[0, -1]]", "error"),
        ("too_big", "[[0, 3]]", "error"),
        ("beyond_int64", "[[0, 2**70]]", "error"),
        ("uint64_top", "_arr(np.array([[0, 2**63]], dtype=np.uint64))", "error"),
        ("ragged", "[[0, 1], [1]]", "error"),
        ("readonly", f"_arr(np.require(np.array({valid}), requirements='C'))", "ok"),
    ]


def _count(low: int) -> list[tuple[str, str, str]]:
    return [
        ("float", "1.5", "error"),
        ("str", "'3'", "error"),
        ("none", "None", "error"),
        ("bool", "True", "error"),
        ("negative", "-1", "error"),
        ("below_low", str(low - 1), "error"),
        ("huge", "2**62", "error"),
        ("beyond_u64", "2**70", "error"),
    ]


def _prob() -> list[tuple[str, str, str]]:
    return [
        ("negative", "-1.0", "error"),
        ("two", "2.0", "error"),
        ("nan", "NAN", "error"),
        ("inf", "INF", "error"),
        ("str", "'0.1'", "error"),
        ("none", "None", "error"),
    ]


def _u64() -> list[tuple[str, str, str]]:
    return [
        ("negative", "-1", "error"),
        ("beyond_u64", "2**64", "error"),
        ("float", "1.0", "error"),
        ("str", "'1'", "error"),
        ("none", "None", "error"),
    ]


def _eps() -> list[tuple[str, str, str]]:
    return [
        ("zero", "0.0", "error"),
        ("negative", "-1e-5", "error"),
        ("nan", "NAN", "error"),
        ("inf", "INF", "error"),
        ("str", "'1e-5'", "error"),
        ("none", "None", "error"),
    ]


def _choice() -> list[tuple[str, str, str]]:
    return [("unknown", "'nope'", "error"), ("int", "3", "error"), ("none", "None", "error")]


def _flag() -> list[tuple[str, str, str]]:
    return [("str", "'yes'", "error"), ("none", "None", "error")]


KINDS = {
    "tensor": _tensor,
    "ids": _ids,
    "count0": lambda v: _count(0),
    "count1": lambda v: _count(1),
    "prob": lambda v: _prob(),
    "u64": lambda v: _u64(),
    "eps": lambda v: _eps(),
    "choice": lambda v: _choice(),
    "flag": lambda v: _flag(),
}


@dataclass
class Spec:
    """One public function: `call` is a format string over the argument names; `show` turns
    the call's value into what is compared (`{out}` is the value)."""

    name: str
    call: str
    args: dict[str, tuple[str, str]]  # name -> (kind, valid code)
    show: str = "_show({out})"
    group: str = "layers"
    # generated values that are valid for this argument (bias=None: no bias): a result is fine
    valid_labels: dict[str, tuple[str, ...]] = field(default_factory=dict)


X23 = "[[1.0, 2.0, 4.0], [0.5, -1.0, 3.0]]"
W3 = "[[0.5, -0.5, 1.0], [1.0, 2.0, 0.0]]"  # (2, 3): out_in for C_in = 3
Q4 = "[[[[1.0, 0.0], [0.5, 1.0]]]]"  # (1, 1, 2, 2)
X3 = "[[[1.0, 2.0, 3.0, 4.0], [0.5, -1.0, 3.0, 0.0]]]"  # (1, 2, 4)
LOGITS = "[[[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]]]"  # (1, 2, 3)
K2 = "[[[1.0, 2.0], [0.5, -1.0]]]"  # (1, 2, 2): one KV head of size 2 for X3's two heads

SPECS = [
    # layers: forward ops
    Spec("embedding_forward", "m.embedding_forward({weight}, {idx})[0]",
         {"weight": ("tensor", W3), "idx": ("ids", "[[0, 1]]")}),
    Spec("position_ids", "m.position_ids({B}, {T}, {start})",
         {"B": ("count0", "2"), "T": ("count0", "3"), "start": ("count0", "1")}),
    Spec("position_embedding_forward",
         "m.position_embedding_forward({weight}, {B}, {T}, {start})[0]",
         {"weight": ("tensor", W3), "B": ("count0", "2"), "T": ("count0", "1"),
          "start": ("count0", "1")}),
    Spec("sinusoidal_position_encoding", "m.sinusoidal_position_encoding({B}, {T}, {C}, {start})",
         {"B": ("count0", "1"), "T": ("count0", "2"), "C": ("count1", "4"),
          "start": ("count0", "3")}),
    Spec("normal_tensor", "m.normal_tensor({shape}, {std}, {seed}, {stream})",
         {"seed": ("u64", "1"), "stream": ("u64", "2")},
         ),
    Spec("linear_forward", "m.linear_forward({x}, {weight}, {bias}, {weight_layout})[0]",
         {"x": ("tensor", X23), "weight": ("tensor", W3), "bias": ("tensor", "[0.5, -1.0]"),
          "weight_layout": ("choice", "'out_in'")}, valid_labels={"bias": ("none",)}),
    Spec("layer_norm_forward", "m.layer_norm_forward({x}, {weight}, {bias}, {eps})[0]",
         {"x": ("tensor", X23), "weight": ("tensor", "[1.0, 0.5, 2.0]"),
          "bias": ("tensor", "[0.0, 1.0, -1.0]"), "eps": ("eps", "1e-5")}),
    Spec("activation_forward", "m.activation_forward({x}, {activation})[0]",
         {"x": ("tensor", X23), "activation": ("choice", "'gelu'")}),
    Spec("dropout_keep", "m.dropout_keep({n}, {p}, {seed}, {stream}, {start})",
         {"n": ("count0", "5"), "p": ("prob", "0.5"), "seed": ("u64", "3"),
          "stream": ("u64", "4"), "start": ("u64", "2")}),
    Spec("dropout_forward", "m.dropout_forward({x}, {p}, {seed}, {stream})[0]",
         {"x": ("tensor", X23), "p": ("prob", "0.25"), "seed": ("u64", "3"),
          "stream": ("u64", "4")}),
    Spec("dropout_stream", "m.dropout_stream({step}, {site})",
         {"step": ("u64", "3"), "site": ("u64", "2")}),
    Spec("residual_forward", "m.residual_forward({x}, {y})[0]",
         {"x": ("tensor", X23), "y": ("tensor", X23)}),
    Spec("cross_entropy_forward", "m.cross_entropy_forward({logits}, {targets})[0]",
         {"logits": ("tensor", LOGITS), "targets": ("ids", "[[0, 2]]")}),
    # layers: backward ops (a bad upstream gradient)
    Spec("linear_backward", "m.linear_backward({dout}, m.linear_forward({X23}, {W3})[1])",
         {"dout": ("tensor", "[[1.0, 2.0], [0.5, -1.0]]")}),
    Spec("layer_norm_backward",
         "m.layer_norm_backward({dout}, m.layer_norm_forward({X23}, [1.0]*3, [0.0]*3)[1])",
         {"dout": ("tensor", X23)}),
    Spec("activation_backward", "m.activation_backward({dout}, m.activation_forward({X23})[1])",
         {"dout": ("tensor", X23)}),
    Spec("dropout_backward",
         "m.dropout_backward({dout}, m.dropout_forward({X23}, 0.5, 1, 2)[1])",
         {"dout": ("tensor", X23)}),
    Spec("embedding_backward",
         "m.embedding_backward({dout}, m.embedding_forward({W3}, [[0, 1]])[1])",
         {"dout": ("tensor", "[[[1.0, 2.0, 3.0], [0.5, -1.0, 3.0]]]")}),
    Spec("residual_backward", "m.residual_backward({dout}, m.residual_forward({X23}, {X23})[1])",
         {"dout": ("tensor", X23)}),
    # the modern decoder's ops
    Spec("rms_norm_forward", "m.rms_norm_forward({x}, {weight}, {eps})[0]",
         {"x": ("tensor", X23), "weight": ("tensor", "[1.0, 0.5, 2.0]"), "eps": ("eps", "1e-6")}),
    Spec("rope_forward", "m.rope_forward({x}, {n_head}, {start}, {theta})[0]",
         {"x": ("tensor", X3), "n_head": ("count1", "2"), "start": ("count0", "3"),
          "theta": ("eps", "500.0")}),
    Spec("swiglu_forward", "m.swiglu_forward({gate}, {up})[0]",
         {"gate": ("tensor", X23), "up": ("tensor", X23)}),
    Spec("rms_norm_backward",
         "m.rms_norm_backward({dout}, m.rms_norm_forward({X23}, [1.0]*3, 1e-6)[1])",
         {"dout": ("tensor", X23)}),
    Spec("rope_backward", f"m.rope_backward({{dout}}, m.rope_forward({X3}, 2)[1])",
         {"dout": ("tensor", X3)}),
    Spec("swiglu_backward", "m.swiglu_backward({dout}, m.swiglu_forward({X23}, {X23})[1])",
         {"dout": ("tensor", X23)}),
    # losses
    Spec("softmax", "m.softmax({row})", {"row": ("tensor", "[1.0, 2.0, 0.5]")}, group="losses"),
    Spec("log_softmax", "m.log_softmax({row})", {"row": ("tensor", "[1.0, 2.0, 0.5]")},
         group="losses"),
    Spec("mse_loss", "m.mse_loss({outputs}, {targets})",
         {"outputs": ("tensor", X23), "targets": ("tensor", X23)}, group="losses"),
    Spec("softmax_cross_entropy", "m.softmax_cross_entropy({logits}, {targets})",
         {"logits": ("tensor", X23), "targets": ("ids", "[0, 2]")}, group="losses"),
    # attention
    Spec("split_heads", "m.split_heads({x}, {n_head})",
         {"x": ("tensor", X3), "n_head": ("count1", "2")}, group="attention"),
    Spec("merge_heads", "m.merge_heads({x})", {"x": ("tensor", Q4)}, group="attention"),
    Spec("split_qkv", "m.split_qkv({qkv})", {"qkv": ("tensor", "[[[1.0, 2.0, 3.0]]]")},
         group="attention"),
    Spec("attention_forward",
         "m.attention_forward({q}, {k}, {v}, {causal}, None, {dropout_p}, {seed}, {stream})[0]",
         {"q": ("tensor", Q4), "k": ("tensor", Q4), "v": ("tensor", Q4),
          "causal": ("flag", "True"), "dropout_p": ("prob", "0.5"), "seed": ("u64", "1"),
          "stream": ("u64", "2")}, group="attention"),
    Spec("multi_head_attention_forward",
         "m.multi_head_attention_forward({q}, {k}, {v}, {n_head})[0]",
         {"q": ("tensor", X3), "k": ("tensor", X3), "v": ("tensor", X3),
          "n_head": ("count1", "2")}, group="attention"),
    Spec("grouped_query_attention_forward",
         "m.grouped_query_attention_forward({q}, {k}, {v}, {n_head}, {n_kv_head})[0]",
         {"q": ("tensor", X3), "k": ("tensor", K2), "v": ("tensor", K2),
          "n_head": ("count1", "2"), "n_kv_head": ("count1", "1")}, group="attention"),
    Spec("grouped_query_attention_backward",
         f"m.grouped_query_attention_backward({{dout}}, "
         f"m.grouped_query_attention_forward({X3}, {K2}, {K2}, 2, 1)[1])",
         {"dout": ("tensor", X3)}, group="attention"),
    # T5's ops and span corruption
    Spec("t5_layer_norm_forward", "m.t5_layer_norm_forward({x}, {weight}, {eps})[0]",
         {"x": ("tensor", X23), "weight": ("tensor", "[1.0, 0.5, 2.0]"),
          "eps": ("eps", "1e-6")}, group="t5"),
    Spec("t5_layer_norm_backward",
         "m.t5_layer_norm_backward({dout}, m.t5_layer_norm_forward({X23}, [1.0]*3)[1])",
         {"dout": ("tensor", X23)}, group="t5"),
    Spec("relative_position_bucket",
         "m.relative_position_bucket({relative_position}, {bidirectional}, {num_buckets}, "
         "{max_distance})",
         {"relative_position": ("count0", "-5"), "bidirectional": ("flag", "True"),
          "num_buckets": ("count1", "8"), "max_distance": ("count1", "16")},
         valid_labels={"relative_position": ("negative", "below_low", "huge", "beyond_u64")},
         group="t5"),
    Spec("relative_position_bias_forward",
         "m.relative_position_bias_forward({weight}, {Tq}, {Tk}, {bidirectional}, "
         "{max_distance})[0]",
         {"weight": ("tensor", "[[0.5, 1.0]] * 4"), "Tq": ("count1", "2"), "Tk": ("count1", "3"),
          "bidirectional": ("flag", "False"), "max_distance": ("count1", "6")}, group="t5"),
    Spec("relative_position_bias_backward",
         "m.relative_position_bias_backward({dout}, "
         "m.relative_position_bias_forward([[0.5, 1.0]] * 4, 2, 3)[1])",
         {"dout": ("tensor", "[[[1.0, 2.0, 3.0], [0.5, -1.0, 3.0]]] * 2")}, group="t5"),
    Spec("t5_attention_forward",
         "m.t5_attention_forward({q}, {k}, {v}, {position_bias}, {causal}, None, {dropout_p}, "
         "{seed}, {stream})[0]",
         {"q": ("tensor", Q4), "k": ("tensor", Q4), "v": ("tensor", Q4),
          "position_bias": ("tensor", "[[[0.5, -1.0], [1.0, 0.0]]]"),
          "causal": ("flag", "True"), "dropout_p": ("prob", "0.5"), "seed": ("u64", "1"),
          "stream": ("u64", "2")}, valid_labels={"position_bias": ("none",)}, group="t5"),
    Spec("t5_attention_backward",
         "m.t5_attention_backward({dout}, m.t5_attention_forward({Q4}, {Q4}, {Q4})[1])",
         {"dout": ("tensor", Q4)}, group="t5"),
    Spec("gated_gelu_forward", "m.gated_gelu_forward({gate}, {up})[0]",
         {"gate": ("tensor", X23), "up": ("tensor", X23)}, group="t5"),
    Spec("gated_gelu_backward",
         "m.gated_gelu_backward({dout}, m.gated_gelu_forward({X23}, {X23})[1])",
         {"dout": ("tensor", X23)}, group="t5"),
    Spec("span_corruption",
         "m.span_corruption({sequences}, [99, 98], {eos_id}, {seed}, {stream}, "
         "{noise_density}, 3.0)",
         {"sequences": ("ids", "[[0, 1, 2]]"), "eos_id": ("count0", "1"), "seed": ("u64", "1"),
          "stream": ("u64", "2"), "noise_density": ("prob", "0.3")},
         valid_labels={"sequences": ("too_big", "beyond_int64", "uint64_top"),
                       "eos_id": ("huge", "beyond_u64"), "noise_density": ()},
         group="t5"),
    Spec("T5Config",
         "m.T5Config(vocab_size={vocab_size}, d_model=4, d_kv=2, d_ff=8, num_layers=1, "
         "num_heads=2, relative_attention_num_buckets=4, relative_attention_max_distance=6, "
         "layer_norm_epsilon={layer_norm_epsilon})",
         {"vocab_size": ("count1", "6"), "layer_norm_epsilon": ("eps", "1e-6")}, group="t5"),
    # the generator
    Spec("random_u32", "m.random_u32({seed}, {stream}, {index})",
         {"seed": ("u64", "1"), "stream": ("u64", "2"), "index": ("u64", "3")}, group="rng"),
    Spec("random_u32s", "m.random_u32s({seed}, {stream}, {n}, {start})",
         {"seed": ("u64", "1"), "stream": ("u64", "2"), "n": ("count0", "5"),
          "start": ("u64", "3")}, group="rng"),
    Spec("uniforms", "m.uniforms({seed}, {stream}, {n}, {start})",
         {"seed": ("u64", "1"), "stream": ("u64", "2"), "n": ("count0", "5"),
          "start": ("u64", "3")}, group="rng"),
    Spec("permutation", "m.permutation({seed}, {stream}, {n})",
         {"seed": ("u64", "1"), "stream": ("u64", "2"), "n": ("count0", "6")}, group="rng"),
    # layers as modules, and the configs
    Spec("Embedding", "m.Embedding({num_embeddings}, {embedding_dim})",
         {"num_embeddings": ("count1", "5"), "embedding_dim": ("count1", "3")},
         show="_show(_shapes({out}))", group="modules"),
    Spec("Linear", "m.Linear({in_features}, {out_features}, {bias})",
         {"in_features": ("count1", "4"), "out_features": ("count1", "3"),
          "bias": ("flag", "True")}, show="_show(_shapes({out}))", group="modules"),
    Spec("Conv1D", "m.Conv1D({in_features}, {out_features})",
         {"in_features": ("count1", "4"), "out_features": ("count1", "3")},
         show="_show(_shapes({out}))", group="modules"),
    Spec("LayerNorm", "m.LayerNorm({dim}, {eps})",
         {"dim": ("count1", "4"), "eps": ("eps", "1e-5")}, show="_show(_shapes({out}))",
         group="modules"),
    Spec("RMSNorm", "m.RMSNorm({dim}, {eps})",
         {"dim": ("count1", "4"), "eps": ("eps", "1e-6")}, show="_show(_shapes({out}))",
         group="modules"),
    Spec("LlamaConfig",
         "m.LlamaConfig(vocab_size={vocab_size}, hidden_size=4, intermediate_size=3, "
         "num_hidden_layers=1, num_attention_heads=2, num_key_value_heads={num_key_value_heads}, "
         "rms_norm_eps={rms_norm_eps}).num_key_value_heads",
         {"vocab_size": ("count1", "7"), "num_key_value_heads": ("count1", "1"),
          "rms_norm_eps": ("eps", "1e-6")}, group="modules",
         valid_labels={"num_key_value_heads": ("none",)}),
    Spec("Activation", "m.Activation({activation})", {"activation": ("choice", "'relu'")},
         show="_show({out}.activation)", group="modules"),
    Spec("Dropout", "m.Dropout({p})", {"p": ("prob", "0.1")}, show="_show({out}.p)",
         group="modules"),
    Spec("GPTConfig",
         "m.GPTConfig(vocab_size={vocab_size}, block_size={block_size}, n_layer=1, "
         "n_head={n_head}, n_embd=4, layer_norm_epsilon={layer_norm_epsilon})",
         {"vocab_size": ("count1", "7"), "block_size": ("count1", "4"),
          "n_head": ("count1", "2"), "layer_norm_epsilon": ("eps", "1e-5")}, group="modules"),
    Spec("BERTConfig",
         "m.BERTConfig(vocab_size={vocab_size}, block_size=8, n_layer=1, n_head=2, n_embd=4, "
         "layer_norm_eps={layer_norm_eps})",
         {"vocab_size": ("count1", "9"), "layer_norm_eps": ("eps", "1e-12")}, group="modules"),
    Spec("TransformerConfig",
         "m.TransformerConfig(src_vocab_size={src_vocab_size}, tgt_vocab_size=6, d_model=4, "
         "nhead=2, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=8, max_len=5, "
         "layer_norm_eps={layer_norm_eps})",
         {"src_vocab_size": ("count1", "6"), "layer_norm_eps": ("eps", "1e-5")},
         group="modules"),
]  # fmt: skip

# normal_tensor's shape is a tuple of sizes, not a tensor: its own bad values
SHAPE_CASES = [
    ("negative", "(-1, 4)", "error"),
    ("float", "(2.0, 3)", "error"),
    ("str", "'2x3'", "error"),
    ("none", "None", "error"),
    ("huge", "(2**40, 2**40)", "error"),
]
STD_CASES = [("nan", "NAN", "error"), ("negative", "-0.02", "error"), ("str", "'0.02'", "error")]


def _cases(spec: Spec) -> dict[str, tuple[str, str, str]]:
    """case name -> (code, argument, expectation); the valid call comes first as 'valid'."""
    valid = {a: code for a, (_, code) in spec.args.items()}
    extra: dict[str, list[tuple[str, str, str]]] = {}
    if spec.name == "normal_tensor":
        valid.update(shape="(2, 3)", std="0.5")
        extra = {"shape": SHAPE_CASES, "std": STD_CASES}

    def code_for(**over) -> str:
        out = spec.call.format(X23=X23, W3=W3, Q4=Q4, **{**valid, **over})
        return "result = " + spec.show.format(out=out)

    cases = {f"{spec.name}/valid": (code_for(), "", "ok")}
    generated = {a: KINDS[kind](code) for a, (kind, code) in spec.args.items()}
    for arg, values in {**generated, **extra}.items():
        for label, bad, expect in values:
            if label in spec.valid_labels.get(arg, ()):
                expect = "either"
            cases[f"{spec.name}/{arg}/{label}"] = (code_for(**{arg: bad}), arg, expect)
    return cases


ALL_CASES: dict[str, tuple[str, str, str]] = {}
GROUPS: dict[str, list[str]] = {}
for _spec in SPECS:
    for _name, _case in _cases(_spec).items():
        ALL_CASES[_name] = _case
        GROUPS.setdefault(_spec.group, []).append(_name)


def _value(outcome):
    return json.loads(ast.literal_eval(outcome.result))


def _same(a, b, rtol=1e-9, atol=1e-12) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y, rtol, atol) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        if not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
            return False
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b or abs(a - b) <= atol + rtol * abs(b)
    return a == b


@pytest.fixture(scope="module")
def outcomes():
    """{backend: {case: Outcome}}, each group's cases in one child per backend."""
    found = {}
    for backend in ("reference", "fast"):
        found[backend] = {}
        for names in GROUPS.values():
            cases = {n: ALL_CASES[n][0] for n in names}
            found[backend].update(
                run_many(SETUP.format(backend=backend), cases, timeout=600, case_timeout=30)
            )
    return found


def _verdict(name: str, ref, fast) -> tuple[str, str]:
    """('clear' | 'result' | failure kind, detail) for one case across both backends."""
    _, arg, expect = ALL_CASES[name]
    for backend, o in (("reference", ref), ("fast", fast)):
        if o.kind in ("signal", "timeout", "crash"):
            return "crash/hang", f"{backend}: {o.describe()}"
    if ref.kind == "error" or fast.kind == "error":
        if expect == "ok":
            return "refused a valid layout", f"ref {ref.describe()} | fast {fast.describe()}"
        for backend, o in (("reference", ref), ("fast", fast)):
            if not is_clear_error(o, arg):
                return "unclear error", f"{backend}: {o.describe()}"
        if ref.type != fast.type:
            return "different errors", f"ref {ref.describe()} | fast {fast.describe()}"
        return "clear", ""
    if expect == "error":
        return "silent result", f"ref {ref.describe()} | fast {fast.describe()}"
    if not _same(_value(fast), _value(ref)):
        return "wrong result", f"ref {ref.describe()} | fast {fast.describe()}"
    return "result", ""


# Cases that still fail, named so that the list can only shrink: a case fixed without being
# removed here fails the test as surely as a new failure does.
KNOWN_FAILURES: frozenset[str] = frozenset()


def test_every_bad_argument_gets_a_clear_error_or_the_right_result(outcomes):
    counts: Counter = Counter()
    failures = {}
    for name in ALL_CASES:
        verdict, detail = _verdict(name, outcomes["reference"][name], outcomes["fast"][name])
        counts[verdict] += 1
        if verdict not in ("clear", "result"):
            failures[name] = f"{verdict}: {detail}"
    print(f"\nadversarial ops and layers: {len(ALL_CASES)} cases (each in both backends)")
    for verdict, n in sorted(counts.items()):
        print(f"  {verdict}: {n}")
    for name, why in sorted(failures.items()):
        print(f"  FAIL {name}: {why[:300]}")
    unexpected = sorted(set(failures) - KNOWN_FAILURES)
    fixed = sorted(KNOWN_FAILURES - set(failures))
    assert not unexpected, "\n".join(f"{n}: {failures[n][:400]}" for n in unexpected)
    assert not fixed, f"these now pass: remove them from KNOWN_FAILURES: {fixed}"


def test_a_numpy_operand_beside_a_device_array_is_refused_by_name():
    """layer norm and linear with x on the GPU and a numpy weight: a TypeError naming `weight`
    (it was "'numpy.flatiter' object is not callable"); runs under the CUDA simulator."""
    from tests.adversarial.harness import run_isolated

    code = """
    import numpy as np, fast
    from fast.device import to_device
    x = to_device(np.ones((2, 3)), "cuda")
    errors = []
    for call in (lambda: fast.layer_norm_forward(x, np.ones(3), np.zeros(3)),
                 lambda: fast.linear_forward(x, np.ones((2, 3)))):
        try:
            call()
            errors.append("accepted")
        except TypeError as e:
            errors.append(str(e))
    result = errors
    """
    outcome = run_isolated(code, env={"NUMBA_ENABLE_CUDASIM": "1"})
    assert outcome.kind == "ok", outcome.describe()
    for message in ast.literal_eval(outcome.result):
        assert message.startswith("weight must be a DeviceArray"), message

"""Interop with Hugging Face `transformers`: config files and checkpoint names, per family.

A model here is named and shaped like its Hugging Face twin, so moving weights is mostly a matter
of reading their `config.json` and renaming a few state-dict keys. Those rules live here, apart
from the models, for both backends to share:

- GPT-2 (`GPT2LMHeadModel`): `gpt2_config_to_hf` / `gpt2_config_from_hf` map `GPTConfig`'s
  fields to `GPT2Config`'s keys and back; `convert_hf_gpt2_state_dict` adds the `transformer.`
  prefix the official files lack and drops the causal-mask buffers and the tied head.
- LLaMA (`LlamaForCausalLM`): `llama_config_to_hf` / `llama_config_from_hf` (the rotary
  settings under both their old key, `rope_theta`, and their new one, `rope_parameters`);
  `convert_hf_llama_state_dict` drops a tied head's copy and the rotary frequency buffers.
- BERT (`BertForMaskedLM`, `BertForSequenceClassification`): `bert_config_to_hf` /
  `bert_config_from_hf`, `bert_classifier_config`, `convert_hf_bert_state_dict` (old
  gamma/beta names, tied copies, buffers, unused heads) and `load_bert_classifier_state` (a
  pre-training checkpoint starts a classifier, whose fresh parts are named in a warning).

The readers check every field they use for type and range (`config_fields`), and refuse the
variants these models do not compute with a ValueError naming the key. A reader returns the
config class's keyword arguments; the config class builds itself from them.
"""

from __future__ import annotations

import math
import re
import warnings
from typing import Any

from .config_fields import (
    bool_field,
    float_field,
    int_field,
    optional_int_field,
    require_dict,
    str_field,
)
from .rng import MASK64

GPT2_INIT_STD = 0.02  # GPT2Config's initializer_range, which GPT uses for every weight
# Hugging Face spells the tanh-approximated GELU two ways; both are the same function.
TANH_GELU_NAMES = ("gelu_new", "gelu_pytorch_tanh")


def _same_tensor(a: Any, b: Any) -> bool:
    """Whether two stored tensors are equal: nested lists, or a backend's arrays."""
    if isinstance(a, list) or isinstance(b, list):
        return a == b
    return a.shape == b.shape and bool((a == b).all())  # arrays compare element by element


# -- GPT-2 -----------------------------------------------------------------------------------------
def gpt2_config_to_hf(config: Any) -> dict[str, Any]:
    """The Hugging Face `GPT2Config` JSON for a `GPTConfig` (what `config.json` holds)."""
    return {
        "model_type": "gpt2",
        "architectures": ["GPT2LMHeadModel"],
        "vocab_size": config.vocab_size,
        "n_positions": config.block_size,
        "n_ctx": config.block_size,  # the older name of n_positions, still in GPT-2's files
        "n_embd": config.n_embd,
        "n_layer": config.n_layer,
        "n_head": config.n_head,
        "n_inner": None,  # None means 4 * n_embd
        "activation_function": "gelu_new",
        "layer_norm_epsilon": config.layer_norm_epsilon,
        "embd_pdrop": config.dropout,
        "resid_pdrop": config.dropout,
        "attn_pdrop": config.dropout,
        "initializer_range": GPT2_INIT_STD,
        "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False,
        "tie_word_embeddings": True,
        "use_cache": True,
        "bos_token_id": config.bos_token_id,
        "eos_token_id": config.eos_token_id,
        "model_archaeology": {"seed": config.seed},  # ours; transformers keeps it as-is
    }


def gpt2_config_from_hf(config: dict[str, Any]) -> dict[str, Any]:
    """`GPTConfig`'s keyword arguments from a Hugging Face GPT-2 `config.json` (ours, or the
    official one).

    Missing keys take `GPT2Config`'s defaults. Every field this model reads is checked for
    type and range (a TypeError or ValueError naming the key). Variants this model does not
    implement (an untied head, another activation, other attention scalings) raise a
    ValueError. A bos/eos id outside the vocabulary becomes None, as in foreign configs.
    """
    require_dict(config)
    model_type = config.get("model_type", "gpt2")
    if model_type != "gpt2":
        raise ValueError(f"config is not a GPT-2 config (model_type={model_type!r})")
    missing = [k for k in ("vocab_size", "n_embd", "n_layer", "n_head") if k not in config]
    if "n_positions" not in config and "n_ctx" not in config:
        missing.append("n_positions")
    if missing:
        raise ValueError(f"GPT-2 config lacks {missing}")
    sizes = {k: int_field(config, k) for k in ("vocab_size", "n_layer", "n_head", "n_embd")}
    block_size = int_field(config, "n_positions" if "n_positions" in config else "n_ctx")
    if sizes["n_embd"] % sizes["n_head"]:
        raise ValueError(
            f"config field n_embd must be divisible by n_head (each head takes n_embd / "
            f"n_head channels), got n_embd={sizes['n_embd']} and n_head={sizes['n_head']}"
        )
    rates = {
        key: float_field(config, key, 0.1, 0.0, 1.0)
        for key in ("embd_pdrop", "resid_pdrop", "attn_pdrop")
    }
    if len(set(rates.values())) != 1:
        raise ValueError(f"this GPT uses one dropout rate for all three sites, got {rates}")
    eps = float_field(config, "layer_norm_epsilon", 1e-5, 0.0, math.inf, low_open=True)
    ours = config.get("model_archaeology")
    ours = require_dict({} if ours is None else ours, "config field model_archaeology")
    seed = int_field(ours, "seed", 0, low=0, high=MASK64 + 1)
    activation = str_field(config, "activation_function", "gelu_new")
    if activation not in TANH_GELU_NAMES:
        raise ValueError(
            f"GPT-2 config has activation_function={activation!r}; this GPT needs one of "
            f"{TANH_GELU_NAMES} (GELU with the tanh approximation)"
        )
    n_inner = optional_int_field(config, "n_inner", None, low=1)
    if n_inner not in (None, 4 * sizes["n_embd"]):
        raise ValueError(
            f"GPT-2 config has n_inner={n_inner!r}; this GPT needs None or "
            f"{4 * sizes['n_embd']} (4 * n_embd)"
        )
    for key, needed in (
        ("scale_attn_weights", True),
        ("scale_attn_by_inverse_layer_idx", False),
        ("tie_word_embeddings", True),
        ("add_cross_attention", False),
    ):
        if bool_field(config, key, needed) != needed:
            raise ValueError(f"GPT-2 config has {key}={not needed!r}; this GPT needs {needed!r}")
    ids = {}
    for key in ("bos_token_id", "eos_token_id"):
        token_id = optional_int_field(config, key, None, low=-(2**63))
        inside = token_id is not None and 0 <= token_id < sizes["vocab_size"]
        ids[key] = token_id if inside else None
    return {
        **sizes,
        "block_size": block_size,
        "dropout": rates["embd_pdrop"],
        "layer_norm_epsilon": eps,
        "seed": seed,
        **ids,
    }


_GPT2_BUFFER = re.compile(r"transformer\.h\.\d+\.attn\.(bias|masked_bias)")


def convert_hf_gpt2_state_dict(state: dict[str, Any]) -> dict[str, Any]:
    """A Hugging Face GPT-2 state dict under our names: `wte.weight` -> `transformer.wte.weight`.

    The official files lack the `transformer.` prefix and carry the causal mask as buffers
    (`h.0.attn.bias`, `h.0.attn.masked_bias`); those are dropped, as is `lm_head.weight` once it
    is checked to equal the tied embedding.
    """
    out = {}
    for name, tensor in state.items():
        key = (
            name
            if name.startswith("transformer.") or name.startswith("lm_head.")
            else ("transformer." + name)
        )
        if not _GPT2_BUFFER.fullmatch(key):
            out[key] = tensor
    head = out.pop("lm_head.weight", None)
    wte = out.get("transformer.wte.weight")
    if head is not None and (wte is None or not _same_tensor(head, wte)):
        raise ValueError("lm_head.weight differs from transformer.wte.weight: this GPT ties them")
    return out


# -- LLaMA -----------------------------------------------------------------------------------------
LLAMA_SIZES = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
)


def llama_config_to_hf(config: Any) -> dict[str, Any]:
    """The Hugging Face `LlamaConfig` JSON of a `LlamaConfig` (what `config.json` holds)."""
    return {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        **{key: getattr(config, key) for key in LLAMA_SIZES},
        "num_key_value_heads": config.num_key_value_heads,
        "head_dim": config.hidden_size // config.num_attention_heads,
        "max_position_embeddings": config.max_position_embeddings,
        "hidden_act": "silu",
        "rms_norm_eps": config.rms_norm_eps,
        "rope_theta": config.rope_theta,  # the key transformers 4.x reads ...
        "rope_scaling": None,
        "rope_parameters": {"rope_type": "default", "rope_theta": config.rope_theta},  # ... 5.x
        "attention_bias": False,
        "mlp_bias": False,
        "attention_dropout": config.attention_dropout,
        "pretraining_tp": 1,
        "initializer_range": config.initializer_range,
        "tie_word_embeddings": config.tie_word_embeddings,
        "use_cache": True,
        "bos_token_id": config.bos_token_id,
        "eos_token_id": config.eos_token_id,
        "model_archaeology": {"seed": config.seed},  # ours; transformers keeps it as-is
    }


def _rope_theta(config: dict[str, Any]) -> float:
    """rope_theta from `rope_parameters` (transformers 5), else the top-level key (4.x), else
    10000; scaled or otherwise non-default rotary variants are refused."""
    params = config.get("rope_parameters")
    scaling = config.get("rope_scaling")
    for key, value in (("rope_parameters", params), ("rope_scaling", scaling)):
        if value is None:
            continue
        require_dict(value, f"config field {key}")
        kind = value.get("rope_type", value.get("type", "default"))
        if kind != "default":
            raise ValueError(
                f"LLaMA config has {key} of rope_type {kind!r}; this model computes only the "
                f"default rotary embedding (no scaling)"
            )
    if params is not None and "rope_theta" in params:
        return float_field(params, "rope_theta", None, 0.0, math.inf, low_open=True)
    return float_field(config, "rope_theta", 10000.0, 0.0, math.inf, low_open=True)


def llama_config_from_hf(config: dict[str, Any]) -> dict[str, Any]:
    """`LlamaConfig`'s keyword arguments from a Hugging Face LLaMA `config.json` (ours, or one
    `transformers` wrote).

    Missing optional keys take `transformers.LlamaConfig`'s defaults; every field read is checked
    for type and range (a TypeError or ValueError naming the key). Variants this model does not
    compute (biases, another activation, a head size other than hidden_size / heads, scaled
    rotary embeddings, tensor-parallel slicing) raise a ValueError. A bos/eos id outside the
    vocabulary, or a list of them, becomes None.
    """
    require_dict(config)
    model_type = config.get("model_type", "llama")
    if model_type != "llama":
        raise ValueError(f"config is not a LLaMA config (model_type={model_type!r})")
    missing = [k for k in LLAMA_SIZES if k not in config]
    if missing:
        raise ValueError(f"LLaMA config lacks {missing}")
    sizes = {k: int_field(config, k) for k in LLAMA_SIZES}
    heads = sizes["num_attention_heads"]
    kv = optional_int_field(config, "num_key_value_heads", None, low=1)
    head_dim = optional_int_field(config, "head_dim", None, low=1)
    if head_dim is not None and head_dim * heads != sizes["hidden_size"]:
        raise ValueError(
            f"LLaMA config has head_dim={head_dim}; this model needs hidden_size / "
            f"num_attention_heads = {sizes['hidden_size']} / {heads}"
        )
    act = str_field(config, "hidden_act", "silu")
    if act != "silu":
        raise ValueError(f"LLaMA config has hidden_act={act!r}; this model needs 'silu'")
    for key in ("attention_bias", "mlp_bias"):
        if bool_field(config, key, False):
            raise ValueError(f"LLaMA config has {key}=true; this model has no biases")
    if int_field(config, "pretraining_tp", 1) != 1:
        raise ValueError("LLaMA config has pretraining_tp != 1; this model needs 1")
    ours = config.get("model_archaeology")
    ours = require_dict({} if ours is None else ours, "config field model_archaeology")
    ids = {}
    for key in ("bos_token_id", "eos_token_id"):
        token_id = config.get(key)
        if isinstance(token_id, list):
            token_id = None  # several ids (LLaMA 3's eos): none of them is the one
        token_id = optional_int_field({key: token_id}, key, None, low=-(2**63))
        inside = token_id is not None and 0 <= token_id < sizes["vocab_size"]
        ids[key] = token_id if inside else None
    return {
        **sizes,
        "num_key_value_heads": heads if kv is None else kv,
        "max_position_embeddings": int_field(config, "max_position_embeddings", 2048),
        "rms_norm_eps": float_field(config, "rms_norm_eps", 1e-6, 0.0, math.inf, low_open=True),
        "rope_theta": _rope_theta(config),
        "tie_word_embeddings": bool_field(config, "tie_word_embeddings", False),
        "attention_dropout": float_field(config, "attention_dropout", 0.0, 0.0, 1.0),
        "initializer_range": float_field(config, "initializer_range", 0.02, 0.0, math.inf),
        "seed": int_field(ours, "seed", 0, low=0, high=MASK64 + 1),
        **ids,
    }


_LLAMA_BUFFER = re.compile(r"(model\.)?(layers\.\d+\.self_attn\.)?rotary_emb\.inv_freq")


def convert_hf_llama_state_dict(state: dict[str, Any], tied: bool) -> dict[str, Any]:
    """A Hugging Face LLaMA state dict under our names (theirs already): the rotary frequency
    buffers older files carry are dropped, and with a tied head (`tied`) so is `lm_head.weight`,
    once it is checked to equal the embedding."""
    out = {name: t for name, t in state.items() if not _LLAMA_BUFFER.fullmatch(name)}
    if tied:
        head = out.pop("lm_head.weight", None)
        embed = out.get("model.embed_tokens.weight")
        if head is not None and (embed is None or not _same_tensor(head, embed)):
            raise ValueError(
                "lm_head.weight differs from model.embed_tokens.weight, but the config ties "
                "them (tie_word_embeddings=true)"
            )
    return out


# -- BERT ------------------------------------------------------------------------------------------
# Checkpoint keys each BERT head does not use: BertForPreTraining's extras for the MLM model, an
# MLM head for the classifier (pre-training, then fine-tuning).
BERT_MLM_UNUSED = ("bert.pooler.", "cls.seq_relationship.")
BERT_CLASSIFIER_UNUSED = ("cls.",)


def bert_config_to_hf(config: Any) -> dict[str, Any]:
    """The Hugging Face `config.json` fields (BertForMaskedLM) of a `BERTConfig`, plus our
    `seed`."""
    return {
        "architectures": ["BertForMaskedLM"],
        "model_type": "bert",
        "vocab_size": config.vocab_size,
        "max_position_embeddings": config.block_size,
        "num_hidden_layers": config.n_layer,
        "num_attention_heads": config.n_head,
        "hidden_size": config.n_embd,
        "intermediate_size": config.intermediate_size,
        "type_vocab_size": config.type_vocab_size,
        "layer_norm_eps": config.layer_norm_eps,
        "hidden_dropout_prob": config.dropout,
        "attention_probs_dropout_prob": config.attn_dropout,
        "pad_token_id": config.pad_token_id,
        "initializer_range": config.initializer_range,
        "hidden_act": "gelu",  # Hugging Face's "gelu" is the exact erf form
        "position_embedding_type": "absolute",
        "tie_word_embeddings": True,
        "is_decoder": False,
        "seed": config.seed,
    }


def bert_classifier_config(config: Any, num_labels: int) -> dict[str, Any]:
    """The `config.json` of a `BertForSequenceClassification` with `num_labels` classes."""
    d = bert_config_to_hf(config)
    d["architectures"] = ["BertForSequenceClassification"]
    d["id2label"] = {str(i): f"LABEL_{i}" for i in range(num_labels)}
    d["label2id"] = {f"LABEL_{i}": i for i in range(num_labels)}
    d["problem_type"] = "single_label_classification"
    return d


def bert_config_from_hf(d: dict[str, Any]) -> dict[str, Any]:
    """`BERTConfig`'s keyword arguments from a Hugging Face BERT `config.json`, refusing
    variants this BERT does not compute.

    Missing keys take `BertConfig`'s defaults; every field read is checked for type and range
    (a TypeError or ValueError naming the key).
    """
    require_dict(d)
    for key, allowed in (
        ("model_type", ("bert",)),
        ("hidden_act", ("gelu",)),
        ("position_embedding_type", ("absolute",)),
    ):
        if key in d and str_field(d, key, None) not in allowed:
            raise ValueError(f"config.json: {key}={d[key]!r} is not supported (need {allowed})")
    for key, needed in (
        ("is_decoder", False),
        ("add_cross_attention", False),
        ("tie_word_embeddings", True),
    ):
        if bool_field(d, key, needed) != needed:
            raise ValueError(f"config.json: {key}={d[key]!r} is not supported (need {needed})")
    n_embd = int_field(d, "hidden_size", 768)
    n_head = int_field(d, "num_attention_heads", 12)
    if n_embd % n_head:
        raise ValueError(
            f"config field hidden_size ({n_embd}) must be divisible by num_attention_heads "
            f"({n_head})"
        )
    vocab_size = int_field(d, "vocab_size", 30522)
    pad_token_id = optional_int_field(d, "pad_token_id", 0)
    if pad_token_id is not None and pad_token_id >= vocab_size:
        raise ValueError(
            f"config field pad_token_id must be an id in [0, vocab_size={vocab_size}), got "
            f"{pad_token_id}"
        )
    dropout = float_field(d, "hidden_dropout_prob", 0.1, 0.0, 1.0)
    attn_dropout = d.get("attention_probs_dropout_prob")
    if attn_dropout is not None:
        attn_dropout = float_field(d, "attention_probs_dropout_prob", None, 0.0, 1.0)
    return {
        "vocab_size": vocab_size,
        "block_size": int_field(d, "max_position_embeddings", 512),
        "n_layer": int_field(d, "num_hidden_layers", 12),
        "n_head": n_head,
        "n_embd": n_embd,
        "intermediate_size": optional_int_field(d, "intermediate_size", None, low=1),
        "type_vocab_size": int_field(d, "type_vocab_size", 2),
        "layer_norm_eps": float_field(d, "layer_norm_eps", 1e-12, 0.0, math.inf, low_open=True),
        "dropout": dropout,
        "attn_dropout": attn_dropout,
        "pad_token_id": pad_token_id,
        "initializer_range": float_field(
            d, "initializer_range", 0.02, 0.0, math.inf, low_open=True
        ),
        "seed": int_field(d, "seed", 0, low=0, high=2**64),
    }


def convert_hf_bert_state_dict(state: dict[str, Any], unused: tuple[str, ...]) -> dict[str, Any]:
    """A Hugging Face BERT state dict in our names: old gamma/beta LayerNorm names renamed, tied
    copies (the decoder's weight and bias), buffers and keys starting with `unused` dropped."""
    out = {}
    for name, value in state.items():
        if name.endswith(".gamma"):
            name = name[: -len("gamma")] + "weight"
        elif name.endswith(".beta"):
            name = name[: -len("beta")] + "bias"
        out[name] = value
    word = out.get("bert.embeddings.word_embeddings.weight")
    decoder = out.pop("cls.predictions.decoder.weight", None)
    if decoder is not None and word is not None and not _same_tensor(decoder, word):
        raise ValueError(
            "checkpoint's cls.predictions.decoder.weight differs from "
            "bert.embeddings.word_embeddings.weight; this BERT ties them"
        )
    bias = out.pop("cls.predictions.decoder.bias", None)  # the same tensor as ...
    if bias is not None:
        out.setdefault("cls.predictions.bias", bias)  # ... this one, which some files omit
    return {
        n: v for n, v in out.items() if not n.endswith("position_ids") and not n.startswith(unused)
    }


def load_bert_classifier_state(model: Any, state: dict[str, Any], stacklevel: int = 2) -> None:
    """Load `state` (our names) into a BERT classifier: strictly, except that a checkpoint
    without the pooler and classifier (a BertForMaskedLM one) leaves those freshly initialised,
    with a warning naming them (`stacklevel` as for `warnings.warn`, counted from the caller)."""
    params = dict(model.named_parameters())
    missing = [n for n in params if n not in state]
    fresh = [n for n in missing if n.startswith(("bert.pooler.", "classifier."))]
    if len(fresh) != len(missing) or [n for n in state if n not in params]:
        model.load_state_dict(state)  # strict: raises naming what does not match
    if fresh:
        warnings.warn(
            f"freshly initialised (not in the checkpoint): {fresh}", stacklevel=stacklevel + 1
        )
    model.load_state_dict(state, strict=False)


# -- T5 --------------------------------------------------------------------------------------------
T5_SIZE_KEYS = (
    "vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_decoder_layers", "num_heads",
    "relative_attention_num_buckets", "relative_attention_max_distance",
)  # fmt: skip


def t5_config_to_hf(config: Any) -> dict[str, Any]:
    """The Hugging Face `T5Config` JSON for a `T5Config` (what `config.json` holds). An untied
    head is written `tie_word_embeddings` false, which is also what tells `transformers` not to
    rescale the decoder's output by d_model**-0.5."""
    gated = config.feed_forward_proj == "gated-gelu"
    return {
        "model_type": "t5",
        "architectures": ["T5ForConditionalGeneration"],
        "is_encoder_decoder": True,
        **{key: getattr(config, key) for key in T5_SIZE_KEYS},
        "dropout_rate": config.dropout_rate,
        "layer_norm_epsilon": config.layer_norm_epsilon,
        "initializer_factor": config.initializer_factor,
        "feed_forward_proj": config.feed_forward_proj,
        "dense_act_fn": "gelu_new" if gated else "relu",
        "is_gated_act": gated,
        "tie_word_embeddings": config.tie_word_embeddings,
        "scale_decoder_outputs": config.tie_word_embeddings,
        "use_cache": True,
        "pad_token_id": config.pad_token_id,
        "eos_token_id": config.eos_token_id,
        "decoder_start_token_id": config.decoder_start_token_id,
        "model_archaeology": {"seed": config.seed, "max_len": config.max_len},
    }


def t5_config_from_hf(config: dict[str, Any]) -> dict[str, Any]:
    """`T5Config`'s keyword arguments from a Hugging Face T5 `config.json` (ours, or one that
    `transformers` wrote).

    Missing keys take `T5Config`'s defaults (num_decoder_layers: num_layers; decoder start: the
    pad id). Every field read is checked for type and range (a TypeError or ValueError naming the
    key). Refused with a ValueError: another model_type, a feed_forward_proj other than "relu"
    and "gated-gelu", a decoder-only config. A head without the d_model**-0.5 rescaling
    (tie_word_embeddings or scale_decoder_outputs false) is read as untied.
    """
    require_dict(config)
    model_type = config.get("model_type", "t5")
    if model_type != "t5":
        raise ValueError(f"config is not a T5 config (model_type={model_type!r}, expected 't5')")
    proj = str_field(config, "feed_forward_proj", "relu")
    if proj not in ("relu", "gated-gelu"):
        raise ValueError(
            f"config.json: feed_forward_proj={proj!r} is not supported (need 'relu' or "
            "'gated-gelu')"
        )
    if not bool_field(config, "is_encoder_decoder", True) or bool_field(
        config, "is_decoder", False
    ):
        raise ValueError("config.json: this T5 is an encoder-decoder (is_encoder_decoder true)")
    # transformers 5 writes tie_word_embeddings true for every T5 and says "untied" (T5 v1.1:
    # no rescaling, its own head) with scale_decoder_outputs false; older files say it with
    # tie_word_embeddings false. Either way the head is untied here; a checkpoint without
    # lm_head.weight starts it from shared.weight (convert_hf_t5_state_dict).
    tied = bool_field(config, "tie_word_embeddings", True)
    tied = bool_field(config, "scale_decoder_outputs", tied) and tied
    ours = config.get("model_archaeology", {})
    require_dict(ours, "config field model_archaeology")
    num_layers = int_field(config, "num_layers", 6)
    pad = int_field(config, "pad_token_id", 0, low=0)
    kwargs = {
        "vocab_size": int_field(config, "vocab_size", 32128),
        "d_model": int_field(config, "d_model", 512),
        "d_kv": int_field(config, "d_kv", 64),
        "d_ff": int_field(config, "d_ff", 2048),
        "num_layers": num_layers,
        "num_decoder_layers": optional_int_field(config, "num_decoder_layers", None, low=1)
        or num_layers,
        "num_heads": int_field(config, "num_heads", 8),
        "relative_attention_num_buckets": int_field(config, "relative_attention_num_buckets", 32),
        "relative_attention_max_distance": int_field(
            config, "relative_attention_max_distance", 128
        ),
        "dropout_rate": float_field(config, "dropout_rate", 0.1, 0.0, 1.0),
        "layer_norm_epsilon": float_field(
            config, "layer_norm_epsilon", 1e-6, 0.0, 1.0, low_open=True
        ),
        "initializer_factor": float_field(
            config, "initializer_factor", 1.0, 0.0, math.inf, low_open=True
        ),
        "feed_forward_proj": proj,
        "tie_word_embeddings": tied,
        "pad_token_id": pad,
        "eos_token_id": int_field(config, "eos_token_id", 1, low=0),
        "decoder_start_token_id": optional_int_field(config, "decoder_start_token_id", None)
        if config.get("decoder_start_token_id") is not None
        else pad,
        "seed": int_field(ours, "seed", 0, low=0, high=MASK64 + 1),
        "max_len": int_field(ours, "max_len", 512),
    }
    return kwargs


def convert_hf_t5_state_dict(state: dict[str, Any], tied: bool) -> dict[str, Any]:
    """A Hugging Face `T5ForConditionalGeneration` state dict in our names: the stacks' copies of
    the shared embedding (`encoder.embed_tokens.weight`, `decoder.embed_tokens.weight`) dropped
    when equal to `shared.weight`, the head's too when `tied`; for an untied head a checkpoint
    without `lm_head.weight` ties it (as `transformers` does). The decoder's cross-attention
    never has a relative bias: a stray one is dropped, as `transformers` ignores it."""
    out = dict(state)
    out.pop("decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight", None)
    shared = out.get("shared.weight")
    copies = ["encoder.embed_tokens.weight", "decoder.embed_tokens.weight"]
    if tied:
        copies.append("lm_head.weight")
    elif "lm_head.weight" not in out and shared is not None:
        out["lm_head.weight"] = shared
    for name in copies:
        value = out.pop(name, None)
        if value is None:
            continue
        if shared is None:
            out["shared.weight"] = shared = value
        elif not _same_tensor(value, shared):
            raise ValueError(
                f"checkpoint's {name} differs from shared.weight; this T5 ties them"
                + ("" if name != "lm_head.weight" else " (tie_word_embeddings is true)")
            )
    return out

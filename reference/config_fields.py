"""A config's fields, each one's type and range checked before a model sees it.

A config file comes from anywhere (a hub download, a hand edit), so a field can hold any JSON
value: a string where a size belongs, a float id, a list. Each reader below takes the parsed dict
and a key, applies the field's default when the key is absent, and raises a TypeError (wrong type)
or a ValueError (out of range) that names the key, what it expects and what it got.

The config classes (`GPTConfig`, `BERTConfig`, `TransformerConfig`) check themselves on
construction with the functions at the end, so a model is never built from a bad size.
"""

from __future__ import annotations

import math
from typing import Any

from .checks import MAX_NUMEL, check_count, check_eps, check_int, check_interval, is_int
from .layers import check_dropout_p
from .rng import MASK64

_ABSENT = object()


def _field(config: dict, key: str, default: Any) -> Any:
    value = config.get(key, default)
    if value is _ABSENT:
        raise ValueError(f"config field {key} is missing")
    return value


def _got(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def require_dict(value: Any, name: str = "config") -> dict:
    """`value` if it is a dict (a JSON object), else a TypeError naming `name`."""
    if not isinstance(value, dict):
        raise TypeError(f"{name} must be a JSON object (a dict), got {_got(value)}")
    return value


def int_field(
    config: dict, key: str, default: Any = _ABSENT, low: int = 1, high: int | None = None
) -> int:
    """An int (not a bool) in [low, high); the default when the key is absent."""
    value = _field(config, key, default)
    if not is_int(value):
        raise TypeError(f"config field {key} must be an int, got {_got(value)}")
    if value < low or (high is not None and value >= high):
        interval = f">= {low}" if high is None else f"in [{low}, {high})"
        raise ValueError(f"config field {key} must be an int {interval}, got {value}")
    return value


def optional_int_field(config: dict, key: str, default: Any = None, low: int = 0) -> int | None:
    """None, or an int (not a bool) >= low."""
    value = _field(config, key, default)
    return None if value is None else int_field(config, key, default, low)


def float_field(
    config: dict, key: str, default: Any, low: float, high: float, *, low_open: bool = False
) -> float:
    """A number (int or float, not a bool) in [low, high), or (low, high) when `low_open`.
    NaN is never in range."""
    value = _field(config, key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"config field {key} must be a number, got {_got(value)}")
    inside = (low < value if low_open else low <= value) and value < high
    if not inside:
        interval = f"{'(' if low_open else '['}{low}, {'inf' if high == math.inf else high})"
        raise ValueError(f"config field {key} must be in {interval}, got {value!r}")
    return float(value)


def bool_field(config: dict, key: str, default: bool) -> bool:
    """true or false (JSON's booleans; 0 and 1 are not accepted)."""
    value = _field(config, key, default)
    if not isinstance(value, bool):
        raise TypeError(f"config field {key} must be true or false, got {_got(value)}")
    return value


def str_field(config: dict, key: str, default: Any) -> str:
    """A string (its allowed values are the caller's to check)."""
    value = _field(config, key, default)
    if not isinstance(value, str):
        raise TypeError(f"config field {key} must be a string, got {_got(value)}")
    return value


# -- the config classes' own checks, run on construction -------------------------------------------
def check_gpt_config(config: Any) -> None:
    """Every field of a `GPTConfig`: sizes ints in [1, MAX_NUMEL] with n_embd divisible by
    n_head, dropout in [0, 1), layer norm eps > 0, a 64-bit seed, bos/eos None or in the
    vocabulary."""
    for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
        check_int(name, getattr(config, name))
        check_count(name, getattr(config, name), 1, MAX_NUMEL)  # refuse what cannot be built
    if config.n_embd % config.n_head != 0:
        raise ValueError(
            f"n_embd must be divisible by n_head (each head takes n_embd / n_head channels), "
            f"got n_embd={config.n_embd} and n_head={config.n_head}"
        )
    check_interval("dropout", config.dropout, 0.0, 1.0, high_open=True)
    # > 0: with eps = 0 a constant row (variance 0) would divide by zero in layer norm
    check_eps(config.layer_norm_epsilon, "layer_norm_epsilon")
    check_int("seed", config.seed, low=0)
    if config.seed > MASK64:
        raise ValueError(f"seed must be in [0, 2**64), got {config.seed}")
    for name in ("bos_token_id", "eos_token_id"):
        value = getattr(config, name)
        if value is not None and not 0 <= check_int(name, value, low=0) < config.vocab_size:
            raise ValueError(
                f"{name} must be None or an id in [0, vocab_size={config.vocab_size}), got {value}"
            )


def check_bert_config(config: Any) -> None:
    """Every field of a `BERTConfig` (its defaults filled in): sizes positive ints (n_embd
    divisible by n_head), eps and initializer_range positive and finite, dropouts in [0, 1),
    pad_token_id None or in the vocabulary, a 64-bit seed."""
    sizes = ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "intermediate_size")
    for name in (*sizes, "type_vocab_size"):
        v = getattr(config, name)
        if not is_int(v):
            raise TypeError(f"BERTConfig.{name} must be an int, got {type(v).__name__}")
        if v < 1:
            raise ValueError(f"BERTConfig.{name} must be positive, got {v}")
        check_count(f"BERTConfig.{name}", v, 1, MAX_NUMEL)  # refuse what cannot be built
    if config.n_embd % config.n_head != 0:
        raise ValueError(
            f"BERTConfig.n_embd (hidden_size) = {config.n_embd} must be divisible by "
            f"n_head (num_attention_heads) = {config.n_head}"
        )
    for name in ("layer_norm_eps", "initializer_range"):
        v = getattr(config, name)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise TypeError(f"BERTConfig.{name} must be a float, got {type(v).__name__}")
        if not 0.0 < v < math.inf:  # also rejects NaN
            raise ValueError(f"BERTConfig.{name} must be positive and finite, got {v}")
    for name in ("dropout", "attn_dropout"):
        p = check_dropout_p(getattr(config, name), f"BERTConfig.{name}")
        if p >= 1.0:
            raise ValueError(f"BERTConfig.{name} must be in [0, 1), got {p}")
    if config.pad_token_id is not None:
        if not is_int(config.pad_token_id):
            raise TypeError(
                f"BERTConfig.pad_token_id must be an int or None, got "
                f"{type(config.pad_token_id).__name__}"
            )
        if not 0 <= config.pad_token_id < config.vocab_size:
            raise ValueError(
                f"BERTConfig.pad_token_id {config.pad_token_id} out of range for "
                f"vocab_size {config.vocab_size}"
            )
    if not is_int(config.seed) or not 0 <= config.seed < 1 << 64:
        raise ValueError(f"BERTConfig.seed must be an int in [0, 2**64), got {config.seed!r}")


def check_transformer_config(config: Any) -> None:
    """Every field of a `TransformerConfig`: sizes positive ints (d_model divisible by nhead),
    dropout in [0, 1), layer_norm_eps in (0, 1), pad/bos/eos distinct ids that fit their
    vocabularies, a 64-bit seed."""
    for name in (
        "src_vocab_size",
        "tgt_vocab_size",
        "d_model",
        "nhead",
        "num_encoder_layers",
        "num_decoder_layers",
        "dim_feedforward",
        "max_len",
    ):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be a positive int, got {type(value).__name__}")
        if value < 1:
            raise ValueError(f"{name} must be a positive int, got {value}")
        check_count(name, value, 1, MAX_NUMEL)  # refuse what cannot be built
    if config.d_model % config.nhead != 0:
        raise ValueError(
            f"d_model ({config.d_model}) must be divisible by nhead ({config.nhead}): each head "
            "takes d_model / nhead channels"
        )
    for name, low, high, low_ok in (("dropout", 0, 1, True), ("layer_norm_eps", 0, 1, False)):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a float, got {type(value).__name__}")
        if not (low <= value if low_ok else low < value) or not value < high:  # NaN fails
            interval = f"{'[' if low_ok else '('}{low}, {high})"
            raise ValueError(f"{name} must be a float in {interval}, got {value!r}")
    both = min(config.src_vocab_size, config.tgt_vocab_size)
    for name, limit in (
        ("pad_id", both),
        ("bos_id", config.tgt_vocab_size),
        ("eos_id", config.tgt_vocab_size),
    ):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int token id, got {type(value).__name__}")
        if not 0 <= value < limit:
            raise ValueError(f"{name} must be in [0, {limit}) to fit the vocabulary, got {value}")
    if len({config.pad_id, config.bos_id, config.eos_id}) != 3:
        raise ValueError(
            f"pad_id, bos_id and eos_id must be distinct, got {config.pad_id}, {config.bos_id}, "
            f"{config.eos_id}"
        )
    if isinstance(config.seed, bool) or not isinstance(config.seed, int):
        raise TypeError(f"seed must be an int, got {type(config.seed).__name__}")
    if not 0 <= config.seed < 1 << 64:  # a Philox key is 64 bits
        raise ValueError(f"seed must be in [0, 2**64), got {config.seed}")


def check_llama_config(config: Any) -> None:
    """Every field of a `LlamaConfig`: sizes ints in [1, MAX_NUMEL]; hidden_size divisible by
    num_attention_heads into heads of an even size (rotary embeddings turn pairs of channels);
    num_key_value_heads dividing num_attention_heads; rms_norm_eps > 0, rope_theta > 0 and
    initializer_range >= 0, all finite; attention_dropout in [0, 1); tie_word_embeddings a bool;
    a 64-bit seed; bos/eos None or in the vocabulary."""
    sizes = (
        "vocab_size",
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "max_position_embeddings",
    )
    for name in sizes:
        check_int(name, getattr(config, name))
        check_count(name, getattr(config, name), 1, MAX_NUMEL)  # refuse what cannot be built
    C, H, Hkv = config.hidden_size, config.num_attention_heads, config.num_key_value_heads
    if C % H != 0:
        raise ValueError(
            f"hidden_size must be divisible by num_attention_heads (each head takes hidden_size "
            f"/ num_attention_heads channels), got hidden_size={C} and num_attention_heads={H}"
        )
    if (C // H) % 2 != 0:
        raise ValueError(
            f"the head size hidden_size / num_attention_heads must be even for rotary "
            f"embeddings (channels rotate in pairs), got {C} / {H} = {C // H}"
        )
    if H % Hkv != 0:
        raise ValueError(
            f"num_key_value_heads must divide num_attention_heads (each key/value head serves "
            f"a group of query heads), got num_attention_heads={H} and num_key_value_heads={Hkv}"
        )
    check_eps(config.rms_norm_eps, "rms_norm_eps")
    for name in ("rope_theta", "initializer_range"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
        low_ok = name == "initializer_range"
        if not ((0.0 <= value if low_ok else 0.0 < value) and value < math.inf):  # NaN fails
            raise ValueError(
                f"{name} must be a finite number {'>=' if low_ok else '>'} 0, got {value!r}"
            )
    check_interval("attention_dropout", config.attention_dropout, 0.0, 1.0, high_open=True)
    if not isinstance(config.tie_word_embeddings, bool):
        raise TypeError(
            f"tie_word_embeddings must be True or False, got "
            f"{type(config.tie_word_embeddings).__name__} {config.tie_word_embeddings!r}"
        )
    check_int("seed", config.seed, low=0)
    if config.seed > MASK64:
        raise ValueError(f"seed must be in [0, 2**64), got {config.seed}")
    for name in ("bos_token_id", "eos_token_id"):
        value = getattr(config, name)
        if value is not None and not 0 <= check_int(name, value, low=0) < config.vocab_size:
            raise ValueError(
                f"{name} must be None or an id in [0, vocab_size={config.vocab_size}), got {value}"
            )


def check_t5_config(config: Any) -> None:
    """Every field of a `T5Config`: sizes ints in [1, MAX_NUMEL], at least 2 relative position
    buckets per direction and a max_distance past the exact ones, dropout in [0, 1),
    layer_norm_epsilon in (0, 1), initializer_factor > 0, a known feed_forward_proj, pad/eos/
    decoder-start ids in the vocabulary (pad and eos distinct), a 64-bit seed."""
    for name in (
        "vocab_size",
        "d_model",
        "d_kv",
        "d_ff",
        "num_layers",
        "num_decoder_layers",
        "num_heads",
        "relative_attention_num_buckets",
        "relative_attention_max_distance",
        "max_len",
    ):
        value = getattr(config, name)
        if not is_int(value):
            raise TypeError(f"T5Config.{name} must be an int, got {_got(value)}")
        check_count(f"T5Config.{name}", value, 1, MAX_NUMEL)  # refuse what cannot be built
    buckets = config.relative_attention_num_buckets
    if buckets < 4:
        raise ValueError(
            f"T5Config.relative_attention_num_buckets must be >= 4 (the encoder splits them "
            f"between two directions, each needing 2), got {buckets}"
        )
    if config.relative_attention_max_distance <= buckets // 2:
        raise ValueError(
            f"T5Config.relative_attention_max_distance must be > {buckets // 2} (the decoder's "
            f"exact buckets reach that far), got {config.relative_attention_max_distance}"
        )
    check_interval("T5Config.dropout_rate", config.dropout_rate, 0.0, 1.0, high_open=True)
    eps = check_eps(config.layer_norm_epsilon, "T5Config.layer_norm_epsilon")
    if eps >= 1.0:
        raise ValueError(f"T5Config.layer_norm_epsilon must be in (0, 1), got {eps}")
    factor = config.initializer_factor
    if isinstance(factor, bool) or not isinstance(factor, (int, float)):
        raise TypeError(f"T5Config.initializer_factor must be a number, got {_got(factor)}")
    if not 0.0 < factor < math.inf:
        raise ValueError(f"T5Config.initializer_factor must be positive and finite, got {factor}")
    if config.feed_forward_proj not in T5_FEED_FORWARD_PROJ:
        raise ValueError(
            f"T5Config.feed_forward_proj must be one of {T5_FEED_FORWARD_PROJ}, got "
            f"{config.feed_forward_proj!r}"
        )
    if not isinstance(config.tie_word_embeddings, bool):
        raise TypeError(
            f"T5Config.tie_word_embeddings must be a bool, got {_got(config.tie_word_embeddings)}"
        )
    for name in ("pad_token_id", "eos_token_id", "decoder_start_token_id"):
        value = getattr(config, name)
        if not is_int(value):
            raise TypeError(f"T5Config.{name} must be an int token id, got {_got(value)}")
        if not 0 <= value < config.vocab_size:
            raise ValueError(
                f"T5Config.{name} must be in [0, vocab_size={config.vocab_size}), got {value}"
            )
    if config.pad_token_id == config.eos_token_id:
        raise ValueError(
            f"T5Config.pad_token_id and eos_token_id must differ, both are {config.pad_token_id}"
        )
    if not is_int(config.seed) or not 0 <= config.seed <= MASK64:
        raise ValueError(f"T5Config.seed must be an int in [0, 2**64), got {config.seed!r}")


T5_FEED_FORWARD_PROJ = ("relu", "gated-gelu")  # T5 v1.0 and v1.1

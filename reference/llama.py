"""LLaMA: the modern decoder-only Transformer, with explicit backprop and a key/value cache.

The architecture nearly every open decoder uses since 2023 (Touvron et al., 2023; Hugging Face
`LlamaForCausalLM`). It is GPT-2 (`gpt.py`) with four parts replaced:

    x = embed_tokens[idx]                        token embeddings, no position table   (B, T, C)
    for each layer:                              pre-norm, with RMS norm (no mean, no bias)
        h = input_layernorm(x)
        q, k, v = q_proj(h), k_proj(h), v_proj(h)   k and v have Hkv heads only (grouped-query)
        q, k = rope(q), rope(k)                  positions enter as rotations of q and k
        x = x + o_proj(attn(q, k, v))            causal; query head h reads KV head h // (H/Hkv)
        h = post_attention_layernorm(x)
        x = x + down_proj(silu(gate_proj(h)) * up_proj(h))     SwiGLU feed-forward
    logits = norm(x) lm_head^T                   the head: embed_tokens (tied) or its own (B, T, V)

- RMS norm (`layers.rms_norm_forward`) divides each row by its root mean square and scales by a
  learned gain: one statistic instead of two, no bias.
- Rotary embeddings (`layers.rope_forward`) turn each pair of q and k channels by an angle
  proportional to the position, so q_t . k_s depends on t - s alone.
- Grouped-query attention (`attention.grouped_query_attention_forward`): H query heads share
  Hkv key/value heads, which shrinks k, v and the generation cache by H / Hkv.
- SwiGLU (`layers.swiglu_forward`): a gated feed-forward, silu(gate) * up, with three matrices.
- No linear layer has a bias.

Parameter names and shapes are Hugging Face's (`model.layers.0.self_attn.q_proj.weight` is
(C, C), out x in), and `save_pretrained` writes a directory `transformers` loads as
`LlamaForCausalLM`. The config's fields are `transformers.LlamaConfig`'s names.

Dimension legend: B batch, T time, C channels (hidden_size), H query heads, Hkv key/value heads,
hs head size = C / H, I intermediate size, V vocabulary, L layers.

Randomness shared with other backends (docs/design.md, "Random numbers"):
- dropout: LLaMA has one site per layer, the attention weights (`attention_dropout`, 0 in every
  released model): site 1 + l for layer l, with `dropout_seed` and `dropout_step` as in `GPT`.
- sampling: as `GPT.generate` (stream b = batch row, index i = i-th new token).
- initialisation (seeded, not shared): `normal_tensor(shape, initializer_range, config.seed,
  stream)` with stream 0 = embed_tokens, 1 = lm_head (when untied), and for layer l:
  2 + 7l ... 8 + 7l = q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj. RMS norm
  gains start at 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from .attention import (
    GroupedQueryAttentionCache,
    grouped_query_attention_backward,
    grouped_query_attention_forward,
)
from .config_fields import check_llama_config
from .gpt import CausalLM, KVCache
from .hf import convert_hf_llama_state_dict, llama_config_from_hf, llama_config_to_hf
from .layers import (
    Dropout,
    Embedding,
    Linear,
    RMSNorm,
    RotaryCache,
    SwiGLUCache,
    rope_backward,
    rope_forward,
    swiglu_backward,
    swiglu_forward,
)
from .module import Module, ModuleList
from .nested import add

Tensor = Any  # a nested list of floats


# -- configuration ---------------------------------------------------------------------------------
@dataclass
class LlamaConfig:
    """LLaMA's hyperparameters, named as `transformers.LlamaConfig`'s; checks itself on
    construction.

    `num_key_value_heads` None means num_attention_heads (plain multi-head attention); 1 is
    multi-query attention. `max_position_embeddings` is the longest context the model takes (the
    rotary angles have no table, but a model is trained for a length). `seed` seeds the initial
    weights and is the default dropout seed.

    >>> LlamaConfig(vocab_size=7, hidden_size=8, intermediate_size=12, num_hidden_layers=1,
    ...             num_attention_heads=2, num_key_value_heads=1).head_dim
    4
    """

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int | None = None
    max_position_embeddings: int = 2048
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    tie_word_embeddings: bool = False
    attention_dropout: float = 0.0
    initializer_range: float = 0.02
    seed: int = 0
    bos_token_id: int | None = None
    eos_token_id: int | None = None

    def __post_init__(self) -> None:
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        check_llama_config(self)  # each field's type and range (config_fields.py)
        for name in ("rms_norm_eps", "rope_theta", "attention_dropout", "initializer_range"):
            setattr(self, name, float(getattr(self, name)))

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def to_hf_dict(self) -> dict[str, Any]:
        """The Hugging Face `LlamaConfig` JSON for this model (what `config.json` holds)."""
        return llama_config_to_hf(self)

    @classmethod
    def from_hf_dict(cls, config: dict[str, Any]) -> LlamaConfig:
        """Read a Hugging Face LLaMA `config.json`; see `hf.llama_config_from_hf`."""
        return cls(**llama_config_from_hf(config))


# -- the blocks ------------------------------------------------------------------------------------
class _AttentionCaches(NamedTuple):
    """What `LlamaAttention.backward` needs: the rotary caches of q and k and the grouped-query
    attention's cache."""

    q_rope: RotaryCache
    k_rope: RotaryCache
    attention: GroupedQueryAttentionCache


class LlamaAttention(Module):
    """Causal grouped-query self-attention with rotary positions (Hugging Face `LlamaAttention`):
    q_proj makes H heads, k_proj and v_proj Hkv heads each, o_proj mixes the heads back."""

    def __init__(self, config: LlamaConfig, stream: int):
        super().__init__()
        C, hs = config.hidden_size, config.head_dim
        self.n_head, self.n_kv_head = config.num_attention_heads, config.num_key_value_heads
        self.theta = config.rope_theta
        init = dict(std=config.initializer_range, seed=config.seed)
        Ckv = self.n_kv_head * hs
        self.q_proj = Linear(C, C, False, stream=stream, **init)
        self.k_proj = Linear(C, Ckv, False, stream=stream + 1, **init)
        self.v_proj = Linear(C, Ckv, False, stream=stream + 2, **init)
        self.o_proj = Linear(C, C, False, stream=stream + 3, **init)
        self.attn_dropout = Dropout(config.attention_dropout)  # p, seed, stream of the weights
        self._cache: _AttentionCaches | None = None

    def forward(self, x: Tensor, kv_cache: KVCache | None = None, layer: int = 0) -> Tensor:
        start = kv_cache.length if kv_cache is not None else 0  # the positions of these tokens
        q, q_rope = rope_forward(self.q_proj(x), self.n_head, start, self.theta)  # (B, T, C)
        k, k_rope = rope_forward(self.k_proj(x), self.n_kv_head, start, self.theta)  # (B, T, Ckv)
        v = self.v_proj(x)  # (B, T, Ckv)
        if kv_cache is not None:
            k, v = kv_cache.extend(layer, k, v)  # (B, T_past + T, Ckv): only the KV heads
        d = self.attn_dropout
        y, attention = grouped_query_attention_forward(
            q,
            k,
            v,
            self.n_head,
            self.n_kv_head,
            causal=True,
            dropout_p=d.effective_p(),
            seed=d.seed,
            stream=d.stream,
        )  # (B, T, C)
        self._cache = _AttentionCaches(q_rope, k_rope, attention)
        return self.o_proj(y)  # (B, T, C)

    def backward(self, dout: Tensor) -> Tensor:
        if self._cache is None:
            raise RuntimeError("LlamaAttention.backward called before forward")
        dy = self.o_proj.backward(dout)  # (B, T, C)
        dq, dk, dv = grouped_query_attention_backward(dy, self._cache.attention)
        dq = rope_backward(dq, self._cache.q_rope)  # (B, T, C)
        dk = rope_backward(dk, self._cache.k_rope)  # (B, T, Ckv)
        # x fed all three projections: its gradient is the sum of the three
        dx = add(self.q_proj.backward(dq), self.k_proj.backward(dk))
        return add(dx, self.v_proj.backward(dv))


class LlamaMLP(Module):
    """The SwiGLU feed-forward (Hugging Face `LlamaMLP`): down(silu(gate(x)) * up(x)), C, I, C."""

    def __init__(self, config: LlamaConfig, stream: int):
        super().__init__()
        C, I = config.hidden_size, config.intermediate_size
        init = dict(std=config.initializer_range, seed=config.seed)
        self.gate_proj = Linear(C, I, False, stream=stream, **init)
        self.up_proj = Linear(C, I, False, stream=stream + 1, **init)
        self.down_proj = Linear(I, C, False, stream=stream + 2, **init)
        self._cache: SwiGLUCache | None = None

    def forward(self, x: Tensor) -> Tensor:
        h, self._cache = swiglu_forward(self.gate_proj(x), self.up_proj(x))  # (B, T, I)
        return self.down_proj(h)  # (B, T, C)

    def backward(self, dout: Tensor) -> Tensor:
        if self._cache is None:
            raise RuntimeError("LlamaMLP.backward called before forward")
        dgate, dup = swiglu_backward(self.down_proj.backward(dout), self._cache)  # (B, T, I)
        return add(self.gate_proj.backward(dgate), self.up_proj.backward(dup))


class LlamaDecoderLayer(Module):
    """One pre-norm block (Hugging Face `LlamaDecoderLayer`): two residual branches."""

    def __init__(self, config: LlamaConfig, layer: int):
        super().__init__()
        self.layer = layer
        self.self_attn = LlamaAttention(config, stream=2 + 7 * layer)
        self.mlp = LlamaMLP(config, stream=6 + 7 * layer)
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)

    def forward(self, x: Tensor, kv_cache: KVCache | None = None) -> Tensor:
        x = add(x, self.self_attn(self.input_layernorm(x), kv_cache, self.layer))  # (B, T, C)
        return add(x, self.mlp(self.post_attention_layernorm(x)))  # (B, T, C)

    def backward(self, dout: Tensor) -> Tensor:
        dx = add(dout, self.post_attention_layernorm.backward(self.mlp.backward(dout)))
        return add(dx, self.input_layernorm.backward(self.self_attn.backward(dx)))


class LlamaModel(Module):
    """The body without the head (Hugging Face `LlamaModel`): embeddings, layers, final norm."""

    def __init__(self, config: LlamaConfig):
        super().__init__()
        C, std = config.hidden_size, config.initializer_range
        self.embed_tokens = Embedding(config.vocab_size, C, std=std, seed=config.seed, stream=0)
        self.layers = ModuleList(
            [LlamaDecoderLayer(config, layer) for layer in range(config.num_hidden_layers)]
        )
        self.norm = RMSNorm(C, config.rms_norm_eps)

    def forward(self, idx: list[list[int]], kv_cache: KVCache | None = None) -> Tensor:
        x = self.embed_tokens(idx)  # (B, T, C): no positions here, the rotations add them
        for layer in self.layers:
            x = layer(x, kv_cache)  # (B, T, C)
        if kv_cache is not None:
            kv_cache.length += len(idx[0])
        return self.norm(x)  # (B, T, C)

    def backward(self, dout: Tensor) -> None:
        dx = self.norm.backward(dout)  # (B, T, C)
        for layer in reversed(list(self.layers)):
            dx = layer.backward(dx)
        self.embed_tokens.backward(dx)


# -- the model -------------------------------------------------------------------------------------
class Llama(CausalLM):
    """A LLaMA-family decoder with a language-model head (`LlamaForCausalLM`).

    `logits, loss = model(idx, targets)`; `model.zero_grad(); model.backward()` fills every
    `p.grad`; `model.generate(idx, max_new_tokens)` continues each row of idx, with a key/value
    cache that holds only the Hkv key/value heads. Training and generation are `CausalLM`'s,
    the same as GPT-2's; what differs is the trunk (`LlamaModel`) and the head, tied or not.
    """

    config_class = LlamaConfig
    context_name = "max_position_embeddings"

    def __init__(self, config: LlamaConfig):
        super().__init__()
        if not isinstance(config, LlamaConfig):
            raise TypeError(f"config must be a LlamaConfig, got {type(config).__name__}")
        self.config = config
        self.model = LlamaModel(config)
        if not config.tie_word_embeddings:  # its own (V, C) matrix, `lm_head.weight`
            self.lm_head = Linear(
                config.hidden_size, config.vocab_size, False,
                std=config.initializer_range, seed=config.seed, stream=1,
            )  # fmt: skip
        # tied: the head is embed_tokens' Parameter itself, named once and collecting the
        # gradient of both uses
        self.dropout_seed = config.seed
        self.dropout_step = 0
        self._cache = None

    @property
    def trunk(self) -> LlamaModel:
        return self.model

    @property
    def lm_head_weight(self) -> Any:
        """The output head's (V, C) weight: embed_tokens' Parameter when tied, else lm_head's."""
        if self.config.tie_word_embeddings:
            return self.model.embed_tokens.weight
        return self.lm_head.weight

    def flops_per_token(self, T: int | None = None) -> int:
        """Training FLOPs per token, counted as for `GPT.flops_per_token`: 6 N for the matmuls of
        N parameters (an untied embedding is a lookup, not counted) plus 12 L C T for attention's
        scores and weighted sums. T defaults to max_position_embeddings."""
        c = self.config
        T = c.max_position_embeddings if T is None else T
        n = self.num_parameters() - (0 if c.tie_word_embeddings else c.vocab_size * c.hidden_size)
        return 6 * n + 12 * c.num_hidden_layers * c.hidden_size * T

    def new_kv_cache(self, B: int) -> KVCache:
        """An empty key/value cache for B sequences: per layer (B, T, Hkv hs), the KV heads only
        (H / Hkv times smaller than multi-head attention's)."""
        return KVCache(self.config.num_hidden_layers, B)

    def _convert_hf_state_dict(self, state: dict[str, Any]) -> dict[str, Any]:
        """`LlamaForCausalLM`'s names onto ours (a tied head has no `lm_head.weight`)."""
        return convert_hf_llama_state_dict(state, self.config.tie_word_embeddings)


__all__ = [
    "LlamaConfig", "Llama", "LlamaModel", "LlamaDecoderLayer", "LlamaAttention", "LlamaMLP",
]  # fmt: skip

"""LLaMA on numpy arrays: the reference's LLaMA-family decoder (`reference/llama.py`), made fast.

Same architecture, names, dropout site, sampling rule and checkpoint format as the reference;
read that file for the model itself. How this one is made fast:
- every matmul (q, k, v and o projections, gate, up and down, the head) is one BLAS call on
  (B*T, C) rows, forward and backward (a `gemm` on the GPU);
- RMS norm, the rotary turn of q and k and the SwiGLU product are fused loops
  (`fast/cpu/layers.py`, `fast/cuda/layers.py`); attention is the multi-head kernels with each
  key/value head copied for its group of query heads, and the groups' gradients summed back;
- the key/value cache is preallocated (L, B, max_position_embeddings, Hkv hs) arrays, filled in
  place: its memory scales with the KV heads, not the query heads;
- the configuration, its Hugging Face mapping, the sampling rule and the checkpoint-name mapping
  are the reference's own functions (one definition).

Dimension legend: B batch, T time, C channels, H query heads, Hkv key/value heads, hs head size,
I intermediate size, V vocabulary, L layers.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from reference.attention import GroupedQueryAttentionCache
from reference.hf import convert_hf_llama_state_dict
from reference.layers import RotaryCache, SwiGLUCache
from reference.llama import LlamaConfig

from .attention import grouped_query_attention_backward, grouped_query_attention_forward
from .device import resolve_device
from .dtypes import resolve_dtype
from .gpt import CausalLM, KVCache
from .layers import (
    Dropout,
    Embedding,
    Linear,
    RMSNorm,
    rope_backward,
    rope_forward,
    swiglu_backward,
    swiglu_forward,
)
from .module import Module, ModuleList

__all__ = ["LlamaConfig", "Llama", "KVCache"]


class _AttentionCaches(NamedTuple):
    """What `LlamaAttention.backward` needs: the rotary caches of q and k and the grouped-query
    attention's cache."""

    q_rope: RotaryCache
    k_rope: RotaryCache
    attention: GroupedQueryAttentionCache


class LlamaAttention(Module):
    def __init__(self, config: LlamaConfig, stream: int, dtype):
        super().__init__()
        C, hs = config.hidden_size, config.head_dim
        self.n_head, self.n_kv_head = config.num_attention_heads, config.num_key_value_heads
        self.theta = config.rope_theta
        init = dict(std=config.initializer_range, seed=config.seed, dtype=dtype)
        Ckv = self.n_kv_head * hs
        self.q_proj = Linear(C, C, False, stream=stream, **init)
        self.k_proj = Linear(C, Ckv, False, stream=stream + 1, **init)
        self.v_proj = Linear(C, Ckv, False, stream=stream + 2, **init)
        self.o_proj = Linear(C, C, False, stream=stream + 3, **init)
        self.attn_dropout = Dropout(config.attention_dropout)
        self._cache = None

    def forward(self, x, kv_cache: KVCache | None = None, layer: int = 0):
        start = kv_cache.length if kv_cache is not None else 0
        q, q_rope = rope_forward(self.q_proj(x), self.n_head, start, self.theta)  # (B, T, C)
        k, k_rope = rope_forward(self.k_proj(x), self.n_kv_head, start, self.theta)
        v = self.v_proj(x)  # (B, T, Ckv)
        if kv_cache is not None:
            k, v = kv_cache.extend(layer, k, v)  # (B, T_past + T, Ckv): the KV heads only
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
        return self.o_proj(y)

    def backward(self, dout):
        if self._cache is None:
            raise RuntimeError("LlamaAttention.backward called before forward")
        dy = self.o_proj.backward(dout)
        dq, dk, dv = grouped_query_attention_backward(dy, self._cache.attention)
        dq = rope_backward(dq, self._cache.q_rope)
        dk = rope_backward(dk, self._cache.k_rope)
        dx = self.q_proj.backward(dq) + self.k_proj.backward(dk)
        return dx + self.v_proj.backward(dv)


class LlamaMLP(Module):
    def __init__(self, config: LlamaConfig, stream: int, dtype):
        super().__init__()
        C, I = config.hidden_size, config.intermediate_size
        init = dict(std=config.initializer_range, seed=config.seed, dtype=dtype)
        self.gate_proj = Linear(C, I, False, stream=stream, **init)
        self.up_proj = Linear(C, I, False, stream=stream + 1, **init)
        self.down_proj = Linear(I, C, False, stream=stream + 2, **init)
        self._cache: SwiGLUCache | None = None

    def forward(self, x):
        h, self._cache = swiglu_forward(self.gate_proj(x), self.up_proj(x))  # (B, T, I)
        return self.down_proj(h)

    def backward(self, dout):
        if self._cache is None:
            raise RuntimeError("LlamaMLP.backward called before forward")
        dgate, dup = swiglu_backward(self.down_proj.backward(dout), self._cache)
        return self.gate_proj.backward(dgate) + self.up_proj.backward(dup)


class LlamaDecoderLayer(Module):
    def __init__(self, config: LlamaConfig, layer: int, dtype):
        super().__init__()
        self.layer = layer
        self.self_attn = LlamaAttention(config, 2 + 7 * layer, dtype)
        self.mlp = LlamaMLP(config, 6 + 7 * layer, dtype)
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps, dtype=dtype)
        self.post_attention_layernorm = RMSNorm(
            config.hidden_size, config.rms_norm_eps, dtype=dtype
        )

    def forward(self, x, kv_cache: KVCache | None = None):
        x = x + self.self_attn(self.input_layernorm(x), kv_cache, self.layer)  # (B, T, C)
        return x + self.mlp(self.post_attention_layernorm(x))

    def backward(self, dout):
        dx = dout + self.post_attention_layernorm.backward(self.mlp.backward(dout))
        return dx + self.input_layernorm.backward(self.self_attn.backward(dx))


class LlamaModel(Module):
    def __init__(self, config: LlamaConfig, dtype):
        super().__init__()
        C, std = config.hidden_size, config.initializer_range
        self.embed_tokens = Embedding(
            config.vocab_size, C, std=std, seed=config.seed, stream=0, dtype=dtype
        )
        self.layers = ModuleList(
            [LlamaDecoderLayer(config, layer, dtype) for layer in range(config.num_hidden_layers)]
        )
        self.norm = RMSNorm(C, config.rms_norm_eps, dtype=dtype)

    def forward(self, idx: np.ndarray, kv_cache: KVCache | None = None):
        x = self.embed_tokens(idx)  # (B, T, C)
        for layer in self.layers:
            x = layer(x, kv_cache)
        if kv_cache is not None:
            kv_cache.length += idx.shape[1]
        return self.norm(x)

    def backward(self, dout):
        dx = self.norm.backward(dout)
        for layer in reversed(list(self.layers)):
            dx = layer.backward(dx)
        self.embed_tokens.backward(dx)


class Llama(CausalLM):
    """A LLaMA-family decoder with a language-model head; see `reference.Llama`. `dtype` is
    "float32" (default) or "float64"; `device` is "cpu" (default) or "cuda"."""

    config_class = LlamaConfig
    context_name = "max_position_embeddings"

    def __init__(self, config: LlamaConfig, dtype="float32", device="cpu"):
        super().__init__()
        if not isinstance(config, LlamaConfig):
            raise TypeError(f"config must be a LlamaConfig, got {type(config).__name__}")
        device = resolve_device(device)
        self.config = config
        self.dtype = resolve_dtype(dtype)
        self.model = LlamaModel(config, self.dtype)
        if not config.tie_word_embeddings:
            self.lm_head = Linear(
                config.hidden_size, config.vocab_size, False,
                std=config.initializer_range, seed=config.seed, stream=1, dtype=self.dtype,
            )  # fmt: skip
        self.dropout_seed = config.seed
        self.dropout_step = 0
        self._cache = None
        self.to(device)

    @property
    def trunk(self):
        return self.model

    @property
    def lm_head_weight(self):
        if self.config.tie_word_embeddings:
            return self.model.embed_tokens.weight
        return self.lm_head.weight

    def flops_per_token(self, T: int | None = None) -> int:
        c = self.config
        T = c.max_position_embeddings if T is None else T
        n = self.num_parameters() - (0 if c.tie_word_embeddings else c.vocab_size * c.hidden_size)
        return 6 * n + 12 * c.num_hidden_layers * c.hidden_size * T

    def new_kv_cache(self, B: int) -> KVCache:
        """An empty key/value cache for B sequences: (L, B, max_position_embeddings, Hkv hs)
        for the keys and the same for the values, the KV heads only."""
        c = self.config
        width = c.num_key_value_heads * c.head_dim
        L, T = c.num_hidden_layers, c.max_position_embeddings
        return KVCache(L, B, T, width, self.dtype, self.device)

    def _convert_hf_state_dict(self, state):
        return convert_hf_llama_state_dict(state, self.config.tie_word_embeddings)

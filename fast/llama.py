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

import os
from typing import Any, NamedTuple

import numpy as np

from reference.attention import GroupedQueryAttentionCache
from reference.checks import IGNORE_INDEX
from reference.decoding import check_generate_args, sample_next_token
from reference.hf import convert_hf_llama_state_dict
from reference.layers import CrossEntropyCache, RotaryCache, SwiGLUCache
from reference.llama import LlamaConfig
from reference.rng import uniform

from .attention import grouped_query_attention_backward, grouped_query_attention_forward
from .checkpoint import load_safetensors
from .device import resolve_device, to_device, to_host, unless_on_device
from .dtypes import resolve_dtype
from .gpt import KVCache, check_lm_idx, check_lm_targets
from .layers import (
    Dropout,
    Embedding,
    Linear,
    RMSNorm,
    cross_entropy_backward,
    cross_entropy_forward,
    rope_backward,
    rope_forward,
    set_dropout_rng,
    swiglu_backward,
    swiglu_forward,
)
from .module import Module, ModuleList
from .validate import owns_inputs

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


class _HeadCache(NamedTuple):
    """What `Llama.backward` needs from `Llama.forward`: the final hidden states as rows x
    (B*T, C) (for the head's dW = dlogits^T x), the loss's `CrossEntropyCache` (None without
    targets) and (B, T)."""

    x: Any
    loss: CrossEntropyCache | None
    shape: tuple[int, int]


class Llama(Module):
    """A LLaMA-family decoder with a language-model head; see `reference.Llama`. `dtype` is
    "float32" (default) or "float64"; `device` is "cpu" (default) or "cuda"."""

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
    def lm_head_weight(self):
        if self.config.tie_word_embeddings:
            return self.model.embed_tokens.weight
        return self.lm_head.weight

    def _check_idx(self, idx, max_len):
        c = self.config
        return check_lm_idx(idx, c.vocab_size, "idx", max_len, "max_position_embeddings")

    @owns_inputs
    def forward(self, idx, targets=None):
        """(logits (B, T, V), mean cross-entropy or None); see `reference.Llama.forward`."""
        idx = self._check_idx(idx, self.config.max_position_embeddings)
        B, T = idx.shape
        if targets is not None:
            targets = check_lm_targets(targets, B, T, self.config.vocab_size)
        if self.training:
            set_dropout_rng(self, self.dropout_seed, self.dropout_step)
            self.dropout_step += 1
        x2 = self.model(idx).reshape(B * T, -1)  # (B*T, C)
        logits = (x2 @ self.lm_head_weight.data.T).reshape(B, T, -1)  # (B, T, V), BLAS
        loss, loss_cache = None, None
        if targets is not None:
            loss, loss_cache = cross_entropy_forward(logits, targets, IGNORE_INDEX)
        self._cache = _HeadCache(x2, loss_cache, (B, T))
        return logits, loss

    @owns_inputs
    def backward(self, dlogits=None) -> None:
        """Backpropagate into every `p.grad` (accumulating), from the loss or from `dlogits`."""
        if self._cache is None:
            raise RuntimeError("Llama.backward called before forward (or after generate)")
        x2, (B, T) = self._cache.x, self._cache.shape
        V = self.config.vocab_size
        if dlogits is None:
            if self._cache.loss is None:
                raise RuntimeError(
                    "backward() starts from the loss: call model(idx, targets) "
                    "first, or pass backward(dlogits)"
                )
            d = cross_entropy_backward(1.0, self._cache.loss)
        else:
            dlogits = unless_on_device(dlogits, lambda a: np.asarray(a, dtype=self.dtype))
            if dlogits.shape != (B, T, V):
                raise ValueError(f"dlogits must have shape {(B, T, V)}, got {dlogits.shape}")
            d = to_device(dlogits, self.device, self.dtype)
        d2 = d.reshape(B * T, V)
        head = self.lm_head_weight
        head.grad += d2.T @ x2  # (V, C)
        self.model.backward((d2 @ head.data).reshape(B, T, -1))

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

    def _last_logits(self, idx: np.ndarray, kv_cache: KVCache | None):
        x = self.model(idx, kv_cache)  # (B, T, C)
        return x[:, -1, :] @ self.lm_head_weight.data.T  # (B, V)

    @owns_inputs
    def generate(
        self,
        idx,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int = 0,
        use_cache: bool = True,
    ) -> np.ndarray:
        """Continue each row of idx by max_new_tokens tokens; see `reference.Llama.generate`
        (same sampling rule and Philox draws, so the same tokens for the same weights)."""
        idx = self._check_idx(idx, None)
        check_generate_args(max_new_tokens, temperature, top_k, top_p, seed)
        bs, B = self.config.max_position_embeddings, idx.shape[0]
        out = np.empty((B, idx.shape[1] + max_new_tokens), dtype=np.int64)
        out[:, : idx.shape[1]] = idx
        n = idx.shape[1]
        was_training = self.training
        self.eval()
        try:
            cache = None
            for i in range(max_new_tokens):
                ctx = out[:, max(0, n - bs) : n]
                if not use_cache:
                    logits = self._last_logits(ctx, None)
                elif cache is not None and cache.length < bs:
                    logits = self._last_logits(out[:, n - 1 : n], cache)
                else:
                    cache = self.new_kv_cache(B)
                    logits = self._last_logits(ctx, cache)
                rows = to_host(logits).astype(np.float64).tolist()  # (B, V) to the host
                for b in range(B):
                    out[b, n] = sample_next_token(
                        rows[b], temperature, top_k, top_p, uniform(seed, b, i)
                    )
                n += 1
        finally:
            self.train(was_training)
            self._cache = None
        return out

    def config_dict(self) -> dict[str, Any]:
        return self.config.to_hf_dict()

    @classmethod
    def from_config_dict(cls, config: dict[str, Any], dtype="float32", device="cpu") -> Llama:
        return cls(LlamaConfig.from_hf_dict(config), dtype=dtype, device=device)

    @classmethod
    def from_pretrained(cls, directory, dtype="float32", device="cpu") -> Llama:
        """Load our directory or one `transformers` wrote (see `reference.Llama.from_pretrained`),
        in evaluation mode."""
        directory = os.fspath(directory)
        weights = os.path.join(directory, "model.safetensors")
        config_path = os.path.join(directory, "config.json")
        for path in (config_path, weights):
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{directory!r} has no {os.path.basename(path)}")
        model = cls._from_config_file(config_path, dtype=dtype, device=device)
        tied = model.config.tie_word_embeddings
        model.load_state_dict(convert_hf_llama_state_dict(load_safetensors(weights), tied))
        return model.eval()

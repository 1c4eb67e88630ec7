"""GPT on numpy arrays: the reference's GPT-2 (`reference/gpt.py`), made fast.

Same architecture, names, dropout sites, sampling rule and checkpoint format as the reference;
read that file for the model itself. How this one is made fast:
- every matmul (c_attn, c_proj, c_fc, the tied head) is one BLAS call on (B*T, C) rows, forward
  and backward;
- layer norm, GELU, dropout, the attention softmax and the cross-entropy are fused Numba loops;
- the key/value cache is preallocated (L, B, block_size, C) arrays, filled in place;
- the configuration, its Hugging Face mapping, the sampling rule and the checkpoint-name mapping
  are the reference's own functions (one definition).

Dimension legend: B batch, T time, C channels, H heads, V vocabulary, L layers.
"""

from __future__ import annotations

import math
import os
from typing import Any, NamedTuple

import numpy as np

from reference.checkpoint import check_pretrained_files
from reference.checks import IGNORE_INDEX
from reference.decoding import check_generate_args, sample_next_token
from reference.gpt import INIT_STD, GPTConfig
from reference.hf import convert_hf_gpt2_state_dict
from reference.rng import uniform

from .attention import (
    concat_qkv,
    multi_head_attention_backward,
    multi_head_attention_forward,
    split_qkv,
)
from .checkpoint import load_safetensors
from .device import empty, resolve_device, to_device, to_host, unless_on_device
from .dtypes import resolve_dtype
from .layers import (
    Activation,
    Conv1D,
    CrossEntropyCache,
    Dropout,
    Embedding,
    LayerNorm,
    cross_entropy_backward,
    cross_entropy_forward,
    set_dropout_rng,
)
from .module import Module, ModuleList
from .validate import as_index_array, check_ids, owns_inputs

__all__ = ["GPTConfig", "GPT", "KVCache", "sample_next_token", "convert_hf_gpt2_state_dict"]


def check_lm_idx(
    idx, vocab_size: int, name: str = "idx", max_len=None, max_len_name: str = "block_size"
) -> np.ndarray:
    """A decoder's input ids as a new (B, T) int64 array, B, T >= 1, T <= max_len if given (the
    model's `max_len_name`), ids in [0, vocab_size); else the reference's errors."""
    a = as_index_array(idx, name)
    if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"{name} must have shape (B, T) with B >= 1 and T >= 1, got {a.shape}")
    if max_len is not None and a.shape[1] > max_len:
        raise ValueError(
            f"sequence length T={a.shape[1]} exceeds {max_len_name}={max_len} (the model has "
            f"{max_len} positions; crop {name} to its last {max_len} tokens)"
        )
    check_ids(a, vocab_size, name)
    return a


def check_lm_targets(targets, B: int, T: int, vocab_size: int) -> np.ndarray:
    """Next-token targets as a new (B, T) int64 array of ids in [0, vocab_size) or -100."""
    t = as_index_array(targets, "targets")
    if t.shape != (B, T):
        raise ValueError(f"targets must have the shape of idx ({B}, {T}), got {t.shape}")
    bad = (t != IGNORE_INDEX) & ((t < 0) | (t >= vocab_size))
    if bad.any():
        b, i = (int(v) for v in np.argwhere(bad)[0])
        raise ValueError(
            f"target id {int(t[b, i])} out of range for vocab_size {vocab_size} (at "
            f"targets[{b}][{i}]; {IGNORE_INDEX} means ignore)"
        )
    return t


class KVCache:
    """Each layer's keys and values so far, preallocated (L, B, block_size, C)."""

    def __init__(self, n_layer: int, B: int, block_size: int, C: int, dtype, device="cpu"):
        self.keys = empty((n_layer, B, block_size, C), dtype, device)
        self.values = empty((n_layer, B, block_size, C), dtype, device)
        self.length = 0

    def extend(self, layer: int, k: np.ndarray, v: np.ndarray):
        """Write this step's k, v (B, T, C) after the stored ones; return views of all of them."""
        T = k.shape[1]
        end = self.length + T
        self.keys[layer, :, self.length : end] = k
        self.values[layer, :, self.length : end] = v
        return self.keys[layer, :, :end], self.values[layer, :, :end]


class CausalSelfAttention(Module):
    def __init__(self, config: GPTConfig, stream: int, dtype):
        super().__init__()
        C, proj_std = config.n_embd, INIT_STD / math.sqrt(2 * config.n_layer)
        self.n_head = config.n_head
        self.c_attn = Conv1D(C, 3 * C, std=INIT_STD, seed=config.seed, stream=stream, dtype=dtype)
        self.c_proj = Conv1D(C, C, std=proj_std, seed=config.seed, stream=stream + 1, dtype=dtype)
        self.attn_dropout = Dropout(config.dropout)
        self.resid_dropout = Dropout(config.dropout)
        self._cache = None

    def forward(self, x, kv_cache: KVCache | None = None, layer: int = 0):
        q, k, v = split_qkv(self.c_attn(x))  # (B, T, C) each
        if kv_cache is not None:
            k, v = kv_cache.extend(layer, k, v)  # (B, T_past + T, C)
        d = self.attn_dropout
        y, self._cache = multi_head_attention_forward(
            q,
            k,
            v,
            self.n_head,
            causal=True,
            dropout_p=d.effective_p(),
            seed=d.seed,
            stream=d.stream,
        )  # (B, T, C)
        return self.resid_dropout(self.c_proj(y))

    def backward(self, dout):
        dy = self.c_proj.backward(self.resid_dropout.backward(dout))
        dq, dk, dv = multi_head_attention_backward(dy, self._cache)
        return self.c_attn.backward(concat_qkv(dq, dk, dv))


class FeedForward(Module):
    def __init__(self, config: GPTConfig, stream: int, dtype):
        super().__init__()
        C, proj_std = config.n_embd, INIT_STD / math.sqrt(2 * config.n_layer)
        self.c_fc = Conv1D(C, 4 * C, std=INIT_STD, seed=config.seed, stream=stream, dtype=dtype)
        self.act = Activation("gelu")
        self.c_proj = Conv1D(
            4 * C, C, std=proj_std, seed=config.seed, stream=stream + 1, dtype=dtype
        )
        self.dropout = Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.act(self.c_fc(x))))

    def backward(self, dout):
        return self.c_fc.backward(
            self.act.backward(self.c_proj.backward(self.dropout.backward(dout)))
        )


class Block(Module):
    def __init__(self, config: GPTConfig, layer: int, dtype):
        super().__init__()
        self.layer = layer
        self.ln_1 = LayerNorm(config.n_embd, config.layer_norm_epsilon, dtype=dtype)
        self.attn = CausalSelfAttention(config, 2 + 4 * layer, dtype)
        self.ln_2 = LayerNorm(config.n_embd, config.layer_norm_epsilon, dtype=dtype)
        self.mlp = FeedForward(config, 4 + 4 * layer, dtype)

    def forward(self, x, kv_cache: KVCache | None = None):
        x = x + self.attn(self.ln_1(x), kv_cache, self.layer)  # (B, T, C)
        return x + self.mlp(self.ln_2(x))

    def backward(self, dout):
        dx = dout + self.ln_2.backward(self.mlp.backward(dout))
        return dx + self.ln_1.backward(self.attn.backward(dx))


class GPTTransformer(Module):
    def __init__(self, config: GPTConfig, dtype):
        super().__init__()
        C = config.n_embd
        self.wte = Embedding(
            config.vocab_size, C, std=INIT_STD, seed=config.seed, stream=0, dtype=dtype
        )
        self.wpe = Embedding(
            config.block_size, C, std=INIT_STD, seed=config.seed, stream=1, dtype=dtype
        )
        self.drop = Dropout(config.dropout)
        self.h = ModuleList([Block(config, layer, dtype) for layer in range(config.n_layer)])
        self.ln_f = LayerNorm(C, config.layer_norm_epsilon, dtype=dtype)

    def forward(self, idx: np.ndarray, kv_cache: KVCache | None = None):
        B, T = idx.shape
        start = kv_cache.length if kv_cache is not None else 0
        pos = np.broadcast_to(np.arange(start, start + T, dtype=np.int64), (B, T))
        x = self.drop(self.wte(idx) + self.wpe(pos))  # (B, T, C)
        for block in self.h:
            x = block(x, kv_cache)
        if kv_cache is not None:
            kv_cache.length += T
        return self.ln_f(x)

    def backward(self, dout):
        dx = self.ln_f.backward(dout)
        for block in reversed(list(self.h)):
            dx = block.backward(dx)
        dx = self.drop.backward(dx)
        self.wte.backward(dx)
        self.wpe.backward(dx)


class _HeadCache(NamedTuple):
    """What `GPT.backward` needs from `GPT.forward`: the final hidden states as rows x (B*T, C)
    (for the tied head's dW = dlogits^T x), the loss's `CrossEntropyCache` (None without
    targets) and (B, T)."""

    x: Any
    loss: CrossEntropyCache | None
    shape: tuple[int, int]


class CausalLM(Module):
    """What a decoder-only language model with a head on its trunk does the same way whatever its
    blocks (GPT-2's, LLaMA's): the forward with the loss, the backward from it, generation with a
    key/value cache, loading a pretrained directory. A subclass names its trunk (`trunk`), its
    head's weight (`lm_head_weight`), its context length (`context_length`, called
    `context_name` in its config), its config class and Hugging Face conversion
    (`_convert_hf_state_dict`) and how to make a cache (`new_kv_cache`)."""

    context_name = "block_size"

    @property
    def context_length(self) -> int:
        return getattr(self.config, self.context_name)

    def _check_idx(self, idx, max_len: int | None = None) -> np.ndarray:
        c = self.config
        return check_lm_idx(idx, c.vocab_size, "idx", max_len, self.context_name)

    @owns_inputs
    def forward(self, idx, targets=None):
        """(logits (B, T, V), mean cross-entropy or None); see the reference model's forward."""
        idx = self._check_idx(idx, self.context_length)
        B, T = idx.shape
        if targets is not None:
            targets = check_lm_targets(targets, B, T, self.config.vocab_size)
        if self.training:
            set_dropout_rng(self, self.dropout_seed, self.dropout_step)
            self.dropout_step += 1
        x2 = self.trunk(idx).reshape(B * T, -1)  # (B*T, C)
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
            raise RuntimeError(
                f"{type(self).__name__}.backward called before forward (or after generate)"
            )
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
            # a host dlogits is checked before any upload
            dlogits = unless_on_device(dlogits, lambda a: np.asarray(a, dtype=self.dtype))
            if dlogits.shape != (B, T, V):
                raise ValueError(f"dlogits must have shape {(B, T, V)}, got {dlogits.shape}")
            d = to_device(dlogits, self.device, self.dtype)
        d2 = d.reshape(B * T, V)
        head = self.lm_head_weight
        head.grad += d2.T @ x2  # the head's share (of the tied matrix, when tied), (V, C)
        self.trunk.backward((d2 @ head.data).reshape(B, T, -1))

    def _last_logits(self, idx: np.ndarray, kv_cache: KVCache | None) -> np.ndarray:
        x = self.trunk(idx, kv_cache)  # (B, T, C)
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
        """Continue each row of idx by max_new_tokens tokens; see the reference model's generate
        (same sampling rule and Philox draws, so the same tokens for the same weights)."""
        idx = self._check_idx(idx)
        check_generate_args(max_new_tokens, temperature, top_k, top_p, seed)
        bs, B = self.context_length, idx.shape[0]
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
    def from_config_dict(cls, config: dict[str, Any], dtype="float32", device="cpu"):
        return cls(cls.config_class.from_hf_dict(config), dtype=dtype, device=device)

    @classmethod
    def from_pretrained(cls, directory, dtype="float32", device="cpu"):
        """Load our directory or one `transformers` wrote (see the reference model's
        from_pretrained), in evaluation mode."""
        directory = os.fspath(directory)
        weights = os.path.join(directory, "model.safetensors")
        config_path = os.path.join(directory, "config.json")
        check_pretrained_files(directory)
        model = cls._from_config_file(config_path, dtype=dtype, device=device)
        model.load_state_dict(model._convert_hf_state_dict(load_safetensors(weights)))
        return model.eval()


class GPT(CausalLM):
    """GPT-2 with a tied head; see `reference.GPT`. `dtype` is "float32" (default) or "float64";
    `device` is "cpu" (default) or "cuda" (see `fast/device.py`)."""

    config_class = GPTConfig

    def __init__(self, config: GPTConfig, dtype="float32", device="cpu"):
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"config must be a GPTConfig, got {type(config).__name__}")
        device = resolve_device(device)
        self.config = config
        self.dtype = resolve_dtype(dtype)
        self.transformer = GPTTransformer(config, self.dtype)
        self.dropout_seed = config.seed
        self.dropout_step = 0
        self._cache = None
        self.to(device)

    @property
    def trunk(self):
        return self.transformer

    @property
    def lm_head_weight(self):
        return self.transformer.wte.weight

    def flops_per_token(self, T: int | None = None) -> int:
        c = self.config
        T = c.block_size if T is None else T
        n = self.num_parameters() - c.block_size * c.n_embd
        return 6 * n + 12 * c.n_layer * c.n_embd * T

    def new_kv_cache(self, B: int) -> KVCache:
        """An empty key/value cache for B sequences of up to block_size tokens."""
        c = self.config
        return KVCache(c.n_layer, B, c.block_size, c.n_embd, self.dtype, self.device)

    @staticmethod
    def _convert_hf_state_dict(state):
        return convert_hf_gpt2_state_dict(state)

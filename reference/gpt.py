"""GPT: the GPT-2 decoder-only Transformer, with explicit backprop and a key/value cache.

The architecture is GPT-2's exactly (Radford et al., 2019; Hugging Face `GPT2LMHeadModel`):

    x = wte[idx] + wpe[0..T-1]               token + learned position embeddings   (B, T, C)
    x = drop(x)
    for each block:                          pre-LN: normalise on the way into each branch
        x = x + resid_drop(c_proj(attn(c_attn(ln_1(x)))))    masked self-attention
        x = x + drop(c_proj(gelu(c_fc(ln_2(x)))))            feed-forward, 4C hidden
    logits = ln_f(x) wte^T                   the output head is the embedding, tied    (B, T, V)

GELU is the tanh approximation ("gelu_new"), layer norm eps 1e-5, attention scores are scaled by
1/sqrt(hs) before the causal mask, and every linear layer has a bias. Parameter names and shapes
are Hugging Face's (`transformer.h.0.attn.c_attn.weight` is (C, 3C), stored in x out), so
`save_pretrained` writes a directory that `transformers` loads as `GPT2LMHeadModel`.

Dimension legend: B batch, T time, C channels (n_embd), H heads, hs head size = C / H,
V vocabulary, L layers.

Randomness shared with other backends (docs/design.md, "Random numbers"):
- dropout: the n-th training-mode forward (n = `model.dropout_step`, counting from 0) calls
  `set_dropout_rng(model, model.dropout_seed, n)`, then increments the counter. `dropout_seed`
  starts as `config.seed` and may be set. Sites, in `model.modules()` order: 1 = the embedding
  dropout `transformer.drop`; for block l: 2 + 3l = attention weights (`attn.attn_dropout`),
  3 + 3l = attention output (`attn.resid_dropout`), 4 + 3l = feed-forward output (`mlp.dropout`).
  Eval mode (and `generate`) draws nothing and does not advance the counter.
- sampling: the i-th new token (i = 0, 1, ...) of batch row b uses u = uniform(seed, b, i), i.e.
  Philox stream b, index i, and `sample_next_token` (its docstring gives the exact arithmetic).
- initialisation (not shared, only seeded): `normal_tensor(shape, std, config.seed, stream)` with
  stream 0 = wte, 1 = wpe, and for block l: 2 + 4l = attn.c_attn, 3 + 4l = attn.c_proj,
  4 + 4l = mlp.c_fc, 5 + 4l = mlp.c_proj. std 0.02, residual projections (c_proj) 0.02/sqrt(2L).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import Any

from .attention import (
    concat_qkv,
    multi_head_attention_backward,
    multi_head_attention_forward,
    split_qkv,
)
from .checkpoint import load_safetensors
from .checks import MAX_NUMEL, check_count, check_eps
from .config_fields import (
    bool_field,
    float_field,
    int_field,
    optional_int_field,
    require_dict,
    str_field,
)
from .layers import (
    Activation,
    Conv1D,
    Dropout,
    Embedding,
    LayerNorm,
    _add_into,
    cross_entropy_backward,
    cross_entropy_forward,
    linear_backward,
    linear_forward,
    position_ids,
    set_dropout_rng,
)
from .module import Module, ModuleList
from .nested import shape_of
from .rng import MASK64, uniform

Tensor = Any  # a nested list of floats
IGNORE_INDEX = -100  # targets equal to this count for nothing (torch / Hugging Face labels)
INIT_STD = 0.02
# Hugging Face spells the tanh-approximated GELU two ways; both are the same function.
TANH_GELU_NAMES = ("gelu_new", "gelu_pytorch_tanh")


def _check_int(name: str, value: Any, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value}")
    return value


def _check_float(name: str, value: Any, low: float, high: float, high_open: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    ok = low <= value < high if high_open else low <= value <= high  # also rejects NaN
    if not ok:
        interval = f"[{low}, {high})" if high_open else f"[{low}, {high}]"
        raise ValueError(f"{name} must be in {interval}, got {value}")
    return float(value)


# -- configuration ---------------------------------------------------------------------------------
@dataclass
class GPTConfig:
    """GPT-2's hyperparameters; checks itself on construction.

    `dropout` is GPT-2's three rates at once (embd_pdrop, resid_pdrop, attn_pdrop); `seed` seeds
    the initial weights and is the default dropout seed.

    >>> GPTConfig(vocab_size=7, block_size=4, n_layer=2, n_head=2, n_embd=4).n_embd // 2
    2
    """

    vocab_size: int
    block_size: int
    n_layer: int
    n_head: int
    n_embd: int
    dropout: float = 0.0
    layer_norm_epsilon: float = 1e-5
    seed: int = 0
    bos_token_id: int | None = None
    eos_token_id: int | None = None

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            _check_int(name, getattr(self, name))
            check_count(name, getattr(self, name), 1, MAX_NUMEL)  # refuse what cannot be built
        if self.n_embd % self.n_head != 0:
            raise ValueError(
                f"n_embd must be divisible by n_head (each head takes n_embd / n_head channels), "
                f"got n_embd={self.n_embd} and n_head={self.n_head}"
            )
        self.dropout = _check_float("dropout", self.dropout, 0.0, 1.0, high_open=True)
        # > 0: with eps = 0 a constant row (variance 0) would divide by zero in layer norm
        self.layer_norm_epsilon = check_eps(self.layer_norm_epsilon, "layer_norm_epsilon")
        _check_int("seed", self.seed, low=0)
        if self.seed > MASK64:
            raise ValueError(f"seed must be in [0, 2**64), got {self.seed}")
        for name in ("bos_token_id", "eos_token_id"):
            value = getattr(self, name)
            if value is not None and not 0 <= _check_int(name, value, low=0) < self.vocab_size:
                raise ValueError(
                    f"{name} must be None or an id in [0, vocab_size={self.vocab_size}), "
                    f"got {value}"
                )

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head

    def to_hf_dict(self) -> dict[str, Any]:
        """The Hugging Face `GPT2Config` JSON for this model (what `config.json` holds)."""
        return {
            "model_type": "gpt2",
            "architectures": ["GPT2LMHeadModel"],
            "vocab_size": self.vocab_size,
            "n_positions": self.block_size,
            "n_ctx": self.block_size,  # the older name of n_positions, still in GPT-2's files
            "n_embd": self.n_embd,
            "n_layer": self.n_layer,
            "n_head": self.n_head,
            "n_inner": None,  # None means 4 * n_embd
            "activation_function": "gelu_new",
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "embd_pdrop": self.dropout,
            "resid_pdrop": self.dropout,
            "attn_pdrop": self.dropout,
            "initializer_range": INIT_STD,
            "scale_attn_weights": True,
            "scale_attn_by_inverse_layer_idx": False,
            "reorder_and_upcast_attn": False,
            "tie_word_embeddings": True,
            "use_cache": True,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": self.eos_token_id,
            "model_archaeology": {"seed": self.seed},  # ours; transformers keeps it as-is
        }

    @classmethod
    def from_hf_dict(cls, config: dict[str, Any]) -> GPTConfig:
        """Read a Hugging Face GPT-2 `config.json` (ours, or the official one).

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
                raise ValueError(
                    f"GPT-2 config has {key}={not needed!r}; this GPT needs {needed!r}"
                )
        ids = {}
        for key in ("bos_token_id", "eos_token_id"):
            token_id = optional_int_field(config, key, None, low=-(2**63))
            inside = token_id is not None and 0 <= token_id < sizes["vocab_size"]
            ids[key] = token_id if inside else None
        return cls(
            **sizes,
            block_size=block_size,
            dropout=rates["embd_pdrop"],
            layer_norm_epsilon=eps,
            seed=seed,
            **ids,
        )


# -- the key/value cache ---------------------------------------------------------------------------
class KVCache:
    """Each layer's keys and values of the tokens seen so far, (B, T_past, C) per layer.

    Generating one token then costs one position's work per layer, not T: the earlier positions'
    keys and values do not change, because a causal model never lets a token see its future.
    """

    def __init__(self, n_layer: int, B: int):
        self.keys: list[list[list[list[float]]]] = [[[] for _ in range(B)] for _ in range(n_layer)]
        self.values: list[list[list[list[float]]]] = [
            [[] for _ in range(B)] for _ in range(n_layer)
        ]
        self.length = 0  # positions stored (the same in every layer once a forward has finished)

    def extend(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Append this step's k, v (B, T, C) to `layer`; return all of them (B, T_past + T, C)."""
        for b in range(len(k)):
            self.keys[layer][b].extend(k[b])
            self.values[layer][b].extend(v[b])
        return self.keys[layer], self.values[layer]


# -- the blocks ------------------------------------------------------------------------------------
def _add(a: Tensor, b: Tensor) -> Tensor:
    """a + b for two (B, T, C) tensors: the residual stream's add (`residual_forward` without
    its shape checks, which the callers make redundant) and, backwards, two gradients meeting."""
    return [[[u + v for u, v in zip(ra, rb)] for ra, rb in zip(sa, sb)] for sa, sb in zip(a, b)]


class CausalSelfAttention(Module):
    """Masked multi-head self-attention (Hugging Face `GPT2Attention`): c_attn makes q, k, v in
    one (C, 3C) matmul, H heads attend causally, c_proj mixes the heads back."""

    def __init__(self, config: GPTConfig, stream: int):
        super().__init__()
        C, proj_std = config.n_embd, INIT_STD / math.sqrt(2 * config.n_layer)
        self.n_head = config.n_head
        self.c_attn = Conv1D(C, 3 * C, std=INIT_STD, seed=config.seed, stream=stream)
        self.c_proj = Conv1D(C, C, std=proj_std, seed=config.seed, stream=stream + 1)
        self.attn_dropout = Dropout(config.dropout)  # holds p, seed, stream for the weights
        self.resid_dropout = Dropout(config.dropout)
        self._cache = None

    def forward(self, x: Tensor, kv_cache: KVCache | None = None, layer: int = 0) -> Tensor:
        q, k, v = split_qkv(self.c_attn(x))  # (B, T, C) each
        if kv_cache is not None:
            k, v = kv_cache.extend(layer, k, v)  # (B, T_past + T, C): the new queries see all
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
        )  # (B, T, C); causal is bottom-right aligned, so query t sees keys 0 .. T_past + t
        return self.resid_dropout(self.c_proj(y))  # (B, T, C)

    def backward(self, dout: Tensor) -> Tensor:
        dy = self.c_proj.backward(self.resid_dropout.backward(dout))  # (B, T, C)
        dq, dk, dv = multi_head_attention_backward(dy, self._cache)  # (B, T, C) each
        return self.c_attn.backward(concat_qkv(dq, dk, dv))  # (B, T, C)


class FeedForward(Module):
    """The position-wise MLP (Hugging Face `GPT2MLP`): C -> 4C -> GELU -> C, then dropout."""

    def __init__(self, config: GPTConfig, stream: int):
        super().__init__()
        C, proj_std = config.n_embd, INIT_STD / math.sqrt(2 * config.n_layer)
        self.c_fc = Conv1D(C, 4 * C, std=INIT_STD, seed=config.seed, stream=stream)
        self.act = Activation("gelu")  # the tanh approximation, Hugging Face's "gelu_new"
        self.c_proj = Conv1D(4 * C, C, std=proj_std, seed=config.seed, stream=stream + 1)
        self.dropout = Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.c_proj(self.act(self.c_fc(x))))  # (B, T, C)

    def backward(self, dout: Tensor) -> Tensor:
        return self.c_fc.backward(
            self.act.backward(self.c_proj.backward(self.dropout.backward(dout)))
        )


class Block(Module):
    """One pre-LN Transformer block (Hugging Face `GPT2Block`): two residual branches."""

    def __init__(self, config: GPTConfig, layer: int):
        super().__init__()
        self.layer = layer
        self.ln_1 = LayerNorm(config.n_embd, config.layer_norm_epsilon)
        self.attn = CausalSelfAttention(config, stream=2 + 4 * layer)
        self.ln_2 = LayerNorm(config.n_embd, config.layer_norm_epsilon)
        self.mlp = FeedForward(config, stream=4 + 4 * layer)

    def forward(self, x: Tensor, kv_cache: KVCache | None = None) -> Tensor:
        x = _add(x, self.attn(self.ln_1(x), kv_cache, self.layer))  # (B, T, C)
        return _add(x, self.mlp(self.ln_2(x)))  # (B, T, C)

    def backward(self, dout: Tensor) -> Tensor:
        # x2 = x1 + mlp(ln_2(x1)): the gradient reaches x1 both directly and through the branch.
        dx = _add(dout, self.ln_2.backward(self.mlp.backward(dout)))
        return _add(dx, self.ln_1.backward(self.attn.backward(dx)))


class GPTTransformer(Module):
    """The body without the head (Hugging Face `GPT2Model`): embeddings, blocks, final norm."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        C = config.n_embd
        self.wte = Embedding(config.vocab_size, C, std=INIT_STD, seed=config.seed, stream=0)
        self.wpe = Embedding(config.block_size, C, std=INIT_STD, seed=config.seed, stream=1)
        self.drop = Dropout(config.dropout)
        self.h = ModuleList([Block(config, layer) for layer in range(config.n_layer)])
        self.ln_f = LayerNorm(C, config.layer_norm_epsilon)

    def forward(self, idx: list[list[int]], kv_cache: KVCache | None = None) -> Tensor:
        B, T = len(idx), len(idx[0])
        start = kv_cache.length if kv_cache is not None else 0  # positions continue the cache's
        tok_emb = self.wte(idx)  # (B, T, C)
        pos_emb = self.wpe(position_ids(B, T, start))  # (B, T, C)
        x = self.drop(_add(tok_emb, pos_emb))  # (B, T, C)
        for block in self.h:
            x = block(x, kv_cache)  # (B, T, C)
        if kv_cache is not None:
            kv_cache.length += T
        return self.ln_f(x)  # (B, T, C)

    def backward(self, dout: Tensor) -> None:
        dx = self.ln_f.backward(dout)  # (B, T, C)
        for block in reversed(list(self.h)):
            dx = block.backward(dx)
        dx = self.drop.backward(dx)
        self.wte.backward(dx)  # the sum's gradient goes unchanged to both embeddings
        self.wpe.backward(dx)


# -- the model -------------------------------------------------------------------------------------
class GPT(Module):
    """GPT-2 with a language-model head tied to the token embedding (`GPT2LMHeadModel`).

    `logits, loss = model(idx, targets)`; `model.zero_grad(); model.backward()` fills every
    `p.grad`; `model.generate(idx, max_new_tokens)` continues each row of idx.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"config must be a GPTConfig, got {type(config).__name__}")
        self.config = config
        self.transformer = GPTTransformer(config)
        # Weight tying: the head is wte itself (one Parameter), so it is named once,
        # `transformer.wte.weight`, and collects the gradient of both of its uses.
        self.dropout_seed = config.seed
        self.dropout_step = 0
        self._cache: tuple | None = None

    @property
    def lm_head_weight(self) -> Any:
        """The output head's (V, C) weight: the token embedding's Parameter (tied)."""
        return self.transformer.wte.weight

    # -- input checks --------------------------------------------------------------------------
    def _check_idx(self, idx: Any, name: str = "idx", max_len: int | None = None) -> list:
        """idx as a (B, T) list of lists of ints in [0, vocab_size), or a clear error."""
        if hasattr(idx, "tolist"):
            idx = idx.tolist()  # a numpy array
        if not isinstance(idx, (list, tuple)) or not all(isinstance(r, (list, tuple)) for r in idx):
            raise TypeError(f"{name} must be a (B, T) nested list of token ids, got {idx!r:.60}")
        if not idx or not idx[0]:
            raise ValueError(
                f"{name} must have shape (B, T) with B >= 1 and T >= 1, got {shape_of(idx)}"
            )
        T = len(idx[0])
        for b, row in enumerate(idx):
            if len(row) != T:
                raise ValueError(
                    f"{name} must be rectangular: row 0 has {T} ids, row {b} has {len(row)}"
                )
        if max_len is not None and T > max_len:
            raise ValueError(
                f"sequence length T={T} exceeds block_size={max_len} (the model has {max_len} "
                f"positions; crop {name} to its last {max_len} tokens)"
            )
        V = self.config.vocab_size
        for b, row in enumerate(idx):
            for t, i in enumerate(row):
                if isinstance(i, bool) or not isinstance(i, int):
                    raise TypeError(
                        f"{name} must hold ints, got {type(i).__name__} {i!r} at [{b}][{t}]"
                    )
                if not 0 <= i < V:
                    raise ValueError(
                        f"token id {i} out of range for vocab_size {V} (at {name}[{b}][{t}])"
                    )
        return [list(row) for row in idx]

    def _check_targets(self, targets: Any, B: int, T: int) -> list:
        if hasattr(targets, "tolist"):
            targets = targets.tolist()
        if shape_of(targets) != (B, T) or any(len(row) != T for row in targets):
            raise ValueError(
                f"targets must have the shape of idx ({B}, {T}), got {shape_of(targets)}"
            )
        V = self.config.vocab_size
        for b, row in enumerate(targets):
            for t, i in enumerate(row):
                if isinstance(i, bool) or not isinstance(i, int):
                    raise TypeError(
                        f"targets must hold ints, got {type(i).__name__} {i!r} at [{b}][{t}]"
                    )
                if i != IGNORE_INDEX and not 0 <= i < V:
                    raise ValueError(
                        f"target id {i} out of range for vocab_size {V} (at targets[{b}][{t}]; "
                        f"{IGNORE_INDEX} means ignore)"
                    )
        return [list(row) for row in targets]

    # -- training ------------------------------------------------------------------------------
    def forward(self, idx: Any, targets: Any = None) -> tuple[Tensor, float | None]:
        """(logits (B, T, V), mean cross-entropy or None) for idx (B, T) ints, T <= block_size.

        targets (B, T) are the next tokens; positions holding -100 count for nothing.
        """
        idx = self._check_idx(idx, max_len=self.config.block_size)
        B, T = len(idx), len(idx[0])
        if targets is not None:
            targets = self._check_targets(targets, B, T)
        if self.training:  # this forward's dropout masks: see the module docstring
            set_dropout_rng(self, self.dropout_seed, self.dropout_step)
            self.dropout_step += 1
        x = self.transformer(idx)  # (B, T, C)
        logits, head_cache = linear_forward(x, self.lm_head_weight.data)  # (B, T, V) = x wte^T
        loss, loss_cache = None, None
        if targets is not None:
            loss, loss_cache = cross_entropy_forward(logits, targets, IGNORE_INDEX)
        self._cache = (head_cache, loss_cache, (B, T))
        return logits, loss

    def backward(self, dlogits: Tensor | None = None) -> None:
        """Backpropagate into every `p.grad` (accumulating): from the loss, or from an upstream
        gradient `dlogits` (B, T, V) on the logits when one is given."""
        if self._cache is None:
            raise RuntimeError("GPT.backward called before forward (or after generate)")
        head_cache, loss_cache, (B, T) = self._cache
        if dlogits is None:
            if loss_cache is None:
                raise RuntimeError(
                    "backward() starts from the loss: call model(idx, targets) "
                    "first, or pass backward(dlogits)"
                )
            dlogits = cross_entropy_backward(1.0, loss_cache)  # (B, T, V)
        elif shape_of(dlogits) != (B, T, self.config.vocab_size):
            raise ValueError(
                f"dlogits must have shape {(B, T, self.config.vocab_size)}, got {shape_of(dlogits)}"
            )
        dx, dwte, _ = linear_backward(dlogits, head_cache)  # (B, T, C), (V, C)
        _add_into(self.lm_head_weight.grad, dwte)  # the head's share of the tied matrix ...
        self.transformer.backward(dx)  # ... and the embedding's share, added in there

    def flops_per_token(self, T: int | None = None) -> int:
        """Training FLOPs per token (forward + backward), as nanoGPT and PaLM count them:
        6 N for the matmuls of N parameters (the position table is a lookup, not counted) plus
        12 L C T for attention's scores and weighted sums. T defaults to block_size."""
        c = self.config
        T = c.block_size if T is None else T
        n = self.num_parameters() - c.block_size * c.n_embd
        return 6 * n + 12 * c.n_layer * c.n_embd * T

    # -- generation ----------------------------------------------------------------------------
    def _last_logits(self, idx: list[list[int]], kv_cache: KVCache | None) -> list[list[float]]:
        """Logits (B, V) of the last position only: the head's V x C work is skipped elsewhere."""
        x = self.transformer(idx, kv_cache)  # (B, T, C)
        logits, _ = linear_forward([[seq[-1]] for seq in x], self.lm_head_weight.data)  # (B, 1, V)
        return [row[0] for row in logits]

    def generate(
        self,
        idx: Any,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int = 0,
        use_cache: bool = True,
    ) -> list[list[int]]:
        """Continue each row of idx (B, T) by max_new_tokens sampled tokens -> (B, T + new).

        temperature 0 is greedy (argmax, ties to the lowest id). The context is cropped to the
        last block_size tokens; with the cache, positions then shift, so the cache is rebuilt
        from the cropped context (a full forward) whenever it is full. Either way every step
        computes the same numbers, so use_cache only changes the speed, never the tokens.
        Runs in eval mode (no dropout) and restores the previous mode.
        """
        idx = self._check_idx(idx)  # longer than block_size is fine: it is cropped
        _check_int("max_new_tokens", max_new_tokens, low=0)
        _check_sampling(temperature, top_k, top_p)
        if _check_int("seed", seed, low=0) > MASK64:
            raise ValueError(f"seed must be in [0, 2**64), got {seed}")
        bs, B = self.config.block_size, len(idx)
        was_training = self.training
        self.eval()
        try:
            cache = None
            for i in range(max_new_tokens):
                if not use_cache:
                    logits = self._last_logits([row[-bs:] for row in idx], None)
                elif cache is not None and cache.length < bs:  # room for one more position
                    logits = self._last_logits([row[-1:] for row in idx], cache)
                else:  # the first step, or the cache is full: prefill from the cropped context
                    cache = KVCache(self.config.n_layer, B)
                    logits = self._last_logits([row[-bs:] for row in idx], cache)
                for b in range(B):
                    u = uniform(seed, b, i)  # stream b = batch row, index i = i-th new token
                    idx[b].append(sample_next_token(logits[b], temperature, top_k, top_p, u))
        finally:
            self.train(was_training)
            self._cache = None  # the layers' caches now hold generation, not a training forward
        return idx

    # -- checkpoints ---------------------------------------------------------------------------
    def config_dict(self) -> dict[str, Any]:
        return self.config.to_hf_dict()

    @classmethod
    def from_config_dict(cls, config: dict[str, Any]) -> GPT:
        return cls(GPTConfig.from_hf_dict(config))

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> GPT:
        """Load `config.json` + `model.safetensors` written by `save_pretrained`, or a Hugging
        Face GPT-2 directory (with or without the `transformer.` prefix; buffers are skipped).
        The model comes back in evaluation mode, as in `transformers` (`.train()` to train)."""
        directory = os.fspath(directory)
        weights = os.path.join(directory, "model.safetensors")
        config_path = os.path.join(directory, "config.json")
        if not os.path.isfile(config_path):
            raise FileNotFoundError(f"{directory!r} has no config.json")
        if not os.path.isfile(weights):
            hint = ""
            if os.path.isfile(os.path.join(directory, "pytorch_model.bin")):
                hint = " (pytorch_model.bin is a pickle, which this loader does not read)"
            elif os.path.isfile(weights + ".index.json"):
                hint = " (sharded checkpoints are not supported)"
            raise FileNotFoundError(f"{directory!r} has no model.safetensors{hint}")
        model = cls._from_config_file(config_path)
        model.load_state_dict(convert_hf_gpt2_state_dict(load_safetensors(weights)))
        return model.eval()


_BUFFER = re.compile(r"transformer\.h\.\d+\.attn\.(bias|masked_bias)")


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
        if not _BUFFER.fullmatch(key):
            out[key] = tensor
    head = out.pop("lm_head.weight", None)
    wte = out.get("transformer.wte.weight")
    if head is not None and isinstance(head, list):
        same = head == wte
    elif head is not None:  # a backend's arrays compare element by element
        same = wte is not None and head.shape == wte.shape and bool((head == wte).all())
    if head is not None and not same:
        raise ValueError("lm_head.weight differs from transformer.wte.weight: this GPT ties them")
    return out


# -- sampling --------------------------------------------------------------------------------------
def _check_sampling(temperature: Any, top_k: Any, top_p: Any) -> None:
    _check_float("temperature", temperature, 0.0, math.inf, high_open=True)
    if top_k is not None:
        _check_int("top_k", top_k, low=1)
    if top_p is not None:
        if _check_float("top_p", top_p, 0.0, 1.0, high_open=False) == 0.0:
            raise ValueError("top_p must be in (0, 1], got 0.0 (it would keep no token)")


def sample_next_token(
    logits: list[float],
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    u: float = 0.0,
) -> int:
    """One token id from a row of V logits and a uniform u in [0, 1), by inverse-CDF sampling.

    The exact arithmetic, so that another backend picks the same token (sums run left to right):
    1. temperature 0: the argmax, ties to the lowest id (u is unused).
    2. z_i = logits_i / temperature; order the ids by z descending, ties by id ascending.
    3. top_k: keep the first top_k ids of that order (all of them if top_k >= V).
    4. softmax over the kept ids in that order: e_i = exp(z_i - z_first), p_i = e_i / sum(e).
    5. top_p: keep the shortest prefix whose running sum of p reaches top_p (at least one id).
    6. mass = sum of the kept p; walk the kept ids, c += p_i, and return the first with
       u * mass < c (the last kept id if rounding leaves none).

    >>> sample_next_token([0.0, 0.0, 1.0], u=0.99), sample_next_token([0.0, 0.0, 1.0], 0.0)
    (1, 2)
    """
    _check_sampling(temperature, top_k, top_p)
    if not 0.0 <= u < 1.0:
        raise ValueError(f"u must be a uniform draw in [0, 1), got {u}")
    if not logits:
        raise ValueError("logits must hold at least one value")
    if temperature == 0.0:
        best = 0
        for i in range(1, len(logits)):
            if logits[i] > logits[best]:  # strictly greater: a tie keeps the lower id
                best = i
        return best
    z = [zi / temperature for zi in logits]  # (V,)
    for i, zi in enumerate(z):
        if not math.isfinite(zi):
            raise ValueError(f"logits / temperature must be finite, got {zi} at id {i}")
    order = sorted(range(len(z)), key=lambda i: (-z[i], i))  # most likely first
    if top_k is not None:
        order = order[:top_k]
    m = z[order[0]]  # the max: exp never overflows
    e = [math.exp(z[i] - m) for i in order]
    total = 0.0
    for ei in e:
        total += ei
    probs = [ei / total for ei in e]
    if top_p is not None and top_p < 1.0:
        c = 0.0
        for n, p in enumerate(probs, start=1):
            c += p
            if c >= top_p:  # the nucleus: the fewest most-likely tokens holding top_p
                order, probs = order[:n], probs[:n]
                break
    mass = 0.0
    for p in probs:
        mass += p
    target, c = u * mass, 0.0
    for i, p in zip(order, probs):
        c += p
        if target < c:
            return i
    return order[-1]


__all__ = [
    "GPTConfig", "GPT", "GPTTransformer", "Block", "CausalSelfAttention", "FeedForward", "KVCache",
    "sample_next_token", "convert_hf_gpt2_state_dict",
]  # fmt: skip

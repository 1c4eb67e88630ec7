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
This file holds the model; its neighbours hold what every model shares: the Hugging Face config
and checkpoint-name mapping (`hf.py`), the input checks (`checks.py`, `config_fields.py`) and the
sampling rule (`decoding.py`).

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
from dataclasses import dataclass
from typing import Any, NamedTuple

from .attention import (
    concat_qkv,
    multi_head_attention_backward,
    multi_head_attention_forward,
    split_qkv,
)
from .checkpoint import check_pretrained_files, load_safetensors
from .checks import IGNORE_INDEX, check_gpt_idx, check_gpt_targets
from .config_fields import check_gpt_config
from .decoding import check_generate_args, sample_next_token
from .hf import GPT2_INIT_STD, convert_hf_gpt2_state_dict, gpt2_config_from_hf, gpt2_config_to_hf
from .layers import (
    Activation,
    Conv1D,
    CrossEntropyCache,
    Dropout,
    Embedding,
    LayerNorm,
    LinearCache,
    _add_into,
    cross_entropy_backward,
    cross_entropy_forward,
    linear_backward,
    linear_forward,
    position_ids,
    set_dropout_rng,
)
from .module import Module, ModuleList
from .nested import add, shape_of
from .rng import uniform

Tensor = Any  # a nested list of floats
INIT_STD = GPT2_INIT_STD  # 0.02, the std of every initial weight but the residual projections


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
        check_gpt_config(self)  # each field's type and range (config_fields.py)
        self.dropout, self.layer_norm_epsilon = float(self.dropout), float(self.layer_norm_epsilon)

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head

    def to_hf_dict(self) -> dict[str, Any]:
        """The Hugging Face `GPT2Config` JSON for this model (what `config.json` holds)."""
        return gpt2_config_to_hf(self)

    @classmethod
    def from_hf_dict(cls, config: dict[str, Any]) -> GPTConfig:
        """Read a Hugging Face GPT-2 `config.json` (ours, or the official one); see
        `hf.gpt2_config_from_hf` for the fields read and the variants refused."""
        return cls(**gpt2_config_from_hf(config))


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
        x = add(x, self.attn(self.ln_1(x), kv_cache, self.layer))  # (B, T, C)
        return add(x, self.mlp(self.ln_2(x)))  # (B, T, C)

    def backward(self, dout: Tensor) -> Tensor:
        # x2 = x1 + mlp(ln_2(x1)): the gradient reaches x1 both directly and through the branch.
        dx = add(dout, self.ln_2.backward(self.mlp.backward(dout)))
        return add(dx, self.ln_1.backward(self.attn.backward(dx)))


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
        x = self.drop(add(tok_emb, pos_emb))  # (B, T, C)
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
class _HeadCache(NamedTuple):
    """What `CausalLM.backward` needs from its forward: the head's `LinearCache`, the loss's
    `CrossEntropyCache` (None without targets) and (B, T)."""

    head: LinearCache
    loss: CrossEntropyCache | None
    shape: tuple[int, int]


class CausalLM(Module):
    """A decoder-only language model: a trunk of blocks (`trunk`) and an output head (its (V, C)
    weight `lm_head_weight`), trained on next-token prediction and sampled from one token at a
    time. What such a model does the same way whatever its blocks lives here, once; GPT-2's and
    LLaMA's classes add their blocks, their context length (`context_length`, called
    `context_name` in the config), how to make a key/value cache (`new_kv_cache`) and how a
    Hugging Face checkpoint's names map onto theirs (`_convert_hf_state_dict`).

    `logits, loss = model(idx, targets)`; `model.zero_grad(); model.backward()` fills every
    `p.grad`; `model.generate(idx, max_new_tokens)` continues each row of idx.
    """

    context_name = "block_size"

    @property
    def context_length(self) -> int:
        """How many positions the model sees at once (the config's `context_name`)."""
        return getattr(self.config, self.context_name)

    def _check_idx(self, idx: Any, max_len: int | None = None) -> list[list[int]]:
        return check_gpt_idx(
            idx, self.config.vocab_size, max_len=max_len, max_len_name=self.context_name
        )

    # -- training ------------------------------------------------------------------------------
    def forward(self, idx: Any, targets: Any = None) -> tuple[Tensor, float | None]:
        """(logits (B, T, V), mean cross-entropy or None) for idx (B, T) ints, T <= the context
        length. targets (B, T) are the next tokens; positions holding -100 count for nothing.
        """
        idx = self._check_idx(idx, self.context_length)
        B, T = len(idx), len(idx[0])
        if targets is not None:
            targets = check_gpt_targets(targets, B, T, self.config.vocab_size)
        if self.training:  # this forward's dropout masks: see the module docstring
            set_dropout_rng(self, self.dropout_seed, self.dropout_step)
            self.dropout_step += 1
        x = self.trunk(idx)  # (B, T, C)
        logits, head_cache = linear_forward(x, self.lm_head_weight.data)  # (B, T, V) = x W^T
        loss, loss_cache = None, None
        if targets is not None:
            loss, loss_cache = cross_entropy_forward(logits, targets, IGNORE_INDEX)
        self._cache = _HeadCache(head_cache, loss_cache, (B, T))
        return logits, loss

    def backward(self, dlogits: Tensor | None = None) -> None:
        """Backpropagate into every `p.grad` (accumulating): from the loss, or from an upstream
        gradient `dlogits` (B, T, V) on the logits when one is given."""
        if self._cache is None:
            raise RuntimeError(
                f"{type(self).__name__}.backward called before forward (or after generate)"
            )
        B, T = self._cache.shape
        if dlogits is None:
            if self._cache.loss is None:
                raise RuntimeError(
                    "backward() starts from the loss: call model(idx, targets) "
                    "first, or pass backward(dlogits)"
                )
            dlogits = cross_entropy_backward(1.0, self._cache.loss)  # (B, T, V)
        elif shape_of(dlogits) != (B, T, self.config.vocab_size):
            raise ValueError(
                f"dlogits must have shape {(B, T, self.config.vocab_size)}, got {shape_of(dlogits)}"
            )
        dx, dhead, _ = linear_backward(dlogits, self._cache.head)  # (B, T, C), (V, C)
        _add_into(self.lm_head_weight.grad, dhead)  # the head's share (of the tied matrix) ...
        self.trunk.backward(dx)  # ... and, when tied, the embedding's share, added in there

    # -- generation ----------------------------------------------------------------------------
    def _last_logits(self, idx: list[list[int]], kv_cache: Any) -> list[list[float]]:
        """Logits (B, V) of the last position only: the head's V x C work is skipped elsewhere."""
        x = self.trunk(idx, kv_cache)  # (B, T, C)
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
        last context-length tokens; with the cache, positions then shift, so the cache is
        rebuilt from the cropped context (a full forward) whenever it is full. Either way every
        step computes the same numbers, so use_cache only changes the speed, never the tokens.
        Runs in eval mode (no dropout) and restores the previous mode.
        """
        idx = self._check_idx(idx)  # longer than the context: cropped
        check_generate_args(max_new_tokens, temperature, top_k, top_p, seed)
        bs, B = self.context_length, len(idx)
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
                    cache = self.new_kv_cache(B)
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
    def from_config_dict(cls, config: dict[str, Any]) -> CausalLM:
        return cls(cls.config_class.from_hf_dict(config))

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> CausalLM:
        """Load `config.json` + `model.safetensors` written by `save_pretrained`, or a directory
        `transformers` wrote for the same architecture (buffers are skipped). The model comes
        back in evaluation mode, as in `transformers` (`.train()` to train)."""
        directory = os.fspath(directory)
        check_pretrained_files(directory)
        model = cls._from_config_file(os.path.join(directory, "config.json"))
        state = load_safetensors(os.path.join(directory, "model.safetensors"))
        model.load_state_dict(model._convert_hf_state_dict(state))
        return model.eval()


class GPT(CausalLM):
    """GPT-2 with a language-model head tied to the token embedding (`GPT2LMHeadModel`).

    `logits, loss = model(idx, targets)`; `model.zero_grad(); model.backward()` fills every
    `p.grad`; `model.generate(idx, max_new_tokens)` continues each row of idx (see `CausalLM`).
    """

    config_class = GPTConfig

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
        self._cache: _HeadCache | None = None

    @property
    def trunk(self) -> GPTTransformer:
        return self.transformer

    @property
    def lm_head_weight(self) -> Any:
        """The output head's (V, C) weight: the token embedding's Parameter (tied)."""
        return self.transformer.wte.weight

    def flops_per_token(self, T: int | None = None) -> int:
        """Training FLOPs per token (forward + backward), as nanoGPT and PaLM count them:
        6 N for the matmuls of N parameters (the position table is a lookup, not counted) plus
        12 L C T for attention's scores and weighted sums. T defaults to block_size."""
        c = self.config
        T = c.block_size if T is None else T
        n = self.num_parameters() - c.block_size * c.n_embd
        return 6 * n + 12 * c.n_layer * c.n_embd * T

    def new_kv_cache(self, B: int) -> KVCache:
        """An empty key/value cache for B sequences."""
        return KVCache(self.config.n_layer, B)

    @staticmethod
    def _convert_hf_state_dict(state: dict[str, Any]) -> dict[str, Any]:
        """Hugging Face GPT-2 names (with or without the `transformer.` prefix) onto ours."""
        return convert_hf_gpt2_state_dict(state)


__all__ = [
    "GPTConfig", "GPT", "GPTTransformer", "Block", "CausalSelfAttention", "FeedForward", "KVCache",
    "sample_next_token", "convert_hf_gpt2_state_dict",
]  # fmt: skip

"""T5 (Raffel et al., 2019, "Exploring the Limits of Transfer Learning with a Unified Text-to-Text
Transformer"): the encoder-decoder as people load it, with explicit backprop.

The 2017 encoder-decoder (`seq2seq.py`) with T5's changes, each an op of `t5_layers.py`:

    x = dropout(shared(src))                    y = dropout(shared(tgt))
    encoder block (pre-norm, residual):         decoder block:
        x = x + dropout(attn(ln(x), b_enc))         y = y + dropout(attn(ln(y), b_dec, causal))
        x = x + dropout(ff(ln(x)))                  y = y + dropout(cross_attn(ln(y), memory))
    memory = dropout(final_ln(x))                   y = y + dropout(ff(ln(y)))
                                                h = dropout(final_ln(y))
    logits = h * d_model**-0.5 @ shared^T   (tied head)   or   h @ lm_head^T   (untied)

- ln is T5's layer norm (RMS, gain only); attn has no biases and no 1/sqrt(hs) scale; the
  relative position bias is computed from the first block's table (`relative_attention_bias`)
  and added in every block of that stack: bidirectional buckets in the encoder, causal in the
  decoder, none in cross-attention.
- ff: "relu" (T5 v1.0) wo(dropout(relu(wi(x)))), or "gated-gelu" (v1.1)
  wo(dropout(gelu(wi_0(x)) * wi_1(x))).
- One embedding, `shared`, for source, target and (tied) the output.

Parameter names and shapes are Hugging Face `T5ForConditionalGeneration`'s
(`encoder.block.0.layer.0.SelfAttention.q.weight` (H*d_kv, d_model), ...) and `config.json` is
its `T5Config`: `save_pretrained` writes what `transformers` loads, and `from_pretrained` reads
what it writes (the tests check both, logits and gradients).

Conventions, as `seq2seq.Transformer` (the same API):
- `model(src, tgt, targets)`: src (B, Ts) and tgt (B, Tt) right-padded with pad_token_id; tgt
  starts with decoder_start_token_id (T5 uses the pad id itself, so the decoder's first position
  is never treated as padding); targets pad or -100 where nothing is predicted.
- Padding: no query sees a padded source key (encoder and cross-attention) nor a padded target
  key after position 0.
- Dropout sites, numbered in `modules()` order by `set_dropout_rng(model, config.seed,
  model.dropout_step)` each training forward: per stack the embedding dropout, then per block
  each attention's weights and each sub-layer's output (and the feed-forward hidden layer), then
  the final dropout.
- Initialisation as `transformers` (normal, std times initializer_factor): shared and an untied
  head 1; q (d_model * d_kv)**-0.5; k, v, the bias table and wi d_model**-0.5; o (H * d_kv)**-0.5;
  wo d_ff**-0.5; layer norms 1. Tensor k draws from Philox stream 2**63 + k in construction
  order.
- Decoding: `greedy_decode` and `beam_search` from `decoding.py` (decoder_start as bos,
  eos_token_id as eos).

Dimension legend: B batch, Ts source time, Tt target time, C channels (d_model), H heads,
hs = d_kv head size, F feed-forward width (d_ff), V vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, NamedTuple

from .attention import merge_heads, split_heads
from .checks import IGNORE_INDEX, check_seq2seq_ids, check_seq2seq_targets
from .config_fields import check_t5_config
from .decoding import beam_search, greedy_decode
from .hf import convert_hf_t5_state_dict, t5_config_from_hf, t5_config_to_hf
from .init import INIT_STREAM_BASE
from .layers import (
    Activation,
    Dropout,
    Embedding,
    Linear,
    _add_into,
    cross_entropy_backward,
    cross_entropy_forward,
    embedding_backward,
    embedding_forward,
    linear_backward,
    linear_forward,
    set_dropout_rng,
)
from .module import Module, ModuleList, Parameter
from .nested import add, shape_of
from .t5_layers import (
    gated_gelu_backward,
    gated_gelu_forward,
    relative_position_bias_backward,
    relative_position_bias_forward,
    t5_attention_backward,
    t5_attention_forward,
    t5_layer_norm_backward,
    t5_layer_norm_forward,
)

Tensor = Any  # a nested list of floats


# -- configuration ---------------------------------------------------------------------------------
@dataclass
class T5Config:
    """T5's sizes under Hugging Face `T5Config`'s names; the defaults are t5-small's.

    `max_len` (the longest source or decoder input accepted; relative positions have no limit of
    their own) and `seed` are ours, kept in config.json under `model_archaeology`.
    """

    vocab_size: int = 32128
    d_model: int = 512
    d_kv: int = 64
    d_ff: int = 2048
    num_layers: int = 6
    num_decoder_layers: int | None = None  # None: num_layers
    num_heads: int = 8
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    dropout_rate: float = 0.1
    layer_norm_epsilon: float = 1e-6
    initializer_factor: float = 1.0
    feed_forward_proj: str = "relu"  # "relu" (v1.0) or "gated-gelu" (v1.1)
    tie_word_embeddings: bool = True  # tied: logits = (h * d_model**-0.5) shared^T
    pad_token_id: int = 0
    eos_token_id: int = 1
    decoder_start_token_id: int | None = None  # None: pad_token_id, as T5
    max_len: int = 512
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_decoder_layers is None:
            self.num_decoder_layers = self.num_layers
        if self.decoder_start_token_id is None:
            self.decoder_start_token_id = self.pad_token_id
        check_t5_config(self)  # each field's type and range (config_fields.py)

    # the names `decoding.py`'s searches read (one vocabulary for source and target)
    @property
    def src_vocab_size(self) -> int:
        return self.vocab_size

    @property
    def bos_id(self) -> int:
        return self.decoder_start_token_id

    @property
    def eos_id(self) -> int:
        return self.eos_token_id

    @property
    def pad_id(self) -> int:
        return self.pad_token_id

    def to_dict(self) -> dict[str, Any]:
        """The Hugging Face `config.json` that `T5.save_pretrained` writes."""
        return t5_config_to_hf(self)

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> T5Config:
        """Read a Hugging Face T5 `config.json` (ours or theirs); see `hf.t5_config_from_hf`."""
        return cls(**t5_config_from_hf(config))


FIELDS = tuple(f.name for f in fields(T5Config))


class _Init:
    """Hands out the initialisation streams 2**63 + 0, 1, ... in construction order."""

    def __init__(self, seed: int, factor: float):
        self.seed, self.factor, self.k = seed, factor, 0

    def __call__(self, std: float) -> dict[str, Any]:
        self.k += 1
        return {
            "std": self.factor * std,
            "seed": self.seed,
            "stream": INIT_STREAM_BASE + self.k - 1,
        }


# -- the layers, named as in transformers ----------------------------------------------------------
class T5LayerNorm(Module):
    """T5's layer norm: `weight` (C,) ones, no bias; y = weight * x / sqrt(mean(x^2) + eps)."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = Parameter([1.0] * dim)
        self._cache = None

    def forward(self, x: Tensor) -> Tensor:
        out, self._cache = t5_layer_norm_forward(x, self.weight.data, self.eps)
        return out

    def backward(self, dout: Tensor) -> Tensor:
        if self._cache is None:
            raise RuntimeError("T5LayerNorm.backward called before forward")
        dx, dweight = t5_layer_norm_backward(dout, self._cache)
        _add_into(self.weight.grad, dweight)
        return dx


class _AttnCache(NamedTuple):
    """What `T5Attention.backward` needs: the (B, H, Tq, Tk) attention's cache and whether its
    keys and values came from a memory (cross-attention)."""

    attention: Any
    cross: bool


class T5Attention(Module):
    """T5's attention: q, k, v (H*d_kv, C) and o (C, H*d_kv) without biases, no score scaling,
    plus a relative position bias. The first block of a stack also holds the bias table
    `relative_attention_bias` (num_buckets, H), which `position_bias` turns into (H, Tq, Tk)."""

    def __init__(self, c: T5Config, has_relative_attention_bias: bool, init: _Init):
        super().__init__()
        C, H, hs = c.d_model, c.num_heads, c.d_kv
        self.n_heads = H
        self.q = Linear(C, H * hs, bias=False, **init((C * hs) ** -0.5))
        self.k = Linear(C, H * hs, bias=False, **init(C**-0.5))
        self.v = Linear(C, H * hs, bias=False, **init(C**-0.5))
        self.o = Linear(H * hs, C, bias=False, **init((H * hs) ** -0.5))
        if has_relative_attention_bias:
            self.relative_attention_bias = Embedding(
                c.relative_attention_num_buckets, H, **init(C**-0.5)
            )
        self.dropout = Dropout(c.dropout_rate)  # on the attention weights
        self.max_distance = c.relative_attention_max_distance
        self._cache: _AttnCache | None = None
        self._bias_cache = None

    def position_bias(self, Tq: int, Tk: int, bidirectional: bool) -> Tensor:
        """The (H, Tq, Tk) bias from this layer's table (the stack's first attention only)."""
        table = self.relative_attention_bias.weight.data
        bias, self._bias_cache = relative_position_bias_forward(
            table, Tq, Tk, bidirectional, self.max_distance
        )
        return bias

    def position_bias_backward(self, dbias: Tensor) -> None:
        """Accumulate the table's gradient from the bias's, summed over the stack's blocks."""
        _add_into(
            self.relative_attention_bias.weight.grad,
            relative_position_bias_backward(dbias, self._bias_cache),
        )

    def forward(self, x, memory=None, position_bias=None, causal=False, key_padding_mask=None):
        """(B, Tq, C) queries from x; keys and values from x (memory None) or memory (B, Tk, C)."""
        source = x if memory is None else memory
        H = self.n_heads
        q = split_heads(self.q(x), H)  # (B, H, Tq, hs)
        k = split_heads(self.k(source), H)  # (B, H, Tk, hs)
        v = split_heads(self.v(source), H)
        d = self.dropout
        y, c_att = t5_attention_forward(
            q, k, v, position_bias, causal, key_padding_mask, d.effective_p(), d.seed, d.stream
        )  # (B, H, Tq, hs)
        self._cache = _AttnCache(c_att, memory is not None)
        return self.o(merge_heads(y))  # (B, Tq, C)

    def backward(self, dout: Tensor) -> tuple[Tensor, Tensor | None, Tensor]:
        """(dx, dmemory or None, dposition_bias (H, Tq, Tk))."""
        if self._cache is None:
            raise RuntimeError("T5Attention.backward called before forward")
        H = self.n_heads
        dy = split_heads(self.o.backward(dout), H)
        dq, dk, dv, dbias = t5_attention_backward(dy, self._cache.attention)
        dx = self.q.backward(merge_heads(dq))
        dsource = add(self.k.backward(merge_heads(dk)), self.v.backward(merge_heads(dv)))
        if self._cache.cross:
            return dx, dsource, dbias
        return add(dx, dsource), None, dbias


class T5LayerSelfAttention(Module):
    """x + dropout(SelfAttention(layer_norm(x)))."""

    def __init__(self, c: T5Config, has_relative_attention_bias: bool, init: _Init):
        super().__init__()
        self.SelfAttention = T5Attention(c, has_relative_attention_bias, init)
        self.layer_norm = T5LayerNorm(c.d_model, c.layer_norm_epsilon)
        self.dropout = Dropout(c.dropout_rate)

    def forward(self, x, position_bias, causal, key_padding_mask):
        a = self.SelfAttention(self.layer_norm(x), None, position_bias, causal, key_padding_mask)
        return add(x, self.dropout(a))

    def backward(self, dout):
        """(dx, dposition_bias)."""
        da, _, dbias = self.SelfAttention.backward(self.dropout.backward(dout))
        return add(dout, self.layer_norm.backward(da)), dbias


class T5LayerCrossAttention(Module):
    """y + dropout(EncDecAttention(layer_norm(y), memory)): no position bias."""

    def __init__(self, c: T5Config, init: _Init):
        super().__init__()
        self.EncDecAttention = T5Attention(c, False, init)
        self.layer_norm = T5LayerNorm(c.d_model, c.layer_norm_epsilon)
        self.dropout = Dropout(c.dropout_rate)

    def forward(self, y, memory, memory_padding_mask):
        a = self.EncDecAttention(self.layer_norm(y), memory, None, False, memory_padding_mask)
        return add(y, self.dropout(a))

    def backward(self, dout):
        """(dy, dmemory)."""
        da, dmemory, _ = self.EncDecAttention.backward(self.dropout.backward(dout))
        return add(dout, self.layer_norm.backward(da)), dmemory


class T5DenseActDense(Module):
    """T5 v1.0's feed-forward: wo(dropout(relu(wi(x)))), no biases."""

    def __init__(self, c: T5Config, init: _Init):
        super().__init__()
        self.wi = Linear(c.d_model, c.d_ff, bias=False, **init(c.d_model**-0.5))
        self.wo = Linear(c.d_ff, c.d_model, bias=False, **init(c.d_ff**-0.5))
        self.dropout = Dropout(c.dropout_rate)
        self.act = Activation("relu")

    def forward(self, x):
        return self.wo(self.dropout(self.act(self.wi(x))))

    def backward(self, dout):
        return self.wi.backward(self.act.backward(self.dropout.backward(self.wo.backward(dout))))


class T5DenseGatedActDense(Module):
    """T5 v1.1's feed-forward: wo(dropout(gelu(wi_0(x)) * wi_1(x))), no biases (tanh GELU)."""

    def __init__(self, c: T5Config, init: _Init):
        super().__init__()
        self.wi_0 = Linear(c.d_model, c.d_ff, bias=False, **init(c.d_model**-0.5))
        self.wi_1 = Linear(c.d_model, c.d_ff, bias=False, **init(c.d_model**-0.5))
        self.wo = Linear(c.d_ff, c.d_model, bias=False, **init(c.d_ff**-0.5))
        self.dropout = Dropout(c.dropout_rate)
        self._cache = None

    def forward(self, x):
        h, self._cache = gated_gelu_forward(self.wi_0(x), self.wi_1(x))
        return self.wo(self.dropout(h))

    def backward(self, dout):
        dgate, dup = gated_gelu_backward(self.dropout.backward(self.wo.backward(dout)), self._cache)
        return add(self.wi_0.backward(dgate), self.wi_1.backward(dup))


class T5LayerFF(Module):
    """x + dropout(DenseReluDense(layer_norm(x)))."""

    def __init__(self, c: T5Config, init: _Init):
        super().__init__()
        gated = c.feed_forward_proj == "gated-gelu"
        self.DenseReluDense = (T5DenseGatedActDense if gated else T5DenseActDense)(c, init)
        self.layer_norm = T5LayerNorm(c.d_model, c.layer_norm_epsilon)
        self.dropout = Dropout(c.dropout_rate)

    def forward(self, x):
        return add(x, self.dropout(self.DenseReluDense(self.layer_norm(x))))

    def backward(self, dout):
        d = self.DenseReluDense.backward(self.dropout.backward(dout))
        return add(dout, self.layer_norm.backward(d))


class T5Block(Module):
    """An encoder block (`layer` = self-attention, feed-forward) or a decoder block
    (self-attention, cross-attention, feed-forward)."""

    def __init__(self, c: T5Config, is_decoder: bool, has_bias: bool, init: _Init):
        super().__init__()
        layers = [T5LayerSelfAttention(c, has_bias, init)]
        if is_decoder:
            layers.append(T5LayerCrossAttention(c, init))
        layers.append(T5LayerFF(c, init))
        self.layer = ModuleList(layers)
        self.is_decoder = is_decoder

    def forward(self, x, position_bias, padding_mask, memory=None, memory_padding_mask=None):
        x = self.layer[0](x, position_bias, self.is_decoder, padding_mask)
        if self.is_decoder:
            x = self.layer[1](x, memory, memory_padding_mask)
        return self.layer[-1](x)

    def backward(self, dout):
        """(dx, dposition_bias, dmemory or None)."""
        d = self.layer[-1].backward(dout)
        dmemory = None
        if self.is_decoder:
            d, dmemory = self.layer[1].backward(d)
        d, dbias = self.layer[0].backward(d)
        return d, dbias, dmemory


class T5Stack(Module):
    """The encoder or the decoder: `block`s, `final_layer_norm`, and the dropouts around them.
    The token embedding is the model's `shared` (not a parameter of the stack)."""

    def __init__(self, c: T5Config, is_decoder: bool, init: _Init):
        super().__init__()
        n = c.num_decoder_layers if is_decoder else c.num_layers
        self.is_decoder = is_decoder
        self.embed_dropout = Dropout(c.dropout_rate)  # HF's `dropout`, used twice there
        self.block = ModuleList([T5Block(c, is_decoder, i == 0, init) for i in range(n)])
        self.final_layer_norm = T5LayerNorm(c.d_model, c.layer_norm_epsilon)
        self.dropout = Dropout(c.dropout_rate)

    def _table(self) -> T5Attention:
        return self.block[0].layer[0].SelfAttention

    def forward(self, x, padding_mask, memory=None, memory_padding_mask=None):
        """x (B, T, C) embedded tokens -> (B, T, C)."""
        T = len(x[0])
        bias = self._table().position_bias(T, T, not self.is_decoder)  # (H, T, T), shared
        h = self.embed_dropout(x)
        for block in self.block:
            h = block(h, bias, padding_mask, memory, memory_padding_mask)
        return self.dropout(self.final_layer_norm(h))

    def backward(self, dout):
        """(dx, dmemory or None); the bias's gradient, summed over blocks, goes to the table."""
        d = self.final_layer_norm.backward(self.dropout.backward(dout))
        dbias = dmemory = None
        for block in reversed(list(self.block)):
            d, db, dm = block.backward(d)
            dbias = db if dbias is None else add(dbias, db)
            if dm is not None:
                dmemory = dm if dmemory is None else add(dmemory, dm)
        self._table().position_bias_backward(dbias)
        return self.embed_dropout.backward(d), dmemory


# -- the model -------------------------------------------------------------------------------------
class T5(Module):
    """T5 for conditional generation: `model(src, tgt, targets) -> (logits, loss)`.

    src (B, Ts) source ids, tgt (B, Tt) decoder inputs (decoder_start_token_id, then the target
    shifted right), both right-padded with pad_token_id; targets (B, Tt) the tokens to predict
    (the target, then eos), pad or -100 where nothing is to be predicted.

        >>> cfg = T5Config(vocab_size=7, d_model=4, d_kv=2, d_ff=6, num_layers=1, num_heads=2,
        ...                relative_attention_num_buckets=4, relative_attention_max_distance=8)
        >>> logits, loss = T5(cfg)([[3, 4, 0]], [[0, 3, 4]], [[3, 4, 1]])
        >>> len(logits), len(logits[0]), len(logits[0][0])
        (1, 3, 7)
    """

    def __init__(self, config: T5Config):
        super().__init__()
        if not isinstance(config, T5Config):
            raise TypeError(f"config must be a T5Config, got {type(config).__name__}")
        self.config = c = config
        init = _Init(c.seed, c.initializer_factor)
        self.shared = Embedding(c.vocab_size, c.d_model, **init(1.0))
        self.encoder = T5Stack(c, False, init)
        self.decoder = T5Stack(c, True, init)
        if not c.tie_word_embeddings:
            self.lm_head = Linear(c.d_model, c.vocab_size, bias=False, **init(1.0))
        self.dropout_step = 0  # training forwards so far: the step of the dropout streams
        self._caches: dict[str, Any] = {}
        self._loss_cache = None
        self._ran_forward = False

    # -- checkpoints -----------------------------------------------------------------------------
    def config_dict(self) -> dict[str, Any]:
        return self.config.to_dict()

    @classmethod
    def from_config_dict(cls, config: dict[str, Any]) -> T5:
        return cls(T5Config.from_dict(config))

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> None:
        """As `Module.load_state_dict`, after `hf.convert_hf_t5_state_dict` (a `transformers`
        checkpoint's copies of the shared embedding)."""
        if isinstance(state, dict):
            state = convert_hf_t5_state_dict(state, self.config.tie_word_embeddings)
        super().load_state_dict(state, strict)

    # -- validation ------------------------------------------------------------------------------
    def _check_src(self, src: Any) -> list[list[int]]:
        c = self.config
        return check_seq2seq_ids("src", src, c.vocab_size, "vocab_size", c.max_len)

    def _check_tgt(self, tgt: Any, B: int) -> list[list[int]]:
        c = self.config
        tgt = check_seq2seq_ids("tgt", tgt, c.vocab_size, "vocab_size", c.max_len)
        if len(tgt) != B:
            raise ValueError(f"tgt must have one row per source (B={B}), got {len(tgt)} rows")
        return tgt

    def _padding_mask(self, ids: list[list[int]], first_is_real: bool) -> list[list[bool]]:
        """(B, T) True where ids hold pad_token_id: keys no query may see. The decoder's first
        position holds the start token, which is the pad id in T5: it is never padding."""
        pad = self.config.pad_token_id
        return [
            [i == pad and not (first_is_real and t == 0) for t, i in enumerate(row)] for row in ids
        ]

    # -- forward ---------------------------------------------------------------------------------
    def _head(self, h: Tensor) -> Tensor:
        """(B, Tt, C) -> logits (B, Tt, V): tied, h * d_model**-0.5 @ shared^T; else lm_head."""
        if not self.config.tie_word_embeddings:
            return self.lm_head(h)
        s = self.config.d_model**-0.5
        scaled = [[[v * s for v in row] for row in seq] for seq in h]
        logits, self._caches["head"] = linear_forward(scaled, self.shared.weight.data)
        return logits

    def _head_backward(self, dlogits: Tensor) -> Tensor:
        if not self.config.tie_word_embeddings:
            return self.lm_head.backward(dlogits)
        dh, dW, _ = linear_backward(dlogits, self._caches["head"])
        _add_into(self.shared.weight.grad, dW)
        s = self.config.d_model**-0.5
        return [[[v * s for v in row] for row in seq] for seq in dh]

    def _embed(self, ids: list[list[int]], key: str) -> Tensor:
        out, self._caches[key] = embedding_forward(self.shared.weight.data, ids)
        return out

    def _embed_backward(self, dx: Tensor, key: str) -> None:
        _add_into(self.shared.weight.grad, embedding_backward(dx, self._caches[key]))

    def encode(self, src: Any) -> Tensor:
        """The encoder's output, the memory (B, Ts, C), for source ids src (B, Ts)."""
        src = self._check_src(src)
        x = self._embed(src, "src")  # (B, Ts, C)
        return self.encoder(x, self._padding_mask(src, False))

    def decode(self, tgt: Any, memory: Tensor, src: Any) -> Tensor:
        """Logits (B, Tt, V) for decoder inputs tgt (B, Tt) given memory (B, Ts, C) = encode(src);
        `src` supplies the memory's padding mask."""
        src = self._check_src(src)
        tgt = self._check_tgt(tgt, len(src))
        expected = (len(src), len(src[0]), self.config.d_model)
        if shape_of(memory) != expected:
            raise ValueError(
                f"memory must have shape {expected} = encode(src), got {shape_of(memory)}"
            )
        y = self._embed(tgt, "tgt")  # (B, Tt, C)
        h = self.decoder(
            y, self._padding_mask(tgt, True), memory, self._padding_mask(src, False)
        )  # (B, Tt, C)
        return self._head(h)  # (B, Tt, V)

    def forward(self, src: Any, tgt: Any, targets: Any = None):
        """(logits (B, Tt, V), mean cross-entropy over counted positions or None)."""
        src = self._check_src(src)
        tgt = self._check_tgt(tgt, len(src))
        if targets is not None:
            c = self.config
            targets = check_seq2seq_targets(
                targets, (len(tgt), len(tgt[0])), c.vocab_size, c.pad_token_id
            )
        if self.training:  # fresh dropout masks each training step, the same in every backend
            set_dropout_rng(self, self.config.seed, self.dropout_step)
            self.dropout_step += 1
        memory = self.encode(src)
        logits = self.decode(tgt, memory, src)
        self._ran_forward = True
        if targets is None:
            self._loss_cache = None
            return logits, None
        loss, self._loss_cache = cross_entropy_forward(logits, targets, IGNORE_INDEX)
        return logits, loss

    def backward(self, dlogits: Tensor | None = None) -> None:
        """Backpropagate the last forward's loss (or `dlogits` (B, Tt, V)) and ACCUMULATE dL/dp
        into every parameter's grad."""
        if not self._ran_forward:
            raise RuntimeError("call forward before backward")
        if dlogits is None:
            if self._loss_cache is None:
                raise RuntimeError("forward was called without targets: pass dlogits to backward")
            dlogits = cross_entropy_backward(1.0, self._loss_cache)
        dh = self._head_backward(dlogits)  # (B, Tt, C)
        dy, dmemory = self.decoder.backward(dh)
        self._embed_backward(dy, "tgt")
        dx, _ = self.encoder.backward(dmemory)
        self._embed_backward(dx, "src")

    # -- decoding (the searches are in `decoding.py`) ------------------------------------------
    def greedy_decode(self, src: Any, max_len: int | None = None) -> list[list[int]]:
        """Each source's output by picking the most likely next token until eos or `max_len`
        tokens (eos included; default config.max_len); ties to the lowest id. Returns B lists of
        ids without the start token and eos."""
        return greedy_decode(self, self._check_src(src), max_len)  # errors name vocab_size

    def beam_search(
        self,
        src: Any,
        beam_width: int = 4,
        max_len: int | None = None,
        length_penalty: float = 1.0,
    ) -> list[list[int]]:
        """Each source's best output by beam search (`decoding.beam_search`)."""
        return beam_search(self, self._check_src(src), beam_width, max_len, length_penalty)


__all__ = ["T5Config", "T5"]

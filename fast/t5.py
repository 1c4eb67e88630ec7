"""T5 on numpy arrays (and DeviceArrays): `reference/t5.py`, made fast.

Same architecture, Hugging Face parameter names and shapes, dropout sites and step counter,
initialisation streams, decoding rules and checkpoint format as the reference; read that file for
the model itself. How this one is made fast:
- every projection is one BLAS call each way on (B*T, C) rows (`fast.layers.Linear`), the heads
  are views of them (`split_heads`);
- T5's layer norm, the relative position bias, the unscaled biased attention and the gated GELU
  are the ops of `fast/t5_layers.py` (fused Numba kernels on the CPU, CUDA kernels on the GPU);
- the bias table of each stack is turned into its (H, T, T) bias once per forward and shared by
  every block, whose gradients are summed before one scatter-add into the table;
- ids given as numpy int arrays are validated by array reductions (`fast.seq2seq`'s check), nested
  lists by the reference's own checks;
- `greedy_decode` steps every live row at once; beam search is the reference's, on this model's
  logits (as `fast.Transformer`).
What is not hot is the reference's own code: `T5Config` with its checks and config.json mapping,
the state-dict conversion, the span corruption (`reference.span_corruption`), the decoding
argument checks and beam search.

Dimension legend: B batch, Ts source time, Tt target time, C channels (d_model), H heads,
hs = d_kv head size, F feed-forward width (d_ff), V vocabulary.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from reference.checks import IGNORE_INDEX, check_seq2seq_targets
from reference.decoding import beam_search, check_max_len, strip_eos
from reference.hf import convert_hf_t5_state_dict
from reference.init import INIT_STREAM_BASE
from reference.span_corruption import span_corruption
from reference.t5 import T5Config

from .attention import merge_heads, split_heads
from .device import resolve_device, to_device, to_host, unless_on_device
from .dtypes import resolve_dtype
from .layers import (
    Activation,
    Dropout,
    Embedding,
    Linear,
    cross_entropy_backward,
    cross_entropy_forward,
    embedding_backward,
    embedding_forward,
    linear_backward,
    linear_forward,
    set_dropout_rng,
)
from .module import Module, ModuleList, Parameter
from .seq2seq import _HostLogits, _ids
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
from .validate import as_float_array, int_batch, owns_inputs, private

__all__ = ["T5Config", "T5", "span_corruption"]


class _Init:
    """The reference's streams 2**63 + 0, 1, ... in construction order, and the model's dtype."""

    def __init__(self, seed: int, factor: float, dtype):
        self.seed, self.factor, self.dtype, self.k = seed, factor, dtype, 0

    def __call__(self, std: float) -> dict[str, Any]:
        self.k += 1
        stream = INIT_STREAM_BASE + self.k - 1
        return {"std": self.factor * std, "seed": self.seed, "stream": stream, "dtype": self.dtype}


# -- the layers, named as in transformers ----------------------------------------------------------
class T5LayerNorm(Module):
    """T5's layer norm: `weight` (C,) ones, no bias."""

    def __init__(self, dim: int, eps: float, dtype):
        super().__init__()
        self.eps = eps
        self.weight = Parameter(np.ones(dim), dtype)
        self._cache = None

    def forward(self, x):
        out, self._cache = t5_layer_norm_forward(x, self.weight.data, self.eps)
        return out

    def backward(self, dout):
        if self._cache is None:
            raise RuntimeError("T5LayerNorm.backward called before forward")
        dx, dweight = t5_layer_norm_backward(dout, self._cache)
        self.weight.grad += dweight
        return dx


class _AttnCache(NamedTuple):
    """What `T5Attention.backward` needs: the attention's cache and whether its keys and values
    came from a memory (cross-attention)."""

    attention: Any
    cross: bool


class T5Attention(Module):
    """q, k, v, o without biases, no score scaling, a relative position bias (see the reference);
    the first block of a stack holds the table `relative_attention_bias` (num_buckets, H)."""

    def __init__(self, c: T5Config, has_relative_attention_bias: bool, init: _Init):
        super().__init__()
        C, H, hs = c.d_model, c.num_heads, c.d_kv
        self.n_heads = H
        self.q = Linear(C, H * hs, False, **init((C * hs) ** -0.5))
        self.k = Linear(C, H * hs, False, **init(C**-0.5))
        self.v = Linear(C, H * hs, False, **init(C**-0.5))
        self.o = Linear(H * hs, C, False, **init((H * hs) ** -0.5))
        if has_relative_attention_bias:
            self.relative_attention_bias = Embedding(
                c.relative_attention_num_buckets, H, **init(C**-0.5)
            )
        self.dropout = Dropout(c.dropout_rate)  # on the attention weights
        self.max_distance = c.relative_attention_max_distance
        self._cache: _AttnCache | None = None
        self._bias_cache = None

    def position_bias(self, Tq: int, Tk: int, bidirectional: bool):
        table = self.relative_attention_bias.weight.data
        bias, self._bias_cache = relative_position_bias_forward(
            table, Tq, Tk, bidirectional, self.max_distance
        )
        return bias

    def position_bias_backward(self, dbias) -> None:
        grad = relative_position_bias_backward(dbias, self._bias_cache)
        self.relative_attention_bias.weight.grad += grad

    def forward(self, x, memory=None, position_bias=None, causal=False, key_padding_mask=None):
        source = x if memory is None else memory
        H = self.n_heads
        q = split_heads(self.q(x), H)  # (B, H, Tq, hs) views
        k = split_heads(self.k(source), H)  # (B, H, Tk, hs)
        v = split_heads(self.v(source), H)
        d = self.dropout
        y, c_att = t5_attention_forward(
            q, k, v, position_bias, causal, key_padding_mask, d.effective_p(), d.seed, d.stream
        )
        self._cache = _AttnCache(c_att, memory is not None)
        return self.o(merge_heads(y))  # (B, Tq, C)

    def backward(self, dout):
        """(dx, dmemory or None, dposition_bias (H, Tq, Tk))."""
        if self._cache is None:
            raise RuntimeError("T5Attention.backward called before forward")
        H = self.n_heads
        dy = split_heads(self.o.backward(dout), H)
        dq, dk, dv, dbias = t5_attention_backward(dy, self._cache.attention)
        dx = self.q.backward(merge_heads(dq))
        dsource = self.k.backward(merge_heads(dk)) + self.v.backward(merge_heads(dv))
        if self._cache.cross:
            return dx, dsource, dbias
        return dx + dsource, None, dbias


class T5LayerSelfAttention(Module):
    def __init__(self, c: T5Config, has_relative_attention_bias: bool, init: _Init):
        super().__init__()
        self.SelfAttention = T5Attention(c, has_relative_attention_bias, init)
        self.layer_norm = T5LayerNorm(c.d_model, c.layer_norm_epsilon, init.dtype)
        self.dropout = Dropout(c.dropout_rate)

    def forward(self, x, position_bias, causal, key_padding_mask):
        a = self.SelfAttention(self.layer_norm(x), None, position_bias, causal, key_padding_mask)
        return x + self.dropout(a)

    def backward(self, dout):
        da, _, dbias = self.SelfAttention.backward(self.dropout.backward(dout))
        return dout + self.layer_norm.backward(da), dbias


class T5LayerCrossAttention(Module):
    def __init__(self, c: T5Config, init: _Init):
        super().__init__()
        self.EncDecAttention = T5Attention(c, False, init)
        self.layer_norm = T5LayerNorm(c.d_model, c.layer_norm_epsilon, init.dtype)
        self.dropout = Dropout(c.dropout_rate)

    def forward(self, y, memory, memory_padding_mask):
        a = self.EncDecAttention(self.layer_norm(y), memory, None, False, memory_padding_mask)
        return y + self.dropout(a)

    def backward(self, dout):
        da, dmemory, _ = self.EncDecAttention.backward(self.dropout.backward(dout))
        return dout + self.layer_norm.backward(da), dmemory


class T5DenseActDense(Module):
    def __init__(self, c: T5Config, init: _Init):
        super().__init__()
        self.wi = Linear(c.d_model, c.d_ff, False, **init(c.d_model**-0.5))
        self.wo = Linear(c.d_ff, c.d_model, False, **init(c.d_ff**-0.5))
        self.dropout = Dropout(c.dropout_rate)
        self.act = Activation("relu")

    def forward(self, x):
        return self.wo(self.dropout(self.act(self.wi(x))))

    def backward(self, dout):
        return self.wi.backward(self.act.backward(self.dropout.backward(self.wo.backward(dout))))


class T5DenseGatedActDense(Module):
    def __init__(self, c: T5Config, init: _Init):
        super().__init__()
        self.wi_0 = Linear(c.d_model, c.d_ff, False, **init(c.d_model**-0.5))
        self.wi_1 = Linear(c.d_model, c.d_ff, False, **init(c.d_model**-0.5))
        self.wo = Linear(c.d_ff, c.d_model, False, **init(c.d_ff**-0.5))
        self.dropout = Dropout(c.dropout_rate)
        self._cache = None

    def forward(self, x):
        h, self._cache = gated_gelu_forward(self.wi_0(x), self.wi_1(x))
        return self.wo(self.dropout(h))

    def backward(self, dout):
        dgate, dup = gated_gelu_backward(self.dropout.backward(self.wo.backward(dout)), self._cache)
        return self.wi_0.backward(dgate) + self.wi_1.backward(dup)


class T5LayerFF(Module):
    def __init__(self, c: T5Config, init: _Init):
        super().__init__()
        gated = c.feed_forward_proj == "gated-gelu"
        self.DenseReluDense = (T5DenseGatedActDense if gated else T5DenseActDense)(c, init)
        self.layer_norm = T5LayerNorm(c.d_model, c.layer_norm_epsilon, init.dtype)
        self.dropout = Dropout(c.dropout_rate)

    def forward(self, x):
        return x + self.dropout(self.DenseReluDense(self.layer_norm(x)))

    def backward(self, dout):
        return dout + self.layer_norm.backward(
            self.DenseReluDense.backward(self.dropout.backward(dout))
        )


class T5Block(Module):
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
        d = self.layer[-1].backward(dout)
        dmemory = None
        if self.is_decoder:
            d, dmemory = self.layer[1].backward(d)
        d, dbias = self.layer[0].backward(d)
        return d, dbias, dmemory


class T5Stack(Module):
    def __init__(self, c: T5Config, is_decoder: bool, init: _Init):
        super().__init__()
        n = c.num_decoder_layers if is_decoder else c.num_layers
        self.is_decoder = is_decoder
        self.embed_dropout = Dropout(c.dropout_rate)
        self.block = ModuleList([T5Block(c, is_decoder, i == 0, init) for i in range(n)])
        self.final_layer_norm = T5LayerNorm(c.d_model, c.layer_norm_epsilon, init.dtype)
        self.dropout = Dropout(c.dropout_rate)

    def _table(self) -> T5Attention:
        return self.block[0].layer[0].SelfAttention

    def forward(self, x, padding_mask, memory=None, memory_padding_mask=None):
        T = x.shape[1]
        bias = self._table().position_bias(T, T, not self.is_decoder)  # (H, T, T), shared
        h = self.embed_dropout(x)
        for block in self.block:
            h = block(h, bias, padding_mask, memory, memory_padding_mask)
        return self.dropout(self.final_layer_norm(h))

    def backward(self, dout):
        d = self.final_layer_norm.backward(self.dropout.backward(dout))
        dbias = dmemory = None
        for block in reversed(list(self.block)):
            d, db, dm = block.backward(d)
            dbias = db if dbias is None else dbias + db
            if dm is not None:
                dmemory = dm if dmemory is None else dmemory + dm
        self._table().position_bias_backward(dbias)
        return self.embed_dropout.backward(d), dmemory


# -- the model -------------------------------------------------------------------------------------
class T5(Module):
    """T5 for conditional generation: `model(src, tgt, targets) -> (logits, loss)`; see
    `reference.T5`. `dtype` "float32" (default) or "float64"; `device` "cpu" or "cuda"."""

    def __init__(self, config: T5Config, dtype="float32", device="cpu"):
        super().__init__()
        if not isinstance(config, T5Config):
            raise TypeError(f"config must be a T5Config, got {type(config).__name__}")
        device = resolve_device(device)
        self.config = c = config
        self.dtype = resolve_dtype(dtype)
        init = _Init(c.seed, c.initializer_factor, self.dtype)
        self.shared = Embedding(c.vocab_size, c.d_model, **init(1.0))
        self.encoder = T5Stack(c, False, init)
        self.decoder = T5Stack(c, True, init)
        if not c.tie_word_embeddings:
            self.lm_head = Linear(c.d_model, c.vocab_size, False, **init(1.0))
        self.dropout_step = 0
        self._caches: dict[str, Any] = {}
        self._loss_cache = None
        self._ran_forward = False
        self._shape: tuple = ()
        self.to(device)

    # -- checkpoints -----------------------------------------------------------------------------
    def config_dict(self) -> dict[str, Any]:
        return self.config.to_dict()

    @classmethod
    def from_config_dict(cls, config: dict[str, Any], dtype="float32", device="cpu") -> T5:
        return cls(T5Config.from_dict(config), dtype=dtype, device=device)

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> None:
        """As `Module.load_state_dict`, after `reference.hf.convert_hf_t5_state_dict`."""
        if isinstance(state, dict):
            state = convert_hf_t5_state_dict(state, self.config.tie_word_embeddings)
        super().load_state_dict(state, strict)

    # -- validation ------------------------------------------------------------------------------
    def _check_src(self, src: Any) -> np.ndarray:
        c = self.config
        return _ids("src", src, c.vocab_size, "vocab_size", c.max_len)

    def _check_tgt(self, tgt: Any, B: int) -> np.ndarray:
        c = self.config
        tgt = _ids("tgt", tgt, c.vocab_size, "vocab_size", c.max_len)
        if len(tgt) != B:
            raise ValueError(f"tgt must have one row per source (B={B}), got {len(tgt)} rows")
        return tgt

    def _check_targets(self, targets: Any, shape: tuple[int, int]) -> np.ndarray:
        a = int_batch(targets)
        V, pad = self.config.vocab_size, self.config.pad_token_id
        if a is None or a.shape != shape or not ((a == IGNORE_INDEX) | ((a >= 0) & (a < V))).all():
            rows = check_seq2seq_targets(targets, shape, V, pad)  # raises, if any
            return np.asarray(rows, dtype=np.int64)
        return np.where(a == pad, IGNORE_INDEX, a)

    def _padding_mask(self, ids: np.ndarray, first_is_real: bool) -> np.ndarray:
        mask = ids == self.config.pad_token_id
        if first_is_real:
            mask[:, 0] = False  # the decoder's start token is the pad id, never padding
        return mask

    # -- forward ---------------------------------------------------------------------------------
    def _head(self, h):
        if not self.config.tie_word_embeddings:
            return self.lm_head(h)
        logits, self._caches["head"] = linear_forward(
            h * self.config.d_model**-0.5, self.shared.weight.data
        )
        return logits

    def _head_backward(self, dlogits):
        if not self.config.tie_word_embeddings:
            return self.lm_head.backward(dlogits)
        dh, dW, _ = linear_backward(dlogits, self._caches["head"])
        self.shared.weight.grad += dW
        return dh * self.config.d_model**-0.5

    def _embed(self, ids: np.ndarray, key: str):
        out, self._caches[key] = embedding_forward(self.shared.weight.data, ids)
        return out

    def _embed_backward(self, dx, key: str) -> None:
        self.shared.weight.grad += embedding_backward(dx, self._caches[key])

    @owns_inputs
    def encode(self, src: Any):
        """The encoder's output, the memory (B, Ts, C), for source ids src (B, Ts)."""
        src = self._check_src(src)
        return self.encoder(self._embed(src, "src"), self._padding_mask(src, False))

    @owns_inputs
    def decode(self, tgt: Any, memory: Any, src: Any):
        """Logits (B, Tt, V) for decoder inputs tgt given memory = encode(src) (copied)."""
        src = self._check_src(src)
        tgt = self._check_tgt(tgt, len(src))
        given = memory
        memory = unless_on_device(
            memory, lambda m: private(as_float_array(m, "memory", self.dtype), m)
        )
        expected = (src.shape[0], src.shape[1], self.config.d_model)
        if memory.shape != expected:
            raise ValueError(f"memory must have shape {expected} = encode(src), got {memory.shape}")
        on_device = to_device(memory, self.device, self.dtype)
        if on_device is given:
            on_device = memory.copy()
        return self._decode(tgt, on_device, src)

    def _decode(self, tgt: np.ndarray, memory, src: np.ndarray):
        memory = unless_on_device(memory, np.ascontiguousarray)
        y = self._embed(tgt, "tgt")
        h = self.decoder(y, self._padding_mask(tgt, True), memory, self._padding_mask(src, False))
        return self._head(h)  # (B, Tt, V)

    @owns_inputs
    def forward(self, src: Any, tgt: Any, targets: Any = None):
        """(logits (B, Tt, V), mean cross-entropy over counted positions or None)."""
        src = self._check_src(src)
        tgt = self._check_tgt(tgt, len(src))
        if targets is not None:
            targets = self._check_targets(targets, tgt.shape)
        if self.training:
            set_dropout_rng(self, self.config.seed, self.dropout_step)
            self.dropout_step += 1
        memory = self.encode(src)
        logits = self._decode(tgt, memory, src)
        self._ran_forward = True
        self._shape = logits.shape
        if targets is None:
            self._loss_cache = None
            return logits, None
        loss, self._loss_cache = cross_entropy_forward(logits, targets, IGNORE_INDEX)
        return logits, loss

    @owns_inputs
    def backward(self, dlogits: Any = None) -> None:
        """Backpropagate the last forward's loss (or `dlogits` (B, Tt, V)) and ACCUMULATE dL/dp
        into every parameter's grad."""
        if not self._ran_forward:
            raise RuntimeError("call forward before backward")
        if dlogits is None:
            if self._loss_cache is None:
                raise RuntimeError("forward was called without targets: pass dlogits to backward")
            d = cross_entropy_backward(1.0, self._loss_cache)
        else:
            dlogits = unless_on_device(
                dlogits, lambda a: np.ascontiguousarray(as_float_array(a, "dlogits", self.dtype))
            )
            if dlogits.shape != self._shape:
                raise ValueError(
                    f"dlogits must have shape {self._shape} like the logits, got {dlogits.shape}"
                )
            d = to_device(dlogits, self.device, self.dtype)
        dh = self._head_backward(d)
        dy, dmemory = self.decoder.backward(dh)
        self._embed_backward(dy, "tgt")
        dx, _ = self.encoder.backward(dmemory)
        self._embed_backward(dx, "src")

    # -- decoding --------------------------------------------------------------------------------
    @owns_inputs
    def greedy_decode(self, src: Any, max_len: int | None = None) -> list[list[int]]:
        """Each source's output by picking the most likely next token until eos or `max_len`
        tokens; see `reference.T5.greedy_decode` (same tokens for the same weights)."""
        src = self._check_src(src)
        c = self.config
        max_len = check_max_len(max_len, c.max_len)
        was_training = self.training
        self.eval()
        try:
            memory = self.encode(src)
            out = np.full((len(src), max_len + 1), c.bos_id, dtype=np.int64)
            live = np.arange(len(src))
            n = 0
            for n in range(1, max_len + 1):
                logits = self._decode(out[live, :n], memory[live], src[live])
                last = to_host(logits[:, -1])
                out[live, n] = np.argmax(last, axis=1)  # first maximum: lowest id
                live = live[out[live, n] != c.eos_id]
                if live.size == 0:
                    break
        finally:
            self.train(was_training)
        return [strip_eos(row[1 : n + 1], c.eos_id) for row in out.tolist()]

    def beam_search(
        self,
        src: Any,
        beam_width: int = 4,
        max_len: int | None = None,
        length_penalty: float = 1.0,
    ) -> list[list[int]]:
        """Each source's best output by beam search; see `reference.T5.beam_search` (the
        reference's search itself, on this model's logits)."""
        src = self._check_src(src)  # errors name vocab_size
        return beam_search(_HostLogits(self), src, beam_width, max_len, length_penalty)

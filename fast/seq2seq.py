"""The 2017 encoder-decoder Transformer on numpy arrays: `reference/seq2seq.py`, made fast.

Same architecture, torch.nn.Transformer parameter names and shapes, dropout sites and step
counter, initialisation streams, decoding rules and checkpoint format as the reference; read that
file for the model itself. How this one is made fast:
- every projection is one BLAS call each way on (B*T, C) rows: self-attention's packed
  `in_proj_weight` (3C, C) projects q, k, v in one product; cross-attention does q from the
  decoder and k, v from the memory as two products on the two halves of the same matrix;
- attention is `fast.attention` (batched BLAS around one fused masked-softmax-dropout kernel,
  Tq != Tk for cross-attention); layer norm, ReLU, dropout and the cross-entropy are the fused
  Numba loops of `fast.layers`;
- ids given as numpy int arrays are validated by a few array reductions; nested lists, and any
  input that fails a check, go through the reference's own checks (one definition of every error);
- `greedy_decode` steps every live row at once on arrays (argmax: the first maximum, i.e. the
  lowest token id, as in `reference.decoding`).
What is not hot is the reference's own code: `TransformerConfig` and its checks and parsing, the
init stream bookkeeping (`XavierInit`; only the Xavier draw is vectorised, same formula), the
feed-forward block (the `FeedForward` mixin), the input checks' error messages
(`reference.checks`), the decoding argument checks and all of beam search
(`reference.decoding.beam_search`: ranking and bookkeeping on the rows of the logits this model
computes).

Dimension legend: B batch, Ts source time, Tt target time, C channels (d_model), H heads,
F feed-forward width (dim_feedforward), V vocabulary.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from reference.checks import IGNORE_INDEX, check_seq2seq_ids, check_seq2seq_targets
from reference.decoding import beam_search, check_max_len, strip_eos
from reference.init import XavierInit
from reference.seq2seq import FeedForward, TransformerConfig

from .attention import (
    AttentionCache,
    concat_qkv,
    multi_head_attention_backward,
    multi_head_attention_forward,
    split_qkv,
)
from .device import concatenate, resolve_device, to_device, to_host, unless_on_device
from .dtypes import resolve_dtype
from .layers import (
    Activation,
    Dropout,
    Embedding,
    LayerNorm,
    Linear,
    cross_entropy_backward,
    cross_entropy_forward,
    set_dropout_rng,
    sinusoidal_position_encoding,
)
from .module import Module, ModuleList, Parameter
from .rng import uniforms
from .validate import as_float_array, int_batch, owns_inputs, private

__all__ = ["TransformerConfig", "Transformer"]


# -- initialisation: the reference's streams, the Xavier draw vectorised -------------------------
class _ArrayInit(XavierInit):
    """The reference's `XavierInit` (the same stream per tensor, in the same order), drawing each
    Xavier-uniform matrix as one array: (2u - 1) * sqrt(6 / (fan_in + fan_out))."""

    def __init__(self, seed: int, dtype: np.dtype):
        super().__init__(seed)
        self.dtype = dtype

    def matrix(self, shape: tuple[int, int]) -> np.ndarray:
        fan_out, fan_in = shape
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        u = uniforms(self.seed, self.next_stream(), fan_out * fan_in)
        return ((2.0 * u - 1.0) * bound).reshape(shape)

    def linear(self, in_features: int, out_features: int) -> Linear:
        layer = Linear(in_features, out_features, dtype=self.dtype)
        layer.weight.data[...] = self.matrix((out_features, in_features))
        return layer


# -- input checks: vectorized for arrays; the reference's own checks otherwise -------------------
def _ids(name: str, ids: Any, vocab_size: int, vocab_name: str, max_len: int) -> np.ndarray:
    """The reference's `check_seq2seq_ids` as array reductions when `ids` is a numpy int array."""
    a = int_batch(ids)
    if a is None or a.shape[1] > max_len or a.min() < 0 or a.max() >= vocab_size:
        rows = check_seq2seq_ids(name, ids, vocab_size, vocab_name, max_len)  # raises, if any
        a = np.asarray(rows, dtype=np.int64)
    return a


# -- the layers, named as in torch.nn -------------------------------------------------------------
class _MHACache(NamedTuple):
    """What `MultiheadAttention.backward` needs from its forward: the inputs of the in-projection
    as rows, x (B*Tq, C) and memory (B*Tk, C) (None for self-attention), for its dW, and the
    `AttentionCache`."""

    x: Any
    memory: Any
    attention: AttentionCache


class MultiheadAttention(Module):
    """torch.nn.MultiheadAttention (batch_first): `in_proj_weight` (3C, C) stacks W_q, W_k, W_v;
    see the reference. Self-attention projects x three ways in one product; cross-attention
    takes q from x and k, v from the memory."""

    def __init__(self, d_model: int, nhead: int, dropout: float, init: _ArrayInit):
        super().__init__()
        self.nhead = nhead
        self.in_proj_weight = Parameter(init.matrix((3 * d_model, d_model)), init.dtype)
        self.in_proj_bias = Parameter(np.zeros(3 * d_model), init.dtype)
        self.out_proj = init.linear(d_model, d_model)
        self.dropout = Dropout(dropout)  # on the attention weights (torch's MHA dropout)
        self._cache: _MHACache | None = None

    def forward(
        self, x: np.ndarray, memory=None, causal: bool = False, key_padding_mask=None
    ) -> np.ndarray:
        """(B, Tq, C) queries from x; keys and values from x (memory None) or memory (B, Tk, C)."""
        B, Tq, C = x.shape
        W, b = self.in_proj_weight.data, self.in_proj_bias.data
        x2 = x.reshape(B * Tq, C)
        if memory is None:
            qkv = x2 @ W.T  # (B*Tq, 3C), one BLAS call
            qkv += b
            q, k, v = split_qkv(qkv.reshape(B, Tq, 3 * C))  # (B, Tq, C) views
            m2 = None
        else:
            Tk = memory.shape[1]
            m2 = memory.reshape(B * Tk, C)
            q = x2 @ W[:C].T  # (B*Tq, C)
            q += b[:C]
            q = q.reshape(B, Tq, C)
            kv = m2 @ W[C:].T  # (B*Tk, 2C)
            kv += b[C:]
            kv = kv.reshape(B, Tk, 2 * C)
            k, v = kv[:, :, :C], kv[:, :, C:]  # (B, Tk, C) views
        d = self.dropout
        y, c_att = multi_head_attention_forward(
            q, k, v, self.nhead, causal, key_padding_mask, d.effective_p(), d.seed, d.stream
        )  # (B, Tq, C)
        self._cache = _MHACache(x2, m2, c_att)
        return self.out_proj(y)  # (B, Tq, C)

    def backward(self, dout: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(dx, dmemory): dmemory is None for self-attention (its k, v came from x)."""
        if self._cache is None:
            raise RuntimeError("MultiheadAttention.backward called before forward")
        x2, m2 = self._cache.x, self._cache.memory
        B, Tq, C = dout.shape
        W, wgrad, bgrad = self.in_proj_weight.data, self.in_proj_weight.grad, self.in_proj_bias.grad
        dq, dk, dv = multi_head_attention_backward(
            self.out_proj.backward(dout), self._cache.attention
        )
        if m2 is None:
            dqkv = concat_qkv(dq, dk, dv).reshape(B * Tq, 3 * C)
            wgrad += dqkv.T @ x2
            bgrad += dqkv.sum(axis=0)
            return (dqkv @ W).reshape(B, Tq, C), None  # x fed q, k and v: one product sums them
        dq2 = dq.reshape(B * Tq, C)
        wgrad[:C] += dq2.T @ x2
        bgrad[:C] += dq2.sum(axis=0)
        Tk = dk.shape[1]
        dkv = concatenate([dk, dv], axis=-1).reshape(B * Tk, 2 * C)
        wgrad[C:] += dkv.T @ m2
        bgrad[C:] += dkv.sum(axis=0)
        return (dq2 @ W[:C]).reshape(B, Tq, C), (dkv @ W[C:]).reshape(B, Tk, C)


class TransformerEncoderLayer(Module, FeedForward):
    """Post-LN encoder layer: x = norm1(x + self_attn(x)); x = norm2(x + ff(x))."""

    def __init__(self, d_model, nhead, dim_feedforward, dropout, eps, init: _ArrayInit):
        super().__init__()
        dt = init.dtype
        # attributes in torch's (and the reference's) order: names, init streams, dropout sites
        self.self_attn = MultiheadAttention(d_model, nhead, dropout, init)
        self.linear1 = init.linear(d_model, dim_feedforward)
        self.dropout = Dropout(dropout)
        self.linear2 = init.linear(dim_feedforward, d_model)
        self.norm1 = LayerNorm(d_model, eps, dtype=dt)
        self.norm2 = LayerNorm(d_model, eps, dtype=dt)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.activation = Activation("relu")

    def forward(self, x: np.ndarray, key_padding_mask=None) -> np.ndarray:
        a = self.dropout1(self.self_attn(x, None, False, key_padding_mask))  # (B, Ts, C)
        h = self.norm1(x + a)
        f = self.dropout2(self._ff_forward(h))
        return self.norm2(h + f)  # (B, Ts, C)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        dz = self.norm2.backward(dout)  # the residual passes dz to h and to the ff branch
        dh = dz + self._ff_backward(self.dropout2.backward(dz))
        dz = self.norm1.backward(dh)
        dx, _ = self.self_attn.backward(self.dropout1.backward(dz))
        return dz + dx


class TransformerDecoderLayer(Module, FeedForward):
    """Post-LN decoder layer: masked self-attention, cross-attention to memory, feed-forward."""

    def __init__(self, d_model, nhead, dim_feedforward, dropout, eps, init: _ArrayInit):
        super().__init__()
        dt = init.dtype
        self.self_attn = MultiheadAttention(d_model, nhead, dropout, init)
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout, init)
        self.linear1 = init.linear(d_model, dim_feedforward)
        self.dropout = Dropout(dropout)
        self.linear2 = init.linear(dim_feedforward, d_model)
        self.norm1 = LayerNorm(d_model, eps, dtype=dt)
        self.norm2 = LayerNorm(d_model, eps, dtype=dt)
        self.norm3 = LayerNorm(d_model, eps, dtype=dt)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.dropout3 = Dropout(dropout)
        self.activation = Activation("relu")

    def forward(self, y, memory, tgt_key_padding_mask=None, memory_key_padding_mask=None):
        """y (B, Tt, C), memory (B, Ts, C) -> (B, Tt, C); position t sees targets 0..t only."""
        a = self.dropout1(self.self_attn(y, None, True, tgt_key_padding_mask))
        h1 = self.norm1(y + a)
        c = self.dropout2(self.multihead_attn(h1, memory, False, memory_key_padding_mask))
        h2 = self.norm2(h1 + c)
        f = self.dropout3(self._ff_forward(h2))
        return self.norm3(h2 + f)  # (B, Tt, C)

    def backward(self, dout: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(dy, dmemory)."""
        dz = self.norm3.backward(dout)
        dh2 = dz + self._ff_backward(self.dropout3.backward(dz))
        dz = self.norm2.backward(dh2)
        dh1, dmemory = self.multihead_attn.backward(self.dropout2.backward(dz))
        dz = self.norm1.backward(dz + dh1)
        dy, _ = self.self_attn.backward(self.dropout1.backward(dz))
        return dz + dy, dmemory


class TransformerEncoder(Module):
    """A stack of encoder layers and a final layer norm (torch's `encoder.norm`)."""

    def __init__(self, layers: list[TransformerEncoderLayer], norm: LayerNorm):
        super().__init__()
        self.layers = ModuleList(layers)
        self.norm = norm

    def forward(self, x: np.ndarray, key_padding_mask=None) -> np.ndarray:
        for layer in self.layers:
            x = layer(x, key_padding_mask)
        return self.norm(x)  # (B, Ts, C): the memory

    def backward(self, dmemory: np.ndarray) -> np.ndarray:
        dx = self.norm.backward(dmemory)
        for layer in reversed(list(self.layers)):
            dx = layer.backward(dx)
        return dx


class TransformerDecoder(Module):
    """A stack of decoder layers and a final layer norm (torch's `decoder.norm`)."""

    def __init__(self, layers: list[TransformerDecoderLayer], norm: LayerNorm):
        super().__init__()
        self.layers = ModuleList(layers)
        self.norm = norm

    def forward(self, y, memory, tgt_key_padding_mask=None, memory_key_padding_mask=None):
        for layer in self.layers:
            y = layer(y, memory, tgt_key_padding_mask, memory_key_padding_mask)
        return self.norm(y)  # (B, Tt, C)

    def backward(self, dout: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(dy, dmemory): every layer read the memory, so its gradient sums over layers."""
        dy = self.norm.backward(dout)
        dmemory = None
        for layer in reversed(list(self.layers)):
            dy, dm = layer.backward(dy)
            dmemory = dm if dmemory is None else dmemory + dm
        return dy, dmemory


class EncoderDecoder(Module):
    """torch.nn.Transformer without embeddings: `encoder` and `decoder`, each with a final norm."""

    def __init__(self, config: TransformerConfig, init: _ArrayInit):
        super().__init__()
        c, dt = config, init.dtype
        sizes = (c.d_model, c.nhead, c.dim_feedforward, c.dropout, c.layer_norm_eps)
        self.encoder = TransformerEncoder(
            [TransformerEncoderLayer(*sizes, init) for _ in range(c.num_encoder_layers)],
            LayerNorm(c.d_model, c.layer_norm_eps, dtype=dt),
        )
        self.decoder = TransformerDecoder(
            [TransformerDecoderLayer(*sizes, init) for _ in range(c.num_decoder_layers)],
            LayerNorm(c.d_model, c.layer_norm_eps, dtype=dt),
        )


# -- the model -------------------------------------------------------------------------------------
class Transformer(Module):
    """The encoder-decoder Transformer: `model(src, tgt, targets) -> (logits, loss)`; see
    `reference.Transformer`. `dtype` is "float32" (default) or "float64".

    src (B, Ts), tgt (B, Tt) and targets (B, Tt) are int arrays (or nested lists), right-padded
    with pad_id; logits come back as a (B, Tt, V) array of the model's dtype.
    """

    def __init__(self, config: TransformerConfig, dtype="float32", device="cpu"):
        super().__init__()
        if not isinstance(config, TransformerConfig):
            raise TypeError(f"config must be a TransformerConfig, got {type(config).__name__}")
        device = resolve_device(device)
        self.config = config
        self.dtype = resolve_dtype(dtype)
        c = config
        init = _ArrayInit(c.seed, self.dtype)
        std = c.d_model**-0.5  # unit variance after the sqrt(C) scale
        self.src_embed = Embedding(
            c.src_vocab_size, c.d_model, std=std, seed=c.seed, stream=init.next_stream(),
            dtype=self.dtype,
        )  # fmt: skip
        self.tgt_embed = Embedding(
            c.tgt_vocab_size, c.d_model, std=std, seed=c.seed, stream=init.next_stream(),
            dtype=self.dtype,
        )  # fmt: skip
        self.src_dropout = Dropout(c.dropout)  # on embeddings + positions, as the paper
        self.tgt_dropout = Dropout(c.dropout)
        self.transformer = EncoderDecoder(c, init)
        self.generator = init.linear(c.d_model, c.tgt_vocab_size)
        self.dropout_step = 0  # training forwards so far: the step of the dropout streams
        self._loss_cache: tuple | None = None
        self._ran_forward = False
        self._shape: tuple = ()
        self.to(device)

    @classmethod
    def from_config_dict(cls, config: dict[str, Any], dtype="float32", device="cpu") -> Transformer:
        return cls(TransformerConfig.from_dict(config), dtype=dtype, device=device)

    def config_dict(self) -> dict[str, Any]:
        return self.config.to_dict()

    # -- validation ------------------------------------------------------------------------------
    def _check_src(self, src: Any) -> np.ndarray:
        c = self.config
        return _ids("src", src, c.src_vocab_size, "src_vocab_size", c.max_len)

    def _check_tgt(self, tgt: Any, B: int) -> np.ndarray:
        c = self.config
        tgt = _ids("tgt", tgt, c.tgt_vocab_size, "tgt_vocab_size", c.max_len)
        if len(tgt) != B:
            raise ValueError(f"tgt must have one row per source (B={B}), got {len(tgt)} rows")
        return tgt

    def _check_targets(self, targets: Any, shape: tuple[int, int]) -> np.ndarray:
        """(B, Tt) targets with pad_id turned into IGNORE_INDEX (the reference's rules)."""
        a = int_batch(targets)
        V = self.config.tgt_vocab_size
        if a is None or a.shape != shape or not ((a == IGNORE_INDEX) | ((a >= 0) & (a < V))).all():
            rows = check_seq2seq_targets(targets, shape, V, self.config.pad_id)  # raises, if any
            return np.asarray(rows, dtype=np.int64)
        return np.where(a == self.config.pad_id, IGNORE_INDEX, a)

    def _padding_mask(self, ids: np.ndarray) -> np.ndarray:
        """(B, T) True where ids hold pad_id: keys no query may attend to (torch's convention)."""
        return ids == self.config.pad_id

    # -- forward ---------------------------------------------------------------------------------
    def _embed(self, embedding: Embedding, dropout: Dropout, ids: np.ndarray) -> np.ndarray:
        """dropout(embedding(ids) * sqrt(C) + PE): (B, T) -> (B, T, C)."""
        T, C = ids.shape[1], self.config.d_model
        x = embedding(ids) * math.sqrt(C)  # (B, T, C)
        pe = sinusoidal_position_encoding(1, T, C, dtype=self.dtype)[0]  # (T, C), broadcast
        x += to_device(pe, self.device)
        return dropout(x)

    def _embed_backward(self, embedding: Embedding, dropout: Dropout, dx: np.ndarray) -> None:
        embedding.backward(dropout.backward(dx) * math.sqrt(self.config.d_model))

    @owns_inputs
    def encode(self, src: Any) -> np.ndarray:
        """The encoder's output, the memory (B, Ts, C), for source ids src (B, Ts)."""
        src = self._check_src(src)
        x = self._embed(self.src_embed, self.src_dropout, src)  # (B, Ts, C)
        return self.transformer.encoder(x, self._padding_mask(src))  # (B, Ts, C)

    @owns_inputs
    def decode(self, tgt: Any, memory: Any, src: Any) -> np.ndarray:
        """Logits (B, Tt, V) for decoder inputs tgt (B, Tt) given memory (B, Ts, C) = encode(src).

        `src` supplies the memory's padding mask. The memory is copied (the backward reads it).
        """
        src = self._check_src(src)
        tgt = self._check_tgt(tgt, len(src))
        given = memory
        memory = unless_on_device(
            memory, lambda m: private(as_float_array(m, "memory", self.dtype), m)
        )
        expected = (src.shape[0], src.shape[1], self.config.d_model)
        if memory.shape != expected:  # checked before any upload
            raise ValueError(f"memory must have shape {expected} = encode(src), got {memory.shape}")
        on_device = to_device(memory, self.device, self.dtype)
        if on_device is given:
            on_device = memory.copy()  # the caller's DeviceArray: copied like a host array
        return self._decode(tgt, on_device, src)

    def _decode(self, tgt: np.ndarray, memory, src: np.ndarray) -> np.ndarray:
        """`decode` on checked ids and a memory of this model's own (not copied again)."""
        memory = unless_on_device(memory, np.ascontiguousarray)
        y = self._embed(self.tgt_embed, self.tgt_dropout, tgt)  # (B, Tt, C)
        h = self.transformer.decoder(
            y, memory, self._padding_mask(tgt), self._padding_mask(src)
        )  # (B, Tt, C)
        return self.generator(h)  # (B, Tt, V)

    @owns_inputs
    def forward(self, src: Any, tgt: Any, targets: Any = None):
        """(logits (B, Tt, V), mean cross-entropy over counted positions or None)."""
        src = self._check_src(src)
        tgt = self._check_tgt(tgt, len(src))
        if targets is not None:
            targets = self._check_targets(targets, tgt.shape)
        if self.training:  # fresh dropout masks each training step, the same in every backend
            set_dropout_rng(self, self.config.seed, self.dropout_step)
            self.dropout_step += 1
        memory = self.encode(src)  # (B, Ts, C)
        logits = self._decode(tgt, memory, src)  # (B, Tt, V)
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
            if dlogits.shape != self._shape:  # checked before any upload
                raise ValueError(
                    f"dlogits must have shape {self._shape} like the logits, got {dlogits.shape}"
                )
            d = to_device(dlogits, self.device, self.dtype)
        dh = self.generator.backward(d)  # (B, Tt, C)
        dy, dmemory = self.transformer.decoder.backward(dh)
        self._embed_backward(self.tgt_embed, self.tgt_dropout, dy)
        dx = self.transformer.encoder.backward(dmemory)  # the memory's gradient enters here
        self._embed_backward(self.src_embed, self.src_dropout, dx)

    # -- decoding --------------------------------------------------------------------------------
    @owns_inputs
    def greedy_decode(self, src: Any, max_len: int | None = None) -> list[list[int]]:
        """Each source's output by picking the most likely next token until eos_id or `max_len`
        tokens; see `reference.Transformer.greedy_decode` (same tokens for the same weights).
        Every live row steps at once: they all hold the same number of tokens."""
        src = self._check_src(src)
        c = self.config
        max_len = check_max_len(max_len, c.max_len)
        was_training = self.training
        self.eval()
        try:
            memory = self.encode(src)  # encode once; every step reuses it
            out = np.full((len(src), max_len + 1), c.bos_id, dtype=np.int64)  # bos, then tokens
            live = np.arange(len(src))  # rows that have not produced eos yet
            n = 0
            for n in range(1, max_len + 1):
                logits = self._decode(out[live, :n], memory[live], src[live])  # (live, n, V)
                last = to_host(logits[:, -1])  # (live, V) back to the host
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
        """Each source's best output by beam search; see `reference.Transformer.beam_search`
        (the reference's search itself, on this model's logits)."""
        return beam_search(_HostLogits(self), src, beam_width, max_len, length_penalty)


class _HostLogits:
    """This model as the reference's beam search sees it: `decode` takes the list of memories the
    search builds (on the GPU, views of one memory, stacked there), and hands the logits back as
    nested lists of Python floats on the host, the reference's tensors, where the search ranks
    them."""

    def __init__(self, model: Transformer):
        self._model = model
        self.config = model.config

    @property
    def training(self) -> bool:
        return self._model.training

    def train(self, mode: bool = True) -> _HostLogits:
        self._model.train(mode)
        return self

    def eval(self) -> _HostLogits:
        return self.train(False)

    def encode(self, src):
        return self._model.encode(src)

    def decode(self, tgt, memories, srcs):
        memories = concatenate([m.reshape((1,) + m.shape) for m in memories])  # (N, Ts, C)
        return to_host(self._model.decode(tgt, memories, srcs)).tolist()

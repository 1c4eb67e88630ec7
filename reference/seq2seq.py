"""The 2017 encoder-decoder Transformer ("Attention Is All You Need"), with explicit backprop.

The encoder reads the whole source at once; the decoder writes the target one token at a time,
looking at what it has written so far (masked self-attention) and at the encoder's output, the
`memory` (cross-attention). The layout is the paper's, as `torch.nn.Transformer` builds it with
`batch_first=True, norm_first=False`:

    x = src_embed(src) * sqrt(C) + PE                 y = tgt_embed(tgt) * sqrt(C) + PE
    encoder layer (post-LN):                          decoder layer (post-LN):
        x = norm1(x + self_attn(x))                       y = norm1(y + self_attn(y), causal)
        x = norm2(x + linear2(relu(linear1(x))))          y = norm2(y + multihead_attn(y, memory))
    memory = encoder.norm(x)                              y = norm3(y + linear2(relu(linear1(y))))
                                                      logits = generator(decoder.norm(y))

Parameter names and shapes are torch's under `transformer.` (`transformer.encoder.layers.0.
self_attn.in_proj_weight` (3C, C) packs the q, k, v projections in that order), plus
`src_embed.weight`, `tgt_embed.weight` and `generator.{weight,bias}`: load the state_dict into a
`torch.nn.Transformer` and it computes the same numbers (the tests check this).

Conventions:
- Vocabularies: source and target have their own sizes and embeddings; `pad_id` means padding
  in both (so it fits both), `bos_id` and `eos_id` are target ids (a source may use eos too).
- Padding: batches are right-padded with `pad_id`; the padding masks are derived from it (no
  query sees a padded source key, in the encoder or through cross-attention, nor a padded target
  key). Targets equal to `pad_id` or -100 count for nothing in the loss.
- Dropout (sites: positions, attention weights, each sub-layer's output, the feed-forward hidden
  layer) draws from the shared Philox generator: each training-mode forward calls
  `set_dropout_rng(model, config.seed, model.dropout_step)` and then increments `dropout_step`.
- Initialisation (the 2017 recipes): every matrix but the embeddings is Xavier/Glorot uniform, as
  `torch.nn.Transformer` resets its parameters; embeddings are N(0, 1/C), so that after the
  sqrt(C) scale they have unit variance like the positions; biases 0, layer norms (1, 0). Tensor k
  draws from Philox stream 2**63 + k, far from dropout's streams (`init.XavierInit`).
- Decoding (`greedy_decode`, `beam_search`, written once in `decoding.py`) runs without dropout,
  encodes once and stops a row at `eos_id`. Ties go to the lowest token id (greedy) and to the
  lowest (beam, token id) (beam); results hold neither `bos_id` nor `eos_id`.

Dimension legend: B batch, Ts source time, Tt target time, C channels (d_model), H heads,
F feed-forward width (dim_feedforward), V vocabulary.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, NamedTuple

from .attention import (
    AttentionCache,
    concat_qkv,
    multi_head_attention_backward,
    multi_head_attention_forward,
    split_qkv,
)
from .checks import IGNORE_INDEX, check_seq2seq_ids, check_seq2seq_targets
from .config_fields import check_transformer_config, require_dict
from .decoding import beam_search, greedy_decode
from .init import XavierInit
from .layers import (
    Activation,
    Dropout,
    Embedding,
    LayerNorm,
    LinearCache,
    cross_entropy_backward,
    cross_entropy_forward,
    linear_backward,
    linear_forward,
    residual_forward,
    set_dropout_rng,
    sinusoidal_position_encoding,
)
from .module import Module, ModuleList, Parameter
from .nested import add, shape_of

Tensor = Any  # a nested list of floats


# -- configuration ---------------------------------------------------------------------------------
@dataclass
class TransformerConfig:
    """Sizes of the encoder-decoder; the defaults are the paper's base model (and torch's)."""

    src_vocab_size: int
    tgt_vocab_size: int
    d_model: int = 512
    nhead: int = 8
    num_encoder_layers: int = 6
    num_decoder_layers: int = 6
    dim_feedforward: int = 2048
    dropout: float = 0.1
    max_len: int = 256  # the longest source or target sequence (decoder input) accepted
    layer_norm_eps: float = 1e-5
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    seed: int = 0  # initialisation and dropout

    def __post_init__(self) -> None:
        check_transformer_config(self)  # each field's type and range (config_fields.py)

    def to_dict(self) -> dict[str, Any]:
        """The `config.json` that `Transformer.save_pretrained` writes (read by `from_dict`)."""
        return {"model_type": "transformer", **asdict(self)}

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> TransformerConfig:
        """Read the `config.json` that `Transformer.save_pretrained` writes: `model_type`
        "transformer" and this class's fields (each checked for type and range on construction).
        Unknown or missing fields raise a ValueError naming them."""
        require_dict(config)
        model_type = config.get("model_type")
        if model_type != "transformer":
            raise ValueError(
                f"config is not an encoder-decoder Transformer's (model_type={model_type!r}, "
                "expected 'transformer')"
            )
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(config) - {"model_type", *names})
        if unknown:
            raise ValueError(f"config has fields {unknown} that TransformerConfig does not know")
        missing = [name for name in ("src_vocab_size", "tgt_vocab_size") if name not in config]
        if missing:
            raise ValueError(f"config lacks the fields {missing}")
        return cls(**{name: config[name] for name in names if name in config})


# -- helpers ---------------------------------------------------------------------------------------
def _accumulate(grad: list, delta: list, offset: int = 0) -> None:
    """grad[offset + i] += delta[i] along the first axis (rows of a matrix, or numbers)."""
    for i, d in enumerate(delta):
        if isinstance(d, list):
            row = grad[offset + i]
            for j, v in enumerate(d):
                row[j] += v
        else:
            grad[offset + i] += d


# -- the layers, named as in torch.nn ------------------------------------------------------------
class _MHACache(NamedTuple):
    """What `MultiheadAttention.backward` needs from its forward: the in-projection's
    `LinearCache`, one fused `qkv` for self-attention, else `q` (from x) and `kv` (from memory),
    and the `AttentionCache`."""

    qkv: LinearCache | None
    q: LinearCache | None
    kv: LinearCache | None
    attention: AttentionCache


class MultiheadAttention(Module):
    """torch.nn.MultiheadAttention (batch_first): a packed q, k, v projection, H heads, out_proj.

    `in_proj_weight` (3C, C) stacks W_q, W_k, W_v. Self-attention projects x three ways at once;
    cross-attention takes q from the decoder and k, v from the memory.
    """

    def __init__(self, d_model: int, nhead: int, dropout: float, init: XavierInit):
        super().__init__()
        self.nhead = nhead
        self.in_proj_weight = Parameter(init.matrix((3 * d_model, d_model)))
        self.in_proj_bias = Parameter([0.0] * (3 * d_model))
        self.out_proj = init.linear(d_model, d_model)
        self.dropout = Dropout(dropout)  # on the attention weights (torch's MHA dropout)
        self._cache: _MHACache | None = None

    def forward(
        self, x: Tensor, memory: Tensor | None = None, causal: bool = False, key_padding_mask=None
    ) -> Tensor:
        """(B, Tq, C) queries from x; keys and values from x (memory None) or memory (B, Tk, C)."""
        C = len(self.in_proj_bias.data) // 3
        W, b = self.in_proj_weight.data, self.in_proj_bias.data
        if memory is None:
            qkv, c_qkv = linear_forward(x, W, b)  # (B, T, 3C)
            q, k, v = split_qkv(qkv)  # 3 x (B, T, C)
            c_q = c_kv = None
        else:
            q, c_q = linear_forward(x, W[:C], b[:C])  # (B, Tq, C)
            kv, c_kv = linear_forward(memory, W[C:], b[C:])  # (B, Tk, 2C)
            k = [[row[:C] for row in seq] for seq in kv]  # (B, Tk, C)
            v = [[row[C:] for row in seq] for seq in kv]  # (B, Tk, C)
            c_qkv = None
        d = self.dropout
        y, c_att = multi_head_attention_forward(
            q, k, v, self.nhead, causal, key_padding_mask, d.effective_p(), d.seed, d.stream
        )  # (B, Tq, C)
        self._cache = _MHACache(c_qkv, c_q, c_kv, c_att)
        return self.out_proj(y)  # (B, Tq, C)

    def backward(self, dout: Tensor) -> tuple[Tensor, Tensor | None]:
        """(dx, dmemory): dmemory is None for self-attention (its k, v came from x)."""
        if self._cache is None:
            raise RuntimeError("MultiheadAttention.backward called before forward")
        cache = self._cache
        C = len(self.in_proj_bias.data) // 3
        dq, dk, dv = multi_head_attention_backward(self.out_proj.backward(dout), cache.attention)
        wgrad, bgrad = self.in_proj_weight.grad, self.in_proj_bias.grad
        if cache.qkv is not None:
            dx, dW, db = linear_backward(concat_qkv(dq, dk, dv), cache.qkv)
            _accumulate(wgrad, dW)
            _accumulate(bgrad, db)
            return dx, None
        dx, dWq, dbq = linear_backward(dq, cache.q)
        dkv = [[kr + vr for kr, vr in zip(sk, sv)] for sk, sv in zip(dk, dv)]  # (B, Tk, 2C)
        dmemory, dWkv, dbkv = linear_backward(dkv, cache.kv)
        _accumulate(wgrad, dWq)
        _accumulate(bgrad, dbq)
        _accumulate(wgrad, dWkv, offset=C)
        _accumulate(bgrad, dbkv, offset=C)
        return dx, dmemory


class FeedForward:
    """The position-wise feed-forward block linear2(dropout(relu(linear1(x)))), as a mixin of
    the layers below (torch keeps linear1 / linear2 directly on each layer)."""

    def _ff_forward(self, x: Tensor) -> Tensor:
        return self.linear2(self.dropout(self.activation(self.linear1(x))))  # (B, T, C)

    def _ff_backward(self, dout: Tensor) -> Tensor:
        d = self.activation.backward(self.dropout.backward(self.linear2.backward(dout)))
        return self.linear1.backward(d)


class TransformerEncoderLayer(Module, FeedForward):
    """Post-LN encoder layer: x = norm1(x + self_attn(x)); x = norm2(x + ff(x))."""

    def __init__(self, d_model, nhead, dim_feedforward, dropout, eps, init: XavierInit):
        super().__init__()
        # attributes in torch's order, so names and module order match nn.TransformerEncoderLayer
        self.self_attn = MultiheadAttention(d_model, nhead, dropout, init)
        self.linear1 = init.linear(d_model, dim_feedforward)
        self.dropout = Dropout(dropout)
        self.linear2 = init.linear(dim_feedforward, d_model)
        self.norm1 = LayerNorm(d_model, eps)
        self.norm2 = LayerNorm(d_model, eps)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.activation = Activation("relu")

    def forward(self, x: Tensor, key_padding_mask=None) -> Tensor:
        a = self.dropout1(self.self_attn(x, None, False, key_padding_mask))  # (B, Ts, C)
        h = self.norm1(residual_forward(x, a)[0])  # (B, Ts, C)
        f = self.dropout2(self._ff_forward(h))  # (B, Ts, C)
        return self.norm2(residual_forward(h, f)[0])  # (B, Ts, C)

    def backward(self, dout: Tensor) -> Tensor:
        dz = self.norm2.backward(dout)  # the residual passes dz to h and to the ff branch
        dh = add(dz, self._ff_backward(self.dropout2.backward(dz)))
        dz = self.norm1.backward(dh)
        dx, _ = self.self_attn.backward(self.dropout1.backward(dz))
        return add(dz, dx)


class TransformerDecoderLayer(Module, FeedForward):
    """Post-LN decoder layer: masked self-attention, cross-attention to memory, feed-forward."""

    def __init__(self, d_model, nhead, dim_feedforward, dropout, eps, init: XavierInit):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout, init)
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout, init)
        self.linear1 = init.linear(d_model, dim_feedforward)
        self.dropout = Dropout(dropout)
        self.linear2 = init.linear(dim_feedforward, d_model)
        self.norm1 = LayerNorm(d_model, eps)
        self.norm2 = LayerNorm(d_model, eps)
        self.norm3 = LayerNorm(d_model, eps)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.dropout3 = Dropout(dropout)
        self.activation = Activation("relu")

    def forward(self, y, memory, tgt_key_padding_mask=None, memory_key_padding_mask=None):
        """y (B, Tt, C), memory (B, Ts, C) -> (B, Tt, C); position t sees targets 0..t only."""
        a = self.dropout1(self.self_attn(y, None, True, tgt_key_padding_mask))  # (B, Tt, C)
        h1 = self.norm1(residual_forward(y, a)[0])
        c = self.dropout2(self.multihead_attn(h1, memory, False, memory_key_padding_mask))
        h2 = self.norm2(residual_forward(h1, c)[0])
        f = self.dropout3(self._ff_forward(h2))
        return self.norm3(residual_forward(h2, f)[0])  # (B, Tt, C)

    def backward(self, dout: Tensor) -> tuple[Tensor, Tensor]:
        """(dy, dmemory)."""
        dz = self.norm3.backward(dout)
        dh2 = add(dz, self._ff_backward(self.dropout3.backward(dz)))
        dz = self.norm2.backward(dh2)
        dh1, dmemory = self.multihead_attn.backward(self.dropout2.backward(dz))
        dz = self.norm1.backward(add(dz, dh1))
        dy, _ = self.self_attn.backward(self.dropout1.backward(dz))
        return add(dz, dy), dmemory


class TransformerEncoder(Module):
    """A stack of encoder layers and a final layer norm (torch's `encoder.norm`)."""

    def __init__(self, layers: list[TransformerEncoderLayer], norm: LayerNorm):
        super().__init__()
        self.layers = ModuleList(layers)
        self.norm = norm

    def forward(self, x: Tensor, key_padding_mask=None) -> Tensor:
        for layer in self.layers:
            x = layer(x, key_padding_mask)
        return self.norm(x)  # (B, Ts, C): the memory

    def backward(self, dmemory: Tensor) -> Tensor:
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

    def backward(self, dout: Tensor) -> tuple[Tensor, Tensor]:
        """(dy, dmemory): every layer read the memory, so its gradient sums over layers."""
        dy = self.norm.backward(dout)
        dmemory = None
        for layer in reversed(list(self.layers)):
            dy, dm = layer.backward(dy)
            dmemory = dm if dmemory is None else add(dmemory, dm)
        return dy, dmemory


class EncoderDecoder(Module):
    """torch.nn.Transformer without embeddings: `encoder` and `decoder`, each with a final norm."""

    def __init__(self, config: TransformerConfig, init: XavierInit):
        super().__init__()
        c = config
        sizes = (c.d_model, c.nhead, c.dim_feedforward, c.dropout, c.layer_norm_eps)
        self.encoder = TransformerEncoder(
            [TransformerEncoderLayer(*sizes, init) for _ in range(c.num_encoder_layers)],
            LayerNorm(c.d_model, c.layer_norm_eps),
        )
        self.decoder = TransformerDecoder(
            [TransformerDecoderLayer(*sizes, init) for _ in range(c.num_decoder_layers)],
            LayerNorm(c.d_model, c.layer_norm_eps),
        )


# -- the model -------------------------------------------------------------------------------------
class Transformer(Module):
    """The encoder-decoder Transformer: `model(src, tgt, targets) -> (logits, loss)`.

    src (B, Ts) source ids and tgt (B, Tt) decoder inputs (bos_id, then the target shifted right),
    both right-padded with pad_id; targets (B, Tt) the tokens to predict at each position (the
    target, then eos_id), pad_id or -100 where nothing is to be predicted. Teacher forcing: the
    decoder sees the true previous tokens, so one forward scores every position at once.

        >>> cfg = TransformerConfig(7, 7, d_model=4, nhead=2, num_encoder_layers=1,
        ...                         num_decoder_layers=1, dim_feedforward=6, max_len=8)
        >>> logits, loss = Transformer(cfg)([[3, 4, 0]], [[1, 3, 4]], [[3, 4, 2]])
        >>> len(logits), len(logits[0]), len(logits[0][0])
        (1, 3, 7)
    """

    def __init__(self, config: TransformerConfig):
        super().__init__()
        if not isinstance(config, TransformerConfig):
            raise TypeError(f"config must be a TransformerConfig, got {type(config).__name__}")
        self.config = config
        c = config
        init = XavierInit(c.seed)
        std = c.d_model**-0.5  # unit variance after the sqrt(C) scale
        self.src_embed = Embedding(
            c.src_vocab_size, c.d_model, std=std, seed=c.seed, stream=init.next_stream()
        )
        self.tgt_embed = Embedding(
            c.tgt_vocab_size, c.d_model, std=std, seed=c.seed, stream=init.next_stream()
        )
        self.src_dropout = Dropout(c.dropout)  # on embeddings + positions, as the paper
        self.tgt_dropout = Dropout(c.dropout)
        self.transformer = EncoderDecoder(c, init)
        self.generator = init.linear(c.d_model, c.tgt_vocab_size)
        self.dropout_step = 0  # training forwards so far: the step of the dropout streams
        self._loss_cache: tuple | None = None
        self._ran_forward = False

    # -- checkpoints -----------------------------------------------------------------------------
    def config_dict(self) -> dict[str, Any]:
        return self.config.to_dict()

    @classmethod
    def from_config_dict(cls, config: dict[str, Any]) -> Transformer:
        return cls(TransformerConfig.from_dict(config))

    # -- validation ------------------------------------------------------------------------------
    def _check_src(self, src: Any) -> list[list[int]]:
        c = self.config
        return check_seq2seq_ids("src", src, c.src_vocab_size, "src_vocab_size", c.max_len)

    def _check_tgt(self, tgt: Any, B: int) -> list[list[int]]:
        c = self.config
        tgt = check_seq2seq_ids("tgt", tgt, c.tgt_vocab_size, "tgt_vocab_size", c.max_len)
        if len(tgt) != B:
            raise ValueError(f"tgt must have one row per source (B={B}), got {len(tgt)} rows")
        return tgt

    def _check_targets(self, targets: Any, shape: tuple[int, int]) -> list[list[int]]:
        c = self.config
        return check_seq2seq_targets(targets, shape, c.tgt_vocab_size, c.pad_id)

    def _padding_mask(self, ids: list[list[int]]) -> list[list[bool]]:
        """(B, T) True where ids hold pad_id: keys no query may attend to (torch's convention)."""
        pad = self.config.pad_id
        return [[i == pad for i in row] for row in ids]

    # -- forward ---------------------------------------------------------------------------------
    def _embed(self, embedding: Embedding, dropout: Dropout, ids: list[list[int]]) -> Tensor:
        """dropout(embedding(ids) * sqrt(C) + PE): (B, T) -> (B, T, C)."""
        T, C = len(ids[0]), self.config.d_model
        scale = math.sqrt(C)  # so the embeddings are not drowned by the unit-size positions
        e = embedding(ids)  # (B, T, C)
        pe = sinusoidal_position_encoding(1, T, C)[0]  # (T, C)
        x = [[[v * scale + p for v, p in zip(row, pr)] for row, pr in zip(seq, pe)] for seq in e]
        return dropout(x)

    def _embed_backward(self, embedding: Embedding, dropout: Dropout, dx: Tensor) -> None:
        scale = math.sqrt(self.config.d_model)
        d = dropout.backward(dx)
        embedding.backward([[[v * scale for v in row] for row in seq] for seq in d])

    def encode(self, src: Any) -> Tensor:
        """The encoder's output, the memory (B, Ts, C), for source ids src (B, Ts)."""
        src = self._check_src(src)
        x = self._embed(self.src_embed, self.src_dropout, src)  # (B, Ts, C)
        return self.transformer.encoder(x, self._padding_mask(src))  # (B, Ts, C)

    def decode(self, tgt: Any, memory: Tensor, src: Any) -> Tensor:
        """Logits (B, Tt, V) for decoder inputs tgt (B, Tt) given memory (B, Ts, C) = encode(src).

        `src` supplies the memory's padding mask.
        """
        src = self._check_src(src)
        tgt = self._check_tgt(tgt, len(src))
        expected = (len(src), len(src[0]), self.config.d_model)
        if shape_of(memory) != expected:
            raise ValueError(
                f"memory must have shape {expected} = encode(src), got {shape_of(memory)}"
            )
        y = self._embed(self.tgt_embed, self.tgt_dropout, tgt)  # (B, Tt, C)
        h = self.transformer.decoder(
            y, memory, self._padding_mask(tgt), self._padding_mask(src)
        )  # (B, Tt, C)
        return self.generator(h)  # (B, Tt, V)

    def forward(self, src: Any, tgt: Any, targets: Any = None):
        """(logits (B, Tt, V), mean cross-entropy over counted positions or None)."""
        src = self._check_src(src)
        tgt = self._check_tgt(tgt, len(src))
        if targets is not None:
            targets = self._check_targets(targets, (len(tgt), len(tgt[0])))
        if self.training:  # fresh dropout masks each training step, the same in every backend
            set_dropout_rng(self, self.config.seed, self.dropout_step)
            self.dropout_step += 1
        memory = self.encode(src)  # (B, Ts, C)
        logits = self.decode(tgt, memory, src)  # (B, Tt, V)
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
        dh = self.generator.backward(dlogits)  # (B, Tt, C)
        dy, dmemory = self.transformer.decoder.backward(dh)
        self._embed_backward(self.tgt_embed, self.tgt_dropout, dy)
        dx = self.transformer.encoder.backward(dmemory)  # the memory's gradient enters here
        self._embed_backward(self.src_embed, self.src_dropout, dx)

    # -- decoding (the searches are in `decoding.py`) ------------------------------------------
    def greedy_decode(self, src: Any, max_len: int | None = None) -> list[list[int]]:
        """Each source's output by picking the most likely next token until eos_id or `max_len`
        tokens (eos included; default config.max_len). Ties go to the lowest token id.
        Returns B lists of ids without bos_id / eos_id."""
        return greedy_decode(self, src, max_len)

    def beam_search(
        self,
        src: Any,
        beam_width: int = 4,
        max_len: int | None = None,
        length_penalty: float = 1.0,
    ) -> list[list[int]]:
        """Each source's best output by beam search, keeping the `beam_width` most likely
        prefixes, ranked by sum log p / length ** length_penalty; see `decoding.beam_search`.
        With beam_width 1 this is `greedy_decode`."""
        return beam_search(self, src, beam_width, max_len, length_penalty)

"""BERT on numpy arrays: the reference's encoder (`reference/bert.py`), made fast.

Same architecture, parameter names, weight tying, dropout sites and step counter, and checkpoint
format as the reference; read that file for the model itself (the masking recipe is
`fast/masking.py`). How this one is made fast:
- every linear layer is one BLAS call each way on (B*T, C) rows; the three attention projections
  run as ONE (B*T, C) x (C, 3C) product (their weights side by side), so x is read once and the
  backward's dx is one product instead of three plus two sums;
- attention is `fast.attention` (batched BLAS around one fused masked-softmax-dropout kernel);
  layer norm, GELU (erf form), tanh, dropout and the cross-entropy are fused Numba loops;
- a batch of numpy arrays is validated by a few array reductions; nested lists, and any batch
  that fails a check, go through the reference's own checks (one definition of every error);
What is not hot is the reference's own code: `BERTConfig` and its Hugging Face mapping, the
initialisation streams (`InitStreams`), the dropout step (the `BertDropoutSteps` mixin), the
input checks' error messages (`reference.checks`), the Hugging Face checkpoint-name mapping and
the classifier's partial loading (`reference.hf`).

Dimension legend: B batch, T time, C channels (n_embd), H heads, V vocabulary, I intermediate size.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import numpy as np

from reference import checks as reference_checks
from reference.bert import (
    BERTConfig,
    BertDropoutSteps,
)
from reference.checks import (
    IGNORE_INDEX,
    check_class_labels,
    check_mlm_labels,
    check_num_labels,
)
from reference.hf import (
    BERT_CLASSIFIER_UNUSED,
    BERT_MLM_UNUSED,
    bert_classifier_config,
    convert_hf_bert_state_dict,
    load_bert_classifier_state,
)
from reference.init import InitStreams

from .attention import (
    AttentionCache,
    concat_qkv,
    multi_head_attention_backward,
    multi_head_attention_forward,
    split_qkv,
)
from .checkpoint import load_safetensors
from .device import (
    ascontiguous,
    concatenate,
    device_of,
    resolve_device,
    to_device,
    unless_on_device,
    zeros,
)
from .dtypes import resolve_dtype
from .layers import (
    Activation,
    Dropout,
    Embedding,
    LayerNorm,
    Linear,
    cross_entropy_backward,
    cross_entropy_forward,
    position_ids,
)
from .losses import softmax_cross_entropy
from .module import Module, ModuleList, Parameter
from .validate import as_float_array, int_batch, owns_inputs

__all__ = [
    "BERTConfig", "BERT", "BERTForSequenceClassification", "check_bert_inputs",
]  # fmt: skip


# -- input checks: vectorized for arrays; the reference's own checks otherwise ---------------------
# Arrays are checked by a few reductions. Nested lists are Python objects already, so they take the
# reference's checks (exact: a bool among ints is refused, as there); and whenever a vectorized
# check fails, the reference's check runs to raise its error. One definition of every message.
def _in_range(a: np.ndarray, high: int) -> bool:
    return bool(a.min() >= 0 and a.max() < high)


def _padding_mask(attention_mask: Any, shape: tuple[int, int]) -> np.ndarray | None:
    """Hugging Face's attention_mask (1 = real token) as attention's key_padding_mask (True =
    padding), if it is a (B, T) numpy array of 0/1; else None."""
    m = attention_mask
    if not isinstance(m, np.ndarray) or m.shape != shape or m.dtype.kind not in "biuf":
        return None
    if m.dtype.kind != "b" and not ((m == 0) | (m == 1)).all():  # NaN fails too
        return None
    return m == 0


def check_bert_inputs(
    config: BERTConfig, idx: Any, token_type_ids: Any = None, attention_mask: Any = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Validate a batch -> (idx, token_type_ids, key_padding_mask or None), each (B, T) arrays
    (int64, int64, bool): `reference.check_bert_inputs` (the mask is inverted: True = a padded
    key), as a few array reductions when the inputs are numpy arrays."""
    ids = int_batch(idx)
    ok = ids is not None and ids.shape[1] <= config.block_size
    ok = ok and _in_range(ids, config.vocab_size)
    if ok:
        B, T = ids.shape
        types = np.zeros((B, T), np.int64) if token_type_ids is None else int_batch(token_type_ids)
        ok = types is not None and types.shape == (B, T)
        ok = ok and _in_range(types, config.type_vocab_size)
    if ok and attention_mask is not None:
        padding = _padding_mask(attention_mask, (B, T))
        ok = padding is not None
    if not ok:  # lists, or a failed check: the reference's (it raises the error, if any)
        rows, types, padding = reference_checks.check_bert_inputs(
            config, idx, token_type_ids, attention_mask
        )
        ids, types = np.asarray(rows, np.int64), np.asarray(types, np.int64)
        return ids, types, None if padding is None else np.asarray(padding, bool)
    return ids, types, None if attention_mask is None else padding


def _check_mlm_labels(labels: Any, B: int, T: int, V: int) -> np.ndarray:
    """(B, T) ids in [0, V) or -100, as the reference's BERT.forward checks them."""
    a = int_batch(labels)
    if a is None or a.shape != (B, T) or not ((a == IGNORE_INDEX) | ((a >= 0) & (a < V))).all():
        a = np.asarray(check_mlm_labels(labels, B, T, V), np.int64)  # the reference's checks
    return a


def _check_class_labels(labels: Any, B: int, num_labels: int) -> np.ndarray:
    """(B,) class ids in [0, num_labels), as the reference's BERTForSequenceClassification.forward
    checks them."""
    a = labels
    if isinstance(a, np.ndarray) and a.shape == (B,) and a.dtype.kind in "iu":
        if _in_range(a, num_labels):
            return a.astype(np.int64)
    return np.asarray(check_class_labels(labels, B, num_labels), np.int64)


# -- building blocks, named as Hugging Face's modeling_bert ----------------------------------------
class BertEmbeddings(Module):
    """word + token type + position embeddings, then LayerNorm and dropout: (B, T) -> (B, T, C)."""

    def __init__(self, config: BERTConfig, init: InitStreams, dtype):
        super().__init__()
        C = config.n_embd
        self.word_embeddings = Embedding(config.vocab_size, C, **init(), dtype=dtype)
        self.position_embeddings = Embedding(config.block_size, C, **init(), dtype=dtype)
        self.token_type_embeddings = Embedding(config.type_vocab_size, C, **init(), dtype=dtype)
        self.LayerNorm = LayerNorm(C, config.layer_norm_eps, dtype=dtype)
        self.dropout = Dropout(config.dropout)

    def forward(self, idx: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
        B, T = idx.shape
        x = self.word_embeddings(idx) + self.token_type_embeddings(token_type_ids)
        x += self.position_embeddings(position_ids(B, T))  # (B, T, C), HF's sum order
        return self.dropout(self.LayerNorm(x))

    def backward(self, dout: np.ndarray) -> None:
        dx = self.LayerNorm.backward(self.dropout.backward(dout))  # (B, T, C)
        for table in (self.word_embeddings, self.token_type_embeddings, self.position_embeddings):
            table.backward(dx)  # a sum passes its gradient to every term


class _SelfAttentionCache(NamedTuple):
    """What `BertSelfAttention.backward` needs from its forward: the input as rows x (B*T, C) and
    the fused projection weight (3C, C), for dW = dqkv^T x and dx = dqkv W, and the
    `AttentionCache`."""

    x: Any
    weight: Any
    attention: AttentionCache


class BertSelfAttention(Module):
    """Bidirectional multi-head self-attention. `query`, `key` and `value` hold the parameters
    (HF's names); forward multiplies by all three at once, (B*T, C) x (C, 3C)."""

    def __init__(self, config: BERTConfig, init: InitStreams, dtype):
        super().__init__()
        C = config.n_embd
        self.n_head = config.n_head
        self.query = Linear(C, C, **init(), dtype=dtype)
        self.key = Linear(C, C, **init(), dtype=dtype)
        self.value = Linear(C, C, **init(), dtype=dtype)
        self.dropout = Dropout(config.attn_dropout)  # the attention-probabilities site
        self._cache: _SelfAttentionCache | None = None

    def _projections(self) -> tuple[Linear, Linear, Linear]:
        return self.query, self.key, self.value

    def forward(self, x: np.ndarray, key_padding_mask: np.ndarray | None) -> np.ndarray:
        B, T, C = x.shape
        x2 = x.reshape(B * T, C)
        w = concatenate([p.weight.data for p in self._projections()])  # (3C, C)
        qkv = x2 @ w.T  # (B*T, 3C), one BLAS call
        qkv += concatenate([p.bias.data for p in self._projections()])
        q, k, v = split_qkv(qkv.reshape(B, T, 3 * C))  # (B, T, C) views
        d = self.dropout
        out, attn_cache = multi_head_attention_forward(
            q, k, v, self.n_head, False, key_padding_mask, d.effective_p(), d.seed, d.stream
        )  # no causal mask: every token sees the whole sequence
        self._cache = _SelfAttentionCache(x2, w, attn_cache)
        return out  # (B, T, C)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self._cache is None:
            raise RuntimeError("BertSelfAttention.backward called before forward")
        x2 = self._cache.x
        C = x2.shape[1]
        dq, dk, dv = multi_head_attention_backward(dout, self._cache.attention)  # (B, T, C) each
        dqkv = concat_qkv(dq, dk, dv).reshape(-1, 3 * C)  # (B*T, 3C)
        dw = dqkv.T @ x2  # (3C, C)
        db = dqkv.sum(axis=0)  # (3C,)
        for i, p in enumerate(self._projections()):
            p.weight.grad += dw[i * C : (i + 1) * C]
            p.bias.grad += db[i * C : (i + 1) * C]
        # x fed all three: the sum of their gradients
        return (dqkv @ self._cache.weight).reshape(dout.shape)


class BertResidualOutput(Module):
    """dense, dropout, LayerNorm(branch + residual): the post-LN sublayer end (HF BertOutput)."""

    def __init__(self, c_in: int, config: BERTConfig, init: InitStreams, dtype):
        super().__init__()
        self.dense = Linear(c_in, config.n_embd, **init(), dtype=dtype)
        self.LayerNorm = LayerNorm(config.n_embd, config.layer_norm_eps, dtype=dtype)
        self.dropout = Dropout(config.dropout)

    def forward(self, h: np.ndarray, residual: np.ndarray) -> np.ndarray:
        branch = self.dropout(self.dense(h))  # (B, T, C), a fresh array
        branch += residual
        return self.LayerNorm(branch)

    def backward(self, dout: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(dh, dresidual)."""
        dsum = self.LayerNorm.backward(dout)  # (B, T, C), the gradient of branch + residual
        return self.dense.backward(self.dropout.backward(dsum)), dsum


class BertAttention(Module):
    """Self-attention and its residual output: HF's `attention.self` and `attention.output`."""

    def __init__(self, config: BERTConfig, init: InitStreams, dtype):
        super().__init__()
        self.self = BertSelfAttention(config, init, dtype)
        self.output = BertResidualOutput(config.n_embd, config, init, dtype)

    def forward(self, x: np.ndarray, key_padding_mask: np.ndarray | None) -> np.ndarray:
        return self.output(self.self(x, key_padding_mask), x)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        dctx, dx = self.output.backward(dout)
        return dx + self.self.backward(dctx)


class BertIntermediate(Module):
    """The feed-forward network's expansion: gelu_erf(dense(x)), (B, T, C) -> (B, T, I)."""

    def __init__(self, config: BERTConfig, init: InitStreams, dtype):
        super().__init__()
        self.dense = Linear(config.n_embd, config.intermediate_size, **init(), dtype=dtype)
        self.activation = Activation("gelu_erf")

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.activation(self.dense(x))

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return self.dense.backward(self.activation.backward(dout))


class BertLayer(Module):
    """One encoder block: attention, then the feed-forward network, each with a post-LN residual."""

    def __init__(self, config: BERTConfig, init: InitStreams, dtype):
        super().__init__()
        self.attention = BertAttention(config, init, dtype)
        self.intermediate = BertIntermediate(config, init, dtype)
        self.output = BertResidualOutput(config.intermediate_size, config, init, dtype)

    def forward(self, x: np.ndarray, key_padding_mask: np.ndarray | None) -> np.ndarray:
        a = self.attention(x, key_padding_mask)  # (B, T, C)
        return self.output(self.intermediate(a), a)  # (B, T, C)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        dh, da = self.output.backward(dout)
        return self.attention.backward(da + self.intermediate.backward(dh))


class BertEncoder(Module):
    """n_layer BertLayers in a row (`encoder.layer.{i}`)."""

    def __init__(self, config: BERTConfig, init: InitStreams, dtype):
        super().__init__()
        self.layer = ModuleList([BertLayer(config, init, dtype) for _ in range(config.n_layer)])

    def forward(self, x: np.ndarray, key_padding_mask: np.ndarray | None) -> np.ndarray:
        for block in self.layer:
            x = block(x, key_padding_mask)
        return x

    def backward(self, dout: np.ndarray) -> np.ndarray:
        for block in reversed(list(self.layer)):
            dout = block.backward(dout)
        return dout


class BertPooler(Module):
    """tanh(dense(x[:, 0])): the [CLS] position's vector, (B, T, C) -> (B, C)."""

    def __init__(self, config: BERTConfig, init: InitStreams, dtype):
        super().__init__()
        self.dense = Linear(config.n_embd, config.n_embd, **init(), dtype=dtype)
        self.activation = Activation("tanh")
        self._shape: tuple = ()

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._shape = x.shape
        return self.activation(self.dense(x[:, 0]))  # (B, C)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        dfirst = self.dense.backward(self.activation.backward(dout))  # (B, C)
        dx = zeros(self._shape, dfirst.dtype, device_of(dfirst))  # only position 0 was read
        dx[:, 0] = dfirst
        return dx


class BertModel(Module):
    """Embeddings and encoder (and the pooler when asked): HF's `bert.` prefix."""

    def __init__(
        self, config: BERTConfig, init: InitStreams, dtype, add_pooling_layer: bool = False
    ):
        super().__init__()
        self.embeddings = BertEmbeddings(config, init, dtype)
        self.encoder = BertEncoder(config, init, dtype)
        self.pooler = BertPooler(config, init, dtype) if add_pooling_layer else None

    def forward(self, idx, token_type_ids, key_padding_mask) -> np.ndarray:
        return self.encoder(self.embeddings(idx, token_type_ids), key_padding_mask)  # (B, T, C)

    def backward(self, dout: np.ndarray) -> None:
        self.embeddings.backward(self.encoder.backward(dout))


class TiedLinear(Linear):
    """A Linear whose weight and bias are Parameters owned elsewhere (weight tying; see the
    reference): its backward adds into the word embedding's own `.grad`."""

    def __init__(self, weight: Parameter, bias: Parameter | None):
        Module.__init__(self)
        self.weight = weight
        self.bias = bias


class BertPredictionHeadTransform(Module):
    """LayerNorm(gelu_erf(dense(x))): (B, T, C) -> (B, T, C)."""

    def __init__(self, config: BERTConfig, init: InitStreams, dtype):
        super().__init__()
        self.dense = Linear(config.n_embd, config.n_embd, **init(), dtype=dtype)
        self.activation = Activation("gelu_erf")
        self.LayerNorm = LayerNorm(config.n_embd, config.layer_norm_eps, dtype=dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.LayerNorm(self.activation(self.dense(x)))

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return self.dense.backward(self.activation.backward(self.LayerNorm.backward(dout)))


class BertLMPredictionHead(Module):
    """transform, then logits = h word_embeddings^T + bias (BLAS): (B, T, C) -> (B, T, V)."""

    def __init__(self, config: BERTConfig, init: InitStreams, word_embeddings: Parameter, dtype):
        super().__init__()
        self.bias = Parameter(np.zeros(config.vocab_size), dtype)  # `cls.predictions.bias`
        self.transform = BertPredictionHeadTransform(config, init, dtype)
        self.decoder = TiedLinear(word_embeddings, self.bias)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.decoder(self.transform(x))

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return self.transform.backward(self.decoder.backward(dout))


class BertOnlyMLMHead(Module):
    """HF's `cls`: holds `predictions`."""

    def __init__(self, config: BERTConfig, init: InitStreams, word_embeddings: Parameter, dtype):
        super().__init__()
        self.predictions = BertLMPredictionHead(config, init, word_embeddings, dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.predictions(x)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return self.predictions.backward(dout)


# -- the models ------------------------------------------------------------------------------------
class _BertBase(BertDropoutSteps, Module):
    """What both heads share: the dropout step counter, checkpoints in Hugging Face's layout."""

    config: BERTConfig
    _hf_unused: tuple[str, ...] = ()  # checkpoint keys this model does not use

    def _check_backward(self, dlogits: Any, shape: tuple) -> np.ndarray | None:
        if self._loss_cache is None and dlogits is None:
            raise RuntimeError(
                "backward needs a forward first: pass labels to forward, or dlogits to backward"
            )
        if dlogits is None:
            return None
        dlogits = unless_on_device(dlogits, lambda a: as_float_array(a, "dlogits", self.dtype))
        if dlogits.shape != shape:  # checked before any upload
            raise ValueError(
                f"dlogits must have shape {shape} like the logits, got {dlogits.shape}"
            )
        d = to_device(dlogits, self.device, self.dtype)
        return ascontiguous(d)

    def _load_hf_state(self, state: dict[str, Any]) -> None:
        self.load_state_dict(state)

    @classmethod
    def from_pretrained(
        cls, directory: str | os.PathLike, dtype="float32", device="cpu", **kwargs: Any
    ) -> _BertBase:
        """Read `config.json` + `model.safetensors` written by us or by Hugging Face (see
        `reference.BERT.from_pretrained`), into a model of `dtype` on `device`, in evaluation
        mode."""
        directory = os.fspath(directory)
        for f in ("config.json", "model.safetensors"):
            if not os.path.isfile(os.path.join(directory, f)):
                raise FileNotFoundError(f"{directory!r} has no {f}")
        config_path = os.path.join(directory, "config.json")
        model = cls._from_config_file(config_path, dtype=dtype, device=device, **kwargs)
        state = load_safetensors(os.path.join(directory, "model.safetensors"))
        model._load_hf_state(convert_hf_bert_state_dict(state, cls._hf_unused))
        return model.eval()


class BERT(_BertBase):
    """BERT with its masked-language-model head, Hugging Face's `BertForMaskedLM`; see
    `reference.BERT`. `dtype` is "float32" (default) or "float64"; `device` "cpu" or "cuda"."""

    _hf_unused = BERT_MLM_UNUSED  # BertForPreTraining's extras

    def __init__(self, config: BERTConfig, dtype="float32", device="cpu"):
        super().__init__()
        if not isinstance(config, BERTConfig):
            raise TypeError(f"config must be a BERTConfig, got {type(config).__name__}")
        device = resolve_device(device)
        self.config = config
        self.dtype = resolve_dtype(dtype)
        init = InitStreams(config.seed, config.initializer_range)
        self.bert = BertModel(config, init, self.dtype, add_pooling_layer=False)
        word = self.bert.embeddings.word_embeddings.weight
        self.cls = BertOnlyMLMHead(config, init, word, self.dtype)
        self.step = 0  # training-mode forwards so far: picks the dropout masks
        self._loss_cache: tuple | None = None
        self._shape: tuple = ()
        self.to(device)

    @owns_inputs
    def forward(
        self,
        idx: Any,
        token_type_ids: Any = None,
        attention_mask: Any = None,
        labels: Any = None,
    ) -> tuple[np.ndarray, float | None]:
        """(logits (B, T, V), mean cross-entropy over labels != -100, or None without labels).

        attention_mask (B, T): 1 = real token, 0 = padding (keys no query may attend to).
        """
        idx, token_type_ids, key_padding_mask = check_bert_inputs(
            self.config, idx, token_type_ids, attention_mask
        )
        B, T = idx.shape
        V = self.config.vocab_size
        if labels is not None:
            labels = _check_mlm_labels(labels, B, T, V)
        self.next_dropout_step()
        x = self.bert(idx, token_type_ids, key_padding_mask)  # (B, T, C)
        logits = self.cls(x)  # (B, T, V)
        self._shape, self._loss_cache, loss = (B, T, V), None, None
        if labels is not None:
            loss, self._loss_cache = cross_entropy_forward(logits, labels, IGNORE_INDEX)
        return logits, loss

    @owns_inputs
    def backward(self, dlogits: Any = None) -> None:
        """Backpropagate dL/dlogits (B, T, V), or the loss's gradient when dlogits is None,
        through every layer, adding into each `p.grad`."""
        d = self._check_backward(dlogits, self._shape)
        if d is None:
            d = cross_entropy_backward(1.0, self._loss_cache)  # (B, T, V)
        self.bert.backward(self.cls.backward(d))

    def config_dict(self) -> dict[str, Any]:
        return self.config.to_hf_dict()

    @classmethod
    def from_config_dict(cls, config: dict[str, Any], dtype="float32", device="cpu") -> BERT:
        return cls(BERTConfig.from_hf_dict(config), dtype=dtype, device=device)


class BERTForSequenceClassification(_BertBase):
    """BERT with a classifier on the pooled [CLS] vector: Hugging Face's
    `BertForSequenceClassification`; see `reference.BERTForSequenceClassification` (which also
    says how a BertForMaskedLM directory starts one). `dtype` as for `BERT`."""

    _hf_unused = BERT_CLASSIFIER_UNUSED  # an MLM head in the checkpoint is not used here

    def __init__(self, config: BERTConfig, num_labels: int = 2, dtype="float32", device="cpu"):
        super().__init__()
        if not isinstance(config, BERTConfig):
            raise TypeError(f"config must be a BERTConfig, got {type(config).__name__}")
        device = resolve_device(device)
        self.config, self.num_labels = config, check_num_labels(num_labels)
        self.dtype = resolve_dtype(dtype)
        init = InitStreams(config.seed, config.initializer_range)
        self.bert = BertModel(config, init, self.dtype, add_pooling_layer=True)
        self.dropout = Dropout(config.dropout)
        self.classifier = Linear(config.n_embd, num_labels, **init(), dtype=self.dtype)
        self.step = 0
        self._loss_cache: np.ndarray | None = None
        self._shape: tuple = ()
        self.to(device)

    @owns_inputs
    def forward(
        self,
        idx: Any,
        token_type_ids: Any = None,
        attention_mask: Any = None,
        labels: Any = None,
    ) -> tuple[np.ndarray, float | None]:
        """(logits (B, num_labels), mean cross-entropy against labels (B,) or None)."""
        idx, token_type_ids, key_padding_mask = check_bert_inputs(
            self.config, idx, token_type_ids, attention_mask
        )
        B = idx.shape[0]
        if labels is not None:
            labels = _check_class_labels(labels, B, self.num_labels)
        self.next_dropout_step()
        x = self.bert(idx, token_type_ids, key_padding_mask)  # (B, T, C)
        logits = self.classifier(self.dropout(self.bert.pooler(x)))  # (B, num_labels)
        self._shape, self._loss_cache, loss = (B, self.num_labels), None, None
        if labels is not None:
            loss, self._loss_cache = softmax_cross_entropy(logits, labels)
        return logits, loss

    @owns_inputs
    def backward(self, dlogits: Any = None) -> None:
        """Backpropagate dL/dlogits (B, num_labels), or the loss's when dlogits is None."""
        d = self._check_backward(dlogits, self._shape)
        if d is None:
            d = self._loss_cache  # softmax_cross_entropy's gradient for dloss = 1
        dpooled = self.dropout.backward(self.classifier.backward(d))  # (B, C)
        self.bert.backward(self.bert.pooler.backward(dpooled))

    def config_dict(self) -> dict[str, Any]:
        return bert_classifier_config(self.config, self.num_labels)

    def _load_hf_state(self, state: dict[str, Any]) -> None:
        load_bert_classifier_state(self, state, stacklevel=3)  # warns at from_pretrained's caller

    @classmethod
    def from_config_dict(
        cls, config: dict[str, Any], num_labels: int | None = None, dtype="float32", device="cpu"
    ) -> BERTForSequenceClassification:
        if num_labels is None:
            num_labels = len(config.get("id2label", {})) or 2
        return cls(BERTConfig.from_hf_dict(config), num_labels, dtype=dtype, device=device)

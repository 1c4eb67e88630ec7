"""BERT: a bidirectional Transformer encoder, pre-trained by filling in masked tokens.

Where GPT reads left to right and predicts the next token, BERT (Devlin et al., 2018) lets every
position see every other one (no causal mask) and learns by the masked-language-model game: hide
some tokens, predict them from both sides. The architecture, exactly as Hugging Face's
`BertForMaskedLM`, so a checkpoint moves between the two:

    x  = LayerNorm(word[idx] + token_type[types] + position[t]); dropout      # (B, T, C)
    each layer (post-LN: the residual sum is normalised, unlike GPT-2's pre-LN):
        a  = LayerNorm(x + dropout(dense(self_attention(x))))                   # (B, T, C)
        x  = LayerNorm(a + dropout(dense_2(gelu_erf(dense_1(a)))))              # (B, T, C)
    MLM head: h = LayerNorm(gelu_erf(dense(x))); logits = h word^T + bias      # (B, T, V)
    pooler (classification only): tanh(dense(x[:, 0])), the [CLS] position     # (B, C)

GELU is the exact erf form, layer norms use eps 1e-12, attention scores are scaled by
1/sqrt(hs), and the MLM decoder reuses the word-embedding table (weight tying: one Parameter).
The Hugging Face config and checkpoint mapping live in `hf.py`, the input checks in `checks.py`
and `config_fields.py`, the initialisation streams in `init.py`, and the masked-LM recipe that
corrupts a training batch (`mask_tokens`) in `masking.py`.

Dimension legend: B batch, T time, C channels (n_embd), H heads, hs head size, V vocabulary,
I intermediate size.

Randomness that backends share (docs/design.md, "Random numbers"), from Philox (`rng.py`):
- dropout: each training-mode forward uses the model's counter `step` (then adds 1) and
  `set_dropout_rng(model, config.seed, step)`, so the k-th Dropout in `model.modules()` order draws
  from stream step * 2**16 + k. Sites: 1 = embeddings (after their LayerNorm); for layer i
  (0-based), 2 + 3i = attention probabilities (flat index over (B, H, T, T)), 3 + 3i = attention
  output dense, 4 + 3i = feed-forward output dense (each before its residual add; flat index over
  (B, T, C)); 2 + 3 * n_layer = the pooled (B, C) vector in `BERTForSequenceClassification`.
- MLM masking: `masking.mask_tokens` (see its docstring); a training loop passes stream
  step * 2**16 + 0 (site 0, reserved for it by `layers.set_dropout_rng`).
- initialisation (not shared; weights move by `state_dict`): the k-th weight tensor drawn uses
  stream 2**63 + k of `config.seed` (`init.InitStreams`), far from every dropout stream.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from .attention import multi_head_attention_backward, multi_head_attention_forward
from .checkpoint import load_safetensors
from .checks import (
    IGNORE_INDEX,
    check_bert_inputs,
    check_class_labels,
    check_mlm_labels,
    check_num_labels,
    is_int,
)
from .config_fields import check_bert_config
from .hf import (
    BERT_CLASSIFIER_UNUSED,
    BERT_MLM_UNUSED,
    bert_classifier_config,
    bert_config_from_hf,
    bert_config_to_hf,
    convert_hf_bert_state_dict,
    load_bert_classifier_state,
)
from .init import InitStreams
from .layers import (
    Activation,
    Dropout,
    Embedding,
    LayerNorm,
    Linear,
    cross_entropy_backward,
    cross_entropy_forward,
    position_ids,
    set_dropout_rng,
)
from .losses import softmax_cross_entropy
from .module import Module, ModuleList, Parameter
from .nested import add, shape_of

Tensor = Any  # a nested list of floats


# -- configuration ---------------------------------------------------------------------------------
@dataclass
class BERTConfig:
    """BERT's hyper-parameters, validated on construction (defaults: bert-base-uncased).

    Hugging Face `BertConfig` names: vocab_size; block_size = max_position_embeddings;
    n_layer = num_hidden_layers; n_head = num_attention_heads; n_embd = hidden_size;
    intermediate_size (None -> 4 * n_embd); type_vocab_size; layer_norm_eps;
    dropout = hidden_dropout_prob; attn_dropout = attention_probs_dropout_prob (None -> dropout);
    pad_token_id; initializer_range (the std of every initial weight). `seed` is ours.
    """

    vocab_size: int = 30522
    block_size: int = 512
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    intermediate_size: int | None = None
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    dropout: float = 0.1
    attn_dropout: float | None = None
    pad_token_id: int | None = 0
    initializer_range: float = 0.02
    seed: int = 0

    def __post_init__(self) -> None:
        if self.intermediate_size is None:
            self.intermediate_size = 4 * self.n_embd if is_int(self.n_embd) else None
        if self.attn_dropout is None:
            self.attn_dropout = self.dropout
        check_bert_config(self)  # each field's type and range (config_fields.py)

    def to_hf_dict(self) -> dict[str, Any]:
        """The Hugging Face `config.json` fields (BertForMaskedLM), plus our `seed`."""
        return bert_config_to_hf(self)

    @classmethod
    def from_hf_dict(cls, d: dict[str, Any]) -> BERTConfig:
        """Read a Hugging Face BERT `config.json`, refusing variants this BERT does not compute
        (see `hf.bert_config_from_hf`)."""
        return cls(**bert_config_from_hf(d))


# -- building blocks, named as Hugging Face's modeling_bert ----------------------------------------
class BertEmbeddings(Module):
    """word + token type + position embeddings, then LayerNorm and dropout: (B, T) -> (B, T, C)."""

    def __init__(self, config: BERTConfig, init: InitStreams):
        super().__init__()
        C = config.n_embd
        self.word_embeddings = Embedding(config.vocab_size, C, **init())
        self.position_embeddings = Embedding(config.block_size, C, **init())
        self.token_type_embeddings = Embedding(config.type_vocab_size, C, **init())
        self.LayerNorm = LayerNorm(C, config.layer_norm_eps)
        self.dropout = Dropout(config.dropout)

    def forward(self, idx: list[list[int]], token_type_ids: list[list[int]]) -> Tensor:
        B, T = len(idx), len(idx[0])
        x = add(self.word_embeddings(idx), self.token_type_embeddings(token_type_ids))
        x = add(x, self.position_embeddings(position_ids(B, T)))  # (B, T, C), HF's sum order
        return self.dropout(self.LayerNorm(x))

    def backward(self, dout: Tensor) -> None:
        dx = self.LayerNorm.backward(self.dropout.backward(dout))  # (B, T, C)
        for table in (self.word_embeddings, self.token_type_embeddings, self.position_embeddings):
            table.backward(dx)  # a sum passes its gradient to every term


class BertSelfAttention(Module):
    """Bidirectional multi-head self-attention: query, key, value projections and the softmax.

    `dropout` is the attention-probabilities site: attention_forward draws its mask.
    """

    def __init__(self, config: BERTConfig, init: InitStreams):
        super().__init__()
        C = config.n_embd
        self.n_head = config.n_head
        self.query = Linear(C, C, **init())
        self.key = Linear(C, C, **init())
        self.value = Linear(C, C, **init())
        self.dropout = Dropout(config.attn_dropout)
        self._cache: tuple | None = None

    def forward(self, x: Tensor, key_padding_mask: Any) -> Tensor:
        q, k, v = self.query(x), self.key(x), self.value(x)  # (B, T, C) each
        d = self.dropout
        out, self._cache = multi_head_attention_forward(
            q, k, v, self.n_head, False, key_padding_mask, d.effective_p(), d.seed, d.stream
        )  # no causal mask: every token sees the whole sequence
        return out  # (B, T, C)

    def backward(self, dout: Tensor) -> Tensor:
        if self._cache is None:
            raise RuntimeError("BertSelfAttention.backward called before forward")
        dq, dk, dv = multi_head_attention_backward(dout, self._cache)  # (B, T, C) each
        # x fed all three projections, so its gradient is the sum of theirs
        return add(add(self.query.backward(dq), self.key.backward(dk)), self.value.backward(dv))


class BertResidualOutput(Module):
    """dense, dropout, LayerNorm(branch + residual): the post-LN sublayer end (HF BertOutput)."""

    def __init__(self, c_in: int, config: BERTConfig, init: InitStreams):
        super().__init__()
        self.dense = Linear(c_in, config.n_embd, **init())
        self.LayerNorm = LayerNorm(config.n_embd, config.layer_norm_eps)
        self.dropout = Dropout(config.dropout)

    def forward(self, h: Tensor, residual: Tensor) -> Tensor:
        branch = self.dropout(self.dense(h))  # (B, T, C)
        return self.LayerNorm(add(branch, residual))  # (B, T, C)

    def backward(self, dout: Tensor) -> tuple[Tensor, Tensor]:
        """(dh, dresidual)."""
        dsum = self.LayerNorm.backward(dout)  # (B, T, C), the gradient of branch + residual
        return self.dense.backward(self.dropout.backward(dsum)), dsum


class BertAttention(Module):
    """Self-attention and its residual output: HF's `attention.self` and `attention.output`."""

    def __init__(self, config: BERTConfig, init: InitStreams):
        super().__init__()
        self.self = BertSelfAttention(config, init)
        self.output = BertResidualOutput(config.n_embd, config, init)

    def forward(self, x: Tensor, key_padding_mask: Any) -> Tensor:
        return self.output(self.self(x, key_padding_mask), x)

    def backward(self, dout: Tensor) -> Tensor:
        dctx, dx = self.output.backward(dout)
        return add(dx, self.self.backward(dctx))


class BertIntermediate(Module):
    """The feed-forward network's expansion: gelu_erf(dense(x)), (B, T, C) -> (B, T, I)."""

    def __init__(self, config: BERTConfig, init: InitStreams):
        super().__init__()
        self.dense = Linear(config.n_embd, config.intermediate_size, **init())
        self.activation = Activation("gelu_erf")

    def forward(self, x: Tensor) -> Tensor:
        return self.activation(self.dense(x))

    def backward(self, dout: Tensor) -> Tensor:
        return self.dense.backward(self.activation.backward(dout))


class BertLayer(Module):
    """One encoder block: attention, then the feed-forward network, each with a post-LN residual."""

    def __init__(self, config: BERTConfig, init: InitStreams):
        super().__init__()
        self.attention = BertAttention(config, init)
        self.intermediate = BertIntermediate(config, init)
        self.output = BertResidualOutput(config.intermediate_size, config, init)

    def forward(self, x: Tensor, key_padding_mask: Any) -> Tensor:
        a = self.attention(x, key_padding_mask)  # (B, T, C)
        return self.output(self.intermediate(a), a)  # (B, T, C)

    def backward(self, dout: Tensor) -> Tensor:
        dh, da = self.output.backward(dout)
        return self.attention.backward(add(da, self.intermediate.backward(dh)))


class BertEncoder(Module):
    """n_layer BertLayers in a row (`encoder.layer.{i}`)."""

    def __init__(self, config: BERTConfig, init: InitStreams):
        super().__init__()
        self.layer = ModuleList([BertLayer(config, init) for _ in range(config.n_layer)])

    def forward(self, x: Tensor, key_padding_mask: Any) -> Tensor:
        for block in self.layer:
            x = block(x, key_padding_mask)
        return x

    def backward(self, dout: Tensor) -> Tensor:
        for block in reversed(list(self.layer)):
            dout = block.backward(dout)
        return dout


class BertPooler(Module):
    """tanh(dense(x[:, 0])): the [CLS] position's vector, (B, T, C) -> (B, C)."""

    def __init__(self, config: BERTConfig, init: InitStreams):
        super().__init__()
        self.dense = Linear(config.n_embd, config.n_embd, **init())
        self.activation = Activation("tanh")
        self._T = 0

    def forward(self, x: Tensor) -> Tensor:
        self._T = len(x[0])
        return self.activation(self.dense([list(seq[0]) for seq in x]))  # (B, C)

    def backward(self, dout: Tensor) -> Tensor:
        dfirst = self.dense.backward(self.activation.backward(dout))  # (B, C)
        C = len(dfirst[0])
        # only position 0 was read, so the other positions get no gradient from here
        return [[list(row)] + [[0.0] * C for _ in range(self._T - 1)] for row in dfirst]


class BertModel(Module):
    """Embeddings and encoder (and the pooler when asked): HF's `bert.` prefix."""

    def __init__(self, config: BERTConfig, init: InitStreams, add_pooling_layer: bool = False):
        super().__init__()
        self.embeddings = BertEmbeddings(config, init)
        self.encoder = BertEncoder(config, init)
        self.pooler = BertPooler(config, init) if add_pooling_layer else None

    def forward(self, idx, token_type_ids, key_padding_mask) -> Tensor:
        return self.encoder(self.embeddings(idx, token_type_ids), key_padding_mask)  # (B, T, C)

    def backward(self, dout: Tensor) -> None:
        self.embeddings.backward(self.encoder.backward(dout))


class TiedLinear(Linear):
    """A Linear whose weight and bias are Parameters owned elsewhere (weight tying).

    named_parameters yields a shared Parameter once, under its first name, so the MLM decoder's
    weight is saved as `bert.embeddings.word_embeddings.weight` only, as Hugging Face saves it;
    backward adds the decoder's gradient into the same `.grad` the embedding lookup fills.
    """

    def __init__(self, weight: Parameter, bias: Parameter | None):
        Module.__init__(self)
        self.weight = weight
        self.bias = bias


class BertPredictionHeadTransform(Module):
    """LayerNorm(gelu_erf(dense(x))): (B, T, C) -> (B, T, C)."""

    def __init__(self, config: BERTConfig, init: InitStreams):
        super().__init__()
        self.dense = Linear(config.n_embd, config.n_embd, **init())
        self.activation = Activation("gelu_erf")
        self.LayerNorm = LayerNorm(config.n_embd, config.layer_norm_eps)

    def forward(self, x: Tensor) -> Tensor:
        return self.LayerNorm(self.activation(self.dense(x)))

    def backward(self, dout: Tensor) -> Tensor:
        return self.dense.backward(self.activation.backward(self.LayerNorm.backward(dout)))


class BertLMPredictionHead(Module):
    """transform, then logits = h word_embeddings^T + bias: (B, T, C) -> (B, T, V)."""

    def __init__(self, config: BERTConfig, init: InitStreams, word_embeddings: Parameter):
        super().__init__()
        self.bias = Parameter([0.0] * config.vocab_size)  # `cls.predictions.bias`
        self.transform = BertPredictionHeadTransform(config, init)
        self.decoder = TiedLinear(word_embeddings, self.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.transform(x))

    def backward(self, dout: Tensor) -> Tensor:
        return self.transform.backward(self.decoder.backward(dout))


class BertOnlyMLMHead(Module):
    """HF's `cls`: holds `predictions`."""

    def __init__(self, config: BERTConfig, init: InitStreams, word_embeddings: Parameter):
        super().__init__()
        self.predictions = BertLMPredictionHead(config, init, word_embeddings)

    def forward(self, x: Tensor) -> Tensor:
        return self.predictions(x)

    def backward(self, dout: Tensor) -> Tensor:
        return self.predictions.backward(dout)


# -- the models ------------------------------------------------------------------------------------
class BertDropoutSteps:
    """The dropout bookkeeping of both BERT heads, in every backend (a mixin): `step` counts
    the training-mode forwards, and the n-th one draws its masks from (config.seed, n)."""

    def next_dropout_step(self) -> None:
        """Point every Dropout at this forward's numbers (training mode only), then count it."""
        if self.training:
            set_dropout_rng(self, self.config.seed, self.step)
            self.step += 1


class _BertBase(BertDropoutSteps, Module):
    """What both heads share: the dropout step counter, checkpoints in Hugging Face's layout."""

    config: BERTConfig
    _hf_unused: tuple[str, ...] = ()  # checkpoint keys this model does not use

    def _check_backward(self, dlogits: Tensor | None, shape: tuple) -> Tensor:
        if self._loss_cache is None and dlogits is None:
            raise RuntimeError(
                "backward needs a forward first: pass labels to forward, or dlogits to backward"
            )
        if dlogits is None:
            return None
        if hasattr(dlogits, "tolist"):
            dlogits = dlogits.tolist()
        if shape_of(dlogits) != shape:
            raise ValueError(
                f"dlogits must have shape {shape} like the logits, got {shape_of(dlogits)}"
            )
        return dlogits

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, **kwargs: Any) -> _BertBase:
        """Read `config.json` + `model.safetensors` written by us or by Hugging Face; the model
        comes back in evaluation mode, as in `transformers` (`.train()` to train)."""
        directory = os.fspath(directory)
        for f in ("config.json", "model.safetensors"):
            if not os.path.isfile(os.path.join(directory, f)):
                raise FileNotFoundError(f"{directory!r} has no {f}")
        model = cls._from_config_file(os.path.join(directory, "config.json"), **kwargs)
        state = load_safetensors(os.path.join(directory, "model.safetensors"))
        model._load_hf_state(convert_hf_bert_state_dict(state, cls._hf_unused))
        return model.eval()

    def _load_hf_state(self, state: dict[str, Any]) -> None:
        self.load_state_dict(state)


class BERT(_BertBase):
    """BERT with its masked-language-model head, Hugging Face's `BertForMaskedLM`.

    >>> import math
    >>> model = BERT(BERTConfig(vocab_size=7, block_size=4, n_layer=1, n_head=2, n_embd=4))
    >>> logits, loss = model([[1, 2, 3]], labels=[[-100, 2, -100]])
    >>> len(logits[0][0]), abs(loss - math.log(7)) < 0.1  # near-uniform guesses at first
    (7, True)
    """

    _hf_unused = BERT_MLM_UNUSED  # BertForPreTraining's extras

    def __init__(self, config: BERTConfig):
        super().__init__()
        if not isinstance(config, BERTConfig):
            raise TypeError(f"config must be a BERTConfig, got {type(config).__name__}")
        self.config = config
        init = InitStreams(config.seed, config.initializer_range)
        self.bert = BertModel(config, init, add_pooling_layer=False)
        self.cls = BertOnlyMLMHead(config, init, self.bert.embeddings.word_embeddings.weight)
        self.step = 0  # training-mode forwards so far: picks the dropout masks
        self._loss_cache: tuple | None = None
        self._shape: tuple = ()

    def forward(
        self,
        idx: Any,
        token_type_ids: Any = None,
        attention_mask: Any = None,
        labels: Any = None,
    ) -> tuple[Tensor, float | None]:
        """(logits (B, T, V), mean cross-entropy over labels != -100, or None without labels).

        attention_mask (B, T): 1 = real token, 0 = padding (keys no query may attend to).
        """
        idx, token_type_ids, key_padding_mask = check_bert_inputs(
            self.config, idx, token_type_ids, attention_mask
        )
        B, T, V = len(idx), len(idx[0]), self.config.vocab_size
        if labels is not None:
            labels = check_mlm_labels(labels, B, T, V)
        self.next_dropout_step()
        x = self.bert(idx, token_type_ids, key_padding_mask)  # (B, T, C)
        logits = self.cls(x)  # (B, T, V)
        self._shape, self._loss_cache, loss = (B, T, V), None, None
        if labels is not None:
            loss, self._loss_cache = cross_entropy_forward(logits, labels, IGNORE_INDEX)
        return logits, loss

    def backward(self, dlogits: Tensor | None = None) -> None:
        """Backpropagate dL/dlogits (B, T, V), or the loss's gradient when dlogits is None,
        through every layer, adding into each `p.grad`."""
        dlogits = self._check_backward(dlogits, self._shape)
        if dlogits is None:
            dlogits = cross_entropy_backward(1.0, self._loss_cache)  # (B, T, V)
        self.bert.backward(self.cls.backward(dlogits))

    def config_dict(self) -> dict[str, Any]:
        return self.config.to_hf_dict()

    @classmethod
    def from_config_dict(cls, config: dict[str, Any]) -> BERT:
        return cls(BERTConfig.from_hf_dict(config))


class BERTForSequenceClassification(_BertBase):
    """BERT with a classifier on the pooled [CLS] vector: Hugging Face's
    `BertForSequenceClassification` (single-label, cross-entropy).

    `from_pretrained` also takes a BertForMaskedLM directory (pre-training, then fine-tuning): the
    encoder is loaded and the pooler and classifier keep their fresh initialisation, with a
    warning.
    """

    _hf_unused = BERT_CLASSIFIER_UNUSED  # an MLM head in the checkpoint is not used here

    def __init__(self, config: BERTConfig, num_labels: int = 2):
        super().__init__()
        if not isinstance(config, BERTConfig):
            raise TypeError(f"config must be a BERTConfig, got {type(config).__name__}")
        self.config, self.num_labels = config, check_num_labels(num_labels)
        init = InitStreams(config.seed, config.initializer_range)
        self.bert = BertModel(config, init, add_pooling_layer=True)
        self.dropout = Dropout(config.dropout)
        self.classifier = Linear(config.n_embd, num_labels, **init())
        self.step = 0
        self._loss_cache: tuple | None = None
        self._shape: tuple = ()

    def forward(
        self,
        idx: Any,
        token_type_ids: Any = None,
        attention_mask: Any = None,
        labels: Any = None,
    ) -> tuple[Tensor, float | None]:
        """(logits (B, num_labels), mean cross-entropy against labels (B,) or None)."""
        idx, token_type_ids, key_padding_mask = check_bert_inputs(
            self.config, idx, token_type_ids, attention_mask
        )
        B = len(idx)
        if labels is not None:
            labels = check_class_labels(labels, B, self.num_labels)
        self.next_dropout_step()
        x = self.bert(idx, token_type_ids, key_padding_mask)  # (B, T, C)
        logits = self.classifier(self.dropout(self.bert.pooler(x)))  # (B, num_labels)
        self._shape, self._loss_cache, loss = (B, self.num_labels), None, None
        if labels is not None:
            loss, self._loss_cache = softmax_cross_entropy(logits, labels)
        return logits, loss

    def backward(self, dlogits: Tensor | None = None) -> None:
        """Backpropagate dL/dlogits (B, num_labels), or the loss's when dlogits is None."""
        dlogits = self._check_backward(dlogits, self._shape)
        if dlogits is None:
            dlogits = self._loss_cache  # softmax_cross_entropy's gradient for dloss = 1
        dpooled = self.dropout.backward(self.classifier.backward(dlogits))  # (B, C)
        self.bert.backward(self.bert.pooler.backward(dpooled))

    def config_dict(self) -> dict[str, Any]:
        return bert_classifier_config(self.config, self.num_labels)

    @classmethod
    def from_config_dict(
        cls, config: dict[str, Any], num_labels: int | None = None
    ) -> BERTForSequenceClassification:
        if num_labels is None:
            num_labels = len(config.get("id2label", {})) or 2
        return cls(BERTConfig.from_hf_dict(config), num_labels)

    def _load_hf_state(self, state: dict[str, Any]) -> None:
        load_bert_classifier_state(self, state, stacklevel=3)  # warns at from_pretrained's caller


__all__ = [
    "BERTConfig", "BERT", "BERTForSequenceClassification", "check_bert_inputs",
    "BertDropoutSteps",
]  # fmt: skip

"""reference: the spec. Pure Python, standard library only, scalar loops over floats and lists.

Every concept of the project is here, readable like a textbook; the `fast` backend implements the
same public API and the conformance suite checks it against this package.

The model files (`gpt.py`, `llama.py`, `bert.py`, `seq2seq.py`, `t5.py`) hold the architectures;
what every model and every backend shares has a module of its own: `checks.py` (argument and
input checks), `config_fields.py` (config fields and the config classes' checks), `hf.py`
(Hugging Face config and checkpoint-name mapping), `decoding.py` (the sampling rule, greedy and
beam decoding), `init.py` (initialisation streams and the Xavier draw), `masking.py` (BERT's
masked-LM recipe), `span_corruption.py` (T5's pre-training corruption) and `nested.py` (the
nested-list tensor's helpers).

Teaching-only names (present here, not required of other backends): see `TEACHING_ONLY`.
"""

from .activations import (
    ACTIVATIONS,
    gelu,
    gelu_derivative,
    gelu_erf,
    gelu_erf_derivative,
    get_activation,
    identity,
    identity_derivative,
    relu,
    relu_derivative,
    sigmoid,
    sigmoid_derivative,
    silu,
    silu_derivative,
    step,
    step_derivative,
    tanh,
    tanh_derivative,
)
from .attention import (
    attention_backward,
    attention_forward,
    concat_qkv,
    grouped_query_attention_backward,
    grouped_query_attention_forward,
    merge_heads,
    multi_head_attention_backward,
    multi_head_attention_forward,
    split_heads,
    split_qkv,
)
from .autograd import Value
from .bert import BERT, BERTConfig, BERTForSequenceClassification
from .bpe import BPETokenizer, TokenizerFileError
from .checkpoint import (
    CheckpointError,
    load_safetensors,
    load_safetensors_metadata,
    save_safetensors,
)
from .data import (
    load_digits,
    load_mnist_idx,
    load_mnist_sample,
    load_text_corpus,
    read_idx,
    train_test_split,
)
from .gpt import GPT, GPTConfig, sample_next_token
from .layers import (
    Activation,
    Conv1D,
    Dropout,
    Embedding,
    LayerNorm,
    Linear,
    RMSNorm,
    activation_backward,
    activation_forward,
    cross_entropy_backward,
    cross_entropy_forward,
    dropout_backward,
    dropout_forward,
    dropout_keep,
    dropout_stream,
    embedding_backward,
    embedding_forward,
    layer_norm_backward,
    layer_norm_forward,
    linear_backward,
    linear_forward,
    normal_tensor,
    position_embedding_backward,
    position_embedding_forward,
    position_ids,
    residual_backward,
    residual_forward,
    rms_norm_backward,
    rms_norm_forward,
    rope_backward,
    rope_forward,
    set_dropout_rng,
    sinusoidal_position_encoding,
    swiglu_backward,
    swiglu_forward,
)
from .llama import Llama, LlamaConfig
from .losses import log_softmax, mse_loss, softmax, softmax_cross_entropy
from .masking import mask_tokens
from .mlp import MLP
from .module import Module, ModuleList, Parameter
from .neuron import Neuron, PerceptronResult
from .optim import (
    SGD,
    Adam,
    AdamW,
    ConstantLR,
    CosineWarmupLR,
    Optimizer,
    StepDecayLR,
    clip_grad_norm,
)
from .pretokenize import SPLIT_PATTERNS, get_splitter
from .rng import permutation, philox4x32, random_u32, random_u32s, uniform, uniforms
from .seq2seq import Transformer, TransformerConfig
from .span_corruption import span_corruption
from .t5 import T5, T5Config
from .t5_layers import (
    gated_gelu_backward,
    gated_gelu_forward,
    relative_position_bias_backward,
    relative_position_bias_forward,
    relative_position_bucket,
    t5_attention_backward,
    t5_attention_forward,
    t5_layer_norm_backward,
    t5_layer_norm_forward,
)
from .training import FitResult, FitState, NonFiniteLossError, fit
from .training_checkpoint import (
    checkpoint_info,
    latest_checkpoint,
    load_training_checkpoint,
    save_training_checkpoint,
)

__all__ = [
    # scalar autograd and the McCulloch-Pitts neuron (teaching-only)
    "Value", "Neuron", "PerceptronResult",
    # activations
    "ACTIVATIONS", "get_activation", "step", "step_derivative", "sigmoid", "sigmoid_derivative",
    "relu", "relu_derivative", "tanh", "tanh_derivative", "gelu", "gelu_derivative", "gelu_erf",
    "gelu_erf_derivative", "silu", "silu_derivative", "identity", "identity_derivative",
    # losses
    "softmax", "log_softmax", "mse_loss", "softmax_cross_entropy",
    # networks
    "Parameter", "Module", "ModuleList", "MLP",
    # Transformer ops (forward/backward pairs) and layers
    "embedding_forward", "embedding_backward", "position_ids", "position_embedding_forward",
    "position_embedding_backward", "sinusoidal_position_encoding", "linear_forward",
    "linear_backward", "layer_norm_forward", "layer_norm_backward", "activation_forward",
    "activation_backward", "dropout_stream", "dropout_keep", "dropout_forward", "dropout_backward",
    "residual_forward", "residual_backward", "cross_entropy_forward", "cross_entropy_backward",
    "normal_tensor", "set_dropout_rng", "split_heads", "merge_heads", "split_qkv", "concat_qkv",
    "attention_forward", "attention_backward", "multi_head_attention_forward",
    "multi_head_attention_backward", "Embedding", "Linear", "Conv1D", "LayerNorm", "Activation",
    "Dropout",
    # the modern decoder's ops: RMS norm, rotary positions, SwiGLU, grouped-query attention
    "rms_norm_forward", "rms_norm_backward", "rope_forward", "rope_backward", "swiglu_forward",
    "swiglu_backward", "grouped_query_attention_forward", "grouped_query_attention_backward",
    "RMSNorm",
    # optimization and training
    "Optimizer", "SGD", "Adam", "AdamW", "clip_grad_norm", "ConstantLR", "StepDecayLR",
    "CosineWarmupLR", "fit", "FitResult", "FitState", "NonFiniteLossError",
    # randomness shared across backends
    "philox4x32", "random_u32", "random_u32s", "uniform", "uniforms", "permutation",
    # the Transformer families
    "GPT", "GPTConfig", "sample_next_token", "BERT", "BERTConfig",
    "BERTForSequenceClassification", "mask_tokens", "Transformer", "TransformerConfig", "Llama",
    "LlamaConfig", "T5", "T5Config", "span_corruption",
    # T5's ops (forward/backward pairs)
    "t5_layer_norm_forward", "t5_layer_norm_backward", "relative_position_bucket",
    "relative_position_bias_forward", "relative_position_bias_backward", "t5_attention_forward",
    "t5_attention_backward", "gated_gelu_forward", "gated_gelu_backward",
    # byte-level BPE tokenizer
    "BPETokenizer", "TokenizerFileError", "SPLIT_PATTERNS", "get_splitter",
    # checkpoints and data
    "save_safetensors", "load_safetensors", "load_safetensors_metadata", "CheckpointError",
    "read_idx", "load_mnist_idx", "load_digits", "load_mnist_sample", "load_text_corpus",
    "train_test_split",
    # training checkpoints: resume after an interruption
    "save_training_checkpoint", "load_training_checkpoint", "latest_checkpoint", "checkpoint_info",
]  # fmt: skip

# Names that exist to teach and that other backends need not provide.
TEACHING_ONLY: frozenset[str] = frozenset({"Value", "Neuron", "PerceptronResult"})

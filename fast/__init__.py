"""fast: the reference's public API, backed by Numba on the CPU and numba-cuda on NVIDIA GPUs.

Swap `import reference as m` for `import fast as m` and the same training code runs, faster.
Tensors are numpy arrays; every model takes `dtype="float32"` (default) or `"float64"`.

Backend options (beyond the reference's signatures): `dtype=` and `device=` on models,
`from_config_dict` and `from_pretrained`. `device="cuda"` keeps the model on an NVIDIA GPU as
`DeviceArray`s and runs every operation as a numba-cuda kernel (`fast/cuda/`, see
`fast/device.py`); numba-cuda is imported only when a model asks for it.
Names the reference has that `fast` does not yet implement are listed in `NOT_YET_IMPLEMENTED`
(the conformance suite checks that list is exact, so it cannot silently grow).

Threads: Numba's OpenMP layer spin-waits between parallel regions by default; on a busy machine
(two cores shared with anything else) a tiny GPT's forward took 274 ms instead of 7 ms and its
backward 383 ms instead of 6 ms (measured side by side at load average 6). We default the
OpenMP wait policy to passive (measured: within a few ms of one thread under the same load); set
OMP_WAIT_POLICY yourself to override it.

fork: Numba's GNU OpenMP layer (`omp`, its default on Linux without TBB) kills a child made by
fork() (multiprocessing's default start method on Linux, as data loaders use) once the parent ran
a parallel kernel. So `fast` asks Numba for its `forksafe` threading layer: TBB (the `tbb`
package, a dependency; fork- and thread-safe) or, where TBB is missing, Numba's own `workqueue`
(fork-safe, but calling kernels from several Python threads at once is not allowed). Speed
(`scripts/bench_threads.py`, 2 cores, docs/benchmarks.md): TBB matched OpenMP on a GPT step and
the digit epoch; workqueue matched it on the GPT step but took about 30% longer per epoch. pip puts
TBB's library in the environment's lib/ folder, where the loader does not look inside a virtual
environment, so `fast` loads it from there first. A NUMBA_THREADING_LAYER you set yourself is
respected (`omp` is then yours to choose).
"""

from . import _threads  # noqa: F401  (first: the threading layer, before Numba loads)
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
from .t5 import T5, T5Config, span_corruption
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
    "multi_head_attention_backward", "Embedding", "Linear", "Conv1D", "LayerNorm",
    "Activation", "Dropout",
    # the modern decoder's ops: RMS norm, rotary positions, SwiGLU, grouped-query attention
    "rms_norm_forward", "rms_norm_backward", "rope_forward", "rope_backward", "swiglu_forward",
    "swiglu_backward", "grouped_query_attention_forward", "grouped_query_attention_backward",
    "RMSNorm",
    # the Transformer families
    "GPT", "GPTConfig", "sample_next_token", "BERT", "BERTConfig",
    "BERTForSequenceClassification", "mask_tokens", "Transformer", "TransformerConfig", "Llama",
    "LlamaConfig", "T5", "T5Config", "span_corruption",
    # T5's ops (forward/backward pairs)
    "t5_layer_norm_forward", "t5_layer_norm_backward", "relative_position_bucket",
    "relative_position_bias_forward", "relative_position_bias_backward", "t5_attention_forward",
    "t5_attention_backward", "gated_gelu_forward", "gated_gelu_backward",
    # optimization and training
    "Optimizer", "SGD", "Adam", "AdamW", "clip_grad_norm", "ConstantLR", "StepDecayLR",
    "CosineWarmupLR", "fit", "FitResult", "FitState", "NonFiniteLossError",
    # randomness shared across backends
    "philox4x32", "random_u32", "random_u32s", "uniform", "uniforms", "permutation",
    # byte-level BPE tokenizer
    "BPETokenizer", "TokenizerFileError", "SPLIT_PATTERNS", "get_splitter",
    # checkpoints and data
    "save_safetensors", "load_safetensors", "load_safetensors_metadata", "CheckpointError",
    "read_idx", "load_mnist_idx", "load_digits", "load_mnist_sample", "load_text_corpus",
    "train_test_split",
    # training checkpoints: resume after an interruption
    "save_training_checkpoint", "load_training_checkpoint", "latest_checkpoint", "checkpoint_info",
]  # fmt: skip


# Names of the reference's public API not implemented here yet (conformance/test_api.py holds
# this list exact). Empty: fast implements the whole API. __all__ is spelled out above rather
# than derived from the reference's so that linters and editors can see it.
NOT_YET_IMPLEMENTED: frozenset[str] = frozenset()

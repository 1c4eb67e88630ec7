"""reference: the spec. Pure Python, standard library only, scalar loops over floats and lists.

Every concept of the project is here, readable like a textbook; the `fast` backend implements the
same public API and the conformance suite checks it against this package.

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
    step,
    step_derivative,
    tanh,
    tanh_derivative,
)
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
from .losses import log_softmax, mse_loss, softmax, softmax_cross_entropy
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
from .rng import permutation, philox4x32, random_u32, random_u32s, uniform, uniforms
from .training import FitResult, NonFiniteLossError, fit

__all__ = [
    # neurons and activations
    "ACTIVATIONS", "get_activation", "step", "step_derivative", "sigmoid", "sigmoid_derivative",
    "relu", "relu_derivative", "tanh", "tanh_derivative", "gelu", "gelu_derivative", "gelu_erf",
    "gelu_erf_derivative", "identity", "identity_derivative",
    # losses
    "softmax", "log_softmax", "mse_loss", "softmax_cross_entropy",
    # networks
    "Parameter", "Module", "ModuleList", "MLP",
    # optimization and training
    "Optimizer", "SGD", "Adam", "AdamW", "clip_grad_norm", "ConstantLR", "StepDecayLR",
    "CosineWarmupLR", "fit", "FitResult", "NonFiniteLossError",
    # randomness shared across backends
    "philox4x32", "random_u32", "random_u32s", "uniform", "uniforms", "permutation",
    # checkpoints and data
    "save_safetensors", "load_safetensors", "load_safetensors_metadata", "CheckpointError",
    "read_idx", "load_mnist_idx", "load_digits", "load_mnist_sample", "load_text_corpus",
    "train_test_split",
]  # fmt: skip

# Names that exist to teach and that other backends need not provide.
TEACHING_ONLY: frozenset[str] = frozenset()

"""Activation functions and their derivatives: whether, and how strongly, a neuron "fires".

Each activation f maps a neuron's net input (the weighted sum minus the threshold) to its output
y = f(net). Backpropagation needs dy/dnet, the middle factor of the chain rule, so every activation
comes with its derivative, written as a function of `net`.

Without a non-linear f, stacked layers collapse into one linear map; the non-linearity is what lets
a network bend its decision boundary (and learn XOR).

    >>> step(0.5), sigmoid(0.0), relu(-2.0), identity(3.0)
    (1.0, 0.5, 0.0, 3.0)
"""

from __future__ import annotations

import math
from collections.abc import Callable

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
GELU_TANH_COEF = 0.044715
INV_SQRT_2 = 1.0 / math.sqrt(2.0)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def step(net: float) -> float:
    """Heaviside step, the McCulloch-Pitts all-or-nothing unit: 1 if net >= 0 else 0."""
    return 1.0 if net >= 0.0 else 0.0


def step_derivative(net: float) -> float:
    """Zero almost everywhere: why step units are trained by the perceptron rule, not backprop."""
    return 0.0


def sigmoid(net: float) -> float:
    """1 / (1 + e^-net), squashing into (0, 1); written in two branches so exp never overflows."""
    if net >= 0.0:
        return 1.0 / (1.0 + math.exp(-net))
    e = math.exp(net)
    return e / (1.0 + e)


def sigmoid_derivative(net: float) -> float:
    """sigma'(net) = sigma(net) (1 - sigma(net))."""
    s = sigmoid(net)
    return s * (1.0 - s)


def relu(net: float) -> float:
    """max(0, net)."""
    return net if net > 0.0 else 0.0


def relu_derivative(net: float) -> float:
    """1 for net > 0, else 0 (we take 0 at the kink, as PyTorch does)."""
    return 1.0 if net > 0.0 else 0.0


def tanh(net: float) -> float:
    """Hyperbolic tangent, squashing into (-1, 1)."""
    return math.tanh(net)


def tanh_derivative(net: float) -> float:
    """1 - tanh(net)^2."""
    t = math.tanh(net)
    return 1.0 - t * t


def gelu(net: float) -> float:
    """GELU, tanh approximation (GPT-2): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    u = SQRT_2_OVER_PI * (net + GELU_TANH_COEF * net * net * net)
    return 0.5 * net * (1.0 + math.tanh(u))


def gelu_derivative(net: float) -> float:
    """d/dx of the tanh-approximated GELU, by the product and chain rules."""
    x = net
    u = SQRT_2_OVER_PI * (x + GELU_TANH_COEF * x * x * x)
    t = math.tanh(u)
    du = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_TANH_COEF * x * x)
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du


def gelu_erf(net: float) -> float:
    """GELU, exact (BERT): x Phi(x) = 0.5 x (1 + erf(x / sqrt 2))."""
    return 0.5 * net * (1.0 + math.erf(net * INV_SQRT_2))


def gelu_erf_derivative(net: float) -> float:
    """Phi(x) + x phi(x), phi the standard normal density."""
    x = net
    return 0.5 * (1.0 + math.erf(x * INV_SQRT_2)) + x * INV_SQRT_2PI * math.exp(-0.5 * x * x)


def silu(net: float) -> float:
    """SiLU (swish, LLaMA's gate): x sigma(x)."""
    return net * sigmoid(net)


def silu_derivative(net: float) -> float:
    """d/dx x sigma(x) = sigma(x) + x sigma(x) (1 - sigma(x)) = sigma(x) (1 + x (1 - sigma(x)))."""
    s = sigmoid(net)
    return s * (1.0 + net * (1.0 - s))


def identity(net: float) -> float:
    """No squashing: the output layer of a regression network, or logits before softmax."""
    return net


def identity_derivative(net: float) -> float:
    return 1.0


# name -> (f, df/dnet). "gelu" is the tanh form GPT-2 uses; "gelu_erf" the exact form of BERT;
# "silu" the gate of LLaMA's SwiGLU feed-forward.
ACTIVATIONS: dict[str, tuple[Callable[[float], float], Callable[[float], float]]] = {
    "step": (step, step_derivative),
    "sigmoid": (sigmoid, sigmoid_derivative),
    "relu": (relu, relu_derivative),
    "tanh": (tanh, tanh_derivative),
    "gelu": (gelu, gelu_derivative),
    "gelu_erf": (gelu_erf, gelu_erf_derivative),
    "silu": (silu, silu_derivative),
    "identity": (identity, identity_derivative),
}


def get_activation(name: str) -> tuple[Callable[[float], float], Callable[[float], float]]:
    """(f, f') for an activation name, or a ValueError listing the known names."""
    if not isinstance(name, str):
        raise TypeError(f"activation must be a name (str), got {type(name).__name__}")
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]

"""Activation functions and their derivatives, on numpy arrays (or numbers).

Same names and formulas as `reference/activations.py`; each call runs one fused Numba loop.

    >>> float(sigmoid(0.0)), relu(np.array([-1.0, 2.0])).tolist()
    (0.5, [0.0, 2.0])
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .cpu import elementwise as k
from .device import cuda_ops, is_device_array

KINDS = {
    "step": k.STEP,
    "sigmoid": k.SIGMOID,
    "relu": k.RELU,
    "tanh": k.TANH,
    "gelu": k.GELU,
    "gelu_erf": k.GELU_ERF,
    "identity": k.IDENTITY,
}


def _as_float_array(x):
    a = np.asarray(x)
    if a.dtype not in (np.float32, np.float64):
        if a.dtype.kind not in "biuf":
            raise TypeError(f"net must be numbers, got dtype {a.dtype}")
        a = a.astype(np.float64)
    return a


def _run(kernel, kind: int, net):
    if is_device_array(net):  # on the GPU: the CUDA twin of the same kernel, same formulas
        return cuda_ops("layers").elementwise(kind, net, derivative=kernel is k.derivative_kernel)
    a = _as_float_array(net)
    flat = np.ascontiguousarray(a).reshape(-1)
    out = np.empty_like(flat)
    kernel(kind, flat, out)
    if a.ndim == 0 and not isinstance(net, np.ndarray):
        return float(out[0])
    return out.reshape(a.shape)


def _pair(name: str):
    kind = KINDS[name]

    def f(net):
        return _run(k.activation_kernel, kind, net)

    def df(net):
        return _run(k.derivative_kernel, kind, net)

    f.__name__, df.__name__ = name, name + "_derivative"
    f.__doc__ = f"{name} elementwise (see reference.activations.{name})."
    df.__doc__ = f"d{name}/dnet elementwise (see reference.activations.{name}_derivative)."
    return f, df


def gelu_tanh_parts(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(GELU(x), t) with t = tanh(sqrt(2/pi) (x + 0.044715 x^3)), by numpy's SIMD ufuncs.

    tanh is the expensive part: numpy's vectorized tanh is about ten times faster than a scalar
    libm call per element in a Numba loop, so the tanh-approximated GELU (GPT-2's) runs here.
    Keeping t lets the backward pass skip tanh entirely.
    """
    u = np.multiply(x, x, out=np.empty_like(x))  # (out= keeps a 0-d array an array)
    u *= k.GELU_TANH_COEF
    u += 1.0
    u *= x
    u *= k.SQRT_2_OVER_PI
    t = np.tanh(u, out=u)
    out = np.add(t, 1.0, out=np.empty_like(t))
    out *= 0.5  # 0.5 (1 + t) first, then x: as the reference's order, and finite for x near 1e308
    out *= x
    return out, t


step, step_derivative = _pair("step")
sigmoid, sigmoid_derivative = _pair("sigmoid")
relu, relu_derivative = _pair("relu")
tanh, tanh_derivative = _pair("tanh")
_gelu_kernel, gelu_derivative = _pair("gelu")


def gelu(net):
    """GELU, tanh approximation (see reference.activations.gelu), via `gelu_tanh_parts`."""
    if is_device_array(net):
        return _gelu_kernel(net)
    a = _as_float_array(net)
    out = gelu_tanh_parts(a)[0]
    return float(out) if a.ndim == 0 and not isinstance(net, np.ndarray) else out


gelu_erf, gelu_erf_derivative = _pair("gelu_erf")
identity, identity_derivative = _pair("identity")

ACTIVATIONS: dict[str, tuple[Callable, Callable]] = {
    "step": (step, step_derivative),
    "sigmoid": (sigmoid, sigmoid_derivative),
    "relu": (relu, relu_derivative),
    "tanh": (tanh, tanh_derivative),
    "gelu": (gelu, gelu_derivative),
    "gelu_erf": (gelu_erf, gelu_erf_derivative),
    "identity": (identity, identity_derivative),
}


def get_activation(name: str) -> tuple[Callable, Callable]:
    """(f, f') for an activation name, or the reference's clear error."""
    from reference.activations import get_activation as check

    check(name)  # the same TypeError / ValueError as the reference
    return ACTIVATIONS[name]


def activation_kind(name: str) -> int:
    """The kernel id of an activation name (validated)."""
    get_activation(name)
    return KINDS[name]

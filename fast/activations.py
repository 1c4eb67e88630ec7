"""Activation functions and their derivatives, on numpy arrays (or numbers).

Same names and formulas as `reference/activations.py`; each call runs one fused Numba loop.

    >>> float(sigmoid(0.0)), relu(np.array([-1.0, 2.0])).tolist()
    (0.5, [0.0, 2.0])
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .cpu import elementwise as k
from .cpu.elementwise import gelu_tanh_parts  # noqa: F401  (public here, as before)
from .device import floats, is_device_array, kernels

KINDS = {
    "step": k.STEP,
    "sigmoid": k.SIGMOID,
    "relu": k.RELU,
    "tanh": k.TANH,
    "gelu": k.GELU,
    "gelu_erf": k.GELU_ERF,
    "silu": k.SILU,
    "identity": k.IDENTITY,
}


def _as_float_array(x):
    """net as a float array: a DeviceArray checked on its device, host input by numpy."""
    if is_device_array(x):
        return floats(x, "net", kept=False, ints=False)
    a = np.asarray(x)
    if a.dtype not in (np.float32, np.float64):
        if a.dtype.kind not in "biuf":
            raise TypeError(f"net must be numbers, got dtype {a.dtype}")
        a = a.astype(np.float64)
    return a


def _shaped(out, a, net):
    """A number for a number, else the array."""
    return float(out) if a.ndim == 0 and not isinstance(net, np.ndarray) else out


def _run(derivative: bool, kind: int, net):
    """f(net) or f'(net) by the launcher of net's device (one definition of the formulas)."""
    a = _as_float_array(net)
    return _shaped(kernels("layers", a).elementwise(kind, a, derivative), a, net)


def _pair(name: str):
    kind = KINDS[name]

    def f(net):
        return _run(False, kind, net)

    def df(net):
        return _run(True, kind, net)

    f.__name__, df.__name__ = name, name + "_derivative"
    f.__doc__ = f"{name} elementwise (see reference.activations.{name})."
    df.__doc__ = f"d{name}/dnet elementwise (see reference.activations.{name}_derivative)."
    return f, df


step, step_derivative = _pair("step")
sigmoid, sigmoid_derivative = _pair("sigmoid")
relu, relu_derivative = _pair("relu")
tanh, tanh_derivative = _pair("tanh")
_, gelu_derivative = _pair("gelu")


def gelu(net):
    """GELU, tanh approximation (see reference.activations.gelu), via `gelu_tanh_parts`."""
    a = _as_float_array(net)
    return _shaped(kernels("layers", a).activation(k.GELU, a)[0], a, net)


gelu_erf, gelu_erf_derivative = _pair("gelu_erf")
silu, silu_derivative = _pair("silu")
identity, identity_derivative = _pair("identity")

ACTIVATIONS: dict[str, tuple[Callable, Callable]] = {
    "step": (step, step_derivative),
    "sigmoid": (sigmoid, sigmoid_derivative),
    "relu": (relu, relu_derivative),
    "tanh": (tanh, tanh_derivative),
    "gelu": (gelu, gelu_derivative),
    "gelu_erf": (gelu_erf, gelu_erf_derivative),
    "silu": (silu, silu_derivative),
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

"""Elementwise activation kernels, forward and derivative, over flat arrays.

Each is a parallel loop with one output per input element, so the result does not depend on the
thread count. The formulas are the reference's (`reference/activations.py`), term for term.
"""

import math

import numpy as np
from numba import njit, prange

from . import PER_ELEMENT_CALL, STREAMING, parallel_kernel

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
GELU_TANH_COEF = 0.044715
INV_SQRT_2 = 1.0 / math.sqrt(2.0)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)

# kernel ids, shared by the forward and derivative dispatchers
STEP, SIGMOID, RELU, TANH, GELU, GELU_ERF, IDENTITY, SILU = range(8)


@njit(cache=True, inline="always")
def _sigmoid(x):
    """1 / (1 + e^-x) in two branches, so exp never overflows (the reference's `sigmoid`)."""
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


@njit(cache=True, inline="always")
def _f(kind, x):
    if kind == STEP:
        return 1.0 if x >= 0.0 else 0.0
    if kind == SIGMOID:
        if x >= 0.0:
            return 1.0 / (1.0 + math.exp(-x))
        e = math.exp(x)
        return e / (1.0 + e)
    if kind == RELU:
        return x if x > 0.0 else 0.0
    if kind == TANH:
        return math.tanh(x)
    if kind == GELU:
        u = SQRT_2_OVER_PI * (x + GELU_TANH_COEF * x * x * x)
        return 0.5 * x * (1.0 + math.tanh(u))
    if kind == GELU_ERF:
        return 0.5 * x * (1.0 + math.erf(x * INV_SQRT_2))
    if kind == SILU:
        return x * _sigmoid(x)
    return x


@njit(cache=True, inline="always")
def _df(kind, x):
    if kind == STEP:
        return 0.0
    if kind == SIGMOID:
        if x >= 0.0:
            s = 1.0 / (1.0 + math.exp(-x))
        else:
            e = math.exp(x)
            s = e / (1.0 + e)
        return s * (1.0 - s)
    if kind == RELU:
        return 1.0 if x > 0.0 else 0.0
    if kind == TANH:
        t = math.tanh(x)
        return 1.0 - t * t
    if kind == GELU:
        u = SQRT_2_OVER_PI * (x + GELU_TANH_COEF * x * x * x)
        t = math.tanh(u)
        du = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_TANH_COEF * x * x)
        return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du
    if kind == GELU_ERF:
        return 0.5 * (1.0 + math.erf(x * INV_SQRT_2)) + x * INV_SQRT_2PI * math.exp(-0.5 * x * x)
    if kind == SILU:
        s = _sigmoid(x)
        return s * (1.0 + x * (1.0 - s))
    return 1.0


@parallel_kernel(PER_ELEMENT_CALL)
def activation_kernel(kind, x, out):
    """out = f(x) elementwise (flat arrays)."""
    for i in prange(x.size):
        out[i] = _f(kind, x[i])


@parallel_kernel(PER_ELEMENT_CALL)
def derivative_kernel(kind, x, out):
    """out = f'(x) elementwise (flat arrays)."""
    for i in prange(x.size):
        out[i] = _df(kind, x[i])


@parallel_kernel(PER_ELEMENT_CALL)
def activation_backward_kernel(kind, x, dout, dx):
    """dx = dout * f'(x): the chain rule's middle factor, fused with the upstream gradient."""
    for i in prange(x.size):
        dx[i] = dout[i] * _df(kind, x[i])


@parallel_kernel(STREAMING)
def gelu_backward_from_tanh(x, t, dout, dx):
    """dx = dout * GELU'(x) given t = tanh(sqrt(2/pi) (x + 0.044715 x^3)) from the forward:
    no transcendental left, so the loop vectorizes."""
    for i in prange(x.size):
        v = x[i] + 0.0
        ti = t[i] + 0.0
        du = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_TANH_COEF * v * v)
        dx[i] = dout[i] * (0.5 * (1.0 + ti) + 0.5 * v * (1.0 - ti * ti) * du)


def gelu_tanh_parts(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(GELU(x), t) with t = tanh(sqrt(2/pi) (x + 0.044715 x^3)), by numpy's SIMD ufuncs.

    tanh is the expensive part: numpy's vectorized tanh is about ten times faster than a scalar
    libm call per element in a Numba loop, so the tanh-approximated GELU (GPT-2's) runs here.
    Keeping t lets the backward pass skip tanh entirely.
    """
    u = np.multiply(x, x, out=np.empty_like(x))  # (out= keeps a 0-d array an array)
    u *= GELU_TANH_COEF
    u += 1.0
    u *= x
    u *= SQRT_2_OVER_PI
    t = np.tanh(u, out=u)
    out = np.add(t, 1.0, out=np.empty_like(t))
    out *= 0.5  # 0.5 (1 + t) first, then x: as the reference's order, and finite for x near 1e308
    out *= x
    return out, t

"""Elementwise activation kernels, forward and derivative, over flat arrays.

Each is a parallel loop with one output per input element, so the result does not depend on the
thread count. The formulas are the reference's (`reference/activations.py`), term for term, except
where said: float32 exp as a polynomial LLVM vectorizes (`exp_nonpositive`, for softmaxes, the
cross-entropy and the tanh-form GELU), and GELU's backward from sigmoid(2u) instead of tanh u.
"""

import math

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic, overload

from . import PER_ELEMENT_CALL, STREAMING, parallel_kernel

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
GELU_TANH_COEF = 0.044715
INV_SQRT_2 = 1.0 / math.sqrt(2.0)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)

# kernel ids, shared by the forward and derivative dispatchers
STEP, SIGMOID, RELU, TANH, GELU, GELU_ERF, IDENTITY, SILU = range(8)


# -- a vectorizable exp for float32 ----------------------------------------------------------------
@intrinsic
def _float32_from_bits(typingctx, bits):
    """The float32 whose IEEE-754 bits are the int32 `bits` (one LLVM bitcast, vectorizable)."""
    if bits != types.int32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


_F = np.float32
_LOG2E = _F(1.44269504088896341)
_LN2_HI, _LN2_LO = _F(0.693359375), _F(-2.12194440e-4)  # ln 2 = HI + LO, HI exact in 9 bits
_EXP_POLY = tuple(
    _F(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2)
) + (_F(1.6666665459e-1), _F(5.0000001201e-1))  # Cephes expf: exp(r) ~ 1 + r + r^2 P(r)
_EXP_MIN = _F(-87.0)  # below, exp underflows past the smallest normal float32: return 0


def exp_nonpositive(x):
    """exp(x) for x <= 0 (a softmax's max-subtracted scores), per dtype: see the overload."""
    return math.exp(x)


@overload(exp_nonpositive, jit_options={"cache": True})
def _exp_nonpositive(x):
    if x != types.float32:
        return lambda x: math.exp(x)

    def exp32(x):
        # x = n ln2 + r with |r| <= ln2 / 2 (Cody-Waite: ln2 in two parts keeps r exact), then
        # exp(x) = 2^n exp(r): a degree-7 polynomial (about 1.4 ulp) times 2^n built from bits
        underflow = x < _EXP_MIN
        x = min(max(x, _EXP_MIN), _F(0.0))  # (a positive x, e.g. a padded key's, gives 1)
        n = np.floor(x * _LOG2E + _F(0.5))
        r = x - n * _LN2_HI - n * _LN2_LO
        p0, p1, p2, p3, p4, p5 = _EXP_POLY
        p = ((((p0 * r + p1) * r + p2) * r + p3) * r + p4) * r + p5
        p = p * r * r + r + _F(1.0)
        two_n = _float32_from_bits(np.int32((np.int32(n) + np.int32(127)) << np.int32(23)))
        return _F(0.0) if underflow else p * two_n

    return exp32


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
def gelu_backward_from_s(x, s, dout, dx):
    """dx = dout * GELU'(x) given s = sigmoid(2u) = (1 + tanh(u)) / 2, u = sqrt(2/pi) (x +
    0.044715 x^3), from the forward. GELU(x) = x s, so GELU'(x) = s + 2 x s (1 - s) du/dx: the
    reference's 0.5 (1 + t) + 0.5 x (1 - t^2) du with 1 + t = 2s and 1 - t^2 = 4 s (1 - s),
    without the cancellation 1 + t suffers where tanh is near -1. No transcendental left, so
    the loop vectorizes."""
    for i in prange(x.size):
        v = x[i] + 0.0
        si = s[i] + 0.0
        du = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_TANH_COEF * v * v)
        dx[i] = dout[i] * (si + 2.0 * v * si * (1.0 - si) * du)


@parallel_kernel(PER_ELEMENT_CALL)
def gelu_float32_kernel(x, out, s, c1, c3):
    """out = GELU(x) = x s and s = sigmoid(2u), u = c1 x + c3 x^3 (c1 = sqrt(2/pi), c3 = c1 *
    0.044715, float32 like x): with e = exp(-2|u|) from the vectorizable polynomial of
    `exp_nonpositive`, s = 1 / (1 + e) for u >= 0 and e / (1 + e) below, so neither tail
    cancels. One pass, where numpy's path takes eight."""
    two, one = _F(2.0), _F(1.0)  # float32 constants: a float64 literal would widen the loop
    for i in prange(x.size):
        v = x[i]
        u = v * (c1 + c3 * v * v)
        e = exp_nonpositive(-two * abs(u))
        si = (one if u >= 0 else e) / (one + e)
        s[i] = si
        out[i] = v * si


def gelu_tanh_parts(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(GELU(x), s) with s = (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) / 2, kept for the
    backward (`gelu_backward_from_s`), which then needs no transcendental.

    float32: one kernel (`gelu_float32_kernel`). float64: numpy's SIMD tanh, about ten times
    faster than a scalar libm call per element in a Numba loop, in the reference's order.
    """
    if x.dtype == np.float32:
        flat = x.reshape(-1)
        out, s = np.empty_like(flat), np.empty_like(flat)
        c1 = np.float32(SQRT_2_OVER_PI)
        gelu_float32_kernel(flat, out, s, c1, np.float32(SQRT_2_OVER_PI * GELU_TANH_COEF))
        return out.reshape(x.shape), s.reshape(x.shape)
    u = np.multiply(x, x, out=np.empty_like(x))  # (out= keeps a 0-d array an array)
    u *= GELU_TANH_COEF
    u += 1.0
    u *= x
    u *= SQRT_2_OVER_PI
    t = np.tanh(u, out=u)
    out = np.add(t, 1.0, out=np.empty_like(t))
    out *= 0.5  # 0.5 (1 + t) first, then x: as the reference's order, and finite for x near 1e308
    s = out.copy()
    out *= x
    return out, s

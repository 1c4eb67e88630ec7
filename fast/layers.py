"""Transformer layers on numpy arrays: the reference's forward/backward pairs, made fast.

Same names, argument order and caches as `reference/layers.py` (read it for the math): each forward
returns the reference's cache class (`LinearCache`, ...) filled with arrays, and each backward reads
it by field name. On DeviceArrays the same functions run on the GPU: the checks are these, once, and
the work is either array operations DeviceArrays also have (linear, residual, the loss, dropout's
backward) or a launcher that `fast.device.kernels("layers", ...)` picks for the arrays' device:
`fast/cpu/layers.py` or `fast/cuda/layers.py`, same names and signatures. How each is made fast on
the CPU: linear layers are one BLAS call each way; layer norm, GELU, dropout and the embedding's
scatter-add are single fused Numba loops (`fast/cpu/layers.py`, `fast/cpu/elementwise.py`); the
cross-entropy is the fused kernel of `fast/losses.py`.

Dimension legend: B batch, T time, C channels, V vocabulary.
"""

from __future__ import annotations

import math

import numpy as np

from reference.checks import (
    check_count,
    check_eps,
    check_flag,
    check_number,
    check_numel,
    check_shape_arg,
)
from reference.layers import (
    STREAM_SITE_BITS,
    WEIGHT_LAYOUTS,
    ActivationCache,
    CrossEntropyCache,
    DropoutCache,
    EmbeddingCache,
    LayerNormCache,
    LinearCache,
    ResidualCache,
    RMSNormCache,
    RotaryCache,
    SwiGLUCache,
    check_dropout_p,
    check_positions,
    check_rope_args,
    dropout_stream,
    set_dropout_rng,
)
from reference.rng import check_seed_stream

from .activations import activation_kind
from .device import arrays_on, device_of, floats, kernels
from .dtypes import resolve_dtype
from .losses import softmax_cross_entropy
from .module import Module, Parameter
from .rng import uniforms
from .validate import as_index_array, model_owned

__all__ = [
    "normal_tensor", "embedding_forward", "embedding_backward", "position_ids",
    "position_embedding_forward", "position_embedding_backward", "sinusoidal_position_encoding",
    "linear_forward", "linear_backward", "layer_norm_forward", "layer_norm_backward",
    "activation_forward", "activation_backward", "dropout_stream", "dropout_keep",
    "dropout_forward", "dropout_backward", "residual_forward", "residual_backward",
    "cross_entropy_forward", "cross_entropy_backward", "Embedding", "Linear", "Conv1D",
    "LayerNorm", "Activation", "Dropout", "set_dropout_rng", "STREAM_SITE_BITS",
    "EmbeddingCache", "LinearCache", "LayerNormCache", "ActivationCache", "DropoutCache",
    "ResidualCache", "CrossEntropyCache", "rms_norm_forward", "rms_norm_backward", "rope_forward",
    "rope_backward", "rotary_tables", "swiglu_forward", "swiglu_backward", "RMSNorm",
    "RMSNormCache", "RotaryCache", "SwiGLUCache",
]  # fmt: skip


def _floats(x, name, dtype=None, like=None):
    """x as a contiguous float array on the device of `like` (or of x): numpy on the CPU, a
    DeviceArray on the GPU, where a numpy operand next to a DeviceArray is refused rather than
    copied over silently. (A 0-d array comes back 1-d.)"""
    device = device_of(x, like)
    return arrays_on(device).ascontiguous(floats(x, name, dtype, device=device, ints=False))


def _device_operand(*xs):
    """An operand on the device of them all (None if all are on the host): when one operand is
    on the GPU, every operand must be (`_floats` refuses a numpy one by name)."""
    return next((x for x in xs if device_of(x) != "cpu"), None)


def _check_dout(dout, shape, dtype, like=None):
    d = _floats(dout, "dout", dtype, like)
    if d.shape != tuple(shape):
        raise ValueError(f"dout must have shape {tuple(shape)}, got {d.shape}")
    return d


# -- initialisation --------------------------------------------------------------------------------
def normal_tensor(shape, std: float, seed: int, stream: int, dtype="float64") -> np.ndarray:
    """N(0, std^2) draws by Box-Muller on Philox uniforms (the reference's formula)."""
    shape = check_shape_arg("shape", shape)
    std = check_number("std", std)
    if std < 0.0:
        raise ValueError(f"std must be >= 0, got {std}")
    n = int(np.prod(shape, dtype=np.int64))
    u = uniforms(seed, stream, 2 * n)
    z = std * np.sqrt(-2.0 * np.log(1.0 - u[0::2])) * np.cos(2.0 * math.pi * u[1::2])
    return z.reshape(tuple(shape)).astype(resolve_dtype(dtype))


# -- embeddings and positions ----------------------------------------------------------------------
def embedding_forward(weight, idx):
    """Rows of `weight` (num, C) for int ids `idx` -> idx.shape + (C,).

    The cache's ids are a copy, so refilling `idx` before the backward changes nothing."""
    with model_owned():  # the table is read now, not kept: no copy of it
        w = _floats(weight, "weight")
    if w.ndim != 2:
        raise ValueError(f"weight must have shape (num_embeddings, C), got {w.shape}")
    ids = as_index_array(idx, "idx")
    flat = ids.reshape(-1)
    bad = (flat < 0) | (flat >= w.shape[0])
    if bad.any():
        pos = int(np.argmax(bad))
        raise ValueError(
            f"idx value {int(flat[pos])} out of range for {w.shape[0]} embeddings "
            f"(flat position {pos})"
        )
    out = kernels("layers", w).gather_rows(w, flat, ids.shape)  # (B, T, C)
    return out, EmbeddingCache(flat, ids.shape, w.shape)


def embedding_backward(dout, cache: EmbeddingCache):
    """dL/dweight: each output row's gradient scatter-added into the row it was read from."""
    num, C = cache.weight_shape
    d = _check_dout(dout, cache.shape + (C,), None).reshape(-1, C)
    return kernels("layers", d).scatter_add_rows(d, cache.ids, num)


def position_ids(B: int, T: int, start: int = 0) -> np.ndarray:
    """Positions start .. start+T-1 for each of B sequences, (B, T) int64."""
    B, T, start = check_positions(B, T, start)
    return np.broadcast_to(np.arange(start, start + T, dtype=np.int64), (B, T)).copy()


def position_embedding_forward(weight, B: int, T: int, start: int = 0):
    """Learned positions: out[b, t] = weight[start + t], (B, T, C)."""
    B, T, start = check_positions(B, T, start)
    w = _floats(weight, "weight")
    if w.ndim != 2:
        raise ValueError(f"weight must have shape (n_positions, C), got {w.shape}")
    n_positions = w.shape[0]
    if start + T > n_positions:
        raise ValueError(
            f"positions {start}..{start + T - 1} need {start + T} rows but the position table "
            f"weight has n_positions={n_positions} (sequence length T={T})"
        )
    return embedding_forward(weight, position_ids(B, T, start))


def position_embedding_backward(dout, cache: EmbeddingCache):
    return embedding_backward(dout, cache)


def sinusoidal_position_encoding(B: int, T: int, C: int, start: int = 0, dtype="float64"):
    """The 2017 fixed positions, (B, T, C): sin on even channels, cos on odd ones."""
    B, T, start = check_positions(B, T, start)
    C = check_count("C", C, low=1)
    check_numel("the encoding (B, T, C)", (B, T, C))
    pos = np.arange(start, start + T, dtype=np.float64)[:, None]
    j = np.arange(C)
    angle = pos / 10000.0 ** (2 * (j // 2) / C)  # (T, C)
    table = np.where(j % 2 == 0, np.sin(angle), np.cos(angle))
    return np.broadcast_to(table, (B, T, C)).astype(resolve_dtype(dtype))


# -- linear ----------------------------------------------------------------------------------------
def linear_forward(x, weight, bias=None, weight_layout: str = "out_in"):
    """y = x W^T + b on the last axis, one BLAS call (one `gemm` on the GPU: the same code, on
    DeviceArrays). `weight_layout` as in the reference."""
    if weight_layout not in WEIGHT_LAYOUTS:
        raise ValueError(f"weight_layout must be one of {WEIGHT_LAYOUTS}, got {weight_layout!r}")
    w = _floats(weight, "weight", like=_device_operand(x, weight, bias))
    if w.ndim != 2:
        raise ValueError(f"weight must be a matrix, got shape {w.shape}")
    W = w if weight_layout == "out_in" else w.T  # (C_out, C_in), a view
    C_out, C_in = W.shape
    xa = _floats(x, "x", w.dtype, like=w)
    if xa.ndim == 0 or xa.shape[-1] != C_in:
        raise ValueError(f"x must have shape (..., {C_in}), got {xa.shape}")
    x2 = xa.reshape(-1, C_in)
    y = x2 @ W.T  # (N, C_out)
    if bias is not None:
        b = _floats(bias, "bias", w.dtype, like=w)
        if b.shape != (C_out,):
            raise ValueError(f"bias must have shape ({C_out},), got {b.shape}")
        y += b
    lead = xa.shape[:-1]
    return y.reshape(lead + (C_out,)), LinearCache(x2, lead, W, bias is not None, weight_layout)


def linear_backward(dout, cache: LinearCache):
    """(dx, dweight, dbias): dx = dout W, dW = dout^T x, db = column sums of dout."""
    x2, lead, W = cache.x, cache.lead, cache.weight
    C_out, C_in = W.shape
    d = _check_dout(dout, lead + (C_out,), W.dtype, like=W).reshape(-1, C_out)
    dx = (d @ W).reshape(lead + (C_in,))
    # dW = dout^T x in the layout the weight is stored in (no transposed copy afterwards)
    # (C_out, C_in) / (C_in, C_out)
    dweight = d.T @ x2 if cache.weight_layout == "out_in" else x2.T @ d
    dbias = d.sum(axis=0) if cache.has_bias else None
    return dx, dweight, dbias


# -- layer norm ------------------------------------------------------------------------------------
def layer_norm_forward(x, weight, bias, eps: float = 1e-5):
    """Fused two-pass layer norm over the last axis, then scale and shift (eps > 0, as the
    reference)."""
    w = _floats(weight, "weight", like=_device_operand(x, weight, bias))
    C = w.shape[0] if w.ndim == 1 else -1
    if w.ndim != 1 or C == 0:
        raise ValueError(f"weight must have shape (C,) with C >= 1 channels, got shape {w.shape}")
    b = _floats(bias, "bias", w.dtype, like=w)
    if b.shape != (C,):
        raise ValueError(f"bias must have shape ({C},), got {b.shape}")
    eps = check_eps(eps)
    xa = _floats(x, "x", w.dtype, like=w)
    if xa.ndim == 0 or xa.shape[-1] != C:
        raise ValueError(f"x must have shape (..., {C}), got {xa.shape}")
    x2 = xa.reshape(-1, C)
    out, mean, rstd = kernels("layers", x2).layer_norm_rows(x2, w, b, float(eps))
    return out.reshape(xa.shape), LayerNormCache(x2, xa.shape[:-1], w, mean, rstd)


def layer_norm_backward(dout, cache: LayerNormCache):
    """(dx, dweight, dbias), the reference's formulas in one fused kernel."""
    x2, lead, w = cache.x, cache.lead, cache.weight
    C = w.shape[0]
    d = _check_dout(dout, lead + (C,), w.dtype, like=x2).reshape(-1, C)
    dx, dweight, dbias = kernels("layers", d).layer_norm_rows_backward(
        d, x2, w, cache.mean, cache.rstd
    )
    return dx.reshape(lead + (C,)), dweight, dbias


# -- RMS norm --------------------------------------------------------------------------------------
def rms_norm_forward(x, weight, eps: float = 1e-6):
    """Fused RMS norm over the last axis, then the gain (eps > 0, as the reference)."""
    w = _floats(weight, "weight", like=_device_operand(x, weight))
    C = w.shape[0] if w.ndim == 1 else -1
    if w.ndim != 1 or C == 0:
        raise ValueError(f"weight must have shape (C,) with C >= 1 channels, got shape {w.shape}")
    eps = check_eps(eps)
    xa = _floats(x, "x", w.dtype, like=w)
    if xa.ndim == 0 or xa.shape[-1] != C:
        raise ValueError(f"x must have shape (..., {C}), got {xa.shape}")
    x2 = xa.reshape(-1, C)
    out, rstd = kernels("layers", x2).rms_norm_rows(x2, w, float(eps))
    return out.reshape(xa.shape), RMSNormCache(x2, xa.shape[:-1], w, rstd)


def rms_norm_backward(dout, cache: RMSNormCache):
    """(dx, dweight), the reference's formulas in one fused kernel."""
    x2, lead, w = cache.x, cache.lead, cache.weight
    C = w.shape[0]
    d = _check_dout(dout, lead + (C,), w.dtype, like=x2).reshape(-1, C)
    dx, dweight = kernels("layers", d).rms_norm_rows_backward(d, x2, w, cache.rstd)
    return dx.reshape(lead + (C,)), dweight


# -- rotary position embeddings --------------------------------------------------------------------
def rotary_tables(T: int, hs: int, start: int = 0, theta: float = 10000.0, dtype="float64"):
    """(cos, sin), each (T, hs/2): angle[t, i] = (start + t) / theta ** (2i / hs), the reference's
    arithmetic in float64 (numpy's cos and sin), then cast to `dtype`."""
    inv_freq = 1.0 / theta ** (np.arange(hs // 2) * 2 / hs)
    angles = np.arange(start, start + T, dtype=np.float64)[:, None] * inv_freq
    dt = resolve_dtype(dtype)
    return np.cos(angles).astype(dt), np.sin(angles).astype(dt)


def rope_forward(x, n_head: int, start: int = 0, theta: float = 10000.0):
    """Rotary embeddings on q or k (B, T, C), per head, in the half-split layout: one fused loop
    (the reference's formulas; its docstring explains them)."""
    xa = _floats(x, "x")
    if xa.ndim != 3:
        raise ValueError(f"x must have shape (B, T, C), got {xa.shape}")
    B, T, C = xa.shape
    n_head, start, theta = check_rope_args(C, n_head, start, theta)
    device = device_of(xa)
    cos, sin = (
        arrays_on(device).to_device(t)
        for t in rotary_tables(T, C // n_head, start, theta, xa.dtype)
    )
    x2 = xa.reshape(B * T, C)
    out = kernels("layers", x2).rope_rows(x2, cos, sin, T, n_head, 1.0)
    return out.reshape(B, T, C), RotaryCache(cos, sin, n_head, xa.shape)


def rope_backward(dout, cache: RotaryCache):
    """dx: the gradient turned back by the same angles (one fused loop)."""
    B, T, C = cache.shape
    d = _check_dout(dout, cache.shape, cache.cos.dtype, like=cache.cos).reshape(B * T, C)
    dx = kernels("layers", d).rope_rows(d, cache.cos, cache.sin, T, cache.n_head, -1.0)
    return dx.reshape(B, T, C)


# -- elementwise activations -----------------------------------------------------------------------
def activation_forward(x, activation: str = "gelu"):
    """f on every element. On the CPU GELU (tanh form) keeps sigmoid(2u) = (1 + tanh u) / 2 for
    the backward (the cache's `saved`; `fast/cpu/elementwise.gelu_tanh_parts`); the others run
    one fused loop and save None."""
    kind = activation_kind(activation)
    xa = _floats(x, "x")
    out, saved = kernels("layers", xa).activation(kind, xa)
    return out, ActivationCache(xa, xa.shape, activation, saved)


def activation_backward(dout, cache: ActivationCache):
    """dx = dout * f'(x), one fused loop (GELU's from what the forward saved)."""
    xa = cache.x
    d = _check_dout(dout, cache.shape, xa.dtype, like=xa)
    kind = activation_kind(cache.activation)
    return kernels("layers", d).activation_backward(kind, d, xa, cache.saved)


# -- SwiGLU ----------------------------------------------------------------------------------------
def swiglu_forward(gate, up):
    """silu(gate) * up elementwise, one fused loop."""
    g = _floats(gate, "gate", like=_device_operand(gate, up))
    u = _floats(up, "up", g.dtype, like=g)
    if u.shape != g.shape:
        raise ValueError(f"up must have the shape of gate {g.shape}, got {u.shape}")
    out = kernels("layers", g).swiglu(g, u)
    return out, SwiGLUCache(g, u, g.shape)


def swiglu_backward(dout, cache: SwiGLUCache):
    """(dgate, dup) = (dout * up * silu'(gate), dout * silu(gate)), one fused loop."""
    g, u = cache.gate, cache.up
    d = _check_dout(dout, cache.shape, g.dtype, like=g)
    return kernels("layers", d).swiglu_backward(d, g, u)


# -- dropout ---------------------------------------------------------------------------------------
def dropout_keep(n: int, p: float, seed: int, stream: int, start: int = 0) -> np.ndarray:
    """Multipliers of flat elements start .. start+n-1: 1/(1-p) where kept, else 0 (float64)."""
    p = check_dropout_p(p)
    scale = 1.0 / (1.0 - p) if p < 1.0 else 0.0
    return np.where(uniforms(seed, stream, n, start) >= p, scale, 0.0)


def dropout_forward(x, p: float, seed: int = 0, stream: int = 0):
    """Inverted dropout with Philox keep decisions drawn inside one fused loop."""
    p = check_dropout_p(p)
    check_seed_stream(seed, stream)
    xa = _floats(x, "x")
    if p == 0.0:
        return xa.copy(), DropoutCache(None, xa.shape)
    out, mult = kernels("layers", xa).dropout(xa, p, seed, stream)
    return out, DropoutCache(mult, xa.shape)


def dropout_backward(dout, cache: DropoutCache):
    keep, shape = cache.keep, cache.shape
    d = _check_dout(dout, shape, None, like=keep)
    return d.copy() if keep is None else d * keep.reshape(shape)


# -- residual and loss -----------------------------------------------------------------------------
def residual_forward(x, y):
    """x + y (the residual stream)."""
    xa, ya = _floats(x, "x", like=y), _floats(y, "y", like=x)
    if xa.shape != ya.shape:
        raise ValueError(f"y must have the shape of x {xa.shape}, got {ya.shape}")
    return xa + ya, ResidualCache(xa.shape)


def residual_backward(dout, cache: ResidualCache):
    d = _check_dout(dout, cache.shape, None)
    return d.copy(), d.copy()


def cross_entropy_forward(logits, targets, ignore_index: int | None = -100):
    """Mean softmax cross-entropy over (B, T, V) logits and (B, T) targets (fused kernel)."""
    z = _floats(logits, "logits")
    if z.ndim != 3:
        raise ValueError(f"logits must have shape (B, T, V), got {z.shape}")
    t = as_index_array(targets, "targets")
    if t.shape != z.shape[:2]:
        raise ValueError(f"targets must have shape {z.shape[:2]}, got {t.shape}")
    loss, dlogits = softmax_cross_entropy(z.reshape(-1, z.shape[2]), t.reshape(-1), ignore_index)
    return loss, CrossEntropyCache(dlogits, z.shape)


def cross_entropy_backward(dloss: float, cache: CrossEntropyCache):
    return (cache.dlogits * dloss).reshape(cache.shape)


# -- modules ---------------------------------------------------------------------------------------
class _Layer(Module):
    """A module that caches its latest forward for `backward(dout) -> dinput`; backward adds into
    each `p.grad` in place."""

    _cache = None

    def _saved(self):
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        return self._cache


class Embedding(_Layer):
    def __init__(
        self, num_embeddings, embedding_dim, *, std=0.02, seed=0, stream=0, dtype="float32"
    ):
        super().__init__()
        num_embeddings = check_count("num_embeddings", num_embeddings, low=1)
        embedding_dim = check_count("embedding_dim", embedding_dim, low=1)
        self.weight = Parameter(
            normal_tensor((num_embeddings, embedding_dim), std, seed, stream), dtype
        )

    def forward(self, idx):
        out, self._cache = embedding_forward(self.weight.data, idx)
        return out

    def backward(self, dout):
        self.weight.grad += embedding_backward(dout, self._saved())


class Linear(_Layer):
    weight_layout = "out_in"

    def __init__(
        self, in_features, out_features, bias=True, *, std=0.02, seed=0, stream=0, dtype="float32"
    ):
        super().__init__()
        in_features = check_count("in_features", in_features, low=1)
        out_features = check_count("out_features", out_features, low=1)
        check_flag("bias", bias)
        shape = (
            (out_features, in_features)
            if self.weight_layout == "out_in"
            else (in_features, out_features)
        )
        self.weight = Parameter(normal_tensor(shape, std, seed, stream), dtype)
        self.bias = Parameter(np.zeros(out_features), dtype) if bias else None

    def forward(self, x):
        b = self.bias.data if self.bias is not None else None
        out, self._cache = linear_forward(x, self.weight.data, b, self.weight_layout)
        return out

    def backward(self, dout):
        dx, dweight, dbias = linear_backward(dout, self._saved())
        self.weight.grad += dweight
        if self.bias is not None:
            self.bias.grad += dbias
        return dx


class Conv1D(Linear):
    weight_layout = "in_out"

    def __init__(self, in_features, out_features, *, std=0.02, seed=0, stream=0, dtype="float32"):
        super().__init__(
            in_features, out_features, True, std=std, seed=seed, stream=stream, dtype=dtype
        )


class LayerNorm(_Layer):
    def __init__(self, dim, eps=1e-5, dtype="float32"):
        super().__init__()
        dim = check_count("dim", dim, low=1)
        self.eps = check_eps(eps)
        self.weight = Parameter(np.ones(dim), dtype)
        self.bias = Parameter(np.zeros(dim), dtype)

    def forward(self, x):
        out, self._cache = layer_norm_forward(x, self.weight.data, self.bias.data, self.eps)
        return out

    def backward(self, dout):
        dx, dweight, dbias = layer_norm_backward(dout, self._saved())
        self.weight.grad += dweight
        self.bias.grad += dbias
        return dx


class RMSNorm(_Layer):
    def __init__(self, dim, eps=1e-6, dtype="float32"):
        super().__init__()
        dim = check_count("dim", dim, low=1)
        self.eps = check_eps(eps)
        self.weight = Parameter(np.ones(dim), dtype)

    def forward(self, x):
        out, self._cache = rms_norm_forward(x, self.weight.data, self.eps)
        return out

    def backward(self, dout):
        dx, dweight = rms_norm_backward(dout, self._saved())
        self.weight.grad += dweight
        return dx


class Activation(_Layer):
    def __init__(self, activation="gelu"):
        super().__init__()
        activation_kind(activation)
        self.activation = activation

    def forward(self, x):
        out, self._cache = activation_forward(x, self.activation)
        return out

    def backward(self, dout):
        return activation_backward(dout, self._saved())


class Dropout(_Layer):
    is_dropout_site = True

    def __init__(self, p=0.1):
        super().__init__()
        self.p = check_dropout_p(p)
        self.seed = 0
        self.stream = 0

    def effective_p(self):
        return self.p if self.training else 0.0

    def forward(self, x):
        out, self._cache = dropout_forward(x, self.effective_p(), self.seed, self.stream)
        return out

    def backward(self, dout):
        return dropout_backward(dout, self._saved())

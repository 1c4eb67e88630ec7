"""T5's operations on numpy arrays (and DeviceArrays): `reference/t5_layers.py`, made fast.

Same names, arguments, caches and errors as the reference (read it for the math). How each runs:
- T5 layer norm: one fused Numba loop per direction (`fast/cpu/t5_layers.py`), one block per row
  on the GPU (`fast/cuda/t5_layers.py`), through `fast.device.kernels("t5_layers", ...)`;
- relative position bias: the buckets of the Tq + Tk - 1 offsets come from the reference's
  `relative_position_bucket` (integer logic, one definition), the (Tq, Tk) table is built once
  per shape and kept; the bias is the embedding's row gather from the (num_buckets, H) table and
  its backward the embedding's scatter-add (`kernels("layers", ...)`: `gather_rows`,
  `scatter_add_rows`), so no new kernel;
- T5 attention: the attention launchers' `biased_forward` / `biased_backward` (the fused
  masked-softmax-dropout kernels with scale 1 and the bias added to the scores; the bias's
  gradient is the score gradient summed over the batch);
- gated GELU: the GELU launchers of `kernels("layers", ...)` and one product each way.

Dimension legend: B batch, H heads, Tq queries, Tk keys, hs head size, C channels.
"""

from __future__ import annotations

import functools

import numpy as np

from reference.checks import check_count, check_flag, check_numel
from reference.layers import check_dropout_p
from reference.t5_layers import (
    GatedGeluCache,
    RelativePositionBiasCache,
    check_bucket_args,
    relative_position_bucket,
)

from .activations import activation_kind
from .attention import AttentionCache, _check_seed_stream, _float_arrays, _padding
from .device import arrays_on, device_of, empty, floats, kernels
from .layers import (
    RMSNormCache,
    _check_dout,
    _device_operand,
    _floats,
    rms_norm_backward,
    rms_norm_forward,
)

__all__ = [
    "t5_layer_norm_forward", "t5_layer_norm_backward",
    "relative_position_bucket", "RelativePositionBiasCache", "relative_position_bias_forward",
    "relative_position_bias_backward", "t5_attention_forward", "t5_attention_backward",
    "GatedGeluCache", "gated_gelu_forward", "gated_gelu_backward",
]  # fmt: skip

GELU = activation_kind("gelu")


# -- T5 layer norm: RMS norm, one implementation for T5 and LLaMA (see the reference) -------------
def t5_layer_norm_forward(x, weight, eps: float = 1e-6):
    """weight * x / sqrt(mean(x^2) + eps) over the last axis: `fast.layers.rms_norm_forward`."""
    return rms_norm_forward(x, weight, eps)


def t5_layer_norm_backward(dout, cache: RMSNormCache):
    """(dx, dweight): `fast.layers.rms_norm_backward`."""
    return rms_norm_backward(dout, cache)


# -- relative position bias ------------------------------------------------------------------------
@functools.lru_cache(maxsize=256)
def _bucket_table(
    Tq: int, Tk: int, bidirectional: bool, num_buckets: int, max_distance: int
) -> np.ndarray:
    """The (Tq * Tk) buckets, row-major, read-only: each offset's from the reference's rule."""
    offsets = np.arange(Tk)[None, :] - np.arange(Tq)[:, None]  # (Tq, Tk): j - i
    of = np.array(
        [
            relative_position_bucket(d, bidirectional, num_buckets, max_distance)
            for d in range(1 - Tq, Tk)
        ],
        dtype=np.int64,
    )
    table = of[offsets + Tq - 1].reshape(-1)
    table.flags.writeable = False
    return table


def relative_position_bias_forward(
    weight, Tq: int, Tk: int, bidirectional: bool = True, max_distance: int = 128
):
    """(H, Tq, Tk) bias[h, i, j] = weight[bucket(j - i), h]: a row gather from the table."""
    w = _floats(weight, "weight")
    if w.ndim != 2:
        raise ValueError(f"weight must have shape (num_buckets, H), got {w.shape}")
    Tq, Tk = check_count("Tq", Tq, low=1), check_count("Tk", Tk, low=1)
    check_numel("the buckets (Tq, Tk)", (Tq, Tk))
    num_buckets, H = w.shape
    check_bucket_args(num_buckets, max_distance, bidirectional)
    check_numel("the bias (H, Tq, Tk)", (H, Tq, Tk))
    flat = _bucket_table(Tq, Tk, bool(bidirectional), int(num_buckets), int(max_distance))
    rows = kernels("layers", w).gather_rows(w, flat, (Tq, Tk))  # (Tq, Tk, H)
    bias = arrays_on(device_of(w)).ascontiguous(rows.transpose(2, 0, 1))  # (H, Tq, Tk)
    return bias, RelativePositionBiasCache(flat, (Tq, Tk), w.shape)


def relative_position_bias_backward(dout, cache: RelativePositionBiasCache):
    """dL/dweight (num_buckets, H): the embedding's scatter-add, each sum in (i, j) order."""
    num_buckets, H = cache.weight_shape
    Tq, Tk = cache.shape
    d = _check_dout(dout, (H, Tq, Tk), None)
    rows = arrays_on(device_of(d)).ascontiguous(d.transpose(1, 2, 0)).reshape(Tq * Tk, H)
    return kernels("layers", rows).scatter_add_rows(rows, cache.buckets, num_buckets)


# -- T5 attention ----------------------------------------------------------------------------------
def t5_attention_forward(
    q,
    k,
    v,
    position_bias=None,
    causal: bool = False,
    key_padding_mask=None,
    dropout_p: float = 0.0,
    seed: int = 0,
    stream: int = 0,
):
    """softmax(q k^T + position_bias + mask) v per batch and head, unscaled (see the reference).

    q (B, H, Tq, hs), k and v (B, H, Tk, hs), position_bias (H, Tq, Tk) or None."""
    q, k, v = _float_arrays({"q": q, "k": k, "v": v}, kept=True)
    if q.ndim != 4:
        raise ValueError(f"q must have shape (B, H, Tq, hs), got {q.shape}")
    B, H, Tq, hs = q.shape
    if k.ndim != 4 or k.shape[:2] != (B, H) or k.shape[3] != hs:
        raise ValueError(f"k must have shape ({B}, {H}, Tk, {hs}) to match q, got {k.shape}")
    if v.shape != k.shape:
        raise ValueError(f"v must have shape {k.shape}, got {v.shape}")
    if hs == 0:
        raise ValueError(f"q must have a head size hs >= 1, got shape {q.shape}")
    Tk = k.shape[2]
    bias = None
    if position_bias is not None:
        bias = floats(position_bias, "position_bias", q.dtype, device=device_of(q))
        if bias.shape != (H, Tq, Tk):
            raise ValueError(
                f"position_bias must have shape (H, Tq, Tk) = {(H, Tq, Tk)}, got {bias.shape}"
            )
    padding = _padding(key_padding_mask, B, Tk)
    dropout_p = check_dropout_p(dropout_p, "dropout_p")
    if dropout_p > 0.0:
        _check_seed_stream(seed, stream)
    check_flag("causal", causal)
    out = empty(q.shape, q.dtype, device_of(q))
    return kernels("attention", q).biased_forward(
        q, k, v, bias, causal, padding, dropout_p, seed, stream, out
    )


def t5_attention_backward(dout, cache: AttentionCache):
    """(dq, dk, dv, dposition_bias): the score gradient summed over the batch is the bias's."""
    q, k = cache.q, cache.k
    dout = floats(dout, "dout", q.dtype, device=device_of(dout, q), kept=False)
    if dout.shape != q.shape:
        raise ValueError(f"dout must have shape {q.shape}, got {dout.shape}")
    on = device_of(q)
    dq = empty(q.shape, q.dtype, on)
    dk, dv = empty(k.shape, k.dtype, on), empty(k.shape, k.dtype, on)
    return kernels("attention", dout).biased_backward(dout, cache, dq, dk, dv)


# -- gated GELU ------------------------------------------------------------------------------------
def gated_gelu_forward(gate, up):
    """gelu(gate) * up elementwise (tanh GELU); the cache keeps gelu(gate) and the launcher's
    saved values for the backward."""
    g = _floats(gate, "gate", like=_device_operand(gate, up))
    u = _floats(up, "up", g.dtype, like=g)
    if u.shape != g.shape:
        raise ValueError(f"up must have the shape of gate {g.shape}, got {u.shape}")
    gg, saved = kernels("layers", g).activation(GELU, g)
    return gg * u, GatedGeluCache(g, u, g.shape, (gg, saved))


def gated_gelu_backward(dout, cache: GatedGeluCache):
    """(dgate, dup) = (dout * gelu'(gate) * up, dout * gelu(gate))."""
    g, u = cache.gate, cache.up
    d = _check_dout(dout, cache.shape, g.dtype, like=g)
    gg, saved = cache.saved
    dgate = kernels("layers", d).activation_backward(GELU, d * u, g, saved)
    return dgate, d * gg

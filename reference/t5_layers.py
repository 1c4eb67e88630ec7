"""T5's own operations, as forward/backward pairs: its layer norm, relative position bias, the
unscaled attention that adds it, and the gated GELU of T5 v1.1.

T5 (Raffel et al., 2019) keeps the 2017 encoder-decoder and changes its parts:

- **T5 layer norm**: y = weight * x / sqrt(mean(x^2) + eps) over the last axis. A root mean
  square, not a variance: no mean is subtracted, and there is no bias (Hugging Face's
  `T5LayerNorm`). It is RMS norm, which LLaMA later used under that name, so both families call
  one implementation (`layers.rms_norm_forward` / `rms_norm_backward`).
- **Relative position bias**: instead of adding positions to the embeddings, each attention
  score (query i, key j) gets a learned number per head that depends only on the offset j - i,
  put into one of `num_buckets` buckets: offsets up to max_exact = num_buckets / 2 (of each
  sign, when bidirectional) each have their own bucket, larger ones share buckets on a log scale
  up to `max_distance`, and everything beyond shares the last bucket. The encoder's buckets are
  bidirectional (a key before and a key after are told apart); the decoder's are causal (only
  keys at or before the query matter). Only the first layer of each stack owns the table
  (`relative_attention_bias`, (num_buckets, H)); the others reuse the bias it computes.
- **T5 attention**: softmax(q k^T + bias + mask) v per head, *without* the 1/sqrt(hs) scale
  (T5 folds it into the initialisation of q). The bias gets a gradient: the score gradient
  summed over the batch.
- **Gated GELU** (T5 v1.1's `feed_forward_proj` "gated-gelu"): gelu(gate) * up, where gate and
  up are two projections of the same input (`wi_0`, `wi_1`) and GELU is the tanh form.

Conventions as in `layers.py`: `out, cache = op_forward(...)`, `grads = op_backward(dout, cache)`
with grads in the forward's argument order; ops never mutate their arguments. Each op's cache is
the `NamedTuple` defined beside it; `fast` fills the same classes with arrays.

The bucket function is integer logic around one logarithm, computed in Python floats (float64):
`relative_position_bucket` is shared by both backends, which call it once per offset.

Dimension legend: B batch, T time (Tq queries, Tk keys), C channels (d_model), H heads,
hs = d_kv the head size, F the feed-forward width (d_ff).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from .activations import gelu, gelu_derivative
from .attention import AttentionCache, _check_mask, _masked_softmax, check_qkv
from .checks import check_count, check_flag, check_numbers, check_numel
from .layers import (
    RMSNormCache,
    check_dropout_p,
    dropout_keep,
    rms_norm_backward,
    rms_norm_forward,
)
from .nested import check_shape, flatten, shape_of, unflatten
from .rng import check_seed_stream

Tensor = Any  # a nested list of floats


# -- T5 layer norm ---------------------------------------------------------------------------------
def t5_layer_norm_forward(
    x: Tensor, weight: Tensor, eps: float = 1e-6
) -> tuple[Tensor, RMSNormCache]:
    """T5's layer norm over the last axis: weight * x / sqrt(mean(x^2) + eps), (..., C).

    No mean subtraction and no bias: only the scale of each row is normalised. That is RMS norm,
    the one LLaMA uses under its own name, so this is `layers.rms_norm_forward` (one
    implementation, one cache: `RMSNormCache`).

    >>> out, _ = t5_layer_norm_forward([3.0, 4.0], [1.0, 2.0], eps=1e-12)
    >>> [round(v, 6) for v in out]
    [0.848528, 2.262742]
    """
    return rms_norm_forward(x, weight, eps)


def t5_layer_norm_backward(dout: Tensor, cache: RMSNormCache) -> tuple[Tensor, Tensor]:
    """(dx, dweight): `layers.rms_norm_backward`."""
    return rms_norm_backward(dout, cache)


# -- relative position buckets and bias ------------------------------------------------------------
def check_bucket_args(num_buckets: Any, max_distance: Any, bidirectional: Any) -> None:
    """num_buckets an int >= 2 (>= 4 when bidirectional: two halves of at least 2), max_distance
    an int > max_exact (the exact buckets' reach), bidirectional a bool."""
    check_flag("bidirectional", bidirectional)
    check_count("num_buckets", num_buckets, low=4 if bidirectional else 2)
    max_exact = (num_buckets // 2 if bidirectional else num_buckets) // 2
    check_count("max_distance", max_distance, low=max_exact + 1)


def relative_position_bucket(
    relative_position: int,
    bidirectional: bool = True,
    num_buckets: int = 32,
    max_distance: int = 128,
) -> int:
    """The bucket of the offset key - query, as T5 (Mesh TensorFlow and Hugging Face) defines it.

    Bidirectional: half the buckets for offsets > 0 (they start at num_buckets / 2), half for
    the rest, by |offset|. Causal: only offsets <= 0 are told apart (a positive one, the future,
    is bucket 0 like offset 0), by -offset. Then, with n the distance and max_exact = half the
    buckets left: n < max_exact is its own bucket; else
    max_exact + floor(log(n / max_exact) / log(max_distance / max_exact) * (buckets - max_exact)),
    at most buckets - 1. The logarithm is a Python float (float64).

    >>> [relative_position_bucket(d, True, 8, 16) for d in (-20, -3, -1, 0, 1, 2, 5, 20)]
    [3, 2, 1, 0, 5, 6, 6, 7]
    >>> [relative_position_bucket(d, False, 8, 16) for d in (3, 0, -1, -4, -7, -100)]
    [0, 0, 1, 4, 5, 7]
    """
    if isinstance(relative_position, bool) or not isinstance(relative_position, int):
        raise TypeError(f"relative_position must be an int, got {type(relative_position).__name__}")
    check_bucket_args(num_buckets, max_distance, bidirectional)
    bucket = 0
    if bidirectional:
        num_buckets //= 2
        if relative_position > 0:
            bucket += num_buckets
        n = abs(relative_position)
    else:
        n = max(-relative_position, 0)
    max_exact = num_buckets // 2
    if n < max_exact:
        return bucket + n
    large = max_exact + int(
        math.log(n / max_exact) / math.log(max_distance / max_exact) * (num_buckets - max_exact)
    )  # int() truncates toward 0, here floor: the argument is >= 0
    return bucket + min(large, num_buckets - 1)


def relative_position_buckets(
    Tq: int, Tk: int, bidirectional: bool, num_buckets: int, max_distance: int
) -> list[list[int]]:
    """(Tq, Tk) buckets: entry (i, j) is relative_position_bucket(j - i, ...). Each offset's
    bucket is computed once (there are Tq + Tk - 1 of them)."""
    Tq, Tk = check_count("Tq", Tq, low=1), check_count("Tk", Tk, low=1)
    check_numel("the buckets (Tq, Tk)", (Tq, Tk))
    check_bucket_args(num_buckets, max_distance, bidirectional)
    of = {
        d: relative_position_bucket(d, bidirectional, num_buckets, max_distance)
        for d in range(1 - Tq, Tk)
    }
    return [[of[j - i] for j in range(Tk)] for i in range(Tq)]


class RelativePositionBiasCache(NamedTuple):
    """What `relative_position_bias_backward` needs from `relative_position_bias_forward`.

    buckets: the (Tq * Tk) bucket of each (i, j), flattened row-major: which table row each
    score's gradient goes back to. shape: (Tq, Tk). weight_shape: (num_buckets, H).
    """

    buckets: Any
    shape: tuple
    weight_shape: tuple


def relative_position_bias_forward(
    weight: Tensor, Tq: int, Tk: int, bidirectional: bool = True, max_distance: int = 128
) -> tuple[Tensor, RelativePositionBiasCache]:
    """The bias T5 adds to the attention scores: (H, Tq, Tk), bias[h][i][j] = weight[bucket(j -
    i)][h], for a table `weight` (num_buckets, H). Its backward scatter-adds into the table."""
    check_numbers("weight", weight)
    wshape = shape_of(weight)
    if len(wshape) != 2:
        raise ValueError(f"weight must have shape (num_buckets, H), got {wshape}")
    check_shape("weight", weight, wshape)
    num_buckets, H = wshape
    buckets = relative_position_buckets(Tq, Tk, bidirectional, num_buckets, max_distance)
    check_numel("the bias (H, Tq, Tk)", (H, Tq, Tk))
    bias = [[[weight[b][h] for b in row] for row in buckets] for h in range(H)]  # (H, Tq, Tk)
    return bias, RelativePositionBiasCache(flatten(buckets), (Tq, Tk), wshape)


def relative_position_bias_backward(dout: Tensor, cache: RelativePositionBiasCache) -> Tensor:
    """dL/dweight (num_buckets, H): each score's gradient added into its bucket's row."""
    num_buckets, H = cache.weight_shape
    Tq, Tk = cache.shape
    check_numbers("dout", dout)
    check_shape("dout", dout, (H, Tq, Tk))
    dweight = [[0.0] * H for _ in range(num_buckets)]
    for h in range(H):
        flat = flatten(dout[h])  # (Tq * Tk,)
        for b, g in zip(cache.buckets, flat):
            dweight[b][h] += g
    return dweight


# -- T5 attention: no scale, a bias on the scores --------------------------------------------------
def t5_attention_forward(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    position_bias: Tensor | None = None,
    causal: bool = False,
    key_padding_mask: Any = None,
    dropout_p: float = 0.0,
    seed: int = 0,
    stream: int = 0,
) -> tuple[Tensor, AttentionCache]:
    """softmax(q k^T + position_bias + mask) v per batch and head: T5's attention, unscaled.

    q (B, H, Tq, hs), k and v (B, H, Tk, hs), position_bias (H, Tq, Tk) or None (cross-attention
    has none) -> out (B, H, Tq, hs). Masks and dropout as `attention.attention_forward` (a masked
    score is left out; the weight at flat index ((b*H + h)*Tq + i)*Tk + j is dropped by the
    shared generator). The cache is `AttentionCache` with scale 1.0.
    """
    B, H, Tq, Tk, hs = check_qkv(q, k, v)
    if position_bias is not None:
        check_numbers("position_bias", position_bias)
        if shape_of(position_bias) != (H, Tq, Tk):
            raise ValueError(
                f"position_bias must have shape (H, Tq, Tk) = {(H, Tq, Tk)}, got "
                f"{shape_of(position_bias)}"
            )
        check_shape("position_bias", position_bias, (H, Tq, Tk))
    _check_mask(key_padding_mask, B, Tk)
    dropout_p = check_dropout_p(dropout_p, "dropout_p")
    if dropout_p > 0.0:
        check_seed_stream(seed, stream)
    check_flag("causal", causal)

    out, weights, dropped = [], [], []
    for b in range(B):
        visible = [key_padding_mask is None or not key_padding_mask[b][j] for j in range(Tk)]
        out_b, weights_b, dropped_b = [], [], []
        for h in range(H):
            out_bh, weights_bh, dropped_bh = [], [], []
            for i in range(Tq):
                qi = q[b][h][i]
                scores = []
                for j in range(Tk):
                    if visible[j] and (not causal or j <= i + Tk - Tq):
                        s = sum(a * c for a, c in zip(qi, k[b][h][j]))
                        scores.append(s + position_bias[h][i][j] if position_bias else s)
                    else:
                        scores.append(None)
                w = _masked_softmax(scores)  # (Tk,)
                if dropout_p > 0.0:
                    keep = dropout_keep(Tk, dropout_p, seed, stream, ((b * H + h) * Tq + i) * Tk)
                    wd = [wj * kj for wj, kj in zip(w, keep)]
                    dropped_bh.append(wd)
                else:
                    wd = w
                out_bh.append([sum(wd[j] * v[b][h][j][d] for j in range(Tk)) for d in range(hs)])
                weights_bh.append(w)
            out_b.append(out_bh)
            weights_b.append(weights_bh)
            dropped_b.append(dropped_bh)
        out.append(out_b)
        weights.append(weights_b)
        dropped.append(dropped_b)
    dropped = dropped if dropout_p > 0.0 else None
    return out, AttentionCache(q, k, v, weights, dropped, 1.0, causal)


def t5_attention_backward(
    dout: Tensor, cache: AttentionCache
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(dq, dk, dv, dposition_bias) for `t5_attention_forward`:

    out = wd v             -> dv = wd^T dout,   dwd = dout v^T
    w = softmax(s), wd = w * keep -> ds = wd * dwd - w * sum(wd * dwd)
    s = q k^T + bias       -> dq = ds k,   dk = ds^T q,   dbias = sum over the batch of ds

    dposition_bias is (H, Tq, Tk) (zeros where every score was masked); a caller that passed no
    bias ignores it.
    """
    q, k, v, weights = cache.q, cache.k, cache.v, cache.weights
    B, H, Tq, hs = shape_of(q)
    Tk = len(k[0][0])
    check_numbers("dout", dout)
    check_shape("dout", dout, (B, H, Tq, hs))
    dq = [[[[0.0] * hs for _ in range(Tq)] for _ in range(H)] for _ in range(B)]
    dk = [[[[0.0] * hs for _ in range(Tk)] for _ in range(H)] for _ in range(B)]
    dv = [[[[0.0] * hs for _ in range(Tk)] for _ in range(H)] for _ in range(B)]
    dbias = [[[0.0] * Tk for _ in range(Tq)] for _ in range(H)]
    for b in range(B):
        for h in range(H):
            kb, vb, dkb, dvb = k[b][h], v[b][h], dk[b][h], dv[b][h]
            for i in range(Tq):
                w, g = weights[b][h][i], dout[b][h][i]
                wd = w if cache.dropped is None else cache.dropped[b][h][i]
                dwd = [sum(g[d] * vb[j][d] for d in range(hs)) for j in range(Tk)]
                total = sum(a * c for a, c in zip(wd, dwd))
                ds = [a * c - wj * total for a, c, wj in zip(wd, dwd, w)]  # (Tk,)
                row = dbias[h][i]
                for j in range(Tk):
                    row[j] += ds[j]
                    for d in range(hs):
                        dvb[j][d] += wd[j] * g[d]
                qi, dqi = q[b][h][i], dq[b][h][i]
                for j in range(Tk):
                    if ds[j] == 0.0:
                        continue
                    for d in range(hs):
                        dqi[d] += ds[j] * kb[j][d]
                        dkb[j][d] += ds[j] * qi[d]
    return dq, dk, dv, dbias


# -- gated GELU ------------------------------------------------------------------------------------
class GatedGeluCache(NamedTuple):
    """What `gated_gelu_backward` needs from `gated_gelu_forward`.

    gate and up: the inputs (flattened here; `fast` keeps its arrays), for gelu'(gate) * up and
    gelu(gate); shape: their shape; saved: what the forward computed for reuse (`fast`: gelu(gate)
    and its tanh; None here, where the backward recomputes).
    """

    gate: Any
    up: Any
    shape: tuple
    saved: Any = None


def gated_gelu_forward(gate: Tensor, up: Tensor) -> tuple[Tensor, GatedGeluCache]:
    """gelu(gate) * up elementwise (any shape; GELU in its tanh form, Hugging Face's gelu_new):
    T5 v1.1's feed-forward hidden layer, gate = x wi_0^T, up = x wi_1^T.

    >>> out, _ = gated_gelu_forward([0.0, 1.0], [5.0, 2.0])
    >>> [round(v, 6) for v in out]
    [0.0, 1.682384]
    """
    check_numbers("gate", gate), check_numbers("up", up)
    shape = shape_of(gate)
    check_shape("gate", gate, shape)
    if shape_of(up) != shape:
        raise ValueError(f"up must have the shape of gate {shape}, got {shape_of(up)}")
    check_shape("up", up, shape)
    g, u = flatten(gate), flatten(up)
    return unflatten([gelu(a) * b for a, b in zip(g, u)], shape), GatedGeluCache(g, u, shape)


def gated_gelu_backward(dout: Tensor, cache: GatedGeluCache) -> tuple[Tensor, Tensor]:
    """(dgate, dup) = (dout * gelu'(gate) * up, dout * gelu(gate))."""
    check_numbers("dout", dout)
    shape = cache.shape
    if shape_of(dout) != shape:
        raise ValueError(f"dout must have shape {shape}, got {shape_of(dout)}")
    d = flatten(dout)
    dgate = [di * gelu_derivative(a) * b for di, a, b in zip(d, cache.gate, cache.up)]
    dup = [di * gelu(a) for di, a in zip(d, cache.gate)]
    return unflatten(dgate, shape), unflatten(dup, shape)


__all__ = [
    "t5_layer_norm_forward", "t5_layer_norm_backward", "check_bucket_args",
    "relative_position_bucket", "relative_position_buckets", "RelativePositionBiasCache",
    "relative_position_bias_forward", "relative_position_bias_backward", "t5_attention_forward",
    "t5_attention_backward", "GatedGeluCache", "gated_gelu_forward", "gated_gelu_backward",
]  # fmt: skip

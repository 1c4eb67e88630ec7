"""Scaled dot-product attention and its multi-head form, with explicit backprop.

Each query asks "which keys match me?": its scores against every key, scaled by 1/sqrt(hs) so
their spread does not grow with the head size, become weights by a softmax, and the output is the
weighted sum of the values. Multi-head attention runs H such attentions side by side on hs = C/H
channels each.

Conventions, as in `layers.py`: `out, cache = op_forward(...)`, `grads = op_backward(dout, cache)`
with grads in the forward's argument order; ops never mutate their arguments.

Dimension legend: B batch, T time (Tq queries, Tk keys/values), C channels, H heads,
hs head size = C / H.

Masks (a masked score is left out of the softmax, i.e. gets weight exactly 0):
- scores are scaled by 1/sqrt(hs) BEFORE masking (which matters to additive-mask backends only);
- `causal=True`: query i sees key j iff j <= i + (Tk - Tq) (bottom-right aligned, so with
  Tq == Tk it is the usual j <= i, and a query block at the end of a longer key block still sees
  its whole past);
- `key_padding_mask` (B, Tk) of bools or 0/1: True/1 marks a PADDED key that no query may see
  (torch's convention; Hugging Face's attention_mask is the opposite, 1 = real token);
- a query row whose keys are all masked gets all-zero weights, so its output is 0 and no gradient
  flows through it (no NaN from softmax over nothing).
Dropout on the attention weights: the weight at (b, h, i, j), row-major flat index
((b*H + h)*Tq + i)*Tk + j, is kept iff uniform(seed, stream, index) >= dropout_p and then scaled by
1/(1 - dropout_p), exactly as `layers.dropout_forward` on the (B, H, Tq, Tk) weights.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from .checks import check_flag, check_numbers
from .layers import check_dropout_p, dropout_keep
from .nested import check_shape, shape_of

Tensor = Any  # a nested list of floats


def split_heads(x: Tensor, n_head: int) -> Tensor:
    """(B, T, C) -> (B, H, T, hs): head h takes channels h*hs .. (h+1)*hs - 1 of each position.

    Its backward is `merge_heads` (and vice versa): both only move numbers.
    """
    check_numbers("x", x)
    shape = shape_of(x)
    if len(shape) != 3:
        raise ValueError(f"x must have shape (B, T, C), got {shape}")
    check_shape("x", x, shape)
    B, T, C = shape
    if isinstance(n_head, bool) or not isinstance(n_head, int) or n_head < 1:
        raise ValueError(f"n_head must be a positive int, got {n_head!r}")
    if C % n_head != 0:
        raise ValueError(f"n_embd (C={C}) must be divisible by n_head={n_head}")
    hs = C // n_head
    return [
        [[list(x[b][t][h * hs : (h + 1) * hs]) for t in range(T)] for h in range(n_head)]
        for b in range(B)
    ]  # (B, H, T, hs)


def merge_heads(x: Tensor) -> Tensor:
    """(B, H, T, hs) -> (B, T, C): the heads' outputs side by side again, C = H * hs."""
    check_numbers("x", x)
    shape = shape_of(x)
    if len(shape) != 4:
        raise ValueError(f"x must have shape (B, H, T, hs), got {shape}")
    check_shape("x", x, shape)
    B, H, T, _ = shape
    return [[[v for h in range(H) for v in x[b][h][t]] for t in range(T)] for b in range(B)]


def split_qkv(qkv: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(B, T, 3C) -> three (B, T, C): GPT-2's c_attn output (and torch's in_proj) in q, k, v order.

    Its backward is `concat_qkv`.
    """
    check_numbers("qkv", qkv)
    shape = shape_of(qkv)
    if len(shape) != 3 or shape[2] % 3 != 0:
        raise ValueError(f"qkv must have shape (B, T, 3C), got {shape}")
    check_shape("qkv", qkv, shape)
    C = shape[2] // 3
    q = [[list(row[:C]) for row in seq] for seq in qkv]  # (B, T, C)
    k = [[list(row[C : 2 * C]) for row in seq] for seq in qkv]  # (B, T, C)
    v = [[list(row[2 * C :]) for row in seq] for seq in qkv]  # (B, T, C)
    return q, k, v


def concat_qkv(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """Three (B, T, C) -> (B, T, 3C), the inverse of `split_qkv` (so also its backward)."""
    check_numbers("q", q), check_numbers("k", k), check_numbers("v", v)
    shape = shape_of(q)
    check_shape("q", q, shape)
    check_shape("k", k, shape)
    check_shape("v", v, shape)
    return [[qr + kr + vr for qr, kr, vr in zip(*seqs)] for seqs in zip(q, k, v)]


def _check_mask(key_padding_mask: Any, B: int, Tk: int) -> None:
    if key_padding_mask is None:
        return
    check_shape("key_padding_mask", key_padding_mask, (B, Tk))
    for b, row in enumerate(key_padding_mask):
        for j, m in enumerate(row):
            if m not in (0, 1):  # True == 1 and False == 0, so bools pass
                raise ValueError(
                    f"key_padding_mask must hold bools or 0/1, got {m!r} at [{b}][{j}]"
                )


class AttentionCache(NamedTuple):
    """What `attention_backward` needs from `attention_forward` (and the multi-head form's).

    q (B, H, Tq, hs), k and v (B, H, Tk, hs): the inputs, for dq = ds k, dk = ds^T q and
    dwd = dout v^T.
    weights (B, H, Tq, Tk): the softmax before dropout (0 where masked): the attention pattern,
    and what the softmax backward needs. dropped (B, H, Tq, Tk): the weights after dropout,
    wd = weights * keep, for dv = wd^T dout and the dropout backward; None without dropout (then
    wd = weights). scale: 1/sqrt(hs). causal: the forward's flag (`fast` skips the masked future
    with it; here the zero weights already say it).
    """

    q: Any
    k: Any
    v: Any
    weights: Any
    dropped: Any
    scale: float
    causal: bool


def check_qkv(q: Tensor, k: Tensor, v: Tensor) -> tuple[int, int, int, int, int]:
    """(B, H, Tq, Tk, hs) of per-head queries q (B, H, Tq, hs) and keys and values k, v
    (B, H, Tk, hs), after checking they are numbers of those shapes (hs >= 1)."""
    check_numbers("q", q), check_numbers("k", k), check_numbers("v", v)
    qshape, kshape = shape_of(q), shape_of(k)
    if len(qshape) != 4:
        raise ValueError(f"q must have shape (B, H, Tq, hs), got {qshape}")
    B, H, Tq, hs = qshape
    if len(kshape) != 4 or kshape[:2] != (B, H) or kshape[3] != hs:
        raise ValueError(f"k must have shape ({B}, {H}, Tk, {hs}) to match q, got {kshape}")
    Tk = kshape[2]
    check_shape("q", q, qshape)
    check_shape("k", k, kshape)
    check_shape("v", v, kshape)
    if hs == 0:
        raise ValueError(f"q must have a head size hs >= 1, got shape {qshape}")
    return B, H, Tq, Tk, hs


def attention_forward(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    causal: bool = False,
    key_padding_mask: Any = None,
    dropout_p: float = 0.0,
    seed: int = 0,
    stream: int = 0,
) -> tuple[Tensor, AttentionCache]:
    """softmax(q k^T / sqrt(hs) + mask) v per batch and head, with dropout on the weights.

    q (B, H, Tq, hs), k and v (B, H, Tk, hs) -> out (B, H, Tq, hs). Tq != Tk is cross-attention
    (queries from the decoder, keys and values from the encoder's memory). A model in eval mode
    passes dropout_p = 0. The cache's weights are the attention pattern to look at.

    >>> out, _ = attention_forward([[[[1.0], [0.0]]]], [[[[0.0], [0.0]]]], [[[[1.0], [3.0]]]])
    >>> out
    [[[[2.0], [2.0]]]]
    """
    B, H, Tq, Tk, hs = check_qkv(q, k, v)
    _check_mask(key_padding_mask, B, Tk)
    dropout_p = check_dropout_p(dropout_p, "dropout_p")
    check_flag("causal", causal)
    scale = 1.0 / math.sqrt(hs)

    out, weights, dropped = [], [], []  # (B, H, Tq, hs), (B, H, Tq, Tk), (B, H, Tq, Tk)
    for b in range(B):
        # the keys each query may see: not padded, and (if causal) not in its future
        visible = [key_padding_mask is None or not key_padding_mask[b][j] for j in range(Tk)]
        out_b, weights_b, dropped_b = [], [], []
        for h in range(H):
            out_bh, weights_bh, dropped_bh = [], [], []
            for i in range(Tq):
                qi = q[b][h][i]
                allowed = [
                    visible[j] and (not causal or j <= i + Tk - Tq) for j in range(Tk)
                ]  # (Tk,)
                scores = [
                    sum(a * c for a, c in zip(qi, k[b][h][j])) * scale if allowed[j] else None
                    for j in range(Tk)
                ]  # (Tk,) scaled first, then masked
                w = _masked_softmax(scores)  # (Tk,)
                if dropout_p > 0.0:
                    index = ((b * H + h) * Tq + i) * Tk
                    keep = dropout_keep(Tk, dropout_p, seed, stream, start=index)
                    wd = [wj * kj for wj, kj in zip(w, keep)]
                    dropped_bh.append(wd)
                else:
                    wd = w
                out_bh.append(
                    [sum(wd[j] * v[b][h][j][d] for j in range(Tk)) for d in range(hs)]
                )  # (hs,)
                weights_bh.append(w)
            out_b.append(out_bh)
            weights_b.append(weights_bh)
            dropped_b.append(dropped_bh)
        out.append(out_b)
        weights.append(weights_b)
        dropped.append(dropped_b)
    dropped = dropped if dropout_p > 0.0 else None
    return out, AttentionCache(q, k, v, weights, dropped, scale, causal)


def _masked_softmax(scores: list[float | None]) -> list[float]:
    """Softmax over the entries that are not None (masked ones get 0); all None -> all 0."""
    live = [s for s in scores if s is not None]
    if not live:
        return [0.0] * len(scores)
    m = max(live)  # subtract the max so exp never overflows
    exps = [math.exp(s - m) if s is not None else 0.0 for s in scores]
    total = sum(exps)
    return [e / total for e in exps]


def attention_backward(dout: Tensor, cache: AttentionCache) -> tuple[Tensor, Tensor, Tensor]:
    """(dq, dk, dv) for `attention_forward`, by the chain rule backwards through each step:

    out = wd v             -> dv += wd^T dout,   dwd = dout v^T
    wd = w * keep          -> dw = dwd * keep
    w = softmax(s)         -> ds = w * (dw - sum(w * dw))   (masked w = 0, so ds = 0 there)
    s = scale q k^T        -> dq = scale ds k,   dk += scale ds^T q

    The cache holds wd, not keep: as w * dw = wd * dwd, the softmax line reads
    ds = wd * dwd - w * sum(wd * dwd) (without dropout wd = w and it is the line above).
    """
    q, k, v, weights, scale = cache.q, cache.k, cache.v, cache.weights, cache.scale
    B, H, Tq, hs = shape_of(q)
    Tk = len(k[0][0])
    check_shape("dout", dout, (B, H, Tq, hs))
    dq = [[[[0.0] * hs for _ in range(Tq)] for _ in range(H)] for _ in range(B)]
    dk = [[[[0.0] * hs for _ in range(Tk)] for _ in range(H)] for _ in range(B)]
    dv = [[[[0.0] * hs for _ in range(Tk)] for _ in range(H)] for _ in range(B)]
    for b in range(B):
        for h in range(H):
            kb, vb, dkb, dvb = k[b][h], v[b][h], dk[b][h], dv[b][h]
            for i in range(Tq):
                w = weights[b][h][i]  # (Tk,)
                g = dout[b][h][i]  # (hs,)
                if cache.dropped is None:
                    dw = [sum(g[d] * vb[j][d] for d in range(hs)) for j in range(Tk)]  # (Tk,)
                    total = sum(wj * dwj for wj, dwj in zip(w, dw))
                    ds = [wj * (dwj - total) for wj, dwj in zip(w, dw)]  # (Tk,)
                    wd = w
                else:
                    wd = cache.dropped[b][h][i]  # (Tk,)
                    dwd = [sum(g[d] * vb[j][d] for d in range(hs)) for j in range(Tk)]
                    total = sum(a * c for a, c in zip(wd, dwd))
                    ds = [a * c - wj * total for a, c, wj in zip(wd, dwd, w)]  # (Tk,)
                for j in range(Tk):
                    for d in range(hs):
                        dvb[j][d] += wd[j] * g[d]
                qi, dqi = q[b][h][i], dq[b][h][i]
                for j in range(Tk):
                    if ds[j] == 0.0:
                        continue
                    for d in range(hs):
                        dqi[d] += scale * ds[j] * kb[j][d]
                        dkb[j][d] += scale * ds[j] * qi[d]
    return dq, dk, dv


def multi_head_attention_forward(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    n_head: int,
    causal: bool = False,
    key_padding_mask: Any = None,
    dropout_p: float = 0.0,
    seed: int = 0,
    stream: int = 0,
) -> tuple[Tensor, AttentionCache]:
    """Multi-head attention on projected queries, keys and values: split, attend, merge.

    q (B, Tq, C), k and v (B, Tk, C) -> (B, Tq, C). The projections (GPT-2's fused c_attn, BERT's
    query/key/value, torch's in_proj) and the output projection belong to the model; pass
    q = k = v's source for self-attention. cache = the `attention_forward` cache.
    """
    check_numbers("q", q), check_numbers("k", k), check_numbers("v", v)
    for name, t in (("q", q), ("k", k), ("v", v)):
        if len(shape_of(t)) != 3:
            raise ValueError(f"{name} must have shape (B, T, C), got {shape_of(t)}")
    B, _, C = shape_of(q)
    if shape_of(k)[0] != B or shape_of(k)[2] != C or shape_of(v) != shape_of(k):
        raise ValueError(
            f"k and v must have shape ({B}, Tk, {C}) to match q {shape_of(q)}, "
            f"got k {shape_of(k)} and v {shape_of(v)}"
        )
    qh, kh, vh = split_heads(q, n_head), split_heads(k, n_head), split_heads(v, n_head)
    out, cache = attention_forward(
        qh, kh, vh, causal, key_padding_mask, dropout_p, seed, stream
    )  # (B, H, Tq, hs)
    return merge_heads(out), cache  # (B, Tq, C)


def multi_head_attention_backward(
    dout: Tensor, cache: AttentionCache
) -> tuple[Tensor, Tensor, Tensor]:
    """(dq, dk, dv), each (B, T, C): split dout into heads, attention backward, merge back."""
    n_head = len(cache.q[0])  # q is (B, H, Tq, hs)
    dq, dk, dv = attention_backward(split_heads(dout, n_head), cache)
    return merge_heads(dq), merge_heads(dk), merge_heads(dv)


# -- grouped-query attention -----------------------------------------------------------------------
class GroupedQueryAttentionCache(NamedTuple):
    """What `grouped_query_attention_backward` needs from its forward.

    attention: the `attention_forward` cache of the H query heads, whose k and v are the KV heads
    repeated (B, H, Tk, hs); n_kv_head: how many KV heads the gradients of k and v sum back into.
    """

    attention: AttentionCache
    n_kv_head: int


def check_kv_heads(n_head: Any, n_kv_head: Any) -> tuple[int, int]:
    """(n_head, n_kv_head) as ints >= 1 with n_kv_head dividing n_head (each KV head serves
    n_head / n_kv_head query heads), or a TypeError / ValueError naming the argument."""
    for name, value in (("n_head", n_head), ("n_kv_head", n_kv_head)):
        if isinstance(value, bool) or not hasattr(value, "__index__"):
            raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
        if value.__index__() < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    n_head, n_kv_head = n_head.__index__(), n_kv_head.__index__()
    if n_head % n_kv_head != 0:
        raise ValueError(
            f"n_kv_head must divide n_head (each KV head serves n_head / n_kv_head query "
            f"heads), got n_head={n_head} and n_kv_head={n_kv_head}"
        )
    return n_head, n_kv_head


def repeat_kv_heads(x: Tensor, n_rep: int) -> Tensor:
    """(B, Hkv, T, hs) -> (B, Hkv * n_rep, T, hs): query head h reads KV head h // n_rep (each KV
    head repeated for its group of n_rep consecutive query heads, as Hugging Face's `repeat_kv`)."""
    return [[[list(row) for row in head] for head in xb for _ in range(n_rep)] for xb in x]


def sum_kv_groups(dx: Tensor, n_rep: int) -> Tensor:
    """(B, H, T, hs) -> (B, H / n_rep, T, hs): the backward of `repeat_kv_heads`, each KV head's
    gradient the sum of its query heads' (in head order)."""
    out = []
    for db in dx:
        heads = []
        for g in range(len(db) // n_rep):
            group = db[g * n_rep : (g + 1) * n_rep]
            heads.append(
                [[sum(h[t][d] for h in group) for d in range(len(group[0][t]))]
                 for t in range(len(group[0]))]
            )  # fmt: skip
        out.append(heads)
    return out


def grouped_query_attention_forward(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    n_head: int,
    n_kv_head: int,
    causal: bool = False,
    key_padding_mask: Any = None,
    dropout_p: float = 0.0,
    seed: int = 0,
    stream: int = 0,
) -> tuple[Tensor, GroupedQueryAttentionCache]:
    """Grouped-query attention (Ainslie et al., 2023; LLaMA 2 and 3): H query heads share
    Hkv = n_kv_head key/value heads, n_head / n_kv_head query heads to each.

    q (B, Tq, H hs), k and v (B, Tk, Hkv hs) -> (B, Tq, H hs). Query head h attends with KV head
    h // (H / Hkv). Hkv = H is multi-head attention; Hkv = 1 is multi-query attention (one key
    and value for all heads). Fewer KV heads make k and v, and a generation's KV cache, H / Hkv
    times smaller. Computed as multi-head attention on the KV heads repeated for their query
    heads (`attention_forward`: the same masks, scale and dropout indices over (B, H, Tq, Tk)).
    """
    check_numbers("q", q), check_numbers("k", k), check_numbers("v", v)
    for name, t in (("q", q), ("k", k), ("v", v)):
        if len(shape_of(t)) != 3:
            raise ValueError(f"{name} must have shape (B, T, C), got {shape_of(t)}")
    n_head, n_kv_head = check_kv_heads(n_head, n_kv_head)
    B, _, C = shape_of(q)
    if C % n_head != 0:
        raise ValueError(f"q's C={C} channels must be divisible by n_head={n_head}")
    Ckv = C // n_head * n_kv_head
    if shape_of(k)[0] != B or shape_of(k)[2] != Ckv or shape_of(v) != shape_of(k):
        raise ValueError(
            f"k and v must have shape ({B}, Tk, {Ckv}) ({n_kv_head} KV heads of q's head size "
            f"{C // n_head}), got k {shape_of(k)} and v {shape_of(v)}"
        )
    n_rep = n_head // n_kv_head
    qh = split_heads(q, n_head)  # (B, H, Tq, hs)
    kh = repeat_kv_heads(split_heads(k, n_kv_head), n_rep)  # (B, H, Tk, hs)
    vh = repeat_kv_heads(split_heads(v, n_kv_head), n_rep)
    out, cache = attention_forward(qh, kh, vh, causal, key_padding_mask, dropout_p, seed, stream)
    return merge_heads(out), GroupedQueryAttentionCache(cache, n_kv_head)


def grouped_query_attention_backward(
    dout: Tensor, cache: GroupedQueryAttentionCache
) -> tuple[Tensor, Tensor, Tensor]:
    """(dq (B, Tq, H hs), dk and dv (B, Tk, Hkv hs)): attention backward over the H heads, then
    each KV head's dk and dv summed over the query heads that shared it."""
    B, n_head, Tq, hs = shape_of(cache.attention.q)
    check_numbers("dout", dout)
    if shape_of(dout) != (B, Tq, n_head * hs):
        raise ValueError(f"dout must have shape {(B, Tq, n_head * hs)}, got {shape_of(dout)}")
    check_shape("dout", dout, (B, Tq, n_head * hs))
    n_rep = n_head // cache.n_kv_head
    dq, dk, dv = attention_backward(split_heads(dout, n_head), cache.attention)
    return (
        merge_heads(dq),
        merge_heads(sum_kv_groups(dk, n_rep)),
        merge_heads(sum_kv_groups(dv, n_rep)),
    )

"""Scaled dot-product attention and its multi-head form on numpy arrays: `reference/attention.py`,
made fast.

How: the four kinds of product (q k^T and w v forward; dout v^T, wd^T dout, ds k and ds^T q
backward) are batched `np.matmul` calls over (B, H, T, hs), which numpy hands to BLAS gemm one
(T, hs) matrix at a time, strided views included (so heads are never copied out of (B, T, C)).
Everything between them — scale, causal and padding masks, max-subtracted softmax and dropout —
is ONE fused Numba kernel over the (B, H, Tq) score rows, and the softmax/dropout backward is
another (`fast/cpu/attention.py`, which also holds the forward and backward that run them). The
public functions here check their inputs once, then call the launchers of the inputs' device,
`fast.device.kernels("attention", ...)`: `fast/cpu/attention.py` or `fast/cuda/attention.py`,
with the same names and signatures (`forward`, `backward`, `heads`, `merged`; T5's attention in
`fast/t5_layers.py` calls their `biased_forward` / `biased_backward`, the same kernels with scale
1 and a bias added to the scores).

Same names, arguments, semantics and errors as the reference (see its module docstring for the
mask and dropout rules). Differences: arrays in (nested lists accepted), arrays out, in the
inputs' float dtype (float32 or float64); `split_heads` and `split_qkv` return views, not copies.
The cache is the reference's `AttentionCache` (q, k, v, weights, dropped weights or None, scale,
causal), filled with arrays by the launchers: backward needs only the weights w before dropout and
wd = w * keep after it (see the backward kernel), not the keep mask. The cache holds q, k and v as
the forward read them: a caller's arrays are copied first (see `fast/validate.py`), so writing into
them before the backward changes nothing; a fast model's own activations are held as they are
(views, not copies).

Dimension legend: B batch, T time (Tq queries, Tk keys/values), C channels, H heads,
hs head size = C / H.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np

from reference.attention import AttentionCache, GroupedQueryAttentionCache, check_kv_heads
from reference.checks import check_flag
from reference.layers import check_dropout_p
from reference.rng import check_u64 as _check_u64

from .device import concatenate, device_of, empty, floats, kernels

__all__ = [
    "AttentionCache",
    "split_heads",
    "merge_heads",
    "split_qkv",
    "concat_qkv",
    "attention_forward",
    "attention_backward",
    "multi_head_attention_forward",
    "multi_head_attention_backward",
    "GroupedQueryAttentionCache",
    "grouped_query_attention_forward",
    "grouped_query_attention_backward",
]


def _float_array(x, name: str, dtype=None, like=None):
    """x as a float array on the device of `like` (or of x), read now and not kept (so not
    copied); see `_float_arrays`."""
    return floats(x, name, dtype, device=device_of(x, like), kept=False)


def _float_arrays(named: dict, kept: bool = False) -> list[np.ndarray]:
    """The arrays as one float dtype: float32 if all are float32, else float64. On the GPU when
    any of them is a DeviceArray (then all must be: no silent copies). `kept`: the cache holds
    them, so a caller's arrays are copied."""
    device = device_of(*named.values())
    arrays = [floats(x, name, device=device, kept=kept) for name, x in named.items()]
    dtype = np.result_type(*(a.dtype for a in arrays))
    return [a if a.dtype == dtype else a.astype(dtype) for a in arrays]


def _check_n_head(n_head, C: int) -> int:
    if isinstance(n_head, bool) or not isinstance(n_head, Integral) or n_head < 1:
        raise ValueError(f"n_head must be a positive int, got {n_head!r}")
    if C % n_head != 0:
        raise ValueError(f"n_embd (C={C}) must be divisible by n_head={n_head}")
    return int(n_head)


def _heads(x: np.ndarray, n_head: int) -> np.ndarray:
    """(B, T, C) -> (B, H, T, hs) as a view (no copy): BLAS reads each head with stride C."""
    return kernels("attention", x).heads(x, n_head)


def _merged(x: np.ndarray) -> np.ndarray:
    """(B, H, T, hs) -> a fresh C-contiguous (B, T, C)."""
    return kernels("attention", x).merged(x)


def split_heads(x, n_head: int) -> np.ndarray:
    """(B, T, C) -> (B, H, T, hs): head h takes channels h*hs .. (h+1)*hs - 1 of each position.

    A view of `x` when `x` is already an array of a float dtype (copy it before writing into it).
    Its backward is `merge_heads` (and vice versa).
    """
    x = _float_array(x, "x")
    if x.ndim != 3:
        raise ValueError(f"x must have shape (B, T, C), got {x.shape}")
    return _heads(x, _check_n_head(n_head, x.shape[2]))


def merge_heads(x) -> np.ndarray:
    """(B, H, T, hs) -> (B, T, C): the heads' outputs side by side again, C = H * hs (a copy)."""
    x = _float_array(x, "x")
    if x.ndim != 4:
        raise ValueError(f"x must have shape (B, H, T, hs), got {x.shape}")
    return _merged(x)


def split_qkv(qkv) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(B, T, 3C) -> three (B, T, C) views: GPT-2's c_attn output in q, k, v order.

    Its backward is `concat_qkv`.
    """
    qkv = _float_array(qkv, "qkv")
    if qkv.ndim != 3 or qkv.shape[2] % 3 != 0:
        raise ValueError(f"qkv must have shape (B, T, 3C), got {qkv.shape}")
    C = qkv.shape[2] // 3
    return qkv[:, :, :C], qkv[:, :, C : 2 * C], qkv[:, :, 2 * C :]


def concat_qkv(q, k, v) -> np.ndarray:
    """Three (B, T, C) -> (B, T, 3C), the inverse of `split_qkv` (so also its backward)."""
    q, k, v = _float_arrays({"q": q, "k": k, "v": v})
    for name, t in (("k", k), ("v", v)):
        if t.shape != q.shape:
            raise ValueError(f"{name} must have shape {q.shape}, got {t.shape}")
    return concatenate([q, k, v], axis=-1)


def _padding(key_padding_mask, B: int, Tk: int) -> np.ndarray | None:
    """The mask as a C-contiguous bool (B, Tk) array, or an error as the reference raises."""
    if key_padding_mask is None:
        return None
    try:
        m = np.asarray(key_padding_mask)
    except ValueError:  # ragged nested lists
        raise ValueError(
            f"key_padding_mask must have shape ({B}, {Tk}), got a ragged list"
        ) from None
    if m.shape != (B, Tk):
        raise ValueError(f"key_padding_mask must have shape ({B}, {Tk}), got {m.shape}")
    if m.dtype == np.bool_:  # (a read-only array would be one more kernel signature: copy it)
        return np.require(m, requirements=["C_CONTIGUOUS", "WRITEABLE"])
    if m.dtype.kind not in "iuf":
        raise ValueError(f"key_padding_mask must hold bools or 0/1, got dtype {m.dtype}")
    bad = ~((m == 0) | (m == 1))  # NaN is bad too
    if bad.any():
        b, j = np.argwhere(bad)[0]
        raise ValueError(
            f"key_padding_mask must hold bools or 0/1, got {m[b, j].item()!r} at [{b}][{j}]"
        )
    return np.ascontiguousarray(m != 0)


def _check_seed_stream(seed, stream) -> None:
    _check_u64("seed", seed)
    _check_u64("stream", stream)


def attention_forward(
    q,
    k,
    v,
    causal: bool = False,
    key_padding_mask=None,
    dropout_p: float = 0.0,
    seed: int = 0,
    stream: int = 0,
) -> tuple[np.ndarray, AttentionCache]:
    """softmax(q k^T / sqrt(hs) + mask) v per batch and head, with dropout on the weights.

    q (B, H, Tq, hs), k and v (B, H, Tk, hs) -> out (B, H, Tq, hs); cache for the backward.

    >>> out, _ = attention_forward([[[[1.0], [0.0]]]], [[[[0.0], [0.0]]]], [[[[1.0], [3.0]]]])
    >>> out.tolist()
    [[[[2.0], [2.0]]]]
    """
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
    padding = _padding(key_padding_mask, B, k.shape[2])
    dropout_p = check_dropout_p(dropout_p, "dropout_p")
    if dropout_p > 0.0:
        _check_seed_stream(seed, stream)
    check_flag("causal", causal)
    out = empty(q.shape, q.dtype, device_of(q))  # (B, H, Tq, hs)
    return kernels("attention", q).forward(q, k, v, causal, padding, dropout_p, seed, stream, out)


def attention_backward(dout, cache: AttentionCache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dq, dk, dv) for `attention_forward`, by the chain rule backwards through each step:

    out = wd v             -> dv = wd^T dout,   dwd = dout v^T
    wd = w * keep, w = softmax(s)  -> ds (one fused kernel)
    s = scale q k^T        -> dq = scale ds k,   dk = scale ds^T q
    """
    q, k = cache.q, cache.k
    dout = _float_array(dout, "dout", q.dtype, like=q)
    if dout.shape != q.shape:
        raise ValueError(f"dout must have shape {q.shape}, got {dout.shape}")
    on = device_of(q)
    dq = empty(q.shape, q.dtype, on)
    dk, dv = empty(k.shape, k.dtype, on), empty(k.shape, k.dtype, on)
    return kernels("attention", dout).backward(dout, cache, dq, dk, dv)


def multi_head_attention_forward(
    q,
    k,
    v,
    n_head: int,
    causal: bool = False,
    key_padding_mask=None,
    dropout_p: float = 0.0,
    seed: int = 0,
    stream: int = 0,
) -> tuple[np.ndarray, AttentionCache]:
    """Multi-head attention on projected queries, keys and values: split, attend, merge.

    q (B, Tq, C), k and v (B, Tk, C) -> (B, Tq, C). The heads are strided views, never copied;
    cache = the `attention_forward` cache.
    """
    q, k, v = _float_arrays({"q": q, "k": k, "v": v}, kept=True)
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.ndim != 3:
            raise ValueError(f"{name} must have shape (B, T, C), got {t.shape}")
    B, Tq, C = q.shape
    if k.shape[0] != B or k.shape[2] != C or v.shape != k.shape:
        raise ValueError(
            f"k and v must have shape ({B}, Tk, {C}) to match q {q.shape}, "
            f"got k {k.shape} and v {v.shape}"
        )
    n_head = _check_n_head(n_head, C)
    if C == 0:
        raise ValueError(f"q must have C >= 1 channels, got shape {q.shape}")
    padding = _padding(key_padding_mask, B, k.shape[1])
    dropout_p = check_dropout_p(dropout_p, "dropout_p")
    if dropout_p > 0.0:
        _check_seed_stream(seed, stream)
    check_flag("causal", causal)
    qh, kh, vh = _heads(q, n_head), _heads(k, n_head), _heads(v, n_head)  # (B, H, T, hs) views
    out = empty(q.shape, q.dtype, device_of(q))  # (B, Tq, C), written head by head, a view
    _, cache = kernels("attention", q).forward(
        qh, kh, vh, causal, padding, dropout_p, seed, stream, _heads(out, n_head)
    )
    return out, cache


def multi_head_attention_backward(
    dout, cache: AttentionCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dq, dk, dv), each (B, T, C): split dout into heads, attention backward, merge back."""
    q = cache.q
    B, H, Tq, hs = q.shape
    dout = _float_array(dout, "dout", q.dtype, like=q)
    if dout.shape != (B, Tq, H * hs):
        raise ValueError(f"dout must have shape {(B, Tq, H * hs)}, got {dout.shape}")
    Tk = cache.k.shape[2]
    on = device_of(q)
    dq = empty((B, Tq, H * hs), q.dtype, on)
    dk = empty((B, Tk, H * hs), q.dtype, on)
    dv = empty((B, Tk, H * hs), q.dtype, on)
    kernels("attention", dout).backward(
        _heads(dout, H), cache, _heads(dq, H), _heads(dk, H), _heads(dv, H)
    )
    return dq, dk, dv


def grouped_query_attention_forward(
    q,
    k,
    v,
    n_head: int,
    n_kv_head: int,
    causal: bool = False,
    key_padding_mask=None,
    dropout_p: float = 0.0,
    seed: int = 0,
    stream: int = 0,
) -> tuple[np.ndarray, GroupedQueryAttentionCache]:
    """Grouped-query attention: H query heads share n_kv_head key/value heads (see the
    reference). q (B, Tq, H hs), k and v (B, Tk, Hkv hs) -> (B, Tq, H hs).

    The KV heads are copied once for their query heads ((B, H, Tk, hs), a view when
    n_kv_head = n_head), then the multi-head kernels run unchanged."""
    q, k, v = _float_arrays({"q": q, "k": k, "v": v}, kept=True)
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.ndim != 3:
            raise ValueError(f"{name} must have shape (B, T, C), got {t.shape}")
    n_head, n_kv_head = check_kv_heads(n_head, n_kv_head)
    B, Tq, C = q.shape
    if C % n_head != 0:
        raise ValueError(f"q's C={C} channels must be divisible by n_head={n_head}")
    Ckv = C // n_head * n_kv_head
    if k.shape[0] != B or k.shape[2] != Ckv or v.shape != k.shape:
        raise ValueError(
            f"k and v must have shape ({B}, Tk, {Ckv}) ({n_kv_head} KV heads of q's head size "
            f"{C // n_head}), got k {k.shape} and v {v.shape}"
        )
    if C == 0:
        raise ValueError(f"q must have a head size hs >= 1, got shape {(B, n_head, Tq, 0)}")
    padding = _padding(key_padding_mask, B, k.shape[1])
    dropout_p = check_dropout_p(dropout_p, "dropout_p")
    if dropout_p > 0.0:
        _check_seed_stream(seed, stream)
    check_flag("causal", causal)
    launch = kernels("attention", q)
    n_rep = n_head // n_kv_head
    kh = launch.repeat_kv(_heads(k, n_kv_head), n_rep)  # (B, H, Tk, hs)
    vh = launch.repeat_kv(_heads(v, n_kv_head), n_rep)
    out = empty(q.shape, q.dtype, device_of(q))  # (B, Tq, C), written head by head
    _, cache = launch.forward(
        _heads(q, n_head), kh, vh, causal, padding, dropout_p, seed, stream, _heads(out, n_head)
    )
    return out, GroupedQueryAttentionCache(cache, n_kv_head)


def grouped_query_attention_backward(
    dout, cache: GroupedQueryAttentionCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dq (B, Tq, H hs), dk and dv (B, Tk, Hkv hs)): attention backward over the H heads, then
    each KV head's gradient summed over the query heads that shared it."""
    att = cache.attention
    q = att.q
    B, H, Tq, hs = q.shape
    dout = _float_array(dout, "dout", q.dtype, like=q)
    if dout.shape != (B, Tq, H * hs):
        raise ValueError(f"dout must have shape {(B, Tq, H * hs)}, got {dout.shape}")
    Hkv, Tk = cache.n_kv_head, att.k.shape[2]
    on = device_of(q)
    dq = empty((B, Tq, H * hs), q.dtype, on)
    dk_heads, dv_heads = empty((B, H, Tk, hs), q.dtype, on), empty((B, H, Tk, hs), q.dtype, on)
    launch = kernels("attention", dout)
    launch.backward(_heads(dout, H), att, _heads(dq, H), dk_heads, dv_heads)
    dk, dv = empty((B, Tk, Hkv * hs), q.dtype, on), empty((B, Tk, Hkv * hs), q.dtype, on)
    launch.sum_kv_groups(dk_heads, H // Hkv, _heads(dk, Hkv))
    launch.sum_kv_groups(dv_heads, H // Hkv, _heads(dv, Hkv))
    return dq, dk, dv

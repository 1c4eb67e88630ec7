"""Scaled dot-product attention on the GPU: the kernels and the GPU half of `fast/attention.py`.

The public functions (`multi_head_attention_forward` and the rest: their checks, caches and
errors) are `fast/attention.py`'s, one definition for both devices; on DeviceArrays they call
`forward` / `backward` and the head views here. A numpy operand beside DeviceArrays is refused
(copy it over with `to_device`); `key_padding_mask` comes from the host, is checked there
(`fast.attention._padding`), then copied over as uint8.

How: the six products (q k^T and w v forward; dout v^T, ds k, ds^T q and wd^T dout backward)
are `gemm` calls on strided (B, H, T, hs) head views, so heads are never copied out of
(B, T, C). Between them run two kernels of this file, over the (B, H, Tq, Tk) scores seen as
R = B*H*Tq contiguous rows of Tk, row r = (b*H + h)*Tq + i:

- `masked_softmax_dropout_kernel`: scale, causal and padding masks, max-subtracted softmax, and
  dropout, in place on the scores (the weights), plus the dropped weights when dropout is on;
- `masked_softmax_dropout_backward_kernel`: the gradient back through dropout and softmax.

One block per row: a softmax needs the row's max and sum before it can write anything, and the
threads of one block can combine their partial results in shared memory and wait for each other
(`cuda.syncthreads`), which threads of different blocks cannot. Thread t handles keys t,
t + ROW_THREADS, ...; the partials are combined by `reduce.block_max` / `reduce.block_sum`, fixed
trees, so the order of additions is fixed by the code, not by timing: no atomics, same bits every
run. (They are not the CPU kernel's bits, which sums keys in order: results agree to rounding.)

Masks as on the CPU: query i sees key j iff j < i + Tk - Tq + 1 (when causal) and key j is not
padded; a row that sees no key is all zeros, no NaN. Dropout keeps (r, j) iff Philox word
r*Tk + j of (seed, stream) is >= ceil(p * 2**32), the same integer test as the CPU kernel with
the same `philox_word` (compiled for the GPU here), so the keep pattern is bit-identical.

The softmax kernels accumulate in float64 for both dtypes; the products accumulate in the inputs'
dtype, as `gemm` does.

The cache is `reference.attention.AttentionCache` (q, k, v, weights, dropped weights or None,
scale, causal) of DeviceArrays, q, k and v held as given (views): do not write into them between
the forward and the backward.

Dimension legend: B batch, T time (Tq queries, Tk keys/values), C channels, H heads,
hs head size = C / H.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, float64, types

from reference.attention import AttentionCache

from ..cpu.rng import MASK32, SHIFT, philox_word
from .array import DeviceArray, empty, to_device
from .gemm import gemm
from .launch import ROW_THREADS
from .reduce import block_max, block_sum


# -- the kernels: one block of ROW_THREADS threads per score row ----------------------------------
@cuda.jit
def masked_softmax_dropout_kernel(
    att, Tq, Tk, H, scale, causal, padded, use_padding, threshold, keep_scale,
    s_lo, s_hi, t_lo, t_hi, dropped,
):  # fmt: skip
    """In place: att[r] = softmax(scale * att[r]) over the keys row r may see (the rest get 0);
    and, when threshold > 0, dropped[r, j] = att[r, j] * keep_scale if Philox word r*Tk + j of
    the seed (s_lo, s_hi) and stream (t_lo, t_hi) is >= threshold, else 0.

    att and dropped are contiguous (R, Tk) buffers; `padded` (B, Tk) flat uint8 is read only when
    use_padding; causal and use_padding are 0/1.
    """
    shared = cuda.shared.array(ROW_THREADS, float64)  # for the block reductions
    t = cuda.threadIdx.x
    r = cuda.blockIdx.x
    bh = r // Tq
    i = r - bh * Tq
    pad = (bh // H) * Tk  # row b of `padded`
    base = r * Tk  # the flat index of (r, 0)
    lim = Tk  # keys j < lim pass the causal mask
    if causal:
        lim = min(Tk, max(0, i + Tk - Tq + 1))
    # 1. the max over visible scores, subtracted so exp never overflows
    m = -math.inf
    seen = 0
    for j in range(t, lim, ROW_THREADS):
        if use_padding == 0 or padded[pad + j] == 0:
            m = max(m, att[base + j] * scale)
            seen = 1
    m = block_max(shared, m)
    if block_max(shared, float64(seen)) == 0.0:  # every key masked: weights 0, output 0, no NaN
        lim = 0
    # 2. exp, masked keys exactly 0, and each thread's partial sum
    part = 0.0
    for j in range(t, lim, ROW_THREADS):
        e = 0.0
        if use_padding == 0 or padded[pad + j] == 0:
            e = math.exp(att[base + j] * scale - m)
        att[base + j] = e
        part += e
    for j in range(lim + t, Tk, ROW_THREADS):
        att[base + j] = 0.0
    # 3. normalize (each thread rescales only the keys it wrote: no sync needed before)
    total = block_sum(shared, part)
    if lim > 0:
        inv = 1.0 / total
        for j in range(t, lim, ROW_THREADS):
            att[base + j] = att[base + j] * inv
    # 4. dropout on the weights, keep decisions from the flat index (r, j) -> r*Tk + j
    if threshold > 0:  # a dropped weight is the weight times 0, as in the reference (NaN stays)
        zero = keep_scale - keep_scale
        for j in range(t, lim, ROW_THREADS):
            word = philox_word(s_lo, s_hi, t_lo, t_hi, np.uint64(base + j))
            dropped[base + j] = att[base + j] * (keep_scale if word >= threshold else zero)
        for j in range(lim + t, Tk, ROW_THREADS):
            dropped[base + j] = 0.0


@cuda.jit
def masked_softmax_dropout_backward_kernel(dw, weights, dropped, Tq, Tk, scale, causal, has_drop):
    """In place: dw[r] (d loss / d dropped weights, dout v^T) becomes scale * ds[r], the gradient
    w.r.t. q k^T, back through dropout and softmax (as `fast/cpu/attention.py`):

        without dropout: ds = w * (dw - sum(w * dw))
        with dropout:    ds = wd * dw - w * sum(wd * dw), wd = w * keep the dropped weights.

    All three are contiguous (R, Tk) buffers (dropped is read only when has_drop); dw is read only
    at j < lim(i), and zeroed from there.
    """
    buf = cuda.shared.array(ROW_THREADS, float64)
    t = cuda.threadIdx.x
    r = cuda.blockIdx.x
    i = r % Tq
    base = r * Tk
    lim = Tk
    if causal:
        lim = min(Tk, max(0, i + Tk - Tq + 1))
    part = 0.0
    for j in range(t, lim, ROW_THREADS):
        if has_drop:
            part += dropped[base + j] * dw[base + j]
        else:
            part += weights[base + j] * dw[base + j]
    total = block_sum(buf, part)  # (each thread rewrites only the dw it read itself)
    for j in range(t, lim, ROW_THREADS):
        g = dw[base + j]
        if has_drop:
            dw[base + j] = scale * (dropped[base + j] * g - weights[base + j] * total)
        else:
            dw[base + j] = scale * (weights[base + j] * (g - total))
    for j in range(lim + t, Tk, ROW_THREADS):
        dw[base + j] = 0.0


def _signatures():
    """(kernel, signature) for both float dtypes: what `numba.cuda.compile_ptx` checks."""
    i64, u64, f64 = types.int64, types.uint64, types.float64
    pairs = []
    for f in (types.float32, types.float64):
        buf = f[::1]
        fwd = (buf, i64, i64, i64, f64, i64, types.uint8[::1], i64, u64, f64) + (u64,) * 4 + (buf,)
        bwd = (buf, buf, buf, i64, i64, f64, i64, i64)
        pairs.append((masked_softmax_dropout_kernel, types.void(*fwd)))
        pairs.append((masked_softmax_dropout_backward_kernel, types.void(*bwd)))
    return pairs


PTX_KERNELS = _signatures()


# -- the launchers `fast/attention.py` calls on DeviceArrays (fast/cpu/attention.py's names) ---
def heads(x: DeviceArray, n_head: int) -> DeviceArray:
    """(B, T, C) -> (B, H, T, hs), a view of any strided x (head h starts h*hs channels in)."""
    B, T, C = x.shape
    s0, s1, s2 = x.strides
    hs = C // n_head
    return DeviceArray(x.buffer, (B, n_head, T, hs), (s0, hs * s2, s1, s2), x.offset)


def merged(x: DeviceArray) -> DeviceArray:
    """(B, H, T, hs) -> a fresh contiguous (B, T, C)."""
    B, H, T, hs = x.shape
    out = empty((B, T, H * hs), x.dtype)
    if out.size:
        heads(out, H)[...] = x
    return out


def repeat_kv(x: DeviceArray, n_rep: int) -> DeviceArray:
    """(B, Hkv, T, hs), any strides -> a fresh (B, Hkv * n_rep, T, hs): query head h reads KV
    head h // n_rep (x itself when n_rep is 1). One strided copy per group member."""
    if n_rep == 1:
        return x
    B, Hkv, T, hs = x.shape
    out = empty((B, Hkv * n_rep, T, hs), x.dtype)
    if out.size:
        s0, s1, s2, s3 = out.strides
        for g in range(n_rep):  # heads g, n_rep + g, 2 n_rep + g, ...: KV heads 0, 1, 2, ...
            DeviceArray(out.buffer, x.shape, (s0, n_rep * s1, s2, s3), out.offset + g * s1)[...] = x
    return out


def sum_kv_groups(dx: DeviceArray, n_rep: int, out: DeviceArray) -> DeviceArray:
    """out (B, H / n_rep, T, hs), any strides = the sums of dx (B, H, T, hs) over each group of
    n_rep consecutive heads (the backward of `repeat_kv`), added in head order."""
    if out.size:
        s0, s1, s2, s3 = dx.strides
        for g in range(n_rep):
            member = DeviceArray(dx.buffer, out.shape, (s0, n_rep * s1, s2, s3), dx.offset + g * s1)
            if g == 0:
                out[...] = member
            else:
                out += member
    return out


def _product(a: DeviceArray, b: DeviceArray, out: DeviceArray) -> None:
    """out = a @ b (batched), zeros when the inner size is 0 (gemm would scale garbage by 0)."""
    if a.shape[-1] == 0:
        out[...] = 0.0
    else:
        gemm(a, b, out)


# -- forward and backward on checked arrays (called by fast/attention.py) -------------------------
def forward(q, k, v, causal, padding, dropout_p, seed, stream, out):
    """q (B, H, Tq, hs), k and v (B, H, Tk, hs), any strides; writes `out` (B, H, Tq, hs) (any
    strides, e.g. a view of (B, Tq, C)); returns (out, cache) as the CPU's `_forward` does."""
    scale = 1.0 / math.sqrt(q.shape[3])
    return _attend(q, k, v, None, scale, causal, padding, dropout_p, seed, stream, out)


def biased_forward(q, k, v, bias, causal, padding, dropout_p, seed, stream, out):
    """T5's attention: as `forward`, with scores q k^T + bias (bias (H, Tq, Tk) or None, one
    broadcast add) and no scaling; the cache's scale is 1.0."""
    return _attend(q, k, v, bias, 1.0, causal, padding, dropout_p, seed, stream, out)


def _attend(q, k, v, bias, scale, causal, padding, dropout_p, seed, stream, out):
    """softmax(scale * (q k^T + bias) + masks) v with dropout, for both launchers above."""
    B, H, Tq, hs = q.shape
    Tk = k.shape[2]
    causal = bool(causal)
    weights = empty((B, H, Tq, Tk), q.dtype)  # scores, then the softmax in place
    dropped = empty(weights.shape, q.dtype) if dropout_p > 0.0 else weights
    if weights.size:
        gemm(q, k.swapaxes(-1, -2), weights)
        if bias is not None:
            weights += bias.reshape((1, H, Tq, Tk))
        mask = _no_padding() if padding is None else to_device(padding.astype(np.uint8))
        # (seed and stream are checked, and used, only when dropout is on)
        seed, stream = (seed, stream) if dropout_p > 0.0 else (0, 0)
        seed, stream = np.uint64(seed), np.uint64(stream)
        masked_softmax_dropout_kernel[B * H * Tq, ROW_THREADS](
            weights.buffer, Tq, Tk, H, scale, int(causal), mask.buffer, int(padding is not None),
            np.uint64(math.ceil(dropout_p * 2.0**32)),  # keep iff word / 2**32 >= p
            1.0 / (1.0 - dropout_p) if dropout_p < 1.0 else 0.0,
            seed & MASK32, seed >> SHIFT, stream & MASK32, stream >> SHIFT, dropped.buffer,
        )  # fmt: skip
    _product(dropped, v, out)
    dropped = dropped if dropout_p > 0.0 else None
    return out, AttentionCache(q, k, v, weights, dropped, scale, causal)


def backward(dout, cache, dq, dk, dv):
    """dout (B, H, Tq, hs), any strides -> writes dq, dk, dv (shaped as the cached q, k, v)."""
    return _attend_backward(dout, cache, dq, dk, dv)[:3]


def biased_backward(dout, cache, dq, dk, dv):
    """`biased_forward`'s backward: (dq, dk, dv, dbias), dbias (H, Tq, Tk) the score gradient
    summed over the batch (`DeviceArray.sum`: fixed-order column sums)."""
    dq, dk, dv, ds = _attend_backward(dout, cache, dq, dk, dv)
    B, H, Tq, Tk = ds.shape
    return dq, dk, dv, ds.reshape((B, H * Tq * Tk)).sum(axis=0).reshape((H, Tq, Tk))


def _attend_backward(dout, cache, dq, dk, dv):
    """(dq, dk, dv, ds) for `_attend`; ds (B, H, Tq, Tk) = d loss / d (scaled scores) * scale."""
    q, k, v, weights, dropped = cache.q, cache.k, cache.v, cache.weights, cache.dropped
    scale, causal = cache.scale, cache.causal
    B, H, Tq, Tk = weights.shape
    wd = weights if dropped is None else dropped
    ds = empty(weights.shape, weights.dtype)  # d loss / d dropped weights, then scale * ds
    if ds.size:
        gemm(dout, v.swapaxes(-1, -2), ds)
        masked_softmax_dropout_backward_kernel[B * H * Tq, ROW_THREADS](
            ds.buffer, weights.buffer, wd.buffer, Tq, Tk, scale, int(causal), int(wd is not weights)
        )
    _product(ds, k, dq)
    _product(wd.swapaxes(-1, -2), dout, dv)
    _product(ds.swapaxes(-1, -2), q, dk)
    return dq, dk, dv, ds


_dummy_mask = []


def _no_padding():
    """A one-byte stand-in mask for calls without padding, uploaded once per process."""
    if not _dummy_mask:
        _dummy_mask.append(to_device(np.zeros(1, np.uint8)))
    return _dummy_mask[0]

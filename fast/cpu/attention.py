"""Attention on the CPU: the two kernels BLAS cannot do (the masked softmax with dropout, and
its backward), and the launchers `fast/attention.py` calls on numpy arrays (`forward`,
`backward`, `heads`, `merged`, and T5's unscaled `biased_forward` / `biased_backward` that
`fast/t5_layers.py` calls: the names and signatures of `fast/cuda/attention.py`'s), which
run them between numpy's BLAS matmuls.

Dimension legend: B batch, H heads, Tq queries, Tk keys. Both kernels see the (B, H, Tq, Tk)
scores as R = B*H*Tq rows of Tk, row r = (b*H + h)*Tq + i. Each row belongs to one thread and is
summed serially, so results do not depend on the thread count. The matmuls around them
(q k^T, w v and the backward's four products) go to BLAS through numpy.

Query i sees key j iff j < lim(i) = i + Tk - Tq + 1 (when causal) and key j is not padded. The
kernels never read scores or gradients at j >= lim(i) (the caller may leave them unwritten, as
the causal path does above the diagonal) and write zeros there.

Speed: arithmetic is in the arrays' dtype (`scale` comes in as that dtype), and in float32 the
exponential is a polynomial that LLVM vectorizes (`exp_nonpositive`, in elementwise.py), 3x
faster than calling expf per element; each pass over a row is its own loop, so the one with exp
has no reduction in it and vectorizes without fastmath. float64 calls math.exp, like the
reference.
"""

import math

import numpy as np
from numba import njit, prange

from reference.attention import AttentionCache

from . import PER_ELEMENT_CALL, STREAMING, parallel_kernel
from .elementwise import exp_nonpositive
from .rng import philox_word

MASK32 = np.uint64(0xFFFFFFFF)


# -- the kernels -----------------------------------------------------------------------------------
@njit(cache=True, inline="always")
def _visible_limit(i, Tq, Tk, causal):
    """How many leading keys query i may see before padding: i + Tk - Tq + 1, clipped."""
    if causal:
        return min(Tk, max(0, i + Tk - Tq + 1))
    return Tk


@parallel_kernel(PER_ELEMENT_CALL)
def masked_softmax_dropout(
    att, Tq, H, scale, causal, padded, use_padding, threshold, keep_scale, seed, stream, dropped
):
    """In place: att[r] = softmax(scale * att[r]) over the keys row r may see (the rest get 0);
    and, when threshold > 0, dropped[r, j] = att[r, j] * keep_scale if Philox word r*Tk + j of
    (seed, stream) is >= threshold, else 0.

    That is the reference's dropout rule on the flat (B, H, Tq, Tk) index, uniform = word / 2**32
    >= p, in integers: word >= threshold = ceil(p * 2**32) (exact, and no uint64 -> float
    conversion, which x86 does slowly).

    att (R, Tk) holds q k^T on entry (only j < lim(i) is read). A row that sees no key is all
    zeros. `padded` (B, Tk) is read only when use_padding.
    """
    R, Tk = att.shape
    s_lo, s_hi = seed & MASK32, seed >> np.uint64(32)
    t_lo, t_hi = stream & MASK32, stream >> np.uint64(32)
    for r in prange(R):
        bh = r // Tq
        i = r - bh * Tq
        b = bh // H
        lim = _visible_limit(i, Tq, Tk, causal)
        # 1. the max over visible scores, subtracted so exp never overflows
        m = scale - scale  # 0 in att's dtype until the first visible score
        seen = False
        if use_padding:
            for j in range(lim):
                if not padded[b, j]:
                    s = att[r, j] * scale
                    if not seen or s > m:
                        m = s
                    seen = True
        elif lim > 0:
            seen = True
            m = att[r, 0] * scale
            for j in range(1, lim):
                m = max(m, att[r, j] * scale)
        if not seen:  # every key masked: weights 0, output 0, no NaN
            lim = 0
        # 2. exp (no reduction in this loop, so it vectorizes), masked keys get exactly 0
        if use_padding:
            for j in range(lim):
                e = exp_nonpositive(att[r, j] * scale - m)
                att[r, j] = 0.0 if padded[b, j] else e
        else:
            for j in range(lim):
                att[r, j] = exp_nonpositive(att[r, j] * scale - m)
        for j in range(lim, Tk):
            att[r, j] = 0.0
        # 3. normalize (the sum in float64, in key order)
        total = 0.0
        for j in range(lim):
            total += att[r, j]
        if lim > 0:
            inv = 1.0 / total
            for j in range(lim):
                att[r, j] = att[r, j] * inv
        # 4. dropout on the weights
        if threshold > 0:
            _dropout_row(att, dropped, r, lim, threshold, keep_scale, s_lo, s_hi, t_lo, t_hi)


@njit(cache=True)
def _dropout_row(att, dropped, r, lim, threshold, keep_scale, s_lo, s_hi, t_lo, t_hi):
    """dropped[r, j] = att[r, j] * keep_scale where word r*Tk + j >= threshold (j < lim), else
    att[r, j] * 0: a multiplication, as the reference's, so a NaN weight stays NaN when dropped."""
    Tk = att.shape[1]
    zero = keep_scale - keep_scale
    for j in range(lim, Tk):
        dropped[r, j] = 0.0
    start = r * Tk  # the flat index of (r, 0)
    for blk in range(start >> 2, (start + lim + 3) >> 2):
        w0, w1, w2, w3 = _philox_block(s_lo, s_hi, t_lo, t_hi, np.uint64(blk))
        j = blk * 4 - start
        if j >= 0 and j + 4 <= lim:  # a block inside the row: four stores, no checks
            dropped[r, j] = att[r, j] * (keep_scale if w0 >= threshold else zero)
            dropped[r, j + 1] = att[r, j + 1] * (keep_scale if w1 >= threshold else zero)
            dropped[r, j + 2] = att[r, j + 2] * (keep_scale if w2 >= threshold else zero)
            dropped[r, j + 3] = att[r, j + 3] * (keep_scale if w3 >= threshold else zero)
        else:  # the row's first or last block, which it shares with a neighbour
            _drop_one(att, dropped, r, j, lim, threshold, keep_scale, w0)
            _drop_one(att, dropped, r, j + 1, lim, threshold, keep_scale, w1)
            _drop_one(att, dropped, r, j + 2, lim, threshold, keep_scale, w2)
            _drop_one(att, dropped, r, j + 3, lim, threshold, keep_scale, w3)


@njit(cache=True)
def _philox_block(s_lo, s_hi, t_lo, t_hi, block):
    """The 4 words of Philox block `block` (words 4*block .. 4*block + 3).

    `philox_word` computes a whole block and returns one word; inlined four times here, LLVM sees
    the same block and computes it once (4x fewer rounds). Its own function, compiled once for
    every caller and dtype: the optimization that merges the four copies is slow (seconds).
    """
    base = block << np.uint64(2)
    return (
        philox_word(s_lo, s_hi, t_lo, t_hi, base),
        philox_word(s_lo, s_hi, t_lo, t_hi, base | np.uint64(1)),
        philox_word(s_lo, s_hi, t_lo, t_hi, base | np.uint64(2)),
        philox_word(s_lo, s_hi, t_lo, t_hi, base | np.uint64(3)),
    )


@njit(cache=True, inline="always")
def _drop_one(att, dropped, r, j, lim, threshold, keep_scale, word):
    if j >= 0 and j < lim:
        dropped[r, j] = att[r, j] * (keep_scale if word >= threshold else keep_scale - keep_scale)


@parallel_kernel(STREAMING)
def masked_softmax_dropout_backward(dw, weights, dropped, Tq, scale, causal, has_dropout):
    """In place: dw[r] (the gradient w.r.t. the dropped weights, dout v^T) becomes
    scale * ds[r], the gradient w.r.t. q k^T, back through dropout and softmax:

        without dropout: ds = w * (dw - sum(w * dw))
        with dropout:    the softmax sees keep * dw, so ds = w * (keep * dw - sum(w * keep * dw))
                         = wd * dw - w * sum(wd * dw), with wd = w * keep the dropped weights.

    Masked weights are 0, so their ds is 0 and no gradient reaches masked scores; dw is read only
    at j < lim(i).
    """
    R, Tk = dw.shape
    for r in prange(R):
        lim = _visible_limit(r % Tq, Tq, Tk, causal)
        total = 0.0
        if has_dropout:
            for j in range(lim):
                total += dropped[r, j] * dw[r, j]
            for j in range(lim):
                dw[r, j] = scale * (dropped[r, j] * dw[r, j] - weights[r, j] * total)
        else:
            for j in range(lim):
                total += weights[r, j] * dw[r, j]
            for j in range(lim):
                dw[r, j] = scale * (weights[r, j] * (dw[r, j] - total))
        for j in range(lim, Tk):
            dw[r, j] = 0.0


# -- the launchers `fast/attention.py` calls on numpy arrays (fast/cuda/attention.py's names) -----
_NO_PADDING = np.zeros((1, 1), dtype=np.bool_)  # a stand-in when there is no key_padding_mask


def heads(x: np.ndarray, n_head: int) -> np.ndarray:
    """(B, T, C) -> (B, H, T, hs) as a view (no copy): BLAS reads each head with stride C."""
    B, T, C = x.shape
    return x.reshape(B, T, n_head, C // n_head).transpose(0, 2, 1, 3)


def merged(x: np.ndarray) -> np.ndarray:
    """(B, H, T, hs) -> a fresh C-contiguous (B, T, C)."""
    B, H, T, hs = x.shape
    return np.ascontiguousarray(x.transpose(0, 2, 1, 3)).reshape(B, T, H * hs)


def repeat_kv(x: np.ndarray, n_rep: int) -> np.ndarray:
    """(B, Hkv, T, hs), any strides -> (B, Hkv * n_rep, T, hs): query head h reads KV head
    h // n_rep (a copy; x itself when n_rep is 1)."""
    return x if n_rep == 1 else np.repeat(x, n_rep, axis=1)


def sum_kv_groups(dx: np.ndarray, n_rep: int, out: np.ndarray) -> np.ndarray:
    """out (B, H / n_rep, T, hs), any strides = the sums of dx (B, H, T, hs) over each group of
    n_rep consecutive heads (the backward of `repeat_kv`), added in head order."""
    B, H, T, hs = dx.shape
    groups = dx.reshape(B, H // n_rep, n_rep, T, hs)
    out[...] = groups[:, :, 0]
    for g in range(1, n_rep):
        out += groups[:, :, g]
    return out


# Causal attention skips the future: q k^T, w v and the backward's products run block-row by
# block-row of BLOCK queries (and block-column by block-column of keys for dk, dv), each reaching
# only the keys its last query sees. At T = 256 that is 10 of 16 blocks, about a third less
# matmul time (measured); below 2 * BLOCK it is one plain batched matmul.
BLOCK = 64


def _query_blocks(Tq: int, Tk: int, causal: bool) -> list[tuple[int, int, int]]:
    """(i0, i1, kend): queries i0 .. i1-1 see no key at or past kend."""
    if not causal:
        return [(0, Tq, Tk)]
    return [
        (i0, min(i0 + BLOCK, Tq), min(Tk, max(0, min(i0 + BLOCK, Tq) + Tk - Tq)))
        for i0 in range(0, Tq, BLOCK)
    ]


def _key_blocks(Tq: int, Tk: int, causal: bool) -> list[tuple[int, int, int]]:
    """(j0, j1, qstart): keys j0 .. j1-1 are seen by no query before qstart."""
    if not causal:
        return [(0, Tk, 0)]
    return [(j0, min(j0 + BLOCK, Tk), min(Tq, max(0, j0 + Tq - Tk))) for j0 in range(0, Tk, BLOCK)]


def forward(q, k, v, causal, padding, dropout_p, seed, stream, out):
    """(out, cache) on validated arrays: q (B, H, Tq, hs), k and v (B, H, Tk, hs), any
    strides; writes `out` (B, H, Tq, hs) (any strides BLAS takes, e.g. a view of (B, Tq, C))."""
    scale = 1.0 / math.sqrt(q.shape[3])
    return _attend(q, k, v, None, scale, causal, padding, dropout_p, seed, stream, out)


def biased_forward(q, k, v, bias, causal, padding, dropout_p, seed, stream, out):
    """T5's attention: as `forward`, with scores q k^T + bias (bias (H, Tq, Tk) or None) and no
    scaling; the cache's scale is 1.0."""
    return _attend(q, k, v, bias, 1.0, causal, padding, dropout_p, seed, stream, out)


def _attend(q, k, v, bias, scale, causal, padding, dropout_p, seed, stream, out):
    """softmax(scale * (q k^T + bias) + masks) v with dropout, for `forward` and
    `biased_forward` (bias None: none added)."""
    B, H, Tq, hs = q.shape
    Tk = k.shape[2]
    dtype = q.dtype.type
    causal = bool(causal)
    blocks = _query_blocks(Tq, Tk, causal)
    weights = np.empty((B, H, Tq, Tk), dtype=q.dtype)  # scores, then the softmax in place
    for i0, i1, kend in blocks:
        np.matmul(q[:, :, i0:i1], k[:, :, :kend].swapaxes(-1, -2), out=weights[:, :, i0:i1, :kend])
        if bias is not None:  # only where the kernel reads: the rest may be left unwritten
            weights[:, :, i0:i1, :kend] += bias[:, i0:i1, :kend]
    dropped = np.empty_like(weights) if dropout_p > 0.0 else weights
    masked_softmax_dropout(
        weights.reshape(B * H * Tq, Tk),
        Tq,
        H,
        dtype(scale),
        causal,
        _NO_PADDING if padding is None else padding,
        padding is not None,
        np.uint64(math.ceil(dropout_p * 2.0**32)),  # keep iff word / 2**32 >= p
        1.0 / (1.0 - dropout_p) if dropout_p < 1.0 else 0.0,
        np.uint64(seed if dropout_p > 0.0 else 0),  # checked only when dropout is on
        np.uint64(stream if dropout_p > 0.0 else 0),
        dropped.reshape(B * H * Tq, Tk),
    )  # weights: the softmax, 0 where masked; dropped: weights * keep multipliers
    for i0, i1, kend in blocks:
        np.matmul(dropped[:, :, i0:i1, :kend], v[:, :, :kend], out=out[:, :, i0:i1])
    dropped = dropped if dropout_p > 0.0 else None
    return out, AttentionCache(q, k, v, weights, dropped, scale, causal)


def backward(dout, cache, dq, dk, dv):
    """dout (B, H, Tq, hs), any strides -> writes dq, dk, dv (shaped as the cached q, k, v)."""
    return _attend_backward(dout, cache, dq, dk, dv)[:3]


def biased_backward(dout, cache, dq, dk, dv):
    """`biased_forward`'s backward: (dq, dk, dv, dbias), dbias (H, Tq, Tk) the score gradient
    summed over the batch (in batch order)."""
    dq, dk, dv, ds = _attend_backward(dout, cache, dq, dk, dv)
    dbias = ds[0].copy()
    for b in range(1, ds.shape[0]):
        dbias += ds[b]
    return dq, dk, dv, dbias


def _attend_backward(dout, cache, dq, dk, dv):
    """(dq, dk, dv, ds) for `_attend`; ds (B, H, Tq, Tk) = d loss / d (scaled scores) * scale."""
    q, k, v, weights, dropped = cache.q, cache.k, cache.v, cache.weights, cache.dropped
    scale, causal = cache.scale, cache.causal
    B, H, Tq, Tk = weights.shape
    wd = weights if dropped is None else dropped
    ds = np.empty_like(weights)  # (B, H, Tq, Tk): d loss / d dropped weights, then scale * ds
    for i0, i1, kend in _query_blocks(Tq, Tk, causal):
        np.matmul(dout[:, :, i0:i1], v[:, :, :kend].swapaxes(-1, -2), out=ds[:, :, i0:i1, :kend])
    masked_softmax_dropout_backward(
        ds.reshape(B * H * Tq, Tk),
        weights.reshape(B * H * Tq, Tk),
        wd.reshape(B * H * Tq, Tk),
        Tq,
        q.dtype.type(scale),
        causal,
        dropped is not None,
    )
    for i0, i1, kend in _query_blocks(Tq, Tk, causal):
        np.matmul(ds[:, :, i0:i1, :kend], k[:, :, :kend], out=dq[:, :, i0:i1])
    for j0, j1, qstart in _key_blocks(Tq, Tk, causal):
        np.matmul(
            wd[:, :, qstart:, j0:j1].swapaxes(-1, -2), dout[:, :, qstart:], out=dv[:, :, j0:j1]
        )
        np.matmul(ds[:, :, qstart:, j0:j1].swapaxes(-1, -2), q[:, :, qstart:], out=dk[:, :, j0:j1])
    return dq, dk, dv, ds

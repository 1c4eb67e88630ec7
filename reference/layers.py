"""Transformer layers as forward/backward pairs: the chain rule, one op at a time.

Every op comes as a pair with one calling convention (after llm.c's `op_forward` / `op_backward`):

    out, cache = op_forward(inputs..., parameters..., options...)
    grads = op_backward(dout, cache)

`cache` holds what the forward saw that the backward needs: a small `NamedTuple` per op
(`LinearCache`, `LayerNormCache`, ...), defined next to the op, whose fields are the contract
between the two halves. The backward reads them by name; callers treat the cache as opaque, and
`fast` fills the same classes with arrays. `grads` are dL/d(each tensor input), in the forward's
argument order. Ops never
mutate their arguments and always return fresh lists. Backward functions never accumulate; the
`Module` classes at the end of this file add gradients into each `Parameter.grad`, so a weight used
twice collects both contributions.

Dimension legend: B batch, T time, C channels (n_embd), H heads, V vocabulary, hs head size.
Ops on rows (linear, layer norm) take any (..., C) tensor, in practice (B, T, C); elementwise ops
take any shape.

Randomness (docs/design.md, "Random numbers") comes from the Philox generator in `rng.py`:
- dropout: the element at row-major flat index i is kept iff `uniform(seed, stream, i) >= p`;
  a kept element is multiplied by scale = 1 / (1 - p) (computed once). A model forms
  `stream = dropout_stream(step, site)` = step * 2**16 + site: `step` is its training-step counter,
  `site` numbers its Dropout modules 1, 2, ... in `model.modules()` order (`set_dropout_rng`).
  Site 0 is left for other per-step draws (MLM masking, say).
- initialisation: `normal_tensor(shape, std, seed, stream)` by Box-Muller; element k uses uniforms
  2k and 2k + 1 of (seed, stream). Weights move between backends via `state_dict`, so init only
  has to be seeded and reproducible, not shared.
"""

from __future__ import annotations

import math
import operator
from typing import Any, NamedTuple

from .activations import get_activation, silu, silu_derivative
from .checks import (
    check_count,
    check_eps,
    check_flag,
    check_ints,
    check_number,
    check_numbers,
    check_numel,
    check_shape_arg,
)
from .losses import softmax_cross_entropy
from .module import Module, Parameter
from .nested import check_shape, flatten, numel, shape_of, unflatten
from .rng import check_seed_stream, uniforms

Tensor = Any  # a nested list of floats
STREAM_SITE_BITS = 16  # dropout_stream(step, site) = step * 2**16 + site
WEIGHT_LAYOUTS = ("out_in", "in_out")  # torch nn.Linear, GPT-2 Conv1D


# -- helpers ---------------------------------------------------------------------------------------
def _rows(name: str, x: Tensor, C: int) -> tuple[list[list[float]], tuple[int, ...]]:
    """The length-C rows of a (..., C) tensor (the same list objects) and its leading shape."""
    check_numbers(name, x)
    shape = shape_of(x)
    if not shape or shape[-1] != C:
        raise ValueError(f"{name} must have shape (..., {C}), got {shape}")
    check_shape(name, x, shape)
    rows = [x] if len(shape) == 1 else x
    for _ in range(len(shape) - 2):
        rows = [row for block in rows for row in block]
    return rows, shape[:-1]


def _dot(a: list[float], b: list[float]) -> float:
    """sum of a_i * b_i, left to right (map + sum keeps the loop in C: 1.6x faster than a
    generator, the same numbers)."""
    return sum(map(operator.mul, a, b))


def _transpose(m: list[list[float]]) -> list[list[float]]:
    return [list(col) for col in zip(*m)]


def check_dropout_p(p: float, name: str = "p") -> float:
    """`p` as a float, or a TypeError / ValueError unless it is a number in [0, 1]."""
    if isinstance(p, bool) or not isinstance(p, (int, float)):
        raise TypeError(f"dropout {name} must be a float in [0, 1], got {type(p).__name__}")
    if not 0.0 <= p <= 1.0:  # also rejects NaN
        raise ValueError(f"dropout {name} must be in [0, 1], got {p}")
    return float(p)


def _add_into(acc: Tensor, delta: Tensor) -> None:
    """acc += delta, in place, for nested lists of the same shape."""
    if acc and isinstance(acc[0], list):
        for a, d in zip(acc, delta):
            _add_into(a, d)
    else:
        for i, d in enumerate(delta):
            acc[i] += d


# -- initialisation --------------------------------------------------------------------------------
def normal_tensor(shape: tuple[int, ...], std: float, seed: int, stream: int) -> Tensor:
    """A tensor of N(0, std^2) draws, by Box-Muller on Philox uniforms (see the module docstring).

    z_k = sqrt(-2 ln(1 - u_2k)) cos(2 pi u_2k+1); 1 - u lies in (0, 1], so the log is finite.
    """
    shape = check_shape_arg("shape", shape)
    std = check_number("std", std)
    if std < 0.0:
        raise ValueError(f"std must be >= 0, got {std}")
    n = numel(shape)
    u = uniforms(seed, stream, 2 * n)
    z = [
        std * math.sqrt(-2.0 * math.log(1.0 - u[2 * k])) * math.cos(2.0 * math.pi * u[2 * k + 1])
        for k in range(n)
    ]
    return unflatten(z, tuple(shape))


# -- embeddings and positions ----------------------------------------------------------------------
class EmbeddingCache(NamedTuple):
    """What `embedding_backward` needs from `embedding_forward` (and the position embedding).

    ids: the ids read, flattened (a copy): which row each output row's gradient goes back to.
    shape: idx's shape, to check dout against. weight_shape: (num, C), the gradient's shape.
    """

    ids: Any
    shape: tuple
    weight_shape: tuple


def embedding_forward(weight: Tensor, idx: Tensor) -> tuple[Tensor, EmbeddingCache]:
    """Look up rows of `weight` (num, C) for an int tensor `idx` (e.g. (B, T)): idx.shape + (C,)."""
    check_numbers("weight", weight)
    if len(shape_of(weight)) != 2:
        raise ValueError(f"weight must have shape (num_embeddings, C), got {shape_of(weight)}")
    num, C = shape_of(weight)
    check_shape("weight", weight, (num, C))
    ids = flatten(idx)
    for pos, i in enumerate(ids):
        if isinstance(i, bool) or not isinstance(i, int):
            raise TypeError(f"idx must hold ints, got {type(i).__name__} at flat position {pos}")
        if not 0 <= i < num:
            raise ValueError(
                f"idx value {i} out of range for {num} embeddings (flat position {pos})"
            )
    lead = shape_of(idx)
    check_shape("idx", idx, lead)
    out = unflatten([list(weight[i]) for i in ids], lead)  # (B, T, C)
    return out, EmbeddingCache(ids, lead, (num, C))


def embedding_backward(dout: Tensor, cache: EmbeddingCache) -> Tensor:
    """dL/dweight: each output row's gradient scatter-added into the row it was read from."""
    num, C = cache.weight_shape
    drows, dlead = _rows("dout", dout, C)  # (B*T, C)
    if dlead != cache.shape:
        raise ValueError(f"dout must have shape {cache.shape + (C,)}, got {shape_of(dout)}")
    dweight = [[0.0] * C for _ in range(num)]  # (num, C)
    for i, drow in zip(cache.ids, drows):
        row = dweight[i]
        for c in range(C):
            row[c] += drow[c]  # a token seen twice collects both gradients
    return dweight


def check_positions(B: int, T: int, start: int) -> tuple[int, int, int]:
    """B, T and start as ints >= 0, with B * T at most MAX_NUMEL (see `checks.py`)."""
    B, T, start = check_count("B", B), check_count("T", T), check_count("start", start)
    check_numel("positions (B, T)", (B, T))
    return B, T, start


def position_ids(B: int, T: int, start: int = 0) -> list[list[int]]:
    """Positions start .. start+T-1 for each of B sequences: position_ids(2, 3) -> [[0,1,2]]*2."""
    B, T, start = check_positions(B, T, start)
    return [list(range(start, start + T)) for _ in range(B)]


def position_embedding_forward(
    weight: Tensor, B: int, T: int, start: int = 0
) -> tuple[Tensor, EmbeddingCache]:
    """Learned positions (GPT-2 wpe, BERT position_embeddings): (B, T, C), out[b][t] = w[start + t].

    The backward is `position_embedding_backward`; the cache is `embedding_forward`'s.
    """
    B, T, start = check_positions(B, T, start)
    check_numbers("weight", weight)
    if len(shape_of(weight)) != 2:
        raise ValueError(f"weight must have shape (n_positions, C), got {shape_of(weight)}")
    n_positions = len(weight)
    if start + T > n_positions:
        raise ValueError(
            f"positions {start}..{start + T - 1} need {start + T} rows but the position table "
            f"weight has n_positions={n_positions} (sequence length T={T})"
        )
    return embedding_forward(weight, position_ids(B, T, start))


def position_embedding_backward(dout: Tensor, cache: EmbeddingCache) -> Tensor:
    """dL/dweight: the (B, T, C) gradient summed over the batch into rows start .. start+T-1."""
    return embedding_backward(dout, cache)


def sinusoidal_position_encoding(B: int, T: int, C: int, start: int = 0) -> Tensor:
    """The 2017 fixed positions, (B, T, C): PE[pos, 2i] = sin(pos / 10000^(2i/C)), PE[pos, 2i+1] =
    cos(pos / 10000^(2i/C)). No parameters, so no backward (add it with `residual_forward`).

    >>> sinusoidal_position_encoding(1, 2, 2)
    [[[0.0, 1.0], [0.8414709848078965, 0.5403023058681398]]]
    """
    B, T, start = check_positions(B, T, start)
    C = check_count("C", C, low=1)
    check_numel("the encoding (B, T, C)", (B, T, C))
    table = []  # (T, C)
    for pos in range(start, start + T):
        row = []
        for j in range(C):
            angle = pos / 10000.0 ** (2 * (j // 2) / C)
            row.append(math.sin(angle) if j % 2 == 0 else math.cos(angle))
        table.append(row)
    return [[list(row) for row in table] for _ in range(B)]  # (B, T, C)


# -- linear ----------------------------------------------------------------------------------------
class LinearCache(NamedTuple):
    """What `linear_backward` needs from `linear_forward`.

    x: the input as rows (N, C_in), for dW = dout^T x. lead: x's leading shape (dx gets it back).
    weight: W as (C_out, C_in) whatever the layout, for dx = dout W. has_bias: whether to return
    dbias. weight_layout: the layout dweight is returned in.
    """

    x: Any
    lead: tuple
    weight: Any
    has_bias: bool
    weight_layout: str


def linear_forward(
    x: Tensor, weight: Tensor, bias: Tensor | None = None, weight_layout: str = "out_in"
) -> tuple[Tensor, LinearCache]:
    """y = x W^T + b on the last axis: (..., C_in) -> (..., C_out).

    `weight_layout` "out_in" is torch's nn.Linear (C_out, C_in); "in_out" is GPT-2's Conv1D
    (C_in, C_out). The math is written once, for (C_out, C_in): an "in_out" weight is transposed on
    the way in and its gradient on the way out.
    """
    if weight_layout not in WEIGHT_LAYOUTS:
        raise ValueError(f"weight_layout must be one of {WEIGHT_LAYOUTS}, got {weight_layout!r}")
    check_numbers("x", x), check_numbers("weight", weight)
    check_numbers("bias", [] if bias is None else bias)
    wshape = shape_of(weight)
    if len(wshape) != 2:
        raise ValueError(f"weight must be a matrix, got shape {wshape}")
    check_shape("weight", weight, wshape)
    W = weight if weight_layout == "out_in" else _transpose(weight)  # (C_out, C_in)
    C_out, C_in = len(W), len(W[0])
    if bias is not None:
        check_shape("bias", bias, (C_out,))
    xrows, lead = _rows("x", x, C_in)  # (N, C_in), N = B*T
    b = bias if bias is not None else [0.0] * C_out
    yrows = [[_dot(xr, W[o]) + b[o] for o in range(C_out)] for xr in xrows]  # (N, C_out)
    return unflatten(yrows, lead), LinearCache(xrows, lead, W, bias is not None, weight_layout)


def linear_backward(dout: Tensor, cache: LinearCache) -> tuple[Tensor, Tensor, Tensor | None]:
    """(dx, dweight, dbias): dx = dout W, dW = dout^T x, db = sum of dout over rows.

    dweight has the layout the weight came in; dbias is None when there was no bias.
    """
    xrows, lead, W = cache.x, cache.lead, cache.weight
    C_out, C_in = len(W), len(W[0])
    drows, dlead = _rows("dout", dout, C_out)  # (N, C_out)
    if dlead != lead:
        raise ValueError(f"dout must have shape {lead + (C_out,)}, got {shape_of(dout)}")
    WT = _transpose(W)  # (C_in, C_out)
    dx = [[_dot(dr, WT[i]) for i in range(C_in)] for dr in drows]  # (N, C_in)
    doutT, xT = _transpose(drows), _transpose(xrows)  # (C_out, N), (C_in, N)
    dW = [[_dot(doutT[o], xT[i]) for i in range(C_in)] for o in range(C_out)]  # (C_out, C_in)
    dweight = dW if cache.weight_layout == "out_in" else _transpose(dW)
    dbias = [sum(col) for col in doutT] if cache.has_bias else None  # (C_out,)
    return unflatten(dx, lead), dweight, dbias


# -- layer norm ------------------------------------------------------------------------------------
class LayerNormCache(NamedTuple):
    """What `layer_norm_backward` needs from `layer_norm_forward`.

    x: the input as rows (N, C) and lead: its leading shape; weight (C,), for dL/dxhat = dout *
    weight; mean and rstd: per row (N,), so the backward rebuilds xhat = (x - mean) rstd without
    recomputing the statistics.
    """

    x: Any
    lead: tuple
    weight: Any
    mean: Any
    rstd: Any


def layer_norm_forward(
    x: Tensor, weight: Tensor, bias: Tensor, eps: float = 1e-5
) -> tuple[Tensor, LayerNormCache]:
    """Normalise each row of C numbers to mean 0, variance 1, then scale and shift: (..., C).

    Two passes: the mean first, then the mean squared deviation from it (the one-pass E[x^2] -
    E[x]^2 loses every digit when |mean| >> std). GPT-2 uses eps 1e-5, BERT 1e-12.

    eps must be a finite number > 0: with it a constant row normalises to 0 instead of 0/0.

    >>> out, _ = layer_norm_forward([1.0, 2.0, 3.0], [1.0] * 3, [0.0] * 3, eps=1e-12)
    >>> [round(v, 4) for v in out]
    [-1.2247, 0.0, 1.2247]
    """
    check_numbers("weight", weight), check_numbers("bias", bias)
    if len(shape_of(weight)) != 1:
        raise ValueError(f"weight must have shape (C,), got {shape_of(weight)}")
    C = len(weight)
    check_shape("weight", weight, (C,))
    if C == 0:
        raise ValueError("weight must have shape (C,) with C >= 1 channels, got shape (0,)")
    check_shape("bias", bias, (C,))
    eps = check_eps(eps)
    xrows, lead = _rows("x", x, C)  # (N, C)
    out, means, rstds = [], [], []
    for xr in xrows:
        mean = sum(xr) / C
        var = sum((v - mean) * (v - mean) for v in xr) / C  # biased variance, as torch
        rstd = 1.0 / math.sqrt(var + eps)
        out.append([(v - mean) * rstd * w + b for v, w, b in zip(xr, weight, bias)])
        means.append(mean)
        rstds.append(rstd)
    return unflatten(out, lead), LayerNormCache(xrows, lead, weight, means, rstds)


def layer_norm_backward(dout: Tensor, cache: LayerNormCache) -> tuple[Tensor, Tensor, Tensor]:
    """(dx, dweight, dbias). With xhat = (x - mean) rstd and g = dout * weight:
    dx = rstd (g - mean(g) - xhat mean(g xhat)), dweight = sum dout xhat, dbias = sum dout.
    """
    lead, weight = cache.lead, cache.weight
    C = len(weight)
    drows, dlead = _rows("dout", dout, C)
    if dlead != lead:
        raise ValueError(f"dout must have shape {lead + (C,)}, got {shape_of(dout)}")
    dx, dweight, dbias = [], [0.0] * C, [0.0] * C
    for xr, dr, mean, rstd in zip(cache.x, drows, cache.mean, cache.rstd):
        xhat = [(v - mean) * rstd for v in xr]
        g = [d * w for d, w in zip(dr, weight)]  # dL/dxhat
        g_mean = sum(g) / C
        gx_mean = _dot(g, xhat) / C
        dx.append([rstd * (gc - g_mean - xh * gx_mean) for gc, xh in zip(g, xhat)])
        for c in range(C):
            dweight[c] += dr[c] * xhat[c]
            dbias[c] += dr[c]
    return unflatten(dx, lead), dweight, dbias


# -- RMS norm --------------------------------------------------------------------------------------
class RMSNormCache(NamedTuple):
    """What `rms_norm_backward` needs from `rms_norm_forward`.

    x: the input as rows (N, C) and lead: its leading shape; weight (C,), for dL/dxhat = dout *
    weight; rstd: 1 / sqrt(mean(x^2) + eps) per row (N,), so xhat = x rstd is rebuilt without
    recomputing the statistic.
    """

    x: Any
    lead: tuple
    weight: Any
    rstd: Any


def rms_norm_forward(x: Tensor, weight: Tensor, eps: float = 1e-6) -> tuple[Tensor, RMSNormCache]:
    """Root-mean-square norm (Zhang and Sennrich, 2019; LLaMA's): each row of C numbers divided by
    its RMS, then scaled by a learned gain: y = x / sqrt(mean(x^2) + eps) * weight, (..., C).

    Layer norm without the mean: no centring and no bias, one statistic per row. eps must be a
    finite number > 0 (LLaMA uses 1e-6 or 1e-5); a zero row then normalises to 0.

    >>> out, _ = rms_norm_forward([3.0, 4.0], [1.0, 2.0], eps=1e-12)
    >>> [round(v, 6) for v in out]
    [0.848528, 2.262742]
    """
    check_numbers("weight", weight)
    if len(shape_of(weight)) != 1:
        raise ValueError(f"weight must have shape (C,), got {shape_of(weight)}")
    C = len(weight)
    check_shape("weight", weight, (C,))
    if C == 0:
        raise ValueError("weight must have shape (C,) with C >= 1 channels, got shape (0,)")
    eps = check_eps(eps)
    xrows, lead = _rows("x", x, C)  # (N, C)
    out, rstds = [], []
    for xr in xrows:
        rstd = 1.0 / math.sqrt(_dot(xr, xr) / C + eps)
        out.append([v * rstd * w for v, w in zip(xr, weight)])
        rstds.append(rstd)
    return unflatten(out, lead), RMSNormCache(xrows, lead, weight, rstds)


def rms_norm_backward(dout: Tensor, cache: RMSNormCache) -> tuple[Tensor, Tensor]:
    """(dx, dweight). With xhat = x rstd and g = dout * weight:
    dx = rstd (g - xhat mean(g xhat)), dweight = sum over rows of dout xhat.

    (rstd depends on every x of the row: d rstd / dx_j = -rstd^3 x_j / C, which gives the
    second term; layer norm's extra -mean(g) comes from the mean RMS norm does not subtract.)
    """
    lead, weight = cache.lead, cache.weight
    C = len(weight)
    drows, dlead = _rows("dout", dout, C)
    if dlead != lead:
        raise ValueError(f"dout must have shape {lead + (C,)}, got {shape_of(dout)}")
    dx, dweight = [], [0.0] * C
    for xr, dr, rstd in zip(cache.x, drows, cache.rstd):
        xhat = [v * rstd for v in xr]
        g = [d * w for d, w in zip(dr, weight)]  # dL/dxhat
        gx_mean = _dot(g, xhat) / C
        dx.append([rstd * (gc - xh * gx_mean) for gc, xh in zip(g, xhat)])
        for c in range(C):
            dweight[c] += dr[c] * xhat[c]
    return unflatten(dx, lead), dweight


# -- rotary position embeddings --------------------------------------------------------------------
class RotaryCache(NamedTuple):
    """What `rope_backward` needs from `rope_forward`.

    cos, sin: (T, hs/2) the rotation of each position and frequency (the backward rotates back);
    n_head: how the channels split into heads; shape: x's shape (B, T, C).
    """

    cos: Any
    sin: Any
    n_head: int
    shape: tuple


def check_rope_args(C: int, n_head: Any, start: Any, theta: Any) -> tuple[int, int, float]:
    """(n_head, start, theta) checked for rotary embeddings on C channels: n_head an int >= 1
    dividing C into heads of an even size (pairs of channels rotate), start an int >= 0, theta a
    finite number > 0."""
    n_head = check_count("n_head", n_head, low=1)
    if C % n_head != 0:
        raise ValueError(f"x's C={C} channels must be divisible by n_head={n_head}")
    hs = C // n_head
    if hs % 2 != 0:
        raise ValueError(
            f"rotary embeddings need an even head size (channels rotate in pairs), got head "
            f"size {hs} = C {C} / n_head {n_head}"
        )
    start = check_count("start", start)
    theta = check_number("theta", theta, positive=True)
    return n_head, start, theta


def rotary_tables(T: int, hs: int, start: int = 0, theta: float = 10000.0) -> tuple[list, list]:
    """(cos, sin), each (T, hs/2): angle[t][i] = (start + t) * theta^(-2i/hs) for pair i.

    Low pairs turn fast, high pairs slowly, so every relative offset gives a distinct rotation.
    The frequencies are Hugging Face's: inv_freq[i] = 1 / theta ** (2i / hs).

    >>> cos, sin = rotary_tables(2, 2)
    >>> cos[1][0] == math.cos(1.0) and sin[0][0] == 0.0
    True
    """
    half = hs // 2
    inv_freq = [1.0 / theta ** (2 * i / hs) for i in range(half)]
    angles = [[(start + t) * f for f in inv_freq] for t in range(T)]
    return [[math.cos(a) for a in row] for row in angles], [
        [math.sin(a) for a in row] for row in angles
    ]


def rope_forward(
    x: Tensor, n_head: int, start: int = 0, theta: float = 10000.0
) -> tuple[Tensor, RotaryCache]:
    """Rotary position embeddings (Su et al., 2021; LLaMA's), on q or k (B, T, C), per head.

    Each head's hs channels are hs/2 pairs, pair i being channels i and i + hs/2 (the
    "half-split" layout of Hugging Face's `rotate_half`), and position start + t turns pair i by
    the angle (start + t) theta^(-2i/hs):

        out[i]        = x[i] cos - x[i + hs/2] sin
        out[i + hs/2] = x[i + hs/2] cos + x[i] sin

    A rotation keeps lengths, and q_t . k_s then depends on the positions only through t - s:
    relative positions, with no table to learn and no limit but the angles.
    """
    check_numbers("x", x)
    shape = shape_of(x)
    if len(shape) != 3:
        raise ValueError(f"x must have shape (B, T, C), got {shape}")
    check_shape("x", x, shape)
    B, T, C = shape
    n_head, start, theta = check_rope_args(C, n_head, start, theta)
    hs = C // n_head
    half = hs // 2
    cos, sin = rotary_tables(T, hs, start, theta)
    out = []
    for seq in x:
        out_b = []
        for t, row in enumerate(seq):
            c, s = cos[t], sin[t]
            new = [0.0] * C
            for h in range(n_head):
                o = h * hs
                for i in range(half):
                    x1, x2 = row[o + i], row[o + half + i]
                    new[o + i] = x1 * c[i] - x2 * s[i]
                    new[o + half + i] = x2 * c[i] + x1 * s[i]
            out_b.append(new)
        out.append(out_b)
    return out, RotaryCache(cos, sin, n_head, shape)


def rope_backward(dout: Tensor, cache: RotaryCache) -> Tensor:
    """dx: the gradient rotated back (a rotation's transpose is its inverse), pair by pair:

    dx[i] = d[i] cos + d[i + hs/2] sin,   dx[i + hs/2] = d[i + hs/2] cos - d[i] sin.
    """
    check_numbers("dout", dout)
    if shape_of(dout) != cache.shape:
        raise ValueError(f"dout must have shape {cache.shape}, got {shape_of(dout)}")
    check_shape("dout", dout, cache.shape)
    _, _, C = cache.shape
    hs = C // cache.n_head
    half = hs // 2
    dx = []
    for seq in dout:
        dx_b = []
        for t, row in enumerate(seq):
            c, s = cache.cos[t], cache.sin[t]
            new = [0.0] * C
            for h in range(cache.n_head):
                o = h * hs
                for i in range(half):
                    d1, d2 = row[o + i], row[o + half + i]
                    new[o + i] = d1 * c[i] + d2 * s[i]
                    new[o + half + i] = d2 * c[i] - d1 * s[i]
            dx_b.append(new)
        dx.append(dx_b)
    return dx


# -- elementwise activations -----------------------------------------------------------------------
class ActivationCache(NamedTuple):
    """What `activation_backward` needs from `activation_forward`.

    x: the input (flattened here; `fast` keeps its array), for f'(x). shape: the input's shape.
    activation: the name, which picks f'. saved: what the forward computed that the backward may
    reuse (`fast` keeps GELU's tanh); None here, where the backward recomputes it.
    """

    x: Any
    shape: tuple
    activation: str
    saved: Any = None


def activation_forward(x: Tensor, activation: str = "gelu") -> tuple[Tensor, ActivationCache]:
    """f applied to every element (any shape). "gelu": tanh approximation (GPT-2); "gelu_erf":
    exact (BERT); "relu" (2017); any name in `activations.ACTIVATIONS`.
    """
    f, _ = get_activation(activation)
    check_numbers("x", x)
    flat, shape = flatten(x), shape_of(x)
    check_shape("x", x, shape)
    return unflatten([f(v) for v in flat], shape), ActivationCache(flat, shape, activation)


def activation_backward(dout: Tensor, cache: ActivationCache) -> Tensor:
    """dx = dout * f'(x), elementwise."""
    _, df = get_activation(cache.activation)
    check_numbers("dout", dout)
    shape = cache.shape
    if shape_of(dout) != shape:
        raise ValueError(f"dout must have shape {shape}, got {shape_of(dout)}")
    return unflatten([d * df(v) for d, v in zip(flatten(dout), cache.x)], shape)


# -- SwiGLU ----------------------------------------------------------------------------------------
class SwiGLUCache(NamedTuple):
    """What `swiglu_backward` needs from `swiglu_forward`: gate and up flattened, for the two
    products' gradients; shape: their shape."""

    gate: Any
    up: Any
    shape: tuple


def swiglu_forward(gate: Tensor, up: Tensor) -> tuple[Tensor, SwiGLUCache]:
    """SwiGLU's gated product (Shazeer, 2020; LLaMA's feed-forward): silu(gate) * up, elementwise.

    The feed-forward is down(silu(gate(x)) * up(x)): the gate decides, per hidden unit, how much
    of the up-projection passes. silu(g) = g sigma(g) (`activations.silu`).
    """
    check_numbers("gate", gate), check_numbers("up", up)
    shape = shape_of(gate)
    check_shape("gate", gate, shape)
    if shape_of(up) != shape:
        raise ValueError(f"up must have the shape of gate {shape}, got {shape_of(up)}")
    check_shape("up", up, shape)
    g, u = flatten(gate), flatten(up)
    out = [silu(a) * b for a, b in zip(g, u)]
    return unflatten(out, shape), SwiGLUCache(g, u, shape)


def swiglu_backward(dout: Tensor, cache: SwiGLUCache) -> tuple[Tensor, Tensor]:
    """(dgate, dup): dgate = dout * up * silu'(gate), dup = dout * silu(gate)."""
    check_numbers("dout", dout)
    shape = cache.shape
    if shape_of(dout) != shape:
        raise ValueError(f"dout must have shape {shape}, got {shape_of(dout)}")
    check_shape("dout", dout, shape)
    d = flatten(dout)
    dgate = [dd * b * silu_derivative(a) for dd, a, b in zip(d, cache.gate, cache.up)]
    dup = [dd * silu(a) for dd, a in zip(d, cache.gate)]
    return unflatten(dgate, shape), unflatten(dup, shape)


# -- dropout ---------------------------------------------------------------------------------------
def dropout_stream(step: int, site: int) -> int:
    """The Philox stream of dropout site `site` at training step `step`: step * 2**16 + site."""
    for name, v, top in (("step", step, 1 << (64 - STREAM_SITE_BITS)), ("site", site, 1 << 16)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{name} must be an int, got {type(v).__name__}")
        if not 0 <= v < top:
            raise ValueError(f"{name} must be in [0, {top}), got {v}")
    return (step << STREAM_SITE_BITS) | site


def dropout_keep(n: int, p: float, seed: int, stream: int, start: int = 0) -> list[float]:
    """The multipliers of flat elements start .. start+n-1: 1/(1-p) where kept, else 0.0.

    Element i is kept iff uniform(seed, stream, i) >= p (so p = 1 drops everything).
    """
    p = check_dropout_p(p)
    scale = 1.0 / (1.0 - p) if p < 1.0 else 0.0
    return [scale if u >= p else 0.0 for u in uniforms(seed, stream, n, start)]


class DropoutCache(NamedTuple):
    """What `dropout_backward` needs from `dropout_forward`.

    keep: the multipliers (1/(1-p) or 0) of the flat elements, which the gradient is multiplied
    by; None when p = 0 (the identity). shape: the input's shape.
    """

    keep: Any
    shape: tuple


def dropout_forward(
    x: Tensor, p: float, seed: int = 0, stream: int = 0
) -> tuple[Tensor, DropoutCache]:
    """Inverted dropout (any shape): zero each element with probability p, scale the rest by
    1/(1-p) so the expected value is unchanged. p = 0 is the identity (a model in eval mode passes
    p = 0).
    """
    p = check_dropout_p(p)
    check_seed_stream(seed, stream)
    check_numbers("x", x)
    shape = shape_of(x)
    check_shape("x", x, shape)
    if p == 0.0:
        return unflatten(flatten(x), shape), DropoutCache(None, shape)
    keep = dropout_keep(numel(shape), p, seed, stream)
    return unflatten([v * k for v, k in zip(flatten(x), keep)], shape), DropoutCache(keep, shape)


def dropout_backward(dout: Tensor, cache: DropoutCache) -> Tensor:
    """dx = dout * multiplier: the gradient flows only through kept elements."""
    keep, shape = cache.keep, cache.shape
    check_numbers("dout", dout)
    if shape_of(dout) != shape:
        raise ValueError(f"dout must have shape {shape}, got {shape_of(dout)}")
    if keep is None:
        return unflatten(flatten(dout), shape)
    return unflatten([d * k for d, k in zip(flatten(dout), keep)], shape)


# -- residual and loss -----------------------------------------------------------------------------
class ResidualCache(NamedTuple):
    """What `residual_backward` needs: the shape (an add's gradient depends on nothing else)."""

    shape: tuple


def residual_forward(x: Tensor, y: Tensor) -> tuple[Tensor, ResidualCache]:
    """x + y elementwise (the residual stream)."""
    check_numbers("x", x), check_numbers("y", y)
    shape = shape_of(x)
    check_shape("x", x, shape)
    if shape_of(y) != shape:
        raise ValueError(f"y must have the shape of x {shape}, got {shape_of(y)}")
    check_shape("y", y, shape)
    return unflatten([a + b for a, b in zip(flatten(x), flatten(y))], shape), ResidualCache(shape)


def residual_backward(dout: Tensor, cache: ResidualCache) -> tuple[Tensor, Tensor]:
    """(dx, dy) = (dout, dout): an add passes its gradient to both branches unchanged."""
    shape = cache.shape
    check_numbers("dout", dout)
    check_shape("dout", dout, shape)
    flat = flatten(dout)
    return unflatten(flat, shape), unflatten(flat, shape)  # two fresh copies


class CrossEntropyCache(NamedTuple):
    """What `cross_entropy_backward` needs from `cross_entropy_forward`.

    dlogits: the gradient for dloss = 1, (B*T, V) rows, already computed with the loss (the
    backward only scales it). shape: the logits' shape (B, T, V).
    """

    dlogits: Any
    shape: tuple


def cross_entropy_forward(
    logits: Tensor, targets: Tensor, ignore_index: int | None = -100
) -> tuple[float, CrossEntropyCache]:
    """Mean softmax cross-entropy over (B, T, V) logits and (B, T) int targets.

    Positions whose target is `ignore_index` (-100 as in torch and Hugging Face labels) count for
    nothing. The rows are flattened to (B*T, V) and handed to `losses.softmax_cross_entropy`.
    """
    check_numbers("logits", logits), check_ints("targets", targets)
    shape = shape_of(logits)
    if len(shape) != 3:
        raise ValueError(f"logits must have shape (B, T, V), got {shape}")
    check_shape("logits", logits, shape)
    check_shape("targets", targets, shape[:2])
    rows = [row for seq in logits for row in seq]  # (B*T, V)
    flat_targets = [t for seq in targets for t in seq]  # (B*T,)
    loss, dlogits = softmax_cross_entropy(rows, flat_targets, ignore_index)
    return loss, CrossEntropyCache(dlogits, shape)


def cross_entropy_backward(dloss: float, cache: CrossEntropyCache) -> Tensor:
    """dL/dlogits (B, T, V) = dloss * (softmax - onehot) / (number of counted positions)."""
    rows = [[dloss * g for g in row] for row in cache.dlogits]  # (B*T, V)
    return unflatten(rows, cache.shape[:2])


# -- modules ---------------------------------------------------------------------------------------
class _Layer(Module):
    """A module that caches its latest forward for `backward(dout) -> dinput`.

    Only the latest forward is kept: call a module once per forward pass (use the ops directly
    for a weight used twice, e.g. GPT-2's tied wte). Backward accumulates into each `p.grad`.
    """

    _cache: NamedTuple | None = None

    def _saved(self) -> NamedTuple:
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        return self._cache


class Embedding(_Layer):
    """A learned lookup table, `weight` (num_embeddings, embedding_dim), init N(0, std^2)."""

    def __init__(
        self, num_embeddings: int, embedding_dim: int, *, std: float = 0.02, seed=0, stream=0
    ):
        super().__init__()
        num_embeddings = check_count("num_embeddings", num_embeddings, low=1)
        embedding_dim = check_count("embedding_dim", embedding_dim, low=1)
        self.weight = Parameter(normal_tensor((num_embeddings, embedding_dim), std, seed, stream))

    def forward(self, idx: Tensor) -> Tensor:
        out, self._cache = embedding_forward(self.weight.data, idx)
        return out

    def backward(self, dout: Tensor) -> None:
        """Accumulate dL/dweight; integer ids have no gradient, so this returns None."""
        _add_into(self.weight.grad, embedding_backward(dout, self._saved()))


class Linear(_Layer):
    """torch nn.Linear: `weight` (out_features, in_features) ~ N(0, std^2), `bias` zeros."""

    weight_layout = "out_in"

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, *, std=0.02, seed=0, stream=0
    ):
        super().__init__()
        in_features = check_count("in_features", in_features, low=1)
        out_features = check_count("out_features", out_features, low=1)
        check_flag("bias", bias)
        if self.weight_layout == "out_in":
            shape = (out_features, in_features)
        else:
            shape = (in_features, out_features)
        self.weight = Parameter(normal_tensor(shape, std, seed, stream))
        self.bias = Parameter([0.0] * out_features) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        b = self.bias.data if self.bias is not None else None
        out, self._cache = linear_forward(x, self.weight.data, b, self.weight_layout)
        return out

    def backward(self, dout: Tensor) -> Tensor:
        dx, dweight, dbias = linear_backward(dout, self._saved())
        _add_into(self.weight.grad, dweight)
        if self.bias is not None:
            _add_into(self.bias.grad, dbias)
        return dx


class Conv1D(Linear):
    """GPT-2's Conv1D (a linear layer): `weight` stored (in_features, out_features), `bias`.

    Hugging Face's constructor reads Conv1D(nf=out, nx=in); this one reads (in, out) like Linear.
    """

    weight_layout = "in_out"

    def __init__(self, in_features: int, out_features: int, *, std=0.02, seed=0, stream=0):
        super().__init__(in_features, out_features, True, std=std, seed=seed, stream=stream)


class LayerNorm(_Layer):
    """Layer norm over the last axis: `weight` ones, `bias` zeros (dim,), as torch and HF."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        dim = check_count("dim", dim, low=1)
        self.eps = check_eps(eps)
        self.weight = Parameter([1.0] * dim)
        self.bias = Parameter([0.0] * dim)

    def forward(self, x: Tensor) -> Tensor:
        out, self._cache = layer_norm_forward(x, self.weight.data, self.bias.data, self.eps)
        return out

    def backward(self, dout: Tensor) -> Tensor:
        dx, dweight, dbias = layer_norm_backward(dout, self._saved())
        _add_into(self.weight.grad, dweight)
        _add_into(self.bias.grad, dbias)
        return dx


class RMSNorm(_Layer):
    """RMS norm over the last axis (LLaMA's `LlamaRMSNorm`): `weight` ones (dim,), no bias."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        dim = check_count("dim", dim, low=1)
        self.eps = check_eps(eps)
        self.weight = Parameter([1.0] * dim)

    def forward(self, x: Tensor) -> Tensor:
        out, self._cache = rms_norm_forward(x, self.weight.data, self.eps)
        return out

    def backward(self, dout: Tensor) -> Tensor:
        dx, dweight = rms_norm_backward(dout, self._saved())
        _add_into(self.weight.grad, dweight)
        return dx


class Activation(_Layer):
    """An elementwise non-linearity by name ("gelu", "gelu_erf", "relu"); no parameters."""

    def __init__(self, activation: str = "gelu"):
        super().__init__()
        get_activation(activation)  # fail at construction on an unknown name
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        out, self._cache = activation_forward(x, self.activation)
        return out

    def backward(self, dout: Tensor) -> Tensor:
        return activation_backward(dout, self._saved())


class Dropout(_Layer):
    """Dropout with probability p in training mode, the identity in eval mode.

    `seed` and `stream` say which Philox numbers it draws; a model sets them each step with
    `set_dropout_rng`. An attention module may hold a Dropout only to pass its p, seed and stream
    to `attention_forward` (its probabilities' dropout site).
    """

    is_dropout_site = True

    def __init__(self, p: float = 0.1):
        super().__init__()
        self.p = check_dropout_p(p)
        self.seed = 0
        self.stream = 0

    def effective_p(self) -> float:
        return self.p if self.training else 0.0

    def forward(self, x: Tensor) -> Tensor:
        out, self._cache = dropout_forward(x, self.effective_p(), self.seed, self.stream)
        return out

    def backward(self, dout: Tensor) -> Tensor:
        return dropout_backward(dout, self._saved())


def set_dropout_rng(model: Module, seed: int, step: int) -> None:
    """Point every Dropout in `model` at this step's numbers: the k-th Dropout in
    `model.modules()` order (k = 1, 2, ...) gets `seed` and stream `dropout_stream(step, k)`.
    """
    # any backend's Dropout marks itself with `is_dropout_site`, so this one function serves all
    sites = [m for m in model.modules() if getattr(m, "is_dropout_site", False)]
    for k, m in enumerate(sites, start=1):
        m.seed = seed
        m.stream = dropout_stream(step, k)

"""The modern decoder's ops in the reference: RMS norm, rotary embeddings, SwiGLU and
grouped-query attention, each against central finite differences (float64, a non-uniform upstream
gradient), hand-worked values and its errors."""

import math

import pytest

from reference import attention as A
from reference import layers as L
from reference.activations import silu, silu_derivative
from reference.nested import shape_of
from tests.reference.gradcheck import assert_close, check_op_gradients, random_tensor


# -- RMS norm --------------------------------------------------------------------------------------
def test_rms_norm_hand_example():
    out, cache = L.rms_norm_forward([[3.0, 4.0]], [1.0, 2.0], eps=1e-12)
    rms = math.sqrt((9 + 16) / 2)
    assert_close(out, [[3.0 / rms, 8.0 / rms]], "rms norm", atol=1e-15, rtol=1e-12)
    assert cache.rstd == [1.0 / math.sqrt(12.5 + 1e-12)]


@pytest.mark.parametrize("shape, eps", [((2, 3, 5), 1e-6), ((4, 1), 1e-5), ((3,), 0.5)])
def test_rms_norm_gradients(shape, eps):
    C = shape[-1]
    x, w = random_tensor(shape, 1), random_tensor((C,), 2)
    dout = random_tensor(shape, 3)
    _, cache = L.rms_norm_forward(x, w, eps)
    dx, dw = L.rms_norm_backward(dout, cache)
    check_op_gradients(
        lambda x, w: L.rms_norm_forward(x, w, eps)[0], {"x": x, "w": w}, dout, {"x": dx, "w": dw}
    )


def test_rms_norm_module_and_errors():
    m = L.RMSNorm(4, eps=1e-5)
    assert [(n, p.shape) for n, p in m.named_parameters()] == [("weight", (4,))]
    assert m.weight.data == [1.0] * 4
    with pytest.raises(ValueError, match="eps must be a finite number > 0"):
        L.rms_norm_forward([[1.0]], [1.0], eps=0.0)
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 2\)"):
        L.rms_norm_forward([[1.0, 2.0, 3.0]], [1.0, 1.0])
    with pytest.raises(ValueError, match=r"weight must have shape \(C,\)"):
        L.rms_norm_forward([[1.0]], [[1.0]])
    with pytest.raises(ValueError, match="dout must have shape"):
        L.rms_norm_backward([[1.0]], L.rms_norm_forward([[1.0, 2.0]], [1.0, 1.0])[1])


# -- rotary embeddings -----------------------------------------------------------------------------
def test_rope_turns_each_pair_by_position_times_frequency():
    # one head of size 4: pairs (0, 2) and (1, 3), frequencies 1 and theta^(-1/2) = 0.1
    x = [[[1.0, 0.0, 0.0, 1.0]] * 3]
    out, cache = L.rope_forward(x, 1, start=0, theta=100.0)
    for t in range(3):
        a, b = t * 1.0, t * 0.1
        # pair 0 is (x0, x2) = (1, 0), pair 1 is (x1, x3) = (0, 1)
        want = [math.cos(a), -math.sin(b), math.sin(a), math.cos(b)]
        assert_close(out[0][t], want, f"position {t}", atol=1e-15, rtol=1e-14)
    shifted, _ = L.rope_forward([[[1.0, 0.0, 0.0, 1.0]]], 1, start=2, theta=100.0)
    assert shifted[0][0] == out[0][2]  # start offsets the positions
    assert shape_of(cache.cos) == (3, 2)


def test_rope_dot_products_depend_on_relative_position_only():
    q, k = random_tensor((1, 1, 6), 1), random_tensor((1, 1, 6), 2)

    def score(tq, tk):
        rq, _ = L.rope_forward(q, 1, start=tq)
        rk, _ = L.rope_forward(k, 1, start=tk)
        return sum(a * b for a, b in zip(rq[0][0], rk[0][0]))

    assert abs(score(5, 3) - score(2, 0)) < 1e-12
    assert abs(score(7, 7) - score(0, 0)) < 1e-12
    assert abs(score(5, 3) - score(3, 5)) > 1e-6


@pytest.mark.parametrize("shape, n_head, start", [((2, 3, 8), 2, 0), ((1, 4, 6), 1, 5)])
def test_rope_gradient(shape, n_head, start):
    x, dout = random_tensor(shape, 4), random_tensor(shape, 5)
    _, cache = L.rope_forward(x, n_head, start, theta=37.0)
    check_op_gradients(
        lambda x: L.rope_forward(x, n_head, start, theta=37.0)[0],
        {"x": x},
        dout,
        {"x": L.rope_backward(dout, cache)},
    )


@pytest.mark.parametrize(
    "args, error, words",
    [
        (dict(n_head=2), ValueError, "rotary embeddings need an even head size.*head size 3"),
        (dict(n_head=4), ValueError, "must be divisible by n_head=4"),
        (dict(n_head=0), ValueError, r"n_head must be an int in \[1,"),
        (dict(n_head=1, start=-1), ValueError, r"start must be an int in \[0,"),
        (dict(n_head=1, theta=0.0), ValueError, "theta must be a finite number > 0"),
        (dict(n_head=1, theta="big"), TypeError, "theta must be a number"),
    ],
)
def test_rope_errors(args, error, words):
    with pytest.raises(error, match=words):
        L.rope_forward(random_tensor((1, 2, 6), 0), **args)


# -- SwiGLU ----------------------------------------------------------------------------------------
def test_silu_values_and_derivative():
    assert silu(0.0) == 0.0 and abs(silu(1.0) - 1.0 / (1.0 + math.exp(-1.0))) < 1e-15
    assert silu(-800.0) == -0.0 and silu(800.0) == 800.0  # no overflow either way
    for x in (-3.0, -0.5, 0.0, 0.7, 4.0):
        numeric = (silu(x + 1e-6) - silu(x - 1e-6)) / 2e-6
        assert abs(silu_derivative(x) - numeric) < 1e-8


def test_swiglu_values_and_gradients():
    out, _ = L.swiglu_forward([[1.0, -2.0]], [[3.0, 0.5]])
    assert out == [[silu(1.0) * 3.0, silu(-2.0) * 0.5]]
    gate, up, dout = (random_tensor((2, 3, 4), s, -3.0, 3.0) for s in (6, 7, 8))
    _, cache = L.swiglu_forward(gate, up)
    dgate, dup = L.swiglu_backward(dout, cache)
    check_op_gradients(
        lambda gate, up: L.swiglu_forward(gate, up)[0],
        {"gate": gate, "up": up},
        dout,
        {"gate": dgate, "up": dup},
    )
    with pytest.raises(ValueError, match=r"up must have the shape of gate \(1, 2\)"):
        L.swiglu_forward([[1.0, 2.0]], [[1.0]])


# -- grouped-query attention -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "B, Tq, Tk, H, Hkv, hs, causal, padded, p",
    [
        (2, 3, 3, 4, 2, 2, True, False, 0.0),  # 2 query heads per KV head
        (1, 2, 4, 3, 1, 2, True, True, 0.0),  # multi-query: every head shares one
        (1, 3, 3, 2, 2, 3, False, False, 0.3),  # multi-head, with dropout
        (2, 2, 3, 4, 1, 1, False, True, 0.4),
    ],
)
def test_grouped_query_attention_gradients(B, Tq, Tk, H, Hkv, hs, causal, padded, p):
    q = random_tensor((B, Tq, H * hs), 10)
    k, v = random_tensor((B, Tk, Hkv * hs), 11), random_tensor((B, Tk, Hkv * hs), 12)
    dout = random_tensor((B, Tq, H * hs), 13)
    mask = [[j == Tk - 1 and b == 0 for j in range(Tk)] for b in range(B)] if padded else None
    opts = dict(causal=causal, key_padding_mask=mask, dropout_p=p, seed=3, stream=9)

    def forward(q, k, v):
        return A.grouped_query_attention_forward(q, k, v, H, Hkv, **opts)[0]

    out, cache = A.grouped_query_attention_forward(q, k, v, H, Hkv, **opts)
    assert shape_of(out) == (B, Tq, H * hs) and cache.n_kv_head == Hkv
    dq, dk, dv = A.grouped_query_attention_backward(dout, cache)
    assert shape_of(dk) == shape_of(dv) == (B, Tk, Hkv * hs)
    check_op_gradients(forward, {"q": q, "k": k, "v": v}, dout, {"q": dq, "k": dk, "v": dv})


def test_grouped_query_attention_is_multi_head_with_repeated_kv_heads():
    """Query head h reads KV head h // (H / Hkv): the same as multi-head attention on k and v
    with each KV head copied for its group; with Hkv = H it is multi-head attention."""
    B, T, H, Hkv, hs = 2, 3, 4, 2, 2
    q = random_tensor((B, T, H * hs), 1)
    k, v = random_tensor((B, T, Hkv * hs), 2), random_tensor((B, T, Hkv * hs), 3)

    def repeat(x):  # channels of KV head g copied into query heads 2g and 2g + 1
        return [[row[g * hs : (g + 1) * hs] * 1 for g in range(Hkv) for _ in range(H // Hkv)]
                for seq in x for row in seq]  # fmt: skip

    def wide(x):
        rows = [[c for head in r for c in head] for r in repeat(x)]
        return [rows[b * T : (b + 1) * T] for b in range(B)]

    gqa, _ = A.grouped_query_attention_forward(q, k, v, H, Hkv, causal=True)
    mha, _ = A.multi_head_attention_forward(q, wide(k), wide(v), H, causal=True)
    assert gqa == mha
    same, _ = A.grouped_query_attention_forward(q, q, q, H, H, causal=True)
    assert same == A.multi_head_attention_forward(q, q, q, H, causal=True)[0]


@pytest.mark.parametrize(
    "H, Hkv, kv_width, error, words",
    [
        (4, 3, 6, ValueError, "n_kv_head must divide n_head.*n_head=4 and n_kv_head=3"),
        (4, 0, 2, ValueError, "n_kv_head must be a positive int, got 0"),
        (4, 2.0, 4, TypeError, "n_kv_head must be an int, got float"),
        (4, 2, 6, ValueError, r"k and v must have shape \(1, Tk, 4\) \(2 KV heads"),
        (3, 1, 2, ValueError, "q's C=8 channels must be divisible by n_head=3"),
    ],
)
def test_grouped_query_attention_errors(H, Hkv, kv_width, error, words):
    q, kv = random_tensor((1, 2, 8), 0), random_tensor((1, 2, kv_width), 1)
    with pytest.raises(error, match=words):
        A.grouped_query_attention_forward(q, kv, kv, H, Hkv)

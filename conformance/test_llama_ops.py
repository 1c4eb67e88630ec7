"""The modern decoder's ops across backends: RMS norm, rotary embeddings, SwiGLU and
grouped-query attention, forward and backward on generated shapes (odd head sizes, every GQA
ratio from multi-head to multi-query), float64 to 1e-9 and float32 to its derived tolerance, and
the same errors for the same bad input."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import reference
from conformance.tolerance import assert_close, assert_same_error, float32_tol

values = st.floats(-3.0, 3.0, allow_nan=False, allow_infinity=False, width=32)
shapes3 = st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 7))


def upstream(shape, salt=0.0):
    n = int(np.prod(shape))
    return np.cos(np.arange(n) * 0.91 + salt).reshape(shape) * 1.5


@given(shapes3, st.sampled_from([1e-6, 1e-5, 0.5]), st.data())
def test_rms_norm(candidate, shape, eps, data):
    x = data.draw(arrays(np.float64, shape, elements=values))
    w = data.draw(arrays(np.float64, shape[-1:], elements=values))
    out, cache = candidate.rms_norm_forward(x, w, eps)
    rout, rcache = reference.rms_norm_forward(x.tolist(), w.tolist(), eps)
    assert_close(out, rout, what="rms norm")
    d = upstream(shape)
    scale = 1.0 + float(np.max(np.abs(w))) / np.sqrt(eps)  # dx grows like |w| / sqrt(eps)
    grads = zip(
        candidate.rms_norm_backward(d, cache),
        reference.rms_norm_backward(d.tolist(), rcache),
        ("dx", "dweight"),
    )
    for got, want, name in grads:
        assert_close(got, want, rtol=1e-8, atol=1e-12 * scale, what=name)
    out32, _ = candidate.rms_norm_forward(x.astype(np.float32), w.astype(np.float32), eps)
    tol = float32_tol(shape[-1])
    assert_close(out32, rout, rtol=tol, atol=tol * scale, what="float32 rms norm")


@st.composite
def rope_case(draw):
    B, T, H = draw(st.integers(1, 2)), draw(st.integers(1, 5)), draw(st.integers(1, 3))
    hs = draw(st.sampled_from([2, 4, 6, 10]))
    x = draw(arrays(np.float64, (B, T, H * hs), elements=values))
    start = draw(st.integers(0, 300))
    theta = draw(st.sampled_from([10000.0, 500000.0, 7.5]))
    return x, H, start, theta


@given(rope_case())
def test_rope(candidate, case):
    x, H, start, theta = case
    out, cache = candidate.rope_forward(x, H, start, theta)
    rout, rcache = reference.rope_forward(x.tolist(), H, start, theta)
    assert_close(out, rout, what="rope")
    d = upstream(x.shape)
    assert_close(
        candidate.rope_backward(d, cache), reference.rope_backward(d.tolist(), rcache), what="dx"
    )
    out32, _ = candidate.rope_forward(x.astype(np.float32), H, start, theta)
    tol = float32_tol(2)
    assert_close(out32, rout, rtol=tol, atol=tol * 4, what="float32 rope")


@given(shapes3, st.data())
def test_swiglu(candidate, shape, data):
    gate = data.draw(arrays(np.float64, shape, elements=values)) * 3
    up = data.draw(arrays(np.float64, shape, elements=values))
    out, cache = candidate.swiglu_forward(gate, up)
    rout, rcache = reference.swiglu_forward(gate.tolist(), up.tolist())
    assert_close(out, rout, what="swiglu")
    d = upstream(shape)
    for got, want, name in zip(
        candidate.swiglu_backward(d, cache),
        reference.swiglu_backward(d.tolist(), rcache),
        ("dgate", "dup"),
    ):
        assert_close(got, want, what=name)
    want = np.array([reference.silu(g) for g in gate.ravel()]).reshape(shape)
    assert_close(candidate.silu(gate), want, what="silu")


@st.composite
def gqa_case(draw):
    """H query heads over Hkv KV heads: ratios 1 (multi-head), 2, 3 and H (multi-query)."""
    Hkv = draw(st.integers(1, 3))
    H = Hkv * draw(st.sampled_from([1, 2, 3])) if draw(st.booleans()) else Hkv
    if draw(st.booleans()):
        H, Hkv = H * Hkv, 1  # all heads share one
    B, hs = draw(st.integers(1, 2)), draw(st.integers(1, 4))
    Tq, Tk = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    q = draw(arrays(np.float64, (B, Tq, H * hs), elements=values))
    k = draw(arrays(np.float64, (B, Tk, Hkv * hs), elements=values))
    v = draw(arrays(np.float64, (B, Tk, Hkv * hs), elements=values))
    dout = draw(arrays(np.float64, (B, Tq, H * hs), elements=values))
    mask = draw(st.none() | arrays(np.bool_, (B, Tk)))
    causal = draw(st.booleans())
    p = draw(st.sampled_from([0.0, 0.3]))
    return q, k, v, H, Hkv, dout, causal, mask, p, draw(st.integers(0, 2**32))


@given(gqa_case())
def test_grouped_query_attention(candidate, case):
    q, k, v, H, Hkv, dout, causal, mask, p, seed = case
    m = None if mask is None else mask.tolist()
    rout, rcache = reference.grouped_query_attention_forward(
        q.tolist(), k.tolist(), v.tolist(), H, Hkv, causal, m, p, seed, 7
    )
    rgrads = reference.grouped_query_attention_backward(dout.tolist(), rcache)
    out, cache = candidate.grouped_query_attention_forward(
        q, k, v, H, Hkv, causal, mask, p, seed, 7
    )
    assert_close(out, rout, what="grouped-query out")
    grads = candidate.grouped_query_attention_backward(dout, cache)
    scale = 1.0 + max(float(np.max(np.abs(t))) for t in (q, k, v, dout))
    for name, g, rg in zip(("dq", "dk", "dv"), grads, rgrads):
        assert_close(g, rg, atol=1e-14 * scale**3, what=name)
    out32, _ = candidate.grouped_query_attention_forward(
        *(t.astype(np.float32) for t in (q, k, v)), H, Hkv, causal, mask, p, seed, 7
    )
    tol = float32_tol(k.shape[1] + q.shape[2] // H)
    assert_close(out32, rout, rtol=tol, atol=tol * scale**2, what="float32 out")


X6 = [[[0.5, -1.0, 2.0, 0.25, 1.5, -0.5]]]


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.rms_norm_forward([[1.0, 2.0]], [1.0], 1e-6),
        lambda m: m.rms_norm_forward([[1.0]], [1.0], 0.0),
        lambda m: m.rms_norm_forward([[1.0]], [1.0], "1e-6"),
        lambda m: m.rms_norm_forward([[]], [], 1e-6),
        lambda m: m.rope_forward(X6, 2),  # head size 3 is odd
        lambda m: m.rope_forward(X6, 4),  # 6 channels in 4 heads
        lambda m: m.rope_forward(X6, 0),
        lambda m: m.rope_forward(X6, 1.0),
        lambda m: m.rope_forward(X6, 1, start=-1),
        lambda m: m.rope_forward(X6, 1, theta=float("nan")),
        lambda m: m.rope_forward(X6, 1, theta="1e4"),
        lambda m: m.rope_forward([[1.0, 2.0]], 1),
        lambda m: m.swiglu_forward([[1.0, 2.0]], [[1.0]]),
        lambda m: m.grouped_query_attention_forward(X6, X6, X6, 3, 2),  # 2 does not divide 3
        lambda m: m.grouped_query_attention_forward(X6, X6, X6, 2, 0),
        lambda m: m.grouped_query_attention_forward(X6, X6, X6, 2, 1.0),
        lambda m: m.grouped_query_attention_forward(X6, X6, X6, 6, 2),  # k needs 2 heads of 1
        lambda m: m.grouped_query_attention_forward(X6, X6, X6, 4, 2),  # 6 in 4 heads
        lambda m: m.RMSNorm(0),
        lambda m: m.RMSNorm(3, eps=-1.0),
    ],
)
def test_same_errors(candidate, call):
    assert_same_error(lambda: call(reference), lambda: call(candidate))

"""Attention across backends: the reference is the oracle for outputs and gradients, with causal
and padding masks, cross-attention (Tq != Tk) and dropout (bit-identical keep decisions).

float64: agreement to 1e-9 relative (the candidate's BLAS sums in another order), with an absolute
part for gradients that cancel to near 0. float32: the candidate's own rounding, `float32_tol` of
the Tk + hs long sums.
Gradients are compared as (dq, dk, dv) only; the caches may differ between backends.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import reference
from conformance.tolerance import assert_close, float32_tol

values = st.floats(-3.0, 3.0, allow_nan=False, allow_infinity=False, width=32)


@st.composite
def attention_case(draw):
    """Shapes with odd sizes and ones, values, masks, dropout and its generator state."""
    B, H = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    Tq, Tk, hs = draw(st.integers(1, 5)), draw(st.integers(1, 5)), draw(st.integers(1, 4))
    spread = draw(st.sampled_from([1.0, 4.0]))  # 4: peaked softmaxes
    q = draw(arrays(np.float64, (B, H, Tq, hs), elements=values)) * spread
    k = draw(arrays(np.float64, (B, H, Tk, hs), elements=values))
    v = draw(arrays(np.float64, (B, H, Tk, hs), elements=values))
    dout = draw(arrays(np.float64, (B, H, Tq, hs), elements=values))
    causal = draw(st.booleans())
    mask = draw(st.none() | arrays(np.bool_, (B, Tk)))
    p = draw(st.sampled_from([0.0, 0.0, 0.1, 0.5, 1.0]) | st.floats(0.0, 1.0))
    seed, stream = draw(st.integers(0, 2**64 - 1)), draw(st.integers(0, 2**64 - 1))
    return q, k, v, dout, causal, mask, p, seed, stream


def _reference(q, k, v, dout, causal, mask, p, seed, stream):
    m = None if mask is None else mask.tolist()
    out, cache = reference.attention_forward(
        q.tolist(), k.tolist(), v.tolist(), causal, m, p, seed, stream
    )
    return out, reference.attention_backward(dout.tolist(), cache)


def _scale_of(*tensors):
    """A magnitude for absolute tolerances: results near 0 come from cancelling O(this) terms."""
    return 1.0 + max(float(np.max(np.abs(t))) for t in tensors)


@given(attention_case())
def test_attention_float64(candidate, case):
    q, k, v, dout, causal, mask, p, seed, stream = case
    rout, rgrads = _reference(*case)
    out, cache = candidate.attention_forward(q, k, v, causal, mask, p, seed, stream)
    assert out.dtype == np.float64
    assert_close(out, rout, what="attention out")
    grads = candidate.attention_backward(dout, cache)
    atol = 1e-14 * _scale_of(q, k, v, dout) ** 3  # measured worst: 1e-16 * scale**3
    for name, g, rg in zip(("dq", "dk", "dv"), grads, rgrads):
        assert_close(g, rg, atol=atol, what=name)


@given(attention_case())
def test_attention_float32(candidate, case):
    q, k, v, dout, causal, mask, p, seed, stream = case
    rout, rgrads = _reference(*case)
    f32 = [t.astype(np.float32) for t in (q, k, v, dout)]
    out, cache = candidate.attention_forward(*f32[:3], causal, mask, p, seed, stream)
    grads = candidate.attention_backward(f32[3], cache)
    # float32 rounding in sums of Tk + hs terms; results near 0 come from cancelling terms of
    # size scale (out) or scale**3 (grads), so the absolute part scales so. Measured worst over
    # 1,500 random cases: 1/40 of the out tolerance, 1/250 of the grads'.
    Tk, hs = k.shape[2], k.shape[3]
    scale = _scale_of(q, k, v, dout)
    rtol = float32_tol(Tk + hs)
    assert out.dtype == np.float32 and all(g.dtype == np.float32 for g in grads)
    assert_close(out, rout, rtol=rtol, atol=rtol * scale, what="attention out (float32)")
    for name, g, rg in zip(("dq", "dk", "dv"), grads, rgrads):
        assert_close(g, rg, rtol=rtol, atol=rtol * scale**3, what=f"{name} (float32)")


@st.composite
def multi_head_case(draw):
    B, H, hs = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 4))
    Tq, Tk = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    C = H * hs
    q = draw(arrays(np.float64, (B, Tq, C), elements=values))
    k = draw(arrays(np.float64, (B, Tk, C), elements=values))
    v = draw(arrays(np.float64, (B, Tk, C), elements=values))
    dout = draw(arrays(np.float64, (B, Tq, C), elements=values))
    mask = draw(st.none() | arrays(np.bool_, (B, Tk)).map(lambda m: m.astype(np.int64)))
    causal = draw(st.booleans())
    p = draw(st.sampled_from([0.0, 0.2]))
    return q, k, v, H, dout, causal, mask, p, draw(st.integers(0, 2**32))


@given(multi_head_case())
def test_multi_head_attention_float64(candidate, case):
    q, k, v, H, dout, causal, mask, p, seed = case
    m = None if mask is None else mask.tolist()
    rout, rcache = reference.multi_head_attention_forward(
        q.tolist(), k.tolist(), v.tolist(), H, causal, m, p, seed, 7
    )
    rgrads = reference.multi_head_attention_backward(dout.tolist(), rcache)
    out, cache = candidate.multi_head_attention_forward(q, k, v, H, causal, mask, p, seed, 7)
    assert_close(out, rout, what="multi-head out")
    grads = candidate.multi_head_attention_backward(dout, cache)
    atol = 1e-14 * _scale_of(q, k, v, dout) ** 3  # measured worst: 1e-16 * scale**3
    for name, g, rg in zip(("dq", "dk", "dv"), grads, rgrads):
        assert_close(g, rg, atol=atol, what=name)


@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 3), st.integers(1, 3), st.data())
def test_head_and_qkv_reshapes_match_exactly(candidate, B, T, H, hs, data):
    C = H * hs
    x = data.draw(arrays(np.float64, (B, T, C), elements=values))
    heads = candidate.split_heads(x, H)
    assert np.array_equal(heads, np.array(reference.split_heads(x.tolist(), H)))
    assert np.array_equal(
        candidate.merge_heads(heads), np.array(reference.merge_heads(heads.tolist()))
    )
    qkv = data.draw(arrays(np.float64, (B, T, 3 * C), elements=values))
    parts = candidate.split_qkv(qkv)
    for part, rpart in zip(parts, reference.split_qkv(qkv.tolist())):
        assert np.array_equal(part, np.array(rpart))
    assert np.array_equal(
        candidate.concat_qkv(*parts), np.array(reference.concat_qkv(*(t.tolist() for t in parts)))
    )


GOOD = dict(q=[[[[1.0, 2.0]]]], k=[[[[0.5, 0.5], [1.0, 0.0]]]], v=[[[[1.0, 2.0], [3.0, 4.0]]]])
BAD_INPUTS = [  # (the argument the error must name, what is wrong)
    ("q", dict(q=[[[1.0, 2.0]]])),  # not 4-D
    ("k", dict(k=[[[[0.5, 0.5, 1.0]]]])),  # head size differs from q's
    ("v", dict(v=[[[[1.0, 2.0]]]])),  # v's Tk differs from k's
    ("key_padding_mask", dict(key_padding_mask=[[0, 1, 0]])),  # (B, Tk + 1)
    ("key_padding_mask", dict(key_padding_mask=[[0, 2]])),  # not 0/1
    ("key_padding_mask", dict(key_padding_mask=[[0.5, 0]])),
    ("dropout_p", dict(dropout_p=-0.1)),
    ("dropout_p", dict(dropout_p=2)),
    ("dropout_p", dict(dropout_p="0.5")),
    ("dropout_p", dict(dropout_p=None)),
    ("seed", dict(dropout_p=0.5, seed=-3)),
    ("seed", dict(dropout_p=0.5, seed=2**64)),
    ("stream", dict(dropout_p=0.5, stream=0.5)),
]


@pytest.mark.parametrize("name, bad", BAD_INPUTS)
def test_bad_input_raises_what_the_reference_raises(candidate, name, bad):
    args = GOOD | bad
    with pytest.raises(Exception) as ref_error:
        reference.attention_forward(**args)
    with pytest.raises(ref_error.type, match=name):
        candidate.attention_forward(**args)


@pytest.mark.parametrize("n_head", [0, 4, 2.0, True])
def test_bad_n_head_raises_what_the_reference_raises(candidate, n_head):
    x = [[[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]]]
    with pytest.raises(Exception) as ref_error:
        reference.multi_head_attention_forward(x, x, x, n_head)
    with pytest.raises(ref_error.type, match="n_head"):
        candidate.multi_head_attention_forward(x, x, x, n_head)

"""fast.cuda.attention against fast.attention (itself checked against the reference).

Same inputs on both sides; the CUDA results must match to rounding (1e-12 in float64, 1e-5 in
float32), dropout's keep pattern exactly (the same Philox words decide), and bad input must fail
with the same error as on the CPU. Shapes are tiny: under the simulator every GPU thread is a
Python thread.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fast.attention as fa
from fast.cuda.array import DeviceArray, to_device

pytestmark = pytest.mark.cuda

TOL = {np.float64: 1e-12, np.float32: 1e-5}


def _rand(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def _check(got: DeviceArray, want: np.ndarray, name: str) -> None:
    assert isinstance(got, DeviceArray), name
    host = got.copy_to_host()
    assert host.shape == want.shape and host.dtype == want.dtype, name
    tol = TOL[want.dtype.type]
    np.testing.assert_allclose(host, want, rtol=tol, atol=tol, err_msg=name)


def _padding_mask(B, Tk):
    """Batch 0 pads its last key; batch 1 (if any) pads every key: a row that sees nothing."""
    mask = np.zeros((B, Tk), dtype=bool)
    mask[0, Tk - 1] = True
    if B > 1:
        mask[1, :] = True
    return mask


MHA_CASES = [
    # (B, Tq, Tk, C, H, causal, padding, dropout_p, dtype)
    (1, 5, 5, 6, 2, True, False, 0.0, np.float64),  # GPT's causal self-attention, hs = 3
    (2, 3, 4, 3, 1, False, True, 0.0, np.float64),  # cross-attention, padding, a fully padded row
    (2, 2, 3, 4, 2, True, True, 0.3, np.float64),  # dropout, padding, bottom-right causal
    (1, 4, 2, 4, 2, True, False, 0.0, np.float32),  # Tq > Tk: the first queries see no key
    (2, 3, 4, 2, 1, False, True, 0.3, np.float32),  # dropout and padding in float32
    (1, 2, 37, 2, 1, True, False, 0.3, np.float64),  # Tk > ROW_THREADS in the simulator
]


def _compare_multi_head(B, Tq, Tk, C, H, dtype, data_seed, **kw):
    """Run both backends forward and backward on the same random data; check every output.

    Returns (CUDA out, CUDA cache, CPU cache) for further checks."""
    rng = np.random.default_rng(data_seed)
    q, k, v = (
        _rand(rng, (B, Tq, C), dtype),
        _rand(rng, (B, Tk, C), dtype),
        _rand(rng, (B, Tk, C), dtype),
    )
    dout = _rand(rng, (B, Tq, C), dtype)
    out, cache = fa.multi_head_attention_forward(q, k, v, H, **kw)
    grads = fa.multi_head_attention_backward(dout, cache)

    d_out, d_cache = fa.multi_head_attention_forward(*map(to_device, (q, k, v)), H, **kw)
    d_grads = fa.multi_head_attention_backward(to_device(dout), d_cache)

    _check(d_out, out, "out")
    _check(d_cache.weights, cache.weights, "weights")
    if cache.dropped is None:
        assert d_cache.dropped is None
    else:  # the same keep decisions, bit for bit
        np.testing.assert_array_equal(d_cache.dropped.copy_to_host() != 0, cache.dropped != 0)
        _check(d_cache.dropped, cache.dropped, "dropped weights")
    for name, got, want in zip(("dq", "dk", "dv"), d_grads, grads):
        _check(got, want, name)
    return d_out, d_cache, cache


@pytest.mark.parametrize("B, Tq, Tk, C, H, causal, padding, p, dtype", MHA_CASES)
def test_multi_head_attention_matches_cpu(B, Tq, Tk, C, H, causal, padding, p, dtype):
    mask = _padding_mask(B, Tk).tolist() if padding else None  # a nested list, from the host
    d_out, d_cache, cache = _compare_multi_head(
        B, Tq, Tk, C, H, dtype, data_seed=B * 1000 + Tq * 100 + Tk * 10 + C,
        causal=causal, key_padding_mask=mask, dropout_p=p, seed=12345, stream=7,
    )  # fmt: skip
    if p > 0.0:  # some dropped, some kept
        assert 0 < (cache.dropped != 0).sum() < (cache.weights != 0).sum()
    if padding and B > 1:  # the fully padded batch: zeros, no NaN
        assert not d_out.copy_to_host()[1].any()


@settings(max_examples=5)
@given(
    B=st.integers(1, 2),
    H=st.integers(1, 2),
    Tq=st.integers(1, 4),
    Tk=st.integers(1, 4),
    hs=st.integers(1, 3),
    causal=st.booleans(),
    padding=st.booleans(),
    p=st.sampled_from([0.0, 0.3, 0.7]),
    dtype=st.sampled_from([np.float64, np.float32]),
    seed=st.integers(0, 2**64 - 1),
)
def test_multi_head_attention_matches_cpu_drawn(B, H, Tq, Tk, hs, causal, padding, p, dtype, seed):
    mask = np.random.default_rng(seed).random((B, Tk)) < 0.3 if padding else None
    _compare_multi_head(
        B, Tq, Tk, H * hs, H, dtype, data_seed=seed,
        causal=causal, key_padding_mask=mask, dropout_p=p, seed=seed, stream=seed // 3,
    )  # fmt: skip


def test_multi_head_attention_on_split_qkv_views():
    """GPT's path: q, k, v are strided views of one (B, T, 3C) array, never copied."""
    rng = np.random.default_rng(1)
    qkv = _rand(rng, (1, 3, 12), np.float64)  # C = 4, H = 2
    dout = _rand(rng, (1, 3, 4), np.float64)
    out, cache = fa.multi_head_attention_forward(*fa.split_qkv(qkv), 2, causal=True)
    grads = fa.multi_head_attention_backward(dout, cache)
    d_q, d_k, d_v = fa.split_qkv(to_device(qkv))
    assert d_q.buffer is d_k.buffer is d_v.buffer  # views
    d_out, d_cache = fa.multi_head_attention_forward(d_q, d_k, d_v, 2, causal=True)
    d_grads = fa.multi_head_attention_backward(to_device(dout), d_cache)
    _check(d_out, out, "out")
    _check(fa.concat_qkv(*d_grads), fa.concat_qkv(*grads), "dqkv")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_attention_forward_backward_4d(dtype):
    """(B, H, T, hs) inputs, q a transposed (strided) view, padding and causal."""
    rng = np.random.default_rng(2)
    q_bthd = _rand(rng, (2, 3, 2, 2), dtype)  # (B, Tq, H, hs)
    q = q_bthd.transpose(0, 2, 1, 3)
    k, v = _rand(rng, (2, 2, 3, 2), dtype), _rand(rng, (2, 2, 3, 2), dtype)
    dout = _rand(rng, (2, 2, 3, 2), dtype)
    mask = np.array([[0, 0, 1], [1, 0, 0]])  # 0/1 ints
    out, cache = fa.attention_forward(q, k, v, causal=True, key_padding_mask=mask)
    grads = fa.attention_backward(dout, cache)
    d_q = to_device(q_bthd).transpose(0, 2, 1, 3)
    d_out, d_cache = fa.attention_forward(
        d_q, to_device(k), to_device(v), causal=True, key_padding_mask=mask
    )
    d_grads = fa.attention_backward(to_device(dout), d_cache)
    _check(d_out, out, "out")
    for name, got, want in zip(("dq", "dk", "dv"), d_grads, grads):
        _check(got, want, name)


def test_attention_dropout_all_mixed_dtypes_and_no_keys():
    rng = np.random.default_rng(3)
    q = _rand(rng, (1, 1, 2, 1), np.float32)
    k, v = _rand(rng, (1, 1, 2, 1), np.float64), _rand(rng, (1, 1, 2, 1), np.float64)
    # p = 1 drops everything; float32 q with float64 k, v computes in float64, as on the CPU
    out, _ = fa.attention_forward(q, k, v, dropout_p=1.0, seed=3)
    d_out, _ = fa.attention_forward(*map(to_device, (q, k, v)), dropout_p=1.0, seed=3)
    _check(d_out, out, "out")
    assert not d_out.copy_to_host().any()
    # no keys at all: zeros out, zero dq, empty dk and dv
    k0 = np.zeros((1, 1, 0, 1))
    out, cache = fa.attention_forward(q.astype(np.float64), k0, k0)
    grads = fa.attention_backward(np.ones((1, 1, 2, 1)), cache)
    d_out, d_cache = fa.attention_forward(
        to_device(q.astype(np.float64)), *map(to_device, (k0, k0))
    )
    d_grads = fa.attention_backward(to_device(np.ones((1, 1, 2, 1))), d_cache)
    _check(d_out, out, "out")
    for name, got, want in zip(("dq", "dk", "dv"), d_grads, grads):
        _check(got, want, name)


def test_split_concat_and_heads_round_trips():
    rng = np.random.default_rng(4)
    qkv = _rand(rng, (2, 3, 9), np.float64)
    d_qkv = to_device(qkv)
    parts = fa.split_qkv(d_qkv)
    for got, want in zip(parts, fa.split_qkv(qkv)):
        _check(got, want, "split_qkv")
    _check(fa.concat_qkv(*parts), qkv, "concat_qkv")
    heads = fa.split_heads(parts[1], 3)  # a view of a view: (2, 3, 3, 1)
    assert heads.buffer is d_qkv.buffer
    _check(heads, fa.split_heads(fa.split_qkv(qkv)[1], 3), "split_heads")
    _check(fa.merge_heads(heads), fa.split_qkv(qkv)[1], "merge_heads")
    no_heads = fa.merge_heads(to_device(np.zeros((1, 0, 2, 3))))
    _check(no_heads, fa.merge_heads(np.zeros((1, 0, 2, 3))), "merge_heads, H = 0")
    ints = to_device(np.arange(6).reshape(1, 2, 3))  # ints become float64, as on the CPU
    _check(fa.concat_qkv(ints, ints, ints), fa.concat_qkv(*[np.arange(6).reshape(1, 2, 3)] * 3), "")


def _same_error(cpu_call, cuda_call, error=ValueError):
    with pytest.raises(error) as want:
        cpu_call()
    with pytest.raises(error) as got:
        cuda_call()
    assert str(got.value) == str(want.value)


def _arrays(*shapes):
    host = [np.zeros(s) for s in shapes]
    return host, [to_device(h) for h in host]


BAD_ATTENTION = [
    # (q, k, v shapes, keyword arguments)
    ((2, 3, 2), (2, 3, 2), (2, 3, 2), {}),  # q not 4-D
    ((1, 1, 2, 2), (1, 1, 2, 3), (1, 1, 2, 3), {}),  # hs differs
    ((1, 2, 2, 2), (1, 1, 2, 2), (1, 1, 2, 2), {}),  # H differs
    ((1, 1, 2, 2), (1, 1, 2, 2), (1, 1, 3, 2), {}),  # v differs from k
    ((1, 1, 2, 0), (1, 1, 2, 0), (1, 1, 2, 0), {}),  # hs = 0
    ((1, 1, 2, 2), (1, 1, 2, 2), (1, 1, 2, 2), {"key_padding_mask": [[0, 1, 0]]}),
    ((1, 1, 2, 2), (1, 1, 2, 2), (1, 1, 2, 2), {"key_padding_mask": [[0], [1, 0]]}),
    ((1, 1, 2, 2), (1, 1, 2, 2), (1, 1, 2, 2), {"key_padding_mask": [[0, 2]]}),
    ((1, 1, 2, 2), (1, 1, 2, 2), (1, 1, 2, 2), {"dropout_p": 1.5}),
    ((1, 1, 2, 2), (1, 1, 2, 2), (1, 1, 2, 2), {"dropout_p": 0.1, "seed": -1}),
]


@pytest.mark.parametrize("q, k, v, kw", BAD_ATTENTION)
def test_attention_forward_bad_input(q, k, v, kw):
    host, dev = _arrays(q, k, v)
    _same_error(lambda: fa.attention_forward(*host, **kw), lambda: fa.attention_forward(*dev, **kw))


BAD_MHA = [
    # (q, k, v shapes, n_head, keyword arguments)
    ((2, 3), (2, 3), (2, 3), 1, {}),  # not (B, T, C)
    ((1, 2, 4), (1, 3, 6), (1, 3, 6), 2, {}),  # C differs
    ((1, 2, 4), (2, 3, 4), (2, 3, 4), 2, {}),  # B differs
    ((1, 2, 4), (1, 3, 4), (1, 2, 4), 2, {}),  # v differs from k
    ((1, 2, 4), (1, 3, 4), (1, 3, 4), 3, {}),  # 3 heads do not divide 4
    ((1, 2, 4), (1, 3, 4), (1, 3, 4), 0, {}),
    ((1, 2, 0), (1, 3, 0), (1, 3, 0), 1, {}),  # C = 0
    ((1, 2, 4), (1, 3, 4), (1, 3, 4), 2, {"key_padding_mask": np.zeros((1, 2))}),
]


@pytest.mark.parametrize("q, k, v, n_head, kw", BAD_MHA)
def test_multi_head_attention_forward_bad_input(q, k, v, n_head, kw):
    host, dev = _arrays(q, k, v)
    _same_error(
        lambda: fa.multi_head_attention_forward(*host, n_head, **kw),
        lambda: fa.multi_head_attention_forward(*dev, n_head, **kw),
    )


def test_bad_input_elsewhere():
    (x2, x3, x4, x8), (d2, d3, d4, d8) = _arrays((2, 3), (1, 2, 3), (1, 1, 2, 3), (1, 2, 8))
    _same_error(lambda: fa.split_qkv(x8), lambda: fa.split_qkv(d8))
    _same_error(lambda: fa.split_qkv(x2), lambda: fa.split_qkv(d2))
    _same_error(lambda: fa.concat_qkv(x3, x3, x8), lambda: fa.concat_qkv(d3, d3, d8))
    _same_error(lambda: fa.split_heads(x2, 1), lambda: fa.split_heads(d2, 1))
    _same_error(lambda: fa.split_heads(x3, 2), lambda: fa.split_heads(d3, 2))
    _same_error(lambda: fa.merge_heads(x3), lambda: fa.merge_heads(d3))
    # the backward checks dout against the cached q (a 1-row forward to get a cache)
    _, cache = fa.attention_forward(x4, x4, x4)
    _, d_cache = fa.attention_forward(d4, d4, d4)
    _same_error(
        lambda: fa.attention_backward(x3, cache), lambda: fa.attention_backward(d3, d_cache)
    )
    _same_error(
        lambda: fa.multi_head_attention_backward(x4, cache),
        lambda: fa.multi_head_attention_backward(d4, d_cache),
    )
    # host arrays are not copied over silently
    with pytest.raises(TypeError, match="must be a DeviceArray"):
        fa.attention_forward(x4, d4, d4)


@pytest.mark.parametrize(
    "B, Tq, Tk, H, Hkv, hs, causal, padding, p, dtype",
    [
        (2, 3, 3, 4, 2, 3, True, False, 0.0, np.float64),  # two query heads per KV head
        (1, 2, 4, 3, 1, 2, True, True, 0.3, np.float64),  # multi-query, dropout, padding
        (2, 3, 3, 2, 2, 2, False, False, 0.0, np.float32),  # multi-head
    ],
)
def test_grouped_query_attention_matches_cpu(B, Tq, Tk, H, Hkv, hs, causal, padding, p, dtype):
    rng = np.random.default_rng(3)
    q, dout = _rand(rng, (B, Tq, H * hs), dtype), _rand(rng, (B, Tq, H * hs), dtype)
    k, v = _rand(rng, (B, Tk, Hkv * hs), dtype), _rand(rng, (B, Tk, Hkv * hs), dtype)
    mask = _padding_mask(B, Tk) if padding else None
    args = (H, Hkv, causal, mask, p, 5, 9)
    out, cache = fa.grouped_query_attention_forward(q, k, v, *args)
    gout, gcache = fa.grouped_query_attention_forward(
        to_device(q), to_device(k), to_device(v), *args
    )
    _check(gout, out, "out")
    grads = fa.grouped_query_attention_backward(dout, cache)
    ggrads = fa.grouped_query_attention_backward(to_device(dout), gcache)
    for name, got, want in zip(("dq", "dk", "dv"), ggrads, grads):
        _check(got, want, name)

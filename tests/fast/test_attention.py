"""fast.attention on its own: finite differences, masks, dropout keep decisions, bad input.

The oracle for gradients is central finite differences in float64 of L = sum(out * G), G a
non-uniform upstream gradient; for masks, the rule itself (a masked key changes nothing); for
dropout, the shared generator's uniforms.
"""

import numba
import numpy as np
import pytest

import fast.attention as fa
import fast.cpu.attention as fa_cpu  # the CPU launchers: where the causal BLOCK size lives
from fast.rng import uniforms

STEP = 1e-6


def _rand(rng, *shape):
    return rng.standard_normal(shape)


def _numeric_grads(f, arrays, G):
    """d sum(f(*arrays) * G) / d each array, by central differences."""
    grads = []
    for a in arrays:
        g = np.zeros_like(a)
        for i in range(a.size):
            old = a.flat[i]
            a.flat[i] = old + STEP
            plus = np.sum(f(*arrays) * G)
            a.flat[i] = old - STEP
            minus = np.sum(f(*arrays) * G)
            a.flat[i] = old
            g.flat[i] = (plus - minus) / (2 * STEP)
        grads.append(g)
    return grads


def _check_grads(analytic, numeric, names=("dq", "dk", "dv")):
    for name, a, n in zip(names, analytic, numeric):
        assert a.shape == n.shape, name
        err = np.abs(a - n)
        bad = err > 1e-7 + 1e-6 * np.abs(n)
        assert not bad.any(), (
            f"{name}: {int(bad.sum())} mismatches, first at {np.argwhere(bad)[:3].tolist()}: "
            f"analytic {a[bad][:3]}, numeric {n[bad][:3]}"
        )


CASES = [
    # (B, H, Tq, Tk, hs, causal, padding, dropout_p)
    (2, 2, 3, 3, 3, True, False, 0.0),  # GPT's causal self-attention
    (2, 1, 3, 4, 2, False, True, 0.0),  # cross-attention with padded keys (a whole row masked)
    (1, 2, 4, 3, 2, True, True, 0.0),  # Tq > Tk: the first query sees no key
    (2, 2, 3, 4, 2, True, False, 0.3),  # dropout on, bottom-right causal
    (1, 1, 5, 5, 2, False, True, 0.5),  # dropout and padding
]


@pytest.mark.parametrize("block", [64, 2])
@pytest.mark.parametrize("B, H, Tq, Tk, hs, causal, padding, p", CASES)
def test_gradients_match_finite_differences(
    monkeypatch, block, B, H, Tq, Tk, hs, causal, padding, p
):
    monkeypatch.setattr(fa_cpu, "BLOCK", block)  # 2: the blocked causal path on tiny shapes
    rng = np.random.default_rng(B * 100 + Tq * 10 + Tk)
    q, k, v = _rand(rng, B, H, Tq, hs), _rand(rng, B, H, Tk, hs), _rand(rng, B, H, Tk, hs)
    mask = None
    if padding:
        mask = np.zeros((B, Tk), dtype=bool)
        mask[0, 1] = True
        mask[-1, :] = B > 1  # a batch row with every key padded
    G = _rand(rng, B, H, Tq, hs)

    def f(q, k, v):
        return fa.attention_forward(q, k, v, causal, mask, p, seed=11, stream=5)[0]

    out, cache = fa.attention_forward(q, k, v, causal, mask, p, seed=11, stream=5)
    assert np.isfinite(out).all()
    _check_grads(fa.attention_backward(G, cache), _numeric_grads(f, [q, k, v], G))


def test_multi_head_gradients_match_finite_differences():
    rng = np.random.default_rng(7)
    B, Tq, Tk, C, H = 2, 3, 4, 6, 3
    q, k, v = _rand(rng, B, Tq, C), _rand(rng, B, Tk, C), _rand(rng, B, Tk, C)
    mask = np.array([[0, 0, 1, 0], [1, 0, 0, 0]])
    G = _rand(rng, B, Tq, C)

    def f(q, k, v):
        return fa.multi_head_attention_forward(q, k, v, H, True, mask, 0.2, 3, 4)[0]

    out, cache = fa.multi_head_attention_forward(q, k, v, H, True, mask, 0.2, 3, 4)
    assert out.shape == (B, Tq, C)
    _check_grads(fa.multi_head_attention_backward(G, cache), _numeric_grads(f, [q, k, v], G))


def test_blocked_causal_path_equals_one_block(monkeypatch):
    """T past two blocks: the block-by-block matmuls give what the full ones give."""
    rng = np.random.default_rng(3)
    q, k, v = _rand(rng, 1, 2, 150, 4), _rand(rng, 1, 2, 170, 4), _rand(rng, 1, 2, 170, 4)
    G = _rand(rng, 1, 2, 150, 4)
    mask = rng.random((1, 170)) < 0.2
    results = []
    for block in (64, 10_000):
        monkeypatch.setattr(fa_cpu, "BLOCK", block)
        out, cache = fa.attention_forward(q, k, v, True, mask, 0.1, 1, 2)
        results.append((out, *fa.attention_backward(G, cache)))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_docstring_example_and_hand_worked_values():
    out, (_, _, _, weights, dropped, scale, causal) = fa.attention_forward(
        [[[[1.0], [0.0]]]], [[[[0.0], [0.0]]]], [[[[1.0], [3.0]]]]
    )
    assert out.tolist() == [[[[2.0], [2.0]]]]  # equal scores: the mean of the values
    assert weights.tolist() == [[[[0.5, 0.5], [0.5, 0.5]]]] and dropped is None
    # causal: query 0 sees only key 0, query 1 both (scores 0 and ln 3 -> weights 1/4, 3/4)
    q = np.array([[[[0.0], [np.log(3.0)]]]])
    k = np.array([[[[0.0], [1.0]]]])
    out, _ = fa.attention_forward(q, k, [[[[1.0], [5.0]]]], causal=True)
    np.testing.assert_allclose(out[0, 0, :, 0], [1.0, 0.25 * 1.0 + 0.75 * 5.0], rtol=1e-14)


def test_causal_future_never_changes_the_past():
    rng = np.random.default_rng(1)
    B, T, C, H = 2, 9, 8, 2
    x = _rand(rng, B, T, C)
    out, _ = fa.multi_head_attention_forward(x, x, x, H, causal=True)
    for t in range(T):
        y = x.copy()
        y[:, t] += 10.0 * _rand(rng, B, C)  # change token t
        out2, _ = fa.multi_head_attention_forward(y, y, y, H, causal=True)
        assert np.array_equal(out2[:, :t], out[:, :t]), f"token {t} changed an earlier output"
        assert not np.allclose(out2[:, t:], out[:, t:])


def test_padded_keys_change_nothing_and_get_no_gradient():
    rng = np.random.default_rng(2)
    B, H, Tq, Tk, hs = 2, 2, 3, 5, 4
    q, k, v = _rand(rng, B, H, Tq, hs), _rand(rng, B, H, Tk, hs), _rand(rng, B, H, Tk, hs)
    mask = np.zeros((B, Tk), dtype=bool)
    mask[0, [1, 4]] = True
    mask[1, 0] = True
    out, cache = fa.attention_forward(q, k, v, key_padding_mask=mask)
    k2, v2 = k.copy(), v.copy()
    k2.transpose(0, 2, 1, 3)[mask] += 100.0  # the padded keys and values, as large as you like
    v2.transpose(0, 2, 1, 3)[mask] -= 100.0
    out2, _ = fa.attention_forward(q, k2, v2, key_padding_mask=mask)
    np.testing.assert_allclose(out2, out, rtol=1e-13, atol=1e-14)
    assert (cache.weights[mask[:, None, None, :].repeat(H, 1).repeat(Tq, 2)] == 0.0).all()
    _, dk, dv = fa.attention_backward(_rand(rng, B, H, Tq, hs), cache)
    assert (dk.transpose(0, 2, 1, 3)[mask] == 0.0).all()
    assert (dv.transpose(0, 2, 1, 3)[mask] == 0.0).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fully_masked_rows_give_zeros_and_no_nan(dtype):
    rng = np.random.default_rng(4)
    B, H, Tq, Tk, hs = 2, 2, 4, 2, 3
    q, k, v = (_rand(rng, B, H, T, hs).astype(dtype) for T in (Tq, Tk, Tk))
    mask = np.array([[True, True], [False, False]])  # batch 0: every key padded
    # causal with Tq > Tk: queries 0 and 1 of batch 1 see no key either
    out, cache = fa.attention_forward(q, k, v, causal=True, key_padding_mask=mask, dropout_p=0.5)
    dq, dk, dv = fa.attention_backward(_rand(rng, B, H, Tq, hs).astype(dtype), cache)
    for t in (out, dq, dk, dv):
        assert np.isfinite(t).all() and t.dtype == dtype
    assert (out[0] == 0).all() and (dq[0] == 0).all() and (dk[0] == 0).all() and (dv[0] == 0).all()
    assert (out[1, :, :2] == 0).all() and (dq[1, :, :2] == 0).all()
    assert (out[1, :, 2:] != 0).any()


@pytest.mark.parametrize("p", [0.1, 0.5, 1.0])
def test_dropout_keeps_what_the_shared_generator_says(p):
    rng = np.random.default_rng(5)
    B, H, Tq, Tk, hs = 2, 3, 5, 7, 2  # odd sizes: rows straddle Philox's 4-word blocks
    q, k, v = _rand(rng, B, H, Tq, hs), _rand(rng, B, H, Tk, hs), _rand(rng, B, H, Tk, hs)
    seed, stream = 2**40 + 3, 2**33 + 9
    out, cache = fa.attention_forward(q, k, v, dropout_p=p, seed=seed, stream=stream)
    weights, dropped = cache.weights, cache.dropped
    keep = uniforms(seed, stream, weights.size).reshape(weights.shape) >= p
    scale = 1.0 / (1.0 - p) if p < 1.0 else 0.0
    np.testing.assert_array_equal(dropped, np.where(keep, weights * scale, 0.0))
    np.testing.assert_allclose(out, dropped @ v, rtol=1e-13, atol=1e-15)
    if p == 1.0:
        assert (out == 0).all()
    out2, _ = fa.attention_forward(q, k, v, dropout_p=p, seed=seed, stream=stream + 1)
    assert p == 1.0 or not np.array_equal(out2, out)  # another stream, another mask


def test_dtypes_float32_kept_and_close_to_float64():
    rng = np.random.default_rng(6)
    x64 = _rand(rng, 2, 5, 8)
    g64 = _rand(rng, 2, 5, 8)
    x32, g32 = x64.astype(np.float32), g64.astype(np.float32)
    o32, c32 = fa.multi_head_attention_forward(x32, x32, x32, 2, causal=True)
    o64, c64 = fa.multi_head_attention_forward(x64, x64, x64, 2, causal=True)
    assert o32.dtype == np.float32 and c32[3].dtype == np.float32
    np.testing.assert_allclose(o32, o64, rtol=1e-5, atol=1e-5)
    for a, b in zip(
        fa.multi_head_attention_backward(g32, c32), fa.multi_head_attention_backward(g64, c64)
    ):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    # float64 dout on a float32 cache stays float32; mixed inputs and lists go to float64
    assert fa.multi_head_attention_backward(g64, c32)[0].dtype == np.float32
    assert fa.multi_head_attention_forward(x32, x64, x64, 2)[0].dtype == np.float64
    assert fa.attention_forward([[[[1]]]], [[[[2]]]], [[[[3]]]])[0].dtype == np.float64


def test_results_do_not_depend_on_the_thread_count():
    rng = np.random.default_rng(8)
    x = _rand(rng, 3, 70, 12).astype(np.float32)
    g = _rand(rng, 3, 70, 12).astype(np.float32)
    before = numba.get_num_threads()
    results = []
    try:
        for n in {1, before}:
            numba.set_num_threads(n)
            out, cache = fa.multi_head_attention_forward(x, x, x, 3, True, None, 0.1, 1, 2)
            results.append((out, *fa.multi_head_attention_backward(g, cache)))
    finally:
        numba.set_num_threads(before)
    for a, b in zip(results[0], results[-1]):
        assert np.array_equal(a, b)


def test_split_merge_and_qkv_round_trips():
    x = np.arange(2 * 3 * 6, dtype=np.float64).reshape(2, 3, 6)
    heads = fa.split_heads(x, 3)  # (B, H, T, hs) = (2, 3, 3, 2)
    assert heads.shape == (2, 3, 3, 2)
    assert heads[0, 1, 2].tolist() == [14.0, 15.0]  # head 1 of position 2: channels 2, 3
    assert np.array_equal(fa.merge_heads(heads), x)
    assert fa.merge_heads(heads).flags.c_contiguous
    qkv = np.arange(2 * 3 * 9, dtype=np.float32).reshape(2, 3, 9)
    q, k, v = fa.split_qkv(qkv)
    assert q[0, 0].tolist() == [0, 1, 2] and v[0, 0].tolist() == [6, 7, 8]
    back = fa.concat_qkv(q, k, v)
    assert back.dtype == np.float32 and np.array_equal(back, qkv)
    assert fa.split_heads([[[1.0, 2.0]]], 2).tolist() == [[[[1.0]], [[2.0]]]]


def _good(B=2, H=2, Tq=3, Tk=4, hs=2):
    z = np.zeros
    return z((B, H, Tq, hs)), z((B, H, Tk, hs)), z((B, H, Tk, hs))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(q=np.zeros((2, 3, 2))), ValueError, "q must have shape"),
        (dict(k=np.zeros((2, 2, 4, 3))), ValueError, "k must have shape"),
        (dict(k=np.zeros((1, 2, 4, 2))), ValueError, "k must have shape"),
        (dict(v=np.zeros((2, 2, 5, 2))), ValueError, "v must have shape"),
        (dict(q=[[[[1.0], [2.0, 3.0]]]]), ValueError, "q must be rectangular"),
        (dict(q=np.zeros((2, 2, 3, 0)), k=np.zeros((2, 2, 4, 0)), v=np.zeros((2, 2, 4, 0))),
         ValueError, "head size"),
        (dict(key_padding_mask=np.zeros((2, 3))), ValueError, r"mask must have shape \(2, 4\)"),
        (dict(key_padding_mask=[[0, 1, 0, 2], [0] * 4]), ValueError, r"got 2 at \[0\]\[3\]"),
        (dict(key_padding_mask=np.full((2, 4), 0.5)), ValueError, "mask must hold bools"),
        (dict(key_padding_mask=np.full((2, 4), "a")), ValueError, "mask must hold bools"),
        (dict(dropout_p=1.5), ValueError, "dropout_p must be in"),
        (dict(dropout_p=float("nan")), ValueError, "dropout_p must be in"),
        (dict(dropout_p="0.1"), TypeError, "dropout_p must be a float"),
        (dict(dropout_p=True), TypeError, "dropout_p must be a float"),
        (dict(dropout_p=0.1, seed=-1), ValueError, "seed must be in"),
        (dict(dropout_p=0.1, stream=1.5), TypeError, "stream must be an int"),
        (dict(q=np.full((2, 2, 3, 2), "x")), TypeError, "q must hold numbers"),
    ],
)  # fmt: skip
def test_attention_forward_rejects_bad_input(kwargs, error, match):
    q, k, v = _good()
    args = dict(q=q, k=k, v=v) | kwargs
    with pytest.raises(error, match=match):
        fa.attention_forward(**args)


def test_multi_head_and_helpers_reject_bad_input():
    x = np.zeros((2, 3, 6))
    with pytest.raises(ValueError, match="divisible by n_head=4"):
        fa.multi_head_attention_forward(x, x, x, 4)
    for n_head in (0, -1, 2.0, True, "2"):
        with pytest.raises(ValueError, match="n_head must be a positive int"):
            fa.multi_head_attention_forward(x, x, x, n_head)
    assert fa.multi_head_attention_forward(x, x, x, np.int64(2))[0].shape == x.shape
    with pytest.raises(ValueError, match="k and v must have shape"):
        fa.multi_head_attention_forward(x, x, np.zeros((2, 3, 4)), 2)
    with pytest.raises(ValueError, match="k and v must have shape"):
        fa.multi_head_attention_forward(x, np.zeros((2, 4, 6)), np.zeros((2, 5, 6)), 2)
    with pytest.raises(ValueError, match="q must have shape"):
        fa.multi_head_attention_forward(np.zeros((3, 6)), x, x, 2)
    with pytest.raises(ValueError, match=r"key_padding_mask must have shape \(2, 3\)"):
        fa.multi_head_attention_forward(x, x, x, 2, key_padding_mask=np.zeros((3, 2)))
    _, cache = fa.multi_head_attention_forward(x, x, x, 2)
    with pytest.raises(ValueError, match=r"dout must have shape \(2, 3, 6\)"):
        fa.multi_head_attention_backward(np.zeros((2, 3, 5)), cache)
    _, cache = fa.attention_forward(*_good())
    with pytest.raises(ValueError, match=r"dout must have shape \(2, 2, 3, 2\)"):
        fa.attention_backward(np.zeros((2, 2, 4, 2)), cache)
    with pytest.raises(ValueError, match="x must have shape"):
        fa.split_heads(np.zeros((2, 3)), 1)
    with pytest.raises(ValueError, match="x must have shape"):
        fa.merge_heads(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match=r"qkv must have shape \(B, T, 3C\)"):
        fa.split_qkv(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="v must have shape"):
        fa.concat_qkv(x, x, np.zeros((2, 3, 5)))

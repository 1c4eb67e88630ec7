"""reference/attention.py: hand-worked values, finite differences, masks and dropout."""

import copy
import math

import pytest

from reference import attention as A
from reference.nested import flatten, shape_of
from reference.rng import uniform
from tests.reference.gradcheck import assert_close, check_op_gradients, random_tensor


def test_hand_computed_2x2():
    # One head, T = 2, hs = 2: q = k = identity, so scores = I / sqrt(2).
    q = [[[[1.0, 0.0], [0.0, 1.0]]]]
    k = [[[[1.0, 0.0], [0.0, 1.0]]]]
    v = [[[[1.0, 2.0], [3.0, 4.0]]]]
    s = 1.0 / (1.0 + math.exp(-1.0 / math.sqrt(2.0)))  # softmax([a, 0])[0], a = 1/sqrt(2)
    out, cache = A.attention_forward(q, k, v)
    assert_close(cache.weights, [[[[s, 1 - s], [1 - s, s]]]], "weights", atol=1e-15)
    expected = [
        [s * 1 + (1 - s) * 3, s * 2 + (1 - s) * 4],
        [(1 - s) * 1 + s * 3, (1 - s) * 2 + s * 4],
    ]
    assert_close(out, [[expected]], "out", atol=1e-15)
    # causal: query 0 sees key 0 only; query 1 sees both, weights softmax([0, a]) = [1-s, s]
    out, _ = A.attention_forward(q, k, v, causal=True)
    assert_close(out, [[[[1.0, 2.0], expected[1]]]], "causal out", atol=1e-15)


def test_split_merge_heads_and_qkv():
    x = [[[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0]]]  # (B=1, T=2, C=4)
    heads = A.split_heads(x, 2)
    assert heads == [[[[0.0, 1.0], [4.0, 5.0]], [[2.0, 3.0], [6.0, 7.0]]]]  # (1, 2, 2, 2)
    assert A.merge_heads(heads) == x
    qkv = random_tensor((2, 3, 9), 1)
    q, k, v = A.split_qkv(qkv)
    assert shape_of(q) == shape_of(k) == shape_of(v) == (2, 3, 3)
    assert q[1][2] == qkv[1][2][:3] and v[0][0] == qkv[0][0][6:]
    assert A.concat_qkv(q, k, v) == qkv


def _mask(B, Tk, padded):
    return [[(b, j) in padded for j in range(Tk)] for b in range(B)]


# (B, H, Tq, Tk, hs, causal, padded keys (b, j), dropout_p)
CASES = [
    (1, 1, 1, 1, 1, False, (), 0.0),  # T = 1, H = 1
    (2, 1, 3, 3, 2, True, (), 0.0),  # causal self-attention
    (2, 2, 2, 3, 3, False, ((0, 1),), 0.0),  # cross-attention with a padded key
    (1, 3, 3, 3, 1, True, ((0, 0),), 0.0),  # causal + padding: query 0 fully masked
    (2, 2, 3, 3, 2, True, ((1, 2),), 0.4),  # dropout on the weights
    (1, 1, 3, 2, 2, True, (), 0.0),  # Tq > Tk, bottom-right causal: query 0 sees nothing
]


@pytest.mark.parametrize("B, H, Tq, Tk, hs, causal, padded, p", CASES)
def test_attention_gradients(B, H, Tq, Tk, hs, causal, padded, p):
    inputs = {
        "q": random_tensor((B, H, Tq, hs), 2, -2.0, 2.0),
        "k": random_tensor((B, H, Tk, hs), 3, -2.0, 2.0),
        "v": random_tensor((B, H, Tk, hs), 4),
    }
    mask = _mask(B, Tk, padded) if padded else None
    options = dict(causal=causal, key_padding_mask=mask, dropout_p=p, seed=5, stream=6)
    dout = random_tensor((B, H, Tq, hs), 7)
    out, cache = A.attention_forward(**inputs, **options)
    assert all(math.isfinite(o) for o in flatten(out))
    dq, dk, dv = A.attention_backward(dout, cache)

    def forward(**kw):
        return A.attention_forward(**kw, **options)[0]

    check_op_gradients(forward, inputs, dout, {"q": dq, "k": dk, "v": dv})


@pytest.mark.parametrize(
    "B, Tq, Tk, C, n_head, causal, padded, p",
    [
        (2, 3, 3, 6, 3, True, (), 0.0),
        (1, 1, 1, 3, 1, False, (), 0.0),
        (2, 2, 3, 4, 2, False, ((1, 0),), 0.3),  # cross-attention, padding and dropout
    ],
)
def test_multi_head_attention_gradients(B, Tq, Tk, C, n_head, causal, padded, p):
    inputs = {
        "q": random_tensor((B, Tq, C), 8, -2.0, 2.0),
        "k": random_tensor((B, Tk, C), 9, -2.0, 2.0),
        "v": random_tensor((B, Tk, C), 10),
    }
    mask = _mask(B, Tk, padded) if padded else None
    options = dict(causal=causal, key_padding_mask=mask, dropout_p=p, seed=1, stream=2)
    dout = random_tensor((B, Tq, C), 11)
    _, cache = A.multi_head_attention_forward(**inputs, n_head=n_head, **options)
    dq, dk, dv = A.multi_head_attention_backward(dout, cache)

    def forward(**kw):
        return A.multi_head_attention_forward(**kw, n_head=n_head, **options)[0]

    check_op_gradients(forward, inputs, dout, {"q": dq, "k": dk, "v": dv})


def test_causality_future_never_changes_the_past():
    B, T, C = 1, 5, 4
    x = random_tensor((B, T, C), 12)
    base, _ = A.multi_head_attention_forward(x, x, x, 2, causal=True)
    for t in range(T):
        changed = [[list(row) for row in seq] for seq in x]
        changed[0][t] = [v + 1.0 for v in changed[0][t]]
        out, _ = A.multi_head_attention_forward(changed, changed, changed, 2, causal=True)
        assert out[0][:t] == base[0][:t], f"changing position {t} changed an earlier output"
        assert out[0][t] != base[0][t]


def test_key_padding_invariance_and_zero_weight():
    B, H, T, hs = 2, 2, 4, 3
    q, k, v = (random_tensor((B, H, T, hs), s) for s in (13, 14, 15))
    mask = [[0, 0, 1, 1], [False, True, False, False]]  # 0/1 and bools both work
    out, cache = A.attention_forward(q, k, v, key_padding_mask=mask)
    for b, h, i in ((0, 1, 2), (1, 0, 3)):
        weights = cache.weights[b][h][i]
        assert [weights[j] for j in range(T) if mask[b][j]] == [0.0] * sum(mask[b])
        assert_close(sum(weights), 1.0, "weights sum", atol=1e-15)
    k2, v2 = copy.deepcopy(k), copy.deepcopy(v)
    for b, j in ((0, 2), (0, 3), (1, 1)):  # scribble over every padded key and value
        for h in range(H):
            k2[b][h][j] = [100.0] * hs
            v2[b][h][j] = [-50.0] * hs
    out2, _ = A.attention_forward(q, k2, v2, key_padding_mask=mask)
    assert out2 == out


def test_fully_masked_row_gives_zeros_not_nan():
    q, k, v = (random_tensor((2, 1, 2, 2), s) for s in (16, 17, 18))
    mask = [[True, True], [False, True]]  # batch 0: every key padded
    out, cache = A.attention_forward(q, k, v, key_padding_mask=mask)
    assert out[0] == [[[0.0, 0.0], [0.0, 0.0]]]
    assert out[1][0][0] == v[1][0][0]  # batch 1 sees key 0 only
    dq, dk, dv = A.attention_backward(random_tensor((2, 1, 2, 2), 19), cache)
    assert all(math.isfinite(g) for g in flatten([dq, dk, dv]))
    assert flatten(dq[0]) == [0.0] * 4 and flatten(dk[0]) == [0.0] * 4


def test_attention_dropout_follows_the_shared_rule():
    B, H, Tq, Tk, hs = 2, 2, 3, 4, 2
    q, k, v = (random_tensor((B, H, T, hs), s) for s, T in ((20, Tq), (21, Tk), (22, Tk)))
    p, seed, stream = 0.5, 3, 77
    out, cache = A.attention_forward(q, k, v, dropout_p=p, seed=seed, stream=stream)
    plain, plain_cache = A.attention_forward(q, k, v)
    assert cache.weights == plain_cache.weights  # dropout comes after the softmax
    assert plain_cache.dropped is None
    for b in range(B):
        for h in range(H):
            for i in range(Tq):
                index = ((b * H + h) * Tq + i) * Tk  # flat index of weight (b, h, i, 0)
                u = [uniform(seed, stream, index + j) for j in range(Tk)]
                keep = [(1.0 / (1.0 - p)) if u[j] >= p else 0.0 for j in range(Tk)]
                w = cache.weights[b][h][i]
                assert cache.dropped[b][h][i] == [w[j] * keep[j] for j in range(Tk)]
                expected = [
                    sum(w[j] * keep[j] * v[b][h][j][d] for j in range(Tk)) for d in range(hs)
                ]
                assert_close(out[b][h][i], expected, f"out[{b}][{h}][{i}]", atol=1e-15)
    again, _ = A.attention_forward(q, k, v, dropout_p=p, seed=seed, stream=stream)
    other, _ = A.attention_forward(q, k, v, dropout_p=p, seed=seed, stream=stream + 1)
    assert again == out != other


def test_validation_errors():
    x = random_tensor((1, 2, 6), 23)
    with pytest.raises(ValueError, match=r"n_embd \(C=6\) must be divisible by n_head=4"):
        A.multi_head_attention_forward(x, x, x, 4)
    with pytest.raises(ValueError, match=r"n_head must be a positive int, got 0"):
        A.split_heads(x, 0)
    with pytest.raises(ValueError, match=r"k and v must have shape \(1, Tk, 6\)"):
        A.multi_head_attention_forward(x, random_tensor((1, 2, 4), 1), x, 2)
    q = random_tensor((1, 1, 2, 3), 24)
    with pytest.raises(ValueError, match=r"k must have shape \(1, 1, Tk, 3\) to match q"):
        A.attention_forward(q, random_tensor((1, 1, 2, 2), 25), q)
    with pytest.raises(ValueError, match=r"v must have shape \(1, 1, 2, 3\), got \(1, 1, 1, 3\)"):
        A.attention_forward(q, q, random_tensor((1, 1, 1, 3), 26))
    with pytest.raises(
        ValueError, match=r"key_padding_mask must have shape \(1, 2\), got \(1, 3\)"
    ):
        A.attention_forward(q, q, q, key_padding_mask=[[0, 0, 1]])
    with pytest.raises(ValueError, match=r"key_padding_mask must hold bools or 0/1, got 2"):
        A.attention_forward(q, q, q, key_padding_mask=[[0, 2]])
    with pytest.raises(ValueError, match=r"dropout dropout_p must be in \[0, 1\], got 1.5"):
        A.attention_forward(q, q, q, dropout_p=1.5)
    with pytest.raises(ValueError, match=r"qkv must have shape \(B, T, 3C\), got \(1, 2, 7\)"):
        A.split_qkv(random_tensor((1, 2, 7), 27))

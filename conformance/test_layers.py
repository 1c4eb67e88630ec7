"""Transformer layer ops across backends: every forward, every gradient, same errors.

Shapes are generated (odd sizes, ones); values too; the upstream gradient is non-uniform.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference
from conformance.tolerance import assert_close, float32_tol

finite = st.floats(-4.0, 4.0, allow_nan=False, allow_infinity=False)


def array(draw, shape):
    n = int(np.prod(shape))
    return np.array(draw(st.lists(finite, min_size=n, max_size=n))).reshape(shape)


def upstream(shape, salt=0.0):
    n = int(np.prod(shape))
    return np.cos(np.arange(n) * 0.91 + salt).reshape(shape) * 1.5


shapes3 = st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 6))


@given(shapes3, st.data())
def test_layer_norm(candidate, shape, data):
    x = array(data.draw, shape)
    C = shape[-1]
    w, b = array(data.draw, (C,)), array(data.draw, (C,))
    eps = data.draw(st.sampled_from([1e-5, 1e-12]))
    if C > 1 and np.ptp(x, axis=-1).min() < 1e-3:
        x = x + np.arange(C) * 0.1  # keep every row away from zero variance (ill-conditioned)
    out, cache = candidate.layer_norm_forward(x, w, b, eps)
    rout, rcache = reference.layer_norm_forward(x.tolist(), w.tolist(), b.tolist(), eps)
    assert_close(out, rout, what="layer norm")
    d = upstream(shape)
    for got, want, name in zip(
        candidate.layer_norm_backward(d, cache),
        reference.layer_norm_backward(d.tolist(), rcache),
        ("dx", "dweight", "dbias"),
    ):
        assert_close(got, want, rtol=1e-8, atol=1e-10, what=name)


@given(shapes3, st.integers(1, 5), st.booleans(), st.sampled_from(["out_in", "in_out"]), st.data())
def test_linear(candidate, shape, c_out, has_bias, layout, data):
    x = array(data.draw, shape)
    C_in = shape[-1]
    w = array(data.draw, (c_out, C_in) if layout == "out_in" else (C_in, c_out))
    b = array(data.draw, (c_out,)) if has_bias else None
    out, cache = candidate.linear_forward(x, w, b, layout)
    rout, rcache = reference.linear_forward(
        x.tolist(), w.tolist(), None if b is None else b.tolist(), layout
    )
    assert_close(out, rout, what="linear")
    d = upstream(shape[:-1] + (c_out,))
    got = candidate.linear_backward(d, cache)
    want = reference.linear_backward(d.tolist(), rcache)
    for g, r, name in zip(got, want, ("dx", "dweight", "dbias")):
        if r is None:
            assert g is None
        else:
            assert_close(g, r, what=name)


@given(shapes3, st.data())
def test_linear_float32(candidate, shape, data):
    x = array(data.draw, shape)
    w = array(data.draw, (3, shape[-1]))
    out, _ = candidate.linear_forward(x.astype(np.float32), w.astype(np.float32))
    rout, _ = reference.linear_forward(x.tolist(), w.tolist())
    tol = float32_tol(shape[-1])
    assert_close(out, rout, rtol=tol, atol=tol * 16, what="float32 linear")


@given(
    st.integers(1, 7), st.integers(1, 5), st.tuples(st.integers(1, 3), st.integers(1, 4)), st.data()
)
def test_embeddings(candidate, num, C, lead, data):
    w = array(data.draw, (num, C))
    ids = np.array(
        data.draw(
            st.lists(
                st.integers(0, num - 1), min_size=lead[0] * lead[1], max_size=lead[0] * lead[1]
            )
        )
    ).reshape(lead)
    out, cache = candidate.embedding_forward(w, ids)
    rout, rcache = reference.embedding_forward(w.tolist(), ids.tolist())
    assert_close(out, rout, what="embedding")
    d = upstream(lead + (C,))
    assert_close(
        candidate.embedding_backward(d, cache),
        reference.embedding_backward(d.tolist(), rcache),
        what="dweight",
    )
    B, T = lead
    if T <= num:
        start = data.draw(st.integers(0, num - T))
        out, cache = candidate.position_embedding_forward(w, B, T, start)
        rout, rcache = reference.position_embedding_forward(w.tolist(), B, T, start)
        assert_close(out, rout, what="positions")
        assert_close(
            candidate.position_embedding_backward(d, cache),
            reference.position_embedding_backward(d.tolist(), rcache),
            what="dwpe",
        )


@given(st.integers(1, 2), st.integers(1, 6), st.integers(1, 7), st.integers(0, 50))
def test_sinusoidal_positions(candidate, B, T, C, start):
    assert_close(
        candidate.sinusoidal_position_encoding(B, T, C, start),
        reference.sinusoidal_position_encoding(B, T, C, start),
        rtol=1e-12,
        atol=1e-12,
        what="sinusoidal",
    )


@pytest.mark.parametrize("name", ["gelu", "gelu_erf", "relu", "tanh"])
@given(shapes3, st.data())
def test_activations(candidate, name, shape, data):
    x = array(data.draw, shape)
    out, cache = candidate.activation_forward(x, name)
    rout, rcache = reference.activation_forward(x.tolist(), name)
    assert_close(out, rout, what=name)
    d = upstream(shape)
    assert_close(
        candidate.activation_backward(d, cache),
        reference.activation_backward(d.tolist(), rcache),
        what=f"d{name}",
    )


@given(
    shapes3,
    st.sampled_from([0.0, 0.1, 0.5, 1.0]),
    st.integers(0, 2**64 - 1),
    st.integers(0, 2**40),
    st.data(),
)
def test_dropout_masks_are_identical(candidate, shape, p, seed, stream, data):
    x = array(data.draw, shape)
    out, cache = candidate.dropout_forward(x, p, seed, stream)
    rout, rcache = reference.dropout_forward(x.tolist(), p, seed, stream)
    assert_close(out, rout, rtol=0, atol=0, what="dropout output (bit-identical)")
    d = upstream(shape)
    assert_close(
        candidate.dropout_backward(d, cache),
        reference.dropout_backward(d.tolist(), rcache),
        rtol=0,
        atol=0,
        what="dropout gradient",
    )
    n = int(np.prod(shape))
    assert_close(
        candidate.dropout_keep(n, p, seed, stream),
        reference.dropout_keep(n, p, seed, stream),
        rtol=0,
        atol=0,
        what="keep",
    )


@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 6), st.data())
def test_cross_entropy_and_residual(candidate, B, T, V, data):
    z = array(data.draw, (B, T, V)) * 5
    t = np.array(
        data.draw(st.lists(st.integers(0, V - 1) | st.just(-100), min_size=B * T, max_size=B * T))
    ).reshape(B, T)
    loss, cache = candidate.cross_entropy_forward(z, t)
    rloss, rcache = reference.cross_entropy_forward(z.tolist(), t.tolist())
    assert_close(loss, rloss, what="cross-entropy")
    assert_close(
        candidate.cross_entropy_backward(0.7, cache),
        reference.cross_entropy_backward(0.7, rcache),
        what="dlogits",
    )
    y = upstream((B, T, V), 1.0)
    out, cache = candidate.residual_forward(z, y)
    assert_close(out, reference.residual_forward(z.tolist(), y.tolist())[0], what="residual")
    dx, dy = candidate.residual_backward(y, cache)
    assert_close(dx, y, what="dx")
    assert_close(dy, y, what="dy")


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.layer_norm_forward([[1.0, 2.0]], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]),
        lambda m: m.linear_forward([[1.0, 2.0]], [[1.0, 2.0, 3.0]]),
        lambda m: m.linear_forward([[1.0]], [[1.0]], weight_layout="transposed"),
        lambda m: m.embedding_forward([[1.0], [2.0]], [[0, 2]]),
        lambda m: m.embedding_forward([[1.0], [2.0]], [[0, -1]]),
        lambda m: m.position_embedding_forward([[1.0], [2.0]], 1, 3),
        lambda m: m.dropout_forward([1.0], 1.5),
        lambda m: m.activation_forward([1.0], "swish"),
        lambda m: m.dropout_stream(0, 2**16),
    ],
)
def test_same_errors(candidate, call):
    with pytest.raises(ValueError):
        call(reference)
    with pytest.raises(ValueError):
        call(candidate)


W2 = [[0.5, -0.5], [1.0, 2.0], [3.0, 4.0]]  # a (3, 2) table
NAN = float("nan")


@pytest.mark.parametrize(
    "call, error, argument",
    [
        # silent nonsense before: p outside [0, 1] made multipliers 0.5 or all zeros
        (lambda m: m.dropout_keep(4, -1.0, 0, 0), ValueError, "p"),
        (lambda m: m.dropout_keep(4, 2.0, 0, 0), ValueError, "p"),
        (lambda m: m.dropout_keep(4, NAN, 0, 0), ValueError, "p"),
        (lambda m: m.dropout_forward([1.0], 0.5, seed=1.5), TypeError, "seed"),
        (lambda m: m.dropout_forward([1.0], 0.0, stream=-1), ValueError, "stream"),
        # a fractional start used to read position 0
        (lambda m: m.position_embedding_forward(W2, 1, 1, start=0.5), TypeError, "start"),
        (lambda m: m.position_embedding_forward(W2, -1, 2), ValueError, "B"),
        (lambda m: m.position_ids(2, -3), ValueError, "T"),
        (lambda m: m.position_ids(2**20, 2**20), ValueError, "positions"),
        (lambda m: m.sinusoidal_position_encoding(1, 2, 0), ValueError, "C"),
        (lambda m: m.sinusoidal_position_encoding(1, 2, 2, start=-1), ValueError, "start"),
        (lambda m: m.normal_tensor((-1, 4), 0.02, 0, 0), ValueError, "shape"),
        (lambda m: m.normal_tensor((2**40, 2**40), 0.02, 0, 0), ValueError, "shape"),
        (lambda m: m.normal_tensor((2, 2), NAN, 0, 0), ValueError, "std"),
        # the generator: a request that would run for ever is refused
        (lambda m: m.uniforms(0, 0, 2**62), ValueError, "n"),
        (lambda m: m.uniforms(0, 0, 2, start=2**64 - 1), ValueError, "start + n"),
        (lambda m: m.random_u32s(0, 0, 1.0), TypeError, "n"),
        (lambda m: m.permutation(0, 0, -1), ValueError, "n"),
        (lambda m: m.permutation(0, 0, 2.0), TypeError, "n"),
        # ids beyond int64 are out of range (not "the wrong dtype")
        (lambda m: m.embedding_forward(W2, [[0, 2**70]]), ValueError, "idx"),
        (lambda m: m.embedding_forward(W2, [[-1, 2**63]]), ValueError, "idx"),
        # degenerate sizes: the same clear error, not NaN in one and ZeroDivisionError in the other
        (lambda m: m.layer_norm_forward([[2.0, 2.0]], [1.0] * 2, [0.0] * 2, 0), ValueError, "eps"),
        (lambda m: m.layer_norm_forward([[1.0]], [1.0], [0.0], NAN), ValueError, "eps"),
        (lambda m: m.layer_norm_forward([[1.0]], [1.0], [0.0], "1e-5"), TypeError, "eps"),
        (lambda m: m.layer_norm_forward([[]], [], []), ValueError, "weight"),
        (lambda m: m.Embedding(-1, 4), ValueError, "num_embeddings"),
        (lambda m: m.Embedding(0, 4), ValueError, "num_embeddings"),
        (lambda m: m.Embedding(4, 0), ValueError, "embedding_dim"),
        (lambda m: m.Embedding(4.0, 2), TypeError, "num_embeddings"),
        (lambda m: m.Linear(0, 3), ValueError, "in_features"),
        (lambda m: m.Linear(3, 2, bias="yes"), TypeError, "bias"),
        (lambda m: m.Conv1D(3, -2), ValueError, "out_features"),
        (lambda m: m.LayerNorm(0), ValueError, "dim"),
        (lambda m: m.LayerNorm(4, eps=0.0), ValueError, "eps"),
        (lambda m: m.Dropout(NAN), ValueError, "p"),
        (
            lambda m: m.GPTConfig(
                vocab_size=4, block_size=2, n_layer=1, n_head=1, n_embd=2, layer_norm_epsilon=0.0
            ),
            ValueError,
            "layer_norm_epsilon",
        ),
    ],
)
def test_same_error_for_bad_arguments(candidate, call, error, argument):
    """Both backends refuse the bad argument with the same error type, naming the argument."""
    raised = []
    for backend in (reference, candidate):
        with pytest.raises(error) as info:
            call(backend)
        assert argument in str(info.value), (backend.__name__, str(info.value))
        raised.append(type(info.value))
    assert raised[0] is raised[1]

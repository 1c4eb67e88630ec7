"""fast's chapter one on its own: finite differences, storage semantics, bad input."""

import numpy as np
import pytest

import fast

H = 1e-6


def test_mlp_gradients_match_finite_differences():
    m = fast.MLP([3, 5, 4], activation="gelu", output="softmax", seed=2, dtype="float64")
    x = np.linspace(-1, 1, 6).reshape(2, 3)
    y = np.array([3, 1])
    m(x, y)
    m.zero_grad()
    dx = m.backward()
    for name, p in m.named_parameters():
        flat, grad = p.data.reshape(-1), p.grad.reshape(-1)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + H
            lp = m(x, y)[1]
            flat[i] = old - H
            lm = m(x, y)[1]
            flat[i] = old
            assert grad[i] == pytest.approx((lp - lm) / (2 * H), rel=1e-5, abs=1e-9), name
    for i in range(x.size):
        xp, xm = x.copy(), x.copy()
        xp.flat[i] += H
        xm.flat[i] -= H
        assert dx.flat[i] == pytest.approx((m(xp, y)[1] - m(xm, y)[1]) / (2 * H), abs=1e-8)


def test_dtypes():
    assert fast.MLP([2, 2]).layers[0].weight.data.dtype == np.float32
    assert fast.MLP([2, 2], dtype="float64").layers[0].weight.data.dtype == np.float64
    out, loss = fast.MLP([2, 2])(np.ones((1, 2), dtype=np.float64), [1])
    assert out.dtype == np.float32 and isinstance(loss, float)
    with pytest.raises(ValueError, match="dtype must be 'float32' or 'float64'"):
        fast.MLP([2, 2], dtype="float16")


def test_optimizer_packs_parameters_into_one_buffer():
    m = fast.MLP([4, 3, 2], seed=0)
    before = m.state_dict()
    opt = fast.SGD(m.parameters(), lr=0.1)
    ((w, g, _),) = opt.param_groups[0]["_packed"].buffers
    assert w.size == m.num_parameters()
    for name, p in m.named_parameters():
        assert np.shares_memory(p.data, w) and np.shares_memory(p.grad, g)
        assert np.array_equal(p.data, before[name])  # packing kept the values
    m(np.ones((2, 4)), [0, 1])
    m.backward()
    assert g.any()
    m.zero_grad()
    assert not g.any()


def test_fit_with_arrays_and_every_stopping_rule():
    x, y = fast.load_digits()
    m = fast.MLP([64, 16, 10], activation="relu", seed=0)
    r = fast.fit(
        m,
        fast.Adam(m.parameters(), lr=0.01),
        x[:300],
        y[:300],
        batch_size=32,
        epochs=50,
        loss_change_threshold=1e-3,
    )
    assert r.stopped_by in {"loss_change", "max_epochs"} and r.final_loss < r.loss_history[0]
    r = fast.fit(m, fast.SGD(m.parameters(), lr=0.01), x[:300], y[:300], max_steps=3)
    assert (r.stopped_by, r.steps) == ("max_steps", 3)


@pytest.mark.parametrize(
    "x, y, error, match",
    [
        (np.ones((2, 3)), [0, 1], ValueError, r"must have 4 inputs"),
        (np.ones((2, 4)), [0, 9], ValueError, r"targets\[1\] = 9 out of range"),
        (np.ones((2, 4)), [0.5, 1.0], TypeError, "must hold ints"),
        (np.array([[1.0, np.inf, 0, 0]]), [0], ValueError, r"x\[0\]\[1\] must be finite"),
        ([[1.0, 2.0], [3.0]], None, ValueError, "rectangular"),
        (np.ones((0, 4)), None, ValueError, "non-empty batch"),
        (np.array([["a"] * 4]), None, TypeError, "must hold numbers"),
    ],
)
def test_bad_input_is_caught_before_any_kernel(x, y, error, match):
    with pytest.raises(error, match=match):
        fast.MLP([4, 3, 2])(x, y)

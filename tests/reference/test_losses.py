"""Activations and losses: hand-worked values, stability, and gradients by finite differences."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference import (
    ACTIVATIONS,
    get_activation,
    log_softmax,
    mse_loss,
    softmax,
    softmax_cross_entropy,
)

H = 1e-6


def central(f, x):
    return (f(x + H) - f(x - H)) / (2 * H)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@given(x=st.floats(-6, 6))
def test_activation_derivatives_match_finite_differences(name, x):
    f, df = ACTIVATIONS[name]
    if name in ("step", "relu") and abs(x) < 1e-4:
        return  # the kink: no derivative to compare
    assert df(x) == pytest.approx(central(f, x), rel=1e-6, abs=1e-7)


def test_activation_values_by_hand():
    A = {k: f for k, (f, _) in ACTIVATIONS.items()}
    assert A["step"](0.0) == 1.0 and A["step"](-1e-9) == 0.0
    assert A["sigmoid"](0.0) == 0.5 and A["sigmoid"](-1000.0) == 0.0  # no overflow
    assert A["sigmoid"](1000.0) == 1.0
    assert A["relu"](-3.0) == 0.0 and A["relu"](2.5) == 2.5
    assert A["tanh"](0.0) == 0.0
    # GELU(1): tanh form 0.5 (1 + tanh(sqrt(2/pi) 1.044715)); erf form Phi(1) = 0.841344746...
    assert A["gelu"](1.0) == pytest.approx(0.8411919906, abs=1e-9)
    assert A["gelu_erf"](1.0) == pytest.approx(0.8413447461, abs=1e-9)
    assert A["identity"](-7.0) == -7.0


def test_unknown_activation():
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        get_activation("swish")
    with pytest.raises(TypeError, match="activation must be a name"):
        get_activation(None)


def test_softmax_and_log_softmax_are_stable():
    assert softmax([1000.0, 1000.0, -1000.0]) == [0.5, 0.5, 0.0]
    lp = log_softmax([1000.0, 0.0])
    assert lp[0] == 0.0 and lp[1] == -1000.0


def test_cross_entropy_by_hand():
    # logits [0, ln 3]: p = [1/4, 3/4]; target 1 -> loss ln(4/3)
    loss, grad = softmax_cross_entropy([[0.0, math.log(3.0)]], [1])
    assert loss == pytest.approx(math.log(4 / 3))
    assert grad == [pytest.approx([0.25, -0.25])]


def test_cross_entropy_extreme_logits_stay_finite():
    loss, grad = softmax_cross_entropy([[1000.0, -1000.0], [-1000.0, 1000.0]], [1, 1])
    assert loss == pytest.approx(1000.0)  # (2000 + 0) / 2
    assert all(math.isfinite(g) for row in grad for g in row)


def test_cross_entropy_ignore_index():
    logits = [[1.0, 2.0], [3.0, -1.0], [0.5, 0.5]]
    loss, grad = softmax_cross_entropy(logits, [1, -100, 0], ignore_index=-100)
    l1, _ = softmax_cross_entropy([logits[0], logits[2]], [1, 0])
    assert loss == pytest.approx(l1) and grad[1] == [0.0, 0.0]
    assert softmax_cross_entropy([[1.0, 2.0]], [-1], ignore_index=-1) == (0.0, [[0.0, 0.0]])


@given(
    st.lists(st.lists(st.floats(-5, 5), min_size=3, max_size=3), min_size=1, max_size=4),
    st.data(),
)
def test_cross_entropy_gradient_matches_finite_differences(logits, data):
    targets = [data.draw(st.integers(0, 2)) for _ in logits]
    _, grad = softmax_cross_entropy(logits, targets)
    for i in range(len(logits)):
        for j in range(3):

            def f(v):
                z = [list(r) for r in logits]
                z[i][j] = v
                return softmax_cross_entropy(z, targets)[0]

            assert grad[i][j] == pytest.approx(central(f, logits[i][j]), abs=1e-7)


def test_mse_by_hand_and_gradient():
    loss, grad = mse_loss([[1.0, 2.0], [0.0, 0.0]], [[0.0, 2.0], [1.0, 1.0]])
    assert loss == 0.75 and grad == [[0.5, 0.0], [-0.5, -0.5]]
    y, t = [[0.3, -1.2, 2.0]], [[1.0, 0.0, 0.5]]
    for j in range(3):

        def f(v):
            return mse_loss([[v if k == j else y[0][k] for k in range(3)]], t)[0]

        assert mse_loss(y, t)[1][0][j] == pytest.approx(central(f, y[0][j]))


def test_loss_errors():
    with pytest.raises(ValueError, match=r"targets\[1\] = 5 out of range for 3 classes"):
        softmax_cross_entropy([[0.0] * 3] * 2, [0, 5])
    with pytest.raises(TypeError, match="targets must hold ints, got float"):
        softmax_cross_entropy([[0.0] * 3], [1.0])
    with pytest.raises(ValueError, match=r"targets must have shape \(2, 1\) like outputs"):
        mse_loss([[1.0], [2.0]], [[1.0]])

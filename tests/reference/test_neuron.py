"""Tests for reference.neuron: the McCulloch-Pitts neuron and the perceptron rule.

Oracles: outputs worked by hand from the formulas (with math and statistics, not the activations
module), a perceptron run traced by hand, a brute-force search over threshold units for which
truth tables are linearly separable, and the perceptron convergence theorem's mistake bound.
"""

from __future__ import annotations

import itertools
import math
from statistics import NormalDist

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from reference.neuron import Neuron, PerceptronResult

BOOLEAN_INPUTS = [[0, 0], [0, 1], [1, 0], [1, 1]]
AND = [0, 0, 0, 1]
OR = [0, 1, 1, 1]
XOR = [0, 1, 1, 0]

finite = st.floats(-3.0, 3.0, allow_nan=False, allow_infinity=False)


def accuracy(neuron, inputs, targets):
    return sum(neuron(x) == t for x, t in zip(inputs, targets)) / len(targets)


# -- forward: hand-worked outputs -----------------------------------------------------------------

# weights [0.5, -1.0], threshold 0.25:
#   x = [2, 1]:   net = 0.5*2 - 1*1 - 0.25   = -0.25
#   x = [3, 0.5]: net = 0.5*3 - 1*0.5 - 0.25 =  0.75
NETS = {(2.0, 1.0): -0.25, (3.0, 0.5): 0.75}
ORACLES = {
    "step": lambda z: 1.0 if z >= 0 else 0.0,
    "sigmoid": lambda z: 1.0 / (1.0 + math.exp(-z)),
    "relu": lambda z: z if z > 0 else 0.0,
    "tanh": lambda z: (math.exp(z) - math.exp(-z)) / (math.exp(z) + math.exp(-z)),
    "gelu": lambda z: 0.5 * z * (1 + math.tanh(math.sqrt(2 / math.pi) * (z + 0.044715 * z**3))),
    "gelu_erf": lambda z: z * NormalDist().cdf(z),  # x Phi(x)
    "identity": lambda z: z,
}
HAND_WORKED = {  # a few written out in full, so the oracles above are themselves checked
    ("step", -0.25): 0.0,
    ("step", 0.75): 1.0,
    ("relu", -0.25): 0.0,
    ("relu", 0.75): 0.75,
    ("identity", -0.25): -0.25,
    ("sigmoid", 0.75): 0.679178699175393,  # 1 / (1 + e^-0.75)
    ("tanh", -0.25): -0.24491866240370913,
}


@pytest.mark.parametrize("activation", sorted(ORACLES))
@pytest.mark.parametrize("x", sorted(NETS))
def test_outputs_worked_by_hand(activation, x):
    n = Neuron([0.5, -1.0], threshold=0.25, activation=activation)
    net = NETS[x]
    assert n.net(list(x)) == net
    expected = ORACLES[activation](net)
    if (activation, net) in HAND_WORKED:
        assert math.isclose(expected, HAND_WORKED[activation, net], rel_tol=1e-14)
    got = n(list(x))
    assert math.isclose(got, expected, rel_tol=1e-12, abs_tol=1e-15), (activation, x, got)
    assert n.forward(list(x)) == got


def test_step_fires_when_net_reaches_the_threshold_exactly():
    n = Neuron([1.0, 1.0], threshold=2.0)
    assert n.net([1.0, 1.0]) == 0.0
    assert n([1.0, 1.0]) == 1.0  # all-or-nothing: reaching the threshold is enough
    assert n([1.0, 0.999]) == 0.0


def test_hand_built_logic_gates():
    gates = {
        "AND": (Neuron([1.0, 1.0], threshold=1.5), AND),
        "OR": (Neuron([1.0, 1.0], threshold=0.5), OR),
        "NAND": (Neuron([-1.0, -1.0], threshold=-1.5), [1, 1, 1, 0]),
    }
    for name, (n, truth) in gates.items():
        assert [n(x) for x in BOOLEAN_INPUTS] == truth, name
    assert Neuron([-1.0], threshold=-0.5)([1]) == 0.0  # NOT
    assert Neuron([-1.0], threshold=-0.5)([0]) == 1.0


def test_bias_is_minus_threshold():
    n = Neuron([1.0, 2.0], threshold=0.75)
    assert n.bias == -0.75
    n.bias = 2.0
    assert n.threshold == -2.0
    assert n.net([0.0, 0.0]) == 2.0
    with pytest.raises(TypeError, match="bias must be a number, got str"):
        n.bias = "1"


@given(
    weights=st.lists(finite, min_size=1, max_size=5),
    threshold=finite,
    data=st.data(),
)
def test_net_is_dot_product_plus_bias(weights, threshold, data):
    x = data.draw(st.lists(finite, min_size=len(weights), max_size=len(weights)))
    n = Neuron(weights, threshold=threshold)
    ref = math.fsum([w * xi for w, xi in zip(weights, x)] + [n.bias])
    assert math.isclose(n.net(x), ref, rel_tol=1e-12, abs_tol=1e-12)
    assert n.bias == -threshold


def test_weights_are_copied_as_floats():
    w = [1, 2]
    n = Neuron(w, threshold=1)
    w[0] = 100
    assert n.weights == [1.0, 2.0] and all(type(v) is float for v in n.weights)
    assert repr(n) == "Neuron(weights=[1.0, 2.0], threshold=1.0, activation='step')"


# -- the perceptron rule ------------------------------------------------------------------------


def test_perceptron_update_single_step():
    n = Neuron([0.0, 0.0], threshold=0.0)
    assert n.perceptron_update([1.0, 1.0], target=1, learning_rate=0.5) == 0.0  # right: no change
    assert (n.weights, n.threshold) == ([0.0, 0.0], 0.0)
    # net = 0 -> fires, but the target is 0: error -1, w -= 0.5 x, threshold += 0.5.
    assert n.perceptron_update([1.0, 2.0], target=0, learning_rate=0.5) == -1.0
    assert (n.weights, n.threshold) == ([-0.5, -1.0], 0.5)
    # net = -0.5 * 2 - 0.5 < 0 -> silent, target 1: error +1, w += 0.5 x, threshold -= 0.5.
    assert n.perceptron_update([2.0, 0.0], target=1, learning_rate=0.5) == 1.0
    assert (n.weights, n.threshold) == ([0.5, -1.0], 0.0)


def test_perceptron_learns_and_traced_by_hand():
    # Learning rate 1 from zero weights keeps every number an integer. Epoch by epoch
    # (x: net -> y, update), starting from w = (0, 0), threshold 0:
    # 1: (0,0): 0->1 wrong, th=1 | (0,1),(1,0): -1 ok | (1,1): -1->0 wrong, w=(1,1) th=0   2 wrong
    # 2: (0,0): 0 wrong, th=1 | (0,1): 0 wrong, w=(1,0) th=2 | (1,0) ok | (1,1) wrong, w=(2,1) th=1
    # 3: (0,0) ok | (0,1): 0 wrong, w=(2,0) th=2 | (1,0): 0 wrong, w=(1,0) th=3
    #    | (1,1): -2 wrong, w=(2,1) th=2                                                 3 wrong
    # 4: (0,0),(0,1) ok | (1,0): 0 wrong, w=(1,1) th=3 | (1,1): -1 wrong, w=(2,2) th=2   2 wrong
    # 5: (0,0) ok | (0,1): 0 wrong, w=(2,1) th=3 | (1,0): -1 ok | (1,1): 0 -> 1 ok       1 wrong
    # 6: no mistakes.
    n = Neuron([0.0, 0.0], threshold=0.0)
    result = n.train_perceptron(BOOLEAN_INPUTS, AND, learning_rate=1.0, max_epochs=100)
    assert result == PerceptronResult(converged=True, epochs=6, mistakes=[2, 3, 3, 2, 1, 0])
    assert (n.weights, n.threshold) == ([2.0, 1.0], 3.0)


@pytest.mark.parametrize("name, targets", [("AND", AND), ("OR", OR)])
@pytest.mark.parametrize("learning_rate", [0.1, 1.0])
def test_perceptron_learns_and_or(name, targets, learning_rate):
    n = Neuron([0.0, 0.0], threshold=0.0)
    result = n.train_perceptron(BOOLEAN_INPUTS, targets, learning_rate, max_epochs=100)
    assert result.converged, f"{name} did not converge: mistakes per epoch {result.mistakes}"
    assert result.epochs == len(result.mistakes) <= 100 and result.mistakes[-1] == 0
    assert all(m > 0 for m in result.mistakes[:-1])
    assert [n(x) for x in BOOLEAN_INPUTS] == targets


def test_perceptron_never_learns_xor():
    result = Neuron([0.0, 0.0]).train_perceptron(BOOLEAN_INPUTS, XOR, 0.1, max_epochs=100)
    assert result == PerceptronResult(False, 100, result.mistakes)
    assert min(result.mistakes) >= 1

    # Not just slow: the rule is deterministic, so once the weights after an epoch repeat those
    # after an earlier epoch, it cycles forever. With learning rate 1 every number is an integer
    # and the repeat is exact.
    n = Neuron([0.0, 0.0], threshold=0.0)
    seen = {}
    for epoch in range(20):
        state = (tuple(n.weights), n.threshold)
        if state in seen:
            break
        seen[state] = epoch
        result = n.train_perceptron(BOOLEAN_INPUTS, XOR, learning_rate=1.0, max_epochs=1)
        assert not result.converged
        assert accuracy(n, BOOLEAN_INPUTS, XOR) <= 0.75
    else:
        pytest.fail("the perceptron on XOR did not revisit a state within 20 epochs")
    assert epoch - seen[state] >= 1  # a cycle of that many epochs, each with a mistake


# Not just slow: no threshold unit classifies XOR at all. For any weights and threshold the net
# input is affine in x, so net(1,0) + net(0,1) = net(0,0) + net(1,1) (both are w1 + w2 - 2
# threshold). XOR needs the left side >= 0 (both fire) and the right side < 0 (both silent): a
# contradiction, so at most 3 of the 4 cases can be right.


@given(w1=finite, w2=finite, threshold=finite)
def test_no_threshold_unit_classifies_xor(w1, w2, threshold):
    n = Neuron([w1, w2], threshold=threshold)
    nets = {tuple(x): n.net(x) for x in BOOLEAN_INPUTS}
    assert math.isclose(
        nets[1, 0] + nets[0, 1], nets[0, 0] + nets[1, 1], rel_tol=1e-12, abs_tol=1e-12
    )
    assert accuracy(n, BOOLEAN_INPUTS, XOR) <= 0.75


def _best_grid_accuracy(targets):
    """Brute force, independent of Neuron: the best accuracy of step(w1 a + w2 b - threshold)
    over weights and thresholds in {-2, -1.5, ..., 2}."""
    grid = [k / 2 for k in range(-4, 5)]
    best = 0
    for w1, w2, th in itertools.product(grid, grid, grid):
        right = sum(
            (1 if w1 * a + w2 * b - th >= 0 else 0) == t
            for (a, b), t in zip(BOOLEAN_INPUTS, targets)
        )
        best = max(best, right)
    return best / 4


def test_perceptron_converges_exactly_on_the_14_separable_truth_tables():
    # Of the 16 boolean functions of two inputs, all but XOR and XNOR are linearly separable.
    separable, learned = set(), set()
    for targets in itertools.product([0, 1], repeat=4):
        best = _best_grid_accuracy(targets)
        if best == 1.0:
            separable.add(targets)
        else:
            assert best == 0.75, (targets, best)  # XOR and XNOR: 3 of 4, never all
        n = Neuron([0.0, 0.0], threshold=0.0)
        if n.train_perceptron(BOOLEAN_INPUTS, list(targets), 0.1, max_epochs=100).converged:
            learned.add(targets)
            assert [n(x) for x in BOOLEAN_INPUTS] == list(targets)
    not_separable = {(0, 1, 1, 0), (1, 0, 0, 1)}  # XOR, XNOR
    assert len(separable) == 14 and separable.isdisjoint(not_separable)
    assert learned == separable


@given(
    true_w=st.tuples(st.floats(-2.0, 2.0), st.floats(-2.0, 2.0)),
    true_threshold=st.floats(-1.0, 1.0),
    points=st.lists(st.tuples(st.floats(-1.0, 1.0), st.floats(-1.0, 1.0)), max_size=20),
)
def test_perceptron_convergence_theorem(true_w, true_threshold, points):
    # Augment x with a constant -1 input for the threshold: |x| <= R = sqrt(3). If a unit
    # separates the data with margin gamma (distance of every point from its hyperplane), the
    # rule from zero weights makes at most (R / gamma)^2 mistakes, whatever the learning rate.
    gamma = 0.1
    norm = math.sqrt(true_w[0] ** 2 + true_w[1] ** 2 + true_threshold**2)
    assume(norm > 0.1)
    data = []
    for p in points:
        net = true_w[0] * p[0] + true_w[1] * p[1] - true_threshold
        if abs(net) / norm >= gamma:
            data.append((list(p), 1 if net >= 0 else 0))
    assume(data)
    max_mistakes = math.floor(3.0 / gamma**2)  # 300
    n = Neuron([0.0, 0.0], threshold=0.0)
    inputs, targets = [x for x, _ in data], [t for _, t in data]
    result = n.train_perceptron(inputs, targets, learning_rate=0.5, max_epochs=max_mistakes + 1)
    assert result.converged, f"no convergence: mistakes per epoch {result.mistakes[:10]}..."
    assert sum(result.mistakes) <= max_mistakes
    assert accuracy(n, inputs, targets) == 1.0


# -- validation ---------------------------------------------------------------------------------


def test_constructor_errors():
    with pytest.raises(TypeError, match=r"weights must be a sequence of numbers, got float"):
        Neuron(1.0)
    with pytest.raises(TypeError, match=r"weights must be a sequence of numbers, got str"):
        Neuron("12")
    with pytest.raises(TypeError, match=r"weights\[1\] must be a number, got str"):
        Neuron([1.0, "2"])
    with pytest.raises(ValueError, match=r"weights must hold at least one weight"):
        Neuron([])
    with pytest.raises(TypeError, match=r"threshold must be a number, got NoneType"):
        Neuron([1.0], threshold=None)
    with pytest.raises(ValueError, match=r"unknown activation 'softmax'; expected one of"):
        Neuron([1.0], activation="softmax")
    with pytest.raises(TypeError, match=r"activation must be a name"):
        Neuron([1.0], activation=len)


def test_input_errors():
    n = Neuron([1.0, 2.0], threshold=0.5)
    with pytest.raises(ValueError, match=r"x must have 2 values \(one per weight\), got 3"):
        n([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"x must have 2 values \(one per weight\), got 1"):
        n.net([1.0])
    with pytest.raises(TypeError, match=r"x\[0\] must be a number, got str"):
        n(["a", 1.0])
    with pytest.raises(TypeError, match=r"x must be a sequence of numbers, got int"):
        n(3)


def test_perceptron_errors():
    n = Neuron([0.0, 0.0])
    with pytest.raises(ValueError, match=r"train_perceptron trains step units only.*'sigmoid'"):
        Neuron([0.0, 0.0], activation="sigmoid").train_perceptron(BOOLEAN_INPUTS, AND)
    with pytest.raises(ValueError, match=r"perceptron_update trains step units only.*'relu'"):
        Neuron([0.0], activation="relu").perceptron_update([1.0], 1, 0.1)
    with pytest.raises(ValueError, match=r"targets must have one entry per input \(4\), got 3"):
        n.train_perceptron(BOOLEAN_INPUTS, [0, 1, 1])
    with pytest.raises(ValueError, match=r"inputs must hold at least one example"):
        n.train_perceptron([], [])
    with pytest.raises(
        ValueError, match=r"inputs\[2\] must have 2 values \(one per weight\), got 1"
    ):
        n.train_perceptron([[0, 0], [0, 1], [1], [1, 1]], AND)
    with pytest.raises(ValueError, match=r"targets\[1\] must be 0 or 1 .*, got -1"):
        n.train_perceptron(BOOLEAN_INPUTS, [0, -1, 1, 1])
    with pytest.raises(ValueError, match=r"target must be 0 or 1 .*, got 0.5"):
        n.perceptron_update([0, 0], 0.5, 0.1)
    with pytest.raises(ValueError, match=r"learning_rate must be positive, got 0.0"):
        n.train_perceptron(BOOLEAN_INPUTS, AND, learning_rate=0)
    with pytest.raises(TypeError, match=r"learning_rate must be a number, got str"):
        n.train_perceptron(BOOLEAN_INPUTS, AND, learning_rate="fast")
    with pytest.raises(ValueError, match=r"max_epochs must be a positive integer, got 0"):
        n.train_perceptron(BOOLEAN_INPUTS, AND, max_epochs=0)
    with pytest.raises(ValueError, match=r"max_epochs must be a positive integer, got 2.5"):
        n.train_perceptron(BOOLEAN_INPUTS, AND, max_epochs=2.5)
    assert (n.weights, n.threshold) == ([0.0, 0.0], 0.0)  # a rejected call changes nothing

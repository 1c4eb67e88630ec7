"""The McCulloch-Pitts neuron, and Rosenblatt's perceptron rule that trains it.

A neuron weighs its inputs, compares the sum with a threshold, and fires if the sum reaches it:

    net = sum_i w_i x_i - threshold        y = f(net)

With the step activation f(net) = 1 if net >= 0 else 0 this is the 1943 McCulloch-Pitts unit. The
threshold is usually folded into a bias b = -threshold, so that net = w . x + b; both names are
kept here because the seed speaks of thresholds and the ecosystem of biases.

A step unit cannot be trained by gradient descent (its derivative is zero almost everywhere), so
it learns by the perceptron rule instead: after each example, move the weights by the error,

    w_i += learning_rate * (t - y) * x_i        threshold -= learning_rate * (t - y)

which changes nothing when the output is right (t - y = 0), and otherwise pushes net towards the
target's side of zero. On data that some line (hyperplane) separates, the rule provably stops
after finitely many mistakes (the perceptron convergence theorem); on XOR, which no line
separates, it never stops.

    >>> and_gate = Neuron([1.0, 1.0], threshold=1.5)
    >>> [and_gate([a, b]) for a, b in [(0, 0), (0, 1), (1, 0), (1, 1)]]
    [0.0, 0.0, 0.0, 1.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Real
from typing import NamedTuple

from .activations import get_activation


class PerceptronResult(NamedTuple):
    """What `Neuron.train_perceptron` did.

    converged: whether the last epoch made no mistake (so the rule changed nothing in it).
    epochs: passes over the data made, the error-free one included.
    mistakes: the number of misclassified examples in each epoch, one entry per epoch.
    """

    converged: bool
    epochs: int
    mistakes: list[int]


class Neuron:
    """One neuron: y = f(sum_i w_i x_i - threshold), f a named activation (default: step).

    >>> n = Neuron([0.5, -1.0], threshold=0.25, activation="identity")
    >>> n.net([2.0, 1.0]), n.bias   # 0.5*2 - 1*1 - 0.25
    (-0.25, -0.25)
    """

    def __init__(self, weights: Sequence[float], threshold: float = 0.0, activation: str = "step"):
        self.weights = _check_numbers("weights", weights)
        if not self.weights:
            raise ValueError("weights must hold at least one weight (one per input), got none")
        self.threshold = _check_number("threshold", threshold)
        self.activation = activation
        # get_activation raises a clear error for an unknown name or a non-string.
        self.f, self.f_derivative = get_activation(activation)

    @property
    def bias(self) -> float:
        """The threshold with its sign flipped: net = w . x + bias."""
        return -self.threshold

    @bias.setter
    def bias(self, value: float) -> None:
        self.threshold = -_check_number("bias", value)

    def __repr__(self) -> str:
        return (
            f"Neuron(weights={self.weights!r}, threshold={self.threshold!r}, "
            f"activation={self.activation!r})"
        )

    def net(self, x: Sequence[float]) -> float:
        """The net input sum_i w_i x_i - threshold, before the activation."""
        x = self._check_input("x", x)
        return sum(w * xi for w, xi in zip(self.weights, x)) - self.threshold

    def forward(self, x: Sequence[float]) -> float:
        """The output y = f(net(x))."""
        return self.f(self.net(x))

    __call__ = forward

    # -- the perceptron rule ---------------------------------------------------------------------

    def perceptron_update(self, x: Sequence[float], target: float, learning_rate: float) -> float:
        """One step of the perceptron rule on one example; returns the error t - y (0 if right).

        >>> n = Neuron([0.0, 0.0], threshold=0.0)
        >>> n([1.0, 1.0])                  # net = 0 >= 0: fires
        1.0
        >>> n.perceptron_update([1.0, 1.0], target=0, learning_rate=0.5)
        -1.0
        >>> n.weights, n.threshold         # w -= 0.5 x; threshold += 0.5
        ([-0.5, -0.5], 0.5)
        """
        self._check_step("perceptron_update")
        _check_target("target", target)
        learning_rate = _check_learning_rate(learning_rate)
        x = self._check_input("x", x)
        error = target - self.forward(x)  # t - y, one of -1, 0, 1
        if error != 0.0:
            self.weights = [w + learning_rate * error * xi for w, xi in zip(self.weights, x)]
            # The threshold is a weight on a constant input of -1 (net = w.x + threshold*(-1)),
            # so it moves by the same rule with x = -1.
            self.threshold -= learning_rate * error
        return error

    def train_perceptron(
        self,
        inputs: Sequence[Sequence[float]],
        targets: Sequence[float],
        learning_rate: float = 0.1,
        max_epochs: int = 100,
    ) -> PerceptronResult:
        """Apply the perceptron rule, example by example in the given order, until an epoch has
        no mistakes or `max_epochs` epochs have passed.

        `targets` are 0 or 1 (what a step unit can output). Returns a `PerceptronResult`.

        >>> n = Neuron([0.0, 0.0], threshold=0.0)
        >>> result = n.train_perceptron([[0, 0], [0, 1], [1, 0], [1, 1]], [0, 1, 1, 1])  # OR
        >>> result.converged, [n(x) for x in [[0, 0], [0, 1], [1, 0], [1, 1]]]
        (True, [0.0, 1.0, 1.0, 1.0])
        """
        self._check_step("train_perceptron")
        if len(inputs) != len(targets):
            raise ValueError(
                f"targets must have one entry per input ({len(inputs)}), got {len(targets)}"
            )
        if len(inputs) == 0:
            raise ValueError("inputs must hold at least one example, got none")
        inputs = [self._check_input(f"inputs[{i}]", x) for i, x in enumerate(inputs)]
        for i, t in enumerate(targets):
            _check_target(f"targets[{i}]", t)
        learning_rate = _check_learning_rate(learning_rate)
        if isinstance(max_epochs, bool) or not isinstance(max_epochs, int) or max_epochs < 1:
            raise ValueError(f"max_epochs must be a positive integer, got {max_epochs!r}")

        mistakes: list[int] = []
        for _ in range(max_epochs):
            n_wrong = 0
            for x, t in zip(inputs, targets):
                if self.perceptron_update(x, t, learning_rate) != 0.0:
                    n_wrong += 1
            mistakes.append(n_wrong)
            if n_wrong == 0:  # a full pass without a change: every example is right
                return PerceptronResult(True, len(mistakes), mistakes)
        return PerceptronResult(False, len(mistakes), mistakes)

    # -- validation ------------------------------------------------------------------------------

    def _check_input(self, name: str, x: Sequence[float]) -> list[float]:
        values = _check_numbers(name, x)
        if len(values) != len(self.weights):
            raise ValueError(
                f"{name} must have {len(self.weights)} values (one per weight), got {len(values)}"
            )
        return values

    def _check_step(self, method: str) -> None:
        if self.activation != "step":
            raise ValueError(
                f"{method} trains step units only (the rule needs outputs 0 or 1), but this "
                f"neuron's activation is {self.activation!r}; train it by gradient descent instead"
            )


def _check_number(name: str, value: object) -> float:
    if not isinstance(value, Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    return float(value)


def _check_numbers(name: str, values: object) -> list[float]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"{name} must be a sequence of numbers, got {type(values).__name__}")
    return [_check_number(f"{name}[{i}]", v) for i, v in enumerate(values)]


def _check_target(name: str, target: object) -> None:
    if not isinstance(target, Real) or target not in (0, 1):
        raise ValueError(f"{name} must be 0 or 1 (a step unit's outputs), got {target!r}")


def _check_learning_rate(learning_rate: object) -> float:
    learning_rate = _check_number("learning_rate", learning_rate)
    if not learning_rate > 0.0:
        raise ValueError(f"learning_rate must be positive, got {learning_rate}")
    return learning_rate

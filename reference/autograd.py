"""Scalar automatic differentiation: the chain rule in its smallest form.

A `Value` wraps one float. Every arithmetic operation on Values builds a new Value that remembers
its inputs (`_children`) and the partial derivative of its output with respect to each input
(`_local_grads`), computed during the forward pass, while the numbers are at hand. The graph of
Values is the computation written down; `backward()` walks it once from the output towards the
inputs and applies the chain rule at every node:

    d out / d child  +=  (d node / d child) * (d out / d node)
                          ^ local grad, stored   ^ already known: we go output -> inputs

Because each node stores its local derivatives as plain numbers, backward is one generic loop
that knows nothing about addition or tanh. Only a handful of operations are primitive (add, mul,
pow with a number exponent, exp, log, tanh, relu, sigmoid); negation, subtraction and division are
built from them, so there are fewer derivatives to get wrong.

    >>> a, b = Value(2.0), Value(-3.0)
    >>> c = a * b + a          # c = ab + a = -4
    >>> c.backward()
    >>> a.grad, b.grad         # dc/da = b + 1, dc/db = a
    (-2.0, 2.0)

Gradients accumulate, as in PyTorch: each `backward()` *adds* its gradients to `.grad`, so a
gradient summed over several losses (or several examples) needs nothing special. Before the next
independent step, reset them with `out.zero_grad()` (every node that `out` depends on) or by
setting `v.grad = 0.0` on the leaves you keep.
"""

from __future__ import annotations

import math
from numbers import Real

from .activations import relu as _relu
from .activations import sigmoid as _sigmoid

Number = int | float  # what may stand beside a Value in arithmetic


class Value:
    """One scalar in a computation graph: its `data`, and `grad` = d(output)/d(this) after backward.

    >>> x = Value(3.0)
    >>> y = x ** 2          # local grad dy/dx = 2x = 6, stored now
    >>> y.backward()
    >>> y, x
    (Value(data=9.0, grad=1.0, op='**2'), Value(data=3.0, grad=6.0))
    """

    # Slots keep each node small: a 10,000-step chain is 10,000 of these.
    __slots__ = ("data", "grad", "_children", "_local_grads", "_op")

    def __init__(
        self,
        data: Number,
        _children: tuple[Value, ...] = (),
        _local_grads: tuple[float, ...] = (),
        _op: str = "",
    ):
        if isinstance(data, Value):
            raise TypeError("data must be a number (int or float), got a Value; use it directly")
        if not isinstance(data, Real):
            raise TypeError(f"data must be a number (int or float), got {type(data).__name__}")
        self.data = float(data)
        self.grad = 0.0
        self._children = _children  # the Values this one was computed from
        self._local_grads = _local_grads  # d(self)/d(child), one per child, same order
        self._op = _op  # the operation's name, for __repr__ only

    def __repr__(self) -> str:
        op = f", op={self._op!r}" if self._op else ""
        return f"Value(data={self.data!r}, grad={self.grad!r}{op})"

    # -- primitives: each computes its output and its local derivatives -------------------------

    def __add__(self, other: Value | Number) -> Value:
        other = _as_value(other)
        if other is NotImplemented:
            return NotImplemented
        # d(a+b)/da = 1, d(a+b)/db = 1: addition passes the gradient through unchanged.
        return Value(self.data + other.data, (self, other), (1.0, 1.0), "+")

    def __mul__(self, other: Value | Number) -> Value:
        other = _as_value(other)
        if other is NotImplemented:
            return NotImplemented
        # d(ab)/da = b, d(ab)/db = a: each factor's gradient is scaled by the other factor.
        return Value(self.data * other.data, (self, other), (other.data, self.data), "*")

    def __pow__(self, exponent: Number) -> Value:
        """x ** p for a number p, by the power rule d/dx x^p = p x^(p-1).

        >>> (Value(4.0) ** 0.5).data
        2.0
        """
        if isinstance(exponent, Value) or not isinstance(exponent, Real):
            raise TypeError(
                f"exponent must be a number (int or float), got {type(exponent).__name__}; "
                "for a Value exponent write (exponent * base.log()).exp()"
            )
        x, p = self.data, float(exponent)
        if x == 0.0 and p < 0.0:
            raise ZeroDivisionError(f"0.0 cannot be raised to the negative power {p}")
        out = x**p
        if isinstance(out, complex):  # Python answers (-8) ** (1/3) with a complex number
            raise ValueError(
                f"base must be >= 0 for the non-integer exponent {p}, got {x} (the result would "
                "not be a real number)"
            )
        if p == 0.0:
            local = 0.0  # x^0 = 1 is constant (and 0 * 0^-1 would divide by zero)
        elif x == 0.0 and p < 1.0:
            local = math.inf  # e.g. sqrt at 0: the slope is vertical
        else:
            local = p * x ** (p - 1.0)
        return Value(out, (self,), (local,), f"**{exponent}")

    def exp(self) -> Value:
        """e^x; its derivative is itself."""
        try:
            out = math.exp(self.data)
        except OverflowError:
            raise OverflowError(
                f"exp({self.data}) overflows a float (max about exp(709.78))"
            ) from None
        return Value(out, (self,), (out,), "exp")

    def log(self) -> Value:
        """Natural logarithm, defined for x > 0; d/dx log x = 1/x."""
        if not self.data > 0.0:  # also catches NaN
            raise ValueError(f"log needs a positive input, got {self.data}")
        return Value(math.log(self.data), (self,), (1.0 / self.data,), "log")

    def tanh(self) -> Value:
        """Hyperbolic tangent; d/dx tanh x = 1 - tanh^2 x, reusing the output."""
        t = math.tanh(self.data)
        return Value(t, (self,), (1.0 - t * t,), "tanh")

    def relu(self) -> Value:
        """max(0, x); derivative 1 for x > 0, else 0 (0 at the kink, as in PyTorch)."""
        out = _relu(self.data)
        return Value(out, (self,), (1.0 if self.data > 0.0 else 0.0,), "relu")

    def sigmoid(self) -> Value:
        """1 / (1 + e^-x), computed without overflow; derivative s (1 - s), reusing the output."""
        s = _sigmoid(self.data)
        return Value(s, (self,), (s * (1.0 - s),), "sigmoid")

    # -- derived operations: no new derivatives, only compositions of the primitives -----------

    def __neg__(self) -> Value:  # -a = a * (-1)
        return self * -1.0

    def __sub__(self, other: Value | Number) -> Value:  # a - b = a + (-b)
        other = _as_value(other)
        if other is NotImplemented:
            return NotImplemented
        return self + (-other)

    def __truediv__(self, other: Value | Number) -> Value:  # a / b = a * b^-1
        other = _as_value(other)
        if other is NotImplemented:
            return NotImplemented
        if other.data == 0.0:
            raise ZeroDivisionError(f"division of {self.data} by zero")
        return self * other**-1

    # Reflected forms, so a plain number may stand on the left: 2 + v, 2 - v, 2 * v, 2 / v.
    def __radd__(self, other: Number) -> Value:
        return self + other

    def __rmul__(self, other: Number) -> Value:
        return self * other

    def __rsub__(self, other: Number) -> Value:  # other - self
        other = _as_value(other)
        if other is NotImplemented:
            return NotImplemented
        return other - self

    def __rtruediv__(self, other: Number) -> Value:  # other / self
        other = _as_value(other)
        if other is NotImplemented:
            return NotImplemented
        return other / self

    # -- backward --------------------------------------------------------------------------------

    def backward(self, gradient: Number = 1.0) -> None:
        """Add d(self)/d(node) * gradient to `node.grad` for every node this Value depends on.

        `gradient` is the upstream gradient d(loss)/d(self); the default 1.0 treats self as the
        loss. Gradients accumulate across calls (see the module docstring); use `zero_grad()` to
        start afresh.

        >>> a = Value(3.0)
        >>> b = a + a          # a is used twice: both uses contribute
        >>> c = b + b
        >>> c.backward()
        >>> a.grad
        4.0
        """
        if isinstance(gradient, Value) or not isinstance(gradient, Real):
            raise TypeError(f"gradient must be a number, got {type(gradient).__name__}")
        # This pass's gradients live in a dict, not in .grad, and are added to .grad at the end
        # of each node's turn. Propagating .grad itself would re-send gradients accumulated by an
        # earlier backward through the graph a second time.
        grads: dict[Value, float] = {self: float(gradient)}
        # Reverse topological order: a node's turn comes only after every node that uses it has
        # sent its contribution, so its gradient is complete when it passes it on.
        for node in reversed(self._topological_order()):
            g = grads.pop(node, 0.0)
            node.grad += g
            for child, local_grad in zip(node._children, node._local_grads):
                grads[child] = grads.get(child, 0.0) + local_grad * g  # the chain rule

    def zero_grad(self) -> None:
        """Set `grad` to 0.0 on this Value and on every Value it was computed from."""
        for node in self._topological_order():
            node.grad = 0.0

    def _topological_order(self) -> list[Value]:
        """Every node this one depends on, each after all of its children, self last.

        Depth-first search with an explicit stack instead of recursion, so a chain of 100,000
        operations does not hit Python's recursion limit (about 1,000 frames). Each stack entry
        says whether the node's children have already been pushed: the first time we pop a node
        we push it back marked "expanded", then its children; the second time, all children are
        finished and the node may be emitted.
        """
        order: list[Value] = []
        visited: set[Value] = set()  # identity-hashed: Value does not define __eq__
        stack: list[tuple[Value, bool]] = [(self, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
                continue
            if node in visited:  # reached again through another path (a reused node)
                continue
            visited.add(node)
            stack.append((node, True))
            for child in node._children:
                if child not in visited:
                    stack.append((child, False))
        return order


def _as_value(x: object) -> Value:
    """A Value as is, a number wrapped as a constant leaf, anything else NotImplemented.

    Returning NotImplemented (rather than raising) lets Python try the other operand's method and
    then raise its usual TypeError: Value(1.0) + "a" fails like 1.0 + "a" does.
    """
    if isinstance(x, Value):
        return x
    if isinstance(x, Real):
        return Value(x)
    return NotImplemented

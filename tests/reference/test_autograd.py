"""Tests for reference.autograd.Value.

Every operation is checked twice, as micrograd's tests do: against gradients derived by hand, and
against an independent oracle, central finite differences of the same function written with
plain floats and the math module (float64, h = 1e-6, tolerance atol + rtol * |ref|).
"""

from __future__ import annotations

import math
import sys

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from reference.autograd import Value

H = 1e-6  # central-difference step: truncation error ~h^2, rounding error ~eps/h


def central_difference(f, xs, i, h=H):
    """(f(..., x_i + h, ...) - f(..., x_i - h, ...)) / 2h, evaluated on plain floats."""
    plus, minus = list(xs), list(xs)
    plus[i] += h
    minus[i] -= h
    return (f(*plus) - f(*minus)) / (2.0 * h)


def assert_close(got, ref, atol, rtol, what):
    assert math.isfinite(got), f"{what}: got {got}, expected {ref}"
    assert abs(got - ref) <= atol + rtol * abs(ref), (
        f"{what}: got {got!r}, expected {ref!r} (|diff| {abs(got - ref):.3e} > "
        f"atol {atol} + rtol {rtol} * |ref|)"
    )


def gradients(value_fn, xs, upstream=1.0):
    """(output data, [d output / d x_i * upstream]) by reverse mode through Value."""
    leaves = [Value(x) for x in xs]
    out = value_fn(*leaves)
    out.backward(upstream)
    return out.data, [leaf.grad for leaf in leaves]


# -- every operation against math (forward) and finite differences (backward) -------------------

# name -> (function of Values, the same function on floats, points to test at).
# The float twins are written with math and Python floats only: an oracle that shares no code
# with Value. Points avoid kinks (relu at 0) and domain edges (log at 0).
OPS = {
    "add": (lambda a, b: a + b, lambda a, b: a + b, [(1.5, -0.25), (-3.0, 2.0)]),
    "sub": (lambda a, b: a - b, lambda a, b: a - b, [(1.5, -0.25), (-3.0, 2.0)]),
    "mul": (lambda a, b: a * b, lambda a, b: a * b, [(1.5, -0.25), (-3.0, 2.0)]),
    "div": (lambda a, b: a / b, lambda a, b: a / b, [(1.5, -0.25), (-3.0, 2.0)]),
    "neg": (lambda a: -a, lambda a: -a, [(0.7,), (-2.5,)]),
    "add_number": (lambda a: a + 2.5, lambda a: a + 2.5, [(0.7,)]),
    "sub_number": (lambda a: a - 2.5, lambda a: a - 2.5, [(0.7,)]),
    "mul_number": (lambda a: a * 2.5, lambda a: a * 2.5, [(0.7,)]),
    "div_number": (lambda a: a / 2.5, lambda a: a / 2.5, [(0.7,)]),
    "radd": (lambda a: 2 + a, lambda a: 2 + a, [(0.7,), (-1.3,)]),
    "rsub": (lambda a: 2 - a, lambda a: 2 - a, [(0.7,), (-1.3,)]),
    "rmul": (lambda a: 2 * a, lambda a: 2 * a, [(0.7,), (-1.3,)]),
    "rtruediv": (lambda a: 2 / a, lambda a: 2 / a, [(0.7,), (-1.3,)]),
    "pow2": (lambda a: a**2, lambda a: a * a, [(0.7,), (-1.3,)]),
    "pow3": (lambda a: a**3, lambda a: a * a * a, [(0.7,), (-1.3,)]),
    "pow_minus1": (lambda a: a**-1, lambda a: 1.0 / a, [(0.7,), (-1.3,)]),
    "pow_half": (lambda a: a**0.5, lambda a: math.sqrt(a), [(0.7,), (4.0,)]),
    "pow_minus1.5": (lambda a: a**-1.5, lambda a: 1.0 / (a * math.sqrt(a)), [(0.7,), (4.0,)]),
    "pow0": (lambda a: a**0, lambda a: 1.0, [(0.7,), (-1.3,)]),
    "exp": (lambda a: a.exp(), lambda a: math.e**a, [(0.7,), (-1.3,), (5.0,)]),
    "log": (lambda a: a.log(), lambda a: math.log(a), [(0.7,), (4.0,), (1e-3,)]),
    "tanh": (
        lambda a: a.tanh(),
        lambda a: (math.exp(2 * a) - 1) / (math.exp(2 * a) + 1),
        [(0.7,), (-1.3,), (0.0,)],
    ),
    "relu": (lambda a: a.relu(), lambda a: max(0.0, a), [(0.7,), (-1.3,)]),
    "sigmoid": (
        lambda a: a.sigmoid(),
        lambda a: 1.0 / (1.0 + math.exp(-a)),
        [(0.7,), (-1.3,), (0.0,), (-30.0,)],
    ),
}
OP_CASES = [(name, xs) for name, (_, _, points) in OPS.items() for xs in points]


@pytest.mark.parametrize("name, xs", OP_CASES, ids=[f"{n}{xs}" for n, xs in OP_CASES])
def test_op_matches_math_and_finite_differences(name, xs):
    value_fn, float_fn, _ = OPS[name]
    upstream = -0.7  # a non-uniform upstream gradient catches a dropped factor of d(loss)/d(out)
    data, grads = gradients(value_fn, xs, upstream)
    assert_close(data, float_fn(*xs), 1e-12, 1e-12, f"{name}{xs} forward")
    for i in range(len(xs)):
        ref = upstream * central_difference(float_fn, xs, i)
        assert_close(grads[i], ref, 1e-7, 1e-6, f"{name}{xs} d/dx{i}")


# -- gradients derived by hand ------------------------------------------------------------------


def test_hand_derived_expression_graph():
    # L = (a*b + c) * f at a=2, b=-3, c=10, f=-2:
    # dL/da = f*b = 6, dL/db = f*a = -4, dL/dc = f = -2, dL/df = a*b + c = 4.
    a, b, c, f = Value(2.0), Value(-3.0), Value(10.0), Value(-2.0)
    d = a * b + c
    L = d * f
    L.backward()
    assert L.data == -8.0
    assert (a.grad, b.grad, c.grad, f.grad, d.grad, L.grad) == (6.0, -4.0, -2.0, 4.0, -2.0, 1.0)


def test_hand_derived_tanh_neuron():
    # o = tanh(x1 w1 + x2 w2 + b) with b chosen so that net = atanh(1/sqrt 2) = 0.8813...
    # do/dnet = 1 - o^2 = 1/2, then each input's gradient is its partner times 1/2.
    x1, x2, w1, w2 = Value(2.0), Value(0.0), Value(-3.0), Value(1.0)
    b = Value(6.0 + math.atanh(1.0 / math.sqrt(2.0)))
    o = (x1 * w1 + x2 * w2 + b).tanh()
    o.backward()
    assert_close(o.data, 1.0 / math.sqrt(2.0), 1e-15, 0, "o")
    expected = {"x1": -1.5, "w1": 1.0, "x2": 0.5, "w2": 0.0, "b": 0.5}
    got = {"x1": x1.grad, "w1": w1.grad, "x2": x2.grad, "w2": w2.grad, "b": b.grad}
    for k in expected:
        assert_close(got[k], expected[k], 1e-12, 0, k)


def test_hand_derived_polynomial_and_exp_log():
    # f = a*b + b^3: df/da = b, df/db = a + 3b^2.
    a, b = Value(1.5), Value(-2.0)
    (a * b + b**3).backward()
    assert (a.grad, b.grad) == (-2.0, 13.5)
    # g = log(p) * exp(q): dg/dp = exp(q) / p, dg/dq = log(p) exp(q).
    p, q = Value(2.0), Value(0.5)
    (p.log() * q.exp()).backward()
    assert_close(p.grad, math.exp(0.5) / 2.0, 0, 1e-15, "dg/dp")
    assert_close(q.grad, math.log(2.0) * math.exp(0.5), 0, 1e-15, "dg/dq")
    # h = a / b: dh/da = 1/b, dh/db = -a/b^2.
    a, b = Value(3.0), Value(4.0)
    (a / b).backward()
    assert (a.grad, b.grad) == (0.25, -3.0 / 16.0)


@pytest.mark.parametrize(
    "op, x, expected",
    [
        ("sigmoid", 0.0, 0.25),  # s(0) (1 - s(0)) = 1/2 * 1/2
        ("tanh", 0.0, 1.0),  # 1 - tanh(0)^2
        ("exp", 0.0, 1.0),
        ("log", 1.0, 1.0),
        ("relu", 2.0, 1.0),
        ("relu", -2.0, 0.0),
        ("relu", 0.0, 0.0),  # the kink: we take 0, as PyTorch does
    ],
)
def test_hand_derived_unary_derivatives(op, x, expected):
    v = Value(x)
    getattr(v, op)().backward()
    assert v.grad == expected


def test_pow_at_zero():
    x = Value(0.0)
    (x**2).backward()
    assert x.grad == 0.0
    y = Value(0.0)
    (y**0.5).backward()
    assert y.grad == math.inf  # the square root's slope is vertical at 0


# -- reused nodes, deep graphs, accumulation ----------------------------------------------------


def test_reused_nodes_are_counted_once_per_use():
    a = Value(3.0)
    b = a + a
    c = b + b
    c.backward()
    assert (a.grad, b.grad, c.grad) == (4.0, 2.0, 1.0)


def test_diamond_graph():
    # z = x^2 + x * x^2 = x^2 + x^3: dz/dx = 2x + 3x^2 = 33 at x = 3; y = x*x is used twice.
    x = Value(3.0)
    y = x * x
    z = y + x * y
    z.backward()
    assert x.grad == 33.0
    assert y.grad == 4.0  # dz/dy = 1 + x


def test_self_cancelling_expressions():
    a = Value(1.7)
    (a - a).backward()
    assert a.grad == 0.0
    b = Value(1.7)
    (b / b).backward()  # 1/b - b/b^2
    assert abs(b.grad) < 1e-15


def test_ten_thousand_node_chain_does_not_recurse():
    # A recursive topological sort would need one Python frame per node.
    assert sys.getrecursionlimit() < 10_000
    x = Value(1.0)
    y = x
    for _ in range(10_000):
        y = y + x  # y = (k + 1) x after k steps; x is reused at every step
    y.backward()
    assert y.data == 10_001.0
    assert x.grad == 10_001.0
    y.zero_grad()
    assert x.grad == 0.0 and y.grad == 0.0
    assert repr(y) == "Value(data=10001.0, grad=0.0, op='+')"

    # A multiplicative chain: d(x * r^n)/dx = r^n, compared with math.pow.
    x = Value(1.0)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.backward()
    assert_close(x.grad, math.pow(1.0001, 10_000), 0, 1e-9, "chain gradient")


def test_gradients_accumulate_like_pytorch():
    a, b = Value(2.0), Value(-3.0)
    out = a * b
    out.backward()
    out.backward()  # a second pass adds the same gradients again, intermediates included
    assert (a.grad, b.grad, out.grad) == (-6.0, 4.0, 2.0)
    # Two different losses that share a leaf: the leaf holds the sum of both gradients.
    loss2 = a * a
    loss2.backward()
    assert a.grad == -6.0 + 4.0
    # zero_grad resets every node the output depends on, and then backward starts afresh.
    loss2.zero_grad()
    out.zero_grad()
    assert (a.grad, b.grad, out.grad, loss2.grad) == (0.0, 0.0, 0.0, 0.0)
    out.backward()
    assert (a.grad, b.grad) == (-3.0, 2.0)


def test_backward_twice_through_shared_intermediate_is_exact():
    # Re-sending accumulated .grad through the graph would give 3x here, not 2x.
    x = Value(1.5)
    y = x.tanh()
    z = y * y
    z.backward()
    once = x.grad
    z.backward()
    assert x.grad == 2.0 * once


def test_backward_with_upstream_gradient():
    a = Value(2.0)
    (a * a).backward(0.5)  # d/da (a^2) * 0.5 = a
    assert a.grad == 2.0


# -- reflected operators ------------------------------------------------------------------------


def test_reflected_operators():
    v = Value(4.0)
    cases = [
        (lambda: 2 + v, 6.0, 1.0),
        (lambda: 2 * v, 8.0, 2.0),
        (lambda: 2 - v, -2.0, -1.0),
        (lambda: 2 / v, 0.5, -2.0 / 16.0),  # d(2/v)/dv = -2/v^2
        (lambda: -v, -4.0, -1.0),
    ]
    for make, data, grad in cases:
        v.grad = 0.0
        out = make()
        out.backward()
        assert isinstance(out, Value)
        assert (out.data, v.grad) == (data, grad), f"{out} expected data {data}, grad {grad}"


# -- errors and repr ----------------------------------------------------------------------------


def test_log_of_non_positive_is_a_clear_error():
    with pytest.raises(ValueError, match=r"log needs a positive input, got 0\.0"):
        Value(0.0).log()
    with pytest.raises(ValueError, match=r"log needs a positive input, got -1\.5"):
        Value(-1.5).log()


def test_pow_needs_a_number_exponent():
    with pytest.raises(TypeError, match=r"exponent must be a number .* got Value"):
        Value(2.0) ** Value(3.0)
    with pytest.raises(TypeError, match=r"exponent must be a number .* got str"):
        Value(2.0) ** "3"
    with pytest.raises(TypeError):
        2 ** Value(3.0)  # no __rpow__: a Value exponent is written with exp and log


def test_pow_domain_errors():
    with pytest.raises(ValueError, match=r"base must be >= 0 .* got -8\.0"):
        Value(-8.0) ** (1 / 3)
    with pytest.raises(ZeroDivisionError, match=r"negative power"):
        Value(0.0) ** -1
    with pytest.raises(ZeroDivisionError, match=r"by zero"):
        Value(1.0) / Value(0.0)
    with pytest.raises(ZeroDivisionError, match=r"by zero"):
        1 / Value(0.0)
    assert (Value(-2.0) ** 3).data == -8.0  # a negative base with an integer power is fine


def test_other_errors():
    with pytest.raises(TypeError, match=r"data must be a number .* got str"):
        Value("1.0")
    with pytest.raises(TypeError, match=r"data must be a number .* got a Value"):
        Value(Value(1.0))
    with pytest.raises(TypeError):
        Value(1.0) + "a"
    with pytest.raises(TypeError):
        [1.0] * Value(2.0)
    with pytest.raises(TypeError, match=r"gradient must be a number, got str"):
        Value(1.0).backward("1")
    with pytest.raises(OverflowError, match=r"exp\(1000\.0\) overflows"):
        Value(1000.0).exp()


def test_repr():
    a = Value(3)
    assert repr(a) == "Value(data=3.0, grad=0.0)"
    b = a * 2
    b.backward()
    assert repr(b) == "Value(data=6.0, grad=1.0, op='*')"
    assert repr(a) == "Value(data=3.0, grad=2.0)"
    assert repr(a**2) == "Value(data=9.0, grad=0.0, op='**2')"


# -- property tests: random expression graphs ---------------------------------------------------

# Operations on any real input (unsafe ones composed with 1 + a^2 > 0), as (Value form, float form).
UNARY = {
    "neg": (lambda a: -a, lambda a: -a),
    "tanh": (lambda a: a.tanh(), math.tanh),
    "sigmoid": (lambda a: a.sigmoid(), lambda a: 1.0 / (1.0 + math.exp(-a))),
    "exp": (lambda a: a.exp(), math.exp),
    "relu": (lambda a: a.relu(), lambda a: max(a, 0.0)),
    "log1p_sq": (lambda a: (1 + a * a).log(), lambda a: math.log(1.0 + a * a)),
    "pow2": (lambda a: a**2, lambda a: a * a),
    "pow3": (lambda a: a**3, lambda a: a * a * a),
    "sqrt1p_sq": (lambda a: (a * a + 1) ** 0.5, lambda a: math.sqrt(a * a + 1.0)),
    "rsub": (lambda a: 0.5 - a, lambda a: 0.5 - a),
}
BINARY = {
    "add": (lambda a, b: a + b, lambda a, b: a + b),
    "sub": (lambda a, b: a - b, lambda a, b: a - b),
    "mul": (lambda a, b: a * b, lambda a, b: a * b),
    "div": (lambda a, b: a / (1 + b * b), lambda a, b: a / (1.0 + b * b)),
    "rdiv": (lambda a, b: 2 / (b * b + 1) * a, lambda a, b: 2.0 / (b * b + 1.0) * a),
}
BOUND = 10.0  # keep every intermediate small so finite differences stay accurate

inputs_st = st.lists(
    st.floats(-2.0, 2.0, allow_nan=False, allow_infinity=False), min_size=1, max_size=3
)
# Each step: an op and two operand picks, taken modulo the number of nodes so far, so programs
# reuse nodes (the same node as both operands, or one node in many places) all the time.
step_st = st.tuples(
    st.sampled_from(sorted(UNARY) + sorted(BINARY)), st.integers(0, 50), st.integers(0, 50)
)
program_st = st.lists(step_st, min_size=1, max_size=8)


def run_program(program, xs, unary_index, binary_index, check=False):
    """Evaluate a random program; the output weighs every node by a distinct coefficient."""
    nodes = list(xs)
    for op, i, j in program:
        a, b = nodes[i % len(nodes)], nodes[j % len(nodes)]
        if op in UNARY:
            if check and op == "relu":
                assume(abs(a) > 1e-3)  # finite differences straddling the kink are meaningless
            out = UNARY[op][unary_index](a)
        else:
            out = BINARY[op][binary_index](a, b)
        if check:
            assume(abs(out) <= BOUND)
        nodes.append(out)
    total = nodes[0] * 0.3
    for k, node in enumerate(nodes[1:], start=1):
        total = total + node * (0.3 + 0.1 * k)
    return total


def float_program(program):
    return lambda *xs: run_program(program, xs, 1, 1)


@given(xs=inputs_st, program=program_st)
def test_random_expressions_match_math_and_finite_differences(xs, program):
    try:
        ref = run_program(program, xs, 1, 1, check=True)  # also rejects unbounded programs
    except (OverflowError, ValueError, ZeroDivisionError):
        assume(False)
    leaves = [Value(x) for x in xs]
    out = run_program(program, leaves, 0, 0)
    # Derived ops round differently (a / b is a * b^-1), hence a tolerance and not equality.
    assert_close(out.data, ref, 1e-10, 1e-10, "forward")
    out.backward(1.3)
    f = float_program(program)
    for i, leaf in enumerate(leaves):
        fd = 1.3 * central_difference(f, xs, i)
        assert_close(leaf.grad, fd, 1e-5, 1e-5, f"d/dx{i} of {program} at {xs}")


@given(x=st.floats(-5.0, 5.0), y=st.floats(0.1, 5.0), repeats=st.integers(1, 4))
def test_backward_repeated_k_times_gives_k_times_the_gradient(x, y, repeats):
    a, b = Value(x), Value(y)
    out = (a * b).tanh() + b.log() * a
    out.backward()
    once = (a.grad, b.grad)
    out.zero_grad()
    for _ in range(repeats):
        out.backward()
    assert_close(a.grad, repeats * once[0], 1e-12, 1e-12, "a.grad")
    assert_close(b.grad, repeats * once[1], 1e-12, 1e-12, "b.grad")

"""Gradient checking by central finite differences (float64), for ops and for module parameters.

The oracle: for a scalar L(x), dL/dx_k ~ (L(x + h e_k) - L(x - h e_k)) / 2h, with error O(h^2)
from the Taylor series plus O(eps |L| / h) from rounding; h = 1e-6 keeps both near 1e-10 here.
A tensor-valued op f becomes the scalar L = <f(x), dout> for a fixed, non-uniform `dout`, whose
exact gradient is what backward(dout) must return.

Mismatches are reported as `|actual - expected| > atol + rtol * |expected|`, first few first.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from reference.nested import flatten, shape_of, unflatten

Tensor = Any
H = 1e-6
ATOL = 1e-7
RTOL = 1e-6


def random_tensor(shape: tuple[int, ...], seed: int, low: float = -1.0, high: float = 1.0) -> Any:
    """Reproducible uniform draws from Python's `random` (an RNG independent of ours)."""
    rng = random.Random(seed)
    return unflatten([rng.uniform(low, high) for _ in range(_numel(shape))], tuple(shape))


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _slots(x: Tensor) -> list[tuple[list, int]]:
    """(list, index) of every number in a nested list, row-major, so it can be nudged in place."""
    if not isinstance(x, list):
        raise TypeError(f"expected a nested list, got {type(x).__name__}")
    if x and isinstance(x[0], list):
        return [slot for row in x for slot in _slots(row)]
    return [(x, i) for i in range(len(x))]


def inner(a: Tensor, b: Tensor) -> float:
    """<a, b>: the sum of elementwise products of two tensors of one shape."""
    if shape_of(a) != shape_of(b):
        raise ValueError(f"inner product of shapes {shape_of(a)} and {shape_of(b)}")
    return sum(x * y for x, y in zip(flatten(a), flatten(b)))


def numerical_gradient(loss: Callable[[], float], x: Tensor, h: float = H) -> Tensor:
    """dL/dx by central differences, nudging each number of `x` in place (and restoring it)."""
    grad = []
    for row, i in _slots(x):
        saved = row[i]
        row[i] = saved + h
        plus = loss()
        row[i] = saved - h
        minus = loss()
        row[i] = saved
        grad.append((plus - minus) / (2.0 * h))
    return unflatten(grad, shape_of(x))


def mismatches(
    actual: Tensor, expected: Tensor, atol: float = ATOL, rtol: float = RTOL
) -> list[str]:
    """Descriptions of the entries with |actual - expected| > atol + rtol * |expected|."""
    if shape_of(actual) != shape_of(expected):
        return [f"shape {shape_of(actual)} != expected shape {shape_of(expected)}"]
    shape = shape_of(expected)
    bad = []
    for k, (a, e) in enumerate(zip(flatten(actual), flatten(expected))):
        tol = atol + rtol * abs(e)
        if not abs(a - e) <= tol:  # also catches NaN
            index = _unravel(k, shape)
            bad.append(
                f"at {index}: got {a!r}, expected {e!r} (|diff| {abs(a - e):.3g} > {tol:.3g})"
            )
    return bad


def _unravel(k: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    index = []
    for s in reversed(shape):
        index.append(k % s)
        k //= s
    return tuple(reversed(index))


def assert_close(
    actual: Tensor, expected: Tensor, name: str, atol: float = ATOL, rtol: float = RTOL, show=5
) -> None:
    """Fail naming `name`, the tolerance rule and the first `show` mismatching entries."""
    bad = mismatches(actual, expected, atol, rtol)
    if bad:
        raise AssertionError(
            f"{name}: {len(bad)} entries differ beyond atol + rtol*|ref| "
            f"(atol={atol:g}, rtol={rtol:g}); first: " + "; ".join(bad[:show])
        )


def check_op_gradients(
    forward: Callable[..., Tensor],
    inputs: dict[str, Tensor],
    dout: Tensor,
    analytic: dict[str, Tensor],
    h: float = H,
    atol: float = ATOL,
    rtol: float = RTOL,
) -> None:
    """Compare `analytic[name]` with d<forward(**inputs), dout>/d inputs[name] for each name.

    `forward(**inputs)` returns the op's output tensor (not its cache); `analytic` holds what the
    op's backward returned for `dout` at the same inputs.
    """
    for name, grad in analytic.items():
        numeric = numerical_gradient(lambda: inner(forward(**inputs), dout), inputs[name], h)
        assert_close(grad, numeric, f"d/d{name}", atol, rtol)


def check_module_gradients(
    module: Any,
    x: Tensor,
    dout: Tensor,
    h: float = H,
    atol: float = ATOL,
    rtol: float = RTOL,
    check_input: bool = True,
) -> None:
    """Run module.forward(x) and module.backward(dout) from zeroed grads, then compare the
    returned dx and every parameter's .grad with central differences of <module(x), dout>.
    """
    module.zero_grad()
    module.forward(x)
    dx = module.backward(dout)

    def loss() -> float:
        return inner(module.forward(x), dout)

    if check_input:
        assert_close(dx, numerical_gradient(loss, x, h), "d/dinput", atol, rtol)
    for name, p in module.named_parameters():
        assert_close(p.grad, numerical_gradient(loss, p.data, h), f"d/d{name}", atol, rtol)

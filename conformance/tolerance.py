"""How close is close enough, and a report that says what failed.

float64: the candidate must match the reference's Python floats to a relative error near 1e-10
where both sum in the same order; where a candidate reorders sums (BLAS matmuls, blocked
reductions), the rounding differs by about K * 2**-53 relative for a length-K sum, which is far
below the 1e-9 we allow.

float32: the candidate computes in float32, the reference in float64, so the candidate's error is
its own rounding: about K * 2**-24 relative for a length-K dot product, times a safety factor
(and a few such steps stacked in a network). `float32_tol(K)` gives that.
"""

from __future__ import annotations

import numpy as np

F64_RTOL = 1e-9
F64_ATOL = 1e-12
EPS32 = 2.0**-24


def float32_tol(k: int, depth: int = 1) -> float:
    """Relative tolerance for float32 results built from length-k sums, `depth` layers deep."""
    return 32.0 * EPS32 * max(1, k) * max(1, depth)


def assert_close(
    candidate, reference, rtol: float = F64_RTOL, atol: float = F64_ATOL, what: str = "value"
) -> None:
    """|cand - ref| <= atol + rtol * |ref| everywhere, else an error listing the first
    mismatches with their indices, both values and the allowed error."""
    if hasattr(candidate, "copy_to_host"):  # a GPU array: copied back explicitly
        candidate = candidate.copy_to_host()
    c = np.asarray(candidate, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    if c.shape != r.shape:
        raise AssertionError(f"{what}: shape {c.shape} from the candidate, {r.shape} expected")
    allowed = atol + rtol * np.abs(r)
    err = np.abs(c - r)
    bad = ~(err <= allowed)  # NaN counts as bad
    if bad.any():
        idx = np.argwhere(bad)[:5]
        lines = [
            f"  at {tuple(int(i) for i in ix)}: candidate {c[tuple(ix)]!r}, reference "
            f"{r[tuple(ix)]!r}, error {err[tuple(ix)]:.3g} > allowed {allowed[tuple(ix)]:.3g}"
            for ix in idx
        ]
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {bad.size} values differ "
            f"(tolerance atol {atol:g} + rtol {rtol:g} * |ref|):\n" + "\n".join(lines)
        )


def raised(call):
    """(exception type, message) that `call()` raises, or None."""
    try:
        call()
    except Exception as e:  # noqa: BLE001 - the tests compare whatever was raised
        return type(e), str(e)
    return None


def assert_same_error(reference_call, candidate_call, must_raise=True):
    """The same exception type and message from both (or, unless must_raise, none from both)."""
    want = raised(reference_call)
    assert want is not None or not must_raise, "the reference accepted it"
    assert raised(candidate_call) == want


def compare_gradients(r, c, what: str = "gradients") -> None:
    """Every parameter's gradient of model `c` against model `r` (same names, same order), to
    F64_RTOL relative plus an absolute 1e-10 of the largest gradient: a gradient can be a
    difference of nearly equal terms of that size (layer norm over a few channels whose inputs
    nearly agree), where reordered sums leave ~1e-11 of it."""
    cgrads = dict(c.named_parameters())
    assert list(cgrads) == [n for n, _ in r.named_parameters()]
    scale = max(float(np.max(np.abs(np.asarray(p.grad)))) for _, p in r.named_parameters())
    for name, p in r.named_parameters():
        assert cgrads[name].grad.shape == tuple(p.shape), name
        assert_close(
            cgrads[name].grad,
            p.grad,
            atol=max(1e-10 * scale, F64_ATOL),
            what=f"{what}: grad {name}",
        )

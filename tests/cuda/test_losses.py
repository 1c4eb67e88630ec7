"""fast.cuda.losses against fast.losses (the CPU backend) on tiny inputs.

Runs on a GPU where there is one, otherwise in Numba's CUDA simulator (conftest.py chooses), where
every simulated thread is a Python thread: so a few rows each, but row lengths V = 1, 5 and 37
around the 32-thread block (one element per thread, a partial block, more than one pass).
Tolerances: float64 ~1e-12 (only the summation order differs from numpy's), float32 ~1e-5 (the
CUDA kernels keep exp and sums in float64 where numpy works in float32).
"""

import numpy as np
import pytest

import fast.cuda  # noqa: F401  (warms up the jitted helpers before any kernel runs)
import fast.cuda.losses as cl
import fast.losses as fl
from fast.cuda.array import DeviceArray, to_device

TOL = {np.float64: 1e-12, np.float32: 1e-5}
DTYPES = [np.float64, np.float32]


def _close(got, want, dtype):
    np.testing.assert_allclose(got, want, rtol=TOL[dtype], atol=TOL[dtype])


def _logits(seed, shape, dtype, scale=3.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


class _NoLaunch:
    """Stands in for a kernel or an upload that a failing call must never reach."""

    def __getitem__(self, config):
        raise AssertionError("a kernel was launched before the arguments were checked")

    def __call__(self, *args, **kwargs):
        raise AssertionError("data was uploaded before the arguments were checked")


@pytest.fixture
def no_kernels(monkeypatch):
    """Fail the test if fast.cuda.losses launches a kernel or uploads anything."""
    names = ("_softmax_kernel", "_cross_entropy_kernel", "_mse_kernel", "_ordered_sum_kernel")
    for name in names + ("to_device",):
        monkeypatch.setattr(cl, name, _NoLaunch())


# -- softmax / log_softmax -------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("V", [1, 5, 37])
def test_softmax_and_log_softmax_match_cpu(dtype, V):
    x = _logits(V, (2, V), dtype)
    for cuda_f, cpu_f in ((fl.softmax, fl.softmax), (fl.log_softmax, fl.log_softmax)):
        out = cuda_f(to_device(x))
        assert isinstance(out, DeviceArray) and out.dtype == dtype and out.shape == x.shape
        _close(out.copy_to_host(), cpu_f(x), dtype)


def test_softmax_of_a_vector_a_3d_array_and_a_transposed_view():
    row = _logits(1, (6,), np.float64)
    _close(fl.softmax(to_device(row)).copy_to_host(), fl.softmax(row), np.float64)
    x3 = _logits(2, (2, 1, 3), np.float64)
    _close(fl.log_softmax(to_device(x3)).copy_to_host(), fl.log_softmax(x3), np.float64)
    xt = _logits(3, (4, 2), np.float64)  # read through strides (1, 2): no copy
    _close(fl.softmax(to_device(xt).T).copy_to_host(), fl.softmax(xt.T), np.float64)


def test_softmax_is_stable_for_large_logits():
    x = np.array([[1000.0, 1000.0, -1000.0], [-1000.0, -999.0, -1000.0]])
    out = fl.softmax(to_device(x)).copy_to_host()
    assert np.isfinite(out).all()
    _close(out, fl.softmax(x), np.float64)
    _close(fl.log_softmax(to_device(x)).copy_to_host(), fl.log_softmax(x), np.float64)


def test_softmax_errors_match_cpu(no_kernels):
    scalar = to_device(np.array([1.0])).reshape(())  # (to_device itself makes 0-d arrays 1-D)
    for f in (fl.softmax, fl.log_softmax):
        for row in (scalar, 1.0):
            with pytest.raises(ValueError, match="row must have at least one axis"):
                f(row)
        for row in (to_device(np.zeros((2, 0))), np.zeros((2, 0))):
            with pytest.raises(ValueError, match="row must have a non-empty last axis"):
                f(row)
        with pytest.raises(TypeError, match="row must hold"):
            f(to_device(np.zeros(3, dtype=np.int64)))
        with pytest.raises(TypeError, match="row must hold numbers"):
            f(["a", "b"])


# -- softmax_cross_entropy -------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("V", [1, 5, 37])
def test_cross_entropy_matches_cpu(dtype, V):
    x = _logits(10 + V, (3, V), dtype)
    t = np.random.default_rng(V).integers(0, V, size=3)
    loss, grad = fl.softmax_cross_entropy(to_device(x), t)
    want_loss, want_grad = fl.softmax_cross_entropy(x, t)
    assert isinstance(loss, float)
    assert isinstance(grad, DeviceArray) and grad.dtype == dtype and grad.shape == x.shape
    _close(loss, want_loss, dtype)
    _close(grad.copy_to_host(), want_grad, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_ignore_index_rows_count_for_nothing(dtype):
    x = _logits(4, (4, 5), dtype)
    t = [2, -100, 4, -100]
    loss, grad = fl.softmax_cross_entropy(to_device(x), t, ignore_index=-100)
    want_loss, want_grad = fl.softmax_cross_entropy(x, t, ignore_index=-100)
    g = grad.copy_to_host()
    assert (g[[1, 3]] == 0.0).all()
    _close(loss, want_loss, dtype)
    _close(g, want_grad, dtype)


def test_cross_entropy_ignore_index_may_be_a_valid_class():
    x = _logits(5, (3, 4), np.float64)
    t = [0, 1, 0]  # class 0 ignored: only row 1 counts
    loss, grad = fl.softmax_cross_entropy(to_device(x), t, ignore_index=0)
    want_loss, want_grad = fl.softmax_cross_entropy(x, t, ignore_index=0)
    _close(loss, want_loss, np.float64)
    _close(grad.copy_to_host(), want_grad, np.float64)


def test_cross_entropy_all_ignored_gives_zero_and_zeros():
    x = _logits(6, (2, 3), np.float32)
    loss, grad = fl.softmax_cross_entropy(to_device(x), [7, 7], ignore_index=7)
    assert loss == 0.0
    assert grad.shape == (2, 3) and grad.dtype == np.float32
    assert (grad.copy_to_host() == 0.0).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_is_stable_for_large_logits(dtype):
    x = np.array([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, 1000.0]], dtype=dtype)
    t = [1, 2]
    loss, grad = fl.softmax_cross_entropy(to_device(x), t)
    want_loss, want_grad = fl.softmax_cross_entropy(x, t)
    assert np.isfinite(loss) and np.isfinite(grad.copy_to_host()).all()
    _close(loss, want_loss, dtype)
    _close(grad.copy_to_host(), want_grad, dtype)


def test_cross_entropy_reads_a_transposed_view():
    xt = _logits(7, (5, 2), np.float64)
    t = [3, 0]
    loss, grad = fl.softmax_cross_entropy(to_device(xt).T, t)
    want_loss, want_grad = fl.softmax_cross_entropy(xt.T, t)
    _close(loss, want_loss, np.float64)
    _close(grad.copy_to_host(), want_grad, np.float64)


def test_cross_entropy_is_deterministic():
    x = to_device(_logits(8, (3, 37), np.float32))
    t = [1, 36, 0]
    (l1, g1), (l2, g2) = fl.softmax_cross_entropy(x, t), fl.softmax_cross_entropy(x, t)
    assert l1 == l2
    assert np.array_equal(g1.copy_to_host(), g2.copy_to_host())


@pytest.mark.parametrize(
    "targets, error, match",
    [
        ([0, 5], ValueError, r"targets\[1\] = 5 out of range for 5 classes"),
        ([-1, 0], ValueError, r"targets\[0\] = -1 out of range for 5 classes"),
        ([0, 1, 2], ValueError, "targets must have 2 entries like logits"),
        ([0.0, 1.0], TypeError, "targets must hold ints"),
        ([True, False], TypeError, "targets must hold ints"),
    ],
)
def test_cross_entropy_bad_targets_fail_before_any_kernel(targets, error, match, no_kernels):
    logits = to_device(np.zeros((2, 5)))  # this module's to_device: not patched
    with pytest.raises(error, match=match):
        fl.softmax_cross_entropy(logits, targets)
    with pytest.raises(error, match=match):
        fl.softmax_cross_entropy(np.zeros((2, 5)), targets)  # the CPU says the same


def test_cross_entropy_bad_logits(no_kernels):
    with pytest.raises(ValueError, match=r"logits must have shape \(N, V\)"):
        fl.softmax_cross_entropy(to_device(np.zeros(3)), [0])
    with pytest.raises(ValueError, match="targets must have 2 entries"):
        fl.softmax_cross_entropy(to_device(np.zeros((2, 3))), [[0, 1]])


# -- mse_loss --------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("K", [1, 37])
def test_mse_matches_cpu(dtype, K):
    rng = np.random.default_rng(K)
    y = rng.standard_normal((2, K)).astype(dtype)
    t = rng.standard_normal((2, K)).astype(dtype)
    loss, grad = fl.mse_loss(to_device(y), t)
    want_loss, want_grad = fl.mse_loss(y, t)
    assert isinstance(loss, float) and grad.dtype == dtype and grad.shape == y.shape
    _close(loss, want_loss, dtype)
    _close(grad.copy_to_host(), want_grad, dtype)


def test_mse_takes_list_targets_device_targets_and_views():
    y = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    t = [[0.0, 2.0, 1.0], [1.0, 1.0, 1.0]]
    want_loss, want_grad = fl.mse_loss(y, t)
    for targets in (t, to_device(np.array(t))):
        loss, grad = fl.mse_loss(to_device(y), targets)
        _close(loss, want_loss, np.float64)
        _close(grad.copy_to_host(), want_grad, np.float64)
    loss, grad = fl.mse_loss(to_device(y.T.copy()).T, to_device(np.array(t).T.copy()).T)
    _close(loss, want_loss, np.float64)
    _close(grad.copy_to_host(), want_grad, np.float64)


def test_mse_errors_match_cpu(no_kernels):
    cases = [
        (np.zeros(3), np.zeros(3), r"outputs must have shape \(B, K\)"),
        (np.zeros((2, 3)), np.zeros((3, 3)), r"targets must have shape \(2, 3\) like outputs"),
        (np.zeros((2, 3)), np.zeros((2, 4)), r"targets must have shape \(2, 3\)"),
        (np.zeros((0, 3)), np.zeros((0, 3)), "mse_loss needs at least one element"),
    ]
    for outputs, targets, match in cases:
        with pytest.raises(ValueError, match=match):
            fl.mse_loss(outputs, targets)
        with pytest.raises(ValueError, match=match):
            fl.mse_loss(to_device(outputs), targets)
        with pytest.raises(ValueError, match=match):
            fl.mse_loss(outputs, targets)  # host outputs: checked before any upload


# -- ordered_sum -----------------------------------------------------------------------------------
def test_ordered_sum_of_strided_float32_and_float64_vectors():
    a = np.random.default_rng(9).standard_normal(75)
    assert cl.ordered_sum(to_device(a)) == pytest.approx(a.sum(), rel=1e-13)
    assert cl.ordered_sum(to_device(a)[3:70:4]) == pytest.approx(a[3:70:4].sum(), rel=1e-13)
    a32 = a.astype(np.float32)
    assert cl.ordered_sum(to_device(a32)) == pytest.approx(a32.astype(np.float64).sum(), rel=1e-13)
    assert cl.ordered_sum(to_device(a)[:0]) == 0.0
    with pytest.raises(ValueError, match="1-D"):
        cl.ordered_sum(to_device(np.zeros((2, 2))))
    with pytest.raises(TypeError, match="DeviceArray"):
        cl.ordered_sum(a)

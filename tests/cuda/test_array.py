"""DeviceArray and the tiled matmul against numpy, on shapes that cross tile edges."""

import numpy as np
import pytest

import fast.cuda  # noqa: F401  (warms up the shared jitted helpers)
from fast.cuda.array import concatenate, empty, to_device, zeros
from fast.cuda.gemm import BM, gemm

RNG = np.random.default_rng(7)


def randn(*shape, dtype=np.float64):
    return RNG.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("M,K,N", [(1, 1, 1), (BM + 1, 3, 2), (3, 2 * BM + 1, BM - 1), (9, 7, 17)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matmul_partial_tiles(M, K, N, dtype):
    a, b = randn(M, K, dtype=dtype), randn(K, N, dtype=dtype)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose((to_device(a) @ to_device(b)).copy_to_host(), a @ b, atol=tol)


@pytest.mark.parametrize("a_transposed", [False, True])
@pytest.mark.parametrize("b_transposed", [False, True])
def test_matmul_of_transposed_views_across_tiles(a_transposed, b_transposed):
    """Each operand's load layout follows its strides: all four combinations, edges included."""
    M, K, N = BM + 3, 2 * BM + 1, BM + 2
    a, b = randn(M, K), randn(K, N)
    da = to_device(np.ascontiguousarray(a.T)).T if a_transposed else to_device(a)
    db = to_device(np.ascontiguousarray(b.T)).T if b_transposed else to_device(b)
    assert (da.strides[0] == 1) == a_transposed and (db.strides[0] == 1) == b_transposed
    np.testing.assert_allclose((da @ db).copy_to_host(), a @ b, atol=1e-12)


def test_matmul_on_strided_views_with_accumulation():
    a, b, c = randn(2, 3, 5, 4), randn(2, 3, 5, 4), randn(2, 3, 5, 5)
    out = to_device(c)
    gemm(to_device(a), to_device(b).swapaxes(-1, -2), out, alpha=0.5, beta=2.0)
    np.testing.assert_allclose(out.copy_to_host(), 0.5 * a @ b.swapaxes(-1, -2) + 2.0 * c)
    heads = to_device(randn(2, 5, 6)).reshape(2, 5, 3, 2).transpose(0, 2, 1, 3)  # (B, H, T, hs)
    host = heads.copy_to_host()
    np.testing.assert_allclose(
        (heads @ heads.swapaxes(-1, -2)).copy_to_host(), host @ host.swapaxes(-1, -2)
    )


def test_empty_inner_dimension_gives_zeros():
    out = empty((2, 3), np.float64)  # NaN-filled under the simulator
    gemm(to_device(np.zeros((2, 0))), to_device(np.zeros((0, 3))), out)
    assert np.array_equal(out.copy_to_host(), np.zeros((2, 3)))


def test_matmul_errors():
    with pytest.raises(ValueError, match=r"matmul shapes do not match: \(2, 3\) @ \(2, 3\)"):
        to_device(np.zeros((2, 3))) @ to_device(np.zeros((2, 3)))
    with pytest.raises(TypeError, match="share a dtype"):
        to_device(np.zeros((2, 3))) @ to_device(np.zeros((3, 2), np.float32))


def test_views_arithmetic_and_assignment_match_numpy():
    x = randn(3, 4, 5)
    d = to_device(x)
    for key in [(1,), (slice(None), 2), (Ellipsis, 1), (slice(0, 3, 2), slice(1, None), -1)]:
        np.testing.assert_array_equal(d[key].copy_to_host(), x[key])
    np.testing.assert_array_equal(d.transpose(2, 0, 1).copy_to_host(), x.transpose(2, 0, 1))
    np.testing.assert_array_equal(d[:, 1:3].reshape(-1).copy_to_host(), x[:, 1:3].reshape(-1))
    b = randn(5)
    np.testing.assert_allclose((d + to_device(b)).copy_to_host(), x + b)
    np.testing.assert_allclose((2.0 - d * 3.0).copy_to_host(), 2.0 - x * 3.0)
    np.testing.assert_allclose((d / 4).copy_to_host(), x / 4, rtol=1e-15)
    y = d.copy()
    y[:, 0] = to_device(np.ones((3, 5)))
    y[2] = 7.0
    want = x.copy()
    want[:, 0] = 1.0
    want[2] = 7.0
    np.testing.assert_array_equal(y.copy_to_host(), want)
    np.testing.assert_allclose(d[0].sum(axis=0).copy_to_host(), x[0].sum(axis=0))
    np.testing.assert_array_equal(d.astype(np.float32).copy_to_host(), x.astype(np.float32))
    np.testing.assert_array_equal(d[np.array([2, 0])].copy_to_host(), x[[2, 0]])
    np.testing.assert_array_equal(
        concatenate([d, d[:, :2]], axis=1).copy_to_host(), np.concatenate([x, x[:, :2]], axis=1)
    )
    np.testing.assert_array_equal(zeros((2, 2), np.float32).copy_to_host(), np.zeros((2, 2)))


def test_array_errors():
    d = to_device(np.zeros((2, 3)))
    with pytest.raises(IndexError, match="out of bounds for axis 0 with size 2"):
        d[2]
    with pytest.raises(ValueError, match=r"cannot reshape \(2, 3\)"):
        d.reshape(4, 2)
    with pytest.raises(ValueError, match="do not broadcast"):
        d + to_device(np.zeros(2))
    with pytest.raises(TypeError, match="copy numpy arrays to the device first"):
        d + np.zeros(3)
    with pytest.raises(ValueError, match="cannot update shape"):
        d[0] += d


def test_column_sums_span_several_row_chunks():
    from fast.cuda.launch import ROWS_PER_CHUNK

    x = randn(3 * ROWS_PER_CHUNK + 1, 5)
    np.testing.assert_allclose(to_device(x).sum(axis=0).copy_to_host(), x.sum(axis=0))
    np.testing.assert_allclose(to_device(x).T.T.sum(axis=0).copy_to_host(), x.sum(axis=0))
    np.testing.assert_allclose(to_device(x.T.copy()).T.sum(axis=0).copy_to_host(), x.sum(axis=0))


def test_a_view_outside_its_buffer_is_refused():
    from fast.cuda.array import DeviceArray

    buf = to_device(np.zeros(6)).buffer
    DeviceArray(buf, (2, 3))  # exactly fits
    with pytest.raises(ValueError, match="reaches outside its buffer of 6 elements"):
        DeviceArray(buf, (2, 3), offset=1)
    with pytest.raises(ValueError, match="reaches outside its buffer"):
        DeviceArray(buf, (3, 3), (3, 1))

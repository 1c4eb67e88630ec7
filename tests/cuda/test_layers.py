"""fast/layers.py on DeviceArrays (its GPU kernels) against the CPU backend (itself checked
against the reference), on tiny shapes with odd sizes: the simulator runs every GPU thread in
Python."""

import numpy as np
import pytest

import fast.cuda  # noqa: F401  (warms up the shared jitted helpers)
from fast import layers as cpu
from fast.cuda.array import DeviceArray, to_device

TOL = {np.float64: 1e-12, np.float32: 2e-5}
DTYPES = [np.float64, np.float32]


def host(x):
    return x.copy_to_host() if isinstance(x, DeviceArray) else x


def close(a, b, dtype):
    np.testing.assert_allclose(host(a), host(b), rtol=TOL[dtype], atol=TOL[dtype])


def randn(rng, *shape, dtype=np.float64):
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["out_in", "in_out"])
def test_linear(dtype, layout):
    rng = np.random.default_rng(1)
    x, b, d = randn(rng, 2, 3, 5, dtype=dtype), randn(rng, 7, dtype=dtype), randn(rng, 2, 3, 7)
    w = randn(rng, *((7, 5) if layout == "out_in" else (5, 7)), dtype=dtype)
    y, cache = cpu.linear_forward(x, w, b, layout)
    yg, cache_g = cpu.linear_forward(to_device(x), to_device(w), to_device(b), layout)
    assert isinstance(yg, DeviceArray)  # the GPU path of the same public function
    close(yg, y, dtype)
    for got, want in zip(
        cpu.linear_backward(to_device(d.astype(dtype)), cache_g), cpu.linear_backward(d, cache)
    ):
        close(got, want, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm(dtype):
    rng = np.random.default_rng(2)
    x, w, b = (
        randn(rng, 9, 37, dtype=dtype),
        randn(rng, 37, dtype=dtype),
        randn(rng, 37, dtype=dtype),
    )
    d = randn(rng, 9, 37, dtype=dtype)  # 9 rows: several row chunks for the parameter gradients
    y, cache = cpu.layer_norm_forward(x, w, b, 1e-5)
    yg, cache_g = cpu.layer_norm_forward(to_device(x), to_device(w), to_device(b), 1e-5)
    close(yg, y, dtype)
    for got, want in zip(
        cpu.layer_norm_backward(to_device(d), cache_g), cpu.layer_norm_backward(d, cache)
    ):
        close(got, want, dtype)


@pytest.mark.parametrize(
    "name", ["gelu", "gelu_erf", "relu", "tanh", "sigmoid", "step", "identity"]
)
def test_activations(name):
    rng = np.random.default_rng(3)
    x, d = randn(rng, 2, 7), randn(rng, 2, 7)
    y, cache = cpu.activation_forward(x, name)
    yg, cache_g = cpu.activation_forward(to_device(x), name)
    close(yg, y, np.float64)
    close(
        cpu.activation_backward(to_device(d), cache_g),
        cpu.activation_backward(d, cache),
        np.float64,
    )


def test_dropout_is_bit_identical():
    rng = np.random.default_rng(4)
    x = randn(rng, 3, 11)
    y, cache = cpu.dropout_forward(x, 0.4, seed=7, stream=(3 << 16) + 2)
    yg, cache_g = cpu.dropout_forward(to_device(x), 0.4, seed=7, stream=(3 << 16) + 2)
    assert np.array_equal(host(yg), y)
    d = randn(rng, 3, 11)
    assert np.array_equal(
        host(cpu.dropout_backward(to_device(d), cache_g)), cpu.dropout_backward(d, cache)
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_embedding_scatter_add_repeated_ids(dtype):
    rng = np.random.default_rng(5)
    w = randn(rng, 6, 5, dtype=dtype)
    idx = np.array([[1, 4, 1, 0], [4, 4, 2, 1]])
    y, cache = cpu.embedding_forward(w, idx)
    yg, cache_g = cpu.embedding_forward(to_device(w), idx)
    close(yg, y, dtype)
    d = randn(rng, 2, 4, 5, dtype=dtype)
    close(cpu.embedding_backward(to_device(d), cache_g), cpu.embedding_backward(d, cache), dtype)
    pos, pcache = cpu.position_embedding_forward(to_device(w), 2, 3, start=2)
    close(pos, cpu.position_embedding_forward(w, 2, 3, start=2)[0], dtype)


def test_cross_entropy_and_residual():
    rng = np.random.default_rng(6)
    z = randn(rng, 2, 3, 5)
    t = np.array([[1, -100, 4], [0, 2, 2]])
    loss, cache = cpu.cross_entropy_forward(z, t)
    loss_g, cache_g = cpu.cross_entropy_forward(to_device(z), t)
    assert isinstance(loss_g, float) and abs(loss_g - loss) < 1e-12
    close(
        cpu.cross_entropy_backward(2.0, cache_g), cpu.cross_entropy_backward(2.0, cache), np.float64
    )
    a, b = randn(rng, 2, 3), randn(rng, 2, 3)
    close(cpu.residual_forward(to_device(a), to_device(b))[0], a + b, np.float64)


def test_errors_before_any_kernel():
    w = to_device(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="idx value 4 out of range for 4 embeddings"):
        cpu.embedding_forward(w, [[0, 4]])
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 3\)"):
        cpu.linear_forward(to_device(np.zeros((2, 4))), w)
    with pytest.raises(ValueError, match="targets must have shape"):
        cpu.cross_entropy_forward(to_device(np.zeros((1, 2, 3))), [[0]])
    with pytest.raises(TypeError, match="copy_to_host"):
        np.asarray(w)


def test_the_activation_functions_and_derivatives_on_the_device():
    """fast.sigmoid(x), fast.relu_derivative(x), ...: the seed's activations on a DeviceArray."""
    import fast

    x = np.linspace(-3.0, 3.0, 13).reshape(1, 13)
    for name, (f, df) in fast.ACTIVATIONS.items():
        close(f(to_device(x)), f(x), np.float64)
        close(df(to_device(x)), df(x), np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rms_norm(dtype):
    rng = np.random.default_rng(7)
    x, w, d = randn(rng, 9, 37, dtype=dtype), randn(rng, 37, dtype=dtype), randn(rng, 9, 37)
    y, cache = cpu.rms_norm_forward(x, w, 1e-6)
    yg, cache_g = cpu.rms_norm_forward(to_device(x), to_device(w), 1e-6)
    assert isinstance(yg, DeviceArray)
    close(yg, y, dtype)
    d = d.astype(dtype)
    for got, want in zip(
        cpu.rms_norm_backward(to_device(d), cache_g), cpu.rms_norm_backward(d, cache)
    ):
        close(got, want, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_head, hs, start", [(2, 6, 0), (1, 10, 7)])
def test_rope(dtype, n_head, hs, start):
    rng = np.random.default_rng(8)
    x, d = randn(rng, 2, 3, n_head * hs, dtype=dtype), randn(rng, 2, 3, n_head * hs, dtype=dtype)
    y, cache = cpu.rope_forward(x, n_head, start, 500.0)
    yg, cache_g = cpu.rope_forward(to_device(x), n_head, start, 500.0)
    close(yg, y, dtype)
    close(cpu.rope_backward(to_device(d), cache_g), cpu.rope_backward(d, cache), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_swiglu(dtype):
    rng = np.random.default_rng(9)
    g, u, d = (randn(rng, 2, 3, 5, dtype=dtype) * 3 for _ in range(3))
    y, cache = cpu.swiglu_forward(g, u)
    yg, cache_g = cpu.swiglu_forward(to_device(g), to_device(u))
    close(yg, y, dtype)
    for got, want in zip(cpu.swiglu_backward(to_device(d), cache_g), cpu.swiglu_backward(d, cache)):
        close(got, want, dtype)

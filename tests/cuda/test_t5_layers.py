"""fast/t5_layers.py on DeviceArrays (T5's layer norm kernels, and the gather, scatter-add,
biased attention and GELU launchers it reuses) against the CPU backend (itself checked against
the reference), on tiny shapes with odd sizes: the simulator runs every GPU thread in Python."""

import numpy as np
import pytest

import fast.cuda  # noqa: F401  (warms up the shared jitted helpers)
from fast import t5_layers as ops
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
def test_t5_layer_norm(dtype):
    rng = np.random.default_rng(2)
    x, w, d = randn(rng, 9, 37, dtype=dtype), randn(rng, 37, dtype=dtype), randn(rng, 9, 37)
    y, cache = ops.t5_layer_norm_forward(x, w, 1e-6)
    yg, cache_g = ops.t5_layer_norm_forward(to_device(x), to_device(w), 1e-6)
    assert isinstance(yg, DeviceArray)
    close(yg, y, dtype)
    d = d.astype(dtype)
    for got, want in zip(
        ops.t5_layer_norm_backward(to_device(d), cache_g), ops.t5_layer_norm_backward(d, cache)
    ):
        close(got, want, dtype)


@pytest.mark.parametrize("bidirectional", [True, False])
def test_relative_position_bias(bidirectional):
    rng = np.random.default_rng(3)
    table, d = randn(rng, 6, 3), randn(rng, 3, 4, 5)
    bias, cache = ops.relative_position_bias_forward(table, 4, 5, bidirectional, 9)
    bias_g, cache_g = ops.relative_position_bias_forward(to_device(table), 4, 5, bidirectional, 9)
    close(bias_g, bias, np.float64)
    close(
        ops.relative_position_bias_backward(to_device(d), cache_g),
        ops.relative_position_bias_backward(d, cache),
        np.float64,
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "causal,p,with_bias", [(False, 0.0, True), (True, 0.3, True), (True, 0.0, False)]
)
def test_t5_attention(dtype, causal, p, with_bias):
    rng = np.random.default_rng(4)
    q, k, v = (randn(rng, 2, 2, 3, 2, dtype=dtype) for _ in range(3))
    bias = randn(rng, 2, 3, 3, dtype=dtype) if with_bias else None
    mask = np.array([[False, False, True], [False, False, False]])
    dout = randn(rng, 2, 2, 3, 2, dtype=dtype)
    out, cache = ops.t5_attention_forward(q, k, v, bias, causal, mask, p, 5, 6)
    dev = [to_device(a) for a in (q, k, v)]
    out_g, cache_g = ops.t5_attention_forward(
        *dev, None if bias is None else to_device(bias), causal, mask, p, 5, 6
    )
    close(out_g, out, dtype)
    for got, want in zip(
        ops.t5_attention_backward(to_device(dout), cache_g), ops.t5_attention_backward(dout, cache)
    ):
        close(got, want, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gated_gelu(dtype):
    rng = np.random.default_rng(5)
    g, u, d = (randn(rng, 3, 7, dtype=dtype) for _ in range(3))
    out, cache = ops.gated_gelu_forward(g, u)
    out_g, cache_g = ops.gated_gelu_forward(to_device(g), to_device(u))
    close(out_g, out, dtype)
    for got, want in zip(
        ops.gated_gelu_backward(to_device(d), cache_g), ops.gated_gelu_backward(d, cache)
    ):
        close(got, want, dtype)


def test_a_host_operand_beside_a_device_one_is_refused():
    w = to_device(np.ones(4))
    with pytest.raises(TypeError, match="x"):
        ops.t5_layer_norm_forward(np.ones((2, 4)), w)

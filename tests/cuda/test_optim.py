"""fast.cuda.optim against fast.cpu.optim's kernels and numpy, on small flat buffers.

Each update test runs a few steps of the CUDA kernel and of the CPU kernel from the same start
(first-step flag, momentum, Nesterov, weight decay, Adam's bias corrections as fast/optim.py
computes them) and compares weights and state: both do the arithmetic in float64 scalars, so
float64 agrees to ~1e-12 and float32 to ~1e-5. 70 elements: more than one grid-stride pass of the
simulator's 32 threads, and a partial one.
"""

import math

import numpy as np
import pytest

import fast.cuda  # noqa: F401  (warms up the jitted helpers before any kernel runs)
import fast.cuda.optim as co
from fast.cpu.optim import adam_kernel, sgd_kernel
from fast.cuda.array import DeviceArray, to_device

N = 70
TOL = {np.float64: 1e-12, np.float32: 1e-5}
DTYPES = [np.float64, np.float32]


def _close(got, want, dtype):
    np.testing.assert_allclose(got, want, rtol=TOL[dtype], atol=TOL[dtype])


def _grads(seed, steps, dtype):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(N).astype(dtype) for _ in range(steps)]


# -- SGD -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "momentum, weight_decay, nesterov",
    [(0.0, 0.0, False), (0.9, 0.0, False), (0.9, 0.01, True), (0.5, 0.1, False)],
)
def test_sgd_steps_match_cpu(dtype, momentum, weight_decay, nesterov):
    w = np.random.default_rng(0).standard_normal(N).astype(dtype)
    cpu_w, cpu_buf = w.copy(), np.zeros_like(w)
    dw, dbuf = to_device(w), to_device(np.zeros_like(w))
    for step, g in enumerate(_grads(1, 3, dtype)):
        args = (0.1, momentum, weight_decay, nesterov, step == 0)
        sgd_kernel(cpu_w, g, cpu_buf, *args)
        co.sgd_update(dw, to_device(g), dbuf, *args)
        _close(dw.copy_to_host(), cpu_w, dtype)
        _close(dbuf.copy_to_host(), cpu_buf, dtype)


def test_sgd_first_step_sets_the_buffer_whatever_it_held():
    g = _grads(2, 1, np.float64)[0]
    w, buf = to_device(np.ones(N)), to_device(np.full(N, 123.0))
    co.sgd_update(w, to_device(g), buf, 0.5, 0.9, 0.0, False, True)
    _close(buf.copy_to_host(), g, np.float64)
    _close(w.copy_to_host(), 1.0 - 0.5 * g, np.float64)


def test_sgd_without_momentum_needs_no_buffer():
    g = _grads(3, 1, np.float32)[0]
    w = to_device(np.ones(N, dtype=np.float32))
    co.sgd_update(w, to_device(g), None, 0.5, 0.0, 0.0, False, True)
    _close(w.copy_to_host(), 1.0 - 0.5 * g.astype(np.float64), np.float32)
    with pytest.raises(ValueError, match="buf"):
        co.sgd_update(w, to_device(g), None, 0.5, 0.9, 0.0, False, True)


def test_sgd_updates_only_its_slice_of_a_bigger_buffer():
    whole = to_device(np.zeros(N + 10))
    g = to_device(np.ones(N + 10))
    co.sgd_update(whole[5 : 5 + N], g[5 : 5 + N], None, 1.0, 0.0, 0.0, False, True)
    out = whole.copy_to_host()
    assert (out[5 : 5 + N] == -1.0).all()
    assert (out[:5] == 0.0).all() and (out[5 + N :] == 0.0).all()


# -- Adam / AdamW ----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "weight_decay, decoupled",
    [(0.0, False), (0.1, False), (0.1, True)],
    ids=["adam", "l2", "adamw"],
)
def test_adam_steps_match_cpu(dtype, weight_decay, decoupled):
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    w = np.random.default_rng(4).standard_normal(N).astype(dtype)
    cpu = [w.copy(), np.zeros_like(w), np.zeros_like(w)]
    dev = [to_device(a) for a in cpu]
    for t, g in enumerate(_grads(5, 3, dtype), start=1):
        step_size = lr / (1.0 - b1**t)  # fast/optim.py's bias corrections
        sqrt_bc2 = math.sqrt(1.0 - b2**t)
        args = (lr, b1, b2, eps, weight_decay, decoupled, step_size, sqrt_bc2)
        adam_kernel(cpu[0], g, cpu[1], cpu[2], *args)
        co.adam_update(dev[0], to_device(g), dev[1], dev[2], *args)
        for d, c in zip(dev, cpu):
            _close(d.copy_to_host(), c, dtype)


# -- argument checks -------------------------------------------------------------------------------
def test_update_arguments_are_checked():
    w = to_device(np.zeros(N))
    with pytest.raises(TypeError, match="g must be a DeviceArray"):
        co.sgd_update(w, np.zeros(N), None, 0.1, 0.0, 0.0, False, True)
    with pytest.raises(ValueError, match="g must have 70 elements"):
        co.sgd_update(w, to_device(np.zeros(N - 1)), None, 0.1, 0.0, 0.0, False, True)
    with pytest.raises(TypeError, match="m must have w's dtype"):
        z32 = to_device(np.zeros(N, dtype=np.float32))
        co.adam_update(w, w, z32, w, 0.1, 0.9, 0.99, 1e-8, 0.0, False, 0.1, 1.0)
    with pytest.raises(ValueError, match="w must be a 1-D contiguous DeviceArray"):
        co.sgd_update(w[::2], w[::2], None, 0.1, 0.0, 0.0, False, True)
    with pytest.raises(ValueError, match="w must be a 1-D contiguous DeviceArray"):
        m = to_device(np.zeros((7, 10)))
        co.adam_update(m, m, m, m, 0.1, 0.9, 0.99, 1e-8, 0.0, False, 0.1, 1.0)


def test_updates_of_empty_buffers_do_nothing():
    e = to_device(np.zeros(0))
    co.sgd_update(e, e, e, 0.1, 0.9, 0.0, False, True)
    co.adam_update(e, e, e, e, 0.1, 0.9, 0.99, 1e-8, 0.0, False, 0.1, 1.0)


# -- grad_norm_sq and scale_ -----------------------------------------------------------------------
def test_grad_norm_sq_matches_numpy_over_mixed_buffers():
    rng = np.random.default_rng(6)
    host = [
        rng.standard_normal(1),
        rng.standard_normal(33).astype(np.float32),
        rng.standard_normal(100),
        np.zeros(0),
    ]
    dev = [to_device(a) for a in host]
    big = to_device(rng.standard_normal(50))
    dev.append(big[7:40])  # a view at an offset into a bigger buffer
    host.append(big.copy_to_host()[7:40])
    want = sum(float(np.sum(a.astype(np.float64) ** 2)) for a in host)
    got = co.grad_norm_sq(dev)
    assert isinstance(got, float)
    assert got == pytest.approx(want, rel=1e-13)
    assert co.grad_norm_sq(dev) == got  # deterministic: the same bits again
    assert co.grad_norm_sq([]) == 0.0
    with pytest.raises(ValueError, match=r"buffers\[0\] must be a 1-D contiguous"):
        co.grad_norm_sq([to_device(np.zeros((2, 2)))])
    with pytest.raises(TypeError, match=r"buffers\[0\] must be a DeviceArray"):
        co.grad_norm_sq([np.zeros(3)])


@pytest.mark.parametrize("dtype", DTYPES)
def test_scale_in_place(dtype):
    a = np.random.default_rng(7).standard_normal(N).astype(dtype)
    x = to_device(a)
    assert co.scale_(x, 0.25) is x
    _close(x.copy_to_host(), a.astype(np.float64) * 0.25, dtype)
    assert isinstance(x, DeviceArray)

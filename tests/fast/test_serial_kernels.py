"""Small work runs fast's CPU kernels without threads (`fast.cpu.parallel_kernel`), and the small
softmax / cross-entropy blocks take one Numba loop instead of numpy's vectorized path: both must
give what the other path gives. Also: fast asks OpenBLAS to stop spinning soon after a product."""

import os
import subprocess
import sys

import numpy as np
import pytest

import fast
import fast.cpu as fast_cpu
import reference.activations as ref_act
import reference.losses as ref_losses
from fast.cpu import attention, elementwise, layers, losses, optim, rng  # noqa: F401  (register)
from fast.cpu.elementwise import gelu_backward_from_s, gelu_tanh_parts


def test_every_parallel_kernel_has_a_serial_twin():
    assert len(fast_cpu.KERNELS) >= 18
    for k in fast_cpu.KERNELS:
        assert k.parallel is not k.serial
        assert k.serial_below in (
            fast_cpu.PER_ELEMENT_CALL,
            fast_cpu.PER_ROW_REDUCTION,
            fast_cpu.STREAMING,
        )


def _thresholds(value):
    for k in fast_cpu.KERNELS:
        k.serial_below = value


def _train_steps(make):
    """Losses, gradients and weights after two AdamW steps of a model built by `make`."""
    model = make()
    opt = fast.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    g = np.random.default_rng(0)
    out = []
    for _ in range(2):
        if isinstance(model, fast.MLP):
            x, y = g.standard_normal((40, 12)), g.integers(0, 3, 40)
        else:
            x = g.integers(0, 50, (3, 16))
            y = np.roll(x, -1, axis=1)
        _, loss = model(x, y)
        model.zero_grad()
        model.backward()
        opt.step()
        out.append(np.array([loss]))
    out += [p.grad.copy() for p in model.parameters()]
    out += [p.data.copy() for p in model.parameters()]
    return out


MODELS = {
    "gpt": lambda: fast.GPT(
        fast.GPTConfig(vocab_size=50, block_size=16, n_layer=2, n_head=2, n_embd=32, dropout=0.1)
    ),
    "llama": lambda: fast.Llama(
        fast.LlamaConfig(
            vocab_size=50,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=16,
        )
    ),
    "mlp": lambda: fast.MLP([12, 200, 100, 3], activation="tanh"),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_serial_and_parallel_builds_train_identically(name):
    before = [k.serial_below for k in fast_cpu.KERNELS]
    try:
        _thresholds(0)  # every launch parallel
        parallel = _train_steps(MODELS[name])
        _thresholds(10**12)  # every launch serial
        serial = _train_steps(MODELS[name])
    finally:
        for k, value in zip(fast_cpu.KERNELS, before):
            k.serial_below = value
    assert len(parallel) == len(serial)
    for a, b in zip(parallel, serial):
        np.testing.assert_array_equal(a, b)  # one iteration per output element: same numbers


@pytest.mark.parametrize("shape", [(32, 10), (70, 300), (9, 1027)])
@pytest.mark.parametrize("dtype, tol", [(np.float32, 2e-6), (np.float64, 1e-13)])
def test_cross_entropy_kernel_matches_the_vectorized_path(shape, dtype, tol):
    g = np.random.default_rng(3)
    x = (g.standard_normal(shape) * 4).astype(dtype)
    t = g.integers(0, shape[1], shape[0])
    counted = np.ones(shape[0], dtype=bool)
    counted[[3, 7]] = False
    count = shape[0] - 2
    kernel = np.empty_like(x), np.empty(shape[0])
    losses.cross_entropy_kernel(x, t, counted, count, *kernel)
    loss = float(losses.ordered_sum(kernel[1])) / count
    want = losses.cross_entropy_vectorized(x, t, counted, count)
    assert loss == pytest.approx(want[0], rel=tol)
    np.testing.assert_allclose(kernel[0], want[1], rtol=tol, atol=tol)
    assert np.all(kernel[0][[3, 7]] == 0.0)
    assert losses.cross_entropy_rows(x, t, np.zeros(shape[0], dtype=bool), 0)[0] == 0.0
    # and against the reference's pure-Python loss (the oracle), ignored rows as ignore_index
    t_ref = np.where(counted, t, -100).tolist()
    ref_loss, ref_grad = ref_losses.softmax_cross_entropy(x.tolist(), t_ref, ignore_index=-100)
    oracle_tol = tol if dtype == np.float64 else 1e-5
    assert loss == pytest.approx(ref_loss, rel=oracle_tol)
    np.testing.assert_allclose(kernel[0], np.array(ref_grad), rtol=oracle_tol, atol=oracle_tol)


def test_float32_gelu_and_its_backward_match_the_reference():
    """The float32 kernel (x sigmoid(2u), backward from sigmoid(2u)) against the reference's
    tanh formulas in Python floats: within float32 rounding everywhere, tails included."""
    x = np.concatenate([np.linspace(-12.0, 12.0, 4801), [0.0, -1e-6, 1e-6, -0.75]])
    x32 = x.astype(np.float32)
    out, s = gelu_tanh_parts(x32)
    dx = np.empty_like(x32)
    gelu_backward_from_s(x32, s, np.ones_like(x32), dx)
    xs = x32.astype(np.float64).tolist()  # the reference at the float32 inputs
    want = np.array([ref_act.gelu(v) for v in xs])
    dwant = np.array([ref_act.gelu_derivative(v) for v in xs])
    assert out.dtype == dx.dtype == np.float32
    np.testing.assert_allclose(out, want, rtol=2e-6, atol=1e-6)
    np.testing.assert_allclose(dx, dwant, rtol=2e-6, atol=4e-6)


@pytest.mark.parametrize("dtype, tol", [(np.float32, 2e-6), (np.float64, 1e-13)])
def test_small_softmax_matches_the_vectorized_path(monkeypatch, dtype, tol):
    x = (np.random.default_rng(4).standard_normal((32, 10)) * 4).astype(dtype)
    small = [losses.softmax_rows(x, log) for log in (False, True)]
    assert x.size < losses.SMALL
    monkeypatch.setattr(losses, "SMALL", 0)  # numpy's path for the same block
    for log, a in zip((False, True), small):
        b = losses.softmax_rows(x, log)
        assert a.dtype == b.dtype == dtype
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def _timeout_seen(env):
    code = "import fast, os; print(os.environ['OPENBLAS_THREAD_TIMEOUT'])"
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_openblas_threads_stop_spinning_unless_the_user_said_otherwise():
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    assert _timeout_seen(env) == "14"
    assert _timeout_seen({**env, "OPENBLAS_THREAD_TIMEOUT": "20"}) == "20"

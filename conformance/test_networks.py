"""Chapter one across backends: activations, losses, the generator, optimizers, the MLP and fit.

Every test feeds the reference and the candidate the same Hypothesis-generated inputs; the
reference is the oracle.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference
from conformance.tolerance import assert_close, float32_tol

finite = st.floats(-8.0, 8.0, allow_nan=False, allow_infinity=False)
ACTIVATIONS = sorted(reference.ACTIVATIONS)


@pytest.mark.parametrize("name", ACTIVATIONS)
@given(xs=st.lists(finite, min_size=1, max_size=17))
def test_activations_and_derivatives(candidate, name, xs):
    f, df = getattr(candidate, name), getattr(candidate, name + "_derivative")
    rf, rdf = reference.ACTIVATIONS[name]
    x = np.array(xs)
    assert_close(f(x), [rf(v) for v in xs], what=f"{name}")
    assert_close(df(x), [rdf(v) for v in xs], what=f"{name}_derivative")


@st.composite
def logits_and_targets(draw, ignore=False):
    n = draw(st.integers(1, 6))
    v = draw(st.integers(1, 9))
    scale = draw(st.sampled_from([1.0, 30.0, 1000.0]))
    z = [[draw(finite) * scale for _ in range(v)] for _ in range(n)]
    choices = st.integers(0, v - 1) | st.just(-100) if ignore else st.integers(0, v - 1)
    t = [draw(choices) for _ in range(n)]
    return z, t


@given(logits_and_targets(ignore=True))
def test_softmax_cross_entropy(candidate, zt):
    z, t = zt
    loss, grad = candidate.softmax_cross_entropy(np.array(z), np.array(t), ignore_index=-100)
    rloss, rgrad = reference.softmax_cross_entropy(z, t, ignore_index=-100)
    assert_close(loss, rloss, what="loss")
    assert_close(grad, rgrad, what="dlogits")


@given(logits_and_targets())
def test_softmax_and_log_softmax(candidate, zt):
    z, _ = zt
    assert_close(candidate.softmax(np.array(z)), [reference.softmax(r) for r in z], what="softmax")
    assert_close(
        candidate.log_softmax(np.array(z)),
        [reference.log_softmax(r) for r in z],
        what="log_softmax",
    )


@given(st.integers(1, 4), st.integers(1, 5), st.data())
def test_mse_loss(candidate, b, k, data):
    y = [[data.draw(finite) for _ in range(k)] for _ in range(b)]
    t = [[data.draw(finite) for _ in range(k)] for _ in range(b)]
    loss, grad = candidate.mse_loss(np.array(y), np.array(t))
    rloss, rgrad = reference.mse_loss(y, t)
    assert_close(loss, rloss, what="mse")
    assert_close(grad, rgrad, what="dmse")


@given(
    st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1), st.integers(0, 40), st.integers(0, 2**40)
)
def test_generator_is_bit_identical(candidate, seed, stream, n, start):
    assert list(candidate.random_u32s(seed, stream, n, start)) == reference.random_u32s(
        seed, stream, n, start
    )
    assert list(candidate.permutation(seed, stream, n)) == reference.permutation(seed, stream, n)


OPTIMIZERS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True)),
    ("Adam", dict(lr=0.01, weight_decay=0.1)),
    ("AdamW", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1)),
]


@pytest.mark.parametrize("name, options", OPTIMIZERS)
@given(data=st.data())
def test_optimizer_trajectories(candidate, name, options, data):
    shapes = data.draw(
        st.lists(st.sampled_from([(3,), (2, 3), (1,), (4, 1)]), min_size=1, max_size=3)
    )
    init = [
        np.array(
            data.draw(st.lists(finite, min_size=int(np.prod(s)), max_size=int(np.prod(s))))
        ).reshape(s)
        for s in shapes
    ]
    cps = [candidate.Parameter(a, dtype="float64") for a in init]
    rps = [reference.Parameter(a.tolist()) for a in init]
    copt = getattr(candidate, name)(cps, **options)
    ropt = getattr(reference, name)(rps, **options)
    for step in range(5):  # a 5-step trajectory with generated gradients
        for cp, rp in zip(cps, rps):
            g = np.sin(np.arange(cp.data.size) * 1.7 + step + cp.data.size).reshape(cp.shape)
            cp.grad[...] = g
            rp.grad = g.tolist()
        copt.step()
        ropt.step()
        for i, (cp, rp) in enumerate(zip(cps, rps)):
            assert_close(cp.data, rp.data, what=f"{name} step {step} param {i}")


@st.composite
def mlp_setup(draw):
    sizes = [draw(st.integers(1, 6)) for _ in range(draw(st.integers(2, 4)))]
    activation = draw(st.sampled_from(["sigmoid", "tanh", "relu", "gelu", "gelu_erf"]))
    output = draw(st.sampled_from(["softmax", "identity", "sigmoid"]))
    b = draw(st.integers(1, 5))
    x = [[draw(finite) for _ in range(sizes[0])] for _ in range(b)]
    labels = [draw(st.integers(0, sizes[-1] - 1)) for _ in range(b)]
    seed = draw(st.integers(0, 2**32))
    return sizes, activation, output, x, labels, seed


def grads(model):
    return {n: p.grad for n, p in model.named_parameters()}


@given(mlp_setup())
def test_mlp_forward_backward_float64(candidate, setup):
    sizes, activation, output, x, labels, seed = setup
    r = reference.MLP(sizes, activation=activation, output=output, seed=seed)
    c = candidate.MLP(sizes, activation=activation, output=output, seed=seed, dtype="float64")
    c.load_state_dict(r.state_dict())
    ro, rl = r(x, labels)
    co, cl = c(np.array(x), np.array(labels))
    assert_close(co, ro, what="outputs")
    assert_close(cl, rl, what="loss")
    r.zero_grad()
    c.zero_grad()
    rdx, cdx = r.backward(), c.backward()
    assert_close(cdx, rdx, what="dE/dx")
    for name, g in grads(r).items():
        assert_close(grads(c)[name], g, what=f"grad {name}")
    # a non-uniform upstream gradient on the outputs
    up = np.cos(np.arange(len(x) * sizes[-1]) * 0.7).reshape(len(x), sizes[-1])
    r(x), c(np.array(x))
    r.zero_grad()
    c.zero_grad()
    assert_close(c.backward(up), r.backward(up.tolist()), what="dE/dx (upstream)")
    for name, g in grads(r).items():
        assert_close(grads(c)[name], g, what=f"grad {name} (upstream)")


@given(mlp_setup())
def test_mlp_float32_within_derived_tolerance(candidate, setup):
    sizes, activation, output, x, labels, seed = setup
    r = reference.MLP(sizes, activation=activation, output=output, seed=seed)
    c = candidate.MLP(sizes, activation=activation, output=output, seed=seed)  # float32 default
    ro, rl = r(x, labels)
    co, cl = c(np.array(x), np.array(labels))
    assert co.dtype == np.float32
    tol = float32_tol(max(sizes), depth=len(sizes))
    # inputs were rounded to float32 too: allow for their size
    assert_close(co, ro, rtol=tol, atol=tol * 10, what="float32 outputs")
    assert_close(cl, rl, rtol=tol, atol=tol * 10, what="float32 loss")


@given(st.sampled_from([None, 1, 3]), st.integers(0, 1000))
def test_fit_trajectory(candidate, batch_size, seed):
    x, y = reference.load_digits()
    x, y = x[:12], y[:12]
    r = reference.MLP([64, 5, 10], activation="tanh", seed=seed)
    c = candidate.MLP([64, 5, 10], activation="tanh", seed=seed, dtype="float64")
    rr = reference.fit(
        r,
        reference.Adam(r.parameters(), lr=0.05),
        x,
        y,
        batch_size=batch_size,
        max_steps=5,
        seed=seed,
    )
    cr = candidate.fit(
        c,
        candidate.Adam(c.parameters(), lr=0.05),
        np.array(x),
        np.array(y),
        batch_size=batch_size,
        max_steps=5,
        seed=seed,
    )
    assert (cr.stopped_by, cr.steps, cr.epochs) == (rr.stopped_by, rr.steps, rr.epochs)
    assert_close(cr.step_losses, rr.step_losses, what="step losses")
    assert_close(cr.grad_norm_history, rr.grad_norm_history, what="epoch gradient norms")
    for name, value in r.state_dict().items():
        assert_close(c.state_dict()[name], value, what=f"{name} after 5 steps")


def test_determinism(candidate):
    """The same seed gives the same result twice in the candidate."""
    x, y = reference.load_digits()
    runs = []
    for _ in range(2):
        m = candidate.MLP([64, 8, 10], seed=7)
        res = candidate.fit(
            m,
            candidate.AdamW(m.parameters(), lr=0.01),
            np.array(x[:200]),
            np.array(y[:200]),
            batch_size=16,
            epochs=2,
            seed=3,
        )
        runs.append((res.step_losses, m.state_dict()))
    assert runs[0][0] == runs[1][0]
    for name in runs[0][1]:
        assert np.array_equal(runs[0][1][name], runs[1][1][name])


def test_weights_move_between_backends(candidate, tmp_path):
    r = reference.MLP([3, 4, 2], activation="tanh", seed=1)
    r.save_pretrained(tmp_path / "ref", dtype="float64")
    c = candidate.MLP.from_pretrained(tmp_path / "ref", dtype="float64")
    x = [[0.5, -1.0, 2.0]]
    assert_close(c(np.array(x))[0], r(x)[0], what="outputs after reference -> candidate")
    c.save_pretrained(tmp_path / "cand", dtype="float64")
    back = reference.MLP.from_pretrained(tmp_path / "cand")
    assert back.state_dict() == r.state_dict()


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda m, M: M([3, 2])([[1.0, 2.0]]), ValueError),
        (lambda m, M: M([3, 2])([[1.0, 2.0, 3.0]], [5]), ValueError),
        (lambda m, M: M([3, 2])([[1.0, float("nan"), 3.0]]), ValueError),
        (lambda m, M: M([3, 2], activation="swish"), ValueError),
        (lambda m, M: M([3, 0]), ValueError),
        (lambda m, M: m.SGD(M([2, 2]).parameters(), lr=-1.0), ValueError),
    ],
)
def test_same_errors(candidate, call, error):
    for m in (reference, candidate):
        with pytest.raises(error):
            call(m, m.MLP)

"""Optimizer state crosses backends: k steps in one, `state_dict()`, load into the other, one more
step in each; the weights agree within `tolerance.py`'s float64 bounds. A bad state dict gets the
same error from both."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference
from conformance.tolerance import assert_close, assert_same_error

OPTIMIZERS = [
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01)),
    ("Adam", dict(lr=0.01, weight_decay=0.1)),
    ("AdamW", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1)),
]


@st.composite
def setups(draw):
    name, options = draw(st.sampled_from(OPTIMIZERS))
    shapes = draw(st.lists(st.sampled_from([(3,), (2, 3), (1,), (4, 1)]), min_size=1, max_size=4))
    init = [np.linspace(-2.0, 1.5 + i, int(np.prod(s))).reshape(s) for i, s in enumerate(shapes)]
    split = draw(st.integers(0, len(shapes)))  # params [:split] in group 0, the rest in group 1
    k = draw(st.integers(1, 3))
    return name, options, init, split, k


def build(backend, name, options, init, split):
    if backend is reference:
        ps = [reference.Parameter(a.tolist()) for a in init]
    else:
        ps = [backend.Parameter(a, dtype="float64") for a in init]
    groups = [{"params": ps[:split]}, {"params": ps[split:], "lr": 0.02}]
    groups = [g for g in groups if g["params"]]
    return ps, getattr(backend, name)(groups, **options)


def step(backend, ps, opt, s):
    for i, p in enumerate(ps):
        g = np.cos(0.9 * np.arange(int(np.prod(p.shape))) + s + i).reshape(p.shape)
        if backend is reference:
            p.grad = g.tolist()
        else:
            p.grad[...] = g
    opt.step()


@pytest.mark.parametrize("direction", ["reference->candidate", "candidate->reference"])
@given(setup=setups())
def test_state_crosses_backends(candidate, direction, setup):
    name, options, init, split, k = setup
    src, dst = (reference, candidate)
    if direction.startswith("candidate"):
        src, dst = dst, src
    sps, sopt = build(src, name, options, init, split)
    for s in range(k):
        step(src, sps, sopt, s)
    weights = [np.array(p.data, dtype=np.float64) for p in sps]
    dps, dopt = build(dst, name, options, weights, split)
    dopt.load_state_dict(sopt.state_dict())
    step(src, sps, sopt, k)
    step(dst, dps, dopt, k)
    for i, (sp, dp) in enumerate(zip(sps, dps)):
        assert_close(dp.data, sp.data, what=f"{name} {direction} param {i} after step {k + 1}")
    for i, entry in sopt.state_dict()["state"].items():
        for key, value in entry.items():
            assert_close(dopt.state_dict()["state"][i][key], value, what=f"state {i} {key}")


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_same_errors_for_bad_state(candidate, name):
    from conformance.optim_cases import bad_state_dicts

    options = dict(lr=0.01, momentum=0.9) if name == "SGD" else dict(lr=0.01)
    init = [np.ones((2, 3)), np.ones(2), np.ones((2, 1))]
    opts = {}
    for backend in (reference, candidate):
        ps, opt = build(backend, name, options, init, 2)
        opts[backend] = opt
        step(backend, ps, opt, 0)
    for edit, _, _ in bad_state_dicts(name):
        for source in opts.values():  # one bad input (lists or arrays inside), fed to both
            sd = source.state_dict()
            edit(sd)
            assert_same_error(
                lambda: opts[reference].load_state_dict(sd),
                lambda: opts[candidate].load_state_dict(sd),
            )

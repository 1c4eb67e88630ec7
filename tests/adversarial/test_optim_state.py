"""Bad optimizer state, end to end: each case loads a hostile state dict into a fast optimizer
(CPU, both dtypes) and then steps, in a child interpreter (a case that slipped past the checks
could reach the update kernel with wrong-sized buffers). Every refused case must be a clear
error naming the field; after it the optimizer must still step to finite weights."""

import pytest

from tests.adversarial.harness import is_clear_error, run_many

SETUP = """
import numpy as np
import fast

def make(name, dtype="float32", **options):
    ps = [fast.Parameter(np.ones((2, 3)), dtype=dtype), fast.Parameter(np.ones(4), dtype=dtype)]
    opt = getattr(fast, name)([{"params": ps[:1]}, {"params": ps[1:]}], lr=0.01, **options)
    for p in ps:
        p.grad[...] = 0.5
    opt.step()
    return ps, opt

def attempt(opt, ps, sd):
    try:
        opt.load_state_dict(sd)
    finally:  # refused or not, the optimizer must still take a sane step
        for p in ps:
            p.grad[...] = 0.25
        opt.step()
        assert all(np.isfinite(p.data).all() for p in ps), "non-finite weights after the step"
"""


def adam_case(edit, dtype="float32"):
    return f"""
ps, opt = make("Adam", {dtype!r})
sd = opt.state_dict()
{edit}
attempt(opt, ps, sd)
"""


CASES = {
    # tensor sizes that would index past a packed buffer
    "exp_avg too big": (adam_case("sd['state'][0]['exp_avg'] = np.zeros((200, 300))"), "(2, 3)"),
    "exp_avg flat": (adam_case("sd['state'][0]['exp_avg'] = np.zeros(6)"), "exp_avg", "shape"),
    "exp_avg scalar": (adam_case("sd['state'][1]['exp_avg'] = 0.0"), "exp_avg", "shape"),
    "exp_avg empty": (adam_case("sd['state'][1]['exp_avg'] = []"), "exp_avg", "shape"),
    "exp_avg_sq too small": (
        adam_case("sd['state'][1]['exp_avg_sq'] = np.zeros(3)"),
        "exp_avg_sq",
        "(4,)",
    ),
    "exp_avg deep nesting": (
        adam_case("x = 0.0\nfor _ in range(100000):\n    x = [x]\nsd['state'][1]['exp_avg'] = x"),
        "exp_avg",
    ),
    "exp_avg strings": (adam_case("sd['state'][1]['exp_avg'] = np.array(['a'] * 4)"), "numbers"),
    "exp_avg objects": (
        adam_case("sd['state'][1]['exp_avg'] = np.array([None] * 4, dtype=object)"),
        "numbers",
    ),
    "exp_avg complex": (adam_case("sd['state'][1]['exp_avg'] = np.ones(4) * 1j"), "numbers"),
    "exp_avg_sq nan": (adam_case("sd['state'][1]['exp_avg_sq'][2] = np.nan"), "exp_avg_sq"),
    "exp_avg overflows float32": (
        adam_case("sd['state'][1]['exp_avg'] = np.full(4, 1e300)"),
        "exp_avg",
        "float32",
    ),
    # step counts that would break the bias correction
    "step huge": (adam_case("for e in sd['state'].values(): e['step'] = 10**400"), "step"),
    "step inf": (adam_case("sd['state'][0]['step'] = float('inf')"), "step"),
    "step nan": (adam_case("sd['state'][0]['step'] = float('nan')"), "step"),
    "step negative": (adam_case("sd['state'][0]['step'] = -3"), "step"),
    "step array": (adam_case("sd['state'][0]['step'] = np.array([1, 2])"), "step"),
    "step none": (adam_case("sd['state'][0]['step'] = None"), "step"),
    # structure
    "param number huge": (adam_case("sd['state'][10**20] = sd['state'][0]"), "parameter number"),
    "param number negative": (adam_case("sd['state'][-1] = sd['state'][0]"), "parameter number"),
    "params out of range": (adam_case("sd['param_groups'][1]['params'] = [7]"), "params"),
    "group not a dict": (adam_case("sd['param_groups'][0] = 'lr'"), "param_groups"),
    "state_dict a string": (adam_case("sd = 'state'"), "state_dict"),
    "eps negative": (adam_case("sd['param_groups'][0]['eps'] = -1e-8"), "eps"),
    "betas too long": (adam_case("sd['param_groups'][0]['betas'] = (0.9, 0.9, 0.9)"), "betas"),
    "lr inf": (adam_case("sd['param_groups'][1]['lr'] = float('inf')"), "lr"),
    "sgd buffer wrong size": (
        """
ps, opt = make("SGD", "float64", momentum=0.9)
sd = opt.state_dict()
sd['state'][1]['momentum_buffer'] = np.zeros(40000)
attempt(opt, ps, sd)
""",
        "momentum_buffer",
        "(4,)",
    ),
}

ACCEPTED = {
    "step zero with state": adam_case("for e in sd['state'].values(): e['step'] = 0"),
    "step large": adam_case("for e in sd['state'].values(): e['step'] = 2**62"),
    "float64 state into float32": adam_case(
        "sd = make('Adam', 'float64')[1].state_dict()", dtype="float32"
    ),
    "int state": adam_case("sd['state'][1]['exp_avg'] = np.arange(4)"),
    "list state": adam_case("sd['state'][1]['exp_avg'] = [0.0, 1, 2.5, -1]"),
    "numpy int keys": adam_case("sd['state'] = {np.int64(k): v for k, v in sd['state'].items()}"),
}


@pytest.fixture(scope="module")
def outcomes():
    cases = {name: code for name, (code, *_) in CASES.items()}
    return run_many(SETUP, {**cases, **ACCEPTED}, timeout=240.0)


@pytest.mark.parametrize("name", sorted(CASES))
def test_refused_clearly(outcomes, name):
    _, *mentions = CASES[name]
    outcome = outcomes[name]
    assert is_clear_error(outcome, *mentions), outcome.describe()
    assert "non-finite weights" not in outcome.message


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_accepted_and_steps(outcomes, name):
    assert outcomes[name].kind == "ok", outcomes[name].describe()

"""Optimizer steps and schedules against numbers worked out by hand."""

import json
import math

import pytest

from conformance.optim_cases import bad_state_dicts
from reference import (
    SGD,
    Adam,
    AdamW,
    ConstantLR,
    CosineWarmupLR,
    Parameter,
    StepDecayLR,
    clip_grad_norm,
)
from reference.nested import flatten, shape_of, unflatten, zeros


def param(values, grad):
    p = Parameter(list(values))
    p.grad = list(grad)
    return p


def steps(opt, p, grads):
    out = []
    for g in grads:
        p.grad = list(g)
        opt.step()
        out.append(list(p.data))
    return out


def test_sgd_plain_step():
    p = param([1.0], [0.5])
    SGD([p], lr=0.1).step()
    assert p.data == pytest.approx([0.95], abs=1e-15)


def test_sgd_momentum_two_steps():
    # v1 = 1, w1 = 1 - 0.1 = 0.9; v2 = 0.9 * 1 + 1 = 1.9, w2 = 0.9 - 0.19 = 0.71
    p = param([1.0], [0.0])
    out = steps(SGD([p], lr=0.1, momentum=0.9), p, [[1.0], [1.0]])
    assert out == [pytest.approx([0.9]), pytest.approx([0.71])]


def test_sgd_nesterov_two_steps():
    # v1 = 1, d1 = 1 + 0.9 * 1 = 1.9 -> 0.81; v2 = 1.9, d2 = 1 + 0.9 * 1.9 = 2.71 -> 0.539
    p = param([1.0], [0.0])
    out = steps(SGD([p], lr=0.1, momentum=0.9, nesterov=True), p, [[1.0], [1.0]])
    assert out == [pytest.approx([0.81]), pytest.approx([0.539])]


def test_sgd_weight_decay_is_l2():
    # d = g + wd * w = 0.5 + 0.1 = 0.6 -> w = 1 - 0.1 * 0.6 = 0.94
    p = param([1.0], [0.5])
    SGD([p], lr=0.1, weight_decay=0.1).step()
    assert p.data == pytest.approx([0.94])


def adam_textbook(w, grads, lr, b1=0.9, b2=0.999, eps=1e-8, wd=0.0, decoupled=False):
    """Adam written the way the paper writes it, as an independent oracle."""
    m = v = 0.0
    out = []
    for t, g in enumerate(grads, start=1):
        if decoupled:
            w = w - lr * wd * w
        elif wd:
            g = g + wd * w
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        w = w - lr * m_hat / (math.sqrt(v_hat) + eps)
        out.append(w)
    return out


def test_adam_first_step_is_sign_times_lr():
    # after bias correction the first step is lr * g / (|g| + eps)
    p = param([1.0, -2.0], [0.5, -3.0])
    Adam([p], lr=0.1).step()
    expected = [1.0 - 0.1 * 0.5 / (0.5 + 1e-8), -2.0 + 0.1 * 3.0 / (3.0 + 1e-8)]
    assert p.data == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_adam_matches_textbook(wd):
    grads = [0.5, 0.25, -1.0, 2.0, 0.0]
    p = param([1.0], [0.0])
    out = steps(Adam([p], lr=0.05, weight_decay=wd), p, [[g] for g in grads])
    ref = adam_textbook(1.0, grads, 0.05, wd=wd)
    assert [o[0] for o in out] == pytest.approx(ref, rel=1e-12)


def test_adamw_decays_decoupled():
    grads = [0.5, -0.25, 1.0]
    p = param([1.0], [0.0])
    out = steps(AdamW([p], lr=0.05, weight_decay=0.2), p, [[g] for g in grads])
    ref = adam_textbook(1.0, grads, 0.05, wd=0.2, decoupled=True)
    assert [o[0] for o in out] == pytest.approx(ref, rel=1e-12)


def test_adamw_zero_gradient_only_shrinks():
    p = param([2.0], [0.0])
    AdamW([p], lr=0.1, weight_decay=0.5).step()
    assert p.data == [2.0 * (1 - 0.1 * 0.5)]


def test_param_groups_override_defaults():
    a, b = param([1.0], [0.0]), param([1.0], [0.0])
    opt = AdamW([{"params": [a]}, {"params": [b], "weight_decay": 0.0}], lr=0.1, weight_decay=0.5)
    opt.step()
    assert a.data == [0.95] and b.data == [1.0]


def test_lr_setter_updates_every_group():
    opt = SGD([{"params": [param([1.0], [1.0])]}, {"params": [param([1.0], [1.0])], "lr": 5.0}])
    opt.lr = 0.25
    assert [g["lr"] for g in opt.param_groups] == [0.25, 0.25]


def test_step_works_on_matrices():
    p = Parameter([[1.0, 2.0], [3.0, 4.0]])
    p.grad = [[1.0, 0.0], [0.0, -1.0]]
    SGD([p], lr=0.5).step()
    assert p.data == [[0.5, 2.0], [3.0, 4.5]]


def test_clip_grad_norm():
    a, b = param([0.0], [3.0]), param([0.0], [4.0])
    total = clip_grad_norm([a, b], 1.0)
    assert total == 5.0
    scale = 1.0 / (5.0 + 1e-6)
    assert a.grad == pytest.approx([3 * scale]) and b.grad == pytest.approx([4 * scale])
    # below the limit nothing changes
    assert clip_grad_norm([a, b], 10.0) == pytest.approx(1.0, rel=1e-5)
    assert a.grad == pytest.approx([3 * scale])


def test_schedules_by_hand():
    assert [ConstantLR(0.3)(s) for s in (0, 100)] == [0.3, 0.3]
    sd = StepDecayLR(0.1, step_size=10, gamma=0.5)
    assert [sd(0), sd(9), sd(10), sd(25)] == pytest.approx([0.1, 0.1, 0.05, 0.025])
    cos = CosineWarmupLR(1.0, warmup_steps=4, total_steps=14, min_lr=0.1)
    assert [cos(0), cos(1), cos(3)] == pytest.approx([0.25, 0.5, 1.0])
    assert cos(4) == pytest.approx(1.0)  # top of the cosine
    assert cos(9) == pytest.approx(0.1 + 0.5 * 0.9)  # halfway: the midpoint
    assert cos(14) == pytest.approx(0.1) and cos(1000) == pytest.approx(0.1)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p: SGD([p], lr=-0.1), "lr must be"),
        (lambda p: SGD([p], lr=0.1, nesterov=True), "nesterov needs momentum"),
        (lambda p: Adam([p], betas=(1.0, 0.9)), r"betas\[0\] must be in"),
        (lambda p: Adam([p], eps=-1), "eps must be"),
        (lambda p: AdamW([p], weight_decay=float("nan")), "weight_decay must be"),
        (lambda p: SGD([], lr=0.1), "empty parameter list"),
        (lambda p: SGD([{"params": [p], "bogus": 1}]), "unknown option 'bogus'"),
        (lambda p: SGD([p, p]), "more than one group"),
    ],
)
def test_bad_options(make, match):
    with pytest.raises(ValueError, match=match):
        make(param([1.0], [0.0]))


def test_bad_types():
    with pytest.raises(TypeError, match="must be Parameters"):
        SGD([[1.0, 2.0]])
    with pytest.raises(TypeError, match="lr must be a number"):
        SGD([param([1.0], [0.0])], lr="fast")
    with pytest.raises(ValueError, match="step_size"):
        StepDecayLR(0.1, step_size=0)
    with pytest.raises(ValueError, match="warmup_steps < total_steps"):
        CosineWarmupLR(0.1, warmup_steps=10, total_steps=10)


# -- saving and restoring -------------------------------------------------------------------
RESUMABLE = [
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.8, nesterov=True, weight_decay=0.01)),
    ("Adam", dict(lr=0.01, weight_decay=0.1)),
    ("AdamW", dict(lr=0.01, betas=(0.9, 0.95), weight_decay=0.1)),
]
OPTIMIZERS = {"SGD": SGD, "Adam": Adam, "AdamW": AdamW}
INIT = [[[0.5, -1.0, 2.0], [0.25, 1.5, -0.75]], [1.0, -2.0], [[3.0], [-0.5]]]


def build(name, options, init=INIT):
    ps = [Parameter([list(r) if isinstance(r, list) else r for r in x]) for x in init]
    groups = [{"params": ps[:2]}, {"params": ps[2:], "weight_decay": 0.0}]
    return ps, OPTIMIZERS[name](groups, **options)


def train(ps, opt, first, last):
    for s in range(first, last):
        for i, p in enumerate(ps):
            flat = [math.sin(1.3 * j + s + i) for j in range(len(flatten(p.data)))]
            p.grad = unflatten(flat, p.shape)
        opt.step()


@pytest.mark.parametrize("name, options", RESUMABLE)
def test_resume_is_bit_identical(name, options):
    ps, opt = build(name, options)
    train(ps, opt, 0, 6)
    straight = [p.data for p in ps]

    ps, opt = build(name, options)
    train(ps, opt, 0, 3)
    saved, weights = opt.state_dict(), [p.data for p in ps]
    ps, opt = build(name, options, init=weights)  # a fresh run from the saved weights
    opt.load_state_dict(saved)
    train(ps, opt, 3, 6)
    assert [p.data for p in ps] == straight


def test_state_dict_layout():
    ps, opt = build("AdamW", dict(lr=0.01, betas=(0.9, 0.95), weight_decay=0.1))
    assert opt.state_dict() == {
        "state": {},
        "param_groups": [
            {"lr": 0.01, "betas": (0.9, 0.95), "eps": 1e-8, "weight_decay": 0.1, "params": [0, 1]},
            {"lr": 0.01, "betas": (0.9, 0.95), "eps": 1e-8, "weight_decay": 0.0, "params": [2]},
        ],
    }
    train(ps, opt, 0, 2)
    sd = opt.state_dict()
    assert sorted(sd["state"]) == [0, 1, 2]
    assert sd["state"][1]["step"] == 2 and isinstance(sd["state"][1]["step"], int)
    for i, p in enumerate(ps):
        assert set(sd["state"][i]) == {"step", "exp_avg", "exp_avg_sq"}
        assert shape_of(sd["state"][i]["exp_avg"]) == p.shape
    sd["state"][0]["exp_avg"][0][0] = 123.0  # a copy: the optimizer's state is untouched
    assert opt.state_dict()["state"][0]["exp_avg"][0][0] != 123.0


def test_sgd_state_only_with_momentum():
    ps, opt = build("SGD", dict(lr=0.1))
    train(ps, opt, 0, 1)
    sd = opt.state_dict()
    assert sd["state"] == {}
    # dampening: torch.optim.SGD needs it to load this state (we write torch's value, 0)
    assert sd["param_groups"][0] == {
        "lr": 0.1, "momentum": 0.0, "nesterov": False, "weight_decay": 0.0, "dampening": 0,
        "params": [0, 1],
    }  # fmt: skip
    ps, opt = build("SGD", dict(lr=0.1, momentum=0.9))
    assert opt.state_dict()["state"] == {}
    train(ps, opt, 0, 1)
    assert set(opt.state_dict()["state"][2]) == {"momentum_buffer"}


def test_load_restores_hyperparameters_and_takes_torch_keys():
    ps, opt = build("AdamW", dict(lr=0.01))
    sd = opt.state_dict()
    sd["param_groups"][1].update(lr=0.5, betas=[0.8, 0.9], amsgrad=False, maximize=False,
                                 foreach=None, fused=None, capturable=False,
                                 differentiable=False, decoupled_weight_decay=True)  # fmt: skip
    opt.load_state_dict(sd)
    assert opt.param_groups[1]["lr"] == 0.5 and opt.param_groups[1]["betas"] == (0.8, 0.9)
    assert opt.param_groups[0]["lr"] == 0.01
    assert "amsgrad" not in opt.state_dict()["param_groups"][1]
    ps, opt = build("SGD", dict(lr=0.1, momentum=0.9))
    sd = opt.state_dict()
    sd["param_groups"][0]["dampening"] = 0
    sd["state"][0] = {"momentum_buffer": None}  # older PyTorch writes an empty slot like this
    opt.load_state_dict(sd)
    assert opt.state_dict()["state"] == {}


def test_load_accepts_arrays_and_float_steps():
    class Tensorish:  # anything with tolist() and item(), as a torch tensor has
        def __init__(self, v):
            self.v = v

        def tolist(self):
            return self.v

        def item(self):
            return self.v

    ps, opt = build("Adam", dict(lr=0.01))
    train(ps, opt, 0, 2)
    sd = opt.state_dict()
    for entry in sd["state"].values():
        entry["step"] = Tensorish(2.0)
        entry["exp_avg"] = Tensorish(entry["exp_avg"])
    opt.load_state_dict(sd)
    assert opt.state_dict()["state"][0]["step"] == 2


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_bad_state_dicts_are_refused_and_change_nothing(name):
    options = dict(lr=0.01, momentum=0.9) if name == "SGD" else dict(lr=0.01)
    for edit, error, match in bad_state_dicts(name):
        ps, opt = build(name, options)
        train(ps, opt, 0, 1)
        before = opt.state_dict()
        sd = opt.state_dict()
        sd["param_groups"][0]["lr"] = 0.5  # valid changes, which a refused load must not make
        key = "momentum_buffer" if name == "SGD" else "exp_avg"
        sd["state"][0][key] = zeros(ps[0].shape)
        edit(sd)
        with pytest.raises(error, match=match):
            opt.load_state_dict(sd)
        assert opt.state_dict() == before
    with pytest.raises(TypeError, match="state_dict must be a dict, got list"):
        opt.load_state_dict([])


@pytest.mark.parametrize(
    "schedule",
    [ConstantLR(0.3), StepDecayLR(0.1, step_size=10, gamma=0.5), CosineWarmupLR(1.0, 4, 14, 0.1)],
)
def test_schedule_state_round_trip(schedule):
    sd = schedule.state_dict()
    assert sd["type"] == type(schedule).__name__
    assert json.loads(json.dumps(sd)) == sd
    other = {
        "ConstantLR": ConstantLR(0.9),
        "StepDecayLR": StepDecayLR(0.9, step_size=1),
        "CosineWarmupLR": CosineWarmupLR(0.9, 0, 1),
    }[sd["type"]]
    other.load_state_dict(sd)
    assert [other(s) for s in range(20)] == [schedule(s) for s in range(20)]


def test_schedule_bad_state():
    s = CosineWarmupLR(1.0, 4, 14)
    with pytest.raises(TypeError, match="must be a dict"):
        s.load_state_dict([])
    with pytest.raises(ValueError, match=r"\['type'\] must be 'CosineWarmupLR', got 'ConstantLR'"):
        s.load_state_dict(ConstantLR(0.1).state_dict())
    bad = [
        ({"warmup_steps": 20}, ValueError, "warmup_steps < total_steps"),
        ({"lr": -1.0}, ValueError, "lr must be"),
        ({"total_steps": 1.5}, TypeError, "must be ints"),
        ({"extra": 1}, ValueError, "unknown keys 'extra'"),
    ]
    for edit, error, match in bad:
        sd = {**s.state_dict(), **edit}
        with pytest.raises(error, match=match):
            s.load_state_dict(sd)
        assert s.state_dict() == CosineWarmupLR(1.0, 4, 14).state_dict()
    sd = s.state_dict()
    del sd["min_lr"]
    with pytest.raises(ValueError, match="missing 'min_lr'"):
        s.load_state_dict(sd)

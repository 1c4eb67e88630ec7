"""Optimizer steps and schedules against numbers worked out by hand."""

import math

import pytest

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

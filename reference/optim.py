"""Update rules: how gradient descent turns gradients into new weights.

Every rule starts from the seed's one line, theta <- theta - learning_rate * gradient: step against
the gradient, because that is the direction in which the loss falls fastest. The rest refine it:

- `SGD` with momentum (a velocity that smooths noisy steps), Nesterov (look ahead along that
  velocity) and L2 weight decay (add wd * theta to the gradient);
- `Adam`: a per-parameter step size from running averages of the gradient (m) and of its square (v),
  bias-corrected for their zero start;
- `AdamW`: Adam with *decoupled* weight decay (shrink theta directly, not through the gradient).

The formulas follow PyTorch's `torch.optim` term for term (including the order of operations), so a
trajectory here can be checked against it. Learning-rate schedules and gradient clipping live here
too: they are part of "how big a step".

Parameters may be a list of `Parameter`s or of groups `{"params": [...], "weight_decay": 0.0}`
whose keys override the optimizer's defaults for those parameters (GPT-2 decays only matrices).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from .nested import flatten, unflatten


def _check_nonneg(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return float(value)


class Optimizer:
    """Holds parameter groups and per-parameter state; subclasses implement `update`."""

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]):
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(params[0], dict):
            params = [{"params": params}]
        self.defaults = defaults
        self.param_groups: list[dict[str, Any]] = []
        seen: set[int] = set()
        for g in params:
            group = {**defaults, **g, "params": list(g["params"])}
            for k in group:
                if k not in defaults and k != "params":
                    raise ValueError(f"unknown option {k!r} in a parameter group")
            for p in group["params"]:
                if not hasattr(p, "data") or not hasattr(p, "grad"):
                    raise TypeError(f"optimizer params must be Parameters, got {type(p).__name__}")
                if id(p) in seen:
                    raise ValueError("a parameter appears in more than one group")
                seen.add(id(p))
            self._validate(group)
            self.param_groups.append(group)
        self.state: dict[int, dict[str, Any]] = {}

    def _validate(self, group: dict[str, Any]) -> None:
        _check_nonneg("lr", group["lr"])
        _check_nonneg("weight_decay", group.get("weight_decay", 0.0))

    @property
    def lr(self) -> float:
        """The learning rate of the first group (set it to change every group's)."""
        return self.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value: float) -> None:
        value = _check_nonneg("lr", value)
        for group in self.param_groups:
            group["lr"] = value

    def zero_grad(self) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                p.zero_grad()

    def step(self) -> None:
        """Apply one update to every parameter from its current `grad`."""
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state.setdefault(id(p), {})
                w = flatten(p.data)
                g = flatten(p.grad)
                self.update(w, g, state, group)
                p.data = unflatten(w, p.shape)

    def update(self, w: list, g: list, state: dict, group: dict) -> None:  # pragma: no cover
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent: w <- w - lr * g, with optional momentum, Nesterov, L2 decay.

    One step with lr=0.1 on w=1.0, g=0.5 gives w=0.95.
    """

    def __init__(self, params, lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0):
        if nesterov and momentum <= 0:
            raise ValueError(f"nesterov needs momentum > 0, got momentum={momentum}")
        super().__init__(
            params, dict(lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
        )

    def _validate(self, group):
        super()._validate(group)
        _check_nonneg("momentum", group["momentum"])

    def update(self, w, g, state, group):
        lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
        d = [gi + wd * wi for gi, wi in zip(g, w)] if wd else list(g)
        if mu:
            # velocity <- mu * velocity + d; the very first step starts the velocity at d
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = list(d)
            else:
                for i in range(len(buf)):
                    buf[i] = mu * buf[i] + d[i]
            d = [di + mu * vi for di, vi in zip(d, buf)] if group["nesterov"] else buf
        for i in range(len(w)):
            w[i] -= lr * d[i]


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015); `weight_decay` is the coupled L2 form (added to the gradient)."""

    decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(
            params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
        )

    def _validate(self, group):
        super()._validate(group)
        b1, b2 = group["betas"]
        for name, b in (("betas[0]", b1), ("betas[1]", b2)):
            if not 0.0 <= _check_nonneg(name, b) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {b}")
        _check_nonneg("eps", group["eps"])

    def update(self, w, g, state, group):
        lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        if "m" not in state:
            state["t"], state["m"], state["v"] = 0, [0.0] * len(w), [0.0] * len(w)
        state["t"] += 1
        t, m, v = state["t"], state["m"], state["v"]
        bias_correction1 = 1.0 - b1**t
        bias_correction2 = 1.0 - b2**t
        step_size = lr / bias_correction1
        sqrt_bc2 = math.sqrt(bias_correction2)
        for i in range(len(w)):
            gi = g[i]
            if wd and self.decoupled:
                w[i] *= 1.0 - lr * wd  # AdamW: shrink the weight itself
            elif wd:
                gi = gi + wd * w[i]  # Adam: L2 penalty folded into the gradient
            m[i] = b1 * m[i] + (1.0 - b1) * gi
            v[i] = b2 * v[i] + (1.0 - b2) * gi * gi
            # m_hat / (sqrt(v_hat) + eps), arranged as PyTorch arranges it
            w[i] -= step_size * m[i] / (math.sqrt(v[i]) / sqrt_bc2 + eps)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019): w <- w (1 - lr wd) first."""

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


def clip_grad_norm(parameters: Iterable[Any], max_norm: float) -> float:
    """Scale all gradients so their joint L2 norm is at most `max_norm`; return the norm before.

    As in PyTorch: the scale is max_norm / (norm + 1e-6), applied only when it is below 1.
    """
    max_norm = _check_nonneg("max_norm", max_norm)
    params = list(parameters)
    total = math.sqrt(sum(x * x for p in params for x in flatten(p.grad)))
    scale = max_norm / (total + 1e-6)
    if scale < 1.0:
        for p in params:
            p.grad = unflatten([x * scale for x in flatten(p.grad)], p.shape)
    return total


class ConstantLR:
    """The same learning rate at every step."""

    def __init__(self, lr: float):
        self.lr = _check_nonneg("lr", lr)

    def __call__(self, step: int) -> float:
        return self.lr


class StepDecayLR:
    """lr * gamma ** (step // step_size): drop by `gamma` every `step_size` steps.

    StepDecayLR(0.1, step_size=10, gamma=0.5): steps 0-9 -> 0.1, 10-19 -> 0.05, ...
    """

    def __init__(self, lr: float, step_size: int, gamma: float = 0.1):
        self.lr = _check_nonneg("lr", lr)
        if isinstance(step_size, bool) or not isinstance(step_size, int) or step_size < 1:
            raise ValueError(f"step_size must be an int >= 1, got {step_size!r}")
        self.step_size, self.gamma = step_size, _check_nonneg("gamma", gamma)

    def __call__(self, step: int) -> float:
        return self.lr * self.gamma ** (step // self.step_size)


class CosineWarmupLR:
    """Linear warm-up to `lr` over `warmup_steps`, then cosine decay to `min_lr` at `total_steps`.

    Warm-up: lr * (step + 1) / warmup_steps (the first step is not wasted at 0). After
    `total_steps` the rate stays at `min_lr`.
    """

    def __init__(self, lr: float, warmup_steps: int, total_steps: int, min_lr: float = 0.0):
        self.lr, self.min_lr = _check_nonneg("lr", lr), _check_nonneg("min_lr", min_lr)
        if not (isinstance(warmup_steps, int) and isinstance(total_steps, int)):
            raise TypeError("warmup_steps and total_steps must be ints")
        if not 0 <= warmup_steps < total_steps:
            raise ValueError(
                f"need 0 <= warmup_steps < total_steps, got {warmup_steps} and {total_steps}"
            )
        self.warmup_steps, self.total_steps = warmup_steps, total_steps

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        if step >= self.total_steps:
            return self.min_lr
        ratio = (step - self.warmup_steps) / (self.total_steps - self.warmup_steps)
        return self.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (self.lr - self.min_lr)

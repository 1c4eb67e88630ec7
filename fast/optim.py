"""Update rules on numpy arrays: the reference's optimizers, one fused kernel per group per step.

The options, their validation, parameter groups and learning-rate schedules are the reference's
(`reference/optim.py`). What is new is storage: at construction each group's parameters are packed
into one contiguous buffer (and their gradients into another), and each `Parameter.data` / `.grad`
becomes a view into it. A step is then one parallel loop over the whole group, and `zero_grad` one
fill. Keep using `p.data` / `p.grad` through the Parameter (an array taken out before the optimizer
was built is no longer the parameter's storage).
"""

from __future__ import annotations

import math

import numpy as np

from reference import optim as _ref
from reference.optim import ConstantLR, CosineWarmupLR, StepDecayLR, _check_nonneg

from .cpu.optim import adam_kernel, sgd_kernel

__all__ = [
    "Optimizer",
    "SGD",
    "Adam",
    "AdamW",
    "clip_grad_norm",
    "ConstantLR",
    "StepDecayLR",
    "CosineWarmupLR",
]


class _Packed:
    """Pack a group's parameters into one buffer per dtype; data/grad become views."""

    def __init__(self, params):
        self.buffers = []  # (w, g, state) per dtype
        by_dtype: dict = {}
        for p in params:
            if not isinstance(p.data, np.ndarray):
                raise TypeError(
                    "fast optimizers need fast Parameters (numpy arrays); got "
                    f"{type(p.data).__name__} data"
                )
            by_dtype.setdefault(p.data.dtype, []).append(p)
        for dtype, ps in by_dtype.items():
            n = sum(p.data.size for p in ps)
            w = np.empty(n, dtype=dtype)
            g = np.empty(n, dtype=dtype)
            offset = 0
            for p in ps:
                size = p.data.size
                w[offset : offset + size] = p.data.reshape(-1)
                g[offset : offset + size] = p.grad.reshape(-1)
                p.data = w[offset : offset + size].reshape(p.shape)
                p.grad = g[offset : offset + size].reshape(p.shape)
                offset += size
            self.buffers.append((w, g, {}))


class Optimizer(_ref.Optimizer):
    """The reference's Optimizer with packed numpy storage; subclasses implement `update`."""

    def __init__(self, params, defaults):
        super().__init__(params, defaults)
        for group in self.param_groups:
            group["_packed"] = _Packed(group["params"])

    def zero_grad(self) -> None:
        for group in self.param_groups:
            for _, g, _ in group["_packed"].buffers:
                g.fill(0.0)

    def step(self) -> None:
        for group in self.param_groups:
            for w, g, state in group["_packed"].buffers:
                self.update(w, g, state, group)


class SGD(_ref.SGD, Optimizer):
    """SGD with momentum, Nesterov and L2 weight decay (see reference.SGD)."""

    def update(self, w, g, state, group):
        first = "momentum_buffer" not in state
        if first:
            state["momentum_buffer"] = np.zeros_like(w)
        sgd_kernel(
            w,
            g,
            state["momentum_buffer"],
            float(group["lr"]),
            float(group["momentum"]),
            float(group["weight_decay"]),
            bool(group["nesterov"]),
            first,
        )


class Adam(_ref.Adam, Optimizer):
    """Adam, coupled L2 weight decay (see reference.Adam)."""

    def update(self, w, g, state, group):
        b1, b2 = group["betas"]
        if "m" not in state:
            state["t"], state["m"], state["v"] = 0, np.zeros_like(w), np.zeros_like(w)
        state["t"] += 1
        t = state["t"]
        lr = float(group["lr"])
        step_size = lr / (1.0 - b1**t)
        sqrt_bc2 = math.sqrt(1.0 - b2**t)
        adam_kernel(
            w,
            g,
            state["m"],
            state["v"],
            lr,
            float(b1),
            float(b2),
            float(group["eps"]),
            float(group["weight_decay"]),
            self.decoupled,
            step_size,
            sqrt_bc2,
        )


class AdamW(_ref.AdamW, Adam):
    """Adam with decoupled weight decay (see reference.AdamW)."""

    decoupled = True


def clip_grad_norm(parameters, max_norm: float) -> float:
    """Scale gradients in place so their joint L2 norm is at most `max_norm`; return the norm."""
    max_norm = _check_nonneg("max_norm", max_norm)
    params = list(parameters)
    total = math.sqrt(
        sum(
            float(
                np.dot(p.grad.reshape(-1).astype(np.float64), p.grad.reshape(-1).astype(np.float64))
            )
            for p in params
        )
    )
    scale = max_norm / (total + 1e-6)
    if scale < 1.0:
        for p in params:
            p.grad *= scale
    return total

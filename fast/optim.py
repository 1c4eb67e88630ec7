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

from .cpu import optim as cpu_kernels
from .device import cuda_ops, device_of, empty, is_device_array

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
    """Pack a group's parameters into one buffer per (device, dtype); data/grad become views.

    On the GPU the buffers are DeviceArrays and the parameters views of them, so one update
    kernel covers the group there too."""

    def __init__(self, params):
        self.buffers = []  # (w, g, state) per (device, dtype)
        self.views = []  # (parameter, its data view): what `check` compares
        by_kind: dict = {}
        for p in params:
            if not isinstance(p.data, np.ndarray) and not is_device_array(p.data):
                raise TypeError(
                    "fast optimizers need fast Parameters (numpy or device arrays); got "
                    f"{type(p.data).__name__} data"
                )
            by_kind.setdefault((device_of(p.data), p.data.dtype), []).append(p)
        for (device, dtype), ps in by_kind.items():
            n = sum(p.data.size for p in ps)
            w = empty(n, dtype, device)
            g = empty(n, dtype, device)
            offset = 0
            for p in ps:
                size = p.data.size
                w[offset : offset + size] = p.data.reshape(-1)
                g[offset : offset + size] = p.grad.reshape(-1)
                p.data = w[offset : offset + size].reshape(p.shape)
                p.grad = g[offset : offset + size].reshape(p.shape)
                self.views.append((p, p.data, p.grad))
                offset += size
            self.buffers.append((w, g, {}))

    def check(self) -> None:
        """Refuse to step when a parameter's storage was replaced after packing (by
        `model.to(...)`, say): the update would go to buffers the model no longer reads."""
        for p, data, grad in self.views:
            if p.data is not data or p.grad is not grad:
                raise RuntimeError(
                    f"a parameter of shape {p.shape} no longer lives in this optimizer's "
                    "buffers (was the model moved with .to() after the optimizer was built?): "
                    "build the optimizer after moving the model"
                )


def zeros_like(w):
    out = empty(w.shape, w.dtype, device_of(w))
    out.fill(0.0)
    return out


def _update(rule: str, w):
    """The update kernel for w's device: fast/cpu/optim.py's, or its CUDA twin (same arguments)."""
    if is_device_array(w):
        return getattr(cuda_ops("optim"), f"{rule}_update")
    return getattr(cpu_kernels, f"{rule}_kernel")


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
            group["_packed"].check()
            for w, g, state in group["_packed"].buffers:
                self.update(w, g, state, group)


class SGD(_ref.SGD, Optimizer):
    """SGD with momentum, Nesterov and L2 weight decay (see reference.SGD)."""

    def update(self, w, g, state, group):
        first = "momentum_buffer" not in state
        if first:
            state["momentum_buffer"] = zeros_like(w)
        _update("sgd", w)(
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
            state["t"], state["m"], state["v"] = 0, zeros_like(w), zeros_like(w)
        state["t"] += 1
        t = state["t"]
        lr = float(group["lr"])
        step_size = lr / (1.0 - b1**t)
        sqrt_bc2 = math.sqrt(1.0 - b2**t)
        _update("adam", w)(
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
    on_gpu = [p.grad.reshape(-1) for p in params if is_device_array(p.grad)]
    total = math.sqrt(
        sum(
            float(
                np.dot(p.grad.reshape(-1).astype(np.float64), p.grad.reshape(-1).astype(np.float64))
            )
            for p in params
            if not is_device_array(p.grad)
        )
        + (cuda_ops("optim").grad_norm_sq(on_gpu) if on_gpu else 0.0)
    )
    scale = max_norm / (total + 1e-6)
    if scale < 1.0:
        for p in params:
            p.grad *= scale
    return total

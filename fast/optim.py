"""Update rules on numpy arrays: the reference's optimizers, one fused kernel per group per step.

The options, their validation, parameter groups and learning-rate schedules are the reference's
(`reference/optim.py`). What is new is storage: at construction each group's parameters are packed
into one contiguous buffer (and their gradients into another), and each `Parameter.data` / `.grad`
becomes a view into it. A step is then one parallel loop over the whole group, and `zero_grad` one
fill. Keep using `p.data` / `p.grad` through the Parameter (an array taken out before the optimizer
was built is no longer the parameter's storage).

`state_dict()` / `load_state_dict()` speak the reference's (PyTorch's) layout: per parameter,
numbered across the groups. Storage is per packed buffer, so saving cuts each buffer's state into
per-parameter host copies (numpy, in the buffer's dtype, also from the GPU), and loading stitches
them back (cast to the buffer's dtype, uploaded when the buffer is on the GPU). A buffer keeps one
Adam step counter, written into the entry of each of its parameters; on load they must agree.
"""

from __future__ import annotations

import math

import numpy as np

from reference import optim as _ref
from reference.optim import (
    ConstantLR,
    CosineWarmupLR,
    StepDecayLR,
    check_nonneg,
    check_state_tensor,
)

from .device import device_of, empty, is_device_array, kernels, to_device, to_host

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
        self.slots = []  # (buffer index, offset) of each parameter, in the group's order
        where = {}
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
                where[id(p)] = (len(self.buffers), offset)
                offset += size
            self.buffers.append((w, g, {}))
        self.slots = [where[id(p)] for p in params]

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

    def gradient_buffers(self) -> list:
        """The packed gradient buffers, one per group and (device, dtype): every parameter's
        `.grad` is a view into one of them (what a data-parallel all-reduce sends)."""
        return [g for group in self.param_groups for _, g, _ in group["_packed"].buffers]

    # -- saving and restoring: per-parameter slices of the packed buffers -----------------------
    def _export_group(self, group):
        packed = group["_packed"]
        out = []
        for p, (b, offset) in zip(group["params"], packed.slots):
            state = packed.buffers[b][2]
            entry = {}
            for k in self.state_keys:
                if k == "step" and k in state:
                    entry[k] = state[k]
                elif k in state:
                    piece = state[k][offset : offset + p.data.size]
                    entry[k] = to_host(piece).reshape(p.shape).copy()
            out.append(entry)
        return out

    def _tensor(self, value, where, p, nonneg=False):
        """A saved state tensor as a host numpy array in p's dtype, checked as the reference
        checks it (nested lists go through the reference's own check)."""
        if is_device_array(value):
            value = value.copy_to_host()
        if not isinstance(value, np.ndarray) and hasattr(value, "__array__"):
            try:
                value = np.asarray(value)
            except Exception:  # noqa: BLE001 - e.g. a GPU torch tensor: read it via tolist()
                pass
        if not isinstance(value, np.ndarray) or value.dtype.kind == "O":
            value = np.array(check_state_tensor(value, where, p.shape, nonneg)).reshape(p.shape)
        if value.dtype.kind not in "iuf":
            raise TypeError(f"{where} must hold numbers, found dtype {value.dtype}")
        if value.shape != tuple(p.shape):
            raise ValueError(f"{where} has shape {value.shape}, expected {tuple(p.shape)}")
        bad = ~np.isfinite(value) | (value < 0) if nonneg else ~np.isfinite(value)
        if bad.any():
            i = int(np.flatnonzero(bad.reshape(-1))[0])
            need = "finite and >= 0" if nonneg else "finite"
            raise ValueError(f"{where} must be {need}, found {value.reshape(-1)[i]} at flat "
                             f"position {i}")  # fmt: skip
        with np.errstate(over="ignore"):
            out = value.astype(p.data.dtype)
        if value.dtype.kind == "f" and not np.isfinite(out).all():
            i = int(np.flatnonzero(~np.isfinite(out.reshape(-1)))[0])
            raise ValueError(
                f"{where} holds {value.reshape(-1)[i]} at flat position {i}, too large for this "
                f"optimizer's {out.dtype}"
            )
        return out

    def _restore(self, hyper, state):
        """Stitch per-parameter state into per-buffer state; refuse (before changing anything)
        parameters of one buffer that disagree on having state or on the step count."""
        new_states = []
        first = 0
        for group in self.param_groups:
            packed = group["_packed"]
            members: dict = {}
            for j, (b, offset) in enumerate(packed.slots):
                members.setdefault(b, []).append((first + j, offset, group["params"][j]))
            first += len(group["params"])
            states = []
            for b, (w, _, _) in enumerate(packed.buffers):
                states.append(self._stitch(w, members.get(b, []), state))
            new_states.append(states)
        super()._restore(hyper, {})  # the reference Optimizer's: install the hyperparameters
        for group, states in zip(self.param_groups, new_states):
            for (_, _, old), new in zip(group["_packed"].buffers, states):
                old.clear()
                old.update(new)

    def _stitch(self, w, members, state) -> dict:
        """One buffer's state from its parameters' saved entries (numbers, offset, Parameter)."""
        have = [i for i, _, _ in members if i in state]
        if not have:
            return {}
        lacking = [i for i, _, _ in members if i not in state]
        if lacking:
            raise ValueError(
                f"state_dict['state'] has state for parameter {have[0]} but none for parameter "
                f"{lacking[0]}; this optimizer keeps them in one buffer (same group, device and "
                "dtype), which has state for all of its parameters or for none"
            )
        out = {}
        if "step" in self.state_keys:
            steps = {state[i]["step"] for i in have}
            if len(steps) > 1:
                i, j = have[0], next(j for j in have if state[j]["step"] != state[have[0]]["step"])
                raise ValueError(
                    f"state_dict['state'][{j}]['step'] is {state[j]['step']} but parameter {i}, "
                    f"in the same buffer of this optimizer, has step {state[i]['step']}; this "
                    "optimizer keeps one step count per buffer"
                )
            out["step"] = steps.pop()
        for k in self.state_keys:
            if k == "step":
                continue
            host = np.zeros(w.size, dtype=w.dtype)
            for i, offset, p in members:
                host[offset : offset + p.data.size] = state[i][k].reshape(-1)
            out[k] = to_device(host, device_of(w), w.dtype)
        return out


class SGD(_ref.SGD, Optimizer):
    """SGD with momentum, Nesterov and L2 weight decay (see reference.SGD)."""

    def update(self, w, g, state, group):
        # As in the reference, the velocity exists only once a step with momentum has run
        # (without momentum the kernel never touches its `buf`: w stands in for it).
        first = "momentum_buffer" not in state
        if first and group["momentum"]:
            state["momentum_buffer"] = zeros_like(w)
        kernels("optim", w).sgd_update(
            w,
            g,
            state.get("momentum_buffer", w),
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
        if "exp_avg" not in state:
            state["step"], state["exp_avg"], state["exp_avg_sq"] = 0, zeros_like(w), zeros_like(w)
        state["step"] += 1
        t = state["step"]
        lr = float(group["lr"])
        step_size = lr / (1.0 - b1**t)
        sqrt_bc2 = math.sqrt(1.0 - b2**t)
        kernels("optim", w).adam_update(
            w,
            g,
            state["exp_avg"],
            state["exp_avg_sq"],
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
    max_norm = check_nonneg("max_norm", max_norm)
    params = list(parameters)
    by_device: dict = {"cpu": []}  # the host's gradients first, then each device's
    for p in params:
        by_device.setdefault(device_of(p.grad), []).append(p.grad.reshape(-1))
    total = math.sqrt(
        sum(kernels("optim", *grads).grad_norm_sq(grads) for grads in by_device.values() if grads)
    )
    scale = max_norm / (total + 1e-6)
    if scale < 1.0:
        for p in params:
            p.grad *= scale
    return total

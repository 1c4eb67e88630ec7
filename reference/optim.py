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

Training that survives interruption needs more than the weights: Adam's running averages and step
count, SGD's velocity, and the hyperparameters of every group. `state_dict()` hands them out in
PyTorch's layout, so a checkpoint moves between backends (and to and from `torch.optim`, whose
scheduler and implementation keys are accepted on load when they ask for what we compute):

    {"state": {0: {"step": 3, "exp_avg": T, "exp_avg_sq": T}, ...},      # only stepped params
     "param_groups": [{"lr": 0.001, "betas": (0.9, 0.95), "eps": 1e-08,
                       "weight_decay": 0.1, "params": [0, 1, 2]}, ...]}

Parameters are numbered 0, 1, 2, ... across the groups in order; T is a tensor shaped like its
parameter (nested lists here). `load_state_dict` checks all of it before changing anything, then
restores it into the optimizer's own parameters by position: a run resumed from it takes exactly
the steps the uninterrupted run would have taken. Schedules have a `state_dict` too (their
hyperparameters, plus their class name under "type").
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable
from typing import Any

from .nested import flatten, unflatten

# Group keys that PyTorch's optimizers write and ours do not use: accepted on load when the value
# asks for nothing we do not do (`_refused` says what would be wrong), then dropped.
_TORCH_KEYS = {
    "maximize": lambda opt, v: v is not False and "only maximize=False (we minimise)",
    "foreach": lambda opt, v: False,
    "fused": lambda opt, v: False,
    "capturable": lambda opt, v: False,
    "differentiable": lambda opt, v: False,
    # A torch LR scheduler's record of each group's starting rate; our schedules keep their own.
    "initial_lr": lambda opt, v: _refusal(check_nonneg, "initial_lr", v),
}


def _refusal(check, name: str, value: Any) -> str | bool:
    """What `check(name, value)` says is wrong with `value`, or False if it passes."""
    try:
        check(name, value)
    except (TypeError, ValueError) as e:
        return str(e)
    return False


def check_nonneg(name: str, value: Any) -> float:
    """`value` as a finite float >= 0 (a learning rate, a decay, a norm), or an error."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return float(value)


def _check_step(value: Any, where: str) -> int:
    """A step count: a non-negative integer that fits in int64 (an integral float, or a scalar
    with `.item()`, as PyTorch stores it, is accepted)."""
    if not isinstance(value, (int, float)) and hasattr(value, "item"):
        try:
            value = value.item()
        except (TypeError, ValueError, RuntimeError):  # several numbers (numpy, torch)
            raise TypeError(f"{where} must be a single number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{where} must be a non-negative integer, got {type(value).__name__}")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise ValueError(f"{where} must be a non-negative integer, got {value}")
    if not 0 <= value < 2**63:
        raise ValueError(f"{where} must be a non-negative integer below 2**63, got {value}")
    return int(value)


def _flat_numbers(value: Any, where: str) -> tuple[tuple[int, ...], list[float]]:
    """(shape, row-major floats) of a rectangular nested list of numbers; anything with `tolist()`
    (a numpy array, a torch tensor) is read through it. Ragged -> ValueError, not numbers ->
    TypeError."""
    if not isinstance(value, (list, tuple, int, float)) and hasattr(value, "tolist"):
        value = value.tolist()
    shape = []
    x = value
    while isinstance(x, (list, tuple)):
        shape.append(len(x))
        if not x:
            break
        x = x[0]
    out: list[float] = []
    stack = [(value, 0)]  # depth first, left to right: row-major order, and no recursion limit
    while stack:
        x, depth = stack.pop()
        if isinstance(x, (list, tuple)):
            if depth == len(shape) or len(x) != shape[depth]:
                raise ValueError(f"{where} is not a rectangular tensor (ragged nested lists)")
            stack.extend((y, depth + 1) for y in reversed(x))
        elif depth != len(shape):
            raise ValueError(f"{where} is not a rectangular tensor (ragged nested lists)")
        elif isinstance(x, bool) or not isinstance(x, (int, float)):
            raise TypeError(f"{where} must hold numbers, found {type(x).__name__}")
        else:
            out.append(float(x))
    return tuple(shape), out


def check_state_tensor(value: Any, where: str, shape: tuple, nonneg: bool = False) -> list[float]:
    """The flat floats of a state tensor, after checking it is numbers of the parameter's shape,
    finite (and >= 0 where `nonneg`: a running mean of squares)."""
    got, flat = _flat_numbers(value, where)
    if got != tuple(shape):
        raise ValueError(f"{where} has shape {got}, expected {tuple(shape)}")
    for i, v in enumerate(flat):
        if not math.isfinite(v) or (nonneg and v < 0):
            need = "finite and >= 0" if nonneg else "finite"
            raise ValueError(f"{where} must be {need}, found {v} at flat position {i}")
    return flat


class Optimizer:
    """Holds parameter groups and per-parameter state; subclasses implement `update`.

    Subclasses name the entries of a parameter's state (`state_keys`: the tensors, plus "step"
    where there is one), the PyTorch group keys they accept on load (`torch_keys`), and the ones
    they write so that `torch.optim` can load their state (`torch_written`: torch's value for
    what we compute, for a key torch reads without a default)."""

    state_keys: tuple[str, ...] = ()
    torch_written: dict[str, Any] = {}
    torch_keys = _TORCH_KEYS

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
        check_nonneg("lr", group["lr"])
        check_nonneg("weight_decay", group.get("weight_decay", 0.0))

    @property
    def lr(self) -> float:
        """The learning rate of the first group (set it to change every group's)."""
        return self.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value: float) -> None:
        value = check_nonneg("lr", value)
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

    # -- saving and restoring ------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """{"state": {index: {name: value}}, "param_groups": [{hyperparameters, "params"}]}:
        copies, in PyTorch's layout (see the module docstring)."""
        state: dict[int, dict[str, Any]] = {}
        groups = []
        index = 0
        for group in self.param_groups:
            numbers = []
            for entry in self._export_group(group):
                if entry:
                    state[index] = entry
                numbers.append(index)
                index += 1
            hyper = {k: group[k] for k in self.defaults}
            groups.append({**hyper, **self.torch_written, "params": numbers})
        return {"state": state, "param_groups": groups}

    def _export_group(self, group: dict) -> list[dict[str, Any]]:
        """The state of each parameter of `group`, in order ({} for one not stepped yet)."""
        out = []
        for p in group["params"]:
            s = self.state.get(id(p), {})
            entry: dict[str, Any] = {}
            for k in self.state_keys:
                if k in s:
                    entry[k] = s[k] if k == "step" else unflatten(list(s[k]), p.shape)
            out.append(entry)
        return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore hyperparameters and state from `state_dict()`'s layout (ours, the other
        backend's or PyTorch's), matched to this optimizer's parameters by position. Everything
        is checked first: a refused state dict leaves the optimizer as it was."""
        if not isinstance(state_dict, dict):
            raise TypeError(f"state_dict must be a dict, got {type(state_dict).__name__}")
        for key in ("state", "param_groups"):
            if key not in state_dict:
                raise ValueError(f"state_dict is missing {key!r}")
        extra = sorted(map(repr, set(state_dict) - {"state", "param_groups"}))
        if extra:
            raise ValueError(
                f"state_dict has unknown keys {', '.join(extra)}; expected 'state', 'param_groups'"
            )
        hyper = self._checked_groups(state_dict["param_groups"])
        state = self._checked_state(state_dict["state"])
        self._restore(hyper, state)

    def _checked_groups(self, groups: Any) -> list[dict[str, Any]]:
        """Each saved group's hyperparameters, checked by this optimizer's rules."""
        if not isinstance(groups, (list, tuple)):
            raise TypeError(
                f"state_dict['param_groups'] must be a list, got {type(groups).__name__}"
            )
        if len(groups) != len(self.param_groups):
            raise ValueError(
                f"state_dict['param_groups'] has {len(groups)} groups, this optimizer has "
                f"{len(self.param_groups)}"
            )
        out = []
        first = 0
        for i, (saved, group) in enumerate(zip(groups, self.param_groups)):
            where = f"state_dict['param_groups'][{i}]"
            if not isinstance(saved, dict):
                raise TypeError(f"{where} must be a dict, got {type(saved).__name__}")
            expected = list(range(first, first + len(group["params"])))
            first += len(group["params"])
            numbers = saved.get("params")
            if not isinstance(numbers, (list, tuple)):
                raise TypeError(
                    f"{where}['params'] must be a list of parameter numbers, got "
                    f"{type(numbers).__name__}"
                )
            if len(numbers) != len(expected):
                raise ValueError(
                    f"{where}['params'] lists {len(numbers)} parameters, this optimizer's group "
                    f"{i} has {len(expected)}"
                )
            if list(numbers) != expected:
                raise ValueError(
                    f"{where}['params'] is {list(numbers)}, expected {expected} (parameters are "
                    "numbered 0, 1, 2, ... across the groups in order)"
                )
            for k in saved:
                if k == "params" or k in self.defaults:
                    continue
                if k not in self.torch_keys:
                    raise ValueError(f"{where} has an unknown option {k!r}")
                wrong = self.torch_keys[k](self, saved[k])
                if wrong:
                    raise ValueError(f"{where}[{k!r}] is {saved[k]!r}: {wrong}")
            hyper = {}
            for k in self.defaults:
                if k not in saved:
                    raise ValueError(f"{where} is missing the option {k!r}")
                hyper[k] = saved[k]
            if "betas" in hyper:
                betas = hyper["betas"]
                if not isinstance(betas, (list, tuple)) or len(betas) != 2:
                    raise TypeError(f"{where}['betas'] must be a pair of numbers, got {betas!r}")
                hyper["betas"] = tuple(betas)
            try:
                self._validate(hyper)
            except (TypeError, ValueError) as e:
                raise type(e)(f"{where}: {e}") from None
            out.append(hyper)
        return out

    def _checked_state(self, state: Any) -> dict[int, dict[str, Any]]:
        """{parameter number: its state, checked and converted (`_tensor`)}."""
        if not isinstance(state, dict):
            raise TypeError(f"state_dict['state'] must be a dict, got {type(state).__name__}")
        params = [p for group in self.param_groups for p in group["params"]]
        out = {}
        for i, entry in state.items():
            if isinstance(i, bool) or not hasattr(i, "__index__"):
                raise TypeError(
                    f"state_dict['state'] keys must be parameter numbers (ints), got {i!r}"
                )
            i = operator.index(i)
            if not 0 <= i < len(params):
                raise ValueError(
                    f"state_dict['state'] has parameter number {i}; this optimizer has "
                    f"{len(params)} parameters (0 to {len(params) - 1})"
                )
            where = f"state_dict['state'][{i}]"
            if not isinstance(entry, dict):
                raise TypeError(f"{where} must be a dict, got {type(entry).__name__}")
            entry = {k: v for k, v in entry.items() if v is not None}  # PyTorch's empty slots
            unknown = sorted(map(repr, set(entry) - set(self.state_keys)))
            if unknown:
                raise ValueError(
                    f"{where} has unknown keys {', '.join(unknown)}; expected "
                    f"{', '.join(map(repr, self.state_keys))}"
                )
            if not entry:
                continue
            missing = [k for k in self.state_keys if k not in entry]
            if missing:
                raise ValueError(f"{where} is missing {', '.join(map(repr, missing))}")
            out[i] = {
                k: _check_step(v, f"{where}['step']")
                if k == "step"
                else self._tensor(v, f"{where}[{k!r}]", params[i], nonneg=k == "exp_avg_sq")
                for k, v in entry.items()
            }
        return out

    def _tensor(self, value: Any, where: str, p: Any, nonneg: bool = False) -> Any:
        """A saved state tensor as this backend keeps it: here a flat list of floats."""
        return check_state_tensor(value, where, p.shape, nonneg)

    def _restore(self, hyper: list[dict[str, Any]], state: dict[int, dict[str, Any]]) -> None:
        """Install checked hyperparameters and state (nothing here can fail)."""
        params = [p for group in self.param_groups for p in group["params"]]
        for group, h in zip(self.param_groups, hyper):
            group.update(h)
        self.state = {id(params[i]): s for i, s in state.items()}


class SGD(Optimizer):
    """Stochastic gradient descent: w <- w - lr * g, with optional momentum, Nesterov, L2 decay.

    One step with lr=0.1 on w=1.0, g=0.5 gives w=0.95.
    """

    def __init__(self, params, lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(
            params, dict(lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
        )

    state_keys = ("momentum_buffer",)
    torch_keys = {**_TORCH_KEYS, "dampening": lambda opt, v: v != 0 and "only dampening=0"}
    torch_written = {"dampening": 0}  # torch.optim.SGD's step reads it; we never dampen

    def _validate(self, group):
        super()._validate(group)
        check_nonneg("momentum", group["momentum"])
        if not isinstance(group["nesterov"], bool):
            raise TypeError(f"nesterov must be True or False, got {group['nesterov']!r}")
        if group["nesterov"] and group["momentum"] <= 0:
            raise ValueError(f"nesterov needs momentum > 0, got momentum={group['momentum']}")

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
    state_keys = ("step", "exp_avg", "exp_avg_sq")
    torch_keys = {
        **_TORCH_KEYS,
        "amsgrad": lambda opt, v: v is not False and "only amsgrad=False",
        "decoupled_weight_decay": lambda opt, v: (
            v is not opt.decoupled
            and f"{type(opt).__name__} has decoupled_weight_decay={opt.decoupled}"
        ),
    }

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(
            params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
        )

    def _validate(self, group):
        super()._validate(group)
        b1, b2 = group["betas"]
        for name, b in (("betas[0]", b1), ("betas[1]", b2)):
            if not 0.0 <= check_nonneg(name, b) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {b}")
        check_nonneg("eps", group["eps"])

    def update(self, w, g, state, group):
        lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        if "exp_avg" not in state:
            state["step"], state["exp_avg"], state["exp_avg_sq"] = 0, [0.0] * len(w), [0.0] * len(w)
        state["step"] += 1
        t, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
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
    max_norm = check_nonneg("max_norm", max_norm)
    params = list(parameters)
    total = math.sqrt(sum(x * x for p in params for x in flatten(p.grad)))
    scale = max_norm / (total + 1e-6)
    if scale < 1.0:
        for p in params:
            p.grad = unflatten([x * scale for x in flatten(p.grad)], p.shape)
    return total


class _Schedule:
    """What the schedules share: saving and restoring their hyperparameters (`fields`)."""

    fields: tuple[str, ...] = ()

    def state_dict(self) -> dict[str, Any]:
        """{"type": the class name, and each hyperparameter}: plain numbers, JSON-able."""
        return {"type": type(self).__name__, **{k: getattr(self, k) for k in self.fields}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Take the hyperparameters of a `state_dict()` of this same schedule, checked by the
        constructor's rules; a refused one changes nothing."""
        name = type(self).__name__
        if not isinstance(state_dict, dict):
            raise TypeError(f"state_dict must be a dict, got {type(state_dict).__name__}")
        if state_dict.get("type") != name:
            raise ValueError(f"state_dict['type'] must be {name!r}, got {state_dict.get('type')!r}")
        missing = [k for k in self.fields if k not in state_dict]
        if missing:
            raise ValueError(f"state_dict is missing {', '.join(map(repr, missing))}")
        unknown = sorted(map(repr, set(state_dict) - {"type", *self.fields}))
        if unknown:
            raise ValueError(f"state_dict has unknown keys {', '.join(unknown)}")
        try:
            checked = type(self)(**{k: state_dict[k] for k in self.fields})
        except (TypeError, ValueError) as e:
            raise type(e)(f"state_dict: {e}") from None
        for k in self.fields:
            setattr(self, k, getattr(checked, k))


class ConstantLR(_Schedule):
    """The same learning rate at every step."""

    fields = ("lr",)

    def __init__(self, lr: float):
        self.lr = check_nonneg("lr", lr)

    def __call__(self, step: int) -> float:
        return self.lr


class StepDecayLR(_Schedule):
    """lr * gamma ** (step // step_size): drop by `gamma` every `step_size` steps.

    StepDecayLR(0.1, step_size=10, gamma=0.5): steps 0-9 -> 0.1, 10-19 -> 0.05, ...
    """

    fields = ("lr", "step_size", "gamma")

    def __init__(self, lr: float, step_size: int, gamma: float = 0.1):
        self.lr = check_nonneg("lr", lr)
        if isinstance(step_size, bool) or not isinstance(step_size, int) or step_size < 1:
            raise ValueError(f"step_size must be an int >= 1, got {step_size!r}")
        self.step_size, self.gamma = step_size, check_nonneg("gamma", gamma)

    def __call__(self, step: int) -> float:
        return self.lr * self.gamma ** (step // self.step_size)


class CosineWarmupLR(_Schedule):
    """Linear warm-up to `lr` over `warmup_steps`, then cosine decay to `min_lr` at `total_steps`.

    Warm-up: lr * (step + 1) / warmup_steps (the first step is not wasted at 0). After
    `total_steps` the rate stays at `min_lr`.
    """

    fields = ("lr", "warmup_steps", "total_steps", "min_lr")

    def __init__(self, lr: float, warmup_steps: int, total_steps: int, min_lr: float = 0.0):
        self.lr, self.min_lr = check_nonneg("lr", lr), check_nonneg("min_lr", min_lr)
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

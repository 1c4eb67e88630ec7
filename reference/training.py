"""The training loop: gradient descent in its three flavours, and when to stop.

One loop covers all three ways of choosing the data for each step:

    batch_size=None   batch gradient descent (BGD): every sample in every step
    batch_size=1      stochastic gradient descent (SGD): one sample per step
    batch_size=k      mini-batch gradient descent (MBGD): k samples per step

Each step is the seed's three moves: compute the loss, backpropagate, update the weights. An epoch
is one pass over the (seeded, shuffled) data. Training stops at the first rule that fires:

    max_steps / epochs        a fixed budget of updates or passes ("max_steps", "max_epochs")
    loss_change_threshold     the epoch loss changed by less than this since the last epoch
    grad_norm_threshold       the gradient's norm fell below this (a flat spot: a minimum)
    should_stop               asked after every step; True ends training early ("interrupted")

Both thresholds are checked at the end of each epoch on epoch-level quantities: the loss is the mean
training loss over the epoch's samples, and the gradient is the sample-weighted mean of the epoch's
batch gradients. For batch gradient descent an epoch is one step, so these are exactly the
textbook's per-iteration loss and full gradient.

Training can stop and continue. `FitResult.state` is where it stopped (a `FitState`: the epoch,
how far into that epoch's order, the epoch's running sums, the histories); `fit(...,
resume_from=state)` with the same model weights and optimizer state picks up from there and takes
exactly the steps, with exactly the losses, an uninterrupted run would have taken.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .nested import flatten
from .optim import clip_grad_norm
from .rng import permutation

STOP_RULES = ("max_epochs", "max_steps", "loss_change", "grad_norm", "interrupted")


class NonFiniteLossError(ValueError):
    """The loss became NaN or infinite; training stopped. `step` and `epoch` say where."""

    def __init__(self, loss: float, step: int, epoch: int):
        self.loss, self.step, self.epoch = loss, step, epoch
        super().__init__(
            f"loss became {loss} at step {step} (epoch {epoch}); training stopped. "
            "Lower the learning rate, clip gradients, or check the inputs."
        )


@dataclass
class FitState:
    """A position in training, enough (with the weights and optimizer state) to continue it.

    `epoch` epochs are complete; the next step takes samples from `position` on in epoch
    `epoch`'s order. `loss_sum`, `grad_sum` (a plain list of floats, or None) and `seen` are that
    epoch's running sums so far. `to_dict` / `from_dict` round-trip it through JSON exactly.
    """

    epoch: int = 0
    position: int = 0
    steps: int = 0
    loss_sum: float = 0.0
    grad_sum: list[float] | None = None
    seen: int = 0
    loss_history: list[float] = field(default_factory=list)
    grad_norm_history: list[float] = field(default_factory=list)
    step_losses: list[float] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "epoch": self.epoch,
            "position": self.position,
            "steps": self.steps,
            "loss_sum": self.loss_sum,
            "grad_sum": None if self.grad_sum is None else list(self.grad_sum),
            "seen": self.seen,
            "loss_history": list(self.loss_history),
            "grad_norm_history": list(self.grad_norm_history),
            "step_losses": list(self.step_losses),
        }

    @classmethod
    def from_dict(cls, d: dict) -> FitState:
        if not isinstance(d, dict):
            raise TypeError(f"a fit state must be a dict, got {type(d).__name__}")
        names = set(cls().to_dict())
        if set(d) != names:
            raise ValueError(f"a fit state has the keys {sorted(names)}, got {sorted(d)}")
        grad_sum = d["grad_sum"]
        return cls(
            epoch=d["epoch"],
            position=d["position"],
            steps=d["steps"],
            loss_sum=float(d["loss_sum"]),
            grad_sum=None if grad_sum is None else [float(x) for x in grad_sum],
            seen=d["seen"],
            loss_history=[float(x) for x in d["loss_history"]],
            grad_norm_history=[float(x) for x in d["grad_norm_history"]],
            step_losses=[float(x) for x in d["step_losses"]],
        )


@dataclass
class FitResult:
    """What `fit` did: which rule stopped it, how far it got, and the loss along the way."""

    stopped_by: str  # one of STOP_RULES
    steps: int  # optimizer updates made
    epochs: int  # passes over the data (the last may be partial when max_steps ends it)
    loss_history: list[float] = field(default_factory=list)  # mean loss of each epoch
    grad_norm_history: list[float] = field(default_factory=list)  # epoch gradient norms
    step_losses: list[float] = field(default_factory=list)  # loss of every step
    state: FitState | None = None  # where training stopped: pass as resume_from to continue

    @property
    def final_loss(self) -> float:
        return self.loss_history[-1] if self.loss_history else math.nan


def _check_count(name: str, value: Any, minimum: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int or None, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def _check_threshold(name: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number or None, got {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:  # a threshold of 0 could never fire
        raise ValueError(f"{name} must be a finite number > 0, got {value}")


class ListOps:
    """How `fit` handles the reference's tensors (lists). Another backend passes its own."""

    permutation = staticmethod(permutation)
    clip_grad_norm = staticmethod(clip_grad_norm)

    @staticmethod
    def take(data: Sequence[Any], idx: list[int]) -> list[Any]:
        return [data[i] for i in idx]

    @staticmethod
    def accumulate(acc: list[float] | None, params: list, weight: float) -> list[float]:
        """acc + weight * (all gradients, flattened)."""
        g = [weight * x for p in params for x in flatten(p.grad)]
        return g if acc is None else [a + x for a, x in zip(acc, g)]

    @staticmethod
    def norm(v: list[float]) -> float:
        return math.sqrt(sum(x * x for x in v))

    @staticmethod
    def to_floats(acc: list[float]) -> list[float]:
        return list(acc)

    @staticmethod
    def from_floats(values: list[float]) -> list[float]:
        return list(values)


def fit(
    model: Any,
    optimizer: Any,
    inputs: Sequence[Any],
    targets: Sequence[Any],
    *,
    batch_size: int | None = None,
    epochs: int | None = None,
    max_steps: int | None = None,
    loss_change_threshold: float | None = None,
    grad_norm_threshold: float | None = None,
    shuffle: bool = True,
    seed: int = 0,
    schedule: Callable[[int], float] | None = None,
    max_grad_norm: float | None = None,
    on_step: Callable[[int, float], None] | None = None,
    on_epoch: Callable[[int, float, float], None] | None = None,
    resume_from: FitState | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_checkpoint: Callable[[FitState], None] | None = None,
) -> FitResult:
    """Train `model` on (inputs, targets) with `optimizer` until a stopping rule fires.

    `model(x_batch, y_batch) -> (outputs, loss)`, `model.zero_grad()`, `model.backward()` and
    `model.parameters()` are all it needs, so the MLP and the Transformers train with it alike.
    `schedule(step) -> lr` sets the learning rate before each step; `max_grad_norm` clips.
    Shuffling draws epoch e's order from the shared generator (seed, stream=e), so every backend
    visits the samples in the same order.

    `should_stop()` is asked before every step; when it says True, `fit` returns at once with
    `stopped_by="interrupted"`. `result.state` is always where training stopped, and
    `resume_from=state` continues from there. `on_checkpoint(state)` is called at the end of every
    epoch that training goes on past, with the state to save.
    """
    return run_fit(
        ListOps,
        model,
        optimizer,
        inputs,
        targets,
        batch_size=batch_size,
        epochs=epochs,
        max_steps=max_steps,
        loss_change_threshold=loss_change_threshold,
        grad_norm_threshold=grad_norm_threshold,
        shuffle=shuffle,
        seed=seed,
        schedule=schedule,
        max_grad_norm=max_grad_norm,
        on_step=on_step,
        on_epoch=on_epoch,
        resume_from=resume_from,
        should_stop=should_stop,
        on_checkpoint=on_checkpoint,
    )


def run_fit(
    ops,
    model,
    optimizer,
    inputs,
    targets,
    *,
    batch_size,
    epochs,
    max_steps,
    loss_change_threshold,
    grad_norm_threshold,
    shuffle,
    seed,
    schedule,
    max_grad_norm,
    on_step,
    on_epoch,
    resume_from=None,
    should_stop=None,
    on_checkpoint=None,
) -> FitResult:
    """The body of `fit`, with tensor handling delegated to `ops` (see `ListOps`)."""
    n = len(inputs)
    if n == 0:
        raise ValueError("inputs is empty: fit needs at least one sample")
    if len(targets) != n:
        raise ValueError(f"targets must have one entry per input ({n}), got {len(targets)}")
    _check_count("batch_size", batch_size, 1)
    if batch_size is not None and batch_size > n:
        raise ValueError(
            f"batch_size must be at most the number of samples ({n}), got {batch_size}"
        )
    _check_count("epochs", epochs, 1)
    _check_count("max_steps", max_steps, 1)
    _check_threshold("loss_change_threshold", loss_change_threshold)
    _check_threshold("grad_norm_threshold", grad_norm_threshold)
    if (
        epochs is None
        and max_steps is None
        and loss_change_threshold is None
        and (grad_norm_threshold is None)
    ):
        raise ValueError(
            "give at least one stopping rule: epochs, max_steps, "
            "loss_change_threshold or grad_norm_threshold"
        )
    size = n if batch_size is None else batch_size
    for name, hook in (
        ("should_stop", should_stop),
        ("on_checkpoint", on_checkpoint),
        ("on_step", on_step),
        ("on_epoch", on_epoch),
    ):
        if hook is not None and not callable(hook):
            raise TypeError(f"{name} must be callable or None, got {type(hook).__name__}")
    start = _check_resume(resume_from, n, size)
    params = list(model.parameters())
    result = FitResult(
        stopped_by="",
        steps=start.steps,
        epochs=start.epoch,
        loss_history=list(start.loss_history),
        grad_norm_history=list(start.grad_norm_history),
        step_losses=list(start.step_losses),
    )
    epoch, position = start.epoch, start.position
    loss_sum, seen = start.loss_sum, start.seen  # sum over batches of (batch size) x (batch loss)
    # sum over batches of (batch size) x (batch gradient)
    grad_sum = None if start.grad_sum is None else ops.from_floats(start.grad_sum)

    def state_here() -> FitState:
        return FitState(
            epoch=epoch,
            position=position,
            steps=result.steps,
            loss_sum=loss_sum,
            grad_sum=None if grad_sum is None else ops.to_floats(grad_sum),
            seen=seen,
            loss_history=list(result.loss_history),
            grad_norm_history=list(result.grad_norm_history),
            step_losses=list(result.step_losses),
        )

    while True:
        order = ops.permutation(seed, epoch, n) if shuffle else list(range(n))
        while position < n:
            if should_stop is not None and should_stop():
                result.stopped_by, result.state = "interrupted", state_here()
                return result
            idx = order[position : position + size]
            if schedule is not None:
                optimizer.lr = schedule(result.steps)
            # 1. compute the loss
            try:
                _, loss = model(ops.take(inputs, idx), ops.take(targets, idx))
            except OverflowError:  # Python floats raise where IEEE arithmetic would give inf
                loss = math.inf
            if not math.isfinite(loss):
                raise NonFiniteLossError(loss, result.steps, epoch)
            # 2. backpropagate
            for p in params:  # model.zero_grad(), on the list taken once above
                p.zero_grad()
            model.backward()
            grad_sum = ops.accumulate(grad_sum, params, len(idx))
            if max_grad_norm is not None:
                ops.clip_grad_norm(params, max_grad_norm)
            # 3. update the weights
            optimizer.step()
            result.steps += 1
            result.step_losses.append(loss)
            loss_sum += len(idx) * loss
            seen += len(idx)
            position += len(idx)
            if on_step is not None:
                on_step(result.steps, loss)
            if max_steps is not None and result.steps >= max_steps:
                break  # a step budget may end training inside an epoch
        epoch += 1
        result.epochs = epoch
        epoch_loss = loss_sum / seen
        grad_norm = ops.norm(grad_sum) / seen
        result.loss_history.append(epoch_loss)
        result.grad_norm_history.append(grad_norm)
        position, loss_sum, grad_sum, seen = 0, 0.0, None, 0
        if on_epoch is not None:
            on_epoch(epoch, epoch_loss, grad_norm)
        # the stopping rules, in a fixed order so a tie is reported the same way every time
        if grad_norm_threshold is not None and grad_norm < grad_norm_threshold:
            result.stopped_by = "grad_norm"
        elif (
            loss_change_threshold is not None
            and len(result.loss_history) >= 2
            and abs(result.loss_history[-1] - result.loss_history[-2]) < loss_change_threshold
        ):
            result.stopped_by = "loss_change"
        elif max_steps is not None and result.steps >= max_steps:
            result.stopped_by = "max_steps"
        elif epochs is not None and epoch >= epochs:
            result.stopped_by = "max_epochs"
        result.state = state_here()
        if result.stopped_by:
            return result
        if on_checkpoint is not None:
            on_checkpoint(result.state)


def _check_resume(state: Any, n: int, size: int) -> FitState:
    """`state` (or a fresh start when None), after checking it fits these data and batches."""
    if state is None:
        return FitState()
    if not isinstance(state, FitState):
        raise TypeError(f"resume_from must be a FitState or None, got {type(state).__name__}")
    for name in ("epoch", "position", "steps", "seen"):
        value = getattr(state, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"resume_from.{name} must be an int >= 0, got {value!r}")
    if state.position >= n or state.position % size != 0:
        raise ValueError(
            f"resume_from.position must be a multiple of the batch size ({size}) below the "
            f"number of samples ({n}), got {state.position}"
        )
    if len(state.loss_history) != state.epoch or len(state.grad_norm_history) != state.epoch:
        raise ValueError(
            f"resume_from has {len(state.loss_history)} epoch losses and "
            f"{len(state.grad_norm_history)} gradient norms for {state.epoch} epochs"
        )
    if len(state.step_losses) != state.steps:
        raise ValueError(
            f"resume_from has {len(state.step_losses)} step losses for {state.steps} steps"
        )
    return state

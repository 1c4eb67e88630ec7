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

Both thresholds are checked at the end of each epoch on epoch-level quantities: the loss is the mean
training loss over the epoch's samples, and the gradient is the sample-weighted mean of the epoch's
batch gradients. For batch gradient descent an epoch is one step, so these are exactly the
textbook's per-iteration loss and full gradient.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .nested import flatten
from .optim import clip_grad_norm
from .rng import permutation

STOP_RULES = ("max_epochs", "max_steps", "loss_change", "grad_norm")


class NonFiniteLossError(ValueError):
    """The loss became NaN or infinite; training stopped. `step` and `epoch` say where."""

    def __init__(self, loss: float, step: int, epoch: int):
        self.loss, self.step, self.epoch = loss, step, epoch
        super().__init__(
            f"loss became {loss} at step {step} (epoch {epoch}); training stopped. "
            "Lower the learning rate, clip gradients, or check the inputs."
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
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")


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
) -> FitResult:
    """Train `model` on (inputs, targets) with `optimizer` until a stopping rule fires.

    `model(x_batch, y_batch) -> (outputs, loss)`, `model.zero_grad()`, `model.backward()` and
    `model.parameters()` are all it needs, so the MLP and the Transformers train with it alike.
    `schedule(step) -> lr` sets the learning rate before each step; `max_grad_norm` clips.
    Shuffling draws epoch e's order from the shared generator (seed, stream=e), so every backend
    visits the samples in the same order.
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
    params = list(model.parameters())
    result = FitResult(stopped_by="", steps=0, epochs=0)
    epoch = 0
    while True:
        order = ops.permutation(seed, epoch, n) if shuffle else list(range(n))
        loss_sum = 0.0  # sum over batches of (batch size) x (batch loss)
        grad_sum = None  # sum over batches of (batch size) x (batch gradient)
        seen = 0
        for start in range(0, n, size):
            idx = order[start : start + size]
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
            model.zero_grad()
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
        if result.stopped_by:
            return result

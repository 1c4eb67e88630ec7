"""The training loop for numpy models: the reference's `fit`, with array bookkeeping.

One loop, one set of stopping rules (`reference.training.run_fit`); only how a batch is taken and
how gradients are summed differ, and those are numpy operations here.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from reference.training import STOP_RULES, FitResult, FitState, NonFiniteLossError, run_fit

from . import rng
from .device import to_host
from .optim import clip_grad_norm

__all__ = ["fit", "FitResult", "FitState", "NonFiniteLossError", "STOP_RULES"]


class ArrayOps:
    """How `fit` handles fast's tensors."""

    permutation = staticmethod(rng.permutation)
    clip_grad_norm = staticmethod(clip_grad_norm)

    @staticmethod
    def take(data: Any, idx) -> Any:
        if isinstance(data, np.ndarray):
            return data[np.asarray(idx)]
        return [data[i] for i in idx]

    @staticmethod
    def accumulate(acc, params: list, weight: float):
        """acc + weight * (all gradients, flattened), in float64."""
        g = np.concatenate([to_host(p.grad).reshape(-1) for p in params], dtype=np.float64)
        g *= weight
        if acc is None:
            return g
        acc += g  # fit's own running sum: in place
        return acc

    @staticmethod
    def norm(v) -> float:
        return math.sqrt(float(np.dot(v, v)))

    @staticmethod
    def to_floats(acc) -> list[float]:
        return [float(x) for x in acc]

    @staticmethod
    def from_floats(values) -> np.ndarray:
        return np.asarray(values, dtype=np.float64)


def fit(
    model,
    optimizer,
    inputs,
    targets,
    *,
    batch_size=None,
    epochs=None,
    max_steps=None,
    loss_change_threshold=None,
    grad_norm_threshold=None,
    shuffle=True,
    seed=0,
    schedule=None,
    max_grad_norm=None,
    on_step=None,
    on_epoch=None,
    resume_from=None,
    should_stop=None,
    on_checkpoint=None,
) -> FitResult:
    """Train until a stopping rule fires; see `reference.fit` (same rules, same batches, and the
    same `resume_from` / `should_stop` / `on_checkpoint` for stopping and continuing)."""
    return run_fit(
        ArrayOps,
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

"""Parameters and modules for numpy arrays: the reference's bookkeeping, numpy's storage.

Registration, dotted names, train/eval and the checkpoint directory layout are the reference's
(`reference.module`): one definition. What changes is storage: `data` and `grad` are numpy arrays
allocated once, `zero_grad` clears them in place (no allocation per step), and state moves in and
out as arrays of the model's dtype.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from reference import module as _ref
from reference.fileio import atomic_write

from .checkpoint import load_safetensors, save_safetensors
from .dtypes import resolve_dtype


class Parameter(_ref.Parameter):
    """A trainable numpy array `data` and its gradient `grad` (same shape and dtype)."""

    __slots__ = ()

    def __init__(self, data: Any, dtype=None):
        a = np.asarray(data)
        dt = (
            resolve_dtype(dtype)
            if dtype is not None
            else (a.dtype if a.dtype in (np.float32, np.float64) else resolve_dtype(None))
        )
        self.data = np.ascontiguousarray(a, dtype=dt)
        self.shape = self.data.shape
        self.grad = np.zeros_like(self.data)

    def zero_grad(self) -> None:
        self.grad.fill(0.0)


class Module(_ref.Module):
    """The reference's Module with array-valued state."""

    def state_dict(self) -> dict[str, np.ndarray]:
        """{name: a copy of the parameter's array}, in `named_parameters` order."""
        return {name: p.data.copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> None:
        """Copy arrays (or nested lists, e.g. from `reference`) into the parameters, in place,
        converting to each parameter's dtype and checking every shape."""
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict of name -> tensor, got {type(state).__name__}")
        params = dict(self.named_parameters())
        missing = [n for n in params if n not in state]
        unexpected = [n for n in state if n not in params]
        if strict and (missing or unexpected):
            raise ValueError(
                f"state_dict mismatch: missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
            )
        for name, p in params.items():
            if name not in state:
                continue
            value = np.asarray(state[name], dtype=p.data.dtype)
            if value.shape != p.shape:
                raise ValueError(
                    f"state_dict[{name!r}] has shape {value.shape}, expected {p.shape}"
                )
            p.data[...] = value

    def save_pretrained(self, directory: str | os.PathLike, *, dtype: str = "float32") -> None:
        """Write `config.json` and `model.safetensors` into `directory`, each atomically."""
        directory = os.fspath(directory)
        os.makedirs(directory, exist_ok=True)
        save_safetensors(
            self.state_dict(),
            os.path.join(directory, "model.safetensors"),
            dtype=dtype,
            metadata={"format": "pt"},
        )
        atomic_write(
            os.path.join(directory, "config.json"),
            json.dumps(self.config_dict(), indent=2, sort_keys=True) + "\n",
        )

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, **options: Any) -> Module:
        """Build the model from `config.json`, load `model.safetensors`; `options` (dtype=...)
        go to the constructor."""
        directory = os.fspath(directory)
        for f in ("config.json", "model.safetensors"):
            if not os.path.isfile(os.path.join(directory, f)):
                raise FileNotFoundError(f"{directory!r} has no {f}")
        with open(os.path.join(directory, "config.json"), encoding="utf-8") as f:
            config = json.load(f)
        model = cls.from_config_dict(config, **options)
        model.load_state_dict(load_safetensors(os.path.join(directory, "model.safetensors")))
        return model


class ModuleList(Module, _ref.ModuleList):
    """An indexable list of modules, named 0, 1, 2, ..."""

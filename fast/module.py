"""Parameters and modules for numpy arrays: the reference's bookkeeping, numpy's storage.

Registration, dotted names, train/eval and the checkpoint directory layout are the reference's
(`reference.module`): one definition. What changes is storage: `data` and `grad` are numpy arrays
allocated once, `zero_grad` clears them in place (no allocation per step), and state moves in and
out as arrays of the model's dtype.

Devices: `Module.to("cuda")` moves every parameter (and a zeroed gradient) into GPU memory as
`DeviceArray`s; `state_dict()` always hands back host (numpy) copies and `load_state_dict` copies
into the parameters wherever they live, so checkpoints move between devices and backends.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from reference import module as _ref

from .checkpoint import load_safetensors, save_safetensors
from .device import device_of, host_copy, resolve_device, to_device, to_host
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
    """The reference's Module with array-valued state: only the storage hooks differ."""

    _save_tensors = staticmethod(save_safetensors)
    _load_tensors = staticmethod(load_safetensors)

    device = "cpu"

    @staticmethod
    def _copy_tensor(p: Parameter) -> np.ndarray:
        return host_copy(p.data)

    @staticmethod
    def _load_tensor(name: str, p: Parameter, value: Any) -> None:
        """Copy `value` (an array or nested lists) into p.data in place, in p's dtype."""
        value = to_host(value)
        if not isinstance(value, np.ndarray):
            try:
                kind = np.asarray(value).dtype.kind
            except (ValueError, TypeError):  # numpy refuses ragged lists
                kind = "O"
            if kind not in "biuf":  # ragged, or not numbers: the reference's error, word for word
                _ref.tensor_of_floats(f"state_dict[{name!r}]", value, p.shape)
        value = np.asarray(value, dtype=p.data.dtype)
        if value.shape != p.shape:
            raise ValueError(f"state_dict[{name!r}] has shape {value.shape}, expected {p.shape}")
        p.data[...] = to_device(value, device_of(p.data))

    def to(self, device) -> Module:
        """Move every parameter to `device` ("cpu" or "cuda"); gradients restart at zero.

        Build the optimizer after this: it packs the parameters where they are."""
        device = resolve_device(device)
        for p in self.parameters():
            if device_of(p.data) != device:
                p.data = to_device(p.data, device)
                p.grad = to_device(np.zeros(p.shape, dtype=p.data.dtype), device)
        for m in self.modules():
            object.__setattr__(m, "device", device)
        return self

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, dtype="float32", device="cpu") -> Module:
        """Build the model from `config.json` and load `model.safetensors` (in `dtype`, on
        `device`); the model comes back in evaluation mode, as in `transformers`."""
        return cls._from_directory(directory, {"dtype": dtype, "device": device})


class ModuleList(Module, _ref.ModuleList):
    """An indexable list of modules, named 0, 1, 2, ..."""

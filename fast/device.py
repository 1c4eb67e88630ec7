"""Where a model's numbers live: `device="cpu"` (numpy arrays, the default) or `device="cuda"`.

With `device="cuda"` parameters, gradients, optimizer state and activations are `DeviceArray`s in
GPU memory (`fast/cuda/array.py`) for the whole step; inputs may be numpy arrays or nested lists
(ids are checked on the host, then copied over), the loss comes back as a Python float, and any
array you want on the host you copy back explicitly with `.copy_to_host()`.

`fast` imports numba-cuda only when a DeviceArray is made: the check `is_device_array` below looks
at a class marker and needs no import, so CPU-only use never pays for (or needs) CUDA.

No GPU? Numba's CUDA simulator runs the same kernels on the CPU, slowly (tiny shapes only): set
NUMBA_ENABLE_CUDASIM=1 before Python starts. The test suite does that itself on machines without a
GPU (see conftest.py).
"""

from __future__ import annotations

import importlib

import numpy as np

DEVICES = ("cpu", "cuda")


def resolve_device(device) -> str:
    """'cpu' or 'cuda' (None means 'cpu'), or a clear error; 'cuda' needs a GPU or the simulator."""
    if device is None:
        return "cpu"
    if not isinstance(device, str):
        raise TypeError(f"device must be 'cpu' or 'cuda', got {type(device).__name__} {device!r}")
    if device not in DEVICES:
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if device == "cuda":
        from .cuda.launch import cuda_available

        if not cuda_available():
            raise RuntimeError(
                "device='cuda' needs an NVIDIA GPU with a working driver, and numba-cuda found "
                "none (numba.cuda.is_available() is False). To run the CUDA kernels on the CPU "
                "instead, slowly, start Python with NUMBA_ENABLE_CUDASIM=1."
            )
    return device


def is_device_array(x) -> bool:
    """True for a fast.cuda DeviceArray (no CUDA import needed to ask)."""
    return getattr(type(x), "is_device_array", False)


def device_of(x) -> str:
    return "cuda" if is_device_array(x) else "cpu"


def to_host(x):
    """A numpy array of x: copied back from the GPU when it is a DeviceArray, else x itself."""
    return x.copy_to_host() if is_device_array(x) else x


def cuda_ops(module: str):
    """The CUDA twin module `fast.cuda.<module>`, imported on first use."""
    return importlib.import_module(f"fast.cuda.{module}")


def empty(shape, dtype, device: str = "cpu"):
    """An uninitialised array on `device`."""
    if device == "cuda":
        from .cuda.array import empty as cuda_empty

        return cuda_empty(shape, dtype)
    return np.empty(shape, dtype=dtype)


def to_device(x, device: str, dtype=None):
    """x (numpy, nested lists or a DeviceArray) as an array on `device`."""
    if device == "cuda":
        from .cuda.array import to_device as cuda_to_device

        return cuda_to_device(x, dtype)
    return np.asarray(to_host(x), dtype=dtype)


def zeros(shape, dtype, device: str = "cpu"):
    """An array of zeros on `device`."""
    out = empty(shape, dtype, device)
    out.fill(0.0)
    return out


def concatenate(arrays, axis: int = 0):
    """np.concatenate, on the device the arrays are on (all on one device)."""
    if not any(is_device_array(a) for a in arrays):
        return np.concatenate(arrays, axis=axis)
    from .cuda.array import concatenate as cuda_concatenate

    return cuda_concatenate(arrays, axis)

"""Host arrays: the CPU's array helpers, by the names and signatures of `fast/cuda/array.py`'s.

`fast/device.py` hands these out for `device="cpu"`: allocating outputs, moving values onto the
device (here: making them numpy arrays) and checking float operands, one helper per job.
"""

from __future__ import annotations

import numpy as np

from ..validate import as_float_array


def empty(shape, dtype) -> np.ndarray:
    return np.empty(shape, dtype=dtype)


def zeros(shape, dtype) -> np.ndarray:
    return np.zeros(shape, dtype=dtype)


def to_device(a, dtype=None) -> np.ndarray:
    """a (numpy, nested lists, or an array of another device, copied back) as a numpy array."""
    if getattr(type(a), "is_device_array", False):
        a = a.copy_to_host()
    return np.asarray(a, dtype=dtype)


def concatenate(arrays, axis: int = 0) -> np.ndarray:
    return np.concatenate(arrays, axis=axis)


def ascontiguous(a: np.ndarray) -> np.ndarray:
    """a itself when C-contiguous, else a contiguous copy (which makes a 0-d array 1-d)."""
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


def floats(x, name: str, dtype=None, *, kept: bool = True, ints: bool = True) -> np.ndarray:
    """x as a float numpy array (see `fast.device.floats`). Host bools and ints are always made
    float64, whatever `ints` says (the GPU's rule for DeviceArrays: see fast/cuda/array.py)."""
    return as_float_array(x, name, dtype, kept=kept)

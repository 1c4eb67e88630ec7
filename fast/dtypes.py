"""The backend options `fast` adds to the reference API: `dtype=` (and, later, `device=`).

float32 is the default for training; float64 runs everywhere and is what conformance compares
against the reference's Python floats.
"""

from __future__ import annotations

import numpy as np

DTYPES = {"float32": np.float32, "float64": np.float64}
DEFAULT_DTYPE = "float32"


def resolve_dtype(dtype) -> np.dtype:
    """'float32' / 'float64' / np.float32 / np.float64 -> np.dtype, or a clear error."""
    if dtype is None:
        dtype = DEFAULT_DTYPE
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
        return np.dtype(DTYPES[dtype])
    try:
        d = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be 'float32' or 'float64', got {dtype!r}") from None
    if d not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {d}")
    return d


def dtype_name(dtype) -> str:
    return np.dtype(dtype).name

"""safetensors for numpy arrays: the reference's file layout, numpy's byte conversion.

The header and layout code is the reference's (`reference.checkpoint.encode_safetensors`,
`read_safetensors_header`); only turning tensors into bytes and back is done here, by numpy.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from reference.checkpoint import (
    CheckpointError,
    encode_safetensors,
    load_safetensors_metadata,
    read_safetensors_header,
)
from reference.fileio import atomic_write

_NP = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U8": "u1",
    "BOOL": "?",
}
_WRITE = {
    "float32": ("F32", "<f4"),
    "float64": ("F64", "<f8"),
    "F32": ("F32", "<f4"),
    "F64": ("F64", "<f8"),
}

__all__ = ["save_safetensors", "load_safetensors", "load_safetensors_metadata", "CheckpointError"]


def save_safetensors(
    tensors: dict[str, Any],
    path: str | os.PathLike,
    *,
    dtype: str = "float32",
    metadata: dict[str, str] | None = None,
) -> None:
    """Write `{name: array or nested list}` to a safetensors file atomically (the reference's
    `save_safetensors`, for numpy arrays)."""
    if dtype not in _WRITE:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    st_dtype, np_dtype = _WRITE[dtype]
    entries = []
    for name, value in tensors.items():
        a = np.asarray(value)
        if a.dtype == object:
            raise ValueError(f"tensor {name!r} is not rectangular")
        a = np.ascontiguousarray(a, dtype=np_dtype)
        entries.append((name, st_dtype, a.shape, a.tobytes()))
    atomic_write(path, encode_safetensors(entries, metadata))


def load_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a safetensors file into `{name: numpy array}` (bfloat16 widened to float32)."""
    with open(path, "rb") as f:
        data = f.read()
    header, start = read_safetensors_header(data, os.fspath(path))
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = data[start + begin : start + end]
        shape = tuple(info["shape"])
        if info["dtype"] == "BF16":
            halves = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            out[name] = halves.view(np.float32).reshape(shape).copy()
        else:
            out[name] = np.frombuffer(raw, dtype=_NP[info["dtype"]]).reshape(shape).copy()
    return out

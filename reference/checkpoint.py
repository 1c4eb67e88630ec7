"""The safetensors checkpoint format, written and read with `struct` and `json` alone.

A safetensors file is three parts, back to back:

    8 bytes   N, the header length, an unsigned little-endian integer
    N bytes   a JSON header: {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [b, e]},
              ..., "__metadata__": {"key": "text"}}; offsets count from the end of the header
    the rest  every tensor's raw little-endian bytes, row-major, at its offsets

That is the whole format, so the reference needs no package to use it, and files written here load
in the `safetensors` package, in PyTorch and in Hugging Face `transformers`.
"""

from __future__ import annotations

import json
import os
import struct
from typing import Any

from .fileio import atomic_write
from .nested import flatten, numel, shape_of, unflatten

# safetensors dtype -> (struct code, bytes per element). F16 and BF16 are read only.
DTYPES = {
    "F64": ("d", 8),
    "F32": ("f", 4),
    "F16": ("e", 2),
    "I64": ("q", 8),
    "I32": ("i", 4),
    "I16": ("h", 2),
    "I8": ("b", 1),
    "U8": ("B", 1),
    "BOOL": ("?", 1),
}
_WRITE_DTYPES = {"float64": "F64", "float32": "F32", "F64": "F64", "F32": "F32"}
MAX_HEADER = 100 * 1024 * 1024  # the limit the safetensors package applies too


class CheckpointError(ValueError):
    """A checkpoint file is truncated, corrupt or not a safetensors file."""


def _encode(values: list, dtype: str) -> bytes:
    code, _ = DTYPES[dtype]
    return struct.pack(f"<{len(values)}{code}", *values)


def encode_safetensors(
    entries: list[tuple[str, str, tuple[int, ...], bytes]], metadata: dict[str, str] | None = None
) -> bytes:
    """The bytes of a safetensors file from (name, dtype, shape, raw little-endian data) entries.

    Shared by every backend: each turns its own tensors into raw bytes, this lays out the file.
    Entries are stored in sorted name order, as the `safetensors` package does.
    """
    if metadata is not None and not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise TypeError("metadata must map str to str")
    header: dict[str, Any] = {}
    blobs = []
    offset = 0
    for name, dtype, shape, blob in sorted(entries, key=lambda e: e[0]):
        if not isinstance(name, str) or not name:
            raise TypeError(f"tensor names must be non-empty str, got {name!r}")
        if len(blob) != numel(tuple(shape)) * DTYPES[dtype][1]:
            raise ValueError(f"tensor {name!r}: {len(blob)} bytes do not fit shape {shape}")
        header[name] = {
            "dtype": dtype,
            "shape": list(shape),
            "data_offsets": [offset, offset + len(blob)],
        }
        blobs.append(blob)
        offset += len(blob)
    if metadata:
        header["__metadata__"] = dict(metadata)
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    head += b" " * (-len(head) % 8)  # pad so the data starts 8-byte aligned
    return struct.pack("<Q", len(head)) + head + b"".join(blobs)


def save_safetensors(
    tensors: dict[str, Any],
    path: str | os.PathLike,
    *,
    dtype: str = "float32",
    metadata: dict[str, str] | None = None,
) -> None:
    """Write `{name: nested list}` to a safetensors file atomically.

    `dtype` is "float32" (the ecosystem's default, what `transformers` expects) or "float64" (exact
    for the reference's Python floats).
    """
    if dtype not in _WRITE_DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    st_dtype = _WRITE_DTYPES[dtype]
    entries = []
    for name, value in tensors.items():
        shape = shape_of(value)
        flat = [float(v) for v in flatten(value)]
        if len(flat) != numel(shape):
            raise ValueError(f"tensor {name!r} is not rectangular (shape looks like {shape})")
        entries.append((name, st_dtype, shape, _encode(flat, st_dtype)))
    atomic_write(path, encode_safetensors(entries, metadata))


def read_safetensors_header(data: bytes, source: str = "checkpoint") -> tuple[dict, int]:
    """Parse and validate the header; returns (header, start of the data section)."""
    if len(data) < 8:
        raise CheckpointError(f"{source}: file is {len(data)} bytes, too short for a header")
    (n,) = struct.unpack("<Q", data[:8])
    if n > MAX_HEADER or 8 + n > len(data):
        raise CheckpointError(
            f"{source}: header length {n} does not fit in a file of {len(data)} bytes "
            "(truncated or not a safetensors file)"
        )
    try:
        header = json.loads(data[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{source}: header is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{source}: header must be a JSON object")
    body = len(data) - 8 - n
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
        except (TypeError, KeyError, ValueError):
            raise CheckpointError(f"{source}: tensor {name!r} has a malformed entry") from None
        if dtype not in DTYPES and dtype != "BF16":
            raise CheckpointError(f"{source}: tensor {name!r} has unsupported dtype {dtype!r}")
        size = 2 if dtype == "BF16" else DTYPES[dtype][1]
        if not (isinstance(shape, list) and all(isinstance(s, int) and s >= 0 for s in shape)):
            raise CheckpointError(f"{source}: tensor {name!r} has a malformed shape {shape!r}")
        if not (0 <= begin <= end <= body) or end - begin != numel(tuple(shape)) * size:
            raise CheckpointError(
                f"{source}: tensor {name!r} offsets [{begin}, {end}] do not match its shape "
                f"{shape} and dtype {dtype} within {body} data bytes (truncated or corrupt)"
            )
    return header, 8 + n


def load_safetensors(path: str | os.PathLike) -> dict[str, Any]:
    """Read a safetensors file into `{name: nested list}` (floats, or ints for integer dtypes)."""
    with open(path, "rb") as f:
        data = f.read()
    header, start = read_safetensors_header(data, os.fspath(path))
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = data[start + begin : start + end]
        if info["dtype"] == "BF16":
            # bfloat16 is the top half of a float32: widen each value with two zero bytes.
            halves = struct.unpack(f"<{len(raw) // 2}H", raw)
            flat = list(
                struct.unpack(
                    f"<{len(halves)}f", struct.pack(f"<{len(halves)}I", *(h << 16 for h in halves))
                )
            )
        else:
            code, size = DTYPES[info["dtype"]]
            flat = list(struct.unpack(f"<{len(raw) // size}{code}", raw))
        out[name] = unflatten(flat, tuple(info["shape"]))
    return out


def load_safetensors_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The `__metadata__` text map of a safetensors file ({} when it has none)."""
    with open(path, "rb") as f:
        data = f.read()
    header, _ = read_safetensors_header(data, os.fspath(path))
    return dict(header.get("__metadata__", {}))

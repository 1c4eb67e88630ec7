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
from .nested import flatten, numel, shape_of, unflatten, zeros

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
ITEM_SIZES = {dtype: size for dtype, (_, size) in DTYPES.items()} | {"BF16": 2}
ENTRY_FIELDS = {"dtype", "shape", "data_offsets"}
MAX_HEADER = 100 * 1024 * 1024  # the limit the safetensors package applies too
MAX_DIMS = 64  # numpy's limit
MAX_EMPTY_ROWS = 2**20  # an empty tensor's rows become that many empty lists here


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


def _show(value: Any) -> str:
    """A short repr for an error message (a corrupt header may hold megabytes in one field)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_size(value: Any) -> bool:
    """A JSON unsigned integer: an int, not a bool, >= 0 (what safetensors reads as usize)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**64


def _check_entry(source: str, name: str, info: Any, body: int) -> tuple[int, int]:
    """Check one tensor's header entry; returns its (begin, end) offsets."""
    where = f"{source}: tensor {name!r}"
    if not isinstance(info, dict):
        raise CheckpointError(f"{where}: entry must be a JSON object, got {_show(info)}")
    if set(info) != ENTRY_FIELDS:
        raise CheckpointError(
            f"{where}: entry must have exactly the fields {sorted(ENTRY_FIELDS)}, "
            f"got {_show(sorted(info))}"
        )
    dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if not isinstance(dtype, str) or dtype not in ITEM_SIZES:
        raise CheckpointError(
            f"{where}: field 'dtype' must be one of {sorted(ITEM_SIZES)}, got {_show(dtype)}"
        )
    if not (isinstance(shape, list) and len(shape) <= MAX_DIMS and all(map(_is_size, shape))):
        raise CheckpointError(
            f"{where}: field 'shape' must be a list of at most {MAX_DIMS} ints in [0, 2**64), "
            f"got {_show(shape)}"
        )
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_is_size, offsets))):
        raise CheckpointError(
            f"{where}: field 'data_offsets' must be a list of two ints in [0, 2**64), "
            f"got {_show(offsets)}"
        )
    begin, end = offsets
    if not begin <= end <= body:
        raise CheckpointError(
            f"{where}: field 'data_offsets' [{begin}, {end}] must satisfy begin <= end <= "
            f"{body}, the size of the data section (truncated or corrupt)"
        )
    size = ITEM_SIZES[dtype]
    nonzero = numel(tuple(s for s in shape if s))
    if nonzero * size >= 2**63:  # numpy's limit on an array, even an empty one
        raise CheckpointError(f"{where}: field 'shape' {_show(shape)} is too large for any array")
    if 0 in shape and numel(tuple(shape[: shape.index(0)])) > MAX_EMPTY_ROWS:
        raise CheckpointError(
            f"{where}: field 'shape' {_show(shape)} describes more than {MAX_EMPTY_ROWS} empty rows"
        )
    if end - begin != numel(tuple(shape)) * size:
        raise CheckpointError(
            f"{where}: field 'data_offsets' [{begin}, {end}] spans {end - begin} bytes, but "
            f"shape {_show(shape)} of dtype {dtype} needs {numel(tuple(shape)) * size}"
        )
    return begin, end


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is Python's extension, not JSON")


def _parse_header(raw: bytes, source: str) -> Any:
    """The header's JSON value, or a CheckpointError saying where the parser stopped."""
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError as e:
        problem = f"is not UTF-8 (byte {e.start})"
    except json.JSONDecodeError as e:
        problem = f"is not valid JSON (the parser stops at line {e.lineno}, column {e.colno})"
    except RecursionError:
        problem = "nests too deeply"
    except ValueError as e:  # NaN or Infinity, or an integer of more digits than Python reads
        problem = f"is not valid JSON ({e})"
    raise CheckpointError(f"{source}: header {problem}")


def read_safetensors_header(data: bytes, source: str = "checkpoint") -> tuple[dict, int]:
    """Parse and validate the header; returns (header, start of the data section).

    Every field is checked as the `safetensors` package checks it, and a little more strictly
    (non-empty names, exactly the three fields per tensor): each tensor's dtype, shape and
    offsets; that the tensors tile the data section exactly, in offset order, with no overlap,
    gap or trailing byte; and that `__metadata__` maps str to str. Any failure is a
    CheckpointError naming `source`, the tensor and the field.
    """
    if len(data) < 8:
        raise CheckpointError(f"{source}: file is {len(data)} bytes, too short for a header")
    (n,) = struct.unpack("<Q", data[:8])
    if n > MAX_HEADER or 8 + n > len(data):
        raise CheckpointError(
            f"{source}: header length {n} does not fit in a file of {len(data)} bytes "
            f"(at most {MAX_HEADER}; truncated or not a safetensors file)"
        )
    header = _parse_header(data[8 : 8 + n], source)
    if not isinstance(header, dict):
        raise CheckpointError(f"{source}: header must be a JSON object, got {_show(header)}")
    body = len(data) - 8 - n
    spans = []
    for name, info in header.items():
        if name == "__metadata__":
            if info is not None and not (
                isinstance(info, dict) and all(isinstance(v, str) for v in info.values())
            ):
                raise CheckpointError(
                    f"{source}: field '__metadata__' must map str to str, got {_show(info)}"
                )
            continue
        if not name:
            raise CheckpointError(f"{source}: a tensor has an empty name")
        spans.append((*_check_entry(source, name, info, body), name))
    # The tensors must tile the data section: sorted by offsets, each begins where the last ended.
    cursor = 0
    for begin, end, name in sorted(spans):
        if begin != cursor:
            problem = (
                "overlaps the tensor before it"
                if begin < cursor
                else f"leaves bytes [{cursor}, {begin}) in no tensor"
            )
            raise CheckpointError(
                f"{source}: tensor {name!r}: field 'data_offsets' [{begin}, {end}] {problem}"
            )
        cursor = end
    if cursor != body:
        raise CheckpointError(
            f"{source}: the tensors cover {cursor} of the {body} data bytes (trailing data)"
        )
    return header, 8 + n


def check_pretrained_files(directory: str) -> None:
    """Refuse a pretrained directory without `config.json` or `model.safetensors`: a
    FileNotFoundError naming the directory and the file, with a hint when the weights are there in
    a form this loader does not read (a pickled `pytorch_model.bin`, a sharded checkpoint)."""
    if not os.path.isfile(os.path.join(directory, "config.json")):
        raise FileNotFoundError(f"{directory!r} has no config.json")
    weights = os.path.join(directory, "model.safetensors")
    if not os.path.isfile(weights):
        hint = ""
        if os.path.isfile(os.path.join(directory, "pytorch_model.bin")):
            hint = " (pytorch_model.bin is a pickle, which this loader does not read)"
        elif os.path.isfile(weights + ".index.json"):
            hint = " (sharded checkpoints are not supported)"
        raise FileNotFoundError(f"{directory!r} has no model.safetensors{hint}")


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
        shape = tuple(info["shape"])
        out[name] = unflatten(flat, shape) if flat else zeros(shape)  # zeros: no element, any shape
    return out


def load_safetensors_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The `__metadata__` text map of a safetensors file ({} when it has none)."""
    with open(path, "rb") as f:
        data = f.read()
    header, _ = read_safetensors_header(data, os.fspath(path))
    return dict(header.get("__metadata__") or {})

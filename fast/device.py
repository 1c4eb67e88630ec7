"""Where a model's numbers live: `device="cpu"` (numpy arrays, the default) or `device="cuda"`,
and the one place that picks the kernels for them.

With `device="cuda"` parameters, gradients, optimizer state and activations are `DeviceArray`s in
GPU memory (`fast/cuda/array.py`) for the whole step; inputs may be numpy arrays or nested lists
(ids are checked on the host, then copied over), the loss comes back as a Python float, and any
array you want on the host you copy back explicitly with `.copy_to_host()`.

Dispatch. Each device is a folder, `fast/<device>/`, holding one module per concept with the same
launcher names and signatures (`fast/cpu/layers.py` and `fast/cuda/layers.py` both have
`layer_norm_rows`, ...) and an `array.py` with the same helpers (`empty`, `zeros`, `to_device`,
`concatenate`, `ascontiguous`, `floats`). A public function of `fast/<concept>.py` checks its
inputs once, then calls `kernels("<concept>", *arrays)`, which returns the module of the device
its arrays are on. A third device would be a third folder and one entry in `DEVICES`.

`fast` imports numba-cuda only when a DeviceArray is made: `device_of` looks at a class marker
and needs no import, so CPU-only use never pays for, or needs, CUDA (numba-cuda is the optional
`cuda` extra).

No GPU? Numba's CUDA simulator runs the same kernels on the CPU, slowly (tiny shapes only): set
NUMBA_ENABLE_CUDASIM=1 before Python starts. The test suite does that itself on machines without a
GPU (see conftest.py).
"""

from __future__ import annotations

import functools
import importlib

import numpy as np

DEVICES = ("cpu", "cuda")
CUDA_EXTRA = 'pip install "model-archaeology[cuda]"'


def _require_numba_cuda() -> None:
    """numba-cuda is importable, or an ImportError that names the extra to install. (numba still
    ships a deprecated CUDA target of its own; this project's kernels need numba-cuda's.)"""
    try:
        importlib.import_module("numba_cuda")
    except ImportError as e:
        raise ImportError(
            f"device='cuda' needs numba-cuda, which is not installed ({e}); install the GPU "
            f"extra: {CUDA_EXTRA}"
        ) from None


def resolve_device(device) -> str:
    """'cpu' or 'cuda' (None means 'cpu'), or a clear error; 'cuda' needs numba-cuda and a GPU
    (or the simulator)."""
    if device is None:
        return "cpu"
    if not isinstance(device, str):
        raise TypeError(f"device must be 'cpu' or 'cuda', got {type(device).__name__} {device!r}")
    if device not in DEVICES:
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if device == "cuda":
        _require_numba_cuda()
        from .cuda.launch import cuda_available

        if not cuda_available():
            raise RuntimeError(
                "device='cuda' needs an NVIDIA GPU with a working driver, and numba-cuda found "
                "none (numba.cuda.is_available() is False). To run the CUDA kernels on the CPU "
                "instead, slowly, start Python with NUMBA_ENABLE_CUDASIM=1."
            )
    return device


def is_device_array(x) -> bool:
    """True for an array of a device other than the CPU (a fast.cuda DeviceArray): its class
    carries the marker `is_device_array`, so asking needs no CUDA import."""
    return getattr(type(x), "is_device_array", False)


def device_of(*arrays) -> str:
    """The device the arrays are on: 'cuda' if any is a DeviceArray, else 'cpu' (numpy arrays,
    lists, numbers and None are host values). Whether they may be mixed is the callee's rule:
    `floats` refuses a host operand beside a DeviceArray, naming it."""
    for x in arrays:
        if is_device_array(x):
            return type(x).device
    return "cpu"


@functools.cache  # a dict lookup per call after the first (the models call it per operation)
def _backend(device: str, module: str):
    """The module `fast.<device>.<module>`, imported on first use."""
    if device == "cuda":
        _require_numba_cuda()
    return importlib.import_module(f"fast.{device}.{module}")


def kernels(concept: str, *arrays):
    """The launchers of `concept` for the device of `arrays`: `fast.cpu.<concept>` or
    `fast.cuda.<concept>` (imported on first use). Host arrays beside a DeviceArray are a
    TypeError here (the public functions check their operands earlier, by name)."""
    device = None
    for x in arrays:
        if x is None:
            continue
        d = type(x).device if is_device_array(x) else "cpu"
        if device is not None and d != device:
            raise TypeError(
                f"operands must all be on one device, got arrays on {device!r} and {d!r} "
                "(copy them over with fast.device.to_device)"
            )
        device = d
    return _backend(device or "cpu", concept)


def arrays_on(device: str):
    """The array helpers of `device` (`fast.<device>.array`): empty, zeros, to_device, ..."""
    return _backend(device, "array")


def floats(x, name: str, dtype=None, *, device: str | None = None, kept=True, ints=True):
    """x as a float array on `device` (default: x's own), float32/float64 kept, bools and ints
    made float64, cast to `dtype` when given; a TypeError naming `name` for non-numbers, or for a
    host operand where the other operands are on the GPU (no silent copies). `kept`: the caller
    keeps the array (in a cache), so a caller's memory is copied (see `fast/validate.py`).
    `ints=False`: int and bool DeviceArrays are refused rather than converted (what the layers
    and losses have always done on the GPU; numpy ints are converted on the CPU either way)."""
    return arrays_on(device or device_of(x)).floats(x, name, dtype, kept=kept, ints=ints)


def to_host(x):
    """A numpy array of x: copied back from the GPU when it is a DeviceArray, else x itself."""
    return x.copy_to_host() if is_device_array(x) else x


def empty(shape, dtype, device: str = "cpu"):
    """An uninitialised array on `device`."""
    return arrays_on(device).empty(shape, dtype)


def to_device(x, device: str, dtype=None):
    """x (numpy, nested lists or a DeviceArray) as an array on `device`."""
    return arrays_on(device).to_device(x, dtype)


def zeros(shape, dtype, device: str = "cpu"):
    """An array of zeros on `device`."""
    return arrays_on(device).zeros(shape, dtype)


def concatenate(arrays, axis: int = 0):
    """np.concatenate, on the device the arrays are on."""
    return arrays_on(device_of(*arrays)).concatenate(arrays, axis)


def unless_on_device(x, convert):
    """x itself when it is an array of a device (already checked there), else `convert(x)`: how
    a model turns host input (numpy arrays, nested lists) into an array of its own."""
    return x if is_device_array(x) else convert(x)


def host_copy(x):
    """A fresh numpy array of x: copied back from the GPU, or copied on the host."""
    return x.copy_to_host() if is_device_array(x) else x.copy()


def ascontiguous(x):
    """x itself when C-contiguous, else a contiguous copy, on x's device."""
    return arrays_on(device_of(x)).ascontiguous(x)


def row_sums(x):
    """The sums of a 2-d array's rows as a column (N, 1), on x's device: numpy's sum on the host,
    a product with a column of ones on the GPU (where the array type has no sum along an axis)."""
    if not is_device_array(x):
        return x.sum(axis=1, keepdims=True)
    ones = to_device(np.ones((x.shape[1], 1), dtype=x.dtype), device_of(x))
    return x @ ones

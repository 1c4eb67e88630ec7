"""Numba CPU kernels (`@njit(parallel=True, cache=True)`), one file per concept of `fast/`.

Kernels do no bounds checks: the public functions in `fast/` validate every shape, dtype and id
before calling them. Beside the kernels each file has the launchers `fast.device.kernels` hands
out for numpy arrays, by the names and signatures of the `fast/cuda/` twin (`array.py` holds the
array helpers).
"""

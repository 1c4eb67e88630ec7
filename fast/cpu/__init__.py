"""Numba CPU kernels (`@njit(parallel=True, cache=True)`), one file per concept of `fast/`.

Kernels do no bounds checks: the public functions in `fast/` validate every shape, dtype and id
before calling them.
"""

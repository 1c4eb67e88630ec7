"""Compile every CUDA kernel of `fast.cuda` to PTX for a real GPU, with no GPU present.

    python -m fast.cuda.ptx            # every kernel, float32 and float64, for sm_90 (H100/H200)

The simulator runs the kernels' Python; this runs numba-cuda's real compiler (NVVM, from the
`numba-cuda[cu13]` extra) on them, so typing errors and unsupported operations that the simulator
never sees fail here. Each module lists its kernels with explicit signatures in `PTX_KERNELS`.
Must run without NUMBA_ENABLE_CUDASIM (the test suite runs it in a subprocess).
"""

from __future__ import annotations

import importlib
import sys
import time
from types import SimpleNamespace

MODULES = ("array", "gemm", "layers", "attention", "losses", "optim")
COMPUTE_CAPABILITY = (9, 0)


def _compile_without_a_driver():
    """numba-cuda asks the driver for the current device when a kernel calls another jitted
    function (a device function, or one of the CPU backend's @njit helpers); with no driver that
    fails even though PTX needs none. Answer for the target we compile for."""
    from numba.cuda import dispatcher

    dispatcher.get_current_device = lambda: SimpleNamespace(compute_capability=COMPUTE_CAPABILITY)


def kernels():
    """(module, kernel, signature) for every kernel of every module."""
    out = []
    for name in MODULES:
        module = importlib.import_module(f"fast.cuda.{name}")
        out += [(name, kernel, sig) for kernel, sig in module.PTX_KERNELS]
    return out


def compile_all(verbose: bool = True) -> int:
    """Compile every kernel; return how many compiled (raises on the first failure)."""
    from numba import config, cuda, types

    if config.ENABLE_CUDASIM:
        raise RuntimeError("PTX compilation needs the real CUDA target: unset NUMBA_ENABLE_CUDASIM")
    _compile_without_a_driver()
    n = 0
    for module, kernel, sig in kernels():
        if isinstance(sig, tuple):  # argument types alone: a kernel returns nothing
            sig = types.void(*sig)
        t = time.perf_counter()
        ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=COMPUTE_CAPABILITY)
        if ".entry" not in ptx:
            raise RuntimeError(f"{module}.{kernel.py_func.__name__}{sig}: no kernel entry in PTX")
        n += 1
        if verbose:
            dt = time.perf_counter() - t
            name = f"{module}.{kernel.py_func.__name__}"
            print(f"{name:45s} {sig.args[0]!s:35s} {dt:.2f} s", flush=True)
    return n


if __name__ == "__main__":
    t0 = time.perf_counter()
    count = compile_all()
    print(
        f"{count} kernels compiled to PTX for sm_{COMPUTE_CAPABILITY[0]}{COMPUTE_CAPABILITY[1]} "
        f"in {time.perf_counter() - t0:.1f} s"
    )
    sys.exit(0)

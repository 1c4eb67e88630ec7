"""Every CUDA kernel compiles for a real GPU (sm_90) with numba-cuda's NVVM, no GPU needed.

The simulator runs the kernels as Python, so it cannot catch what only the GPU compiler rejects
(a float64 that should be float32, an unsupported call, a typing error in a branch the tests never
took). This runs `python -m fast.cuda.ptx` in a subprocess without NUMBA_ENABLE_CUDASIM.
"""

import os
import subprocess
import sys

import fast.cuda.ptx


def test_every_kernel_compiles_to_ptx_for_sm90():
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    run = subprocess.run(
        [sys.executable, "-m", "fast.cuda.ptx"], env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    expected = len(fast.cuda.ptx.kernels())
    assert f"{expected} kernels compiled to PTX for sm_90" in run.stdout


def _is_kernel(v) -> bool:
    """A @cuda.jit kernel (not a device function), on the GPU target or in the simulator."""
    if type(v).__name__ not in ("CUDADispatcher", "FakeCUDAKernel"):
        return False
    return not (getattr(v, "_device", False) or getattr(v, "targetoptions", {}).get("device"))


def test_every_kernel_module_lists_its_kernels():
    """A kernel missing from PTX_KERNELS would escape the check above: each module's list must
    name every kernel it defines (at module level or in a module-level dict, like the matmul's
    one kernel per dtype)."""
    import importlib

    for name in fast.cuda.ptx.MODULES:
        module = importlib.import_module(f"fast.cuda.{name}")
        values = list(vars(module).values())
        values += [x for v in values if isinstance(v, dict) for x in v.values()]
        defined = {  # kernels this module defines (not ones it imports from another)
            id(v): v.py_func.__name__
            for v in values
            if _is_kernel(v) and v.py_func.__module__ == module.__name__
        }
        listed = {id(k) for k, _ in module.PTX_KERNELS}
        missing = sorted(n for i, n in defined.items() if i not in listed)
        assert defined, f"fast.cuda.{name} defines no kernel?"
        assert not missing, f"fast.cuda.{name}: {missing} not in PTX_KERNELS"

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


def test_every_kernel_module_lists_its_kernels():
    """A kernel missing from PTX_KERNELS would escape the check above: each module's list must
    name every @cuda.jit kernel it defines."""
    import importlib

    for name in fast.cuda.ptx.MODULES:
        module = importlib.import_module(f"fast.cuda.{name}")
        defined = {
            v.py_func.__name__
            for v in vars(module).values()
            if hasattr(v, "py_func")
            and not getattr(v, "_device", False)
            and type(v).__name__ in ("CUDADispatcher", "FakeCUDAKernel")
        }
        listed = {k.py_func.__name__ for k, _ in module.PTX_KERNELS}
        assert defined <= listed, f"fast.cuda.{name}: {sorted(defined - listed)} not in PTX_KERNELS"

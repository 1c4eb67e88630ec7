"""Numba's threading setup, run when `fast` is first imported, before Numba starts a thread:
see the "fork" paragraph of `fast/__init__.py`'s docstring."""

import os
import sys


def _threading_setup() -> None:
    """The fork-safe threading layer, unless the user chose one (see the module docstring)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")  # before Numba starts its thread pool
    # TBB's library, loaded once by path so that Numba's later load by name finds it: also when
    # the user asked for "tbb" themselves (a venv's loader would not look in its lib/ folder).
    lib = os.path.join(sys.prefix, "lib", "libtbb.so.12")
    if sys.platform.startswith("linux") and os.path.isfile(lib):
        import ctypes

        try:
            ctypes.CDLL(lib, mode=ctypes.RTLD_GLOBAL)
        except OSError:
            pass  # unusable: Numba falls back to its workqueue layer
    if "NUMBA_THREADING_LAYER" in os.environ:
        return  # the user's choice
    os.environ["NUMBA_THREADING_LAYER"] = "forksafe"  # read when numba is first imported
    config = sys.modules.get("numba.core.config")
    if config is not None and config.THREADING_LAYER == "default":
        config.THREADING_LAYER = "forksafe"  # numba came first; its threads start later


_threading_setup()

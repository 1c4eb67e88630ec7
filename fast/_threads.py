"""Numba's threading setup, run when `fast` is first imported, before Numba starts a thread:
see the "fork" paragraph of `fast/__init__.py`'s docstring."""

import os
import sys


def _threading_setup() -> None:
    """The fork-safe threading layer, unless the user chose one (see the module docstring)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")  # before Numba starts its thread pool
    # OpenBLAS's threads spin for 2^28 cycles (~0.1 s) after each product by default, holding the
    # cores the next Numba kernel needs: on two cores that halved the speed of every parallel
    # kernel launched after a matmul. 2^14 cycles (~6 us) still covers back-to-back products,
    # then they sleep (the best GPT step of 2^8 ... 2^18, docs/benchmarks.md). Read when numpy
    # loads OpenBLAS, so it takes effect when fast is imported before numpy (as the scripts do).
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "14")
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


def _share_of_cores() -> None:
    """Under an MPI launcher that started several ranks on this machine (MPICH's
    MPI_LOCALNRANKS, Open MPI's OMPI_COMM_WORLD_LOCAL_SIZE), each rank gets its share of the
    cores for Numba's and BLAS's threads, unless the user set a count: two ranks on two cores
    run one thread each instead of four threads fighting over two cores. (BLAS reads its
    variable when numpy is first imported: import fast first, as the scripts do.)"""
    local = 0
    for name in ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE"):
        value = os.environ.get(name, "")
        if value.isdigit():
            local = int(value)
            break
    if local <= 1:
        return
    share = str(max(1, (os.cpu_count() or 1) // local))
    for name in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, share)


_share_of_cores()
_threading_setup()

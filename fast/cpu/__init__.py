"""Numba CPU kernels (`@parallel_kernel`, below), one file per concept of `fast/`.

Kernels do no bounds checks: the public functions in `fast/` validate every shape, dtype and id
before calling them. Beside the kernels each file has the launchers `fast.device.kernels` hands
out for numpy arrays, by the names and signatures of the `fast/cuda/` twin (`array.py` holds the
array helpers).
"""

import functools
import types

import numpy as np
from numba import njit

# Break-evens measured on two cores with a BLAS call between launches (the setting of a training
# step; OpenBLAS's threads asleep, fast/_threads.py), in elements of the largest array: a parallel
# launch costs 10-20 us there, so the serial loop wins below roughly that much work.
PER_ELEMENT_CALL = 8192  # a libm call (exp, tanh) or a Philox draw per element
PER_ROW_REDUCTION = 16384  # layer / RMS norm, rotary rows: serial sums along each row
STREAMING = 32768  # a few vectorized multiply-adds per element (Adam, GELU's backward)

KERNELS = []  # every parallel_kernel, for benchmarks that try other thresholds


def parallel_kernel(serial_below: int):
    """`@njit(parallel=True, cache=True)`, plus the same loop compiled without threads for small
    work: a call whose largest array argument has fewer than `serial_below` elements runs the
    serial build. Waking the thread pool costs 10-20 microseconds a call in a training step, more
    than a small loop gains from a second core (each threshold is a measured break-even).

    Both builds run the same source, and every kernel here gives each output element to exactly
    one loop iteration, so the two return the same numbers. `.parallel` and `.serial` are the
    two dispatchers (the conformance of each is tested)."""

    def wrap(fn):
        parallel = njit(cache=True, parallel=True)(fn)
        twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__)
        twin.__qualname__ = fn.__qualname__ + "_serial"  # its own on-disk cache entries
        # numpy's error model (x / 0 gives inf or nan, as numpy does), as the parallel build
        # compiles its loops: Python's model tests every division for zero, which kept LLVM
        # from vectorizing the serial Adam loop (83 -> 17 us over 13,002 parameters)
        serial = njit(cache=True, error_model="numpy")(twin)

        @functools.wraps(fn)
        def launch(*args):
            work = 0
            for a in args:
                if isinstance(a, np.ndarray) and a.size > work:
                    work = a.size
            return (serial if work < launch.serial_below else parallel)(*args)

        launch.parallel, launch.serial, launch.serial_below = parallel, serial, serial_below
        KERNELS.append(launch)
        return launch

    return wrap

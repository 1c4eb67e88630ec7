"""numba-cuda GPU kernels, one file per concept, beside the CPU kernels of `fast/cpu/`.

Imported only when something asks for `device="cuda"` (see `fast/device.py`); needs numba-cuda
(the `cuda` extra). The public functions stay in `fast/<concept>.py`, one definition for both
devices (their checks, caches and errors); `fast.device.kernels("<concept>", ...)` hands them
this folder's module on DeviceArrays and `fast/cpu/`'s twin otherwise, with the same launcher
names and signatures: `layers.py` serves `fast/layers.py`, `attention.py` serves
`fast/attention.py`, and so on; `array.py` is the view type and the array helpers, `gemm.py` the
matmul kernel and its launcher on views.
"""

from .launch import warm_up_shared_helpers

warm_up_shared_helpers()

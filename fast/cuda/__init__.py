"""numba-cuda GPU kernels, one file per concept, beside the CPU kernels of `fast/cpu/`.

Imported only when something asks for `device="cuda"` (see `fast/device.py`). The public
functions stay in `fast/<concept>.py`, one definition for both devices (their checks, caches and
errors); on DeviceArrays they launch the kernels here instead of the CPU ones: `layers.py` serves
`fast/layers.py`, `attention.py` serves `fast/attention.py`, and so on.
"""

from .launch import warm_up_shared_helpers

warm_up_shared_helpers()

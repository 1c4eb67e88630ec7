"""numba-cuda GPU kernels and the CUDA twins of `fast`'s functions, one file per concept.

Imported only when something asks for `device="cuda"` (see `fast/device.py`). Each module here
mirrors a module of `fast/`: `layers.py` twins `fast/layers.py`, `attention.py` twins
`fast/attention.py`, and so on, with the same function names and semantics on `DeviceArray`s.
"""

from .launch import warm_up_shared_helpers

warm_up_shared_helpers()

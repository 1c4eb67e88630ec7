"""numba-cuda GPU kernels, one file per concept of `fast/` (arrives with the CUDA backend)."""

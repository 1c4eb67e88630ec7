"""The fast backend: the reference's public API, backed by Numba (CPU) and numba-cuda (GPU).

Not built yet: the numerical API arrives with the fast-CPU-backend issue. Until then this package
exports nothing, so nothing can claim to work that does not.
"""

__all__: list[str] = []

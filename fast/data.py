"""Offline data sets as numpy arrays: the reference's readers (`reference/data.py`), converted.

Same files, same values (float64 pixels in [0, 1], int64 labels), same shuffles.
"""

from __future__ import annotations

import numpy as np

from reference import data as _ref
from reference.data import bundled_file, load_text_corpus

from .rng import permutation

__all__ = [
    "read_idx",
    "load_mnist_idx",
    "load_digits",
    "load_mnist_sample",
    "load_text_corpus",
    "train_test_split",
    "bundled_file",
]


def read_idx(path):
    """An IDX file: (shape, flat values as a numpy array)."""
    shape, values = _ref.read_idx(path)
    return shape, np.asarray(values)


def _arrays(xy):
    x, y = xy
    return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.int64)


def load_mnist_idx(images_path, labels_path):
    """Full MNIST from its IDX files: (images (N, 784) float64 in [0, 1], labels (N,) int64)."""
    return _arrays(_ref.load_mnist_idx(images_path, labels_path))


def load_digits(path=None):
    """The 8x8 digits: (x (1797, 64) float64 in [0, 1], y (1797,) int64)."""
    return _arrays(_ref.load_digits(path))


def load_mnist_sample(path=None):
    """5,000 28x28 MNIST digits: (x (5000, 784) float64 in [0, 1], y (5000,) int64)."""
    return _arrays(_ref.load_mnist_sample(path))


def train_test_split(x, y, test_fraction: float = 0.2, seed: int = 0):
    """The reference's shuffled split (same permutation), on arrays."""
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    x, y = np.asarray(x), np.asarray(y)
    order = permutation(seed, 0, len(x))
    n_test = max(1, round(len(x) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]

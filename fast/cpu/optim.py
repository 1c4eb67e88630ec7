"""Optimizer update kernels over one flat parameter buffer (all of a group's tensors, packed).

One parallel loop per step for the whole model instead of one small call per tensor; every element
is independent, so the result does not depend on the thread count. The arithmetic is the
reference's (`reference/optim.py`), term for term, in float64 scalars. The launchers at the end
are what `fast/optim.py` calls on numpy buffers, by the names and signatures of
`fast/cuda/optim.py`'s.
"""

import math

import numpy as np
from numba import prange

from . import STREAMING, parallel_kernel


@parallel_kernel(STREAMING)
def sgd_kernel(w, g, buf, lr, momentum, weight_decay, nesterov, first):
    """SGD with optional momentum (buf), Nesterov and L2 weight decay, in place."""
    for i in prange(w.size):
        d = g[i] + weight_decay * w[i] if weight_decay != 0.0 else g[i] + 0.0
        if momentum != 0.0:
            if first:
                v = d
            else:
                v = momentum * buf[i] + d
            buf[i] = v
            if nesterov:
                d = d + momentum * v
            else:
                d = v
        w[i] = w[i] - lr * d


@parallel_kernel(STREAMING)
def adam_kernel(w, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, step_size, sqrt_bc2):
    """Adam / AdamW in PyTorch's arrangement: w -= step_size * m / (sqrt(v) / sqrt_bc2 + eps)."""
    for i in prange(w.size):
        gi = g[i] + 0.0
        wi = w[i] + 0.0
        if weight_decay != 0.0:
            if decoupled:
                wi = wi * (1.0 - lr * weight_decay)
            else:
                gi = gi + weight_decay * wi
        mi = beta1 * m[i] + (1.0 - beta1) * gi
        vi = beta2 * v[i] + (1.0 - beta2) * gi * gi
        m[i] = mi
        v[i] = vi
        w[i] = wi - step_size * mi / (math.sqrt(vi) / sqrt_bc2 + eps)


# -- the launchers (fast/cuda/optim.py's names and signatures) ---------------------------------
def sgd_update(w, g, buf, lr, momentum, weight_decay, nesterov, first) -> None:
    """One SGD step over a flat group, in place (see `sgd_kernel`)."""
    sgd_kernel(w, g, buf, lr, momentum, weight_decay, nesterov, first)


def adam_update(
    w, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, step_size, sqrt_bc2
) -> None:
    """One Adam/AdamW step over a flat group, in place (see `adam_kernel`)."""
    adam_kernel(w, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, step_size, sqrt_bc2)


def grad_norm_sq(buffers) -> float:
    """sum(x_i^2) over every element of a list of 1-D arrays, each dot product in float64,
    added in list order."""
    return sum(float(np.dot(x.astype(np.float64), x.astype(np.float64))) for x in buffers)

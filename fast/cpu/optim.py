"""Optimizer update kernels over one flat parameter buffer (all of a group's tensors, packed).

One parallel loop per step for the whole model instead of one small call per tensor; every element
is independent, so the result does not depend on the thread count. The arithmetic is the
reference's (`reference/optim.py`), term for term, in float64 scalars.
"""

import math

from numba import njit, prange


@njit(cache=True, parallel=True)
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


@njit(cache=True, parallel=True)
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

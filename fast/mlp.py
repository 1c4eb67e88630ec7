"""The feed-forward network on numpy arrays: the reference's MLP, with BLAS matmuls.

Same equations as `reference/mlp.py` (read that file for the chain rule), batched:

    net = y_prev @ W^T + b          BLAS                         (B, out)
    y   = f(net)                    one fused Numba loop         (B, out)
    dW += delta^T @ y_prev          BLAS, accumulated in place   (out, in)
    dE/dy_prev = delta @ W          BLAS                         (B, in)
    delta_prev = dE/dy_prev * f'(net_prev)   one fused loop

The initial weights are the reference's for the same seed (drawn from the shared generator), so
`fast.MLP(sizes, seed=s)` and `reference.MLP(sizes, seed=s)` start from the same network.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from reference.mlp import check_mlp_config, init_layer

from .activations import activation_kind
from .cpu.elementwise import IDENTITY
from .device import (
    device_of,
    kernels,
    resolve_device,
    row_sums,
    to_device,
    to_host,
    unless_on_device,
)
from .dtypes import dtype_name, resolve_dtype
from .losses import mse_loss, softmax_cross_entropy
from .module import Module, ModuleList, Parameter
from .validate import as_float_array, as_index_array, check_finite, owns_inputs, private


class Layer(Module):
    """One fully connected layer: `weight` (out x in), `bias` (out)."""

    def __init__(self, n_in: int, n_out: int, seed: int, stream: int, dtype):
        super().__init__()
        weight, bias = init_layer(n_in, n_out, seed, stream)
        self.weight = Parameter(weight, dtype)
        self.bias = Parameter(bias, dtype)


def _apply(kind: int, net: np.ndarray) -> np.ndarray:
    return kernels("layers", net).elementwise(kind, net)


class MLP(Module):
    """A feed-forward network; see `reference.MLP`. `dtype` is "float32" (default) or "float64"."""

    def __init__(
        self,
        sizes,
        activation: str = "sigmoid",
        output: str = "softmax",
        seed: int = 0,
        dtype="float32",
        device="cpu",
    ):
        super().__init__()
        check_mlp_config(sizes, activation, output)
        device = resolve_device(device)
        self.dtype = resolve_dtype(dtype)
        self.sizes = list(sizes)
        self.activation_name = activation
        self.output = output
        self.seed = seed
        self._hidden_kind = activation_kind(activation)
        self._output_kind = IDENTITY if output == "softmax" else activation_kind(output)
        self.layers = ModuleList(
            [Layer(sizes[i], sizes[i + 1], seed, i, self.dtype) for i in range(len(sizes) - 1)]
        )
        self.nets: list[np.ndarray] = []
        self.ys: list[np.ndarray] = []
        self.loss_grad: np.ndarray | None = None
        self.to(device)

    def config_dict(self) -> dict[str, Any]:
        return {
            "model_type": "mlp",
            "sizes": self.sizes,
            "activation": self.activation_name,
            "output": self.output,
        }

    @classmethod
    def from_config_dict(cls, config: dict[str, Any], dtype="float32", device="cpu") -> MLP:
        if config.get("model_type") != "mlp":
            raise ValueError(f"config is not an MLP's (model_type={config.get('model_type')!r})")
        return cls(
            config["sizes"],
            activation=config["activation"],
            output=config["output"],
            dtype=dtype,
            device=device,
        )

    def _kind(self, l: int) -> int:
        return self._hidden_kind if l < len(self.layers) - 1 else self._output_kind

    def _check_inputs(self, x) -> np.ndarray:
        a = as_float_array(x, "x")
        width = self.sizes[0]
        if a.ndim != 2 or a.shape[0] == 0:
            raise ValueError(
                f"x must be a non-empty batch of rows (B, {width}), got shape {a.shape}"
            )
        if a.shape[1] != width:
            raise ValueError(
                f"x[0] must have {width} inputs (the network's input width), got {a.shape[1]}"
            )
        a = np.ascontiguousarray(a, dtype=self.dtype)
        check_finite(a, "x")
        if self.device == "cuda":
            return to_device(a, "cuda")  # a new GPU array
        return private(a, x)  # the backward reads it: never the caller's buffer

    @owns_inputs
    def forward(self, x, targets=None):
        """Forward pass on a batch x (B, sizes[0]): returns (outputs (B, sizes[-1]), loss)."""
        y = self._check_inputs(x)
        self.ys = [y]
        self.nets = []
        for l, layer in enumerate(self.layers):
            net = y @ layer.weight.data.T  # (B, out), BLAS
            net += layer.bias.data
            self.nets.append(net)
            y = net if self._kind(l) == IDENTITY else _apply(self._kind(l), net)
            self.ys.append(y)
        logits = self.ys[-1]
        # the softmax launcher itself: logits are the network's own, already checked
        outputs = (
            kernels("losses", logits).softmax_rows(logits, log=False)
            if self.output == "softmax"
            else logits
        )
        self.outputs = outputs
        if targets is None:
            self.loss_grad = None
            return outputs, None
        loss, self.loss_grad = self._loss(logits, targets)
        return outputs, loss

    def _loss(self, logits, targets):
        B, n_out = logits.shape
        if len(targets) != B:
            raise ValueError(
                f"targets must have {B} entries (one per input row), got {len(targets)}"
            )
        if self.output == "softmax":
            return softmax_cross_entropy(logits, as_index_array(targets, "targets"))
        t = np.asarray(targets)
        if t.ndim == 1:  # class labels -> one-hot target vectors
            labels = as_index_array(t, "targets")
            bad = (labels < 0) | (labels >= n_out)
            if bad.any():
                i = int(np.argmax(bad))
                raise ValueError(
                    f"targets[{i}] = {int(labels[i])} out of range for {n_out} outputs"
                )
            t = np.zeros((B, n_out), dtype=self.dtype)
            t[np.arange(B), labels] = 1.0
        loss, dy = mse_loss(logits, t)
        return loss, self._times_derivative(self._output_kind, dy, self.nets[-1])

    @staticmethod
    def _times_derivative(kind: int, dy: np.ndarray, net: np.ndarray) -> np.ndarray:
        """dy * f'(net), fused."""
        return kernels("layers", net).times_derivative(kind, dy, net)

    @owns_inputs
    def backward(self, grad_output=None) -> np.ndarray:
        """Backpropagate and accumulate into every `grad`; return dE/dx (B, in)."""
        if not self.nets:
            raise RuntimeError("call forward before backward")
        if grad_output is None:
            if self.loss_grad is None:
                raise RuntimeError(
                    "forward was called without targets: give backward a "
                    "grad_output, or pass targets to forward"
                )
            delta = self.loss_grad
        else:
            delta = self._output_delta(grad_output)
        for l in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[l]
            layer.weight.grad += delta.T @ self.ys[l]  # dE/dW = delta^T y_prev, (out, in)
            layer.bias.grad += delta.sum(axis=0)
            dy_prev = delta @ layer.weight.data  # (B, in)
            if l == 0:
                return dy_prev
            delta = self._times_derivative(self._kind(l - 1), dy_prev, self.nets[l - 1])
        raise AssertionError("unreachable")  # pragma: no cover

    def _output_delta(self, grad_output) -> np.ndarray:
        g = grad_output if self.device == "cuda" else to_host(grad_output)
        g = unless_on_device(g, lambda a: as_float_array(a, "grad_output"))
        g = g if g.dtype == self.dtype else g.astype(self.dtype)
        if g.shape != self.outputs.shape:
            raise ValueError(
                f"grad_output must have the outputs' shape {self.outputs.shape}, got {g.shape}"
            )
        if self.output == "softmax":
            p = self.outputs  # softmax Jacobian: p * (g - sum(g p))
            g = to_device(g, device_of(p))
            return p * (g - row_sums(g * p))
        return self._times_derivative(self._output_kind, g, self.nets[-1])

    def predict(self, x) -> np.ndarray:
        """The index of the largest output of each row."""
        outputs, _ = self.forward(x)
        return np.argmax(to_host(outputs), axis=1)

    def __repr__(self) -> str:
        return (
            f"MLP({self.sizes}, activation={self.activation_name!r}, "
            f"output={self.output!r}, dtype={dtype_name(self.dtype)!r})"
        )

"""The feed-forward network (multi-layer perceptron), trained by explicit backpropagation.

Layers of neurons, each fully connected to the layer before. For layer l with weights W (out x in)
and biases b, on a batch of inputs y_prev (B x in):

    net = y_prev W^T + b        the weighted sums            (B, out)
    y   = f(net)                the activations               (B, out)

Backpropagation applies the chain rule layer by layer, from the loss back to the input:

    dE/dw_ji = dE/dy_j * dy_j/dnet_j * dnet_j/dw_ji
             = dE/dy_j * f'(net_j)   * y_i
             = delta_j               * y_i

`delta` (dE/dnet) is the error signal of a layer. It passes to the layer below through the same
weights that carried the signal forward: dE/dy_prev_i = sum_j w_ji delta_j.

The output layer is either `"softmax"` (probabilities, trained with softmax cross-entropy against
class labels) or any activation (trained with the mean squared error against target vectors; class
labels are turned into one-hot vectors, as in the seed's digit example).

    >>> MLP([784, 16, 16, 10]).num_parameters()   # the textbook digit network
    13002
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .activations import ACTIVATIONS, get_activation
from .losses import mse_loss, softmax, softmax_cross_entropy
from .module import Module, ModuleList, Parameter
from .rng import uniforms

OUTPUTS = ("softmax", *ACTIVATIONS)


def init_layer(n_in: int, n_out: int, seed: int, stream: int):
    """Initial (weight rows, bias) of a layer: PyTorch's default, uniform in
    [-1/sqrt(n_in), 1/sqrt(n_in)], drawn from the shared generator so every backend starts from
    the same network for the same seed."""
    bound = 1.0 / math.sqrt(n_in)
    u = uniforms(seed, stream, n_out * n_in + n_out)
    w = [(2.0 * x - 1.0) * bound for x in u]
    return [w[j * n_in : (j + 1) * n_in] for j in range(n_out)], w[n_out * n_in :]


def check_mlp_config(sizes: Any, activation: Any, output: Any) -> None:
    """Validate MLP(sizes, activation, output) with errors that name the argument."""
    if not isinstance(sizes, (list, tuple)) or len(sizes) < 2:
        raise ValueError(f"sizes must list at least 2 layer widths, got {sizes!r}")
    for i, s in enumerate(sizes):
        if isinstance(s, bool) or not isinstance(s, int) or s < 1:
            raise ValueError(f"sizes[{i}] must be a positive int, got {s!r}")
    get_activation(activation)
    if output not in OUTPUTS:
        raise ValueError(f"unknown output {output!r}; expected one of {sorted(OUTPUTS)}")


class Layer(Module):
    """One fully connected layer: `weight` (out x in) and `bias` (out), PyTorch's Linear layout."""

    def __init__(self, n_in: int, n_out: int, seed: int, stream: int):
        super().__init__()
        weight, bias = init_layer(n_in, n_out, seed, stream)
        self.weight = Parameter(weight)
        self.bias = Parameter(bias)


class MLP(Module):
    """A feed-forward network with `sizes[0]` inputs, hidden layers, and `sizes[-1]` outputs.

    `model(x, targets)` runs forward and returns (outputs, loss); `model.backward()` then fills
    every parameter's `grad` by backpropagation. `activation` is the hidden layers' activation;
    `output` is "softmax" or the output layer's activation (then the loss is MSE).
    """

    def __init__(
        self,
        sizes: Sequence[int],
        activation: str = "sigmoid",
        output: str = "softmax",
        seed: int = 0,
    ):
        super().__init__()
        check_mlp_config(sizes, activation, output)
        self.activation, self.activation_derivative = get_activation(activation)
        self.sizes = list(sizes)
        self.activation_name = activation
        self.output = output
        self.seed = seed
        self.layers = ModuleList(
            [Layer(sizes[i], sizes[i + 1], seed, stream=i) for i in range(len(sizes) - 1)]
        )
        self.nets: list[list[list[float]]] = []  # per layer, the weighted sums (B, out)
        self.ys: list[list[list[float]]] = []  # the input, then per layer the activations
        self.loss_grad: list[list[float]] | None = None  # dE/dnet of the output layer

    def config_dict(self) -> dict[str, Any]:
        return {
            "model_type": "mlp",
            "sizes": self.sizes,
            "activation": self.activation_name,
            "output": self.output,
        }

    @classmethod
    def from_config_dict(cls, config: dict[str, Any]) -> MLP:
        if config.get("model_type") != "mlp":
            raise ValueError(f"config is not an MLP's (model_type={config.get('model_type')!r})")
        return cls(config["sizes"], activation=config["activation"], output=config["output"])

    def _layer_activation(self, l: int):
        """(f, f') of layer l: the hidden activation, or the output layer's."""
        if l < len(self.layers) - 1:
            return self.activation, self.activation_derivative
        if self.output == "softmax":
            return ACTIVATIONS["identity"]  # logits; softmax is applied with the loss
        return ACTIVATIONS[self.output]

    def forward(self, x: Sequence[Sequence[float]], targets: Sequence[Any] | None = None):
        """Forward pass on a batch: x is (B, sizes[0]). Returns (outputs (B, sizes[-1]), loss).

        `targets` are class labels (B ints) or, for an MSE output, target vectors (B, sizes[-1]);
        without targets the loss is None.
        """
        _check_inputs(x, self.sizes[0])
        self.ys = [[list(map(float, row)) for row in x]]
        self.nets = []
        for l, layer in enumerate(self.layers):
            f, _ = self._layer_activation(l)
            W, b = layer.weight.data, layer.bias.data
            net = [
                [sum(w * yi for w, yi in zip(W[j], y_prev)) + b[j] for j in range(len(b))]
                for y_prev in self.ys[-1]
            ]  # (B, out)
            self.nets.append(net)
            self.ys.append([[f(v) for v in row] for row in net])
        logits = self.ys[-1]
        outputs = [softmax(row) for row in logits] if self.output == "softmax" else logits
        self.outputs = outputs
        if targets is None:
            self.loss_grad = None
            return outputs, None
        loss, self.loss_grad = self._loss(logits, targets)
        return outputs, loss

    def _loss(self, logits, targets):
        """The loss and dE/dnet of the output layer."""
        n_out = self.sizes[-1]
        if len(targets) != len(logits):
            raise ValueError(
                f"targets must have {len(logits)} entries (one per input row), got {len(targets)}"
            )
        if self.output == "softmax":
            loss, dlogits = softmax_cross_entropy(logits, list(targets))
            return loss, dlogits  # the output "activation" is the identity: delta = dE/dlogits
        _, df = ACTIVATIONS[self.output]
        vectors = [
            _one_hot(t, n_out, i) if not isinstance(t, (list, tuple)) else list(t)
            for i, t in enumerate(targets)
        ]
        loss, dy = mse_loss(logits, vectors)
        # delta = dE/dy * dy/dnet: the output layer's own activation derivative
        return loss, [[g * df(v) for g, v in zip(gr, nr)] for gr, nr in zip(dy, self.nets[-1])]

    def backward(self, grad_output: Sequence[Sequence[float]] | None = None) -> list[list[float]]:
        """Backpropagate and ACCUMULATE dE/dparameter into every `grad`; return dE/dx (B, in).

        Without an argument, backpropagates the loss of the last forward. With `grad_output`
        (dE/doutputs, shape (B, sizes[-1])), backpropagates that instead.
        """
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
            W = layer.weight.data
            y_prev = self.ys[l]
            dW, db = layer.weight.grad, layer.bias.grad
            # dE/dw_ji += delta_j * y_i and dE/db_j += delta_j, summed over the batch
            for d_row, y_row in zip(delta, y_prev):
                for j, d in enumerate(d_row):
                    if d == 0.0:
                        continue
                    dW_j = dW[j]
                    for i, yi in enumerate(y_row):
                        dW_j[i] += d * yi
                    db[j] += d
            # pass the error signal down: dE/dy_prev_i = sum_j w_ji delta_j
            dy_prev = [
                [sum(W[j][i] * d_row[j] for j in range(len(d_row))) for i in range(len(W[0]))]
                for d_row in delta
            ]
            if l == 0:
                return dy_prev
            _, df = self._layer_activation(l - 1)
            # delta of the layer below = dE/dy * f'(net), the middle factor of the chain rule
            delta = [
                [g * df(v) for g, v in zip(gr, nr)] for gr, nr in zip(dy_prev, self.nets[l - 1])
            ]
        raise AssertionError("unreachable")  # pragma: no cover

    def _output_delta(self, grad_output):
        """dE/dnet of the output layer from an upstream dE/doutputs."""
        outs = self.outputs
        if len(grad_output) != len(outs) or any(
            len(g) != len(o) for g, o in zip(grad_output, outs)
        ):
            raise ValueError(
                f"grad_output must have the outputs' shape ({len(outs)}, {self.sizes[-1]})"
            )
        if self.output == "softmax":
            # softmax Jacobian: dE/dz_k = p_k (g_k - sum_j g_j p_j)
            delta = []
            for g, p in zip(grad_output, outs):
                dot = sum(gj * pj for gj, pj in zip(g, p))
                delta.append([pk * (gk - dot) for gk, pk in zip(g, p)])
            return delta
        _, df = ACTIVATIONS[self.output]
        return [[g * df(v) for g, v in zip(gr, nr)] for gr, nr in zip(grad_output, self.nets[-1])]

    def predict(self, x: Sequence[Sequence[float]]) -> list[int]:
        """The index of the largest output for each input row (the predicted class)."""
        outputs, _ = self.forward(x)
        return [max(range(len(row)), key=row.__getitem__) for row in outputs]


def _one_hot(label: Any, n: int, i: int) -> list[float]:
    if isinstance(label, bool) or not isinstance(label, int):
        raise TypeError(
            f"targets[{i}] must be a class label (int) or a target vector, "
            f"got {type(label).__name__}"
        )
    if not 0 <= label < n:
        raise ValueError(f"targets[{i}] = {label} out of range for {n} outputs")
    return [1.0 if k == label else 0.0 for k in range(n)]


def _check_inputs(x: Any, width: int) -> None:
    """Inputs must be a non-empty (B, width) nested list of finite numbers."""
    if not isinstance(x, (list, tuple)) or not x:
        raise ValueError(f"x must be a non-empty batch of rows (B, {width}), got {x!r:.60}")
    for b, row in enumerate(x):
        if not isinstance(row, (list, tuple)):
            raise TypeError(f"x[{b}] must be a row of {width} numbers, got {type(row).__name__}")
        if len(row) != width:
            raise ValueError(
                f"x[{b}] must have {width} inputs (the network's input width), got {len(row)}"
            )
        for i, v in enumerate(row):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise TypeError(f"x[{b}][{i}] must be a number, got {type(v).__name__}")
            if not math.isfinite(v):
                raise ValueError(f"x[{b}][{i}] must be finite, got {v}")

"""reference/layers.py: every op against finite differences and hand-worked values."""

import math

import pytest

from reference import layers as L
from reference.losses import softmax_cross_entropy
from reference.module import ModuleList
from reference.nested import flatten, shape_of
from reference.rng import uniform
from tests.reference.gradcheck import (
    assert_close,
    check_module_gradients,
    check_op_gradients,
    random_tensor,
)


def out_of(forward):
    """An op's forward with the cache dropped, for the finite-difference loss."""
    return lambda **kw: forward(**kw)[0]


# -- gradcheck helper itself ---------------------------------------------------------------------
def test_gradcheck_catches_a_wrong_gradient():
    x = random_tensor((2, 3), seed=1)
    dout = random_tensor((2, 3), seed=2)
    wrong = [[2.0 * d for d in row] for row in dout]  # the gradient of 2x, not of x**2
    with pytest.raises(AssertionError, match=r"atol \+ rtol\*\|ref\|.*at \(0, 0\)"):
        check_op_gradients(
            lambda x: [[v * v for v in row] for row in x], {"x": x}, dout, {"x": wrong}
        )


# -- embeddings and positions ----------------------------------------------------------------------
def test_embedding_lookup_and_scatter_add():
    weight = [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]
    idx = [[2, 0, 2]]  # token 2 twice: its gradient rows must add up
    out, cache = L.embedding_forward(weight, idx)
    assert out == [[[4.0, 5.0], [0.0, 1.0], [4.0, 5.0]]]
    dweight = L.embedding_backward([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]], cache)
    assert dweight == [[3.0, 4.0], [0.0, 0.0], [6.0, 8.0]]


def test_embedding_gradient():
    weight = random_tensor((5, 3), seed=3)
    idx = [[1, 4, 1], [0, 1, 3]]
    dout = random_tensor((2, 3, 3), seed=4)
    _, cache = L.embedding_forward(weight, idx)
    check_op_gradients(
        lambda weight: L.embedding_forward(weight, idx)[0],
        {"weight": weight},
        dout,
        {"weight": L.embedding_backward(dout, cache)},
    )


def test_embedding_rejects_bad_ids():
    weight = [[0.0], [1.0]]
    with pytest.raises(ValueError, match=r"idx value 2 out of range for 2 embeddings"):
        L.embedding_forward(weight, [[0, 2]])
    with pytest.raises(TypeError, match=r"idx must hold ints, got float"):
        L.embedding_forward(weight, [[0, 1.0]])
    with pytest.raises(TypeError, match=r"got bool"):
        L.embedding_forward(weight, [[True]])


def test_position_embedding_values_gradient_and_length_check():
    weight = random_tensor((4, 3), seed=5)
    out, cache = L.position_embedding_forward(weight, 2, 3, start=1)
    assert out == [[weight[1], weight[2], weight[3]]] * 2
    dout = random_tensor((2, 3, 3), seed=6)
    check_op_gradients(
        lambda weight: L.position_embedding_forward(weight, 2, 3, start=1)[0],
        {"weight": weight},
        dout,
        {"weight": L.position_embedding_backward(dout, cache)},
    )
    assert L.position_ids(2, 3) == [[0, 1, 2], [0, 1, 2]]
    with pytest.raises(ValueError, match=r"n_positions=4 \(sequence length T=5\)"):
        L.position_embedding_forward(weight, 1, 5)


def test_sinusoidal_known_values():
    pe = L.sinusoidal_position_encoding(2, 3, 4)
    assert shape_of(pe) == (2, 3, 4) and pe[0] == pe[1]
    assert pe[0][0] == [0.0, 1.0, 0.0, 1.0]  # position 0: sin 0, cos 0
    # position 1, C = 4: frequencies 1 and 1/10000^(2/4) = 1/100
    assert_close(pe[0][1], [math.sin(1), math.cos(1), math.sin(0.01), math.cos(0.01)], "pe[1]")
    assert_close(pe[0][2], [math.sin(2), math.cos(2), math.sin(0.02), math.cos(0.02)], "pe[2]")
    odd = L.sinusoidal_position_encoding(1, 2, 5, start=7)  # odd C: the last column is a sine
    assert_close(odd[0][0][4], math.sin(7 / 10000 ** (4 / 5)), "pe[7][4]")


# -- linear ----------------------------------------------------------------------------------------
def test_linear_hand_example_both_layouts():
    x = [[1.0, 2.0]]  # (T=1, C_in=2)
    w_out_in = [[1.0, 0.0], [3.0, -1.0], [0.5, 0.5]]  # (3, 2)
    bias = [0.0, 1.0, -1.0]
    expected = [[1.0, 2.0, 0.5]]
    assert L.linear_forward(x, w_out_in, bias)[0] == expected
    w_in_out = [list(col) for col in zip(*w_out_in)]  # (2, 3), GPT-2 Conv1D
    assert L.linear_forward(x, w_in_out, bias, "in_out")[0] == expected
    assert L.linear_forward([1.0, 2.0], w_out_in)[0] == [1.0, 1.0, 1.5]  # a bare row, no bias


@pytest.mark.parametrize("layout", ["out_in", "in_out"])
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_gradients(layout, with_bias):
    B, T, C_in, C_out = 2, 3, 3, 5
    wshape = (C_out, C_in) if layout == "out_in" else (C_in, C_out)
    inputs = {"x": random_tensor((B, T, C_in), 7), "weight": random_tensor(wshape, 8)}
    inputs["bias"] = random_tensor((C_out,), 9) if with_bias else None
    dout = random_tensor((B, T, C_out), 10)
    _, cache = L.linear_forward(**inputs, weight_layout=layout)
    dx, dweight, dbias = L.linear_backward(dout, cache)
    analytic = {"x": dx, "weight": dweight}
    if with_bias:
        analytic["bias"] = dbias
    else:
        assert dbias is None
    forward = out_of(lambda **kw: L.linear_forward(**kw, weight_layout=layout))
    check_op_gradients(forward, inputs, dout, analytic)


def test_linear_validation():
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 2\), got \(1, 3\)"):
        L.linear_forward([[1.0, 2.0, 3.0]], [[1.0, 2.0]])
    with pytest.raises(ValueError, match=r"bias must have shape \(1,\), got \(2,\)"):
        L.linear_forward([[1.0, 2.0]], [[1.0, 2.0]], [0.0, 0.0])
    with pytest.raises(ValueError, match=r"weight_layout must be one of .* got 'torch'"):
        L.linear_forward([[1.0]], [[1.0]], None, "torch")
    with pytest.raises(ValueError, match=r"x\[1\] must have shape \(2,\), got \(1,\)"):
        L.linear_forward([[1.0, 2.0], [1.0]], [[1.0, 2.0]])


# -- layer norm ------------------------------------------------------------------------------------
def test_layer_norm_of_1_2_3():
    # mean 2, variance ((-1)^2 + 0 + 1^2) / 3 = 2/3, so the output is (-1, 0, 1) / sqrt(2/3)
    out, _ = L.layer_norm_forward([[1.0, 2.0, 3.0]], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0], eps=1e-300)
    s = math.sqrt(1.5)
    assert_close(out, [[-s, 0.0, s]], "layer_norm([1,2,3])", atol=1e-15)
    out, _ = L.layer_norm_forward([[1.0, 2.0, 3.0]], [2.0, 1.0, 1.0], [0.0, 5.0, 0.0], eps=1e-5)
    r = 1.0 / math.sqrt(2.0 / 3.0 + 1e-5)
    assert_close(out, [[-2.0 * r, 5.0, r]], "scaled and shifted", atol=1e-15)


def test_layer_norm_two_pass_variance_survives_a_large_mean():
    # One-pass E[x^2] - E[x]^2 at 1e8 loses every digit; two passes keep them.
    out, _ = L.layer_norm_forward([[1e8 + 1.0, 1e8 + 2.0, 1e8 + 3.0]], [1.0] * 3, [0.0] * 3, 1e-300)
    assert_close(out, [[-math.sqrt(1.5), 0.0, math.sqrt(1.5)]], "large mean", atol=1e-7)


@pytest.mark.parametrize("eps", [1e-5, 1e-12])
@pytest.mark.parametrize("shape", [(2, 3, 5), (1, 1, 4), (3,)])
def test_layer_norm_gradients(eps, shape):
    C = shape[-1]
    inputs = {
        "x": random_tensor(shape, 11),
        "weight": random_tensor((C,), 12, 0.5, 1.5),
        "bias": random_tensor((C,), 13),
    }
    dout = random_tensor(shape, 14)
    _, cache = L.layer_norm_forward(**inputs, eps=eps)
    dx, dweight, dbias = L.layer_norm_backward(dout, cache)
    forward = out_of(lambda **kw: L.layer_norm_forward(**kw, eps=eps))
    check_op_gradients(forward, inputs, dout, {"x": dx, "weight": dweight, "bias": dbias})


# -- activations -----------------------------------------------------------------------------------
@pytest.mark.parametrize("activation", ["gelu", "gelu_erf", "relu"])
def test_activation_gradients(activation):
    x = random_tensor((2, 1, 5), 15, -3.0, 3.0)
    dout = random_tensor((2, 1, 5), 16)
    _, cache = L.activation_forward(x, activation)
    dx = L.activation_backward(dout, cache)
    forward = out_of(lambda x: L.activation_forward(x, activation))
    check_op_gradients(forward, {"x": x}, dout, {"x": dx})


def test_activation_known_values_and_bad_name():
    out, _ = L.activation_forward([[-1.0, 0.0, 2.0]], "relu")
    assert out == [[0.0, 0.0, 2.0]]
    out, _ = L.activation_forward([1.0], "gelu_erf")
    assert_close(out, [0.5 * (1.0 + math.erf(1.0 / math.sqrt(2.0)))], "gelu_erf(1)")
    out, _ = L.activation_forward([1.0], "gelu")  # tanh form: 0.8411919906082768
    assert_close(out, [0.8411919906082768], "gelu(1)", atol=1e-15)
    with pytest.raises(ValueError, match=r"unknown activation 'swish'"):
        L.activation_forward([1.0], "swish")


# -- dropout ---------------------------------------------------------------------------------------
def test_dropout_rule_is_uniform_at_flat_index():
    x = random_tensor((2, 3, 4), 17)
    p, seed, stream = 0.3, 123, L.dropout_stream(5, 2)
    out, _ = L.dropout_forward(x, p, seed, stream)
    for i, (a, v) in enumerate(zip(flatten(out), flatten(x))):
        expected = v * (1.0 / (1.0 - p)) if uniform(seed, stream, i) >= p else 0.0
        assert a == expected, f"flat element {i}"


def test_dropout_statistics_and_reproducibility():
    n, p = 20000, 0.25
    x = [1.0] * n
    out, _ = L.dropout_forward(x, p, seed=7, stream=L.dropout_stream(0, 1))
    kept = sum(1 for v in out if v != 0.0) / n
    assert abs(kept - (1 - p)) < 4 * math.sqrt(p * (1 - p) / n)  # four standard errors
    assert all(v in (0.0, 1.0 / (1.0 - p)) for v in out)
    same, _ = L.dropout_forward(x, p, seed=7, stream=L.dropout_stream(0, 1))
    assert same == out
    for seed, stream in ((7, L.dropout_stream(1, 1)), (7, L.dropout_stream(0, 2)), (8, 1)):
        other, _ = L.dropout_forward(x, p, seed=seed, stream=stream)
        assert other != out, (seed, stream)


def test_dropout_identity_zero_and_gradient():
    x = random_tensor((3, 4), 18)
    assert L.dropout_forward(x, 0.0, 1, 1)[0] == x
    assert L.dropout_backward(x, L.dropout_forward(x, 0.0)[1]) == x
    assert flatten(L.dropout_forward(x, 1.0, 1, 1)[0]) == [0.0] * 12
    dout = random_tensor((3, 4), 19)
    _, cache = L.dropout_forward(x, 0.5, 3, 4)
    forward = out_of(lambda x: L.dropout_forward(x, 0.5, 3, 4))
    check_op_gradients(forward, {"x": x}, dout, {"x": L.dropout_backward(dout, cache)})


def test_dropout_validation():
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"dropout p must be in \[0, 1\], got"):
            L.dropout_forward([1.0], bad)
    with pytest.raises(TypeError, match=r"dropout p must be a float in \[0, 1\], got str"):
        L.dropout_forward([1.0], "0.5")
    with pytest.raises(ValueError, match=r"dropout p must be in"):
        L.Dropout(2.0)
    assert L.dropout_stream(3, 5) == 3 * 65536 + 5
    with pytest.raises(ValueError, match=r"site must be in \[0, 65536\), got 65536"):
        L.dropout_stream(0, 65536)
    with pytest.raises(TypeError, match=r"step must be an int, got float"):
        L.dropout_stream(1.0, 1)


# -- residual and cross-entropy --------------------------------------------------------------------
def test_residual():
    out, cache = L.residual_forward([[1.0, 2.0]], [[10.0, 20.0]])
    assert out == [[11.0, 22.0]]
    dx, dy = L.residual_backward([[0.5, -1.0]], cache)
    assert dx == dy == [[0.5, -1.0]] and dx is not dy
    with pytest.raises(ValueError, match=r"y must have the shape of x \(1, 2\), got \(1, 3\)"):
        L.residual_forward([[1.0, 2.0]], [[1.0, 2.0, 3.0]])


def test_cross_entropy_reuses_losses_and_gradient():
    logits = random_tensor((2, 3, 4), 20, -2.0, 2.0)
    targets = [[0, 3, -100], [2, 2, 1]]
    loss, cache = L.cross_entropy_forward(logits, targets)
    rows = [row for seq in logits for row in seq]
    expected, _ = softmax_cross_entropy(rows, [0, 3, -100, 2, 2, 1], ignore_index=-100)
    assert loss == expected
    dlogits = L.cross_entropy_backward(0.7, cache)  # dL/dloss = 0.7, a non-unit upstream
    assert dlogits[0][2] == [0.0] * 4  # ignored position
    grad = L.cross_entropy_backward(1.0, cache)
    numeric = {"logits": grad}
    check_op_gradients(
        lambda logits: L.cross_entropy_forward(logits, targets)[0], {"logits": logits}, 1.0, numeric
    )
    assert_close(dlogits, [[[0.7 * g for g in row] for row in seq] for seq in grad], "scaled")
    with pytest.raises(ValueError, match=r"targets must have shape \(2, 3\), got \(2, 2\)"):
        L.cross_entropy_forward(logits, [[0, 1], [0, 1]])


# -- modules ---------------------------------------------------------------------------------------
def test_module_names_shapes_and_init():
    assert [(n, p.shape) for n, p in L.Linear(3, 5).named_parameters()] == [
        ("weight", (5, 3)),
        ("bias", (5,)),
    ]
    assert [(n, p.shape) for n, p in L.Linear(3, 5, bias=False).named_parameters()] == [
        ("weight", (5, 3))
    ]
    assert [(n, p.shape) for n, p in L.Conv1D(3, 5).named_parameters()] == [
        ("weight", (3, 5)),
        ("bias", (5,)),
    ]
    ln = L.LayerNorm(4, eps=1e-12)
    assert ln.state_dict() == {"weight": [1.0] * 4, "bias": [0.0] * 4} and ln.eps == 1e-12
    assert L.Embedding(7, 2).weight.shape == (7, 2)
    # init: reproducible from (seed, stream), different across streams, N(0, 0.02^2)
    a, b = L.Linear(3, 5, seed=1, stream=2), L.Linear(3, 5, seed=1, stream=2)
    assert a.weight.data == b.weight.data != L.Linear(3, 5, seed=1, stream=3).weight.data
    z = flatten(L.normal_tensor((100, 100), 0.02, seed=0, stream=0))
    mean = sum(z) / len(z)
    std = math.sqrt(sum((v - mean) ** 2 for v in z) / len(z))
    assert abs(mean) < 4 * 0.02 / 100 and abs(std - 0.02) < 0.0005


@pytest.mark.parametrize(
    "module, shape",
    [
        (L.Linear(3, 4, seed=1), (2, 3, 3)),
        (L.Linear(3, 2, bias=False, seed=2), (1, 1, 3)),
        (L.Conv1D(3, 4, seed=3), (2, 1, 3)),
        (L.LayerNorm(5, eps=1e-5), (2, 3, 5)),
        (L.Activation("gelu"), (2, 3, 2)),
        (L.Dropout(0.4), (3, 5)),
    ],
)
def test_module_gradients(module, shape):
    if isinstance(module, L.LayerNorm):  # move off the init so weight and bias matter
        module.weight.data = random_tensor((5,), 21, 0.5, 1.5)
        module.bias.data = random_tensor((5,), 22)
    if isinstance(module, L.Dropout):
        module.seed, module.stream = 9, 9
    x = random_tensor(shape, 23)
    out_shape = shape_of(module(x))
    check_module_gradients(module, x, random_tensor(out_shape, 24))


def test_module_backward_accumulates_and_embedding_returns_none():
    lin = L.Linear(2, 3, seed=4)
    x, dout = random_tensor((1, 2, 2), 25), random_tensor((1, 2, 3), 26)
    lin(x)
    lin.backward(dout)
    once = [list(r) for r in lin.weight.grad]
    lin.backward(dout)
    assert_close(lin.weight.grad, [[2.0 * g for g in r] for r in once], "accumulated")
    emb = L.Embedding(4, 2, seed=5)
    emb([[1, 1]])
    assert emb.backward([[[1.0, 2.0], [3.0, 4.0]]]) is None
    assert emb.weight.grad[1] == [4.0, 6.0]
    with pytest.raises(RuntimeError, match=r"Linear.backward called before forward"):
        L.Linear(2, 2).backward([[1.0, 1.0]])


def test_dropout_module_eval_and_sites():
    model = ModuleList([L.Dropout(0.5), L.Linear(2, 2), ModuleList([L.Dropout(0.5)])])
    L.set_dropout_rng(model, seed=11, step=3)
    d1, d2 = model[0], model[2][0]
    assert (d1.seed, d1.stream, d2.seed, d2.stream) == (11, 3 * 65536 + 1, 11, 3 * 65536 + 2)
    x = [1.0] * 64
    assert d1(x) != x and d1(x) != d2(x)
    model.eval()
    assert d1(x) == x and d1.backward(x) == x

"""The MLP's explicit backprop against two independent oracles: finite differences and `Value`."""

import math

import pytest

from reference import MLP
from reference.autograd import Value
from reference.rng import uniforms

H = 1e-6


def batch(b, n, seed=0):
    u = uniforms(seed, 99, b * n)
    return [[4.0 * v - 2.0 for v in u[i * n : (i + 1) * n]] for i in range(b)]


def upstream(model, x, seed=1):
    """A non-uniform upstream gradient dE/doutputs, so every output matters differently."""
    return batch(len(x), model.sizes[-1], seed)


def objective(model, x, g):
    out, _ = model(x)
    return sum(gi * oi for gr, orow in zip(g, out) for gi, oi in zip(gr, orow))


def assert_grads_match_fd(model, f, dx=None, x=None):
    for name, p in model.named_parameters():
        rows = p.data if isinstance(p.data[0], list) else [p.data]
        grows = p.grad if isinstance(p.grad[0], list) else [p.grad]
        for r, (row, grow) in enumerate(zip(rows, grows)):
            for i in range(len(row)):
                old = row[i]
                row[i] = old + H
                fp = f()
                row[i] = old - H
                fm = f()
                row[i] = old
                fd = (fp - fm) / (2 * H)
                assert grow[i] == pytest.approx(fd, rel=1e-5, abs=1e-8), f"{name}[{r}][{i}]"
    if dx is not None:
        for b, row in enumerate(x):
            for i in range(len(row)):
                old = row[i]
                row[i] = old + H
                fp = f()
                row[i] = old - H
                fm = f()
                row[i] = old
                assert dx[b][i] == pytest.approx((fp - fm) / (2 * H), rel=1e-5, abs=1e-8)


@pytest.mark.parametrize(
    "activation, output",
    [("sigmoid", "softmax"), ("tanh", "sigmoid"), ("gelu", "identity"), ("gelu_erf", "tanh")],
)
def test_backward_with_upstream_gradient_matches_finite_differences(activation, output):
    model = MLP([3, 4, 5, 3], activation=activation, output=output, seed=2)
    x = batch(2, 3)
    g = upstream(model, x)
    model(x)
    model.zero_grad()
    dx = model.backward(g)
    assert_grads_match_fd(model, lambda: objective(model, x, g), dx, x)


@pytest.mark.parametrize("output, targets", [("softmax", [2, 0, 1]), ("sigmoid", [1, 0, 2])])
def test_backward_of_the_loss_matches_finite_differences(output, targets):
    model = MLP([4, 3, 3], activation="tanh", output=output, seed=3)
    x = batch(3, 4, seed=5)
    model(x, targets)
    model.zero_grad()
    model.backward()
    assert_grads_match_fd(model, lambda: model(x, targets)[1])


def test_gradients_accumulate_until_zero_grad():
    model = MLP([2, 2], seed=0)
    x = batch(1, 2)
    model(x, [1])
    model.zero_grad()
    model.backward()
    once = [list(r) for r in model.layers[0].weight.grad]
    model(x, [1])
    model.backward()
    assert model.layers[0].weight.grad == [[2 * v for v in r] for r in once]


def value_mlp_loss(model, x, targets):
    """The same network built from `Value` scalars: autograd does the chain rule for us."""
    params = {name: p for name, p in model.named_parameters()}
    V = {
        n: [[Value(w) for w in r] if isinstance(r, list) else Value(r) for r in p.data]
        for n, p in params.items()
    }
    act = {"sigmoid": Value.sigmoid, "tanh": Value.tanh, "relu": Value.relu}[model.activation_name]
    total = Value(0.0)
    for row, t in zip(x, targets):
        y = [Value(v) for v in row]
        for l in range(len(model.layers)):
            W, b = V[f"layers.{l}.weight"], V[f"layers.{l}.bias"]
            net = [sum((w * yi for w, yi in zip(W[j], y)), b[j]) for j in range(len(b))]
            y = [act(n) for n in net] if l < len(model.layers) - 1 else net
        logsumexp = sum((z.exp() for z in y), Value(0.0)).log()
        total = total + (logsumexp - y[t])
    loss = total / len(x)
    loss.backward()
    return loss, V


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
@pytest.mark.parametrize("seed", [0, 1])
def test_explicit_backprop_equals_value_autograd(activation, seed):
    model = MLP([3, 5, 4, 3], activation=activation, seed=seed)
    x = batch(4, 3, seed=seed + 10)
    targets = [0, 2, 1, 2]
    _, loss = model(x, targets)
    model.zero_grad()
    model.backward()
    vloss, V = value_mlp_loss(model, x, targets)
    assert loss == pytest.approx(vloss.data, rel=1e-12)
    for name, p in model.named_parameters():
        auto = [[v.grad for v in r] if isinstance(r, list) else r.grad for r in V[name]]
        flat_a = [g for r in auto for g in (r if isinstance(r, list) else [r])]
        flat_m = [g for r in p.grad for g in (r if isinstance(r, list) else [r])]
        assert flat_m == pytest.approx(flat_a, rel=1e-10, abs=1e-14), name


def test_digit_network_size_and_names():
    m = MLP([784, 16, 16, 10])
    assert m.num_parameters() == 13002
    assert [(n, p.shape) for n, p in m.named_parameters()] == [
        ("layers.0.weight", (16, 784)), ("layers.0.bias", (16,)),
        ("layers.1.weight", (16, 16)), ("layers.1.bias", (16,)),
        ("layers.2.weight", (10, 16)), ("layers.2.bias", (10,)),
    ]  # fmt: skip


def test_init_is_seeded_and_bounded():
    a, b, c = MLP([8, 4], seed=1), MLP([8, 4], seed=1), MLP([8, 4], seed=2)
    assert a.state_dict() == b.state_dict() != c.state_dict()
    bound = 1 / math.sqrt(8)
    assert all(abs(w) <= bound for r in a.layers[0].weight.data for w in r)


def test_save_and_load_pretrained(tmp_path):
    a = MLP([3, 4, 2], activation="tanh", output="softmax", seed=4)
    a.save_pretrained(tmp_path, dtype="float64")
    b = MLP.from_pretrained(tmp_path)
    assert (b.sizes, b.activation_name, b.output) == ([3, 4, 2], "tanh", "softmax")
    x = batch(2, 3)
    assert b(x)[0] == a(x)[0]


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda m: m([[1.0, 2.0]]), ValueError, r"x\[0\] must have 3 inputs .* got 2"),
        (lambda m: m([[1.0, 2.0, 3.0]], [7]), ValueError, r"targets\[0\] = 7 out of range"),
        (lambda m: m([[1.0, float("nan"), 3.0]]), ValueError, r"x\[0\]\[1\] must be finite"),
        (lambda m: m([[1.0, float("inf"), 3.0]]), ValueError, "must be finite"),
        (lambda m: m([]), ValueError, "non-empty batch"),
        (lambda m: m([[1.0, "2", 3.0]]), TypeError, "must be a number"),
        (lambda m: m([[1.0, 2.0, 3.0]], [0, 1]), ValueError, "targets must have 1 entries"),
    ],
)
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call(MLP([3, 4, 2]))


def test_bad_construction_and_call_order():
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        MLP([2, 2], activation="swish")
    with pytest.raises(ValueError, match="unknown output 'argmax'"):
        MLP([2, 2], output="argmax")
    with pytest.raises(ValueError, match=r"sizes\[1\] must be a positive int"):
        MLP([2, 0, 2])
    with pytest.raises(ValueError, match="at least 2"):
        MLP([5])
    with pytest.raises(RuntimeError, match="call forward before backward"):
        MLP([2, 2]).backward()
    m = MLP([2, 2])
    m([[0.0, 1.0]])
    with pytest.raises(RuntimeError, match="without targets"):
        m.backward()

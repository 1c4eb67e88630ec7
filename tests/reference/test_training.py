"""The fit loop: the three gradient-descent flavours and each stopping rule.

The stopping rules are checked on a model whose whole trajectory is known in closed form:
E(w) = mean over the batch of 0.5 (w - t)^2 with every target t = 3, so dE/dw = w - 3 whatever the
batch, and plain SGD with learning rate 1/2 halves the distance to 3 at every step.
"""

import json
import math

import pytest

from reference import MLP, SGD, Adam, FitState, Module, NonFiniteLossError, Parameter, fit


class Quadratic(Module):
    def __init__(self, w=7.0):
        super().__init__()
        self.w = Parameter([w])
        self.batches = []

    def forward(self, x, targets):
        self.batches.append(list(x))
        self.t = targets
        w = self.w.data[0]
        return [w], sum(0.5 * (w - t) * (w - t) for t in targets) / len(targets)

    def backward(self):
        w = self.w.data[0]
        self.w.grad[0] += sum(w - t for t in self.t) / len(self.t)


def data(n=6):
    return list(range(n)), [3.0] * n


def test_batch_sizes_give_bgd_sgd_mbgd():
    x, y = data(6)
    for batch_size, per_epoch in [(None, 1), (1, 6), (4, 2), (6, 1)]:
        m = Quadratic()
        r = fit(m, SGD(m.parameters(), lr=0.1), x, y, batch_size=batch_size, epochs=3)
        assert r.steps == 3 * per_epoch and r.epochs == 3 and r.stopped_by == "max_epochs"
        sizes = [len(b) for b in m.batches]
        assert (
            sizes
            == (
                [6]
                if batch_size is None
                else ([1] * 6 if batch_size == 1 else [4, 2] if batch_size == 4 else [6])
            )
            * 3
        )


def test_every_sample_once_per_epoch_and_seeded_shuffle():
    x, y = data(7)
    m = Quadratic()
    fit(m, SGD(m.parameters(), lr=0.1), x, y, batch_size=2, epochs=2, seed=5)
    first = [i for b in m.batches[:4] for i in b]
    second = [i for b in m.batches[4:] for i in b]
    assert sorted(first) == sorted(second) == x
    assert first != second  # each epoch draws its own order
    m2 = Quadratic()
    fit(m2, SGD(m2.parameters(), lr=0.1), x, y, batch_size=2, epochs=2, seed=5)
    assert m2.batches == m.batches
    m3 = Quadratic()
    fit(m3, SGD(m3.parameters(), lr=0.1), x, y, batch_size=2, epochs=2, seed=6)
    assert m3.batches != m.batches
    m4 = Quadratic()
    fit(m4, SGD(m4.parameters(), lr=0.1), x, y, batch_size=2, epochs=1, shuffle=False)
    assert m4.batches == [[0, 1], [2, 3], [4, 5], [6]]


def test_max_steps_stops_inside_an_epoch():
    x, y = data(6)
    m = Quadratic()
    r = fit(m, SGD(m.parameters(), lr=0.1), x, y, batch_size=1, max_steps=8, epochs=100)
    assert (r.stopped_by, r.steps, r.epochs, len(r.step_losses)) == ("max_steps", 8, 2, 8)


def closed_form(epochs, d0=4.0):
    """Loss and gradient norm at the start of each BGD step with lr 1/2: d halves each step."""
    d = [d0 / 2**k for k in range(epochs)]
    return [0.5 * di * di for di in d], d


def test_loss_change_rule_fires_exactly_when_it_should():
    losses, _ = closed_form(30)
    threshold = 1e-3
    expected = next(k for k in range(1, 30) if abs(losses[k] - losses[k - 1]) < threshold) + 1
    m = Quadratic()
    r = fit(m, SGD(m.parameters(), lr=0.5), *data(), loss_change_threshold=threshold, epochs=100)
    assert r.stopped_by == "loss_change" and r.epochs == expected
    assert r.loss_history == pytest.approx(losses[:expected])
    # and not earlier: every earlier change was at least the threshold
    changes = [abs(a - b) for a, b in zip(r.loss_history, r.loss_history[1:])]
    assert all(c >= threshold for c in changes[:-1]) and changes[-1] < threshold


def test_grad_norm_rule_fires_exactly_when_it_should():
    _, norms = closed_form(30)
    threshold = 0.01
    expected = next(k for k in range(30) if norms[k] < threshold) + 1
    m = Quadratic()
    r = fit(m, SGD(m.parameters(), lr=0.5), *data(), grad_norm_threshold=threshold, epochs=100)
    assert r.stopped_by == "grad_norm" and r.epochs == expected
    assert r.grad_norm_history == pytest.approx(norms[:expected])


def test_thresholds_that_never_fire_leave_the_budget_in_charge():
    m = Quadratic()
    r = fit(
        m,
        SGD(m.parameters(), lr=0.5),
        *data(),
        loss_change_threshold=1e-300,
        grad_norm_threshold=1e-300,
        epochs=5,
    )
    assert r.stopped_by == "max_epochs" and r.epochs == 5


def test_nonfinite_loss_stops_and_names_the_step():
    # lr 3 multiplies the distance by -2 each step; find where the batch loss overflows in floats
    d, expected = 4.0, 0
    while math.isfinite(sum([0.5 * d * d] * 6) / 6):
        d, expected = d * -2.0, expected + 1
    m = Quadratic()
    with pytest.raises(NonFiniteLossError, match=f"step {expected}") as e:
        fit(m, SGD(m.parameters(), lr=3.0), *data(), epochs=10_000)
    assert e.value.step == expected and isinstance(e.value, ValueError)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(batch_size=0, epochs=1), ValueError, "batch_size must be >= 1"),
        (dict(batch_size=7, epochs=1), ValueError, "at most the number of samples"),
        (dict(batch_size=2.5, epochs=1), TypeError, "batch_size must be an int"),
        (dict(), ValueError, "at least one stopping rule"),
        (dict(epochs=0), ValueError, "epochs must be >= 1"),
        (dict(loss_change_threshold=-1.0), ValueError, "loss_change_threshold"),
        (dict(grad_norm_threshold=math.inf), ValueError, "grad_norm_threshold"),
        # a threshold of 0 can never fire: as the only rule, training would never end
        (dict(grad_norm_threshold=0.0), ValueError, r"grad_norm_threshold must be .* > 0, got 0"),
        (dict(loss_change_threshold=0), ValueError, r"loss_change_threshold must be .* > 0"),
        (dict(epochs=1, should_stop=True), TypeError, "should_stop must be callable"),
        (dict(epochs=1, resume_from={}), TypeError, "resume_from must be a FitState"),
        (dict(epochs=1, resume_from=FitState(position=6)), ValueError, "resume_from.position"),
        (
            dict(epochs=1, batch_size=4, resume_from=FitState(position=2)),
            ValueError,
            "multiple of the batch size",
        ),
        (dict(epochs=2, resume_from=FitState(epoch=1)), ValueError, "gradient norms for 1 epochs"),
        (dict(epochs=1, resume_from=FitState(steps=2)), ValueError, "0 step losses for 2"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    m = Quadratic()
    with pytest.raises(error, match=match):
        fit(m, SGD(m.parameters(), lr=0.1), *data(6), **kwargs)


def test_empty_or_mismatched_data():
    m = Quadratic()
    opt = SGD(m.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="inputs is empty"):
        fit(m, opt, [], [], epochs=1)
    with pytest.raises(ValueError, match="one entry per input"):
        fit(m, opt, [1, 2], [3.0], epochs=1)


def test_schedule_sets_the_learning_rate_each_step():
    seen = []
    m = Quadratic()
    opt = SGD(m.parameters(), lr=0.1)
    fit(
        m,
        opt,
        *data(4),
        batch_size=2,
        epochs=2,
        schedule=lambda s: 0.1 / (s + 1),
        on_step=lambda step, loss: seen.append(opt.lr),
    )
    assert seen == pytest.approx([0.1, 0.05, 0.1 / 3, 0.025])


def test_mlp_learns_xor():
    """A single threshold unit cannot separate XOR; one hidden layer can."""
    x = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]
    y = [0, 1, 1, 0]
    model = MLP([2, 4, 2], activation="tanh", seed=1)
    r = fit(model, Adam(model.parameters(), lr=0.1), x, y, epochs=300, loss_change_threshold=1e-7)
    assert model.predict(x) == y, r.loss_history[-5:]
    assert r.final_loss < 0.05


def test_digit_network_reaches_90_percent_on_8x8_digits():
    """The seed's digit network, 64-16-16-10, trained with the reference (about 10 s)."""
    from reference import load_digits, train_test_split

    x, y = load_digits()
    x_tr, y_tr, x_te, y_te = train_test_split(x, y, test_fraction=0.2, seed=0)
    model = MLP([64, 16, 16, 10], activation="sigmoid", seed=0)
    fit(model, Adam(model.parameters(), lr=0.01), x_tr, y_tr, batch_size=32, epochs=10)
    acc = sum(p == t for p, t in zip(model.predict(x_te), y_te)) / len(y_te)
    assert acc >= 0.90


def _stop_after(k):
    """A should_stop hook that says stop once k steps have been taken."""
    calls = []

    def should_stop():
        calls.append(None)
        return len(calls) > k

    return should_stop


@pytest.mark.parametrize("stop_at", [1, 5, 7, 10])
def test_a_resumed_fit_takes_exactly_the_uninterrupted_steps(stop_at):
    """Stopping after `stop_at` steps (mid-epoch, or at an epoch's end: 7 steps an epoch) and
    resuming from the state, through JSON, gives the same losses bit for bit."""
    from reference import load_digits

    x, y = load_digits()
    x, y = x[:200], y[:200]

    def run(**kw):
        model = MLP([64, 12, 10], activation="sigmoid", seed=3)
        opt = Adam(model.parameters(), lr=0.02)
        r = fit(model, opt, x, y, batch_size=32, epochs=3, seed=5, **kw)
        return model, opt, r

    model, _, whole = run()
    assert whole.stopped_by == "max_epochs" and whole.steps == 21
    part_model, opt, part = run(should_stop=_stop_after(stop_at))
    assert part.stopped_by == "interrupted" and part.steps == stop_at
    assert part.step_losses == whole.step_losses[:stop_at]
    state = FitState.from_dict(json.loads(json.dumps(part.state.to_dict())))
    assert state == part.state
    rest = fit(part_model, opt, x, y, batch_size=32, epochs=3, seed=5, resume_from=state)
    assert (rest.stopped_by, rest.steps, rest.epochs) == ("max_epochs", 21, 3)
    assert rest.step_losses == whole.step_losses
    assert rest.loss_history == whole.loss_history
    assert rest.grad_norm_history == whole.grad_norm_history
    assert part_model.state_dict() == model.state_dict()


def test_on_checkpoint_hands_out_resumable_states_at_epoch_ends():
    m = Quadratic()
    states = []
    whole = fit(m, SGD(m.parameters(), lr=0.1), *data(6), batch_size=4, epochs=3)
    m = Quadratic()
    opt = SGD(m.parameters(), lr=0.1)
    r = fit(m, opt, *data(6), batch_size=4, epochs=3, on_checkpoint=states.append)
    assert [(s.epoch, s.position, s.steps) for s in states] == [(1, 0, 2), (2, 0, 4)]
    assert r.state.epoch == 3 and r.step_losses == whole.step_losses
    # continuing a finished run with a larger budget is the same as asking for it at first
    more = fit(m, opt, *data(6), batch_size=4, epochs=4, resume_from=r.state)
    m = Quadratic()
    longer = fit(m, SGD(m.parameters(), lr=0.1), *data(6), batch_size=4, epochs=4)
    assert more.step_losses == longer.step_losses and more.epochs == 4


def test_interrupting_before_the_first_step_takes_none():
    m = Quadratic()
    r = fit(m, SGD(m.parameters(), lr=0.1), *data(6), epochs=3, should_stop=lambda: True)
    assert (r.stopped_by, r.steps, r.state) == ("interrupted", 0, FitState())
    assert m.batches == []

"""fast's fit stops and resumes exactly as the reference's does (the loop is shared)."""

import json

import pytest

import fast


def _stop_after(k):
    calls = []

    def should_stop():
        calls.append(None)
        return len(calls) > k

    return should_stop


@pytest.mark.parametrize("stop_at", [4, 10])
def test_a_resumed_fit_takes_exactly_the_uninterrupted_steps(stop_at):
    x, y = fast.load_digits()
    x, y = x[:300], y[:300]

    def run(**kw):
        model = fast.MLP([64, 16, 10], activation="relu", output="softmax", seed=1)
        opt = fast.Adam(model.parameters(), lr=0.01)
        return model, opt, fast.fit(model, opt, x, y, batch_size=50, max_steps=15, **kw)

    model, _, whole = run()
    part_model, opt, part = run(should_stop=_stop_after(stop_at))
    assert part.stopped_by == "interrupted" and part.steps == stop_at
    state = fast.FitState.from_dict(json.loads(json.dumps(part.state.to_dict())))
    if stop_at % 6:  # mid-epoch: the epoch's gradient sum travels with the state
        assert len(state.grad_sum) == model.num_parameters()
    rest = fast.fit(part_model, opt, x, y, batch_size=50, max_steps=15, resume_from=state)
    assert (rest.stopped_by, rest.steps, rest.epochs) == ("max_steps", 15, 3)
    assert rest.step_losses == whole.step_losses
    assert rest.loss_history == whole.loss_history
    assert rest.grad_norm_history == whole.grad_norm_history
    for a, b in zip(part_model.parameters(), model.parameters()):
        assert (a.data == b.data).all()


def test_zero_thresholds_are_refused():
    x, y = fast.load_digits()
    m = fast.MLP([64, 10], seed=0)
    with pytest.raises(ValueError, match=r"grad_norm_threshold must be .* > 0, got 0.0"):
        fast.fit(m, fast.SGD(m.parameters(), lr=0.1), x[:10], y[:10], grad_norm_threshold=0.0)

"""GPT across backends: logits, loss, every gradient, a 5-step AdamW trajectory with dropout on,
and generated tokens, on Hypothesis-generated tiny configs."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference
from conformance.tolerance import assert_close, compare_gradients, float32_tol
from reference.gpt import GPT as RefGPT
from reference.gpt import GPTConfig


def candidate_gpt(candidate):
    if not hasattr(candidate, "GPT"):
        pytest.fail(f"{candidate.__name__} has no GPT")
    return candidate.GPT


@st.composite
def gpt_setup(draw):
    n_head = draw(st.integers(1, 2))
    config = GPTConfig(
        vocab_size=draw(st.integers(2, 9)),
        block_size=draw(st.integers(1, 5)),
        n_layer=draw(st.integers(1, 2)),
        n_head=n_head,
        n_embd=n_head * draw(st.integers(1, 3)),
        dropout=draw(st.sampled_from([0.0, 0.2])),
        seed=draw(st.integers(0, 2**32)),
    )
    B = draw(st.integers(1, 3))
    T = draw(st.integers(1, config.block_size))
    ids = st.integers(0, config.vocab_size - 1)
    idx = [[draw(ids) for _ in range(T)] for _ in range(B)]
    targets = [[draw(ids | st.just(-100)) for _ in range(T)] for _ in range(B)]
    return config, idx, targets


def pair(candidate, config, dtype="float64"):
    r = RefGPT(config)
    c = candidate_gpt(candidate)(config, dtype=dtype)
    c.load_state_dict(r.state_dict())
    return r, c


@given(gpt_setup())
def test_logits_loss_and_every_gradient(candidate, setup):
    config, idx, targets = setup
    r, c = pair(candidate, config)
    rl, rloss = r(idx, targets)
    cl, closs = c(np.array(idx), np.array(targets))
    assert_close(cl, rl, what="logits")
    assert_close(closs, rloss, what="loss")
    r.zero_grad()
    c.zero_grad()
    r.backward()
    c.backward()
    compare_gradients(r, c)


@given(gpt_setup())
def test_upstream_gradient_on_the_logits(candidate, setup):
    config, idx, _ = setup
    r, c = pair(candidate, config)
    rl, _ = r(idx)
    c(np.array(idx))
    up = np.cos(np.arange(np.size(rl)) * 0.37).reshape(np.shape(rl))
    r.zero_grad()
    c.zero_grad()
    r.backward(up.tolist())
    c.backward(up)
    compare_gradients(r, c)


@given(gpt_setup())
def test_five_step_adamw_trajectory_with_dropout(candidate, setup):
    config, idx, targets = setup
    if all(t == -100 for row in targets for t in row):
        targets[0][0] = 0
    r, c = pair(candidate, config)
    ropt = reference.AdamW(r.parameters(), lr=1e-2, weight_decay=0.1)
    copt = candidate.AdamW(c.parameters(), lr=1e-2, weight_decay=0.1)
    for step in range(5):
        _, rloss = r(idx, targets)
        _, closs = c(np.array(idx), np.array(targets))
        assert_close(closs, rloss, what=f"loss at step {step}")
        r.zero_grad()
        c.zero_grad()
        r.backward()
        c.backward()
        ropt.step()
        copt.step()
    for name, value in r.state_dict().items():
        assert_close(
            c.state_dict()[name], value, rtol=1e-8, atol=1e-11, what=f"{name} after 5 steps"
        )


@given(gpt_setup(), st.integers(0, 6), st.integers(0, 2**32))
def test_generation_is_identical(candidate, setup, new, seed):
    config, idx, _ = setup
    r, c = pair(candidate, config)
    greedy_r = r.generate(idx, new, temperature=0.0)
    greedy_c = c.generate(np.array(idx), new, temperature=0.0)
    assert np.asarray(greedy_c).tolist() == greedy_r
    sampled_r = r.generate(idx, new, temperature=0.9, top_k=3, top_p=0.9, seed=seed)
    sampled_c = c.generate(np.array(idx), new, temperature=0.9, top_k=3, top_p=0.9, seed=seed)
    assert np.asarray(sampled_c).tolist() == sampled_r
    # the candidate's KV cache never changes the tokens
    nocache = c.generate(np.array(idx), new, temperature=0.9, seed=seed, use_cache=False)
    assert np.array_equal(nocache, c.generate(np.array(idx), new, temperature=0.9, seed=seed))


@given(gpt_setup())
def test_float32_within_derived_tolerance(candidate, setup):
    config, idx, targets = setup
    r, c = pair(candidate, config, dtype="float32")
    rl, rloss = r(idx, targets)
    cl, closs = c(np.array(idx), np.array(targets))
    tol = float32_tol(4 * config.n_embd, depth=2 * config.n_layer + 2)
    assert_close(cl, rl, rtol=tol, atol=tol, what="float32 logits")
    if rloss is not None:
        assert_close(closs, rloss, rtol=tol, atol=tol, what="float32 loss")


def test_determinism(candidate):
    config = GPTConfig(vocab_size=11, block_size=6, n_layer=2, n_head=2, n_embd=8, dropout=0.1)
    idx = np.arange(12).reshape(2, 6) % 11
    runs = []
    for _ in range(2):
        m = candidate_gpt(candidate)(config)
        opt = candidate.AdamW(m.parameters(), lr=1e-2)
        losses = []
        for _ in range(3):
            _, loss = m(idx, (idx + 1) % 11)
            m.zero_grad()
            m.backward()
            opt.step()
            losses.append(loss)
        runs.append((losses, m.state_dict()))
    assert runs[0][0] == runs[1][0]
    for name in runs[0][1]:
        assert np.array_equal(runs[0][1][name], runs[1][1][name]), name


def test_checkpoints_move_between_backends(candidate, tmp_path):
    config = GPTConfig(vocab_size=7, block_size=4, n_layer=1, n_head=2, n_embd=4, seed=5)
    r = RefGPT(config)
    r.save_pretrained(tmp_path / "ref", dtype="float64")
    c = candidate_gpt(candidate).from_pretrained(tmp_path / "ref", dtype="float64")
    idx = [[1, 2, 3], [4, 5, 6]]
    assert_close(c(np.array(idx))[0], r(idx)[0], what="logits after reference -> candidate")
    c.save_pretrained(tmp_path / "cand", dtype="float64")
    assert RefGPT.from_pretrained(tmp_path / "cand").state_dict() == r.state_dict()


@pytest.mark.parametrize(
    "idx, targets",
    [
        ([[1, 2, 3, 4, 5]], None),  # longer than block_size
        ([[1, 7]], None),  # id outside the vocabulary
        ([[1, -1]], None),
        ([[1, 2]], [[1, 9]]),  # target outside the vocabulary
        ([[1, 2]], [[1]]),  # targets of the wrong shape
        ([[1, 2], [3]], None),  # ragged
    ],
)
def test_same_errors(candidate, idx, targets):
    config = GPTConfig(vocab_size=7, block_size=4, n_layer=1, n_head=1, n_embd=2)
    with pytest.raises(ValueError):
        RefGPT(config)(idx, targets)
    with pytest.raises(ValueError):
        candidate_gpt(candidate)(config)(idx, targets)


def test_type_errors(candidate):
    config = GPTConfig(vocab_size=7, block_size=4, n_layer=1, n_head=1, n_embd=2)
    for model in (RefGPT(config), candidate_gpt(candidate)(config)):
        with pytest.raises(TypeError):
            model([[1.5, 2.0]])

"""LLaMA across backends: logits, loss, every gradient, a 5-step AdamW trajectory (attention
dropout on), and generated tokens with and without the cache, on Hypothesis-generated tiny
configs: GQA ratios 1 and 2 and all heads sharing one, head sizes that are not powers of two,
tied and untied heads."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference
from conformance.tolerance import assert_close, assert_same_error, compare_gradients, float32_tol
from reference.llama import Llama as RefLlama
from reference.llama import LlamaConfig


def candidate_llama(candidate):
    if not hasattr(candidate, "Llama"):
        pytest.fail(f"{candidate.__name__} has no Llama")
    return candidate.Llama


@st.composite
def llama_setup(draw):
    n_kv = draw(st.integers(1, 2))
    ratio = draw(st.sampled_from(["multi-head", "pairs", "one"]))
    n_head = {"multi-head": n_kv, "pairs": 2 * n_kv, "one": draw(st.integers(2, 3))}[ratio]
    n_kv = 1 if ratio == "one" else n_kv
    # head sizes 6 and 10 are not powers of two; width at most 20 (the simulator's cost)
    head_dim = draw(st.sampled_from([hs for hs in (2, 4, 6, 10) if n_head * hs <= 20]))
    config = LlamaConfig(
        vocab_size=draw(st.integers(2, 9)),
        hidden_size=n_head * head_dim,
        intermediate_size=draw(st.integers(1, 7)),
        num_hidden_layers=draw(st.integers(1, 2)),
        num_attention_heads=n_head,
        num_key_value_heads=n_kv,
        max_position_embeddings=draw(st.integers(1, 4)),
        rope_theta=draw(st.sampled_from([10000.0, 3.0])),
        tie_word_embeddings=draw(st.booleans()),
        attention_dropout=draw(st.sampled_from([0.0, 0.2])),
        initializer_range=0.3,  # large enough that attention is not uniform
        seed=draw(st.integers(0, 2**32)),
    )
    # (small: the CUDA candidate runs these in the simulator, one Python thread per GPU thread)
    B = draw(st.integers(1, 2))
    T = draw(st.integers(1, config.max_position_embeddings))
    ids = st.integers(0, config.vocab_size - 1)
    idx = [[draw(ids) for _ in range(T)] for _ in range(B)]
    targets = [[draw(ids | st.just(-100)) for _ in range(T)] for _ in range(B)]
    return config, idx, targets


def pair(candidate, config, dtype="float64"):
    r = RefLlama(config)
    c = candidate_llama(candidate)(config, dtype=dtype)
    c.load_state_dict(r.state_dict())
    return r, c


@given(llama_setup())
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


@given(llama_setup())
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


@given(llama_setup())
def test_five_step_adamw_trajectory_with_dropout(candidate, setup):
    config, idx, targets = setup
    if all(t == -100 for row in targets for t in row):
        targets[0][0] = 0
    r, c = pair(candidate, config)
    # eps 1e-6 as for BERT and the Transformer: Adam divides a gradient that is 0 in exact
    # arithmetic (rounding noise, ~1e-17) by its own RMS + eps, magnifying the noise by 1/eps
    ropt = reference.AdamW(r.parameters(), lr=1e-2, weight_decay=0.1, eps=1e-6)
    copt = candidate.AdamW(c.parameters(), lr=1e-2, weight_decay=0.1, eps=1e-6)
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


@given(llama_setup(), st.integers(0, 4), st.integers(0, 2**32))
def test_generation_is_identical_with_and_without_the_cache(candidate, setup, new, seed):
    config, idx, _ = setup
    r, c = pair(candidate, config)
    greedy_r = r.generate(idx, new, temperature=0.0)
    assert np.asarray(c.generate(np.array(idx), new, temperature=0.0)).tolist() == greedy_r
    sampled_r = r.generate(idx, new, temperature=0.9, top_k=3, top_p=0.9, seed=seed)
    sampled_c = c.generate(np.array(idx), new, temperature=0.9, top_k=3, top_p=0.9, seed=seed)
    assert np.asarray(sampled_c).tolist() == sampled_r
    nocache_r = r.generate(idx, new, temperature=0.9, seed=seed, use_cache=False)
    nocache_c = c.generate(np.array(idx), new, temperature=0.9, seed=seed, use_cache=False)
    assert np.asarray(nocache_c).tolist() == nocache_r
    assert nocache_r == r.generate(idx, new, temperature=0.9, seed=seed)


@given(llama_setup())
def test_float32_within_derived_tolerance(candidate, setup):
    config, idx, targets = setup
    r, c = pair(candidate, config, dtype="float32")
    rl, rloss = r(idx, targets)
    cl, closs = c(np.array(idx), np.array(targets))
    C, I = config.hidden_size, config.intermediate_size
    tol = float32_tol(max(C, I), depth=2 * config.num_hidden_layers + 2)
    assert_close(cl, rl, rtol=tol, atol=tol, what="float32 logits")
    if rloss is not None:
        assert_close(closs, rloss, rtol=tol, atol=tol, what="float32 loss")


def test_checkpoints_move_between_backends(candidate, tmp_path):
    config = LlamaConfig(
        vocab_size=7, hidden_size=12, intermediate_size=5, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4, seed=5,
    )  # fmt: skip
    r = RefLlama(config)
    r.save_pretrained(tmp_path / "ref", dtype="float64")
    c = candidate_llama(candidate).from_pretrained(tmp_path / "ref", dtype="float64")
    idx = [[1, 2, 3], [4, 5, 6]]
    assert_close(c(np.array(idx))[0], r(idx)[0], what="logits after reference -> candidate")
    c.save_pretrained(tmp_path / "cand", dtype="float64")
    assert RefLlama.from_pretrained(tmp_path / "cand").state_dict() == r.state_dict()


TINY = dict(
    vocab_size=7, hidden_size=4, intermediate_size=3, num_hidden_layers=1,
    num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4,
)  # fmt: skip


@pytest.mark.parametrize(
    "idx, targets",
    [
        ([[1, 2, 3, 4, 5]], None),  # longer than max_position_embeddings
        ([[1, 7]], None),  # id outside the vocabulary
        ([[1, -1]], None),
        ([[1, 2]], [[1, 9]]),  # target outside the vocabulary
        ([[1, 2]], [[1]]),  # targets of the wrong shape
        ([[1, 2], [3]], None),  # ragged
    ],
)
def test_same_errors(candidate, idx, targets):
    config = LlamaConfig(**TINY)
    with pytest.raises(ValueError):
        RefLlama(config)(idx, targets)
    with pytest.raises(ValueError):
        candidate_llama(candidate)(config)(idx, targets)


@pytest.mark.parametrize(
    "change",
    [
        dict(num_attention_heads=3),  # does not divide hidden_size
        dict(hidden_size=6, num_attention_heads=3, num_key_value_heads=3),  # head size 2 ok
        dict(hidden_size=6, num_attention_heads=2),  # odd head size 3
        dict(num_key_value_heads=3),
        dict(num_key_value_heads=0),
        dict(rope_theta=0.0),
        dict(rms_norm_eps=float("nan")),
        dict(tie_word_embeddings="yes"),
    ],
)
def test_same_config_errors(candidate, change):
    assert_same_error(
        lambda: reference.LlamaConfig(**{**TINY, **change}),
        lambda: candidate.LlamaConfig(**{**TINY, **change}),
        must_raise=False,
    )

"""fast's LLaMA on its own: finite differences, causality, padding, the KV cache (its memory
scales with the KV heads), dtypes, bad input, and a checkpoint transformers loads with the same
logits."""

import os

import numpy as np
import pytest

from fast.llama import Llama, LlamaConfig

H = 1e-6
CONFIG = LlamaConfig(
    vocab_size=11,
    hidden_size=12,
    intermediate_size=10,
    num_hidden_layers=2,
    num_attention_heads=6,
    num_key_value_heads=2,
    max_position_embeddings=6,
    initializer_range=0.2,
    seed=1,
)


def model(dtype="float64", **over):
    return Llama(LlamaConfig(**{**CONFIG.__dict__, **over}), dtype=dtype)


@pytest.mark.parametrize("tied", [False, True])
def test_gradients_match_finite_differences(tied):
    m = model(tie_word_embeddings=tied)
    idx = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    tg = np.array([[2, 3, 4, 5], [6, 7, 8, -100]])
    m(idx, tg)
    m.zero_grad()
    m.backward()
    rng = np.random.default_rng(0)
    for name, p in m.named_parameters():
        flat, grad = p.data.reshape(-1), p.grad.reshape(-1)
        for i in rng.choice(flat.size, size=min(3, flat.size), replace=False):
            old = flat[i]
            flat[i] = old + H
            lp = m(idx, tg)[1]
            flat[i] = old - H
            lm = m(idx, tg)[1]
            flat[i] = old
            assert grad[i] == pytest.approx((lp - lm) / (2 * H), rel=1e-5, abs=1e-9), name


def test_causality_and_right_padding():
    m = model()
    idx = np.array([[1, 2, 3, 4, 5, 6]])
    base, _ = m(idx)
    for t in range(6):
        changed = idx.copy()
        changed[0, t] = (changed[0, t] + 3) % 11
        logits, _ = m(changed)
        np.testing.assert_array_equal(logits[0, :t], base[0, :t])
        assert not np.allclose(logits[0, t:], base[0, t:])
    _, loss = m(idx[:, :4], idx[:, 1:5])
    padded_targets = np.array([[2, 3, 4, 5, -100, -100]])
    padded, padded_loss = m(np.array([[1, 2, 3, 4, 0, 0]]), padded_targets)
    np.testing.assert_array_equal(padded[0, :4], base[0, :4])
    assert padded_loss == pytest.approx(loss, rel=1e-14)


@pytest.mark.parametrize("n_kv", [1, 2, 6])
def test_kv_cache_holds_only_the_kv_heads(n_kv):
    m = model(num_key_value_heads=n_kv)
    cache = m.new_kv_cache(3)
    hs, L, T = 2, 2, 6  # head size 12 / 6
    assert cache.keys.shape == cache.values.shape == (L, 3, T, n_kv * hs)
    assert cache.keys.nbytes + cache.values.nbytes == 2 * L * 3 * T * n_kv * hs * 8
    m._last_logits(np.array([[1, 2], [3, 4], [5, 6]]), cache)
    assert cache.length == 2


def test_kv_cache_equals_no_cache_past_max_positions():
    m = model()
    idx = np.array([[1, 2, 3], [4, 5, 6]])
    a = m.generate(idx, 9, temperature=0.7, seed=4)
    b = m.generate(idx, 9, temperature=0.7, seed=4, use_cache=False)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (2, 12)


def test_dtypes_and_training_mode_restored():
    m = model(dtype="float32")
    logits, loss = m(np.array([[1, 2]]), np.array([[2, 3]]))
    assert logits.dtype == np.float32 and isinstance(loss, float)
    assert all(p.data.dtype == np.float32 for p in m.parameters())
    m.train()
    m.generate(np.array([[1]]), 2)
    assert m.training


@pytest.mark.parametrize(
    "idx, targets, error, match",
    [
        (np.array([[1] * 7]), None, ValueError, "exceeds max_position_embeddings=6"),
        (np.array([[1, 11]]), None, ValueError, r"token id 11 out of range for vocab_size 11"),
        (np.array([[1.0, 2.0]]), None, TypeError, "must hold ints"),
        (np.array([[1, 2]]), np.array([[1, 12]]), ValueError, "target id 12 out of range"),
        (np.array([[1, 2]]), np.array([[1]]), ValueError, "targets must have the shape"),
        (np.array([1, 2]), None, ValueError, r"shape \(B, T\)"),
    ],
)
def test_bad_input_is_caught_before_any_kernel(idx, targets, error, match):
    with pytest.raises(error, match=match):
        model()(idx, targets)


def test_backward_needs_a_forward():
    with pytest.raises(RuntimeError, match="before forward"):
        model().backward()


def test_huggingface_loads_our_checkpoint(tmp_path):
    os.environ["HF_HUB_OFFLINE"] = "1"
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    m = model()
    m.save_pretrained(tmp_path, dtype="float64")
    hf = transformers.LlamaForCausalLM.from_pretrained(tmp_path, dtype=torch.float64).eval()
    idx = np.array([[1, 2, 3, 4], [7, 8, 9, 10]])
    with torch.no_grad():
        theirs = hf(torch.tensor(idx)).logits.numpy()
    # transformers takes the RMS statistic, the rotary angles and the softmax in float32
    np.testing.assert_allclose(m(idx)[0], theirs, rtol=1e-5, atol=1e-6)
    again = Llama.from_pretrained(tmp_path, dtype="float64")
    np.testing.assert_array_equal(again(idx)[0], m(idx)[0])

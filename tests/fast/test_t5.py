"""fast/t5.py on its own: finite differences in float64 for a sample of parameters, padding
invariance, causality, float32 kept end to end, Hugging Face `transformers` loading our float32
checkpoint and ours loading theirs, and a short training run that learns."""

import numpy as np
import pytest

from fast.t5 import T5, T5Config

PAD, EOS = 0, 1
SRC = np.array([[3, 4, 5, 6], [7, 8, PAD, PAD]])
TGT = np.array([[PAD, 3, 4, PAD, PAD], [PAD, 5, 6, 7, 8]])
TARGETS = np.array([[3, 4, EOS, PAD, PAD], [5, 6, 7, 8, EOS]])


def tiny(**overrides) -> T5Config:
    sizes = dict(
        vocab_size=10, d_model=6, d_kv=2, d_ff=7, num_layers=2, num_decoder_layers=1,
        num_heads=2, relative_attention_num_buckets=6, relative_attention_max_distance=8,
        dropout_rate=0.0, max_len=6, seed=3,
    )  # fmt: skip
    sizes.update(overrides)
    return T5Config(**sizes)


@pytest.mark.parametrize("proj,tied", [("relu", True), ("gated-gelu", False)])
def test_gradients_match_finite_differences(proj, tied):
    model = T5(tiny(feed_forward_proj=proj, tie_word_embeddings=tied), dtype="float64")
    model(SRC, TGT, TARGETS)
    model.zero_grad()
    model.backward()
    rng = np.random.default_rng(0)
    for name, p in model.named_parameters():
        for flat in rng.choice(p.data.size, size=min(3, p.data.size), replace=False):
            i = np.unravel_index(flat, p.shape)
            saved = p.data[i]
            p.data[i] = saved + 1e-6
            up = model(SRC, TGT, TARGETS)[1]
            p.data[i] = saved - 1e-6
            down = model(SRC, TGT, TARGETS)[1]
            p.data[i] = saved
            assert p.grad[i] == pytest.approx((up - down) / 2e-6, rel=1e-5, abs=1e-8), (name, i)


def test_padding_and_causality():
    model = T5(tiny(), dtype="float64")
    logits, _ = model(SRC, TGT)
    alone, _ = model(SRC[1:, :2], TGT[1:])
    np.testing.assert_allclose(alone[0], logits[1], atol=1e-12)
    changed = TGT.copy()
    changed[:, 3] = 9
    later, _ = model(SRC, changed)
    np.testing.assert_allclose(later[:, :3], logits[:, :3], atol=1e-12)


def test_float32_is_kept_end_to_end():
    model = T5(tiny(feed_forward_proj="gated-gelu"))
    logits, loss = model(SRC, TGT, TARGETS)
    assert logits.dtype == np.float32 and isinstance(loss, float)
    model.zero_grad()
    model.backward()
    assert all(p.grad.dtype == np.float32 for p in model.parameters())


def test_a_short_run_learns():
    """150 AdamW steps on copying 4 tokens: the loss falls well below its start (ln 12)."""
    from fast import AdamW

    model = T5(tiny(vocab_size=12, d_model=16, d_kv=8, d_ff=32, max_len=6, seed=1))
    opt = AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    rng = np.random.default_rng(0)
    losses = []
    for _ in range(150):
        src = rng.integers(2, 12, size=(16, 4))
        eos = np.ones((16, 1), np.int64)
        tgt = np.concatenate([np.zeros((16, 1), np.int64), src], axis=1)
        _, loss = model(np.concatenate([src, eos], 1), tgt, np.concatenate([src, eos], 1))
        model.zero_grad()
        model.backward()
        opt.step()
        losses.append(loss)
    assert np.mean(losses[-10:]) < 0.6 * losses[0], (losses[0], losses[-10:])


@pytest.fixture(scope="module")
def hf():
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    return torch, transformers


def test_transformers_loads_our_float32_checkpoint(hf, tmp_path):
    torch, transformers = hf
    model = T5(tiny(feed_forward_proj="gated-gelu", tie_word_embeddings=False)).eval()
    model.save_pretrained(tmp_path)  # float32
    theirs = transformers.T5ForConditionalGeneration.from_pretrained(tmp_path).eval()
    dmask = torch.tensor(TGT != PAD).long()
    dmask[:, 0] = 1
    with torch.no_grad():
        expected = theirs(
            input_ids=torch.tensor(SRC), attention_mask=torch.tensor(SRC != PAD).long(),
            decoder_input_ids=torch.tensor(TGT), decoder_attention_mask=dmask,
        ).logits.numpy()  # fmt: skip
    logits, _ = model(SRC, TGT)
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)


def test_we_load_a_transformers_checkpoint(hf, tmp_path):
    torch, transformers = hf
    cfg = transformers.T5Config(
        vocab_size=10, d_model=6, d_kv=2, d_ff=7, num_layers=2, num_decoder_layers=1,
        num_heads=2, relative_attention_num_buckets=6, relative_attention_max_distance=8,
        dropout_rate=0.0, decoder_start_token_id=0,
    )  # fmt: skip
    torch.manual_seed(1)
    theirs = transformers.T5ForConditionalGeneration(cfg).eval()
    theirs.save_pretrained(tmp_path)
    ours = T5.from_pretrained(tmp_path, dtype="float64")
    assert not ours.training
    with torch.no_grad():
        expected = theirs(
            input_ids=torch.tensor([[3, 4, 5]]), decoder_input_ids=torch.tensor([[0, 3]])
        ).logits.numpy()
    logits, _ = ours([[3, 4, 5]], [[0, 3]])
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda: T5(tiny(), dtype="int8"), ValueError, "dtype"),
        (lambda: T5(tiny(), device="tpu"), ValueError, "device must be 'cpu' or 'cuda'"),
        (lambda: T5(tiny())(SRC, TGT[:1]), ValueError, "one row per source"),
        (lambda: T5(tiny()).backward(), RuntimeError, "call forward before backward"),
    ],
)
def test_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()

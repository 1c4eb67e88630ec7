"""fast/seq2seq.py on its own: finite differences in float64, padding invariance, causality,
decoding, validation errors and the float32 dtype kept end to end."""

import numpy as np
import pytest

from fast.seq2seq import Transformer, TransformerConfig

PAD, BOS, EOS = 0, 1, 2
SRC = np.array([[3, 4, 5, 6], [7, 8, PAD, PAD]])
TGT = np.array([[BOS, 3, 4, PAD, PAD], [BOS, 5, 6, 7, 8]])
TARGETS = np.array([[3, 4, EOS, PAD, PAD], [5, 6, 7, 8, EOS]])


def tiny(**overrides) -> TransformerConfig:
    sizes = dict(
        src_vocab_size=9,
        tgt_vocab_size=10,
        d_model=4,
        nhead=2,
        num_encoder_layers=1,
        num_decoder_layers=2,
        dim_feedforward=6,
        dropout=0.0,
        max_len=6,
        seed=3,
    )
    sizes.update(overrides)
    return TransformerConfig(**sizes)


def jittered(model: Transformer, seed: int = 0) -> Transformer:
    """Weights off their initial values (layer norms 1, biases 0), so no gradient is trivial."""
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.data += rng.uniform(-0.5, 0.5, p.shape)
    return model


FD_PARAMS = [
    "src_embed.weight",
    "transformer.encoder.layers.0.self_attn.in_proj_weight",
    "transformer.encoder.norm.weight",
    "transformer.decoder.layers.0.self_attn.in_proj_bias",
    "transformer.decoder.layers.1.multihead_attn.in_proj_weight",
    "transformer.decoder.layers.1.multihead_attn.in_proj_bias",
    "transformer.decoder.layers.0.linear1.weight",
    "transformer.decoder.layers.1.norm3.bias",
    "generator.weight",
]


@pytest.mark.parametrize("name", FD_PARAMS)
def test_gradients_match_finite_differences(name):
    model = jittered(Transformer(tiny(), dtype="float64"))
    _, loss = model(SRC, TGT, TARGETS)
    model.zero_grad()
    model.backward()
    p = dict(model.named_parameters())[name]
    rng = np.random.default_rng(1)
    flat = p.data.reshape(-1)
    for i in rng.choice(flat.size, size=min(6, flat.size), replace=False):
        old, h = flat[i], 1e-6
        flat[i] = old + h
        up = model(SRC, TGT, TARGETS)[1]
        flat[i] = old - h
        down = model(SRC, TGT, TARGETS)[1]
        flat[i] = old
        numeric = (up - down) / (2 * h)
        analytic = p.grad.reshape(-1)[i]
        assert abs(numeric - analytic) <= 1e-6 + 1e-5 * abs(numeric), (name, i, numeric, analytic)


def test_padding_changes_nothing_at_real_positions():
    model = jittered(Transformer(tiny(), dtype="float64")).eval()
    logits, loss = model(SRC, TGT, TARGETS)
    more_pad = lambda a: np.pad(a, ((0, 0), (0, 1)), constant_values=PAD)  # noqa: E731
    logits2, loss2 = model(more_pad(SRC), more_pad(TGT), more_pad(TARGETS))
    np.testing.assert_allclose(logits2[:, : TGT.shape[1]], logits, rtol=1e-12, atol=1e-12)
    assert loss2 == pytest.approx(loss, rel=1e-12)
    # a row's result does not depend on the other rows of the batch
    alone, _ = model(SRC[1:], TGT[1:])
    np.testing.assert_allclose(alone[0], logits[1], rtol=1e-12, atol=1e-12)


def test_decoder_is_causal_and_source_padding_is_ignored():
    model = jittered(Transformer(tiny(), dtype="float64")).eval()
    logits, _ = model(SRC, TGT)
    changed = TGT.copy()
    changed[:, 3] = 9
    logits2, _ = model(SRC, changed)
    np.testing.assert_array_equal(logits2[:, :3], logits[:, :3])  # positions before 3: same
    assert not np.allclose(logits2[:, 3:], logits[:, 3:])
    src = SRC.copy()
    src[1, 2:] = 5  # not padding any more: row 1 changes, row 0 does not
    logits3, _ = model(src, TGT)
    np.testing.assert_allclose(logits3[0], logits[0], rtol=1e-12, atol=1e-12)
    assert not np.allclose(logits3[1], logits[1])


def test_beam_width_one_is_greedy_and_decoding_keeps_the_mode():
    model = jittered(Transformer(tiny(dropout=0.3), dtype="float64"), seed=4)
    greedy = model.greedy_decode(SRC, max_len=5)
    assert greedy == model.beam_search(SRC, beam_width=1, max_len=5)
    assert greedy == [model.greedy_decode(SRC[b : b + 1], max_len=5)[0] for b in range(2)]
    assert all(EOS not in row and len(row) <= 5 for row in greedy)  # bos only if generated
    assert model.training and model.dropout_step == 0
    wide = model.beam_search(SRC, beam_width=3, max_len=5, length_penalty=0.6)
    assert len(wide) == 2 and all(isinstance(t, int) for row in wide for t in row)


def test_dropout_step_counts_training_forwards_only():
    model = Transformer(tiny(dropout=0.5))
    a, _ = model(SRC, TGT)
    b, _ = model(SRC, TGT)
    assert model.dropout_step == 2 and not np.array_equal(a, b)  # fresh masks each step
    model.eval()
    c, _ = model(SRC, TGT)
    d, _ = model(SRC, TGT)
    assert model.dropout_step == 2 and np.array_equal(c, d)


def test_float32_is_kept_end_to_end():
    model = Transformer(tiny())
    assert all(p.data.dtype == np.float32 for p in model.parameters())
    memory = model.encode(SRC)
    assert memory.dtype == np.float32 and memory.shape == (2, 4, 4)
    assert model.decode(TGT, memory, SRC).dtype == np.float32
    logits, loss = model(SRC, TGT, TARGETS)
    assert logits.dtype == np.float32 and logits.shape == (2, 5, 10) and np.isfinite(loss)
    model.backward()
    assert all(p.grad.dtype == np.float32 for p in model.parameters())
    model.zero_grad()
    model(SRC, TGT)
    model.backward(np.ones((2, 5, 10)))  # float64 dlogits are cast to the model's dtype
    assert all(p.grad.dtype == np.float32 for p in model.parameters())


def test_checkpoint_round_trip_keeps_dtype(tmp_path):
    model = jittered(Transformer(tiny(), dtype="float64"))
    model.save_pretrained(tmp_path, dtype="float64")
    back = Transformer.from_pretrained(tmp_path, dtype="float64")
    for (name, p), (_, q) in zip(model.named_parameters(), back.named_parameters()):
        np.testing.assert_array_equal(q.data, p.data, err_msg=name)
    assert Transformer.from_pretrained(tmp_path).dtype == np.float32


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda m: m(SRC.astype(float), TGT), TypeError, r"src\[0\]\[0\] must be an int"),
        (lambda m: m(SRC, TGT[:1]), ValueError, "one row per source"),
        (lambda m: m(SRC + 9, TGT), ValueError, "out of range for src_vocab_size=9"),
        (lambda m: m(np.ones((2, 7), int), TGT), ValueError, "longer than max_len=6"),
        (lambda m: m(SRC, TGT, TARGETS[:, :2]), ValueError, "targets must have tgt's shape"),
        (lambda m: m(SRC, TGT, TARGETS - 5), ValueError, "use -100 or pad_id=0"),
        (lambda m: m.backward(), RuntimeError, "call forward before backward"),
        (lambda m: m.decode(TGT, np.zeros((2, 4, 3)), SRC), ValueError, "memory must have"),
        (lambda m: m.greedy_decode(SRC, max_len=7), ValueError, r"max_len must be in \[1, 6\]"),
        (lambda m: m.beam_search(SRC, beam_width=0), ValueError, "beam_width"),
        (lambda m: Transformer(tiny(), dtype="float16"), ValueError, "dtype"),
        (lambda m: Transformer({"d_model": 4}), TypeError, "must be a TransformerConfig"),
    ],
)
def test_validation_errors(call, error, match):
    model = Transformer(tiny())
    with pytest.raises(error, match=match):
        call(model)


def test_backward_needs_a_loss_or_dlogits_of_the_right_shape():
    model = Transformer(tiny())
    model(SRC, TGT)
    with pytest.raises(RuntimeError, match="without targets"):
        model.backward()
    with pytest.raises(ValueError, match="dlogits must have shape"):
        model.backward(np.zeros((2, 5, 9)))

"""reference/t5_layers.py and reference/t5.py: finite differences for every new op and every
parameter of a tiny T5, Hugging Face `T5ForConditionalGeneration` as the oracle both ways,
causality, padding invariance, decoding, checkpoints and bad input."""

import json
import math

import pytest

from reference.losses import log_softmax
from reference.nested import flatten
from reference.t5 import T5, T5Config
from reference.t5_layers import (
    gated_gelu_backward,
    gated_gelu_forward,
    relative_position_bias_backward,
    relative_position_bias_forward,
    relative_position_bucket,
    relative_position_buckets,
    t5_attention_backward,
    t5_attention_forward,
    t5_layer_norm_backward,
    t5_layer_norm_forward,
)
from tests.reference.gradcheck import (
    assert_close,
    check_op_gradients,
    numerical_gradient,
    random_tensor,
)

PAD, EOS = 0, 1


def tiny(**overrides) -> T5Config:
    """The finite-difference size: V=7, C=4, H=2, hs=3, F=5, one block each (two in the encoder,
    so a block reuses the first one's bias)."""
    sizes = dict(
        vocab_size=7, d_model=4, d_kv=3, d_ff=5, num_layers=2, num_decoder_layers=1,
        num_heads=2, relative_attention_num_buckets=4, relative_attention_max_distance=6,
        dropout_rate=0.0, max_len=6, seed=1,
    )  # fmt: skip
    sizes.update(overrides)
    return T5Config(**sizes)


def small(**overrides) -> T5Config:
    sizes = dict(
        vocab_size=11, d_model=8, d_kv=3, d_ff=12, num_layers=2, num_heads=2,
        relative_attention_num_buckets=8, relative_attention_max_distance=12, dropout_rate=0.0,
        max_len=10, seed=3,
    )  # fmt: skip
    sizes.update(overrides)
    return T5Config(**sizes)


SRC = [[3, 4, 5, 6, PAD], [7, 8, PAD, PAD, PAD], [4, 4, 4, 4, 4]]
TGT = [[PAD, 3, 4, PAD, PAD, PAD], [PAD, 5, 6, 7, 8, PAD], [PAD, 9, 10, 3, 4, 5]]
TARGETS = [[3, 4, EOS, -100, -100, -100], [5, 6, 7, 8, EOS, -100], [9, 10, 3, 4, 5, EOS]]


# -- the ops ---------------------------------------------------------------------------------------
def test_t5_layer_norm_gradients_and_values():
    x, w = random_tensor((2, 3, 5), 1), random_tensor((5,), 2)
    dout = random_tensor((2, 3, 5), 3)
    out, cache = t5_layer_norm_forward(x, w, 1e-6)
    row = x[1][2]
    r = 1.0 / math.sqrt(sum(v * v for v in row) / 5 + 1e-6)
    assert out[1][2] == pytest.approx([wi * v * r for wi, v in zip(w, row)], rel=1e-14)
    dx, dw = t5_layer_norm_backward(dout, cache)
    check_op_gradients(
        lambda x, w: t5_layer_norm_forward(x, w, 1e-6)[0], {"x": x, "w": w}, dout,
        {"x": dx, "w": dw},
    )  # fmt: skip


def test_relative_position_buckets_by_hand():
    # bidirectional, 8 buckets: offsets 0, -1 exact (0, 1); positive ones from 4; far ones share
    row = relative_position_buckets(1, 9, True, 8, 16)[0]  # offsets 0 .. 8
    assert row == [relative_position_bucket(d, True, 8, 16) for d in range(9)]
    assert row[:3] == [0, 5, 6]
    assert relative_position_bucket(-1000, True, 8, 16) == 3  # the last bucket of its half
    causal = relative_position_buckets(3, 3, False, 4, 8)
    assert causal == [[0, 0, 0], [1, 0, 0], [2, 1, 0]]  # the future shares bucket 0


def test_relative_position_bias_gradients():
    table = random_tensor((4, 2), 4)
    dout = random_tensor((2, 3, 5), 5)
    bias, cache = relative_position_bias_forward(table, 3, 5, True, 6)
    buckets = relative_position_buckets(3, 5, True, 4, 6)
    assert bias[1][2][4] == table[buckets[2][4]][1]
    dtable = relative_position_bias_backward(dout, cache)
    check_op_gradients(
        lambda table: relative_position_bias_forward(table, 3, 5, True, 6)[0],
        {"table": table}, dout, {"table": dtable},
    )  # fmt: skip


@pytest.mark.parametrize("causal,padding,p", [(False, None, 0.0), (True, [[0, 0, 1]], 0.4)])
def test_t5_attention_gradients(causal, padding, p):
    q, k, v = (
        random_tensor((1, 2, 3, 2), 6),
        random_tensor((1, 2, 3, 2), 7),
        random_tensor((1, 2, 3, 2), 8),
    )
    bias, dout = random_tensor((2, 3, 3), 9), random_tensor((1, 2, 3, 2), 10)

    def f(q, k, v, bias):
        return t5_attention_forward(q, k, v, bias, causal, padding, p, 3, 5)[0]

    out, cache = t5_attention_forward(q, k, v, bias, causal, padding, p, 3, 5)
    dq, dk, dv, dbias = t5_attention_backward(dout, cache)
    assert cache.scale == 1.0
    check_op_gradients(
        f, {"q": q, "k": k, "v": v, "bias": bias}, dout, {"q": dq, "k": dk, "v": dv, "bias": dbias}
    )


def test_t5_attention_is_unscaled():
    """hs = 4: a 1/sqrt(hs) scale would halve the scores; T5's attention adds the bias and
    takes the softmax of q k^T + bias as it is."""
    q = k = [[[[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]]]]
    v = [[[[1.0, 0.0, 0.0, 0.0], [3.0, 0.0, 0.0, 0.0]]]]
    out, cache = t5_attention_forward(q, k, v, [[[0.0, 0.5], [0.0, 0.0]]])
    w = 1.0 / (1.0 + math.exp(0.5 - 4.0))  # scores 4 and 0 + 0.5
    assert out[0][0][0][0] == pytest.approx(w * 1.0 + (1 - w) * 3.0, rel=1e-14)
    assert cache.scale == 1.0


def test_gated_gelu_gradients():
    gate, up, dout = random_tensor((2, 5), 11), random_tensor((2, 5), 12), random_tensor((2, 5), 13)
    _, cache = gated_gelu_forward(gate, up)
    dgate, dup = gated_gelu_backward(dout, cache)
    check_op_gradients(
        lambda gate, up: gated_gelu_forward(gate, up)[0], {"gate": gate, "up": up}, dout,
        {"gate": dgate, "up": dup},
    )  # fmt: skip


@pytest.mark.parametrize(
    "call,error,words",
    [
        (lambda: t5_layer_norm_forward([[1.0, 2.0]], [1.0], 1e-6), ValueError, "x must have shape"),
        (lambda: t5_layer_norm_forward([[1.0]], [1.0], 0.0), ValueError, "eps"),
        (lambda: relative_position_bucket(1.5), TypeError, "relative_position must be an int"),
        (lambda: relative_position_bucket(1, True, 3, 8), ValueError, "num_buckets"),
        (lambda: relative_position_bucket(1, True, 8, 2), ValueError, "max_distance"),
        (lambda: relative_position_bias_forward([1.0], 2, 2), ValueError, "num_buckets, H"),
        (
            lambda: t5_attention_forward([[[[1.0]]]], [[[[1.0]]]], [[[[1.0]]]], [[[1.0, 2.0]]]),
            ValueError,
            "position_bias must have shape",
        ),
        (lambda: gated_gelu_forward([1.0], [1.0, 2.0]), ValueError, "up must have the shape"),
    ],
)
def test_op_errors(call, error, words):
    with pytest.raises(error, match=words):
        call()


# -- the model: every parameter by finite differences ------------------------------------------
@pytest.mark.parametrize("proj,tied", [("relu", True), ("gated-gelu", False)])
def test_gradients_of_every_parameter_with_dropout(proj, tied):
    model = T5(tiny(feed_forward_proj=proj, tie_word_embeddings=tied, dropout_rate=0.3))
    src = [[3, 4, 5], [5, 6, PAD]]
    tgt = [[PAD, 4, 3, 5], [PAD, 6, 3, PAD]]
    targets = [[4, 3, 5, EOS], [6, -100, EOS, PAD]]

    def loss():
        model.dropout_step = 5  # replay the same dropout masks
        return model(src, tgt, targets)[1]

    model.zero_grad()
    loss()
    model.backward()
    names = []
    for name, p in model.named_parameters():
        assert_close(p.grad, numerical_gradient(loss, p.data), f"d/d{name}")
        names.append(name)
    # shared, enc: 2 blocks x (4 attn + ln + ff + ln) + bias table + final; dec: + cross, final
    ff = 2 if proj == "relu" else 3
    assert len(names) == 1 + (2 * (6 + ff) + 1 + 1) + (1 * (11 + ff) + 1 + 1) + (0 if tied else 1)
    with_dropout = loss()
    model.eval()
    assert abs(model(src, tgt, targets)[1] - with_dropout) > 1e-3


def test_loss_is_the_mean_over_counted_positions():
    model = T5(tiny())
    src, tgt = [[3, 4], [5, PAD]], [[PAD, 3, 4], [PAD, 5, PAD]]
    logits, loss = model(src, tgt, [[3, 4, EOS], [5, EOS, PAD]])
    terms = [
        -log_softmax(logits[b][t])[y]
        for b, t, y in [(0, 0, 3), (0, 1, 4), (0, 2, EOS), (1, 0, 5), (1, 1, EOS)]
    ]
    assert loss == pytest.approx(sum(terms) / 5, rel=1e-13)


# -- masks -----------------------------------------------------------------------------------------
def test_decoder_is_causal():
    model = T5(small())
    base, _ = model(SRC, TGT)
    for t in range(1, 6):
        changed = [row[:t] + [(row[t] + 1) % 11] + row[t + 1 :] for row in TGT]
        logits, _ = model(SRC, changed)
        for b in range(3):
            for s in range(t):
                assert logits[b][s] == pytest.approx(base[b][s], abs=1e-12)


def test_padding_never_changes_the_unpadded_positions():
    """Each row alone, unpadded, gives the logits it gets in the padded batch."""
    model = T5(small())
    batch, _ = model(SRC, TGT)
    for b in range(3):
        ns = len([i for i in SRC[b] if i != PAD])
        nt = 1 + len([i for i in TGT[b][1:] if i != PAD])
        alone, _ = model([SRC[b][:ns]], [TGT[b][:nt]])
        for t in range(nt):
            assert alone[0][t] == pytest.approx(batch[b][t], abs=1e-12)
    more, _ = model([row + [PAD, PAD] for row in SRC], [row + [PAD] for row in TGT])
    assert more[2][5] == pytest.approx(batch[2][5], abs=1e-12)


# -- decoding --------------------------------------------------------------------------------------
def test_greedy_and_beam_decoding():
    model = T5(small(seed=5))
    src = [[3, 4, 5], [6, 7, PAD]]
    greedy = model.greedy_decode(src, max_len=5)
    assert greedy == model.beam_search(src, beam_width=1, max_len=5)
    assert len(greedy) == 2 and all(len(g) <= 5 for g in greedy)
    # greedy is the argmax, step by step
    memory = model.encode(src[:1])
    tgt = [PAD]
    for _ in range(len(greedy[0])):
        row = model.decode([tgt], memory, src[:1])[0][-1]
        tgt.append(max(range(11), key=lambda v: (row[v], -v)))
    assert tgt[1:] == greedy[0]
    beams = model.beam_search(src, beam_width=3, max_len=4)
    assert len(beams) == 2


# -- checkpoints and Hugging Face ----------------------------------------------------------------
def test_save_and_load_pretrained(tmp_path):
    model = T5(tiny(feed_forward_proj="gated-gelu", tie_word_embeddings=False, seed=9))
    model.save_pretrained(tmp_path, dtype="float64")
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "t5" and config["architectures"] == [
        "T5ForConditionalGeneration"
    ]
    assert config["tie_word_embeddings"] is False and config["model_archaeology"]["seed"] == 9
    again = T5.from_pretrained(tmp_path)
    assert again.config == model.config and not again.training
    assert again.state_dict() == model.state_dict()


@pytest.mark.parametrize(
    "overrides,error,words",
    [
        ({"feed_forward_proj": "gated-silu"}, ValueError, "feed_forward_proj"),
        ({"d_model": 0}, ValueError, "d_model"),
        ({"num_heads": 2.0}, TypeError, "num_heads"),
        ({"relative_attention_num_buckets": 2}, ValueError, "num_buckets"),
        ({"relative_attention_max_distance": 1}, ValueError, "max_distance"),
        ({"dropout_rate": 1.0}, ValueError, "dropout_rate"),
        ({"eos_token_id": 0}, ValueError, "must differ"),
        ({"pad_token_id": 7}, ValueError, "pad_token_id"),
        ({"tie_word_embeddings": 1}, TypeError, "tie_word_embeddings"),
        ({"seed": -1}, ValueError, "seed"),
    ],
)
def test_config_errors(overrides, error, words):
    with pytest.raises(error, match=words):
        tiny(**overrides)


@pytest.mark.parametrize(
    "config,words",
    [
        ({"model_type": "bart"}, "not a T5 config"),
        ({"feed_forward_proj": "gated-silu"}, "feed_forward_proj"),
        ({"is_decoder": True}, "encoder-decoder"),
    ],
)
def test_config_json_refuses_other_variants(config, words):
    with pytest.raises(ValueError, match=words):
        T5Config.from_dict({"vocab_size": 7, **config})


@pytest.mark.parametrize(
    "src,tgt,targets,error,words",
    [
        ([[1, 7]], [[0]], None, ValueError, "src token id 7 out of range for vocab_size=7"),
        ([[1, 2]], [[0], [0]], None, ValueError, "one row per source"),
        ([[1.0]], [[0]], None, TypeError, r"src\[0\]\[0\] must be an int"),
        ([[1] * 7], [[0]], None, ValueError, "longer than max_len=6"),
        ([[1]], [[0, 2]], [[1]], ValueError, "targets must have tgt's shape"),
    ],
)
def test_input_errors(src, tgt, targets, error, words):
    with pytest.raises(error, match=words):
        T5(tiny())(src, tgt, targets)


def test_call_order_and_constructor_errors():
    model = T5(tiny())
    with pytest.raises(RuntimeError, match="call forward before backward"):
        model.backward()
    model([[1]], [[0]])
    with pytest.raises(RuntimeError, match="pass dlogits"):
        model.backward()
    with pytest.raises(TypeError, match="config must be a T5Config"):
        T5({"vocab_size": 7})


@pytest.fixture(scope="module")
def hf():
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    return torch, transformers


def _hf_run(torch, theirs, src, tgt, targets=None):
    S, T = torch.tensor(src), torch.tensor(tgt)
    dmask = (T != PAD).long()
    dmask[:, 0] = 1  # the start token is the pad id: never padding
    return theirs(
        input_ids=S, attention_mask=(S != PAD).long(), decoder_input_ids=T,
        decoder_attention_mask=dmask, labels=None if targets is None else torch.tensor(targets),
    )  # fmt: skip


# transformers computes T5's softmax and its layer norm's mean square in float32 even for
# float64 weights, so float64 agreement is to float32 rounding of those (1e-6 of the largest
# entry; about 1e-7 seen), not to 1e-12.
HF_TOL = 1e-6


def _assert_near(actual, expected, name, tol=HF_TOL):
    a, e = flatten(actual), flatten(expected)
    assert len(a) == len(e), name
    worst = max(abs(x - y) for x, y in zip(a, e))
    scale = max(1.0, max(abs(y) for y in e))  # relative to the tensor's largest entry
    assert worst <= tol * scale, f"{name}: max |difference| {worst:.3g} > {tol:g} * {scale:.3g}"


@pytest.mark.parametrize("proj,tied", [("relu", True), ("gated-gelu", False)])
def test_hf_loads_our_checkpoint_with_equal_logits_and_gradients(hf, tmp_path, proj, tied):
    torch, transformers = hf
    model = T5(small(feed_forward_proj=proj, tie_word_embeddings=tied, num_decoder_layers=1))
    model.save_pretrained(tmp_path, dtype="float64")
    theirs = transformers.T5ForConditionalGeneration.from_pretrained(
        tmp_path, dtype=torch.float64
    ).train()  # dropout_rate is 0: train mode only lets gradients flow everywhere
    logits, loss = model(SRC, TGT, TARGETS)
    model.zero_grad()
    model.backward()
    out = _hf_run(torch, theirs, SRC, TGT, TARGETS)
    _assert_near(out.logits.detach().numpy().tolist(), logits, "logits")
    assert out.loss.item() == pytest.approx(loss, abs=HF_TOL)
    out.loss.backward()
    grads = {n: p.grad for n, p in theirs.named_parameters()}
    assert set(grads) == {n for n, _ in model.named_parameters()}
    for name, p in model.named_parameters():
        _assert_near(grads[name].numpy().tolist(), p.grad, f"d/d{name}")


@pytest.mark.parametrize("proj,tied", [("relu", True), ("gated-gelu", False)])
def test_we_load_a_hf_checkpoint_with_equal_logits_and_greedy_output(hf, tmp_path, proj, tied):
    torch, transformers = hf
    cfg = transformers.T5Config(
        vocab_size=11, d_model=8, d_kv=3, d_ff=12, num_layers=2, num_decoder_layers=1,
        num_heads=2, relative_attention_num_buckets=8, relative_attention_max_distance=12,
        dropout_rate=0.0, feed_forward_proj=proj, tie_word_embeddings=tied,
        decoder_start_token_id=0,
    )  # fmt: skip
    torch.manual_seed(3)  # a seed whose greedy outputs are not one token repeated
    theirs = transformers.T5ForConditionalGeneration(cfg).double().eval()
    theirs.save_pretrained(tmp_path)
    ours = T5.from_pretrained(tmp_path)
    assert ours.config.tie_word_embeddings == tied and ours.config.feed_forward_proj == proj
    # transformers 5 writes an untied T5 as tie_word_embeddings true, scale_decoder_outputs false
    assert (
        T5Config.from_dict({"vocab_size": 7, "scale_decoder_outputs": False}).tie_word_embeddings
        is False
    )
    logits, _ = ours(SRC, TGT)
    with torch.no_grad():
        expected = _hf_run(torch, theirs, SRC, TGT).logits.numpy().tolist()
    _assert_near(expected, logits, "logits")
    for src in ([[3, 4, 5, 6, 2]], [[9, 8, 2]], [[1, 5, 5, 7, 10, 2]]):
        with torch.no_grad():
            generated = theirs.generate(
                torch.tensor(src), max_new_tokens=6, do_sample=False, num_beams=1
            )[0].tolist()
        ids = generated[1:]  # after the start token
        ids = ids[: ids.index(EOS)] if EOS in ids else ids
        assert ours.greedy_decode(src, max_len=6) == [ids], src

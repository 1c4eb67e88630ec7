"""reference/seq2seq.py: torch.nn.Transformer as the oracle, finite differences for every
parameter, causality, padding invariance, decoding, checkpoints and every validation error."""

import itertools
import json
import math

import pytest

from reference.layers import dropout_stream
from reference.losses import log_softmax
from reference.seq2seq import Transformer, TransformerConfig
from tests.reference.gradcheck import assert_close, numerical_gradient, random_tensor

PAD, BOS, EOS = 0, 1, 2


def tiny(**overrides) -> TransformerConfig:
    """The finite-difference size: V=7, C=4, H=2, F=6, one layer each."""
    sizes = dict(
        src_vocab_size=7,
        tgt_vocab_size=7,
        d_model=4,
        nhead=2,
        num_encoder_layers=1,
        num_decoder_layers=1,
        dim_feedforward=6,
        dropout=0.0,
        max_len=6,
        seed=1,
    )
    sizes.update(overrides)
    return TransformerConfig(**sizes)


def small(**overrides) -> TransformerConfig:
    """A size with two layers each and different vocabularies, for the oracle and the masks."""
    sizes = dict(
        src_vocab_size=9,
        tgt_vocab_size=11,
        d_model=8,
        nhead=2,
        num_encoder_layers=2,
        num_decoder_layers=2,
        dim_feedforward=12,
        dropout=0.0,
        max_len=8,
        seed=3,
    )
    sizes.update(overrides)
    return TransformerConfig(**sizes)


# A right-padded batch: source lengths 4, 2, 5 and decoder-input lengths 3, 5, 6.
SRC = [[3, 4, 5, 6, PAD], [7, 8, PAD, PAD, PAD], [4, 4, 4, 4, 4]]
TGT = [[BOS, 3, 4, PAD, PAD, PAD], [BOS, 5, 6, 7, 8, PAD], [BOS, 9, 10, 3, 4, 5]]


# -- the oracle: torch.nn.Transformer computes the same numbers from our state_dict -------------
def torch_logits(model: Transformer, src, tgt):
    """Logits by torch.nn.Transformer (float64, dropout 0) loaded with our state_dict, plus our
    embeddings, positions and generator written out in torch."""
    torch = pytest.importorskip("torch")
    c = model.config
    sd = {k: torch.tensor(v, dtype=torch.float64) for k, v in model.state_dict().items()}
    net = torch.nn.Transformer(
        c.d_model,
        c.nhead,
        c.num_encoder_layers,
        c.num_decoder_layers,
        c.dim_feedforward,
        dropout=0.0,
        layer_norm_eps=c.layer_norm_eps,
        batch_first=True,
        norm_first=False,
    ).double()
    net.encoder.enable_nested_tensor = False  # keep the fast path's nested tensors out of it
    prefix = "transformer."
    net.load_state_dict({k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)})
    net.train()  # the eval-mode fast path uses other kernels; dropout is 0 anyway

    def embed(weight, ids):
        T, C = ids.shape[1], c.d_model
        pos = torch.arange(T, dtype=torch.float64)[:, None]
        i = torch.arange(C)
        angle = pos / 10000.0 ** ((2 * (i // 2)).double() / C)
        pe = torch.where(i % 2 == 0, torch.sin(angle), torch.cos(angle))  # (T, C)
        return torch.nn.functional.embedding(ids, weight) * math.sqrt(C) + pe

    S, T = torch.tensor(src), torch.tensor(tgt)
    causal = torch.triu(torch.ones(T.shape[1], T.shape[1], dtype=torch.bool), diagonal=1)
    with torch.no_grad():
        h = net(
            embed(sd["src_embed.weight"], S),
            embed(sd["tgt_embed.weight"], T),
            tgt_mask=causal,
            src_key_padding_mask=S == c.pad_id,
            tgt_key_padding_mask=T == c.pad_id,
            memory_key_padding_mask=S == c.pad_id,
        )
        return h @ sd["generator.weight"].T + sd["generator.bias"], net


def test_parameter_names_and_shapes_are_torch_nn_transformer():
    model = Transformer(small())
    _, net = torch_logits(model, SRC, TGT)
    ours = {k: p.shape for k, p in model.named_parameters()}
    theirs = {"transformer." + k: tuple(v.shape) for k, v in net.state_dict().items()}
    extra = {
        "src_embed.weight": (9, 8),
        "tgt_embed.weight": (11, 8),
        "generator.weight": (11, 8),
        "generator.bias": (11,),
    }
    assert ours == {**theirs, **extra}
    assert list(ours)[:3] == ["src_embed.weight", "tgt_embed.weight", next(iter(theirs))]


def test_logits_match_torch_nn_transformer():
    model = Transformer(small())
    logits, _ = model(SRC, TGT)
    expected, _ = torch_logits(model, SRC, TGT)
    bad = [
        (b, t, v, logits[b][t][v], expected[b, t, v].item())
        for b, t, v in itertools.product(range(3), range(6), range(11))
        if TGT[b][t] != PAD and abs(logits[b][t][v] - expected[b, t, v].item()) > 1e-10
    ]
    assert not bad, f"{len(bad)} logits differ from torch (b, t, v, ours, torch): {bad[:5]}"


# -- gradients by central finite differences, every parameter -----------------------------------
def _check_every_parameter(model, loss_fn, run_backward):
    model.zero_grad()
    run_backward()
    checked = 0
    for name, p in model.named_parameters():
        assert_close(p.grad, numerical_gradient(loss_fn, p.data), f"d/d{name}")
        checked += 1
    assert checked == 38  # 2 embeddings, 12 + 2 encoder, 18 + 2 decoder, 2 generator


def test_gradients_of_every_parameter_with_upstream_dlogits():
    """<logits, dout> for a fixed non-uniform dout, padding in source and target."""
    model = Transformer(tiny())
    src = [[3, 4, 5, 6], [5, 6, PAD, PAD]]
    tgt = [[BOS, 4, 3, 5], [BOS, 6, PAD, PAD]]
    dout = random_tensor((2, 4, 7), seed=11)

    def loss():
        logits, _ = model(src, tgt)
        return sum(
            g * x for lr, dr in zip(logits, dout) for a, d in zip(lr, dr) for g, x in zip(d, a)
        )

    def backward():
        model(src, tgt)
        model.backward(dout)

    _check_every_parameter(model, loss, backward)


def test_gradients_of_every_parameter_through_the_loss_with_dropout():
    """The mean cross-entropy, pad / -100 targets ignored, dropout on (the same masks each call)."""
    model = Transformer(tiny(dropout=0.3, src_vocab_size=8))
    src = [[7, 4, 5], [5, 6, PAD]]
    tgt = [[BOS, 4, 3, 5], [BOS, 6, 3, PAD]]
    targets = [[4, 3, 5, EOS], [6, -100, EOS, PAD]]

    def loss():
        model.dropout_step = 5  # replay the same dropout masks
        return model(src, tgt, targets)[1]

    def backward():
        loss()
        model.backward()

    _check_every_parameter(model, loss, backward)
    # the masks really drop something: eval mode (no dropout) gives another loss
    with_dropout = loss()
    model.eval()
    assert abs(model(src, tgt, targets)[1] - with_dropout) > 1e-3


def test_loss_is_the_mean_over_counted_positions():
    model = Transformer(tiny())
    src, tgt = [[3, 4], [5, PAD]], [[BOS, 3, 4], [BOS, 5, PAD]]
    logits, loss = model(src, tgt, [[3, 4, EOS], [5, EOS, PAD]])
    terms = [
        -log_softmax(logits[b][t])[y]
        for b, t, y in [(0, 0, 3), (0, 1, 4), (0, 2, EOS), (1, 0, 5), (1, 1, EOS)]
    ]
    assert loss == pytest.approx(sum(terms) / 5, rel=1e-13)
    _, same = model(src, tgt, [[3, 4, EOS], [5, EOS, -100]])  # -100 and pad_id: both ignored
    assert same == loss


# -- masks -----------------------------------------------------------------------------------------
def test_decoder_is_causal():
    """Changing target token t never changes the logits at positions before t."""
    model = Transformer(small())
    src = [[3, 4, 5, 6, 7]]
    tgt = [[BOS, 3, 4, 5, 6, 7]]
    base, _ = model(src, tgt)
    for t in range(1, 6):
        changed = [list(tgt[0])]
        changed[0][t] = 10 if tgt[0][t] != 10 else 9
        logits, _ = model(src, changed)
        assert_close(logits[0][:t], base[0][:t], f"logits before position {t}", atol=1e-14)
        assert max(abs(a - b) for a, b in zip(logits[0][t], base[0][t])) > 1e-6  # it does see t


def test_padding_never_changes_the_unpadded_rows():
    """Each sequence alone (no padding) gives the same logits as inside the padded batch."""
    model = Transformer(small())
    batch, _ = model(SRC, TGT)
    for b in range(3):
        src = [[i for i in SRC[b] if i != PAD]]
        tgt = [[i for i in TGT[b] if i != PAD]]
        alone, _ = model(src, tgt)
        assert_close(batch[b][: len(tgt[0])], alone[0], f"row {b}", atol=1e-13)
    # the memory's padded rows are invisible: garbage there changes nothing
    memory = model.encode(SRC)
    for b in range(3):
        memory[b] = [row if SRC[b][j] != PAD else [99.0] * 8 for j, row in enumerate(memory[b])]
    garbage = model.decode(TGT, memory, SRC)
    for b in range(3):
        n = sum(i != PAD for i in TGT[b])
        assert_close(garbage[b][:n], batch[b][:n], f"row {b} with garbage memory", atol=1e-13)


# -- decoding --------------------------------------------------------------------------------------
def test_beam_width_one_is_greedy():
    model = Transformer(small(seed=7))
    src = [[3, 4, 5, 6, PAD], [7, 8, PAD, PAD, PAD], [4, 5, 4, 5, 4], [6, PAD, PAD, PAD, PAD]]
    greedy = model.greedy_decode(src)
    assert greedy == model.beam_search(src, beam_width=1)
    assert greedy == model.beam_search(src, beam_width=1, length_penalty=0.0)
    # greedy really is the argmax chain, recomputed by teacher forcing without padding
    for row, out in zip(src, greedy):
        tgt = ([BOS] + out)[: model.config.max_len]
        logits, _ = model([[i for i in row if i != PAD]], [tgt])
        chosen = [max(range(11), key=lambda v, r=r: (r[v], -v)) for r in logits[0]]
        assert chosen[: len(out)] == out
        assert len(out) == model.config.max_len or chosen[len(out)] == EOS


def test_greedy_stops_at_eos_and_max_len():
    model = Transformer(small(seed=7))
    model.generator.bias.data[EOS] = 100.0  # eos always wins: empty outputs
    assert model.greedy_decode([[3, 4]]) == [[]]
    assert model.beam_search([[3, 4]], beam_width=3) == [[]]
    model.generator.bias.data[EOS] = -100.0
    model.generator.bias.data[5] = 100.0  # 5 always wins: max_len tokens, no eos
    assert model.greedy_decode([[3, 4]], max_len=3) == [[5, 5, 5]]
    assert model.beam_search([[3, 4]], beam_width=2, max_len=3) == [[5, 5, 5]]


def test_wide_beam_is_exhaustive_search():
    """With room for every prefix, beam search returns the best hypothesis of all, by
    sum log p / length ** length_penalty."""
    cfg = small(src_vocab_size=5, tgt_vocab_size=5, seed=4, max_len=3)
    model = Transformer(cfg)
    src = [[3, 4, 3]]
    for penalty in (0.0, 1.0):
        hyps = []
        for n in (1, 2, 3):
            for body in itertools.product(range(5), repeat=n):
                if EOS in body[:-1]:
                    continue
                logits, _ = model(src, [[BOS, *body[:-1]]])
                logp = sum(log_softmax(row)[v] for row, v in zip(logits[0], body))
                if body[-1] == EOS or n == 3:
                    hyps.append((logp / n**penalty, [v for v in body if v != EOS]))
        best = max(hyps, key=lambda h: h[0])[1]
        assert model.beam_search(src, beam_width=125, length_penalty=penalty) == [best]


def test_decoding_leaves_the_mode_and_uses_no_dropout():
    model = Transformer(small(dropout=0.5, seed=7))
    src = [[3, 4, 5]]
    assert model.training
    out = model.greedy_decode(src)
    assert model.training and model.dropout_step == 0
    plain = Transformer(small(dropout=0.0, seed=7))
    assert plain.greedy_decode(src) == out


# -- dropout randomness ----------------------------------------------------------------------------
def test_dropout_streams_advance_once_per_training_forward():
    model = Transformer(tiny(dropout=0.2))
    src, tgt = [[3, 4, 5]], [[BOS, 3, 4]]
    first, _ = model(src, tgt)
    assert model.dropout_step == 1
    assert model.src_dropout.stream == dropout_stream(0, 1)  # the first Dropout in modules()
    second, _ = model(src, tgt)
    assert model.dropout_step == 2 and first != second  # fresh masks each step
    model.dropout_step = 0
    assert model(src, tgt)[0] == first  # the step number alone fixes the masks
    model.eval()
    evaluated, _ = model(src, tgt)
    assert model.dropout_step == 1  # eval forwards draw nothing
    plain = Transformer(tiny(dropout=0.0))
    assert evaluated == plain(src, tgt)[0]


# -- checkpoints -----------------------------------------------------------------------------------
def test_save_and_load_pretrained(tmp_path):
    model = Transformer(small())
    model.save_pretrained(tmp_path, dtype="float64")
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "transformer" and config["d_model"] == 8
    loaded = Transformer.from_pretrained(tmp_path)
    assert loaded.config == model.config
    assert loaded.state_dict() == model.state_dict()
    assert loaded(SRC, TGT)[0] == model(SRC, TGT)[0]
    with pytest.raises(ValueError, match="model_type='gpt2', expected 'transformer'"):
        Transformer.from_config_dict({**config, "model_type": "gpt2"})


def test_seeds_make_models():
    a, b = Transformer(tiny(seed=1)), Transformer(tiny(seed=1))
    assert a.state_dict() == b.state_dict()
    assert a.state_dict() != Transformer(tiny(seed=2)).state_dict()


# -- validation ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "overrides, error, message",
    [
        ({"d_model": 6, "nhead": 4}, ValueError, r"d_model \(6\) must be divisible by nhead \(4\)"),
        ({"d_model": 0}, ValueError, "d_model must be a positive int, got 0"),
        ({"nhead": 2.0}, TypeError, "nhead must be a positive int, got float"),
        ({"src_vocab_size": -3}, ValueError, "src_vocab_size must be a positive int, got -3"),
        ({"tgt_vocab_size": True}, TypeError, "tgt_vocab_size must be a positive int, got bool"),
        ({"num_encoder_layers": 0}, ValueError, "num_encoder_layers must be a positive int"),
        ({"num_decoder_layers": 0}, ValueError, "num_decoder_layers must be a positive int"),
        ({"dim_feedforward": 0}, ValueError, "dim_feedforward must be a positive int"),
        ({"max_len": 0}, ValueError, "max_len must be a positive int, got 0"),
        ({"dropout": 1.0}, ValueError, r"dropout must be a float in \[0, 1\), got 1.0"),
        ({"dropout": "0.1"}, TypeError, "dropout must be a float, got str"),
        ({"dropout": math.nan}, ValueError, r"dropout must be a float in \[0, 1\), got nan"),
        ({"layer_norm_eps": 0.0}, ValueError, r"layer_norm_eps must be a float in \(0, 1\)"),
        ({"pad_id": 7}, ValueError, r"pad_id must be in \[0, 7\) to fit the vocabulary, got 7"),
        ({"eos_id": 9}, ValueError, r"eos_id must be in \[0, 7\)"),
        ({"bos_id": "1"}, TypeError, "bos_id must be an int token id, got str"),
        ({"eos_id": 0}, ValueError, "pad_id, bos_id and eos_id must be distinct, got 0, 1, 0"),
        ({"seed": -1}, ValueError, r"seed must be in \[0, 2\*\*64\), got -1"),
        ({"seed": 1.5}, TypeError, "seed must be an int, got float"),
    ],
)
def test_config_errors(overrides, error, message):
    with pytest.raises(error, match=message):
        tiny(**overrides)


def test_src_vocab_must_hold_pad():
    with pytest.raises(ValueError, match=r"pad_id must be in \[0, 3\)"):
        tiny(src_vocab_size=3, pad_id=5, bos_id=1, eos_id=2)
    tiny(src_vocab_size=1, pad_id=0)  # a source vocabulary may lack bos and eos


@pytest.mark.parametrize(
    "src, tgt, error, message",
    [
        ([[3, 9]], [[BOS]], ValueError,
         r"src token id 9 out of range for src_vocab_size=7 \(at \[0\]\[1\]\)"),
        ([[3, 4]], [[BOS, -1]], ValueError, r"tgt token id -1 out of range for tgt_vocab_size=7"),
        ([[3, 4], [5]], [[BOS], [BOS]], ValueError,
         r"src must be rectangular \(pad with pad_id\): src\[0\] has length 2, src\[1\] has "),
        ([[3, 4.0]], [[BOS]], TypeError, r"src\[0\]\[1\] must be an int token id, got 4.0"),
        ([[3, True]], [[BOS]], TypeError, r"src\[0\]\[1\] must be an int token id, got True"),
        ([3, 4], [[BOS]], TypeError,
         r"src must be a \(B, T\) nested list of token ids, but src\[0\] is a int"),
        ([], [[BOS]], TypeError, "src must be a non-empty"),
        ([[]], [[BOS]], ValueError, "src must hold at least one token per sequence, got length 0"),
        ([[3] * 7], [[BOS]], ValueError, "src has length 7, longer than max_len=6"),
        ([[3]], [[BOS] * 7], ValueError, "tgt has length 7, longer than max_len=6"),
        ([[3]], [[BOS], [BOS]], ValueError, r"tgt must have one row per source \(B=1\), got 2"),
    ],
)  # fmt: skip
def test_input_errors(src, tgt, error, message):
    model = Transformer(tiny())
    with pytest.raises(error, match=message):
        model(src, tgt)


def test_target_and_call_order_errors():
    model = Transformer(tiny())
    src, tgt = [[3, 4]], [[BOS, 3]]
    with pytest.raises(RuntimeError, match="call forward before backward"):
        model.backward()
    with pytest.raises(ValueError, match=r"targets must have tgt's shape \(1, 2\), got \(1, 3\)"):
        model(src, tgt, [[3, 4, EOS]])
    with pytest.raises(
        ValueError, match=r"targets token id 7 out of range .* use -100 or pad_id=0"
    ):
        model(src, tgt, [[3, 7]])
    with pytest.raises(TypeError, match=r"targets\[0\]\[0\] must be an int token id, got 3.5"):
        model(src, tgt, [[3.5, 4]])
    model(src, tgt)
    with pytest.raises(RuntimeError, match="forward was called without targets"):
        model.backward()
    with pytest.raises(ValueError, match=r"memory must have shape \(1, 2, 4\) = encode\(src\)"):
        model.decode(tgt, [[[0.0] * 4]], src)
    with pytest.raises(TypeError, match="config must be a TransformerConfig, got dict"):
        Transformer({"d_model": 4})


def test_decoding_errors():
    model = Transformer(tiny())
    with pytest.raises(ValueError, match=r"max_len must be in \[1, 6\], got 7"):
        model.greedy_decode([[3]], max_len=7)
    with pytest.raises(ValueError, match=r"max_len must be in \[1, 6\], got 0"):
        model.beam_search([[3]], max_len=0)
    with pytest.raises(ValueError, match=r"beam_width must be in \[1, "):
        model.beam_search([[3]], beam_width=0)
    with pytest.raises(TypeError, match="beam_width must be an int, got float"):
        model.beam_search([[3]], beam_width=2.0)
    with pytest.raises(ValueError, match="length_penalty must be finite, got nan"):
        model.beam_search([[3]], length_penalty=math.nan)
    with pytest.raises(ValueError, match="src token id 8 out of range"):
        model.greedy_decode([[8]])

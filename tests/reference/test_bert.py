"""reference/bert.py and masking.py: finite differences for every parameter, padding invariance,
the masking recipe's statistics, validation errors, checkpoints, and Hugging Face
interoperability."""

import json
import math
import os
import random

import pytest

from reference.bert import (
    BERT,
    BERTConfig,
    BERTForSequenceClassification,
    check_bert_inputs,
)
from reference.checkpoint import save_safetensors
from reference.layers import Dropout, dropout_stream
from reference.masking import mask_tokens
from reference.nested import flatten, shape_of, unflatten
from reference.rng import below, random_u32
from tests.reference.gradcheck import assert_close, inner, numerical_gradient, random_tensor

TINY = dict(vocab_size=7, block_size=5, n_layer=2, n_head=2, n_embd=4, intermediate_size=6)


def jitter(model, seed, scale=0.5):
    """Move every parameter off its initial value (LayerNorm ones, zero biases) so that no
    gradient is trivially zero or symmetric."""
    rng = random.Random(seed)
    for _, p in model.named_parameters():
        p.data = unflatten([v + rng.uniform(-scale, scale) for v in flatten(p.data)], p.shape)
    return model


def check_every_parameter(model, run, dout=None, atol=1e-7, rtol=1e-6):
    """Compare every p.grad after `run(); model.backward(dout)` with central differences of
    <logits, dout> (or of the loss when dout is None). `run` must reset the dropout step."""
    model.zero_grad()
    run()
    model.backward(dout)

    def scalar():
        logits, loss = run()
        return loss if dout is None else inner(logits, dout)

    for name, p in model.named_parameters():
        assert_close(p.grad, numerical_gradient(scalar, p.data), f"d/d{name}", atol, rtol)


# -- configuration ---------------------------------------------------------------------------------
def test_config_defaults_and_hf_mapping():
    c = BERTConfig(vocab_size=9, n_embd=8, n_head=2)
    assert c.intermediate_size == 32 and c.attn_dropout == c.dropout == 0.1
    d = c.to_hf_dict()
    assert d["hidden_size"] == 8 and d["intermediate_size"] == 32 and d["hidden_act"] == "gelu"
    assert BERTConfig.from_hf_dict(d) == c


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        (dict(n_embd=6, n_head=4), ValueError, "divisible"),
        (dict(vocab_size=0), ValueError, "vocab_size"),
        (dict(block_size=-1), ValueError, "block_size"),
        (dict(n_layer=0), ValueError, "n_layer"),
        (dict(n_head=0), ValueError, "n_head"),
        (dict(intermediate_size=0), ValueError, "intermediate_size"),
        (dict(type_vocab_size=0), ValueError, "type_vocab_size"),
        (dict(n_embd=4.0), TypeError, "n_embd"),
        (dict(n_layer=True), TypeError, "n_layer"),
        (dict(layer_norm_eps=0.0), ValueError, "layer_norm_eps"),
        (dict(layer_norm_eps=float("nan")), ValueError, "layer_norm_eps"),
        (dict(initializer_range=-1.0), ValueError, "initializer_range"),
        (dict(dropout=1.0), ValueError, "dropout"),
        (dict(dropout=-0.1), ValueError, "dropout"),
        (dict(attn_dropout="0.1"), TypeError, "attn_dropout"),
        (dict(pad_token_id=7), ValueError, "pad_token_id"),
        (dict(pad_token_id=1.0), TypeError, "pad_token_id"),
        (dict(seed=-1), ValueError, "seed"),
    ],
)
def test_config_validation(kwargs, error, words):
    with pytest.raises(error, match=words):
        BERTConfig(**{**TINY, **kwargs})


@pytest.mark.parametrize(
    "key, value", [("hidden_act", "relu"), ("position_embedding_type", "relative_key")]
)
def test_config_refuses_unsupported_hf_variants(key, value):
    d = BERTConfig(**TINY).to_hf_dict()
    d[key] = value
    with pytest.raises(ValueError, match=key):
        BERTConfig.from_hf_dict(d)


# -- names and structure ---------------------------------------------------------------------------
def test_names_follow_bert_for_masked_lm_and_the_decoder_is_tied():
    model = BERT(BERTConfig(**{**TINY, "n_layer": 1}))
    names = [n for n, _ in model.named_parameters()]
    layer = "bert.encoder.layer.0."
    # the keys of Hugging Face's BertForMaskedLM state dict, less the tied decoder copies
    modules = [
        "bert.embeddings.LayerNorm",
        f"{layer}attention.self.query",
        f"{layer}attention.self.key",
        f"{layer}attention.self.value",
        f"{layer}attention.output.dense",
        f"{layer}attention.output.LayerNorm",
        f"{layer}intermediate.dense",
        f"{layer}output.dense",
        f"{layer}output.LayerNorm",
        "cls.predictions.transform.dense",
        "cls.predictions.transform.LayerNorm",
    ]
    expected = [
        f"bert.embeddings.{t}_embeddings.weight" for t in ("word", "position", "token_type")
    ]
    expected += [f"{m}.{w}" for m in modules for w in ("weight", "bias")]
    expected += ["cls.predictions.bias"]
    assert sorted(names) == sorted(expected)
    shapes = {n: p.shape for n, p in model.named_parameters()}
    assert shapes[f"{layer}intermediate.dense.weight"] == (6, 4)  # torch layout: out x in
    assert shapes[f"{layer}output.dense.weight"] == (4, 6)
    decoder = model.cls.predictions.decoder
    assert decoder.weight is model.bert.embeddings.word_embeddings.weight
    assert decoder.bias is model.cls.predictions.bias


def test_dropout_sites_are_numbered_as_documented():
    L = 3
    model = BERTForSequenceClassification(BERTConfig(**{**TINY, "n_layer": L}), num_labels=3)
    model([[1, 2, 3]])  # a training-mode forward at step 0 points every site at its stream
    b = model.bert
    sites = {1: b.embeddings.dropout, 2 + 3 * L: model.dropout}
    for i, block in enumerate(b.encoder.layer):
        sites[2 + 3 * i] = block.attention.self.dropout
        sites[3 + 3 * i] = block.attention.output.dropout
        sites[4 + 3 * i] = block.output.dropout
    assert len(sites) == sum(isinstance(m, Dropout) for m in model.modules())
    for site, d in sites.items():
        assert (d.seed, d.stream) == (0, dropout_stream(0, site)), site
    assert model.step == 1


# -- gradients: central finite differences for every parameter ----------------------------------
def test_mlm_gradients_with_dropout_padding_and_token_types():
    cfg = BERTConfig(**TINY, dropout=0.25, attn_dropout=0.3, seed=5)
    model = jitter(BERT(cfg), 1)
    idx, tt = [[1, 2, 3, 4], [5, 6, 0, 3]], [[0, 0, 1, 1], [0, 1, 1, 0]]
    mask = [[1, 1, 1, 1], [1, 1, 1, 0]]  # row 1's last key is padding

    def run():
        model.step = 3  # the same dropout masks in every evaluation
        return model(idx, tt, mask)

    logits, _ = run()
    dropped = BERT(BERTConfig(**TINY, dropout=0.0))
    dropped.load_state_dict(model.state_dict())
    assert dropped(idx, tt, mask)[0] != logits  # dropout really is on
    dout = random_tensor(shape_of(logits), 2)  # non-uniform upstream gradient
    check_every_parameter(model, run, dout)


def test_mlm_loss_gradients():
    model = jitter(BERT(BERTConfig(**{**TINY, "n_layer": 1}, dropout=0.1, seed=2)), 3)
    idx, labels = [[1, 2, 3, 4], [6, 5, 4, 3]], [[-100, 2, -100, 0], [6, -100, -100, 1]]

    def run():
        model.step = 0
        return model(idx, attention_mask=[[1, 1, 1, 1], [1, 1, 0, 0]], labels=labels)

    assert run()[1] > 0
    check_every_parameter(model, run)


def test_sequence_classification_gradients():
    cfg = BERTConfig(**{**TINY, "n_layer": 1}, dropout=0.2, seed=4)
    model = jitter(BERTForSequenceClassification(cfg, num_labels=3), 5)
    idx, mask = [[1, 2, 3], [4, 5, 6]], [[1, 1, 1], [1, 1, 0]]

    def run():
        model.step = 7
        return model(idx, [[0, 1, 1], [0, 0, 1]], mask, labels=[2, 0])

    check_every_parameter(model, run, dout=[[0.3, -1.2, 0.7], [-0.4, 0.9, 0.2]])
    check_every_parameter(model, run)  # the loss's own gradient


def test_gradients_accumulate_across_backward_calls():
    model = jitter(BERT(BERTConfig(**{**TINY, "n_layer": 1}, dropout=0.0)), 6)
    model.eval()
    model([[1, 2]], labels=[[3, 4]])
    model.zero_grad()
    model.backward()
    once = [list(flatten(p.grad)) for p in model.parameters()]
    model.backward()
    twice = [list(flatten(p.grad)) for p in model.parameters()]
    for a, b in zip(once, twice):
        assert_close(b, [2 * v for v in a], "accumulated grad", atol=1e-15, rtol=1e-12)


# -- padding invariance ----------------------------------------------------------------------------
def test_padding_never_changes_the_real_tokens_outputs():
    model = jitter(BERT(BERTConfig(**{**TINY, "block_size": 6}, dropout=0.1)), 7)
    model.eval()  # dropout masks depend on the batch shape, so compare without them
    rows = [[1, 2, 3], [4, 5, 6, 2, 1], [3]]
    types = [[0, 0, 1], [0, 1, 1, 1, 0], [1]]
    alone = [model([r], [t])[0][0] for r, t in zip(rows, types)]
    T = 6
    pad = model.config.pad_token_id
    idx = [r + [pad] * (T - len(r)) for r in rows]
    tt = [t + [0] * (T - len(t)) for t in types]
    mask = [[1] * len(r) + [0] * (T - len(r)) for r in rows]
    logits, _ = model(idx, tt, mask)
    for b, r in enumerate(rows):
        assert_close(logits[b][: len(r)], alone[b], f"row {b}", atol=1e-12, rtol=1e-12)
    # a different padding token changes nothing either: padded keys are never looked at
    other, _ = model([r + [5] * (T - len(r)) for r in rows], tt, mask)
    assert all(other[b][: len(r)] == logits[b][: len(r)] for b, r in enumerate(rows))
    # and the loss over real tokens does not see the padding
    labels = [r + [-100] * (T - len(r)) for r in rows]
    _, loss = model(idx, tt, mask, labels)
    per_row = [model([r], [t], labels=[r])[1] * len(r) for r, t in zip(rows, types)]
    assert math.isclose(loss, sum(per_row) / sum(map(len, rows)), rel_tol=1e-12)


def test_classification_padding_invariance():
    model = jitter(BERTForSequenceClassification(BERTConfig(**TINY), num_labels=2), 8)
    model.eval()
    alone, _ = model([[1, 2, 3]])
    padded, _ = model(
        [[1, 2, 3, 0, 0], [4, 4, 4, 4, 4]], attention_mask=[[1, 1, 1, 0, 0]] + [[1] * 5]
    )
    assert_close(padded[0], alone[0], "pooled logits", atol=1e-12, rtol=1e-12)


# -- dropout steps ---------------------------------------------------------------------------------
def test_dropout_masks_follow_the_step_counter():
    model = jitter(BERT(BERTConfig(**TINY, dropout=0.3)), 9)
    idx = [[1, 2, 3, 4]]
    first, _ = model(idx)
    second, _ = model(idx)
    assert model.step == 2 and first != second  # each training forward draws new masks
    model.step = 0
    assert model(idx)[0] == first  # ... which are a function of (seed, step) alone
    model.eval()
    evaluated = model(idx)[0]
    assert model.step == 1  # evaluation does not count
    nodrop = BERT(BERTConfig(**TINY, dropout=0.0))
    nodrop.load_state_dict(model.state_dict())
    nodrop.eval()
    assert nodrop(idx)[0] == evaluated


# -- the masking recipe ----------------------------------------------------------------------------
def test_mask_tokens_follows_the_documented_words():
    """An independent re-derivation of every decision from `random_u32`, word by word."""
    rng = random.Random(0)
    B, T, V, MASK, specials = 4, 9, 50, 50, {0, 51, 52}
    idx = [[rng.choice([0, 51, 52] + list(range(1, V))) for _ in range(T)] for _ in range(B)]
    seed, stream, p = 11, dropout_stream(5, 0), 0.4
    inputs, labels = mask_tokens(idx, V, MASK, specials, seed, stream, p)
    for b in range(B):
        for t in range(T):
            i, tok = b * T + t, idx[b][t]
            u = random_u32(seed, stream, 3 * i) / 2**32
            if tok in specials or not u < p:
                assert (inputs[b][t], labels[b][t]) == (tok, -100)
                continue
            assert labels[b][t] == tok
            r = below(random_u32(seed, stream, 3 * i + 1), 10)
            want = (
                MASK if r < 8 else tok if r == 9 else below(random_u32(seed, stream, 3 * i + 2), V)
            )
            assert inputs[b][t] == want, (b, t)


def test_mask_tokens_statistics_on_a_large_sample():
    B, T, V, MASK, PAD = 100, 400, 97, 97, 98
    rng = random.Random(1)
    idx = [[rng.randrange(V) if t < T - 40 else PAD for t in range(T)] for _ in range(B)]
    inputs, labels = mask_tokens(idx, V, MASK, {PAD, MASK}, seed=3, stream=1)
    n_real = B * (T - 40)
    selected = masked = randomised = kept = 0
    random_counts = [0] * V
    for b in range(B):
        for t in range(T):
            tok, inp, lab = idx[b][t], inputs[b][t], labels[b][t]
            if tok == PAD:
                assert (inp, lab) == (PAD, -100), "padding must never be selected"
                continue
            if lab == -100:
                assert inp == tok
                continue
            assert lab == tok
            selected += 1
            if inp == MASK:
                masked += 1
            elif inp == tok:
                kept += 1  # the 10% kept, plus random draws that hit the same token
            else:
                randomised += 1
                random_counts[inp] += 1

    def within(count, n, prob, sigmas=5.0):
        sd = math.sqrt(n * prob * (1 - prob))
        assert abs(count - n * prob) <= sigmas * sd, (count, n * prob, sd)

    within(selected, n_real, 0.15)
    within(masked, selected, 0.8)
    within(randomised, selected, 0.1 * (1 - 1 / V))
    within(kept, selected, 0.1 + 0.1 / V)
    # random replacements are spread over the ordinary vocabulary: a loose chi-square check
    expected = randomised / V
    chi2 = sum((c - expected) ** 2 / expected for c in random_counts)
    assert chi2 < V + 6 * math.sqrt(2 * V), chi2
    assert all(0 <= i < V for row in inputs for i in row if i not in (MASK, PAD))


def test_mask_tokens_is_deterministic_and_stream_dependent():
    idx = [[1, 2, 3, 4, 5, 6, 7, 8]] * 8
    a = mask_tokens(idx, 10, 9, set(), 0, 1)
    assert a == mask_tokens(idx, 10, 9, set(), 0, 1)
    assert a != mask_tokens(idx, 10, 9, set(), 0, 2)
    assert mask_tokens(idx, 10, 9, set(), 0, 1, mask_prob=0.0)[0] == idx


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        (dict(idx=[1, 2]), ValueError, "idx"),
        (dict(idx=[[1, 2], [3]]), ValueError, "rectangular"),
        (dict(idx=[[1.0, 2]]), TypeError, "idx must hold ints"),
        (dict(vocab_size=0), ValueError, "vocab_size"),
        (dict(mask_token_id=-1), ValueError, "mask_token_id"),
        (dict(mask_prob=1.5), ValueError, "mask_prob"),
        (dict(mask_prob="0.15"), TypeError, "mask_prob"),
    ],
)
def test_mask_tokens_validation(kwargs, error, words):
    args = dict(idx=[[1, 2]], vocab_size=5, mask_token_id=5, special_token_ids=(), seed=0, stream=0)
    with pytest.raises(error, match=words):
        mask_tokens(**{**args, **kwargs})


# -- validation at the boundary --------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        (dict(idx=[]), ValueError, "idx must be a non-empty"),
        (dict(idx=[1, 2, 3]), ValueError, "idx must be a non-empty"),
        (dict(idx=[[1, 2], [3]]), ValueError, "idx must be rectangular"),
        (dict(idx=[[]]), ValueError, "idx must be rectangular"),
        (dict(idx=[[1, 2.0]]), TypeError, "idx must hold ints, got float at \\[0\\]\\[1\\]"),
        (dict(idx=[[1, True]]), TypeError, "idx must hold ints, got bool"),
        (dict(idx=[[1, 7]]), ValueError, "idx value 7 out of range for vocab_size 7 at"),
        (dict(idx=[[1, -1]]), ValueError, "idx value -1 out of range"),
        (dict(idx=[[1] * 6]), ValueError, "sequence length T=6 exceeds block_size"),
        (dict(token_type_ids=[[0, 2]]), ValueError, "token_type_ids value 2 out of range"),
        (dict(token_type_ids=[[0, 1, 0]]), ValueError, "token_type_ids must have shape"),
        (dict(token_type_ids=[[0, 0.5]]), TypeError, "token_type_ids must hold ints"),
        (dict(attention_mask=[[1, 2]]), ValueError, "attention_mask must hold 0/1"),
        (dict(attention_mask=[[1]]), ValueError, "attention_mask must have shape \\(1, 2\\)"),
        (dict(attention_mask=[[1, 1], [1, 1]]), ValueError, "attention_mask must have shape"),
        (dict(labels=[[1, 7]]), ValueError, "labels value 7 out of range"),
        (dict(labels=[[1, -5]]), ValueError, "labels value -5"),
        (dict(labels=[[1]]), ValueError, "labels must have shape"),
        (dict(labels=[[1, 2.0]]), TypeError, "labels must hold ints"),
    ],
)
def test_forward_validation(kwargs, error, words):
    model = BERT(BERTConfig(**{**TINY, "n_layer": 1}))
    args = dict(idx=[[1, 2]])
    with pytest.raises(error, match=words):
        model(**{**args, **kwargs})


@pytest.mark.parametrize(
    "labels, error, words",
    [
        ([0], ValueError, "labels must be a list of 2"),
        ([0, 3], ValueError, "labels value 3 out of range for num_labels 3"),
        ([0, 1.0], TypeError, "labels must hold ints"),
    ],
)
def test_classification_validation(labels, error, words):
    model = BERTForSequenceClassification(BERTConfig(**TINY), num_labels=3)
    with pytest.raises(error, match=words):
        model([[1, 2], [3, 4]], labels=labels)


def test_constructor_and_backward_errors():
    with pytest.raises(TypeError, match="BERTConfig"):
        BERT(dict(TINY))
    with pytest.raises(ValueError, match="num_labels"):
        BERTForSequenceClassification(BERTConfig(**TINY), num_labels=1)
    model = BERT(BERTConfig(**TINY))
    with pytest.raises(RuntimeError, match="forward"):
        model.backward()
    model([[1, 2]])
    with pytest.raises(RuntimeError, match="labels"):
        model.backward()  # no loss to differentiate
    with pytest.raises(ValueError, match="dlogits must have shape \\(1, 2, 7\\)"):
        model.backward([[[0.0] * 7]])


def test_check_bert_inputs_inverts_the_attention_mask():
    cfg = BERTConfig(**TINY)
    idx, tt, kpm = check_bert_inputs(cfg, [[1, 2, 3]], attention_mask=[[1, 1, 0]])
    assert tt == [[0, 0, 0]] and kpm == [[False, False, True]]  # True = a padded key


# -- checkpoints -----------------------------------------------------------------------------------
def test_save_and_load_round_trip(tmp_path):
    model = jitter(BERT(BERTConfig(**TINY, seed=3)), 10)
    model.save_pretrained(tmp_path, dtype="float64")
    with open(tmp_path / "config.json") as f:
        cfg = json.load(f)
    assert cfg["architectures"] == ["BertForMaskedLM"] and cfg["max_position_embeddings"] == 5
    again = BERT.from_pretrained(tmp_path)
    assert again.config == model.config and again.state_dict() == model.state_dict()
    assert again.cls.predictions.decoder.weight is again.bert.embeddings.word_embeddings.weight
    # an MLM checkpoint starts a classifier: the encoder loads, the new head warns
    with pytest.warns(UserWarning, match="classifier.weight"):
        clf = BERTForSequenceClassification.from_pretrained(tmp_path, num_labels=4)
    assert (
        clf.state_dict()["bert.encoder.layer.1.output.dense.bias"]
        == (model.state_dict()["bert.encoder.layer.1.output.dense.bias"])
    )
    clf.save_pretrained(tmp_path / "clf", dtype="float64")
    clf2 = BERTForSequenceClassification.from_pretrained(tmp_path / "clf")
    assert clf2.num_labels == 4 and clf2.state_dict() == clf.state_dict()
    with pytest.raises(FileNotFoundError, match="config.json"):
        BERT.from_pretrained(tmp_path / "nowhere")


def test_from_pretrained_reads_hugging_face_variants(tmp_path):
    """Files from other writers: the tied decoder stored twice, the position_ids buffer, a pooler
    and next-sentence head (BertForPreTraining), TF-era LayerNorm gamma/beta names."""
    model = jitter(BERT(BERTConfig(**TINY)), 13)
    state = model.state_dict()
    state["cls.predictions.decoder.weight"] = state["bert.embeddings.word_embeddings.weight"]
    state["cls.predictions.decoder.bias"] = state.pop("cls.predictions.bias")
    state["bert.embeddings.position_ids"] = [list(range(5))]
    state["bert.pooler.dense.weight"] = [[0.0] * 4 for _ in range(4)]
    state["cls.seq_relationship.bias"] = [0.0, 0.0]
    state["bert.embeddings.LayerNorm.gamma"] = state.pop("bert.embeddings.LayerNorm.weight")
    state["bert.embeddings.LayerNorm.beta"] = state.pop("bert.embeddings.LayerNorm.bias")
    save_safetensors(state, tmp_path / "model.safetensors", dtype="float64")
    with open(tmp_path / "config.json", "w") as f:
        json.dump(model.config_dict(), f)
    assert BERT.from_pretrained(tmp_path).state_dict() == model.state_dict()
    state["cls.predictions.decoder.weight"] = [[0.0] * 4 for _ in range(7)]  # untied: refuse
    save_safetensors(state, tmp_path / "model.safetensors", dtype="float64")
    with pytest.raises(ValueError, match="ties them"):
        BERT.from_pretrained(tmp_path)


# -- Hugging Face interoperability (the `interop` extra) -------------------------------------------
# HF gives a query whose keys are all padding uniform weights; we give it zeros (attention.py).
# The interop batches below therefore always keep at least one real token per row.
IDX = [[1, 2, 3, 4, 5], [6, 0, 2, 1, 1]]
TT = [[0, 0, 1, 1, 1], [0, 1, 1, 0, 0]]
AM = [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]
HF_TINY = dict(vocab_size=11, block_size=6, n_layer=2, n_head=2, n_embd=8, intermediate_size=12)


@pytest.fixture
def hf():
    os.environ["HF_HUB_OFFLINE"] = "1"  # never touch the network
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    return torch, transformers


def _hf_logits(torch, model, idx=IDX):
    model.eval()
    with torch.no_grad():
        out = model(
            input_ids=torch.tensor(idx),
            token_type_ids=torch.tensor(TT),
            attention_mask=torch.tensor(AM),
        )
    return out.logits.tolist()


def test_hf_loads_our_checkpoint_with_the_same_logits(hf, tmp_path):
    torch, transformers = hf
    ours = jitter(BERT(BERTConfig(**HF_TINY, seed=1)), 11, scale=0.3).eval()
    want, _ = ours(IDX, TT, AM)
    ours.save_pretrained(tmp_path / "f64", dtype="float64")
    theirs, info = transformers.BertForMaskedLM.from_pretrained(
        tmp_path / "f64", dtype=torch.float64, output_loading_info=True
    )
    assert not any(info.values()), info  # no missing, unexpected or mismatched keys
    assert theirs.cls.predictions.decoder.weight is theirs.bert.embeddings.word_embeddings.weight
    assert_close(_hf_logits(torch, theirs), want, "HF float64 logits", atol=1e-12, rtol=1e-10)
    # the default float32 file: HF in float32 against us on the same (rounded) weights
    ours.save_pretrained(tmp_path / "f32")
    rounded = BERT.from_pretrained(tmp_path / "f32").eval()
    want32, _ = rounded(IDX, TT, AM)
    theirs32 = transformers.BertForMaskedLM.from_pretrained(tmp_path / "f32")
    scale = max(abs(v) for v in flatten(want32))
    tol = 64 * 2**-23 * scale * HF_TINY["n_layer"]  # float32 rounding through a few sums
    assert_close(_hf_logits(torch, theirs32), want32, "HF float32 logits", atol=tol, rtol=0.0)


def test_we_load_a_hf_checkpoint_with_the_same_logits(hf, tmp_path):
    torch, transformers = hf
    torch.manual_seed(0)
    cfg = transformers.BertConfig(
        vocab_size=11, hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=12, max_position_embeddings=6, type_vocab_size=2,
    )  # fmt: skip
    theirs = transformers.BertForMaskedLM(cfg)
    with torch.no_grad():
        for p in theirs.parameters():
            p.add_(0.3 * torch.randn_like(p))  # LayerNorm and biases away from 1 and 0
    theirs.save_pretrained(tmp_path)  # float32, tied decoder left out as HF does
    ours = BERT.from_pretrained(tmp_path).eval()
    assert ours.config.n_embd == 8 and ours.config.block_size == 6
    want = _hf_logits(torch, theirs.double())  # the same float32 weights, computed in float64
    assert_close(ours(IDX, TT, AM)[0], want, "our logits", atol=1e-12, rtol=1e-10)


def test_sequence_classification_matches_hf_both_ways(hf, tmp_path):
    torch, transformers = hf
    ours = jitter(BERTForSequenceClassification(BERTConfig(**HF_TINY), 3), 12, 0.3).eval()
    want, _ = ours(IDX, TT, AM)
    ours.save_pretrained(tmp_path / "ours", dtype="float64")
    theirs, info = transformers.BertForSequenceClassification.from_pretrained(
        tmp_path / "ours", dtype=torch.float64, output_loading_info=True
    )
    assert not any(info.values()), info
    assert theirs.config.num_labels == 3
    assert_close(_hf_logits(torch, theirs), want, "HF classifier logits", atol=1e-12, rtol=1e-10)
    theirs.save_pretrained(tmp_path / "theirs")
    back = BERTForSequenceClassification.from_pretrained(tmp_path / "theirs").eval()
    assert_close(back(IDX, TT, AM)[0], want, "round-trip logits", atol=1e-12, rtol=1e-10)

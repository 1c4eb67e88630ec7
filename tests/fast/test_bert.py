"""fast/bert.py and fast/masking.py alone: finite differences (float64), padding invariance,
dropout steps, dtypes, validation before any kernel, the masking recipe, checkpoints and Hugging
Face interoperability.
(The reference is the oracle in conformance/test_bert.py.)"""

import json
import os

import numpy as np
import pytest

import reference
from fast.bert import (
    BERT,
    BERTConfig,
    BERTForSequenceClassification,
    check_bert_inputs,
)
from fast.checkpoint import save_safetensors
from fast.masking import mask_tokens
from fast.optim import AdamW

TINY = dict(vocab_size=7, block_size=5, n_layer=2, n_head=2, n_embd=4, intermediate_size=6)
IDX = np.array([[1, 2, 3, 4], [5, 6, 0, 3]])
TT = np.array([[0, 0, 1, 1], [0, 1, 1, 0]])
AM = np.array([[1, 1, 1, 1], [1, 1, 1, 0]])  # row 1's last key is padding


def jitter(model, seed, scale=0.5):
    """Move every parameter off its initial value (LayerNorm ones, zero biases)."""
    rng = np.random.default_rng(seed)
    for _, p in model.named_parameters():
        p.data += rng.uniform(-scale, scale, p.shape).astype(p.data.dtype)
    return model


def check_gradients(model, run, dout=None, entries=4, h=1e-6):
    """Compare `entries` elements of every parameter's gradient with central differences of
    <logits, dout> (of the loss when dout is None). `run` must reset the dropout step."""
    model.zero_grad()
    run()
    model.backward(dout)

    def scalar():
        logits, loss = run()
        return loss if dout is None else float(np.sum(logits * dout))

    rng = np.random.default_rng(0)
    for name, p in model.named_parameters():
        flat = p.data.reshape(-1)
        for i in rng.choice(flat.size, size=min(entries, flat.size), replace=False):
            saved = flat[i]
            flat[i] = saved + h
            plus = scalar()
            flat[i] = saved - h
            minus = scalar()
            flat[i] = saved
            want, got = (plus - minus) / (2 * h), p.grad.reshape(-1)[i]
            assert abs(got - want) <= 1e-7 + 1e-6 * abs(want), (name, int(i), got, want)


# -- gradients: central finite differences (float64) -----------------------------------------------
def test_mlm_gradients_with_dropout_padding_and_token_types():
    model = jitter(BERT(BERTConfig(**TINY, dropout=0.25, attn_dropout=0.3, seed=5), "float64"), 1)

    def run():
        model.step = 3  # the same dropout masks in every evaluation
        return model(IDX, TT, AM)

    logits, _ = run()
    dout = np.random.default_rng(2).uniform(-1, 1, logits.shape)  # non-uniform upstream
    check_gradients(model, run, dout)


def test_mlm_loss_gradients():
    model = jitter(BERT(BERTConfig(**{**TINY, "n_layer": 1}, dropout=0.1, seed=2), "float64"), 3)
    labels = np.array([[-100, 2, -100, 0], [6, -100, -100, 1]])

    def run():
        model.step = 0
        return model(IDX, attention_mask=np.array([[1, 1, 1, 1], [1, 1, 0, 0]]), labels=labels)

    assert run()[1] > 0
    check_gradients(model, run)


def test_classifier_gradients():
    cfg = BERTConfig(**{**TINY, "n_layer": 1}, dropout=0.2, seed=4)
    model = jitter(BERTForSequenceClassification(cfg, num_labels=3, dtype="float64"), 5)

    def run():
        model.step = 7
        return model(IDX[:, :3], TT[:, :3], np.array([[1, 1, 1], [1, 1, 0]]), np.array([2, 0]))

    check_gradients(model, run, dout=np.array([[0.3, -1.2, 0.7], [-0.4, 0.9, 0.2]]))
    check_gradients(model, run)  # the loss's own gradient


# -- structure, dropout steps, padding -------------------------------------------------------------
def test_names_shapes_and_tying_match_the_reference():
    cfg = BERTConfig(**TINY)
    ours, spec = BERT(cfg), reference.BERT(cfg)
    assert [(n, p.shape) for n, p in ours.named_parameters()] == [
        (n, tuple(p.shape)) for n, p in spec.named_parameters()
    ]
    decoder = ours.cls.predictions.decoder
    assert decoder.weight is ours.bert.embeddings.word_embeddings.weight
    assert decoder.bias is ours.cls.predictions.bias
    assert ours.num_parameters() == spec.num_parameters()


def test_dropout_masks_follow_the_step_counter():
    model = jitter(BERT(BERTConfig(**TINY, dropout=0.3), "float64"), 9)
    first, _ = model(IDX)
    second, _ = model(IDX)
    assert model.step == 2 and not np.array_equal(first, second)
    model.step = 0
    assert np.array_equal(model(IDX)[0], first)  # a function of (seed, step) alone
    model.eval()
    model(IDX)
    assert model.step == 1  # evaluation does not count


def test_padding_never_changes_the_real_tokens_outputs():
    model = jitter(BERT(BERTConfig(**{**TINY, "block_size": 6}), "float64"), 7).eval()
    rows, types = [[1, 2, 3], [4, 5, 6, 2, 1], [3]], [[0, 0, 1], [0, 1, 1, 1, 0], [1]]
    alone = [model(np.array([r]), np.array([t]))[0][0] for r, t in zip(rows, types)]
    T = 6
    pad = lambda rs, v: np.array([r + [v] * (T - len(r)) for r in rs])  # noqa: E731
    mask = np.array([[1] * len(r) + [0] * (T - len(r)) for r in rows])
    logits, _ = model(pad(rows, 0), pad(types, 0), mask)
    other, _ = model(pad(rows, 5), pad(types, 1), mask)  # other padding ids and types
    for b, r in enumerate(rows):
        np.testing.assert_allclose(logits[b, : len(r)], alone[b], rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(other[b, : len(r)], logits[b, : len(r)])
    clf = jitter(BERTForSequenceClassification(BERTConfig(**TINY), 2, "float64"), 8).eval()
    padded, _ = clf(np.array([[1, 2, 3, 0, 0], [4] * 5]), attention_mask=[[1, 1, 1, 0, 0], [1] * 5])
    np.testing.assert_allclose(padded[0], clf([[1, 2, 3]])[0][0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_is_kept_through_training_and_checkpoints(dtype, tmp_path):
    model = BERT(BERTConfig(**TINY, dropout=0.1), dtype)
    opt = AdamW(model.parameters(), lr=0.01)
    logits, loss = model(IDX, TT, AM, labels=IDX)
    model.zero_grad()
    model.backward()
    opt.step()
    assert logits.dtype == np.dtype(dtype) and isinstance(loss, float)
    assert all(p.data.dtype == p.grad.dtype == np.dtype(dtype) for p in model.parameters())
    model.save_pretrained(tmp_path, dtype="float64")
    again = BERT.from_pretrained(tmp_path, dtype=dtype)
    assert all(p.data.dtype == np.dtype(dtype) for p in again.parameters())
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(again.state_dict()[name], value)
    clf = BERTForSequenceClassification(BERTConfig(**TINY), 3, dtype=dtype)
    assert clf(IDX, labels=np.array([0, 2]))[0].dtype == np.dtype(dtype)


# -- validation before any kernel ------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        (dict(idx=np.array([1, 2])), ValueError, "idx must be a non-empty"),
        (dict(idx=np.array([[1, 2.0]])), TypeError, "idx must hold ints, got float at"),
        (dict(idx=np.array([[1, 7]])), ValueError, "idx value 7 out of range for vocab_size 7"),
        (dict(idx=np.array([[1, -1]])), ValueError, "idx value -1 out of range"),
        (dict(idx=np.array([[True, False]])), TypeError, "idx must hold ints, got bool"),
        (dict(idx=[[1, True]]), TypeError, "idx must hold ints, got bool"),
        (dict(idx=np.ones((1, 6), int)), ValueError, "T=6 exceeds block_size"),
        (dict(idx=np.array([[1, 2]], np.uint64) * 2**63), ValueError, "out of range"),
        (dict(token_type_ids=np.array([[0, 2]])), ValueError, "token_type_ids value 2"),
        (dict(token_type_ids=np.array([[0, 1, 0]])), ValueError, "token_type_ids must have"),
        (dict(attention_mask=np.array([[1, 2]])), ValueError, "attention_mask must hold 0/1"),
        (dict(attention_mask=np.array([[1.0, np.nan]])), ValueError, "attention_mask must hold"),
        (dict(attention_mask=np.array([[1]])), ValueError, "attention_mask must have shape"),
        (dict(labels=np.array([[1, 7]])), ValueError, "labels value 7 out of range"),
        (dict(labels=np.array([[1, -5]])), ValueError, "labels value -5"),
        (dict(labels=np.array([[1]])), ValueError, "labels must have shape"),
    ],
)
def test_bad_input_is_caught_before_any_kernel(kwargs, error, words):
    model = BERT(BERTConfig(**TINY))
    with pytest.raises(error, match=words):
        model(**{"idx": np.array([[1, 2]]), **kwargs})
    assert model.step == 0  # refused before the dropout step was taken


def test_classifier_and_backward_errors():
    clf = BERTForSequenceClassification(BERTConfig(**TINY), num_labels=3)
    with pytest.raises(ValueError, match="labels value 3 out of range for num_labels 3"):
        clf(IDX, labels=np.array([0, 3]))
    with pytest.raises(ValueError, match="labels must be a list of 2"):
        clf(IDX, labels=np.array([0, 1, 2]))
    with pytest.raises(TypeError, match="labels must hold ints"):
        clf(IDX, labels=[0, True])
    model = BERT(BERTConfig(**TINY))
    with pytest.raises(RuntimeError, match="forward"):
        model.backward()
    model(IDX)
    with pytest.raises(ValueError, match=r"dlogits must have shape \(2, 4, 7\)"):
        model.backward(np.zeros((2, 4, 6)))


def test_check_bert_inputs_agrees_with_the_reference():
    cfg = BERTConfig(**TINY)
    for args in ((IDX, TT, AM), (IDX, None, None), (IDX.tolist(), TT.tolist(), AM.astype(bool))):
        ids, types, padding = check_bert_inputs(cfg, *args)
        want = reference.bert.check_bert_inputs(
            cfg, *(getattr(a, "tolist", lambda: a)() for a in args)
        )
        assert [ids.tolist(), types.tolist()] == list(want[:2])
        assert (padding if padding is None else padding.tolist()) == want[2]
        assert ids.dtype == types.dtype == np.int64
    assert check_bert_inputs(cfg, IDX, attention_mask=AM)[2][1].tolist() == [0, 0, 0, 1]


# -- the masking recipe ----------------------------------------------------------------------------
def test_mask_tokens_worked_example_and_statistics():
    inputs, labels = mask_tokens(
        np.array([[5, 6, 7, 8, 0]]), 9, 9, {0}, seed=0, stream=0, mask_prob=1
    )
    assert inputs.tolist() == [[6, 6, 9, 9, 0]] and labels.tolist() == [[5, 6, 7, 8, -100]]
    rng = np.random.default_rng(1)
    idx = rng.integers(0, 97, size=(100, 400))
    idx[:, -40:] = 98  # padding
    inputs, labels = mask_tokens(idx, 97, 97, {98, 97}, seed=3, stream=1)
    pad = idx == 98
    assert (inputs[pad] == 98).all() and (labels[pad] == -100).all()
    selected = labels != -100
    assert np.array_equal(labels[selected], idx[selected])
    assert abs(selected.sum() / (~pad).sum() - 0.15) < 0.01
    assert abs((inputs[selected] == 97).mean() - 0.8) < 0.03
    assert np.array_equal(inputs[~selected], idx[~selected])


# -- checkpoints and Hugging Face interoperability -------------------------------------------------
def test_from_pretrained_reads_hugging_face_variants(tmp_path):
    """The tied decoder stored twice, the position_ids buffer, BertForPreTraining's extras and
    TF-era gamma/beta names load; a decoder that differs from the embedding is refused."""
    model = jitter(BERT(BERTConfig(**TINY), "float64"), 13)
    state = model.state_dict()
    state["cls.predictions.decoder.weight"] = state["bert.embeddings.word_embeddings.weight"]
    state["cls.predictions.decoder.bias"] = state.pop("cls.predictions.bias")
    state["bert.embeddings.position_ids"] = np.arange(5)[None].astype(float)
    state["bert.pooler.dense.weight"] = np.zeros((4, 4))
    state["bert.embeddings.LayerNorm.gamma"] = state.pop("bert.embeddings.LayerNorm.weight")
    state["bert.embeddings.LayerNorm.beta"] = state.pop("bert.embeddings.LayerNorm.bias")
    save_safetensors(state, tmp_path / "model.safetensors", dtype="float64")
    with open(tmp_path / "config.json", "w") as f:
        json.dump(model.config_dict(), f)
    again = BERT.from_pretrained(tmp_path, dtype="float64")
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(again.state_dict()[name], value)
    with pytest.warns(UserWarning, match="classifier.weight"):
        clf = BERTForSequenceClassification.from_pretrained(tmp_path, num_labels=4)
    assert clf.num_labels == 4
    state["cls.predictions.decoder.weight"] = np.zeros((7, 4))  # untied: refuse
    save_safetensors(state, tmp_path / "model.safetensors", dtype="float64")
    with pytest.raises(ValueError, match="ties them"):
        BERT.from_pretrained(tmp_path)


HF_TINY = dict(vocab_size=11, block_size=6, n_layer=2, n_head=2, n_embd=8, intermediate_size=12)
HF_IDX = np.array([[1, 2, 3, 4, 5], [6, 0, 2, 1, 1]])
HF_TT = np.array([[0, 0, 1, 1, 1], [0, 1, 1, 0, 0]])
HF_AM = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])  # a real token in every row (HF and we
# differ only on a row that is all padding)


@pytest.fixture
def hf():
    os.environ["HF_HUB_OFFLINE"] = "1"  # never touch the network
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    return torch, transformers


def test_hugging_face_computes_our_logits_both_ways(hf, tmp_path):
    torch, transformers = hf
    ours = jitter(BERT(BERTConfig(**HF_TINY, seed=1), "float64"), 11, scale=0.3).eval()
    want, _ = ours(HF_IDX, HF_TT, HF_AM)
    ours.save_pretrained(tmp_path, dtype="float64")
    theirs, info = transformers.BertForMaskedLM.from_pretrained(
        tmp_path, dtype=torch.float64, output_loading_info=True
    )
    assert not any(info.values()), info  # no missing, unexpected or mismatched keys
    theirs.eval()
    with torch.no_grad():
        got = theirs(
            input_ids=torch.tensor(HF_IDX),
            token_type_ids=torch.tensor(HF_TT),
            attention_mask=torch.tensor(HF_AM),
        ).logits.numpy()
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    # and back: Hugging Face's own file (the tied decoder left out) into a float32 model
    theirs.float().save_pretrained(tmp_path / "hf")
    back = BERT.from_pretrained(tmp_path / "hf").eval()
    logits32, _ = back(HF_IDX, HF_TT, HF_AM)
    assert logits32.dtype == np.float32
    np.testing.assert_allclose(logits32, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())

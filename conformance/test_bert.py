"""BERT across backends: the reference is the oracle for the logits, the loss, every parameter's
gradient and a 5-step AdamW trajectory with dropout on (the same masks in both), for the
masked-LM model and the classifier; `mask_tokens` must make the same decisions exactly.

float64: 1e-9 relative (the candidate's BLAS sums in another order; see compare_gradients and
compare_trajectory for the absolute parts and why). float32: `float32_tol` of the
longest sum, a few layers deep, relative to the output's magnitude.
Configurations are tiny and generated (V 5-9, T 1-5, L 1-2, H 1-2, C 2-6), with padding, token
types and ignored labels.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference
from conformance.tolerance import assert_close, assert_same_error, compare_gradients, float32_tol


@st.composite
def bert_case(draw, min_C=2, dropout=None):
    """(config, inputs): a tiny config (dropout p drawn unless given), a batch with padding and
    token types, MLM labels with ignored positions, class labels, and a weight-jitter seed."""
    H = draw(st.integers(1, 2))
    C = draw(st.sampled_from([c for c in range(min_C, 7) if c % H == 0]))
    V, T, B = draw(st.integers(5, 9)), draw(st.integers(1, 5)), draw(st.integers(1, 3))
    p = draw(st.sampled_from([0.0, 0.1, 0.4])) if dropout is None else dropout
    config = reference.BERTConfig(
        vocab_size=V,
        block_size=T + draw(st.integers(0, 2)),
        n_layer=draw(st.integers(1, 2)),
        n_head=H,
        n_embd=C,
        intermediate_size=draw(st.integers(2, 6)),
        type_vocab_size=draw(st.integers(1, 3)),
        dropout=p,
        attn_dropout=draw(st.sampled_from([0.0, 0.3])) if p else 0.0,
        seed=draw(st.integers(0, 2**64 - 1)),
    )
    grid = lambda values: [[draw(values) for _ in range(T)] for _ in range(B)]  # noqa: E731
    idx = grid(st.integers(0, V - 1))
    types = draw(st.none() | st.just(grid(st.integers(0, config.type_vocab_size - 1))))
    mask = draw(st.none() | st.just(grid(st.integers(0, 1))))  # rows may be all padding
    labels = grid(st.just(-100) | st.integers(0, V - 1))
    classes = [draw(st.integers(0, 2)) for _ in range(B)]
    return config, dict(
        idx=idx, types=types, mask=mask, labels=labels, classes=classes, seed=draw(st.integers())
    )


def jittered_state(model, seed):
    """The reference model's weights moved off their initial values (LayerNorm ones, zero
    biases), so that no gradient is trivially zero or symmetric."""
    rng = np.random.default_rng(abs(seed))
    return {
        n: (np.asarray(v) + rng.uniform(-0.5, 0.5, np.shape(v))).tolist()
        for n, v in model.state_dict().items()
    }


def pair(candidate, config, inputs, classifier=False):
    """The reference model and the candidate's (float64), holding the same weights."""
    if classifier:
        r = reference.BERTForSequenceClassification(config, num_labels=3)
        c = candidate.BERTForSequenceClassification(config, num_labels=3, dtype="float64")
    else:
        r, c = reference.BERT(config), candidate.BERT(config, dtype="float64")
    state = jittered_state(r, inputs["seed"])
    r.load_state_dict(state)
    c.load_state_dict(state)
    return r, c


def run_both(r, c, inputs, labels):
    """One forward in each backend: the reference on lists, the candidate on arrays."""
    i, t, m = inputs["idx"], inputs["types"], inputs["mask"]
    array = lambda x: None if x is None else np.array(x)  # noqa: E731
    rout = r(i, t, m, labels)
    cout = c(np.array(i), array(t), array(m), None if labels is None else np.array(labels))
    return rout, cout


def compare_trajectory(candidate, r, c, inputs, labels, steps=5):
    """`steps` AdamW steps in each backend with dropout on (the step counter picks the masks):
    the loss at every step and every parameter after each.

    Adam divides each gradient by its own RMS + eps, so a gradient that is 0 in exact arithmetic
    (the key bias's: softmax ignores a constant added to all of a query's scores) turns rounding
    noise of ~1e-17 into a step of lr * noise / eps; eps = 1e-6 keeps that near 1e-13.
    """
    ropt = reference.AdamW(r.parameters(), lr=0.01, eps=1e-6, weight_decay=0.1)
    copt = candidate.AdamW(c.parameters(), lr=0.01, eps=1e-6, weight_decay=0.1)
    for step in range(steps):
        (_, rloss), (_, closs) = run_both(r, c, inputs, labels)
        assert_close(closs, rloss, what=f"loss at step {step}")
        r.zero_grad()
        c.zero_grad()
        r.backward()
        c.backward()
        ropt.step()
        copt.step()
        cstate = c.state_dict()
        for name, value in r.state_dict().items():
            assert_close(cstate[name], value, what=f"{name} after step {step}")
    assert c.step == r.step


@given(bert_case())
def test_mlm_logits_loss_and_every_gradient_float64(candidate, case):
    config, inputs = case
    r, c = pair(candidate, config, inputs)
    (rlogits, rloss), (clogits, closs) = run_both(r, c, inputs, inputs["labels"])
    assert clogits.dtype == np.float64 and clogits.shape == np.shape(rlogits)
    assert_close(clogits, rlogits, what="logits")
    assert_close(closs, rloss, what="loss")
    r.zero_grad()
    c.zero_grad()
    r.backward()
    c.backward()
    compare_gradients(r, c, "from the loss")
    # a non-uniform upstream gradient on the logits, after a fresh forward (new dropout masks)
    dlogits = np.cos(np.arange(clogits.size) * 0.7 + 0.3).reshape(clogits.shape)
    run_both(r, c, inputs, None)
    r.zero_grad()
    c.zero_grad()
    r.backward(dlogits.tolist())
    c.backward(dlogits)
    compare_gradients(r, c, "from dlogits")
    assert c.step == r.step == 2  # every training-mode forward counts, dropout or not


@given(bert_case(min_C=3, dropout=0.3))
def test_mlm_adamw_trajectory_with_dropout(candidate, case):
    # C >= 3: at C = 2 layer norm's output is +-1 whatever its input, so every gradient below
    # it is rounding noise, which Adam (see compare_trajectory) would magnify
    config, inputs = case
    r, c = pair(candidate, config, inputs)
    compare_trajectory(candidate, r, c, inputs, inputs["labels"])


@given(bert_case(min_C=3, dropout=0.3))
def test_classifier_gradients_and_trajectory(candidate, case):
    config, inputs = case
    r, c = pair(candidate, config, inputs, classifier=True)
    (rlogits, rloss), (clogits, closs) = run_both(r, c, inputs, inputs["classes"])
    assert clogits.shape == np.shape(rlogits)
    assert_close(clogits, rlogits, what="class logits")
    assert_close(closs, rloss, what="class loss")
    r.zero_grad()
    c.zero_grad()
    r.backward()
    c.backward()
    compare_gradients(r, c, "classifier")
    compare_trajectory(candidate, r, c, inputs, inputs["classes"])


@given(bert_case())
def test_float32_within_derived_tolerance(candidate, case):
    config, inputs = case
    r = reference.BERT(config)
    r.load_state_dict(jittered_state(r, inputs["seed"]))
    c = candidate.BERT(config)  # float32, the default
    c.load_state_dict(r.state_dict())
    (rlogits, rloss), (clogits, closs) = run_both(r, c, inputs, inputs["labels"])
    assert clogits.dtype == np.float32
    c_, i_ = config.n_embd, config.intermediate_size
    tol = float32_tol(max(c_, i_, config.vocab_size, np.shape(rlogits)[1]), 2 * config.n_layer + 3)
    scale = 1.0 + float(np.max(np.abs(rlogits)))
    assert_close(clogits, rlogits, rtol=tol, atol=tol * scale, what="float32 logits")
    assert_close(closs, rloss, rtol=tol, atol=tol * scale, what="float32 loss")
    r.backward()
    c.backward()
    gscale = max(float(np.max(np.abs(p.grad))) for _, p in r.named_parameters())
    for name, p in c.named_parameters():
        assert p.grad.dtype == np.float32, name
    cgrads = dict(c.named_parameters())
    for name, p in r.named_parameters():
        # the absolute part is the largest gradient's: at C = 2 some gradients are pure noise
        assert_close(cgrads[name].grad, p.grad, rtol=tol, atol=tol * gscale, what=f"f32 {name}")


@given(
    st.integers(1, 4),
    st.integers(1, 9),
    st.integers(1, 12) | st.integers(2**32 - 2, 2**33),
    st.data(),
)
def test_mask_tokens_makes_the_same_decisions(candidate, B, T, V, data):
    high = min(V, 12) + 3  # ids past V: special tokens such as [MASK] and [PAD]
    idx = [[data.draw(st.integers(0, high - 1)) for _ in range(T)] for _ in range(B)]
    specials = data.draw(st.sets(st.integers(0, high - 1), max_size=4))
    mask_id = data.draw(st.integers(0, high))
    seed, stream = data.draw(st.integers(0, 2**64 - 1)), data.draw(st.integers(0, 2**64 - 1))
    p = data.draw(st.sampled_from([0.0, 0.15, 0.5, 1.0]) | st.floats(0.0, 1.0))
    want = reference.mask_tokens(idx, V, mask_id, specials, seed, stream, p)
    got = candidate.mask_tokens(np.array(idx), V, mask_id, specials, seed, stream, p)
    assert [np.asarray(a).tolist() for a in got] == [list(a) for a in want]
    lists = candidate.mask_tokens(idx, V, mask_id, sorted(specials), seed, stream, mask_prob=p)
    assert [np.asarray(a).tolist() for a in lists] == [list(a) for a in want]


# -- the same errors, with the same messages -------------------------------------------------------
CFG = dict(vocab_size=7, block_size=4, n_layer=1, n_head=2, n_embd=4, intermediate_size=6)
OK = [[1, 2], [3, 4]]
FORWARD_ERRORS = [
    dict(idx=[]),
    dict(idx=[1, 2, 3]),
    dict(idx=[[1, 2], [3]]),
    dict(idx=[[]]),
    dict(idx=[[1, 2.0], [3, 4]]),
    dict(idx=[[1, True], [3, 4]]),
    dict(idx=[[1, "a"], [3, 4]]),
    dict(idx=[[1, 7], [3, 4]]),
    dict(idx=[[1, 2], [-1, 4]]),
    dict(idx=[[1] * 5]),
    dict(token_type_ids=[[0, 2], [0, 0]]),
    dict(token_type_ids=[[0, 1, 0]]),
    dict(token_type_ids=[[0, 0.5], [0, 0]]),
    dict(attention_mask=[[1, 2], [1, 1]]),
    dict(attention_mask=[[1], [1]]),
    dict(attention_mask=[[1, 1]]),
    dict(attention_mask=[[1, None], [1, 1]]),
    dict(labels=[[1, 7], [1, 1]]),
    dict(labels=[[1, -5], [1, 1]]),
    dict(labels=[[1]]),
    dict(labels=[[1, 2.0], [1, 1]]),
]


@pytest.mark.parametrize("kwargs", FORWARD_ERRORS, ids=repr)
def test_forward_errors(candidate, kwargs):
    args = {"idx": OK, **kwargs}
    r, c = reference.BERT(reference.BERTConfig(**CFG)), candidate.BERT(reference.BERTConfig(**CFG))
    assert_same_error(lambda: r(**args), lambda: c(**args))
    try:
        arrays = {k: np.array(v) for k, v in args.items()}
    except ValueError:  # ragged: lists only
        return
    # the reference takes arrays too; as arrays, [[1, True]] is [[1, 1]]: accepted by both
    assert_same_error(lambda: r(**arrays), lambda: c(**arrays), must_raise=False)


@pytest.mark.parametrize("labels", [[0], [0, 3], [0, 1.0], [[0], [1]], 5, [0, -1]], ids=repr)
def test_classifier_label_errors(candidate, labels):
    cfg = reference.BERTConfig(**CFG)
    r = reference.BERTForSequenceClassification(cfg, num_labels=3)
    c = candidate.BERTForSequenceClassification(cfg, num_labels=3)
    assert_same_error(lambda: r(OK, labels=labels), lambda: c(OK, labels=labels))


MASK_ERRORS = [
    dict(idx=[1, 2]),
    dict(idx=[[1, 2], [3]]),
    dict(idx=[[1.0, 2]]),
    dict(vocab_size=0),
    dict(vocab_size=2.0),
    dict(mask_token_id=-1),
    dict(mask_prob=1.5),
    dict(mask_prob="0.15"),
    dict(seed=-1),
    dict(stream=2**64),
    dict(seed=1.0),
    dict(special_token_ids=0),
    dict(special_token_ids=None),
    dict(special_token_ids="01"),
    dict(special_token_ids=[[1]]),
    dict(special_token_ids=[1.5]),
    dict(special_token_ids=[True]),
    dict(special_token_ids=[-1]),
    dict(special_token_ids=[0], vocab_size=0),  # two bad arguments: the same one is named first
]


@pytest.mark.parametrize("kwargs", MASK_ERRORS, ids=repr)
def test_mask_tokens_errors(candidate, kwargs):
    args = dict(idx=[[1, 2]], vocab_size=5, mask_token_id=5, special_token_ids=(), seed=0, stream=0)
    args.update(kwargs)
    assert_same_error(lambda: reference.mask_tokens(**args), lambda: candidate.mask_tokens(**args))


def test_constructor_and_backward_errors(candidate):
    cfg = reference.BERTConfig(**CFG)
    for call in (
        lambda m: m.BERT(dict(CFG)),
        lambda m: m.BERTForSequenceClassification(cfg, num_labels=1),
        lambda m: m.BERT(cfg).backward(),
        lambda m: m.BERTForSequenceClassification(cfg, num_labels=2).backward(),
    ):
        assert_same_error(lambda: call(reference), lambda: call(candidate))
    for M, shape in ((lambda m: m.BERT(cfg), (1, 2, 6)), (lambda m: m.BERT(cfg), (1, 3, 7))):
        r, c = M(reference), M(candidate)
        r([[1, 2]]), c([[1, 2]])
        assert_same_error(r.backward, c.backward)  # no labels: no loss to differentiate
        bad = np.zeros(shape)
        assert_same_error(lambda: r.backward(bad.tolist()), lambda: c.backward(bad))


# -- determinism and checkpoints -------------------------------------------------------------------
def test_determinism(candidate):
    """The same seeds give the same training run twice in the candidate (float32, dropout and
    MLM masking on)."""
    cfg = reference.BERTConfig(**{**CFG, "vocab_size": 12}, dropout=0.2, seed=9)
    rng = np.random.default_rng(0)
    idx = rng.integers(1, 10, size=(3, 4))
    runs = []
    for _ in range(2):
        model = candidate.BERT(cfg)
        opt = candidate.AdamW(model.parameters(), lr=0.01)
        losses = []
        for step in range(3):
            inputs, labels = candidate.mask_tokens(idx, 10, 10, {0}, 9, step << 16, 0.5)
            _, loss = model(inputs, attention_mask=np.ones_like(idx), labels=labels)
            model.zero_grad()
            model.backward()
            opt.step()
            losses.append(loss)
        runs.append((losses, model.state_dict()))
    assert runs[0][0] == runs[1][0]
    for name, value in runs[0][1].items():
        assert np.array_equal(runs[1][1][name], value), name


@pytest.mark.parametrize("classifier", [False, True])
def test_weights_move_between_backends(candidate, classifier, tmp_path):
    config = reference.BERTConfig(**CFG, seed=4)
    inputs = dict(idx=[[1, 2, 3], [4, 5, 6]], types=[[0, 0, 1], [0, 1, 1]], seed=5)
    inputs["mask"] = [[1, 1, 1], [1, 1, 0]]
    if classifier:
        r, name = (
            reference.BERTForSequenceClassification(config, 3),
            "BERTForSequenceClassification",
        )
    else:
        r, name = reference.BERT(config), "BERT"
    r.load_state_dict(jittered_state(r, inputs["seed"]))
    r.eval()
    r.save_pretrained(tmp_path / "ref", dtype="float64")
    c = getattr(candidate, name).from_pretrained(tmp_path / "ref", dtype="float64").eval()
    (rlogits, _), (clogits, _) = run_both(r, c, inputs, None)
    assert_close(clogits, rlogits, what="logits after reference -> candidate")
    c.save_pretrained(tmp_path / "cand", dtype="float64")
    back = type(r).from_pretrained(tmp_path / "cand")
    assert back.state_dict() == r.state_dict()
    if classifier:
        assert back.num_labels == c.num_labels == 3

"""The encoder-decoder Transformer across backends: the reference is the oracle for the
initial weights, the logits, the loss, every parameter's gradient, a 5-step AdamW trajectory with
dropout on (the same masks in both), greedy decoding and beam search (the same tokens), the
checkpoint format and every validation error (same type, same message).

float64: 1e-9 relative (the candidate's BLAS sums in another order; see compare_gradients and
compare_trajectory for the absolute parts and why). float32: `float32_tol` of the longest sum,
a few layers deep, relative to the output's magnitude.
Configurations are tiny and generated (V 5-8, C 2-6, H 1-2, one layer each, F 3-8), with
right-padded sources and targets and ignored target positions.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference
from conformance.tolerance import assert_close, assert_same_error, compare_gradients, float32_tol

PAD, BOS, EOS = 0, 1, 2


@st.composite
def seq2seq_case(draw, min_C=2, dropout=None):
    """(config, inputs): a tiny config (dropout p drawn unless given), a right-padded batch of
    sources and decoder inputs (every row at least one real token), targets with pad_id and -100
    positions, and a weight-jitter seed."""
    H = draw(st.integers(1, 2))
    C = draw(st.sampled_from([c for c in range(max(2, min_C), 7) if c % H == 0]))
    Vs, Vt = draw(st.integers(5, 8)), draw(st.integers(5, 8))
    Ts, Tt, B = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 3))
    p = draw(st.sampled_from([0.0, 0.1, 0.4])) if dropout is None else dropout
    config = reference.TransformerConfig(
        src_vocab_size=Vs,
        tgt_vocab_size=Vt,
        d_model=C,
        nhead=H,
        num_encoder_layers=1,
        num_decoder_layers=1,
        dim_feedforward=draw(st.integers(3, 8)),
        dropout=p,
        max_len=max(Ts, Tt) + draw(st.integers(0, 2)),
        seed=draw(st.integers(0, 2**64 - 1)),
    )

    def padded(T, V):  # right-padded rows of 1..T real (non-pad) tokens
        rows = []
        for _ in range(B):
            n = draw(st.integers(1, T))
            rows.append([draw(st.integers(1, V - 1)) for _ in range(n)] + [PAD] * (T - n))
        return rows

    src, tgt = padded(Ts, Vs), padded(Tt, Vt)
    targets = [[draw(st.just(-100) | st.integers(0, Vt - 1)) for _ in range(Tt)] for _ in range(B)]
    targets[0][0] = draw(st.integers(1, Vt - 1))  # at least one counted position (pad_id is 0)
    return config, dict(src=src, tgt=tgt, targets=targets, seed=draw(st.integers()))


def jittered_state(model, seed):
    """The reference model's weights moved off their initial values (LayerNorm ones, zero
    biases), so that no gradient is trivially zero or symmetric."""
    rng = np.random.default_rng(abs(seed))
    return {
        n: (np.asarray(v) + rng.uniform(-0.5, 0.5, np.shape(v))).tolist()
        for n, v in model.state_dict().items()
    }


def pair(candidate, config, inputs, dtype="float64"):
    """The reference model and the candidate's, holding the same (jittered) weights."""
    r, c = reference.Transformer(config), candidate.Transformer(config, dtype=dtype)
    state = jittered_state(r, inputs["seed"])
    r.load_state_dict(state)
    c.load_state_dict(state)
    return r, c


def run_both(r, c, inputs, with_targets=True):
    """One forward in each backend: the reference on lists, the candidate on arrays."""
    t = inputs["targets"] if with_targets else None
    rout = r(inputs["src"], inputs["tgt"], t)
    cout = c(np.array(inputs["src"]), np.array(inputs["tgt"]), None if t is None else np.array(t))
    return rout, cout


@given(seq2seq_case())
def test_logits_loss_and_every_gradient_float64(candidate, case):
    config, inputs = case
    r, c = pair(candidate, config, inputs)
    (rlogits, rloss), (clogits, closs) = run_both(r, c, inputs)
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
    run_both(r, c, inputs, with_targets=False)
    r.zero_grad()
    c.zero_grad()
    r.backward(dlogits.tolist())
    c.backward(dlogits)
    compare_gradients(r, c, "from dlogits")
    assert c.dropout_step == r.dropout_step == 2  # every training-mode forward counts


@given(seq2seq_case(min_C=3, dropout=0.3))
def test_adamw_trajectory_with_dropout(candidate, case):
    """5 AdamW steps with dropout on (the step counter picks the masks): the loss at every step
    and every parameter after each. C >= 3: at C = 2 layer norm's output is +-1 whatever its
    input, so every gradient below it is rounding noise, which Adam would magnify. Adam divides
    each gradient by its own RMS + eps, so a gradient that is 0 in exact arithmetic (the key
    bias's) turns rounding noise of ~1e-17 into a step of lr * noise / eps; eps = 1e-6 keeps that
    near 1e-13."""
    config, inputs = case
    r, c = pair(candidate, config, inputs)
    ropt = reference.AdamW(r.parameters(), lr=0.01, eps=1e-6, weight_decay=0.1)
    copt = candidate.AdamW(c.parameters(), lr=0.01, eps=1e-6, weight_decay=0.1)
    for step in range(5):
        (_, rloss), (_, closs) = run_both(r, c, inputs)
        assert_close(closs, rloss, what=f"loss at step {step}")
        r.zero_grad()
        c.zero_grad()
        r.backward()
        c.backward()
        ropt.step()
        copt.step()
        cstate = c.state_dict()
        for name, value in r.state_dict().items():
            assert_close(cstate[name], value, atol=1e-11, what=f"{name} after step {step}")
    assert c.dropout_step == r.dropout_step == 5


@given(seq2seq_case())
def test_float32_within_derived_tolerance(candidate, case):
    config, inputs = case
    r = reference.Transformer(config)
    r.load_state_dict(jittered_state(r, inputs["seed"]))
    c = candidate.Transformer(config)  # float32, the default
    c.load_state_dict(r.state_dict())
    r.eval(), c.eval()  # dropout off: float32 rounding could flip a keep decision's neighbour
    (rlogits, rloss), (clogits, closs) = run_both(r, c, inputs)
    assert clogits.dtype == np.float32
    longest = max(config.d_model, config.dim_feedforward, config.tgt_vocab_size, config.max_len)
    tol = float32_tol(longest, 12)  # two layers of 3 sub-layers each, norms, embeddings, head
    scale = 1.0 + float(np.max(np.abs(rlogits)))
    assert_close(clogits, rlogits, rtol=tol, atol=tol * scale, what="float32 logits")
    assert_close(closs, rloss, rtol=tol, atol=tol * scale, what="float32 loss")
    r.backward()
    c.backward()
    gscale = max(float(np.max(np.abs(p.grad))) for _, p in r.named_parameters())
    cgrads = dict(c.named_parameters())
    for name, p in r.named_parameters():
        assert cgrads[name].grad.dtype == np.float32, name
        # the absolute part is the largest gradient's: at C = 2 some gradients are pure noise
        assert_close(cgrads[name].grad, p.grad, rtol=tol, atol=tol * gscale, what=f"f32 {name}")


@given(seq2seq_case(min_C=3, dropout=0.2), st.data())
def test_greedy_and_beam_search_give_the_same_tokens(candidate, case, data):
    """Same tokens from both (decoding runs without dropout, whatever the mode). C >= 3: at C = 2
    the final layer norm leaves two possible outputs, so exact ties between beams are common and
    a last-bit difference would break them the other way."""
    config, inputs = case
    r, c = pair(candidate, config, inputs)
    max_len = data.draw(st.integers(1, config.max_len))
    src = inputs["src"]
    assert c.greedy_decode(np.array(src), max_len) == r.greedy_decode(src, max_len)
    k = data.draw(st.integers(1, 3))
    lp = data.draw(st.sampled_from([0.0, 0.6, 1.0]))
    assert c.beam_search(np.array(src), k, max_len, lp) == r.beam_search(src, k, max_len, lp)
    assert c.training and c.dropout_step == 0  # decoding leaves the mode and the counter alone


def test_initial_weights_match(candidate):
    """The same init streams: embeddings N(0, 1/C) by Box-Muller, Xavier-uniform matrices."""
    sizes = dict(num_encoder_layers=2, num_decoder_layers=1, dim_feedforward=5, seed=11)
    config = reference.TransformerConfig(9, 7, d_model=6, nhead=2, **sizes)
    r, c = reference.Transformer(config), candidate.Transformer(config, dtype="float64")
    cstate = c.state_dict()
    assert list(cstate) == list(r.state_dict())
    for name, value in r.state_dict().items():
        assert_close(cstate[name], value, rtol=1e-12, atol=1e-15, what=f"initial {name}")


def test_candidate_takes_nested_lists(candidate):
    config = reference.TransformerConfig(**{**CFG, "tgt_vocab_size": 7})
    r, c = reference.Transformer(config), candidate.Transformer(config, dtype="float64")
    src, tgt, targets = [[3, 4, 0]], [[1, 3, 4]], [[3, 4, 2]]
    (rl, rloss), (cl, closs) = r(src, tgt, targets), c(src, tgt, targets)
    assert_close(cl, rl, what="logits from lists")
    assert_close(closs, rloss, what="loss from lists")


# -- the same errors, with the same messages -------------------------------------------------------
CFG = dict(src_vocab_size=7, tgt_vocab_size=8, d_model=4, nhead=2, num_encoder_layers=1,
           num_decoder_layers=1, dim_feedforward=6, max_len=4)  # fmt: skip
SRC, TGT = [[3, 4], [5, 0]], [[1, 3, 4], [1, 5, 0]]
FORWARD_ERRORS = [
    dict(src=[]),
    dict(src=[1, 2]),
    dict(src=[[3, 4], [5]]),
    dict(src=[[], []]),
    dict(src=[[3, 4.0], [5, 0]]),
    dict(src=[[3, True], [5, 0]]),
    dict(src=[[3, 7], [5, 0]]),
    dict(src=[[3, -1], [5, 0]]),
    dict(src=[[3] * 5, [5] * 5]),
    dict(tgt=[[1, 3, 4]]),
    dict(tgt=[[1, 3, 8], [1, 5, 0]]),
    dict(tgt=[[1, 3, "a"], [1, 5, 0]]),
    dict(tgt=[[1, 3], [1, 5, 0]]),
    dict(targets=[[3, 4, 8], [5, 2, 0]]),
    dict(targets=[[3, 4, -5], [5, 2, 0]]),
    dict(targets=[[3, 4], [5, 2]]),
    dict(targets=[[3, 4, 2.0], [5, 2, 0]]),
    dict(targets=[[3, 4, 2]]),
]


@pytest.mark.parametrize("kwargs", FORWARD_ERRORS, ids=repr)
def test_forward_errors(candidate, kwargs):
    args = {"src": SRC, "tgt": TGT, "targets": [[3, 4, 2], [5, 2, 0]], **kwargs}
    cfg = reference.TransformerConfig(**CFG)
    r, c = reference.Transformer(cfg), candidate.Transformer(cfg)
    assert_same_error(lambda: r(**args), lambda: c(**args))
    try:
        arrays = {k: np.array(v) for k, v in args.items()}
    except ValueError:  # ragged: lists only
        return
    # the reference takes arrays too; as arrays, [[3, True]] is [[3, 1]]: accepted by both
    assert_same_error(lambda: r(**arrays), lambda: c(**arrays), must_raise=False)


CONFIG_ERRORS = [
    dict(d_model=5),
    dict(nhead=0),
    dict(dropout=1.0),
    dict(layer_norm_eps=0.0),
    dict(pad_id=7),
    dict(bos_id=0),
    dict(seed=-1),
    dict(max_len=2.0),
]


@pytest.mark.parametrize("kwargs", CONFIG_ERRORS, ids=repr)
def test_config_errors(candidate, kwargs):
    assert_same_error(
        lambda: reference.TransformerConfig(**{**CFG, **kwargs}),
        lambda: candidate.TransformerConfig(**{**CFG, **kwargs}),
    )


def test_model_backward_and_decoding_errors(candidate):
    cfg = reference.TransformerConfig(**CFG)
    for call in (
        lambda m: m.Transformer(dict(CFG)),
        lambda m: m.Transformer(cfg).backward(),
        lambda m: m.Transformer.from_config_dict({**CFG, "model_type": "gpt2"}),
        lambda m: m.Transformer.from_config_dict(dict(CFG)),
        lambda m: m.Transformer(cfg).greedy_decode(SRC, max_len=0),
        lambda m: m.Transformer(cfg).greedy_decode(SRC, max_len=5),
        lambda m: m.Transformer(cfg).greedy_decode(SRC, max_len=2.0),
        lambda m: m.Transformer(cfg).greedy_decode([[3, 9]]),
        lambda m: m.Transformer(cfg).beam_search(SRC, beam_width=0),
        lambda m: m.Transformer(cfg).beam_search(SRC, length_penalty=float("nan")),
        lambda m: m.Transformer(cfg).beam_search(SRC, length_penalty="1"),
        lambda m: m.Transformer(cfg).beam_search(SRC, max_len=9),
    ):
        assert_same_error(lambda: call(reference), lambda: call(candidate))
    r, c = reference.Transformer(cfg), candidate.Transformer(cfg)
    r(SRC, TGT), c(SRC, TGT)
    assert_same_error(r.backward, c.backward)  # no targets: no loss to differentiate
    memory = r.encode(SRC)
    assert_same_error(
        lambda: r.decode(TGT, memory[:1], SRC), lambda: c.decode(TGT, memory[:1], SRC)
    )


# -- determinism and checkpoints -------------------------------------------------------------------
def test_determinism(candidate):
    """The same seeds give the same training run twice in the candidate (float32, dropout on)."""
    cfg = reference.TransformerConfig(**{**CFG, "src_vocab_size": 12}, dropout=0.2, seed=9)
    rng = np.random.default_rng(0)
    src, tgt = rng.integers(1, 12, size=(3, 4)), rng.integers(1, 8, size=(3, 4))
    targets = rng.integers(0, 8, size=(3, 4))
    runs = []
    for _ in range(2):
        model = candidate.Transformer(cfg)
        opt = candidate.AdamW(model.parameters(), lr=0.01)
        losses = []
        for _ in range(3):
            _, loss = model(src, tgt, targets)
            model.zero_grad()
            model.backward()
            opt.step()
            losses.append(loss)
        runs.append((losses, model.state_dict(), model.beam_search(src, 2)))
    assert runs[0][0] == runs[1][0]
    assert runs[0][2] == runs[1][2]
    for name, value in runs[0][1].items():
        assert np.array_equal(runs[1][1][name], value), name


def test_weights_move_between_backends(candidate, tmp_path):
    config = reference.TransformerConfig(**CFG, seed=4)
    r = reference.Transformer(config)
    r.load_state_dict(jittered_state(r, 5))
    r.eval()
    r.save_pretrained(tmp_path / "ref", dtype="float64")
    c = candidate.Transformer.from_pretrained(tmp_path / "ref", dtype="float64").eval()
    assert c.config == config
    inputs = dict(src=SRC, tgt=TGT, targets=[[3, 4, 2], [5, 2, 0]])
    (rlogits, rloss), (clogits, closs) = run_both(r, c, inputs)
    assert_close(clogits, rlogits, what="logits after reference -> candidate")
    assert_close(closs, rloss, what="loss after reference -> candidate")
    assert c.greedy_decode(SRC) == r.greedy_decode(SRC)
    c.save_pretrained(tmp_path / "cand", dtype="float64")
    back = reference.Transformer.from_pretrained(tmp_path / "cand")
    assert back.state_dict() == r.state_dict()
    assert back.config == config
    f32 = candidate.Transformer.from_pretrained(tmp_path / "cand")  # float32 by default
    assert all(p.data.dtype == np.float32 for p in f32.parameters())

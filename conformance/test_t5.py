"""T5 across backends: the reference is the oracle for T5's ops (T5 layer norm, relative
position buckets and bias, the unscaled biased attention, gated GELU: forward and backward), and
for the model's initial weights, logits, loss, every parameter's gradient, a 5-step AdamW
trajectory with dropout on (the same masks in both), greedy decoding and beam search (the same
tokens), span corruption (the same spans), checkpoints and errors (same type, same message).

float64: 1e-9 relative (BLAS sums in another order). float32: `float32_tol` of the longest sum,
a few layers deep, relative to the output's magnitude. Configurations are tiny and generated
(V 6-9, C 2-6, H 1-2, d_kv 1-3, one or two blocks, F 3-6, both feed-forward variants, tied or
untied head), with right-padded sources and targets and ignored target positions.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference
from conformance.tolerance import assert_close, assert_same_error, compare_gradients, float32_tol

PAD, EOS = 0, 1


# -- the ops ---------------------------------------------------------------------------------------
def arrays(draw, *shape):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return rng.uniform(-1.5, 1.5, shape)


@given(st.data())
def test_t5_layer_norm(candidate, data):
    N, C = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 7))
    x, w, d = arrays(data.draw, 2, N, C), arrays(data.draw, C), arrays(data.draw, 2, N, C)
    eps = data.draw(st.sampled_from([1e-6, 0.1]))
    rout, rcache = reference.t5_layer_norm_forward(x.tolist(), w.tolist(), eps)
    cout, ccache = candidate.t5_layer_norm_forward(x, w, eps)
    assert_close(cout, rout, what="t5 layer norm")
    for what, cg, rg in zip(
        ("dx", "dweight"),
        candidate.t5_layer_norm_backward(d, ccache),
        reference.t5_layer_norm_backward(d.tolist(), rcache),
    ):
        assert_close(cg, rg, what=what)


@given(st.integers(-300, 300), st.booleans(), st.integers(2, 40), st.integers(1, 200))
def test_relative_position_bucket_is_shared(candidate, d, bidirectional, buckets, distance):
    call = (d, bidirectional, buckets + 2 * bidirectional, distance + buckets)
    assert candidate.relative_position_bucket(*call) == reference.relative_position_bucket(*call)


@given(st.data())
def test_relative_position_bias(candidate, data):
    buckets, H = data.draw(st.integers(4, 10)), data.draw(st.integers(1, 3))
    Tq, Tk = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 6))
    bidirectional, distance = data.draw(st.booleans()), buckets + data.draw(st.integers(0, 9))
    table, d = arrays(data.draw, buckets, H), arrays(data.draw, H, Tq, Tk)
    rbias, rcache = reference.relative_position_bias_forward(
        table.tolist(), Tq, Tk, bidirectional, distance
    )
    cbias, ccache = candidate.relative_position_bias_forward(table, Tq, Tk, bidirectional, distance)
    assert_close(cbias, rbias, rtol=0, atol=0, what="bias (a gather: exact)")
    assert_close(
        candidate.relative_position_bias_backward(d, ccache),
        reference.relative_position_bias_backward(d.tolist(), rcache),
        what="dtable",
    )


@given(st.data())
def test_t5_attention(candidate, data):
    B, H, hs = (
        data.draw(st.integers(1, 2)),
        data.draw(st.integers(1, 2)),
        data.draw(st.integers(1, 3)),
    )
    Tq, Tk = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    causal = data.draw(st.booleans())
    q, k, v = (
        arrays(data.draw, B, H, Tq, hs),
        arrays(data.draw, B, H, Tk, hs),
        arrays(data.draw, B, H, Tk, hs),
    )
    bias = data.draw(st.none() | st.just(arrays(data.draw, H, Tq, Tk)))
    mask = data.draw(st.none() | st.lists(st.lists(st.booleans(), min_size=Tk, max_size=Tk),
                                          min_size=B, max_size=B))  # fmt: skip
    p = data.draw(st.sampled_from([0.0, 0.3]))
    dout = arrays(data.draw, B, H, Tq, hs)
    args = (causal, mask, p, 5, 7)
    rb = None if bias is None else bias.tolist()
    rout, rcache = reference.t5_attention_forward(q.tolist(), k.tolist(), v.tolist(), rb, *args)
    cout, ccache = candidate.t5_attention_forward(q, k, v, bias, *args)
    assert_close(cout, rout, what="t5 attention")
    assert ccache.scale == rcache.scale == 1.0
    for what, cg, rg in zip(
        ("dq", "dk", "dv", "dbias"),
        candidate.t5_attention_backward(dout, ccache),
        reference.t5_attention_backward(dout.tolist(), rcache),
    ):
        assert_close(cg, rg, what=what)


@given(st.data())
def test_gated_gelu(candidate, data):
    shape = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 5)))
    g, u, d = (arrays(data.draw, *shape) * 3 for _ in range(3))
    rout, rcache = reference.gated_gelu_forward(g.tolist(), u.tolist())
    cout, ccache = candidate.gated_gelu_forward(g, u)
    assert_close(cout, rout, what="gated gelu")
    for what, cg, rg in zip(
        ("dgate", "dup"),
        candidate.gated_gelu_backward(d, ccache),
        reference.gated_gelu_backward(d.tolist(), rcache),
    ):
        assert_close(cg, rg, what=what)


OP_ERRORS = [
    lambda m: m.t5_layer_norm_forward([[1.0, 2.0]], [1.0]),
    lambda m: m.t5_layer_norm_forward([[1.0]], [1.0], -1.0),
    lambda m: m.relative_position_bias_forward([[1.0]] * 4, 0, 2),
    lambda m: m.relative_position_bias_forward([[1.0]] * 3, 2, 2),
    lambda m: m.relative_position_bias_forward([[1.0]] * 4, 2, 2, True, 1),
    lambda m: m.t5_attention_forward([[[[1.0]]]], [[[[1.0]]]], [[[[1.0]]]], [[[1.0, 2.0]]]),
    lambda m: m.t5_attention_forward([[[[1.0]]]], [[[[1.0]]]], [[[[1.0]]]], None, "yes"),
    lambda m: m.gated_gelu_forward([1.0, 2.0], [1.0]),
    lambda m: m.span_corruption([[5]], [9], 1, 0, 0),
    lambda m: m.span_corruption([[5, 6]], [9], 1, 0, 0, noise_density=0.0),
]


@pytest.mark.parametrize("call", OP_ERRORS)
def test_op_errors(candidate, call):
    assert_same_error(lambda: call(reference), lambda: call(candidate))


@given(st.integers(0, 2**64 - 1), st.integers(0, 2**40), st.data())
def test_span_corruption_is_the_same(candidate, seed, stream, data):
    rows = data.draw(st.lists(st.lists(st.integers(2, 50), min_size=2, max_size=40), min_size=1,
                              max_size=4))  # fmt: skip
    sentinels = list(range(99, 79, -1))
    args = (sentinels, 1, seed, stream, data.draw(st.sampled_from([0.15, 0.5])))
    assert candidate.span_corruption(rows, *args) == reference.span_corruption(rows, *args)


# -- the model -------------------------------------------------------------------------------------
@st.composite
def t5_case(draw, min_C=2, dropout=None, max_layers=2):
    """(config, inputs): a tiny config, a right-padded batch (the decoder's first token is the
    start token, the pad id), targets with pad and -100 positions, a weight-jitter seed.
    `max_layers` 1 (with at most 2 sequences of 3 tokens) keeps the multi-step tests cheap on
    the CUDA simulator."""
    small = max_layers == 1  # and at most 2 x 3 tokens, for the multi-step tests
    H = draw(st.integers(1, 2))
    C = draw(st.integers(max(2, min_C), 6))
    V = draw(st.integers(6, 9))
    Ts, Tt = draw(st.integers(1, 3 if small else 4)), draw(st.integers(1, 3 if small else 4))
    B = draw(st.integers(1, 2 if small else 3))
    p = draw(st.sampled_from([0.0, 0.1, 0.4])) if dropout is None else dropout
    buckets = draw(st.integers(4, 8))
    config = reference.T5Config(
        vocab_size=V, d_model=C, d_kv=draw(st.integers(1, 3)), d_ff=draw(st.integers(3, 6)),
        num_layers=draw(st.integers(1, max_layers)),
        num_decoder_layers=draw(st.integers(1, max_layers)),
        num_heads=H, relative_attention_num_buckets=buckets,
        relative_attention_max_distance=buckets // 2 + draw(st.integers(1, 6)),
        dropout_rate=p, feed_forward_proj=draw(st.sampled_from(["relu", "gated-gelu"])),
        tie_word_embeddings=draw(st.booleans()), max_len=max(Ts, Tt) + draw(st.integers(0, 2)),
        seed=draw(st.integers(0, 2**64 - 1)),
    )  # fmt: skip

    def padded(T, start):
        rows = []
        for _ in range(B):
            n = draw(st.integers(1, T))
            real = [draw(st.integers(2, V - 1)) for _ in range(n)]
            rows.append(([PAD] + real[1:] if start else real) + [PAD] * (T - n))
        return rows

    src, tgt = padded(Ts, False), padded(Tt, True)
    targets = [[draw(st.just(-100) | st.integers(0, V - 1)) for _ in range(Tt)] for _ in range(B)]
    targets[0][0] = draw(st.integers(1, V - 1))  # at least one counted position
    return config, dict(src=src, tgt=tgt, targets=targets, seed=draw(st.integers()))


def jittered_state(model, seed):
    """The weights moved off their initial values (layer norm ones), so no gradient is trivial."""
    rng = np.random.default_rng(abs(seed))
    return {
        n: (np.asarray(v) + rng.uniform(-0.5, 0.5, np.shape(v))).tolist()
        for n, v in model.state_dict().items()
    }


def pair(candidate, config, inputs, dtype="float64"):
    r, c = reference.T5(config), candidate.T5(config, dtype=dtype)
    state = jittered_state(r, inputs["seed"])
    r.load_state_dict(state)
    c.load_state_dict(state)
    return r, c


def run_both(r, c, inputs, with_targets=True):
    t = inputs["targets"] if with_targets else None
    rout = r(inputs["src"], inputs["tgt"], t)
    cout = c(np.array(inputs["src"]), np.array(inputs["tgt"]), None if t is None else np.array(t))
    return rout, cout


@given(t5_case())
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
    dlogits = np.cos(np.arange(clogits.size) * 0.7 + 0.3).reshape(clogits.shape)
    run_both(r, c, inputs, with_targets=False)
    r.zero_grad()
    c.zero_grad()
    r.backward(dlogits.tolist())
    c.backward(dlogits)
    compare_gradients(r, c, "from dlogits")
    assert c.dropout_step == r.dropout_step == 2


@given(t5_case(min_C=3, dropout=0.3, max_layers=1))
def test_adamw_trajectory_with_dropout(candidate, case):
    """5 AdamW steps with dropout on; eps 1e-6 as for the Transformer (Adam magnifies the
    rounding noise of gradients that are 0 in exact arithmetic)."""
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


@given(t5_case(max_layers=1))
def test_float32_within_derived_tolerance(candidate, case):
    config, inputs = case
    r = reference.T5(config)
    r.load_state_dict(jittered_state(r, inputs["seed"]))
    c = candidate.T5(config)
    c.load_state_dict(r.state_dict())
    r.eval(), c.eval()
    (rlogits, rloss), (clogits, closs) = run_both(r, c, inputs)
    assert clogits.dtype == np.float32
    longest = max(config.d_model, config.d_ff, config.vocab_size, config.max_len)
    depth = 3 * (config.num_layers + config.num_decoder_layers) + 4
    tol = float32_tol(longest, depth)
    scale = 1.0 + float(np.max(np.abs(rlogits)))
    assert_close(clogits, rlogits, rtol=tol, atol=tol * scale, what="float32 logits")
    assert_close(closs, rloss, rtol=tol, atol=tol * scale, what="float32 loss")
    r.backward()
    c.backward()
    gscale = max(float(np.max(np.abs(p.grad))) for _, p in r.named_parameters())
    cgrads = dict(c.named_parameters())
    for name, p in r.named_parameters():
        assert cgrads[name].grad.dtype == np.float32, name
        assert_close(cgrads[name].grad, p.grad, rtol=tol, atol=tol * gscale, what=f"f32 {name}")


@given(t5_case(min_C=3, dropout=0.2, max_layers=1), st.data())
def test_greedy_and_beam_search_give_the_same_tokens(candidate, case, data):
    config, inputs = case
    r, c = pair(candidate, config, inputs)
    max_len = data.draw(st.integers(1, config.max_len))
    src = inputs["src"]
    assert c.greedy_decode(np.array(src), max_len) == r.greedy_decode(src, max_len)
    k = data.draw(st.integers(1, 3))
    lp = data.draw(st.sampled_from([0.0, 1.0]))
    assert c.beam_search(np.array(src), k, max_len, lp) == r.beam_search(src, k, max_len, lp)
    assert c.training and c.dropout_step == 0


CFG = dict(vocab_size=8, d_model=4, d_kv=2, d_ff=6, num_layers=1, num_heads=2, max_len=4,
           relative_attention_num_buckets=4, relative_attention_max_distance=6)  # fmt: skip
SRC, TGT = [[3, 4], [5, 0]], [[0, 3, 4], [0, 5, 0]]


def test_initial_weights_match(candidate):
    config = reference.T5Config(**{**CFG, "num_layers": 2, "feed_forward_proj": "gated-gelu",
                                   "tie_word_embeddings": False, "seed": 11})  # fmt: skip
    r, c = reference.T5(config), candidate.T5(config, dtype="float64")
    cstate = c.state_dict()
    assert list(cstate) == list(r.state_dict())
    for name, value in r.state_dict().items():
        assert_close(cstate[name], value, rtol=1e-12, atol=1e-15, what=f"initial {name}")


FORWARD_ERRORS = [
    dict(src=[]),
    dict(src=[[3, 4], [5]]),
    dict(src=[[3, 4.0], [5, 0]]),
    dict(src=[[3, 8], [5, 0]]),
    dict(src=[[3] * 5, [5] * 5]),
    dict(tgt=[[0, 3, 4]]),
    dict(tgt=[[0, 3, 8], [0, 5, 0]]),
    dict(targets=[[3, 4, 8], [5, 2, 0]]),
    dict(targets=[[3, 4], [5, 2]]),
    dict(targets=[[3, 4, 2.0], [5, 2, 0]]),
]


@pytest.mark.parametrize("kwargs", FORWARD_ERRORS, ids=repr)
def test_forward_errors(candidate, kwargs):
    args = {"src": SRC, "tgt": TGT, "targets": [[3, 4, 1], [5, 1, 0]], **kwargs}
    cfg = reference.T5Config(**CFG)
    r, c = reference.T5(cfg), candidate.T5(cfg)
    assert_same_error(lambda: r(**args), lambda: c(**args))


@pytest.mark.parametrize(
    "kwargs",
    [dict(d_model=0), dict(num_heads=1.5), dict(dropout_rate=1.0), dict(pad_token_id=1),
     dict(feed_forward_proj="gelu"), dict(relative_attention_num_buckets=3), dict(seed=-1)],
    ids=repr,
)  # fmt: skip
def test_config_errors(candidate, kwargs):
    assert_same_error(
        lambda: reference.T5Config(**{**CFG, **kwargs}),
        lambda: candidate.T5Config(**{**CFG, **kwargs}),
    )


def test_model_backward_and_decoding_errors(candidate):
    cfg = reference.T5Config(**CFG)
    for call in (
        lambda m: m.T5(dict(CFG)),
        lambda m: m.T5(cfg).backward(),
        lambda m: m.T5.from_config_dict({**CFG, "model_type": "gpt2"}),
        lambda m: m.T5(cfg).greedy_decode(SRC, max_len=0),
        lambda m: m.T5(cfg).greedy_decode([[3, 9]]),
        lambda m: m.T5(cfg).beam_search(SRC, beam_width=0),
    ):
        assert_same_error(lambda: call(reference), lambda: call(candidate))
    r, c = reference.T5(cfg), candidate.T5(cfg)
    r(SRC, TGT), c(SRC, TGT)
    assert_same_error(r.backward, c.backward)
    memory = r.encode(SRC)
    assert_same_error(
        lambda: r.decode(TGT, memory[:1], SRC), lambda: c.decode(TGT, memory[:1], SRC)
    )


def test_weights_move_between_backends(candidate, tmp_path):
    config = reference.T5Config(**CFG, seed=4, tie_word_embeddings=False)
    r = reference.T5(config)
    r.load_state_dict(jittered_state(r, 5))
    r.eval()
    r.save_pretrained(tmp_path / "ref", dtype="float64")
    c = candidate.T5.from_pretrained(tmp_path / "ref", dtype="float64").eval()
    assert c.config == config
    inputs = dict(src=SRC, tgt=TGT, targets=[[3, 4, 1], [5, 1, 0]])
    (rlogits, rloss), (clogits, closs) = run_both(r, c, inputs)
    assert_close(clogits, rlogits, what="logits after reference -> candidate")
    assert_close(closs, rloss, what="loss after reference -> candidate")
    assert c.greedy_decode(SRC) == r.greedy_decode(SRC)
    c.save_pretrained(tmp_path / "cand", dtype="float64")
    back = reference.T5.from_pretrained(tmp_path / "cand")
    assert back.state_dict() == r.state_dict() and back.config == config

"""fast never computes a backward from memory the caller may have changed since the forward.

A data loader refills its batch buffer between a forward and the backward. With a view of that
buffer in a cache, in-range values silently change the gradient and huge ids send the
embedding's scatter-add out of bounds (a SIGSEGV). Each case here: forward on a buffer, refill
it, backward; the outputs and gradients must equal those of a run on untouched copies. Cases that
could reach a kernel with bad ids run in child interpreters (`run_many`), so a crash is reported,
not suffered. The same file checks odd layouts (read-only, Fortran order, strided, negatively
strided) give the contiguous input's result.
"""

import numpy as np
import pytest

import fast
from fast import validate
from tests.adversarial.harness import run_many

SETUP = """
import numpy as np
import fast

def step(model, call, args, mutate=None):
    out = call(model, *args)
    if mutate is not None:
        mutate()
    model.zero_grad()
    dx = model.backward()
    got = [np.asarray(out[0]), out[1]] + [p.grad.copy() for p in model.parameters()]
    return got + ([] if dx is None else [dx])

def same(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))

def reuse(factory, call, args, values):
    '''forward on buffers, refill them with `values` (None: leave), backward.'''
    clean = step(factory(), call, [a.copy() for a in args])
    bufs = [a.copy() for a in args]
    def mutate():
        for b, v in zip(bufs, values):
            if v is not None:
                b[...] = v
    return same(clean, step(factory(), call, bufs, mutate))

def layouts(a):
    ro = a.copy()
    ro.setflags(write=False)
    wide = np.repeat(a, 2, axis=-1)
    return {
        "readonly": ro,
        "fortran": np.asfortranarray(a),
        "strided": wide[..., ::2],
        "reversed": a[..., ::-1].copy()[..., ::-1],
    }

def layout(factory, call, args, kind):
    '''the same forward and backward on `kind` views of every argument.'''
    clean = step(factory(), call, [a.copy() for a in args])
    return same(clean, step(factory(), call, [layouts(a)[kind] for a in args]))

def gpt():
    return fast.GPT(fast.GPTConfig(vocab_size=32, block_size=8, n_layer=1, n_head=2, n_embd=8,
                                   dropout=0.1))

def bert():
    return fast.BERT(fast.BERTConfig(vocab_size=11, block_size=6, n_layer=1, n_head=2,
                                     n_embd=4, intermediate_size=6))

def bert_cls():
    cfg = fast.BERTConfig(vocab_size=11, block_size=6, n_layer=1, n_head=2, n_embd=4,
                          intermediate_size=6)
    return fast.BERTForSequenceClassification(cfg, num_labels=3)

def seq2seq():
    return fast.Transformer(fast.TransformerConfig(
        src_vocab_size=11, tgt_vocab_size=13, d_model=8, nhead=2, num_encoder_layers=1,
        num_decoder_layers=1, dim_feedforward=16, max_len=8))

def mlp():
    return fast.MLP([4, 5, 3], activation="relu")

IDX = np.array([[1, 2, 3, 4], [5, 6, 7, 1]])
TGT = np.array([[2, 3, 4, 5], [6, 7, 8, -100]])
TYPES = np.array([[0, 0, 1, 1], [0, 1, 1, 0]])
MASK = np.array([[1, 1, 1, 1], [1, 1, 1, 0]])
MLM = np.array([[-100, 2, -100, 0], [6, -100, -100, 1]])
SRC = np.array([[3, 4, 5, 2], [6, 7, 2, 0]])
DEC = np.array([[1, 5, 6, 7], [1, 8, 9, 0]])
X = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
Y = np.array([0, 2, 1])
HUGE = 10**9

run_gpt = lambda m, i, t: m(i, t)
run_bert = lambda m, i, tt, am, lab: m(i, tt, am, lab)
run_cls = lambda m, i, lab: m(i, labels=lab)
run_s2s = lambda m, s, d, t: m(s, d, t)
run_mlp = lambda m, x, y: m(x, y)
"""

REUSE = {
    "gpt in range": "result = reuse(gpt, run_gpt, [IDX, TGT], [7, 9])",
    "gpt huge": "result = reuse(gpt, run_gpt, [IDX, TGT], [HUGE, -HUGE])",
    "bert in range": "result = reuse(bert, run_bert, [IDX % 11, TYPES, MASK, MLM], [3, 1, 0, 4])",
    "bert huge": "result = reuse(bert, run_bert, [IDX % 11, TYPES, MASK, MLM], [HUGE] * 4)",
    "bert classifier huge": "result = reuse(bert_cls, run_cls, [IDX % 11, Y[:2]], [HUGE, HUGE])",
    "seq2seq in range": "result = reuse(seq2seq, run_s2s, [SRC, DEC, DEC], [4, 5, 6])",
    "seq2seq huge": "result = reuse(seq2seq, run_s2s, [SRC, DEC, DEC], [HUGE, -HUGE, HUGE])",
    "mlp": "result = reuse(mlp, run_mlp, [X, Y], [0.5, HUGE])",
    "embedding_forward huge": """
        W = np.random.default_rng(1).standard_normal((10, 4)).astype(np.float32)
        D = np.ones((2, 4, 4), np.float32)
        _, cache = fast.embedding_forward(W, IDX % 10)
        clean = fast.embedding_backward(D, cache)
        i = IDX % 10
        _, cache = fast.embedding_forward(W, i)
        i[...] = HUGE
        result = np.array_equal(clean, fast.embedding_backward(D, cache))
    """,
    "seq2seq decode memory": """
        def run(memory_value):
            m = seq2seq()
            m(SRC, DEC, DEC)
            memory = np.ascontiguousarray(m.encode(SRC))
            logits = m.decode(DEC, memory, SRC)
            if memory_value is not None:
                memory[...] = memory_value
            m.zero_grad()
            m.backward(np.ones_like(logits))
            return [logits] + [p.grad.copy() for p in m.parameters()]
        result = same(run(None), run(1e30))
    """,
}

LAYOUT_CASES = {
    "gpt": "gpt, run_gpt, [IDX, TGT]",
    "bert": "bert, run_bert, [IDX % 11, TYPES, MASK, MLM]",
    "seq2seq": "seq2seq, run_s2s, [SRC, DEC, DEC]",
    "mlp": "mlp, run_mlp, [X, Y]",
}
KINDS = ("readonly", "fortran", "strided", "reversed")
LAYOUTS = {
    f"{model} {kind}": f"result = layout({args}, {kind!r})"
    for model, args in LAYOUT_CASES.items()
    for kind in KINDS
}


@pytest.fixture(scope="module")
def outcomes():
    return run_many(SETUP, {**REUSE, **LAYOUTS}, timeout=600.0, case_timeout=120.0)


@pytest.mark.parametrize("name", list(REUSE))
def test_refilled_buffer_changes_nothing(outcomes, name):
    outcome = outcomes[name]
    assert outcome.kind == "ok" and outcome.result == "True", outcome.describe()


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_odd_layouts_give_the_contiguous_result(outcomes, name):
    outcome = outcomes[name]
    assert outcome.kind == "ok" and outcome.result == "True", outcome.describe()


# -- public ops with a cache, float inputs (no kernel can be sent out of bounds: in process) ------
RNG = np.random.default_rng(3)


def randn(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def _reuse(forward, backward, args, dout):
    """forward(*buffers) -> (out, cache); refill every buffer; backward(dout, cache)."""
    _, cache = forward(*[a.copy() for a in args])
    clean = backward(dout, cache)
    bufs = [a.copy() for a in args]
    _, cache = forward(*bufs)
    for b in bufs:
        b[...] = 7.0
    got = backward(dout, cache)
    return clean, got


def _assert_same(clean, got):
    assert len(clean) == len(got)
    for a, b in zip(clean, got):
        assert np.array_equal(a, b)


def test_linear_forward_keeps_a_copy():
    x, w, b = randn(2, 3, 4), randn(5, 4), randn(5)
    clean, got = _reuse(fast.linear_forward, fast.linear_backward, [x, w, b], randn(2, 3, 5))
    _assert_same(clean, got)


def test_linear_module_keeps_a_copy_of_its_input():
    layer = fast.Linear(4, 5)
    x, d = randn(3, 4), randn(3, 5)
    layer(x.copy())
    clean = layer.backward(d)
    clean_grad = layer.weight.grad.copy()
    layer.zero_grad()
    buf = x.copy()
    layer(buf)
    buf[...] = 0.0
    assert np.array_equal(layer.backward(d), clean)
    assert np.array_equal(layer.weight.grad, clean_grad)


def test_layer_norm_forward_keeps_a_copy():
    x, w, b = randn(3, 6), randn(6), randn(6)
    clean, got = _reuse(fast.layer_norm_forward, fast.layer_norm_backward, [x, w, b], randn(3, 6))
    _assert_same(clean, got)


@pytest.mark.parametrize("activation", ["gelu", "relu", "tanh"])
def test_activation_forward_keeps_a_copy(activation):
    x, d = randn(4, 5), randn(4, 5)
    clean, got = _reuse(
        lambda a: fast.activation_forward(a, activation), fast.activation_backward, [x], d
    )
    assert np.array_equal(clean, got)


def test_attention_forward_keeps_copies():
    q, k, v = randn(2, 2, 3, 4), randn(2, 2, 5, 4), randn(2, 2, 5, 4)
    clean, got = _reuse(
        lambda *a: fast.attention_forward(*a, causal=False),
        fast.attention_backward,
        [q, k, v],
        randn(2, 2, 3, 4),
    )
    _assert_same(clean, got)


def test_multi_head_attention_forward_keeps_copies_and_reads_the_mask_once():
    q, k, v = randn(2, 3, 4), randn(2, 5, 4), randn(2, 5, 4)
    mask = np.array([[0, 0, 0, 1, 1], [0, 0, 0, 0, 0]], dtype=bool)
    d = randn(2, 3, 4)
    _, cache = fast.multi_head_attention_forward(q, k, v, 2, key_padding_mask=mask.copy())
    clean = fast.multi_head_attention_backward(d, cache)
    bufs = [q.copy(), k.copy(), v.copy(), mask.copy()]
    _, cache = fast.multi_head_attention_forward(*bufs[:3], 2, key_padding_mask=bufs[3])
    for b in bufs[:3]:
        b[...] = -3.0
    bufs[3][...] = True
    _assert_same(clean, fast.multi_head_attention_backward(d, cache))


def test_cross_entropy_forward_is_independent_of_its_targets_buffer():
    logits, t = randn(2, 3, 5), np.array([[0, 1, 4], [2, -100, 3]])
    _, cache = fast.cross_entropy_forward(logits.copy(), t.copy())
    clean = fast.cross_entropy_backward(1.0, cache)
    lb, tb = logits.copy(), t.copy()
    _, cache = fast.cross_entropy_forward(lb, tb)
    lb[...], tb[...] = 0.0, 10**9
    assert np.array_equal(fast.cross_entropy_backward(1.0, cache), clean)


# -- what the boundary copies, and what it leaves alone -------------------------------------------
def test_checks_copy_the_callers_memory_and_nothing_new():
    x = randn(3, 4)
    assert not np.shares_memory(validate.as_float_array(x, "x"), x)
    assert not np.shares_memory(validate.as_float_array(x[:, ::2], "x"), x)
    ids = np.arange(6).reshape(2, 3)
    assert not np.shares_memory(validate.as_index_array(ids, "idx"), ids)
    assert validate.as_float_array(x, "x", kept=False) is x  # read now, not kept: no copy
    fresh = np.arange(4.0)
    assert validate.private(fresh, [0.0, 1.0, 2.0, 3.0]) is fresh  # made from a list
    assert validate.private(x.astype(np.float64), x) is not x
    with validate.model_owned():
        assert validate.as_float_array(x, "x") is x  # a model's own activation: not copied
    assert not np.shares_memory(validate.as_float_array(x, "x"), x)  # and back outside


def test_a_models_activations_are_not_copied():
    """Inside a model the attention cache holds views of c_attn's output (no copy per layer)."""
    model = fast.GPT(fast.GPTConfig(vocab_size=16, block_size=4, n_layer=1, n_head=2, n_embd=8))
    model(np.array([[1, 2, 3]]), np.array([[2, 3, 4]]))
    q = model.transformer.h[0].attn._cache.q
    assert not q.flags.owndata  # a head view into the (B, T, 3C) projection


# -- the GPU path (the simulator on machines without one): host ids cached after upload ---------
@pytest.mark.cuda
def test_gpu_embedding_keeps_its_host_ids():
    from fast.cuda.array import to_device

    W = randn(10, 4)
    D = randn(2, 3, 4)
    ids = np.array([[1, 2, 3], [3, 1, 9]])
    _, cache = fast.embedding_forward(W, ids)
    expected = fast.embedding_backward(D, cache)
    buf = ids.copy()
    _, cache = fast.embedding_forward(to_device(W), buf)
    buf[...] = 10**9
    got = fast.embedding_backward(to_device(D), cache).copy_to_host()
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.cuda
def test_gpu_linear_keeps_a_copy_of_a_callers_device_array():
    from fast.cuda.array import to_device

    x, w, d = randn(3, 4), randn(5, 4), randn(3, 5)
    _, cache = fast.linear_forward(x, w)
    _, expected, _ = fast.linear_backward(d, cache)
    xg = to_device(x)
    _, cache = fast.linear_forward(xg, to_device(w))
    xg[...] = 0.0
    _, got, _ = fast.linear_backward(to_device(d), cache)
    np.testing.assert_allclose(got.copy_to_host(), expected, rtol=1e-5, atol=1e-6)

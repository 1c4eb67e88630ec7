"""reference/gpt.py: gradients by finite differences, masks, the KV cache, sampling, checkpoints,
every validation error, and interoperability with Hugging Face `transformers` (when installed)."""

import json
import math
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference.gpt import (
    GPT,
    GPTConfig,
    KVCache,
    convert_hf_gpt2_state_dict,
    sample_next_token,
)
from reference.layers import Dropout, dropout_stream
from reference.losses import softmax
from reference.nested import flatten, shape_of, unflatten
from reference.rng import uniform
from tests.reference.gradcheck import H, assert_close, inner, numerical_gradient, random_tensor

TINY = dict(vocab_size=7, block_size=4, n_layer=2, n_head=2, n_embd=4)


def tiny(**overrides) -> GPT:
    return GPT(GPTConfig(**{**TINY, **overrides}))


def randomize(model: GPT, seed: int = 0, scale: float = 0.5) -> GPT:
    """Every parameter (layer-norm gains and biases too) drawn from U(-scale, scale), so that no
    path through the network is trivially zero or one."""
    for k, (_, p) in enumerate(model.named_parameters()):
        p.data = random_tensor(p.shape, seed * 1000 + k, -scale, scale)
    return model


def two_numerical_gradients(f, x):
    """Central differences of both outputs of f() -> (a, b) with respect to x, in one sweep."""
    stash = []

    def first():
        a, b = f()
        stash.append(b)
        return a

    ga = numerical_gradient(first, x)
    gb = [(stash[2 * k] - stash[2 * k + 1]) / (2.0 * H) for k in range(len(stash) // 2)]
    return ga, unflatten(gb, shape_of(x))


IDX = [[1, 2, 3, 4], [0, 6, 5, 1]]
TARGETS = [[2, 3, 4, 5], [6, -100, 1, 0]]  # one ignored position


# -- configuration ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "field, value, error, words",
    [
        ("vocab_size", 0, ValueError, "vocab_size must be an int >= 1, got 0"),
        ("block_size", -3, ValueError, "block_size must be an int >= 1, got -3"),
        ("n_layer", 2.0, TypeError, "n_layer must be an int, got float"),
        ("n_head", True, TypeError, "n_head must be an int, got bool"),
        ("n_head", 3, ValueError, "n_embd must be divisible by n_head.*n_embd=4 and n_head=3"),
        ("n_embd", 0, ValueError, "n_embd must be an int >= 1, got 0"),
        ("dropout", 1.0, ValueError, r"dropout must be in \[0.0, 1.0\), got 1.0"),
        ("dropout", -0.1, ValueError, "dropout must be in"),
        ("dropout", "0.1", TypeError, "dropout must be a number, got str"),
        ("layer_norm_epsilon", float("nan"), ValueError, "layer_norm_epsilon must be a finite"),
        ("layer_norm_epsilon", 0.0, ValueError, "layer_norm_epsilon must be a finite number > 0"),
        ("seed", -1, ValueError, "seed must be an int >= 0, got -1"),
        ("seed", 2**64, ValueError, r"seed must be in \[0, 2\*\*64\)"),
        ("bos_token_id", 7, ValueError, r"bos_token_id must be None or an id in \[0, vocab_size"),
        ("eos_token_id", -1, ValueError, "eos_token_id must be an int >= 0"),
    ],
)
def test_config_validates_every_field(field, value, error, words):
    with pytest.raises(error, match=words):
        GPTConfig(**{**TINY, field: value})


def test_model_needs_a_config():
    with pytest.raises(TypeError, match="config must be a GPTConfig, got dict"):
        GPT(TINY)


# -- parameters: names, shapes, tying, initialisation ----------------------------------------------
def test_hugging_face_names_shapes_and_tying():
    model = tiny()
    V, T, C = 7, 4, 4
    expected = {"transformer.wte.weight": (V, C), "transformer.wpe.weight": (T, C)}
    for l in range(2):
        h = f"transformer.h.{l}."
        expected |= {
            h + "ln_1.weight": (C,), h + "ln_1.bias": (C,),
            h + "attn.c_attn.weight": (C, 3 * C), h + "attn.c_attn.bias": (3 * C,),
            h + "attn.c_proj.weight": (C, C), h + "attn.c_proj.bias": (C,),
            h + "ln_2.weight": (C,), h + "ln_2.bias": (C,),
            h + "mlp.c_fc.weight": (C, 4 * C), h + "mlp.c_fc.bias": (4 * C,),
            h + "mlp.c_proj.weight": (4 * C, C), h + "mlp.c_proj.bias": (C,),
        }  # fmt: skip
    expected |= {"transformer.ln_f.weight": (C,), "transformer.ln_f.bias": (C,)}
    assert {n: p.shape for n, p in model.named_parameters()} == expected
    assert list(model.state_dict()) == list(expected)  # lm_head is tied: not a second tensor
    assert model.lm_head_weight is model.transformer.wte.weight
    # V C + T C + L (12 C^2 + 13 C) + 2 C, GPT-2's count with the head tied
    assert model.num_parameters() == V * C + T * C + 2 * (12 * C * C + 13 * C) + 2 * C == 540


def test_initialisation_follows_gpt2_and_is_seeded():
    config = GPTConfig(vocab_size=50, block_size=16, n_layer=3, n_head=2, n_embd=16, seed=5)
    model = GPT(config)
    params = dict(model.named_parameters())
    for name, p in params.items():
        values = flatten(p.data)
        if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
            assert values == [1.0] * len(values), name
        elif name.endswith("bias"):
            assert values == [0.0] * len(values), name
    # every random tensor has its own Philox stream, so no two share values
    firsts = [flatten(p.data)[0] for p in params.values() if len(p.shape) == 2]
    assert len(set(firsts)) == len(firsts) == 2 + 4 * 3

    def std(name):
        v = flatten(params[name].data)
        return math.sqrt(sum(x * x for x in v) / len(v))

    assert 0.018 < std("transformer.wte.weight") < 0.022
    assert 0.018 < std("transformer.h.0.mlp.c_fc.weight") < 0.022
    proj = 0.02 / math.sqrt(2 * 3)  # residual projections are scaled down by 1/sqrt(2 L)
    assert 0.85 * proj < std("transformer.h.1.mlp.c_proj.weight") < 1.15 * proj
    assert GPT(config).state_dict() == model.state_dict()
    other = GPT(GPTConfig(**{**config.__dict__, "seed": 6}))
    assert other.state_dict()["transformer.wte.weight"] != params["transformer.wte.weight"].data


def test_flops_per_token():
    model = tiny()
    n = model.num_parameters() - 4 * 4  # the position table is a lookup
    assert model.flops_per_token() == 6 * n + 12 * 2 * 4 * 4
    assert model.flops_per_token(T=2) == 6 * n + 12 * 2 * 4 * 2


# -- forward and loss ------------------------------------------------------------------------------
def test_loss_at_initialisation_is_near_log_vocab_and_ignores_minus_100():
    model = tiny()
    logits, loss = model(IDX, TARGETS)
    assert shape_of(logits) == (2, 4, 7)
    assert abs(loss - math.log(7)) < 0.05  # small weights: nearly uniform predictions
    # -100 counts for nothing: the mean runs over the 7 counted positions only
    rows = [
        -math.log(softmax(logits[b][t])[TARGETS[b][t]])
        for b in range(2)
        for t in range(4)
        if TARGETS[b][t] != -100
    ]
    assert abs(loss - sum(rows) / 7) < 1e-12
    logits2, none = model(IDX)
    assert none is None and logits2 == logits


# -- gradients -------------------------------------------------------------------------------------
def test_every_parameter_gradient_matches_finite_differences():
    """backward() from the loss and backward(dlogits) from a non-uniform upstream gradient, for
    every parameter, against central differences in float64."""
    model = randomize(tiny()).eval()  # no dropout here: eval mode skips drawing masks
    dlogits = random_tensor((2, 4, 7), seed=99)

    def both():
        logits, loss = model(IDX, TARGETS)
        return loss, inner(logits, dlogits)

    model.zero_grad()
    model(IDX, TARGETS)
    model.backward()
    from_loss = {n: p.grad for n, p in model.named_parameters()}
    model.zero_grad()
    model(IDX, TARGETS)
    model.backward(dlogits)
    from_dlogits = {n: p.grad for n, p in model.named_parameters()}
    for name, p in model.named_parameters():
        numeric_loss, numeric_dlogits = two_numerical_gradients(both, p.data)
        assert_close(from_loss[name], numeric_loss, f"dloss/d{name}")
        assert_close(from_dlogits[name], numeric_dlogits, f"d<logits, dlogits>/d{name}")


def test_gradients_with_dropout_on_match_finite_differences():
    """With dropout at every site, the masks of a fixed step are a fixed function: pin the step
    so that each nudged forward draws the same masks. Each parameter tensor is checked along a
    random direction d: <grad, d> against (L(p + h d) - L(p - h d)) / 2h (two forwards per
    tensor instead of two per number, since every dropout forward draws Philox numbers)."""
    model = randomize(tiny(n_layer=1, dropout=0.3), seed=1)
    model.dropout_seed = 11

    def loss():
        model.dropout_step = 3
        return model(IDX, TARGETS)[1]

    model.zero_grad()
    loss()
    model.backward()
    for k, (name, p) in enumerate(model.named_parameters()):
        direction = random_tensor(p.shape, seed=500 + k)
        original = p.data
        nudged = []
        for sign in (1.0, -1.0):
            p.data = unflatten(
                [w + sign * H * d for w, d in zip(flatten(original), flatten(direction))], p.shape
            )
            nudged.append(loss())
        p.data = original
        numeric = (nudged[0] - nudged[1]) / (2.0 * H)
        assert_close([inner(p.grad, direction)], [numeric], f"<dloss/d{name}, d>")
    assert model.dropout_step == 4 and model.transformer.drop.stream == dropout_stream(3, 1)


def test_backward_accumulates():
    model = randomize(tiny())
    model(IDX, TARGETS)
    model.zero_grad()
    model.backward()
    once = flatten(model.transformer.wte.weight.grad)
    model.backward()
    assert_close(flatten(model.transformer.wte.weight.grad), [2 * g for g in once], "twice")


# -- dropout ---------------------------------------------------------------------------------------
def test_dropout_sites_and_streams_follow_the_documented_numbering():
    model = tiny(dropout=0.1)
    model.dropout_seed = 7
    model.dropout_step = 5
    model(IDX)
    assert model.dropout_step == 6
    names = {id(m): n for n, m in _named_modules(model)}
    sites = [names[id(m)] for m in model.modules() if isinstance(m, Dropout)]
    assert sites == [
        "transformer.drop",
        "transformer.h.0.attn.attn_dropout", "transformer.h.0.attn.resid_dropout",
        "transformer.h.0.mlp.dropout",
        "transformer.h.1.attn.attn_dropout", "transformer.h.1.attn.resid_dropout",
        "transformer.h.1.mlp.dropout",
    ]  # fmt: skip
    drops = [m for m in model.modules() if isinstance(m, Dropout)]
    assert [(d.seed, d.stream) for d in drops] == [(7, dropout_stream(5, k)) for k in range(1, 8)]


def _named_modules(module, prefix=""):
    yield prefix.rstrip("."), module
    for name, child in module._modules.items():
        yield from _named_modules(child, prefix + name + ".")


def test_dropout_masks_are_reproducible_and_off_in_eval():
    model = randomize(tiny(dropout=0.5), seed=2)
    a, _ = model(IDX)
    b, _ = model(IDX)
    assert a != b  # the next step draws new masks
    model.dropout_step = 0
    assert model(IDX)[0] == a  # the same step draws the same masks
    model.eval()
    step = model.dropout_step
    c, _ = model(IDX)
    assert model.dropout_step == step  # eval mode draws nothing
    plain = tiny()
    plain.load_state_dict(model.state_dict())
    assert plain(IDX)[0] == c  # eval mode is exactly the network without dropout


# -- masks -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("t", [0, 1, 2, 3])
def test_changing_a_token_never_changes_earlier_logits(t):
    model = randomize(tiny(), seed=3)
    logits, _ = model(IDX)
    changed = [list(row) for row in IDX]
    changed[0][t] = (changed[0][t] + 1) % 7
    logits2, _ = model(changed)
    assert logits2[0][:t] == logits[0][:t]  # exactly: the past never sees the future
    assert logits2[0][t] != logits[0][t]  # ... while the position itself does change
    assert logits2[1] == logits[1]  # and other sequences of the batch are untouched


# -- generation ------------------------------------------------------------------------------------
def test_cached_logits_equal_full_forward_logits_exactly():
    model = randomize(tiny(), seed=4).eval()
    seq = [[3, 1, 4, 1]]
    full, _ = model(seq)
    cache = KVCache(2, 1)
    steps = [model._last_logits([seq[0][:2]], cache)[0]]  # prefill two tokens
    steps += [model._last_logits([[tok]], cache)[0] for tok in seq[0][2:]]
    assert steps == [full[0][1], full[0][2], full[0][3]]


@pytest.mark.parametrize(
    "temperature, top_k, top_p", [(0.0, None, None), (1.0, None, None), (1.5, 3, 0.9)]
)
def test_generation_with_the_cache_equals_generation_without(temperature, top_k, top_p):
    model = randomize(tiny(), seed=5, scale=1.0)
    prompt = [[1, 2], [5, 5]]
    kw = dict(temperature=temperature, top_k=top_k, top_p=top_p, seed=9)
    cached = model.generate(prompt, 7, **kw)  # 2 + 7 tokens: well past block_size = 4
    assert cached == model.generate(prompt, 7, use_cache=False, **kw)
    assert shape_of(cached) == (2, 9) and [row[:2] for row in cached] == prompt
    long_prompt = [[1, 2, 3, 4, 5, 6]]  # longer than block_size: cropped, not refused
    uncached = model.generate(long_prompt, 3, use_cache=False, **kw)
    assert model.generate(long_prompt, 3, **kw) == uncached


def test_generation_is_seeded_and_follows_the_documented_draws():
    model = randomize(tiny(), seed=6, scale=1.0)
    prompt = [[0, 1], [2, 3]]
    out = model.generate(prompt, 3, temperature=2.0, seed=42)
    assert model.generate(prompt, 3, temperature=2.0, seed=42) == out
    assert any(model.generate(prompt, 3, temperature=2.0, seed=s) != out for s in range(5))
    # replay by hand: token i of row b draws uniform(seed, stream=b, index=i)
    model.eval()
    for b in range(2):
        seq = list(prompt[b])
        for i in range(3):
            logits, _ = model([seq[-4:]])
            seq.append(sample_next_token(logits[0][-1], 2.0, None, None, uniform(42, b, i)))
        assert seq == out[b]


def test_generate_restores_mode_copies_input_and_blocks_backward():
    model = tiny(dropout=0.2)
    prompt = [[1, 2]]
    model(IDX, TARGETS)
    assert model.generate(prompt, 0) == prompt and model.generate(prompt, 0) is not prompt
    model.generate(prompt, 2)
    assert prompt == [[1, 2]] and model.training
    model.eval()
    model.generate(prompt, 1)
    assert not model.training
    with pytest.raises(RuntimeError, match="backward called before forward"):
        model.backward()


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        (dict(max_new_tokens=-1), ValueError, "max_new_tokens must be an int >= 0"),
        (dict(max_new_tokens=1.5), TypeError, "max_new_tokens must be an int"),
        (dict(temperature=-1.0), ValueError, "temperature must be in"),
        (dict(temperature=float("inf")), ValueError, "temperature must be in"),
        (dict(top_k=0), ValueError, "top_k must be an int >= 1"),
        (dict(top_p=0.0), ValueError, r"top_p must be in \(0, 1\]"),
        (dict(top_p=1.5), ValueError, "top_p must be in"),
        (dict(seed=-2), ValueError, "seed must be an int >= 0"),
    ],
)
def test_generate_validates_its_arguments(kwargs, error, words):
    with pytest.raises(error, match=words):
        tiny().generate([[1]], **{"max_new_tokens": 2, **kwargs})


# -- sampling --------------------------------------------------------------------------------------
def test_greedy_takes_the_lowest_id_among_ties():
    assert sample_next_token([0.5, 2.0, 2.0, -1.0], temperature=0.0, u=0.999) == 1
    assert sample_next_token([3.0, 3.0], temperature=0.0) == 0


def test_inverse_cdf_sampling_reproduces_the_probabilities():
    logits = [math.log(p) for p in (0.1, 0.5, 0.15, 0.25)]
    # sorted: id 1 (0.5), 3 (0.25), 2 (0.15), 0 (0.1): u in [0, .5) -> 1, [.5, .75) -> 3, ...
    counts = [0, 0, 0, 0]
    for k in range(1000):
        counts[sample_next_token(logits, u=(k + 0.5) / 1000)] += 1
    assert counts == [100, 500, 150, 250]
    assert sample_next_token(logits, u=0.49) == 1 and sample_next_token(logits, u=0.51) == 3


def test_top_k_then_top_p():
    logits = [math.log(p) for p in (0.1, 0.5, 0.15, 0.25)]
    # top_k = 2 keeps ids 1 and 3, renormalised to 2/3 and 1/3
    assert {sample_next_token(logits, top_k=2, u=(k + 0.5) / 30) for k in range(30)} == {1, 3}
    assert sample_next_token(logits, top_k=2, u=0.65) == 1
    assert sample_next_token(logits, top_k=2, u=0.68) == 3
    assert sample_next_token(logits, top_k=1, u=0.99) == 1  # top_k = 1 is greedy
    # top_p = 0.7: 0.5 < 0.7 <= 0.75, so the nucleus is {1, 3}
    assert {sample_next_token(logits, top_p=0.7, u=(k + 0.5) / 30) for k in range(30)} == {1, 3}
    assert sample_next_token(logits, top_p=0.4, u=0.99) == 1  # a nucleus of one token
    # applied in that order: top_k = 2 keeps {1, 3}, renormalised (2/3, 1/3), and top_p = 0.6
    # of those is {1}; top_p = 0.6 alone needs {1, 3} (0.5 < 0.6 <= 0.75), as would top_p first
    assert sample_next_token(logits, top_k=2, top_p=0.6, u=0.99) == 1
    assert sample_next_token(logits, top_p=0.6, u=0.99) == 3
    # temperature scales the logits before everything else
    hot = [sample_next_token(logits, temperature=100.0, u=(k + 0.5) / 4) for k in range(4)]
    assert sorted(hot) == [0, 1, 2, 3]


@given(
    st.lists(st.floats(-20, 20), min_size=1, max_size=12),
    st.floats(0.05, 5.0),
    st.one_of(st.none(), st.integers(1, 12)),
    st.one_of(st.none(), st.floats(0.01, 1.0)),
    st.floats(0.0, 0.999999),
)
def test_sampled_token_is_among_the_top_k(logits, temperature, top_k, top_p, u):
    i = sample_next_token(logits, temperature, top_k, top_p, u)
    rank = sorted(range(len(logits)), key=lambda j: (-logits[j], j)).index(i)
    assert 0 <= i < len(logits)
    if top_k is not None:
        assert rank < top_k


@pytest.mark.parametrize(
    "args, words",
    [
        (([1.0], 1.0, None, None, 1.0), r"u must be a uniform draw in \[0, 1\)"),
        (([], 1.0, None, None, 0.5), "logits must hold at least one value"),
        (([1.0, float("nan")], 1.0, None, None, 0.5), "must be finite, got nan at id 1"),
        (([1.0, 2.0], 1e-320, None, None, 0.5), "must be finite, got inf"),
    ],
)
def test_sampling_rejects_bad_input(args, words):
    with pytest.raises(ValueError, match=words):
        sample_next_token(*args)


# -- input validation ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "idx, targets, error, words",
    [
        ([[1, 2, 3, 4, 5]], None, ValueError, "sequence length T=5 exceeds block_size=4"),
        (
            [[1, 7]],
            None,
            ValueError,
            r"token id 7 out of range for vocab_size 7 \(at idx\[0\]\[1\]\)",
        ),
        ([[1, -1]], None, ValueError, "token id -1 out of range"),
        ([[1, 2.0]], None, TypeError, r"idx must hold ints, got float 2.0 at \[0\]\[1\]"),
        ([[True, 2]], None, TypeError, "idx must hold ints, got bool"),
        ([[1, 2], [3]], None, ValueError, "idx must be rectangular: row 0 has 2 ids, row 1 has 1"),
        ([], None, ValueError, r"idx must have shape \(B, T\) with B >= 1 and T >= 1"),
        ([[]], None, ValueError, "with B >= 1 and T >= 1"),
        ([1, 2, 3], None, TypeError, r"idx must be a \(B, T\) nested list"),
        ([[1, 2]], [[1, 2, 3]], ValueError, r"targets must have the shape of idx \(1, 2\)"),
        ([[1, 2]], [[1, 9]], ValueError, "target id 9 out of range for vocab_size 7"),
        ([[1, 2]], [[1, -5]], ValueError, "target id -5 out of range"),
        ([[1, 2]], [[1, 2.5]], TypeError, "targets must hold ints, got float"),
    ],
)
def test_forward_rejects_bad_input(idx, targets, error, words):
    with pytest.raises(error, match=words):
        tiny()(idx, targets)


def test_backward_errors():
    model = tiny()
    with pytest.raises(RuntimeError, match="backward called before forward"):
        model.backward()
    model(IDX)
    with pytest.raises(RuntimeError, match="backward\\(\\) starts from the loss"):
        model.backward()
    with pytest.raises(ValueError, match=r"dlogits must have shape \(2, 4, 7\), got \(2, 4, 6\)"):
        model.backward(random_tensor((2, 4, 6), 0))


# -- checkpoints -----------------------------------------------------------------------------------
def test_save_and_load_round_trip(tmp_path):
    model = randomize(tiny(dropout=0.1, seed=3, eos_token_id=6))
    model.save_pretrained(tmp_path, dtype="float64")
    assert sorted(os.listdir(tmp_path)) == ["config.json", "model.safetensors"]  # no temp files
    loaded = GPT.from_pretrained(tmp_path)
    assert loaded.config == model.config
    assert loaded.state_dict() == model.state_dict()
    model.eval(), loaded.eval()
    assert loaded(IDX)[0] == model(IDX)[0]
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "gpt2" and config["architectures"] == ["GPT2LMHeadModel"]
    assert (config["n_positions"], config["n_ctx"], config["activation_function"]) == (
        4,
        4,
        "gelu_new",
    )
    assert config["tie_word_embeddings"] is True and config["eos_token_id"] == 6


def test_from_pretrained_explains_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        GPT.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(GPTConfig(**TINY).to_hf_dict()))
    (tmp_path / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="pytorch_model.bin is a pickle"):
        GPT.from_pretrained(tmp_path)


# The official openai-community/gpt2 config.json, as published.
OFFICIAL_GPT2_CONFIG = {
    "activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "attn_pdrop": 0.1,
    "bos_token_id": 50256, "embd_pdrop": 0.1, "eos_token_id": 50256, "initializer_range": 0.02,
    "layer_norm_epsilon": 1e-05, "model_type": "gpt2", "n_ctx": 1024, "n_embd": 768,
    "n_head": 12, "n_layer": 12, "n_positions": 1024, "resid_pdrop": 0.1,
    "summary_activation": None, "summary_first_dropout": 0.1, "summary_proj_to_labels": True,
    "summary_type": "cls_index", "summary_use_proj": True,
    "task_specific_params": {"text-generation": {"do_sample": True, "max_length": 50}},
    "vocab_size": 50257,
}  # fmt: skip


def test_reads_the_official_gpt2_config():
    config = GPTConfig.from_hf_dict(OFFICIAL_GPT2_CONFIG)
    assert config == GPTConfig(
        vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768, dropout=0.1,
        bos_token_id=50256, eos_token_id=50256,
    )  # fmt: skip
    assert GPTConfig.from_hf_dict(config.to_hf_dict()) == config


@pytest.mark.parametrize(
    "change, words",
    [
        ({"model_type": "bert"}, "not a GPT-2 config"),
        ({"activation_function": "relu"}, "activation_function='relu'"),
        ({"n_inner": 100}, "n_inner=100"),
        ({"tie_word_embeddings": False}, "tie_word_embeddings=False"),
        ({"scale_attn_by_inverse_layer_idx": True}, "scale_attn_by_inverse_layer_idx=True"),
        ({"attn_pdrop": 0.2}, "one dropout rate for all three"),
        ({"n_embd": None}, "n_embd must be an int"),
    ],
)
def test_rejects_gpt2_variants_it_does_not_implement(change, words):
    with pytest.raises((ValueError, TypeError), match=words):
        GPTConfig.from_hf_dict({**OFFICIAL_GPT2_CONFIG, **change})
    missing = {k: v for k, v in OFFICIAL_GPT2_CONFIG.items() if k not in ("n_positions", "n_ctx")}
    with pytest.raises(ValueError, match=r"lacks \['n_positions'\]"):
        GPTConfig.from_hf_dict(missing)


def test_converts_the_official_key_layout():
    model = tiny()
    state = {k.removeprefix("transformer."): v for k, v in model.state_dict().items()}
    state["h.0.attn.bias"] = [[[[1.0]]]]  # the causal-mask buffers of older files
    state["h.1.attn.masked_bias"] = -1e4
    state["lm_head.weight"] = state["wte.weight"]
    assert convert_hf_gpt2_state_dict(state) == model.state_dict()
    state["lm_head.weight"] = [[0.0] * 4 for _ in range(7)]
    with pytest.raises(ValueError, match="this GPT ties them"):
        convert_hf_gpt2_state_dict(state)


# -- interoperability with Hugging Face transformers -----------------------------------------------
@pytest.fixture(scope="module")
def hf():
    os.environ["HF_HUB_OFFLINE"] = "1"  # never touch the network
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return torch, transformers


HF_IDX = [[1, 2, 3, 10, 0], [9, 9, 4, 2, 7]]
HF_TINY = dict(vocab_size=11, block_size=6, n_layer=2, n_head=2, n_embd=8)


def hf_logits(torch, model, idx):
    model.eval()
    with torch.no_grad():
        return model(torch.tensor(idx)).logits.tolist()


def test_transformers_loads_our_checkpoint_with_the_same_logits(hf, tmp_path):
    torch, transformers = hf
    model = randomize(GPT(GPTConfig(**HF_TINY, dropout=0.1)), seed=7).eval()
    model.save_pretrained(tmp_path, dtype="float64")
    theirs = transformers.GPT2LMHeadModel.from_pretrained(
        tmp_path, dtype=torch.float64, attn_implementation="eager"
    )
    assert torch.equal(theirs.lm_head.weight, theirs.transformer.wte.weight)  # tied
    assert_close(hf_logits(torch, theirs, HF_IDX), model(HF_IDX)[0], "logits", 1e-12, 1e-12)
    # the ecosystem's default float32 file loads too, to float32 precision
    model.save_pretrained(tmp_path / "f32")
    theirs32 = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "f32")
    assert_close(hf_logits(torch, theirs32, HF_IDX), model(HF_IDX)[0], "float32", 1e-5, 1e-5)


def _random_hf_model(torch, transformers):
    config = transformers.GPT2Config(
        vocab_size=11, n_positions=6, n_embd=8, n_layer=2, n_head=2, bos_token_id=10,
        eos_token_id=10,
    )  # fmt: skip
    model = transformers.GPT2LMHeadModel(config).double()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():  # gains and biases too, not just the default init
            p.copy_(torch.rand(p.shape, generator=gen, dtype=torch.float64) - 0.5)
    return model.eval()


def test_we_load_a_transformers_checkpoint_with_the_same_logits(hf, tmp_path):
    torch, transformers = hf
    theirs = _random_hf_model(torch, transformers)
    theirs.save_pretrained(tmp_path)
    ours = GPT.from_pretrained(tmp_path).eval()
    assert ours.config.dropout == 0.1 and ours.config.eos_token_id == 10
    assert_close(ours(HF_IDX)[0], hf_logits(torch, theirs, HF_IDX), "logits", 1e-12, 1e-12)


def test_we_load_the_official_layout_with_buffers(hf, tmp_path):
    torch, transformers = hf
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    np = pytest.importorskip("numpy")
    theirs = _random_hf_model(torch, transformers)
    tensors = {k.removeprefix("transformer."): v.numpy() for k, v in theirs.state_dict().items()}
    tensors["lm_head.weight"] = tensors["wte.weight"].copy()
    for l in range(2):  # what the 2019 checkpoints carry: the causal mask as buffers
        tensors[f"h.{l}.attn.bias"] = np.tril(np.ones((1, 1, 6, 6), dtype=np.float32))
        tensors[f"h.{l}.attn.masked_bias"] = np.array(-1e4, dtype=np.float32)
    safetensors_numpy.save_file(tensors, tmp_path / "model.safetensors", {"format": "pt"})
    sizes = dict(vocab_size=11, n_ctx=6, n_positions=6, n_embd=8, n_layer=2, n_head=2)
    config = {**OFFICIAL_GPT2_CONFIG, **sizes, "bos_token_id": 10, "eos_token_id": 10}
    (tmp_path / "config.json").write_text(json.dumps(config))
    ours = GPT.from_pretrained(tmp_path).eval()
    assert_close(ours(HF_IDX)[0], hf_logits(torch, theirs, HF_IDX), "logits", 1e-12, 1e-12)

"""reference/llama.py: every parameter's gradient by finite differences, causality, padding, the
key/value cache (and its size), generation, checkpoints, config errors, and interoperability with
Hugging Face `transformers` both ways (when installed)."""

import json
import math
import os
import types

import pytest

from reference.gpt import KVCache
from reference.llama import Llama, LlamaConfig
from reference.nested import flatten, shape_of
from tests.reference.gradcheck import assert_close, inner, random_tensor
from tests.reference.test_gpt import two_numerical_gradients

TINY = dict(
    vocab_size=7,
    hidden_size=8,
    intermediate_size=6,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=1,
    max_position_embeddings=4,
)


def tiny(**overrides) -> Llama:
    return Llama(LlamaConfig(**{**TINY, **overrides}))


def randomize(model: Llama, seed: int = 0, scale: float = 0.5) -> Llama:
    """Every parameter (the RMS norm gains too) drawn from U(-scale, scale)."""
    for k, (_, p) in enumerate(model.named_parameters()):
        p.data = random_tensor(p.shape, seed * 1000 + k, -scale, scale)
    return model


IDX = [[1, 2, 3, 4], [0, 6, 5, 1]]
TARGETS = [[2, 3, 4, 5], [6, -100, 1, 0]]


# -- configuration ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "field, value, error, words",
    [
        ("num_attention_heads", 3, ValueError, "hidden_size must be divisible by num_attention"),
        ("num_attention_heads", 8, ValueError, "head size .* must be even for rotary.* = 1"),
        ("num_key_value_heads", 3, ValueError, "num_key_value_heads must divide num_attention"),
        ("num_key_value_heads", 0, ValueError, "num_key_value_heads must be an int >= 1"),
        ("hidden_size", 8.0, TypeError, "hidden_size must be an int, got float"),
        ("intermediate_size", 0, ValueError, "intermediate_size must be an int >= 1"),
        ("rms_norm_eps", 0.0, ValueError, "rms_norm_eps must be a finite number > 0"),
        ("rope_theta", -1.0, ValueError, "rope_theta must be a finite number > 0"),
        ("rope_theta", float("inf"), ValueError, "rope_theta must be a finite number > 0"),
        ("tie_word_embeddings", 1, TypeError, "tie_word_embeddings must be True or False"),
        ("attention_dropout", 1.0, ValueError, r"attention_dropout must be in \[0.0, 1.0\)"),
        ("initializer_range", -0.1, ValueError, "initializer_range must be a finite number >= 0"),
        ("seed", -1, ValueError, "seed must be an int >= 0"),
        ("eos_token_id", 7, ValueError, r"eos_token_id must be None or an id in \[0, vocab_size"),
    ],
)
def test_config_validates_every_field(field, value, error, words):
    with pytest.raises(error, match=words):
        LlamaConfig(**{**TINY, field: value})


def test_kv_heads_default_to_the_query_heads_and_model_needs_a_config():
    assert LlamaConfig(**{**TINY, "num_key_value_heads": None}).num_key_value_heads == 2
    with pytest.raises(TypeError, match="config must be a LlamaConfig, got dict"):
        Llama(TINY)


# -- parameters ------------------------------------------------------------------------------------
@pytest.mark.parametrize("tied", [False, True])
def test_hugging_face_names_shapes_and_tying(tied):
    model = tiny(tie_word_embeddings=tied)
    V, C, Ckv, I = 7, 8, 4, 6
    expected = {"model.embed_tokens.weight": (V, C)}
    for l in range(2):
        h = f"model.layers.{l}."
        expected |= {
            h + "self_attn.q_proj.weight": (C, C), h + "self_attn.k_proj.weight": (Ckv, C),
            h + "self_attn.v_proj.weight": (Ckv, C), h + "self_attn.o_proj.weight": (C, C),
            h + "mlp.gate_proj.weight": (I, C), h + "mlp.up_proj.weight": (I, C),
            h + "mlp.down_proj.weight": (C, I), h + "input_layernorm.weight": (C,),
            h + "post_attention_layernorm.weight": (C,),
        }  # fmt: skip
    expected["model.norm.weight"] = (C,)
    if not tied:
        expected["lm_head.weight"] = (V, C)
    assert {n: p.shape for n, p in model.named_parameters()} == expected
    head = model.model.embed_tokens.weight if tied else model.lm_head.weight
    assert model.lm_head_weight is head
    # V C (+ V C untied) + L (2 C^2 + 2 C Ckv + 3 C I + 2 C) + C
    per_layer = 2 * C * C + 2 * C * Ckv + 3 * C * I + 2 * C
    assert model.num_parameters() == V * C * (1 if tied else 2) + 2 * per_layer + C


def test_initialisation_is_seeded_with_its_own_stream_per_tensor():
    config = LlamaConfig(**{**TINY, "vocab_size": 50, "hidden_size": 16, "seed": 5})
    params = dict(Llama(config).named_parameters())
    for name, p in params.items():
        if name.endswith("norm.weight"):
            assert flatten(p.data) == [1.0] * p.shape[0], name
    firsts = [flatten(p.data)[0] for p in params.values() if len(p.shape) == 2]
    assert len(set(firsts)) == len(firsts) == 2 + 7 * 2
    values = flatten(params["model.embed_tokens.weight"].data)
    assert 0.018 < math.sqrt(sum(v * v for v in values) / len(values)) < 0.022
    assert Llama(config).state_dict() == {n: p.data for n, p in params.items()}


def test_flops_per_token():
    for tied in (False, True):
        model = tiny(tie_word_embeddings=tied)
        n = model.num_parameters() - (0 if tied else 7 * 8)  # an untied embedding is a lookup
        assert model.flops_per_token(T=3) == 6 * n + 12 * 2 * 8 * 3


# -- gradients -------------------------------------------------------------------------------------
@pytest.mark.parametrize("tied, kv", [(False, 1), (True, 2)])
def test_every_parameter_gradient_matches_finite_differences(tied, kv):
    """backward() from the loss and backward(dlogits) from a non-uniform upstream gradient, for
    every parameter, against central differences in float64."""
    small = dict(hidden_size=4, intermediate_size=4)  # head size 2: ~270 numbers to nudge
    model = randomize(tiny(tie_word_embeddings=tied, num_key_value_heads=kv, **small)).eval()
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


def test_gradients_with_attention_dropout_match_finite_differences():
    """Dropout on the attention weights: pin the step so every nudged forward draws the same
    masks; each tensor checked along a random direction (see test_gpt.py's twin)."""
    model = randomize(tiny(num_hidden_layers=1, attention_dropout=0.3), seed=1)
    model.dropout_seed = 11

    def loss():
        model.dropout_step = 3
        return model(IDX, TARGETS)[1]

    model.zero_grad()
    loss()
    model.backward()
    h = 1e-6
    for k, (name, p) in enumerate(model.named_parameters()):
        d = random_tensor(p.shape, 500 + k)
        saved = p.data
        p.data = [a + h * b for a, b in zip(flatten(saved), flatten(d))]
        p.data = _reshape(p.data, p.shape)
        plus = loss()
        p.data = _reshape([a - h * b for a, b in zip(flatten(saved), flatten(d))], p.shape)
        minus = loss()
        p.data = saved
        assert abs(inner(p.grad, d) - (plus - minus) / (2 * h)) < 1e-7, name
    assert model.dropout_step == 4


def _reshape(flat, shape):
    from reference.nested import unflatten

    return unflatten(list(flat), shape)


# -- causality, padding, the cache -----------------------------------------------------------------
@pytest.mark.parametrize("t", [0, 1, 2, 3])
def test_changing_a_token_never_changes_earlier_logits(t):
    model = randomize(tiny()).eval()
    base, _ = model(IDX)
    changed = [list(row) for row in IDX]
    changed[0][t] = (changed[0][t] + 3) % 7
    logits, _ = model(changed)
    assert logits[0][:t] == base[0][:t] and logits[0][t:] != base[0][t:]
    assert logits[1] == base[1]  # rows never see each other


def test_right_padding_changes_neither_logits_nor_loss():
    """Padding at the end, its targets ignored (-100), leaves every real position's logits and
    the mean loss as they were: a causal model never looks right, and -100 counts for nothing."""
    model = randomize(tiny(), seed=2).eval()
    short, short_targets = [[1, 2, 3]], [[2, 3, 4]]
    logits, loss = model(short, short_targets)
    padded_logits, padded_loss = model([[1, 2, 3, 0]], [[2, 3, 4, -100]])
    assert padded_logits[0][:3] == logits[0]
    assert abs(padded_loss - loss) < 1e-15


def test_cached_logits_equal_full_forward_and_cache_holds_only_kv_heads():
    model = randomize(tiny(num_attention_heads=2, num_key_value_heads=1), seed=3).eval()
    full, _ = model(IDX)
    cache = model.new_kv_cache(2)
    assert isinstance(cache, KVCache)
    step0 = model._last_logits([row[:2] for row in IDX], cache)
    step1 = model._last_logits([row[2:3] for row in IDX], cache)
    step2 = model._last_logits([row[3:4] for row in IDX], cache)
    for b in range(2):
        assert_close(step0[b], full[b][1], "prefill", 1e-14, 1e-12)
        assert_close(step1[b], full[b][2], "step 1", 1e-14, 1e-12)
        assert_close(step2[b], full[b][3], "step 2", 1e-14, 1e-12)
    # every layer stores (B, T, Hkv hs) = (2, 4, 4): half of multi-head attention's (2, 4, 8)
    assert cache.length == 4
    for layer in range(2):
        assert shape_of(cache.keys[layer]) == shape_of(cache.values[layer]) == (2, 4, 4)
    mha = randomize(tiny(num_key_value_heads=2), seed=3).eval()
    mha_cache = mha.new_kv_cache(2)
    mha._last_logits(IDX, mha_cache)
    assert shape_of(mha_cache.keys[0]) == (2, 4, 8)


@pytest.mark.parametrize("temperature, top_k", [(0.0, None), (0.8, 3)])
def test_generation_with_the_cache_equals_generation_without(temperature, top_k):
    model = randomize(tiny(), seed=4)
    prompt = [[1, 2], [3, 4]]
    cached = model.generate(prompt, 7, temperature=temperature, top_k=top_k, seed=5)
    plain = model.generate(prompt, 7, temperature=temperature, top_k=top_k, seed=5, use_cache=False)
    assert cached == plain and shape_of(cached) == (2, 9)  # past max_position_embeddings = 4
    assert model.training and prompt == [[1, 2], [3, 4]]


@pytest.mark.parametrize(
    "idx, targets, error, words",
    [
        ([[1, 2, 3, 4, 5]], None, ValueError, "exceeds max_position_embeddings=4"),
        ([[1, 7]], None, ValueError, "token id 7 out of range for vocab_size 7"),
        ([[1, -1]], None, ValueError, "token id -1 out of range"),
        ([[1, 2]], [[1, 9]], ValueError, "target id 9 out of range"),
        ([[1, 2]], [[1]], ValueError, "targets must have the shape of idx"),
        ([[1.5, 2]], None, TypeError, "idx must hold ints"),
    ],
)
def test_forward_rejects_bad_input(idx, targets, error, words):
    with pytest.raises(error, match=words):
        tiny()(idx, targets)


def test_backward_errors():
    model = tiny()
    with pytest.raises(RuntimeError, match="before forward"):
        model.backward()
    model(IDX)
    with pytest.raises(RuntimeError, match="starts from the loss"):
        model.backward()
    with pytest.raises(ValueError, match=r"dlogits must have shape \(2, 4, 7\)"):
        model.backward([[[0.0] * 7]])


# -- checkpoints -----------------------------------------------------------------------------------
@pytest.mark.parametrize("tied", [False, True])
def test_save_and_load_round_trip(tmp_path, tied):
    model = randomize(tiny(tie_word_embeddings=tied, rope_theta=500.0, seed=3), seed=5)
    model.save_pretrained(tmp_path, dtype="float64")
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and config["head_dim"] == 4
    assert config["rope_parameters"] == {"rope_type": "default", "rope_theta": 500.0}
    loaded = Llama.from_pretrained(tmp_path)
    assert not loaded.training and loaded.config == model.config
    assert loaded.state_dict() == model.state_dict()
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        Llama.from_pretrained(tmp_path / "nowhere")
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="has no model.safetensors"):
        Llama.from_pretrained(tmp_path)


@pytest.mark.parametrize(
    "change, error, words",
    [
        ({"hidden_act": "gelu"}, ValueError, "hidden_act='gelu'; this model needs 'silu'"),
        ({"attention_bias": True}, ValueError, "attention_bias=true; this model has no biases"),
        ({"head_dim": 2}, ValueError, "head_dim=2; this model needs hidden_size"),
        (
            {"rope_scaling": {"rope_type": "linear", "factor": 2.0}},
            ValueError,
            "rope_type 'linear'",
        ),
        ({"rope_parameters": {"rope_type": "default", "rope_theta": "x"}}, TypeError, "rope_theta"),
        ({"model_type": "gpt2"}, ValueError, "not a LLaMA config"),
        ({"num_key_value_heads": 3}, ValueError, "num_key_value_heads must divide"),
        ({"pretraining_tp": 2}, ValueError, "pretraining_tp"),
    ],
)
def test_config_reader_refuses_what_it_does_not_compute(change, error, words):
    config = {**tiny().config_dict(), **change}
    with pytest.raises(error, match=words):
        Llama.from_config_dict(config)


def test_config_reader_takes_the_old_rope_key_and_an_eos_list():
    config = tiny().config_dict()
    del config["rope_parameters"]
    config.update(rope_theta=123.0, eos_token_id=[1, 2], bos_token_id=99)
    read = LlamaConfig.from_hf_dict(config)
    assert read.rope_theta == 123.0 and read.eos_token_id is None and read.bos_token_id is None


def test_a_tied_checkpoint_with_a_different_head_is_refused(tmp_path):
    from reference.checkpoint import save_safetensors

    model = tiny(tie_word_embeddings=True)
    model.save_pretrained(tmp_path, dtype="float64")
    state = model.state_dict()
    state["lm_head.weight"] = [[0.0] * 8 for _ in range(7)]
    save_safetensors(state, str(tmp_path / "model.safetensors"), dtype="float64")
    with pytest.raises(ValueError, match="lm_head.weight differs from model.embed_tokens"):
        Llama.from_pretrained(tmp_path)


# -- interoperability with Hugging Face transformers -----------------------------------------------
@pytest.fixture(scope="module")
def hf():
    os.environ["HF_HUB_OFFLINE"] = "1"  # never touch the network
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return torch, transformers


HF_TINY = dict(
    vocab_size=11,
    hidden_size=12,
    intermediate_size=10,
    num_hidden_layers=2,
    num_attention_heads=6,
    num_key_value_heads=2,
    max_position_embeddings=6,
    rope_theta=50.0,
)
HF_IDX = [[1, 2, 3, 10, 0], [9, 9, 4, 2, 7]]


def in_float64(torch, model):
    """A loaded `LlamaForCausalLM` computing in float64 throughout: transformers upcasts to
    float32 in two places by design (the RMS norm's statistic and the rotary angles), whatever
    the model's dtype. Those two forwards are replaced by the same formulas in the input's dtype,
    so a float64 model can be compared at float64 precision (loaded with SDPA attention, whose
    softmax, unlike the eager one's, stays in the input's dtype)."""

    def rms_norm(self, h):
        return self.weight * (
            h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
        )

    config = model.config
    dim = config.hidden_size // config.num_attention_heads
    theta = config.rope_parameters["rope_theta"]

    def rotary(x, position_ids):
        inv_freq = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
        freqs = position_ids[..., None].double() * inv_freq
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(x.dtype), emb.sin().to(x.dtype)

    for module in model.modules():
        if type(module).__name__ == "LlamaRMSNorm":
            module.forward = types.MethodType(rms_norm, module)
    model.model.rotary_emb.forward = rotary
    return model


def torch_loss(torch, logits, idx):
    """The next-token loss of transformers' `labels=idx`, in the logits' dtype (transformers
    computes it in float32)."""
    V = logits.shape[-1]
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, V), torch.tensor(idx)[:, 1:].reshape(-1)
    )


def shifted(idx):
    return [row[1:] + [-100] for row in idx]


@pytest.mark.parametrize("tied", [False, True])
def test_transformers_loads_our_checkpoint_with_the_same_logits_and_gradients(hf, tmp_path, tied):
    torch, transformers = hf
    model = randomize(Llama(LlamaConfig(**HF_TINY, tie_word_embeddings=tied)), seed=7).eval()
    model.save_pretrained(tmp_path, dtype="float64")
    theirs = transformers.LlamaForCausalLM.from_pretrained(
        tmp_path, dtype=torch.float64, attn_implementation="sdpa"
    ).eval()
    assert (theirs.lm_head.weight is theirs.model.embed_tokens.weight) == tied
    assert theirs.model.layers[0].self_attn.k_proj.weight.shape == (4, 12)  # 2 KV heads
    as_loaded = theirs(torch.tensor(HF_IDX)).logits.detach().tolist()
    logits, loss = model(HF_IDX, shifted(HF_IDX))
    # as loaded, transformers' float32 statistic and angles limit the agreement to ~1e-7
    assert_close(as_loaded, logits, "logits as loaded", 1e-6, 1e-6)
    out = in_float64(torch, theirs)(torch.tensor(HF_IDX)).logits
    assert_close(out.detach().tolist(), logits, "float64 logits", 1e-12, 1e-10)
    their_loss = torch_loss(torch, out, HF_IDX)
    assert abs(their_loss.item() - loss) < 1e-12
    their_loss.backward()
    model.zero_grad()
    model.backward()
    grads = dict(theirs.named_parameters())
    for name, p in model.named_parameters():
        assert_close(grads[name].grad.tolist(), p.grad, f"grad {name}", 1e-12, 1e-9)
    # the ecosystem's default float32 file loads too
    model.save_pretrained(tmp_path / "f32")
    theirs32 = transformers.LlamaForCausalLM.from_pretrained(tmp_path / "f32").eval()
    assert_close(theirs32(torch.tensor(HF_IDX)).logits.tolist(), logits, "float32", 1e-5, 1e-5)


@pytest.mark.parametrize("tied, kv", [(False, 2), (True, 1)])
def test_we_load_a_transformers_checkpoint_with_its_logits_and_greedy_tokens(
    hf, tmp_path, tied, kv
):
    """A model transformers initialised itself (its own random init: std 0.02 is too close to
    uniform to tell much, so the norms' gains are drawn too), saved by its save_pretrained."""
    torch, transformers = hf
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        **{**HF_TINY, "num_key_value_heads": kv}, tie_word_embeddings=tied, initializer_range=0.5,
        bos_token_id=None, eos_token_id=None, pad_token_id=None,
    )  # fmt: skip
    theirs = transformers.LlamaForCausalLM(config).double().eval()
    with torch.no_grad():
        for name, p in theirs.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
    theirs.save_pretrained(tmp_path)
    ours = Llama.from_pretrained(tmp_path)
    assert ours.config.tie_word_embeddings == tied and ours.config.num_key_value_heads == kv
    as_loaded = theirs(torch.tensor(HF_IDX)).logits.detach().tolist()
    assert_close(ours(HF_IDX)[0], as_loaded, "logits as they compute them", 1e-6, 1e-6)
    prompt = [row[:3] for row in HF_IDX]  # 3 + 3 tokens: within max_position_embeddings
    want = theirs.generate(
        torch.tensor(prompt), max_new_tokens=3, do_sample=False, pad_token_id=0
    ).tolist()
    assert ours.generate(prompt, 3, temperature=0.0) == want  # greedy, as loaded
    exact = in_float64(torch, theirs)
    assert_close(
        ours(HF_IDX)[0], exact(torch.tensor(HF_IDX)).logits.tolist(), "float64", 1e-12, 1e-10
    )

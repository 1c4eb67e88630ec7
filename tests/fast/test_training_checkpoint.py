"""Training checkpoints with numpy storage: float32 state comes back bit for bit, checkpoints
move between backends both ways, and fast's `from_pretrained` returns eval-mode models."""

from __future__ import annotations

import copy
import os

import numpy as np
import pytest

import fast
import reference
from fast import (
    BERT,
    GPT,
    BERTConfig,
    GPTConfig,
    Transformer,
    TransformerConfig,
    latest_checkpoint,
    load_safetensors,
    load_training_checkpoint,
    save_training_checkpoint,
)

GPT_TINY = dict(vocab_size=11, block_size=6, n_layer=1, n_head=2, n_embd=8, dropout=0.1)
BERT_TINY = dict(
    vocab_size=11, block_size=6, n_layer=1, n_head=2, n_embd=8, intermediate_size=12, dropout=0.1
)
IDX = [[1, 2, 3, 4], [5, 6, 7, 8]]


class ArrayOptimizer:
    """A duck-typed optimizer with PyTorch's state_dict layout and numpy state in the
    parameters' dtype (what fast's optimizers hand out)."""

    def __init__(self, params):
        self.params, self.state = list(params), {}

    def step(self):
        for i, p in enumerate(self.params):
            s = self.state.setdefault(i, {"step": 0, "exp_avg": np.zeros_like(p.data)})
            s["step"] += 1
            s["exp_avg"] = (s["exp_avg"] * np.float32(0.9) + p.data / 3).astype(p.data.dtype)

    def state_dict(self):
        return {
            "state": {i: {k: np.copy(v) for k, v in e.items()} for i, e in self.state.items()},
            "param_groups": [{"lr": 1e-3, "eps": 1e-8, "params": list(range(len(self.params)))}],
        }

    def load_state_dict(self, state):
        self.loaded = state
        dtype = self.params[0].data.dtype
        self.state = {
            i: {k: v if k == "step" else np.asarray(v, dtype=dtype) for k, v in e.items()}
            for i, e in state["state"].items()
        }


class ListOptimizer(ArrayOptimizer):
    """The reference's twin of the same optimizer: nested lists. Both backends' optimizers
    share their class names (AdamW is AdamW), so this one is named like its twin."""

    def state_dict(self):
        state = super().state_dict()
        state["state"] = copy.deepcopy(self.state)
        return state

    def load_state_dict(self, state):
        self.loaded = state
        self.state = {
            i: {k: v.tolist() if hasattr(v, "tolist") else v for k, v in e.items()}
            for i, e in state["state"].items()
        }


ListOptimizer.__name__ = "ArrayOptimizer"


def trained(model, run=lambda m: m(IDX, IDX)):
    rng = np.random.default_rng(0)
    for p in model.parameters():
        p.data[...] = rng.uniform(-0.5, 0.5, p.shape).astype(p.data.dtype)
    opt = ArrayOptimizer(model.parameters())
    run(model)  # a training forward: advances the model's dropout counter
    opt.step()
    opt.step()
    return model, opt


def test_float32_state_comes_back_bit_for_bit(tmp_path):
    model, opt = trained(GPT(GPTConfig(**GPT_TINY)))
    path = save_training_checkpoint(tmp_path, model, opt, {"step": 2, "lr": 1e-3})
    stored = load_safetensors(os.path.join(path, "optimizer.safetensors"))
    assert all(a.dtype == np.float32 for a in stored.values())  # the optimizer's own dtype
    assert (
        load_safetensors(os.path.join(path, "model.safetensors"))["transformer.wte.weight"].dtype
        == np.float32
    )
    other = GPT(GPTConfig(**GPT_TINY))
    other_opt = ArrayOptimizer(other.parameters())
    assert load_training_checkpoint(tmp_path, other, other_opt) == {"step": 2, "lr": 1e-3}
    for (name, a), b in zip(model.state_dict().items(), other.state_dict().values()):
        assert a.dtype == b.dtype == np.float32 and a.tobytes() == b.tobytes(), name
    for i, entry in opt.state.items():
        got = other_opt.loaded["state"][i]
        assert got["step"] == 2
        assert got["exp_avg"].dtype == np.float32
        assert got["exp_avg"].tobytes() == entry["exp_avg"].tobytes()
    assert other.dropout_step == 1
    assert latest_checkpoint(tmp_path) == path


def test_a_fast_checkpoint_loads_into_the_reference_and_back(tmp_path):
    model, opt = trained(GPT(GPTConfig(**GPT_TINY)))
    save_training_checkpoint(tmp_path / "fast", model, opt, {"step": 2})
    ref = reference.GPT(reference.GPTConfig(**GPT_TINY))
    ref_opt = ListOptimizer(ref.parameters())
    assert reference.load_training_checkpoint(tmp_path / "fast", ref, ref_opt) == {"step": 2}
    for name, a in model.state_dict().items():
        assert ref.state_dict()[name] == a.astype(np.float64).tolist(), name
    assert ref_opt.state[0]["exp_avg"] == opt.state[0]["exp_avg"].astype(np.float64).tolist()
    assert ref.dropout_step == model.dropout_step == 1

    # and the reference's checkpoint (float64 files) into a float64 fast model, exactly
    reference.save_training_checkpoint(tmp_path / "ref", ref, ref_opt, {"step": 3})
    back = GPT(GPTConfig(**GPT_TINY), dtype="float64")
    back_opt = ArrayOptimizer(back.parameters())
    assert load_training_checkpoint(tmp_path / "ref", back, back_opt) == {"step": 3}
    for name, a in back.state_dict().items():
        assert a.dtype == np.float64 and a.tolist() == ref.state_dict()[name], name
    assert back_opt.loaded["state"][0]["exp_avg"].tolist() == ref_opt.state[0]["exp_avg"]
    # a float32 fast model takes the same file, rounding to its dtype
    f32 = GPT(GPTConfig(**GPT_TINY))
    load_training_checkpoint(tmp_path / "ref", f32)
    assert all(
        np.array_equal(a, model.state_dict()[n]) for n, a in f32.state_dict().items()
    )  # float32 -> float64 -> float32 is exact


def test_bert_counter_and_a_damaged_file(tmp_path):
    model, opt = trained(BERT(BERTConfig(**BERT_TINY)), lambda m: m(IDX, labels=IDX))
    path = save_training_checkpoint(tmp_path, model, opt, {"step": 5})
    other = BERT(BERTConfig(**BERT_TINY))
    load_training_checkpoint(tmp_path, other, ArrayOptimizer(other.parameters()))
    assert other.step == model.step == 1
    with open(os.path.join(path, "model.safetensors"), "r+b") as f:
        f.seek(-3, os.SEEK_END)
        f.write(b"\x00\x01\x02")
    fresh = BERT(BERTConfig(**BERT_TINY))
    before = fresh.state_dict()
    with pytest.raises(fast.CheckpointError, match=r"model\.safetensors is corrupt or truncated"):
        load_training_checkpoint(tmp_path, fresh)
    assert all(np.array_equal(before[n], a) for n, a in fresh.state_dict().items())


def test_fast_exports_the_reference_functions():
    for name in ("save_training_checkpoint", "load_training_checkpoint", "latest_checkpoint"):
        assert getattr(fast, name) is getattr(reference, name)


# -- from_pretrained ----------------------------------------------------------------------------
def test_from_pretrained_returns_an_eval_mode_model(tmp_path):
    for make, run in (
        (lambda **kw: GPT(GPTConfig(**GPT_TINY), **kw), lambda m: m(IDX)[0]),
        (lambda **kw: BERT(BERTConfig(**BERT_TINY), **kw), lambda m: m(IDX)[0]),
        (
            lambda **kw: Transformer(
                TransformerConfig(
                    src_vocab_size=9,
                    tgt_vocab_size=9,
                    d_model=4,
                    nhead=2,
                    num_encoder_layers=1,
                    num_decoder_layers=1,
                    dim_feedforward=6,
                    dropout=0.1,
                    max_len=8,
                ),
                **kw,
            ),
            lambda m: m(IDX, IDX)[0],
        ),  # fmt: skip
    ):
        model = make()
        folder = tmp_path / type(model).__name__
        model.save_pretrained(folder)
        loaded = type(model).from_pretrained(folder, dtype="float64")
        assert loaded.training is False and all(not m.training for m in loaded.modules())
        first = run(loaded)
        assert np.array_equal(run(loaded), first)
        loaded.train()
        assert not np.array_equal(run(loaded), first)


def test_load_state_dict_refuses_a_ragged_tensor_as_the_reference_does():
    model, ref = fast.MLP([2, 2, 1]), reference.MLP([2, 2, 1])
    for bad in ([[1.0, 2.0], [3.0]], [[1.0, [2.0]], [3.0, 4.0]], [[1.0, "2"], [3.0, 4.0]]):
        errors = []
        for m in (model, ref):
            with pytest.raises(ValueError, match=r"state_dict\['layers.0.weight'\]") as info:
                m.load_state_dict({**m.state_dict(), "layers.0.weight": bad})
            errors.append((type(info.value), str(info.value)))
        assert errors[0] == errors[1]


@pytest.fixture(scope="module")
def hf():
    os.environ["HF_HUB_OFFLINE"] = "1"  # never touch the network
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    return torch, transformers


def test_transformers_checkpoints_with_dropout_load_in_eval_mode(hf, tmp_path):
    torch, transformers = hf
    torch.manual_seed(0)
    gpt2 = transformers.GPT2LMHeadModel(
        transformers.GPT2Config(
            vocab_size=11,
            n_positions=6,
            n_embd=8,
            n_layer=1,
            n_head=2,
            resid_pdrop=0.1,
            embd_pdrop=0.1,
            attn_pdrop=0.1,
        )  # fmt: skip
    )
    bert = transformers.BertForMaskedLM(
        transformers.BertConfig(
            vocab_size=11,
            hidden_size=8,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=12,
            max_position_embeddings=6,
            hidden_dropout_prob=0.1,
            attention_probs_dropout_prob=0.1,
        )  # fmt: skip
    )
    for theirs, ours_cls in ((gpt2, GPT), (bert, BERT)):
        folder = tmp_path / ours_cls.__name__
        theirs.save_pretrained(folder, safe_serialization=True)
        ours = ours_cls.from_pretrained(folder)
        assert ours.training is False and ours.config.dropout == 0.1
        first = ours(IDX)[0]
        assert np.array_equal(ours(IDX)[0], first)
        theirs.eval()
        with torch.no_grad():
            want = theirs(torch.tensor(IDX)).logits.numpy()
        np.testing.assert_allclose(first, want, atol=1e-5, rtol=1e-5)


def test_checkpoints_move_between_devices(tmp_path):
    """A model on device="cuda" (a GPU, or Numba's simulator) saves host copies; its checkpoint
    loads into a CPU model, and a CPU model's into a GPU model, bit for bit."""
    on_gpu = GPT(GPTConfig(**GPT_TINY), device="cuda")
    on_gpu.dropout_step = 4
    save_training_checkpoint(tmp_path / "gpu", on_gpu, None, {"step": 4})
    on_cpu = GPT(GPTConfig(**GPT_TINY))
    for p in on_cpu.parameters():
        p.data[...] = 0.25
    load_training_checkpoint(tmp_path / "gpu", on_cpu)
    assert on_cpu.dropout_step == 4
    for name, a in on_gpu.state_dict().items():
        assert a.tobytes() == on_cpu.state_dict()[name].tobytes(), name
    save_training_checkpoint(tmp_path / "cpu", trained(on_cpu)[0], None, {"step": 5})
    back = GPT(GPTConfig(**GPT_TINY), device="cuda")
    load_training_checkpoint(tmp_path / "cpu", back)
    for name, a in on_cpu.state_dict().items():
        assert a.tobytes() == back.state_dict()[name].tobytes(), name
    loaded = GPT.from_pretrained(latest_checkpoint(tmp_path / "cpu"), device="cuda")
    assert loaded.device == "cuda" and loaded.training is False

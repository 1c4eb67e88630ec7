"""Training checkpoints (reference backend): the folder, its integrity checks, keeping and
replacing, restoring model, optimizer and counters; and `from_pretrained`'s eval mode and file
errors, on our checkpoints and on ones `transformers` writes."""

from __future__ import annotations

import copy
import json
import os
import random

import pytest

from reference import (
    BERT,
    GPT,
    MLP,
    BERTConfig,
    BERTForSequenceClassification,
    CheckpointError,
    GPTConfig,
    Transformer,
    TransformerConfig,
    checkpoint_info,
    latest_checkpoint,
    load_safetensors,
    load_safetensors_metadata,
    load_training_checkpoint,
    save_training_checkpoint,
)
from reference.nested import flatten, unflatten

GPT_TINY = dict(vocab_size=11, block_size=6, n_layer=1, n_head=2, n_embd=8, dropout=0.1)
BERT_TINY = dict(
    vocab_size=11, block_size=6, n_layer=1, n_head=2, n_embd=8, intermediate_size=12, dropout=0.1
)
SEQ_TINY = dict(
    src_vocab_size=9, tgt_vocab_size=9, d_model=4, nhead=2, num_encoder_layers=1,
    num_decoder_layers=1, dim_feedforward=6, dropout=0.1, max_len=8,
)  # fmt: skip
IDX = [[1, 2, 3, 4], [5, 6, 7, 8]]


class StandInOptimizer:
    """A duck-typed optimizer with PyTorch's state_dict layout (what the optimizers provide):
    per parameter a `step` count and an `exp_avg` tensor of the parameter's shape."""

    def __init__(self, params, lr=1e-3):
        self.params, self.lr, self.state = list(params), lr, {}

    def step(self):
        for i, p in enumerate(self.params):
            s = self.state.setdefault(i, {"step": 0, "exp_avg": copy.deepcopy(p.data)})
            s["step"] += 1
            s["exp_avg"] = unflatten([0.9 * v + 0.1 / 3 for v in flatten(s["exp_avg"])], p.shape)

    def state_dict(self):
        return {
            "state": copy.deepcopy(self.state),
            "param_groups": [
                {"lr": self.lr, "betas": (0.9, 0.95), "params": list(range(len(self.params)))}
            ],
        }

    def load_state_dict(self, state):
        self.loaded = state
        self.lr = state["param_groups"][0]["lr"]
        self.state = {
            i: {k: v.tolist() if hasattr(v, "tolist") else v for k, v in entry.items()}
            for i, entry in state["state"].items()
        }


class OtherOptimizer(StandInOptimizer):
    pass


def shifted(model, seed):
    """Every parameter moved off its initial value, so a load visibly changes a fresh model."""
    rng = random.Random(seed)
    for _, p in model.named_parameters():
        p.data = unflatten([v + rng.uniform(-0.5, 0.5) for v in flatten(p.data)], p.shape)
    return model


def trained_gpt(seed=1):
    model = shifted(GPT(GPTConfig(**GPT_TINY)), seed)
    opt = StandInOptimizer(model.parameters())
    for _ in range(3):
        model(IDX, IDX)  # training mode: each forward advances dropout_step
        opt.step()
    model.dropout_seed = 1234
    return model, opt


def fresh_gpt():
    model = GPT(GPTConfig(**GPT_TINY))
    return model, StandInOptimizer(model.parameters())


# -- saving: the folder ----------------------------------------------------------------------------
def test_round_trip_restores_weights_optimizer_counters_and_state(tmp_path):
    model, opt = trained_gpt()
    state = {"step": 3, "loss": 2.5, "schedule": {"last": 3}, "data": [1, 2]}
    path = save_training_checkpoint(tmp_path, model, opt, state)
    assert path == os.path.join(tmp_path, "checkpoints", "step-00000003")
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["step-00000003"]  # no temporaries
    other, other_opt = fresh_gpt()
    assert other.state_dict() != model.state_dict()
    back = load_training_checkpoint(tmp_path, other, other_opt)
    assert back == state  # the caller's dict, without the module's bookkeeping
    assert other.state_dict() == model.state_dict()  # float64 file: exact
    assert other_opt.state == opt.state and other_opt.state[0]["step"] == 3
    assert other_opt.loaded["param_groups"] == opt.state_dict()["param_groups"]  # betas a tuple
    assert (other.dropout_step, other.dropout_seed) == (3, 1234)
    # the same dropout masks follow: the next training forward is the same in both
    assert other(IDX, IDX)[1] == model(IDX, IDX)[1]


def test_folder_holds_what_save_pretrained_writes_and_the_bookkeeping(tmp_path):
    model, opt = trained_gpt()
    path = save_training_checkpoint(tmp_path / "run", model, opt, {"step": 7})
    assert sorted(os.listdir(path)) == [
        "config.json", "model.safetensors", "optimizer.safetensors", "trainer_state.json",
    ]  # fmt: skip
    model.save_pretrained(tmp_path / "plain", dtype="float64")
    for name in ("config.json", "model.safetensors"):
        with open(os.path.join(path, name), "rb") as f:
            assert f.read() == (tmp_path / "plain" / name).read_bytes()
    loaded = GPT.from_pretrained(path)  # the folder is a pretrained model folder too
    assert loaded.state_dict() == model.state_dict() and loaded.training is False

    tensors = load_safetensors(os.path.join(path, "optimizer.safetensors"))
    assert tensors["state.0.exp_avg"] == opt.state[0]["exp_avg"]
    assert len(tensors) == len(list(model.parameters()))
    meta = load_safetensors_metadata(os.path.join(path, "optimizer.safetensors"))
    assert meta["optimizer_class"] == "StandInOptimizer"
    assert json.loads(meta["param_groups"])[0]["betas"] == [0.9, 0.95]
    assert json.loads(meta["state_numbers"])["0"] == {"step": 3}

    on_disk = json.loads(open(os.path.join(path, "trainer_state.json")).read())
    book = on_disk["_checkpoint"]
    assert on_disk["step"] == 7
    assert book["model_class"] == "GPT" and book["optimizer_class"] == "StandInOptimizer"
    assert book["model_counters"] == {"dropout_seed": 1234, "dropout_step": 3}
    assert book["format_version"] == 1 and isinstance(book["library_version"], str)
    assert sorted(book["files"]) == ["config.json", "model.safetensors", "optimizer.safetensors"]
    assert checkpoint_info(path) == book
    os.mkdir(tmp_path / "probe")  # a folder made the usual way: the same permissions
    assert os.stat(path).st_mode == os.stat(tmp_path / "probe").st_mode


def test_without_optimizer_and_with_extra_files(tmp_path):
    model, _ = trained_gpt()

    def tokenizer(folder):
        os.makedirs(os.path.join(folder, "tok"))
        with open(os.path.join(folder, "tok", "tokenizer.json"), "w") as f:
            f.write('{"merges": []}')

    path = save_training_checkpoint(tmp_path, model, None, {"step": 0}, write_extra=tokenizer)
    assert "tok/tokenizer.json" in checkpoint_info(path)["files"]
    other, other_opt = fresh_gpt()
    assert load_training_checkpoint(path, other) == {"step": 0}
    assert other.state_dict() == model.state_dict()
    with pytest.raises(ValueError, match="holds no optimizer state"):
        load_training_checkpoint(path, other, other_opt)
    with open(os.path.join(path, "tok", "tokenizer.json"), "a") as f:
        f.write(" ")
    with pytest.raises(CheckpointError, match="tokenizer.json is truncated or corrupt"):
        load_training_checkpoint(path, other)


def test_failing_write_extra_leaves_the_previous_checkpoint_alone(tmp_path):
    model, opt = trained_gpt()
    first = save_training_checkpoint(tmp_path, model, opt, {"step": 1})

    def broken(folder):
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        save_training_checkpoint(tmp_path, model, opt, {"step": 2}, write_extra=broken)
    assert os.listdir(tmp_path / "checkpoints") == ["step-00000001"]
    assert latest_checkpoint(tmp_path) == first


# -- keeping, replacing, finding -------------------------------------------------------------------
def test_keeps_the_newest_and_the_one_just_written(tmp_path):
    model, opt = trained_gpt()
    for step in (5, 1, 3, 9):
        save_training_checkpoint(tmp_path, model, opt, {"step": step}, keep=2)
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["step-00000005", "step-00000009"]
    assert latest_checkpoint(tmp_path).endswith("step-00000009")
    save_training_checkpoint(tmp_path, model, opt, {"step": 2}, keep=2)  # an older step: kept
    assert sorted(os.listdir(tmp_path / "checkpoints")) == [
        "step-00000002", "step-00000005", "step-00000009",
    ]  # fmt: skip
    save_training_checkpoint(tmp_path, model, opt, {"step": 10}, keep=1)
    assert os.listdir(tmp_path / "checkpoints") == ["step-00000010"]


def test_saving_a_step_again_replaces_it(tmp_path):
    model, opt = trained_gpt()
    save_training_checkpoint(tmp_path, model, opt, {"step": 4, "run": "first"})
    model.dropout_step = 99
    save_training_checkpoint(tmp_path, model, opt, {"step": 4, "run": "second"})
    assert os.listdir(tmp_path / "checkpoints") == ["step-00000004"]
    other, _ = fresh_gpt()
    assert load_training_checkpoint(tmp_path, other)["run"] == "second"
    assert other.dropout_step == 99


def test_latest_checkpoint_ignores_temporary_and_incomplete_folders(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    assert latest_checkpoint(tmp_path / "missing") is None
    model, opt = trained_gpt()
    save_training_checkpoint(tmp_path, model, opt, {"step": 2})
    root = tmp_path / "checkpoints"
    (root / ".tmp-step-00000009-abc").mkdir()  # a save that died while writing
    (root / ".tmp-step-00000009-abc" / "trainer_state.json").write_text("{}")
    (root / "step-00000008").mkdir()  # no trainer_state.json: not ours, not complete
    (root / "notes").mkdir()
    assert latest_checkpoint(tmp_path).endswith("step-00000002")
    save_training_checkpoint(tmp_path, model, opt, {"step": 3})
    assert not (root / ".tmp-step-00000009-abc").exists()  # stale temporaries are removed
    assert (root / "notes").exists() and (root / "step-00000008").exists()  # others are not


def test_a_save_killed_while_replacing_its_step_loses_nothing(tmp_path):
    """Between renaming the old folder aside and publishing the new one, the old one is found
    where it was moved, and the next save puts it back."""
    model, opt = trained_gpt()
    path = save_training_checkpoint(tmp_path, model, opt, {"step": 6, "run": "old"})
    aside = tmp_path / "checkpoints" / ".old-step-00000006-0123abcd"
    os.rename(path, aside)  # the state a kill leaves between the two renames
    assert latest_checkpoint(tmp_path) == str(aside)
    other, _ = fresh_gpt()
    assert load_training_checkpoint(tmp_path, other)["run"] == "old"
    save_training_checkpoint(tmp_path, model, opt, {"step": 5}, keep=5)
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["step-00000005", "step-00000006"]
    assert load_training_checkpoint(tmp_path, other)["run"] == "old"


# -- integrity -------------------------------------------------------------------------------------
CHECKPOINT_FILES = [
    "config.json", "model.safetensors", "optimizer.safetensors", "trainer_state.json",
]  # fmt: skip


@pytest.mark.parametrize("name", CHECKPOINT_FILES)
@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_damaged_file_is_named_and_nothing_is_loaded(tmp_path, name, damage):
    model, opt = trained_gpt()
    path = save_training_checkpoint(tmp_path, model, opt, {"step": 1})
    file = os.path.join(path, name)
    data = bytearray(open(file, "rb").read())
    if damage == "truncate":
        data = data[: len(data) * 2 // 3]
    else:
        data[len(data) // 2] ^= 0x5A
    with open(file, "wb") as f:
        f.write(bytes(data))
    other, other_opt = fresh_gpt()
    before = other.state_dict()
    with pytest.raises(CheckpointError, match=rf"{name}.*(corrupt|truncated)") as info:
        load_training_checkpoint(tmp_path, other, other_opt)
    assert isinstance(info.value, ValueError)
    assert other.state_dict() == before and other_opt.state == {} and other.dropout_step == 0


def test_a_missing_file_is_named(tmp_path):
    model, opt = trained_gpt()
    path = save_training_checkpoint(tmp_path, model, opt, {"step": 1})
    os.unlink(os.path.join(path, "optimizer.safetensors"))
    with pytest.raises(CheckpointError, match="optimizer.safetensors is missing"):
        load_training_checkpoint(path, *fresh_gpt())


def test_a_checkpoint_of_another_model_is_refused_naming_the_difference(tmp_path):
    model, opt = trained_gpt()
    save_training_checkpoint(tmp_path, model, opt, {"step": 1})
    wider = GPT(GPTConfig(**{**GPT_TINY, "n_embd": 12}))
    with pytest.raises(ValueError, match=r"is a GPT with n_embd=8, this model has n_embd=12"):
        load_training_checkpoint(tmp_path, wider)
    bert = BERT(BERTConfig(**BERT_TINY))
    with pytest.raises(ValueError, match="holds a GPT, this model is a BERT"):
        load_training_checkpoint(tmp_path, bert)
    other = GPT(GPTConfig(**GPT_TINY))
    with pytest.raises(ValueError, match="StandInOptimizer optimizer's state, this optimizer"):
        load_training_checkpoint(tmp_path, other, OtherOptimizer(other.parameters()))
    assert other.state_dict() == GPT(GPTConfig(**GPT_TINY)).state_dict()  # untouched


def test_missing_folders_and_checkpoints(tmp_path):
    model, opt = fresh_gpt()
    with pytest.raises(FileNotFoundError, match="no such folder"):
        load_training_checkpoint(tmp_path / "nowhere", model)
    with pytest.raises(FileNotFoundError, match="holds no training checkpoint"):
        load_training_checkpoint(tmp_path, model)


@pytest.mark.parametrize(
    "state, error, match",
    [
        ([("step", 1)], TypeError, "trainer_state must be a dict"),
        ({}, ValueError, "must hold 'step'"),
        ({"step": -1}, ValueError, r"trainer_state\['step'\] must be an int >= 0, got -1"),
        ({"step": 1.0}, TypeError, r"trainer_state\['step'\] must be an int"),
        ({"step": True}, TypeError, r"trainer_state\['step'\] must be an int"),
        ({"step": 1, "_checkpoint": {}}, ValueError, "must not hold the key '_checkpoint'"),
        ({"step": 1, "x": object()}, TypeError, "trainer_state must be JSON serialisable"),
        ({"step": 1, 2: 3}, TypeError, "trainer_state keys must be str"),
    ],
)
def test_bad_trainer_state_is_refused_before_anything_is_written(tmp_path, state, error, match):
    model, opt = trained_gpt()
    with pytest.raises(error, match=match):
        save_training_checkpoint(tmp_path, model, opt, state)
    assert not (tmp_path / "checkpoints").exists()


def test_bad_arguments(tmp_path):
    model, opt = trained_gpt()
    for keep in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="keep must be an int >= 1"):
            save_training_checkpoint(tmp_path, model, opt, {"step": 1}, keep=keep)
    with pytest.raises(TypeError, match="model must be a Module"):
        save_training_checkpoint(tmp_path, "gpt", opt, {"step": 1})
    with pytest.raises(TypeError, match="optimizer must have a state_dict"):
        save_training_checkpoint(tmp_path, model, object(), {"step": 1})
    with pytest.raises(TypeError, match="write_extra must be callable"):
        save_training_checkpoint(tmp_path, model, opt, {"step": 1}, write_extra="tok.json")
    with pytest.raises(TypeError, match="out_dir must be a path"):
        save_training_checkpoint(3, model, opt, {"step": 1})
    with pytest.raises(TypeError, match="out_dir must be a path"):
        latest_checkpoint(None)
    with pytest.raises(TypeError, match="path must be a path"):
        load_training_checkpoint(None, model)
    with pytest.raises(TypeError, match="optimizer must have a load_state_dict"):
        load_training_checkpoint(tmp_path, model, object())

    class Odd(StandInOptimizer):
        def state_dict(self):
            return {"state": [], "param_groups": []}

    with pytest.raises(TypeError, match="PyTorch's layout"):
        save_training_checkpoint(tmp_path, model, Odd([]), {"step": 1})
    assert not (tmp_path / "checkpoints").exists()


# -- every model's counters ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make, counter, run",
    [
        (lambda: BERT(BERTConfig(**BERT_TINY)), "step", lambda m: m(IDX, labels=IDX)),
        (
            lambda: BERTForSequenceClassification(BERTConfig(**BERT_TINY), num_labels=3),
            "step",
            lambda m: m(IDX, labels=[0, 2]),
        ),
        (
            lambda: Transformer(TransformerConfig(**SEQ_TINY)),
            "dropout_step",
            lambda m: m(IDX, IDX, IDX),
        ),
        (lambda: MLP([3, 4, 2]), None, None),
    ],
    ids=["bert", "bert-classifier", "transformer", "mlp"],
)
def test_every_model_round_trips_with_its_counter(tmp_path, make, counter, run):
    model = shifted(make(), 3)
    if run is not None:
        run(model)
        run(model)
    opt = StandInOptimizer(model.parameters())
    opt.step()
    save_training_checkpoint(tmp_path, model, opt, {"step": 2})
    other = make()
    other_opt = StandInOptimizer(other.parameters())
    assert load_training_checkpoint(tmp_path, other, other_opt) == {"step": 2}
    assert other.state_dict() == model.state_dict() and other_opt.state == opt.state
    if counter is not None:
        assert getattr(other, counter) == 2
        assert run(other)[1] == run(model)[1]  # same dropout masks next


# -- from_pretrained: evaluation mode and file errors ----------------------------------------------
PRETRAINED = {
    "gpt": (lambda: GPT(GPTConfig(**GPT_TINY)), lambda m: m(IDX)[0]),
    "bert": (lambda: BERT(BERTConfig(**BERT_TINY)), lambda m: m(IDX)[0]),
    "bert-classifier": (
        lambda: BERTForSequenceClassification(BERTConfig(**BERT_TINY)),
        lambda m: m(IDX)[0],
    ),
    "transformer": (lambda: Transformer(TransformerConfig(**SEQ_TINY)), lambda m: m(IDX, IDX)[0]),
}


@pytest.mark.parametrize("kind", sorted(PRETRAINED))
def test_from_pretrained_returns_an_eval_mode_model(tmp_path, kind):
    make, logits = PRETRAINED[kind]
    model = make()
    assert model.training and model.config.dropout == 0.1
    model.save_pretrained(tmp_path, dtype="float64")
    loaded = type(model).from_pretrained(tmp_path)
    assert loaded.training is False and all(not m.training for m in loaded.modules())
    first = logits(loaded)
    assert logits(loaded) == first  # no dropout: the same logits every time
    assert first == logits(model.eval())
    loaded.train()
    assert logits(loaded) != first  # dropout back on once asked for


@pytest.mark.parametrize("kind", sorted(PRETRAINED))
def test_from_pretrained_names_a_bad_config_file(tmp_path, kind):
    make, _ = PRETRAINED[kind]
    model = make()
    model.save_pretrained(tmp_path)
    cls, config = type(model), tmp_path / "config.json"
    good = config.read_text()
    config.write_text(good[:-20])
    with pytest.raises(CheckpointError, match=r"config\.json is not valid JSON: .* line \d+ col"):
        cls.from_pretrained(tmp_path)
    for text, kind_name in (('"gpt2"', "str"), ("[1, 2]", "list"), ("null", "NoneType")):
        config.write_text(text)
        with pytest.raises(CheckpointError, match=rf"config\.json must hold a JSON.*{kind_name}"):
            cls.from_pretrained(tmp_path)
    config.write_bytes(b"\xff\xfe{}")
    with pytest.raises(CheckpointError, match=r"config\.json is not UTF-8"):
        cls.from_pretrained(tmp_path)
    # a field the config class refuses: its own error type, with the file's name added
    broken = json.loads(good)
    key = {"gpt": "n_embd", "transformer": "d_model"}.get(kind, "hidden_size")
    broken[key] = 7  # not divisible by the head count
    config.write_text(json.dumps(broken))
    with pytest.raises(ValueError, match=r"config\.json") as info:
        cls.from_pretrained(tmp_path)
    assert not isinstance(info.value, CheckpointError)


def test_mlp_from_pretrained_names_its_config_file(tmp_path):
    MLP([2, 3, 1]).save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "gpt2"}')
    with pytest.raises(ValueError, match=r"while building MLP from .*config\.json: config is not"):
        MLP.from_pretrained(tmp_path)


# -- load_state_dict refuses ragged tensors --------------------------------------------------------
def test_load_state_dict_refuses_ragged_and_non_numeric_tensors():
    model = MLP([2, 2, 1])
    state = model.state_dict()
    for bad, match in (
        ([[1.0, 2.0], [3.0]], r"state_dict\['layers.0.weight'\] is ragged: .*\[1\] has length 1"),
        ([[1.0, [2.0]], [3.0, 4.0]], r"\['layers.0.weight'\]\[0\]\[1\] must be a number, got list"),
        ([[1.0, "2"], [3.0, 4.0]], r"\['layers.0.weight'\]\[0\]\[1\] must be a number, got str"),
        ([1.0, 2.0], r"\['layers.0.weight'\] is ragged: .*\[0\] has a float"),
        ([[1.0, 2.0]], r"\['layers.0.weight'\] has shape \(1, 2\), expected \(2, 2\)"),
    ):
        with pytest.raises(ValueError, match=match):
            model.load_state_dict({**state, "layers.0.weight": bad})
    assert model.state_dict() == state


# -- checkpoints that transformers writes ----------------------------------------------------------
@pytest.fixture(scope="module")
def hf():
    os.environ["HF_HUB_OFFLINE"] = "1"  # never touch the network
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    return torch, transformers


def _hf_eval_logits(torch, theirs, idx):
    theirs.eval()
    with torch.no_grad():
        return theirs.double()(torch.tensor(idx)).logits.tolist()


def _close(a, b, tol):
    return all(abs(x - y) <= tol * (1 + abs(y)) for x, y in zip(flatten(a), flatten(b)))


def test_transformers_gpt2_with_dropout_loads_in_eval_mode(hf, tmp_path):
    torch, transformers = hf
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=11, n_positions=6, n_embd=8, n_layer=1, n_head=2, resid_pdrop=0.1,
        embd_pdrop=0.1, attn_pdrop=0.1,
    )  # fmt: skip
    theirs = transformers.GPT2LMHeadModel(config)
    theirs.save_pretrained(tmp_path, safe_serialization=True)
    ours = GPT.from_pretrained(tmp_path)
    assert ours.training is False and ours.config.dropout == 0.1
    first = ours(IDX)[0]
    assert ours(IDX)[0] == first
    assert _close(first, _hf_eval_logits(torch, theirs, IDX), 1e-6)


def test_transformers_bert_with_dropout_loads_in_eval_mode(hf, tmp_path):
    torch, transformers = hf
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=11, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=12, max_position_embeddings=6, hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
    )  # fmt: skip
    theirs = transformers.BertForMaskedLM(config)
    theirs.save_pretrained(tmp_path, safe_serialization=True)
    ours = BERT.from_pretrained(tmp_path)
    assert ours.training is False and ours.config.dropout == 0.1
    first = ours(IDX)[0]
    assert ours(IDX)[0] == first
    assert _close(first, _hf_eval_logits(torch, theirs, IDX), 1e-6)

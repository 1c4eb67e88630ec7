"""Checkpoint folders under attack: a save killed with SIGKILL at random moments, and damaged or
crafted checkpoint folders, each loaded in a child interpreter (harness.py)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

from reference import latest_checkpoint, load_training_checkpoint

from .harness import ROOT, is_clear_error, run_many

# The child: a tiny reference GPT saved again and again. Save number k fills every weight with
# k / 1000, the optimizer state with -k / 1000, and sets dropout_step = k, so a loaded checkpoint
# shows at once whether its files belong together. Each step is saved twice (the second save
# replaces the first), so kills also land inside a replacement.
_SAVER = """
import copy, sys
sys.path.insert(0, {root!r})
from reference import GPT, GPTConfig, save_training_checkpoint
from reference.nested import unflatten, numel

class Opt:
    def __init__(self, params):
        self.params, self.state = list(params), {{}}
    def state_dict(self):
        return {{"state": copy.deepcopy(self.state),
                 "param_groups": [{{"lr": 0.1, "params": list(range(len(self.params)))}}]}}
    def load_state_dict(self, state):
        self.state = state["state"]

model = GPT(GPTConfig(vocab_size=11, block_size=6, n_layer=1, n_head=2, n_embd=8, dropout=0.1))
opt = Opt(model.parameters())
print("ready", flush=True)
k = {start}
while True:
    for i, p in enumerate(model.parameters()):
        p.data = unflatten([k / 1000] * numel(p.shape), p.shape)
        opt.state[i] = {{"step": k, "exp_avg": unflatten([-k / 1000] * numel(p.shape), p.shape)}}
    model.dropout_step = k
    save_training_checkpoint({out!r}, model, opt, {{"step": k // 2, "k": k}}, keep=2)
    print("saved", k, flush=True)
    k += 1
"""


class Opt:
    def __init__(self, params):
        self.params, self.state = list(params), None

    def load_state_dict(self, state):
        self.state = state


def _check_consistent(folder, seed):
    from reference import GPT, GPTConfig
    from reference.nested import flatten

    model = GPT(GPTConfig(vocab_size=11, block_size=6, n_layer=1, n_head=2, n_embd=8, dropout=0.1))
    opt = Opt(model.parameters())
    state = load_training_checkpoint(folder, model, opt)
    k = state["k"]
    assert state["step"] == k // 2, (seed, folder, state)
    assert model.dropout_step == k, (seed, folder, state)
    for p in model.parameters():
        assert set(flatten(p.data)) == {k / 1000}, (seed, folder, k)
    for i, entry in opt.state["state"].items():
        assert entry["step"] == k and set(flatten(entry["exp_avg"])) == {-k / 1000}, (seed, i)
    return k


def test_sigkill_at_random_moments_leaves_a_complete_checkpoint(tmp_path):
    seed = int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    out = str(tmp_path / "run")
    last_k = None
    for kill in range(10):
        script = textwrap.dedent(_SAVER).format(root=ROOT, start=kill * 1000, out=out)
        child = subprocess.Popen(
            [sys.executable, "-c", script],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert child.stdout.readline().strip() == "ready", child.stderr.read()
        time.sleep(rng.uniform(0.0, 0.3))
        os.kill(child.pid, signal.SIGKILL)
        stdout, _ = child.communicate()
        assert child.returncode == -signal.SIGKILL
        saved = [int(line.split()[1]) for line in stdout.splitlines() if line.startswith("saved")]
        # The latest checkpoint is the last save reported, or the one after it if the kill came
        # after its rename but before the report; a child killed before reporting any save
        # leaves the previous child's last save, or its own first one.
        expected = {saved[-1], saved[-1] + 1} if saved else {last_k, kill * 1000}
        if saved:
            last_k = saved[-1]
        folder = latest_checkpoint(out)
        if folder is None:  # nothing was ever published: only before the first reported save
            assert last_k is None, (seed, kill)
            continue
        k = _check_consistent(out, seed)  # the out_dir's latest checkpoint
        assert k in expected, (seed, k, expected)
        last_k = k
        for entry in os.listdir(os.path.join(out, "checkpoints")):
            if entry.startswith("step-"):  # every published folder is complete
                _check_consistent(os.path.join(out, "checkpoints", entry), seed)


# -- damaged and crafted folders -------------------------------------------------------------------
_SETUP = """
import json, os, shutil, tempfile
import numpy as np
import fast
from reference import training_checkpoint as tc

base = tempfile.mkdtemp()
model = fast.GPT(fast.GPTConfig(vocab_size=11, block_size=6, n_layer=1, n_head=2, n_embd=8))

class Opt:
    def __init__(self, params):
        self.params = list(params)
    def state_dict(self):
        return {"state": {i: {"step": 1, "exp_avg": np.zeros(p.shape, np.float32)}
                          for i, p in enumerate(self.params)},
                "param_groups": [{"lr": 0.1, "params": list(range(len(self.params)))}]}
    def load_state_dict(self, state):
        self.loaded = state

SAVED = fast.save_training_checkpoint(base, model, Opt(model.parameters()), {"step": 1})

def copy_of():
    folder = os.path.join(tempfile.mkdtemp(), "ckpt")
    shutil.copytree(SAVED, folder)
    return folder

def rehash(folder, edit=lambda book: None):
    # a crafted checkpoint: files changed, every recorded hash made to match again
    path = os.path.join(folder, "trainer_state.json")
    state = json.load(open(path))
    book = state["_checkpoint"]
    book["files"] = {rel: tc._file_record(os.path.join(folder, rel)) for rel in book["files"]}
    edit(book)
    book["sha256"] = tc._state_digest(state)
    open(path, "w").write(json.dumps(state))

def load(folder):
    m = fast.GPT(fast.GPTConfig(vocab_size=11, block_size=6, n_layer=1, n_head=2, n_embd=8))
    return fast.load_training_checkpoint(folder, m, Opt(m.parameters()))
"""

_CASES = {
    "config-is-a-list": (
        """
        f = copy_of(); open(os.path.join(f, "config.json"), "w").write("[1, 2]"); rehash(f)
        load(f)
        """,
        ("config.json", "JSON object"),
    ),
    "config-cut-short": (
        """
        f = copy_of(); p = os.path.join(f, "config.json")
        open(p, "w").write(open(p).read()[:30]); rehash(f)
        load(f)
        """,
        ("config.json", "not valid JSON", "line"),
    ),
    "config-other-width": (
        """
        f = copy_of(); p = os.path.join(f, "config.json")
        c = json.load(open(p)); c["n_embd"] = 16; open(p, "w").write(json.dumps(c)); rehash(f)
        load(f)
        """,
        ("n_embd=16", "n_embd=8"),
    ),
    "trainer-state-a-list": (
        """
        f = copy_of(); open(os.path.join(f, "trainer_state.json"), "w").write("[]")
        load(f)
        """,
        ("trainer_state.json", "corrupt"),
    ),
    "trainer-state-empty": (
        """
        f = copy_of(); open(os.path.join(f, "trainer_state.json"), "w").write("")
        load(f)
        """,
        ("trainer_state.json", "truncated"),
    ),
    "file-outside-the-folder": (
        """
        f = copy_of()
        rehash(f, lambda book: book["files"].update({"../x": {"bytes": 0, "sha256": ""}}))
        load(f)
        """,
        ("outside its folder", "../x"),
    ),
    "newer-format": (
        """
        f = copy_of(); rehash(f, lambda book: book.update(format_version=99))
        load(f)
        """,
        ("format 99", "newer"),
    ),
    "weights-header-lies": (
        """
        f = copy_of(); p = os.path.join(f, "model.safetensors")
        data = bytearray(open(p, "rb").read()); data[0:8] = (10**9).to_bytes(8, "little")
        open(p, "wb").write(bytes(data)); rehash(f)
        load(f)
        """,
        ("model.safetensors", "header length"),
    ),
    "optimizer-metadata-missing": (
        """
        f = copy_of(); p = os.path.join(f, "optimizer.safetensors")
        fast.save_safetensors({"state.0.exp_avg": np.zeros(3)}, p); rehash(f)
        load(f)
        """,
        ("optimizer.safetensors", "metadata"),
    ),
    "optimizer-tensor-misnamed": (
        """
        f = copy_of(); p = os.path.join(f, "optimizer.safetensors")
        meta = fast.load_safetensors_metadata(p)
        fast.save_safetensors({"exp_avg": np.zeros(3)}, p, metadata=meta); rehash(f)
        load(f)
        """,
        ("optimizer.safetensors", "'exp_avg'", "state.<index>.<key>"),
    ),
    "optimizer-numbers-a-list": (
        """
        f = copy_of(); p = os.path.join(f, "optimizer.safetensors")
        meta = dict(fast.load_safetensors_metadata(p), state_numbers="[1, 2]")
        fast.save_safetensors({}, p, metadata=meta); rehash(f)
        load(f)
        """,
        ("optimizer.safetensors", "state_numbers"),
    ),
    "bytes-path": (
        """
        load(SAVED.encode())
        """,
        ("path", "bytes"),
    ),
}


def test_damaged_and_crafted_folders_get_clear_errors():
    outcomes = run_many(_SETUP, {name: code for name, (code, _) in _CASES.items()})
    bad = {
        name: outcomes[name].describe()
        for name, (_, mentions) in _CASES.items()
        if not is_clear_error(outcomes[name], *mentions)
    }
    assert not bad, json.dumps(bad, indent=1)

"""Tiny training runs, made once per session, for the report tests to read (reference backend:
about two seconds each, no compilation)."""

import pytest

from ..scripts.helpers import run

GPT_TINY = [
    "--backend", "reference", "--text-bytes", "20000", "--vocab-size", "270", "--block-size",
    "16", "--n-layer", "2", "--n-head", "2", "--n-embd", "16", "--batch-size", "4", "--steps",
    "10", "--log-interval", "2", "--eval-interval", "5", "--eval-batches", "1",
    "--sample-tokens", "8",
]  # fmt: skip
MLP_TINY = ["--backend", "reference", "--epochs", "2", "--hidden", "8", "--log-interval", "20"]


@pytest.fixture(scope="session")
def gpt_run(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("gpt")
    r = run("train_gpt.py", *GPT_TINY, "--out-dir", str(out_dir), "--overwrite")
    assert r.returncode == 0, r.stderr
    return out_dir, r.stdout


@pytest.fixture(scope="session")
def mlp_run(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("mlp")
    r = run("train_mlp.py", *MLP_TINY, "--out-dir", str(out_dir), "--overwrite")
    assert r.returncode == 0, r.stderr
    return out_dir, r.stdout


BERT_TINY = [
    "--backend", "reference", "--text-bytes", "20000", "--vocab-size", "270", "--block-size",
    "16", "--batch-size", "4", "--n-layer", "2", "--n-head", "2", "--n-embd", "16", "--steps",
    "6", "--log-every", "3", "--eval-every", "3", "--eval-batches", "1",
]  # fmt: skip


@pytest.fixture(scope="session")
def bert_run(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("bert")
    r = run("train_bert.py", *BERT_TINY, "--out-dir", str(out_dir), "--overwrite")
    assert r.returncode == 0, r.stderr
    return out_dir, r.stdout

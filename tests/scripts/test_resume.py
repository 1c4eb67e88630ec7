"""The training scripts survive interruption: SIGTERM saves and exits 0, --resume continues with
bit-identical losses, and bad arguments or files get one `error:` line and status 2."""

import os
import signal
import subprocess
import time

import pytest

from .helpers import ROOT, assert_one_error_line, check_sigterm_then_resume, command, common, run

GPT_TINY = [
    "--backend", "fast", "--text-bytes", "20000", "--vocab-size", "256", "--block-size", "16",
    "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--batch-size", "4", "--steps", "400",
    "--log-interval", "1", "--eval-interval", "100", "--eval-batches", "1", "--sample-tokens", "4",
]  # fmt: skip
MLP_SGD = ["--backend", "fast", "--batch-size", "1", "--epochs", "2", "--log-interval", "1"]
# The reference (pure Python) resumes the same way; its GPT runs 40 steps (about 5 s here).
GPT_TINY_REFERENCE = [
    "--backend", "reference", *GPT_TINY[2:GPT_TINY.index("--steps")], "--steps", "40",
    "--log-interval", "1", "--eval-interval", "10", "--eval-batches", "1", "--sample-tokens", "4",
]  # fmt: skip
MLP_SGD_REFERENCE = ["--backend", "reference", *MLP_SGD[2:]]


@pytest.mark.parametrize(
    "script, args, when, total",
    [
        ("train_gpt.py", GPT_TINY, "step     5/", 400),
        ("train_gpt.py", [*GPT_TINY, "--arch", "llama", "--dropout", "0.1"], "step     5/", 400),
        ("train_mlp.py", MLP_SGD, "epoch   1", 2876),
        ("train_gpt.py", GPT_TINY_REFERENCE, "step    12/", 40),
        ("train_mlp.py", MLP_SGD_REFERENCE, "epoch   1", 2876),
    ],
    ids=["gpt", "llama", "mlp", "gpt-reference", "mlp-reference"],
)
def test_sigterm_then_resume_gives_the_uninterrupted_losses(tmp_path, script, args, when, total):
    check_sigterm_then_resume(tmp_path, script, args, when, total)


def test_sigint_twice_quits_at_once(tmp_path):
    """The reference backend at a size where a step takes a while: the first Ctrl-C asks for a
    clean stop, the second, sent during that same step, quits with status 130."""
    out_dir = str(tmp_path / "run")
    args = ["--backend", "reference", "--text-bytes", "20000", "--vocab-size", "256"]
    args += ["--n-embd", "32", "--block-size", "32", "--batch-size", "16", "--steps", "50"]
    args += ["--log-interval", "1", "--eval-batches", "1", "--out-dir", out_dir]
    err_path = tmp_path / "stderr"
    with open(err_path, "w") as err:
        proc = subprocess.Popen(
            command("train_gpt.py", *args), cwd=ROOT, stdout=subprocess.PIPE, stderr=err,
            text=True,
        )  # fmt: skip
        for line in proc.stdout:
            if line.startswith("step     1/"):
                break
        proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 60
        while "finishing this step" not in err_path.read_text():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=60)
    text = err_path.read_text()
    assert rc == 130 and "SIGINT again: quitting at once" in text and "Traceback" not in text


def test_metrics_on_resume_drop_the_steps_being_redone(tmp_path):
    log = common.Metrics(str(tmp_path))
    for step in range(1, 6):
        log.log(step=step, loss=step / 3, val_loss=None)
    log.close()
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 6, "lo')  # a line cut short by a crash
    log = common.Metrics(str(tmp_path), resume_step=3)
    log.log(step=4, loss=0.25)
    log.close()
    assert common.read_metrics(str(tmp_path)) == [
        {"step": 1, "loss": 1 / 3},
        {"step": 2, "loss": 2 / 3},
        {"step": 3, "loss": 1.0},
        {"step": 4, "loss": 0.25},
    ]
    common.Metrics(str(tmp_path)).close()  # a fresh run starts the file over
    assert common.read_metrics(str(tmp_path)) == []


def _bad_files(tmp_path):
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("café\n".encode("latin-1") * 100)
    other = tmp_path / "other"
    assert run("train_gpt.py", *GPT_TINY, "--steps", "2", "--out-dir", str(other)).returncode == 0
    return str(latin), str(other)


def test_bad_arguments_and_files_get_one_error_line(tmp_path):
    latin, other = _bad_files(tmp_path)
    empty = str(tmp_path / "empty")
    gpt = [
        (["--data", str(tmp_path / "missing.txt")], "no such file"),
        (["--data", latin], "not UTF-8 text"),
        (["--steps", "0"], "--steps: must be >= 1, got 0"),
        (["--lr", "-0.1"], "--lr: must be >= 0.0, got -0.1"),
        (["--n-embd", "30", "--n-head", "4"], "--n-embd (30) must be divisible by --n-head (4)"),
        (["--resume", "--out-dir", empty], "--resume: no checkpoint under"),
        (["--resume", "--out-dir", other, "--n-embd", "32"], "--n-embd 16, got 32"),
        (["--out-dir", other], "already holds a run's checkpoints"),
        (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
        (["--backend", "torch"], "argument --backend: invalid choice"),
    ]
    mlp = [
        (["--lr", "-1"], "--lr: must be >= 0.0, got -1"),
        (["--grad-norm", "0"], "--grad-norm: must be > 0.0, got 0"),
        (["--batch-size", "many"], "--batch-size must be 'full' or an int"),
        (["--resume", "--out-dir", empty], "--resume: no checkpoint under"),
        (["--data", str(tmp_path / "nowhere")], "--data must be 'digits', 'mnist-sample'"),
    ]
    sample = [
        ([empty], "config.json"),
    ]
    os.makedirs(empty)
    cases = [("train_gpt.py", a, e) for a, e in gpt] + [("train_mlp.py", a, e) for a, e in mlp]
    cases += [("sample_gpt.py", a, e) for a, e in sample]
    for script, args, expected in cases:
        assert_one_error_line(script, args, expected)


def test_lm_batch_from_an_array_is_the_lists_batch():
    """The fast backend gathers batches from an int64 array: the same tokens as the lists."""
    import numpy as np

    ids = [(7 * i) % 301 for i in range(2000)]
    for step in range(3):
        x, y = common.lm_batch(ids, 16, 4, 5, step)
        xa, ya = common.lm_batch(np.asarray(ids, dtype=np.int64), 16, 4, 5, step)
        assert xa.dtype == np.int64 and xa.tolist() == x and ya.tolist() == y

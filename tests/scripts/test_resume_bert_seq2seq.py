"""train_bert.py and train_seq2seq.py survive interruption as train_gpt.py does: SIGTERM saves and
exits 0, --resume continues with bit-identical losses (BERT's masks and batches and the digit
strings are functions of the step; the dropout counters travel in the checkpoint), and bad
arguments or files get one `error:` line and status 2."""

import json
import os

import pytest

from .helpers import assert_one_error_line, check_sigterm_then_resume, run

BERT_TINY = [
    "--backend", "fast", "--text-bytes", "20000", "--vocab-size", "256", "--block-size", "16",
    "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--batch-size", "4", "--steps", "400",
    "--log-every", "1", "--eval-every", "100", "--eval-batches", "1", "--dropout", "0.1",
]  # fmt: skip
SEQ2SEQ_TINY = [
    "--backend", "fast", "--batch-size", "4", "--steps", "400", "--log-every", "1",
    "--eval-every", "100", "--valid-size", "8", "--test-size", "8", "--dropout", "0.1",
]  # fmt: skip


def test_bert_sigterm_then_resume_gives_the_uninterrupted_losses(tmp_path):
    whole, part = check_sigterm_then_resume(
        tmp_path, "train_bert.py", BERT_TINY, "step     5/", 400
    )
    for out_dir in (whole, part):  # the export at the top: model and tokenizer with its specials
        with open(os.path.join(out_dir, "config.json")) as f:
            assert json.load(f)["vocab_size"] == 260
        assert os.path.isfile(os.path.join(out_dir, "tokenizer.bpe"))
    with open(os.path.join(whole, "model.safetensors"), "rb") as a:
        with open(os.path.join(part, "model.safetensors"), "rb") as b:
            assert a.read() == b.read()


def test_seq2seq_sigterm_then_resume_gives_the_uninterrupted_losses(tmp_path):
    whole, part = check_sigterm_then_resume(
        tmp_path, "train_seq2seq.py", SEQ2SEQ_TINY, "step     5/", 400, val_key="val_exact_match"
    )
    with open(os.path.join(whole, "model.safetensors"), "rb") as a:
        with open(os.path.join(part, "model.safetensors"), "rb") as b:
            assert a.read() == b.read()


@pytest.fixture(scope="module")
def finished_runs(tmp_path_factory):
    """A two-step run of each script, to resume or to refuse to write over."""
    root = tmp_path_factory.mktemp("runs")
    bert, seq2seq = str(root / "bert"), str(root / "seq2seq")
    r = run("train_bert.py", *BERT_TINY, "--steps", "2", "--out-dir", bert)
    assert r.returncode == 0, r.stderr
    r = run("train_seq2seq.py", *SEQ2SEQ_TINY, "--steps", "2", "--out-dir", seq2seq)
    assert r.returncode == 0, r.stderr
    empty = root / "empty"
    empty.mkdir()
    latin = root / "latin1.txt"
    latin.write_bytes("café\n".encode("latin-1") * 100)
    return {"bert": bert, "seq2seq": seq2seq, "empty": str(empty), "latin": str(latin)}


BERT_ERRORS = [
    (["--corpus", "{empty}/missing.txt"], "--corpus {empty}/missing.txt: no such file"),
    (["--corpus", "{latin}"], "not UTF-8 text"),
    (["--steps", "0"], "--steps: must be >= 1, got 0"),
    (["--block-size", "2"], "--block-size must be >= 3"),
    (["--mask-prob", "1.5"], "--mask-prob must be <= 1, got 1.5"),
    (["--n-embd", "30", "--n-head", "4"], "--n-embd (30) must be divisible by --n-head (4)"),
    (["--resume", "--out-dir", "{empty}"], "--resume: no checkpoint under"),
    (["--resume", "--out-dir", "{bert}", "--n-embd", "32"], "--n-embd 16, got 32"),
    (["--out-dir", "{bert}"], "already holds a run's checkpoints"),
    (["--resume", "--overwrite", "--out-dir", "{bert}"], "contradict each other"),
    (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
]
SEQ2SEQ_ERRORS = [
    (["--min-len", "5", "--max-len", "3"], "need --min-len <= --max-len, got 5 and 3"),
    (["--d-model", "15", "--nhead", "2"], "--d-model (15) must be divisible by --nhead (2)"),
    (["--lr", "-1"], "--lr: must be >= 0.0, got -1"),
    (["--task", "sort"], "argument --task: invalid choice"),
    (["--resume", "--out-dir", "{empty}"], "--resume: no checkpoint under"),
    (["--resume", "--out-dir", "{seq2seq}", "--task", "reverse"], "--task copy, got reverse"),
    (["--out-dir", "{seq2seq}"], "already holds a run's checkpoints"),
]


@pytest.mark.parametrize(
    "script, args, expected",
    [("train_bert.py", a, e) for a, e in BERT_ERRORS]
    + [("train_seq2seq.py", a, e) for a, e in SEQ2SEQ_ERRORS],
)
def test_bad_arguments_and_files_get_one_error_line(finished_runs, script, args, expected):
    args = [a.format(**finished_runs) for a in args]
    assert_one_error_line(script, args, expected.format(**finished_runs))


def test_resume_of_a_finished_run_changes_nothing(finished_runs):
    """Resuming a run that reached its last step trains nothing more and keeps its metrics."""
    out_dir = finished_runs["seq2seq"]
    with open(os.path.join(out_dir, "metrics.jsonl")) as f:
        before = f.read()
    r = run("train_seq2seq.py", "--out-dir", out_dir, "--resume")
    assert r.returncode == 0, r.stderr
    assert f"resuming from {out_dir}" in r.stdout and "at step 2" in r.stdout
    with open(os.path.join(out_dir, "metrics.jsonl")) as f:
        assert f.read() == before


def test_a_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    out_dir = str(tmp_path / "run")
    args = [*SEQ2SEQ_TINY, "--lr", "1e30", "--warmup", "0", "--grad-clip", "0"]
    r = run("train_seq2seq.py", *args, "--out-dir", out_dir)
    last = r.stderr.splitlines()[-1]
    assert r.returncode == 1, r.stderr
    assert last.startswith("error: loss became nan at step 2; training stopped"), last
    assert os.path.join(out_dir, "checkpoints", "step-00000000") in last
    assert os.listdir(os.path.join(out_dir, "checkpoints")) == ["step-00000000"]
    assert "Traceback" not in r.stderr

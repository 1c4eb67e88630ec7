"""train_t5.py survives interruption as the other training scripts do: SIGTERM saves and exits 0,
--resume continues with bit-identical losses through pre-training and fine-tuning (windows, spans
and fine-tuning pairs are functions of the step; the dropout counter travels in the checkpoint),
a resumed run keeps its frozen arguments, and the export at the top loads."""

import json
import os

from .helpers import assert_one_error_line, check_sigterm_then_resume, run

T5_TINY = [
    "--backend", "fast", "--text-bytes", "20000", "--vocab-size", "256", "--block-size", "16",
    "--layers", "1", "--num-heads", "2", "--d-model", "16", "--d-kv", "4", "--d-ff", "16",
    "--batch-size", "4", "--steps", "300", "--finetune-steps", "100", "--log-every", "1",
    "--eval-every", "100", "--eval-batches", "1", "--dropout", "0.1", "--finetune-test", "4",
]  # fmt: skip


def test_t5_sigterm_then_resume_gives_the_uninterrupted_losses(tmp_path):
    whole, part = check_sigterm_then_resume(tmp_path, "train_t5.py", T5_TINY, "step     5/", 400)
    for out_dir in (whole, part):  # the export: a T5ForConditionalGeneration config, tokenizer
        with open(os.path.join(out_dir, "config.json")) as f:
            config = json.load(f)
        assert config["architectures"] == ["T5ForConditionalGeneration"]
        assert config["vocab_size"] == 256 + 2 + 2  # [PAD], [EOS], 2 sentinels (16 * 0.15)
        assert os.path.isfile(os.path.join(out_dir, "tokenizer.bpe"))
    with open(os.path.join(whole, "model.safetensors"), "rb") as a:
        with open(os.path.join(part, "model.safetensors"), "rb") as b:
            assert a.read() == b.read()
    r = run("train_t5.py", "--out-dir", whole, "--resume", "--d-model", "32")
    assert r.returncode == 2 and "--d-model 16, got 32" in r.stderr, r.stderr
    assert_one_error_line("train_t5.py", ["--out-dir", whole], "already holds a run's checkpoints")

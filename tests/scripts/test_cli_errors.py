"""The other entry points share the training scripts' argument handling: a bad argument or file is
one `error:` line on stderr and exit status 2, with no usage dump and no traceback."""

import pytest

from .helpers import assert_one_error_line


@pytest.fixture(scope="module")
def latin(tmp_path_factory):
    path = tmp_path_factory.mktemp("files") / "latin1.txt"
    path.write_bytes("café\n".encode("latin-1") * 100)
    return str(path)


CASES = [
    ("train_tokenizer.py", ["--vocab-size", "10"], "--vocab-size must be >= 256"),
    ("train_tokenizer.py", ["--max-bytes", "0"], "--max-bytes: must be >= 1, got 0"),
    ("train_tokenizer.py", ["--input", "/no/such/file.txt"], "/no/such/file.txt: no such file"),
    ("train_tokenizer.py", ["--input", "{latin}"], "not UTF-8 text"),
    ("train_tokenizer.py", ["--pattern", "x"], "argument --pattern: invalid choice: 'x'"),
    ("bench.py", ["nope"], "argument section: invalid choice: 'nope'"),
    ("bench.py", ["tokenizer", "--repeat", "0"], "--repeat: must be >= 1, got 0"),
    ("bench.py", ["llama", "--repeat", "0"], "--repeat: must be >= 1, got 0"),
    ("bench.py", ["tokenizer", "--mb", "-1"], "--mb: must be > 0.0, got -1"),
    ("bench_threads.py", ["--rounds", "0"], "--rounds: must be >= 1, got 0"),
    ("bench_threads.py", ["--layers", "gnu"], "argument --layers: invalid choice: 'gnu'"),
    ("train_gpt.py", ["--arch", "llama", "--n-embd", "12", "--n-head", "4"], "an even head size"),
    ("train_gpt.py", ["--arch", "llama", "--n-head", "4", "--n-kv-head", "3"], "must divide"),
    ("train_gpt.py", ["--n-kv-head", "2"], "--n-kv-head and --intermediate-size belong to"),
    ("train_gpt.py", ["--arch", "mamba"], "argument --arch: invalid choice: 'mamba'"),
    ("sample_gpt.py", [], "the following arguments are required: checkpoint"),
    ("sample_gpt.py", ["x", "--top-k", "0"], "--top-k: must be >= 1, got 0"),
    ("sample_gpt.py", ["/no/such/run"], "checkpoint /no/such/run: no such folder"),
    ("train_t5.py", ["--noise-density", "1.5"], "--noise-density must be in (0, 1), got 1.5"),
    ("train_t5.py", ["--mean-span", "0.5"], "--mean-span must be >= 1, got 0.5"),
    ("train_t5.py", ["--block-size", "1"], "--block-size must be >= 2"),
    ("train_t5.py", ["--d-model", "0"], "--d-model: must be >= 1, got 0"),
    ("train_t5.py", ["--feed-forward-proj", "gelu"], "--feed-forward-proj: invalid choice"),
    ("train_t5.py", ["--finetune-task", "sort"], "--finetune-task: invalid choice: 'sort'"),
    ("train_t5.py", ["--corpus", "/no/such/file.txt"], "/no/such/file.txt: no such file"),
    ("train_t5.py", ["--corpus", "{latin}"], "not UTF-8 text"),
    ("train_t5.py", ["--resume", "--out-dir", ""], "--resume needs the run's --out-dir"),
]


@pytest.mark.parametrize("script, args, expected", CASES)
def test_bad_arguments_get_one_error_line(latin, script, args, expected):
    assert_one_error_line(script, [a.format(latin=latin) for a in args], expected)

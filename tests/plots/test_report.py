"""scripts/report.py on real (tiny) runs: what the training scripts leave for it, what the page
holds, the attention it draws, and the errors it gives."""

import base64
import json
import math
import os
import re
import subprocess
import sys

import pytest

from ..scripts.helpers import ROOT, SCRIPTS, common, run

pytest.importorskip("matplotlib", reason="needs the plots extra (matplotlib)")

import report  # noqa: E402  (scripts/ is on sys.path through helpers)


def images(page: str) -> list[str]:
    """The src of every <img>: each must be an inline PNG."""
    sources = re.findall(r'<img src="([^"]*)"', page)
    for src in sources:
        assert src.startswith("data:image/png;base64,"), src[:60]
        assert base64.b64decode(src.split(",", 1)[1])[:4] == b"\x89PNG"
    return sources


def test_train_gpt_leaves_the_sample_the_entropy_and_the_command(gpt_run):
    out_dir, stdout = gpt_run
    assert stdout.rstrip().splitlines()[-1] == f"report: python scripts/report.py {out_dir}"
    sample = (out_dir / "sample.txt").read_text(encoding="utf-8")
    assert sample and sample in stdout
    first = common.read_metrics(str(out_dir))[0]
    printed = re.search(r"unigram entropy ([\d.]+) nats \(train\), ([\d.]+) \(val\)", stdout)
    assert first["step"] == 0
    assert f"{first['unigram_entropy_train']:.3f}" == printed.group(1)
    assert f"{first['unigram_entropy']:.3f}" == printed.group(2)


def test_report_of_a_gpt_run(gpt_run, tmp_path):
    out_dir, _ = gpt_run
    out = tmp_path / "page.html"
    pngs = tmp_path / "figures"
    r = run("report.py", str(out_dir), "--attention", "def f(x):", "--backend", "reference",
            "--out", str(out), "--figures", str(pngs))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"wrote {out} (")
    page = out.read_text(encoding="utf-8")
    for heading in ("Training", "Configuration", "Sample", "Tokenizer", "Attention"):
        assert f"<h2>{heading}</h2>" in page
    # metrics, bytes per token, one attention grid per layer (2 layers)
    assert len(images(page)) == 1 + 1 + 2
    # --figures saved the same pictures the page holds inline
    names = ["metrics", "bytes-per-token", "attention-layer-0", "attention-layer-1"]
    assert sorted(os.listdir(pngs)) == sorted(n + ".png" for n in names)
    inline = [base64.b64decode(src.split(",", 1)[1]) for src in images(page)]
    assert inline == [(pngs / f"{n}.png").read_bytes() for n in names]
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert "&quot;n_layer&quot;" not in page and "<th>n_layer</th><td>2</td>" in page
    sample = (out_dir / "sample.txt").read_text(encoding="utf-8")
    assert report.html.escape(sample) in page


def test_attention_maps_are_each_layers_causal_softmax(gpt_run):
    """Per layer (H, T, T), each row a distribution over the tokens up to it; the same maps
    from both backends' models loaded from the run."""
    import figures

    import fast
    import reference

    out_dir, _ = gpt_run
    ids = [5, 100, 33, 7, 250]
    by_backend = [
        figures.attention_maps(m.GPT.from_pretrained(str(out_dir)), ids) for m in (reference, fast)
    ]
    ref_maps, fast_maps = by_backend
    assert len(ref_maps) == 2
    for layer_ref, layer_fast in zip(ref_maps, fast_maps):
        assert len(layer_ref) == 2  # heads
        for head_ref, head_fast in zip(layer_ref, layer_fast):
            for i, row in enumerate(head_ref):
                assert math.isclose(sum(row), 1.0, rel_tol=1e-9)
                assert all(w == 0.0 for w in row[i + 1 :])
                assert all(abs(a - b) < 1e-5 for a, b in zip(row, head_fast[i]))


def test_report_of_the_digit_network(mlp_run, monkeypatch):
    """The confusion matrix counts every held-out digit, and its diagonal is the accuracy the
    training script printed."""
    import figures

    out_dir, stdout = mlp_run
    assert stdout.rstrip().splitlines()[-1] == f"report: python scripts/report.py {out_dir}"
    drawn = []
    confusion_figure = figures.confusion_figure
    monkeypatch.setattr(
        figures, "confusion_figure", lambda c: drawn.append(c) or confusion_figure(c)
    )
    page = report.build(str(out_dir), backend="reference")
    assert "<h2>The digit network</h2>" in page
    # metrics, hidden weights, confusion matrix, misclassified digits
    assert len(images(page)) == 4
    (counts,) = drawn
    total, right = sum(map(sum, counts)), sum(counts[i][i] for i in range(10))
    assert total == int(re.search(r"/ (\d+) held-out digits", stdout).group(1))
    printed = re.search(r"final held-out accuracy ([\d.]+)%", stdout).group(1)
    assert f"{right / total:.2%}" == printed + "%"


def test_report_while_a_run_is_still_going(tmp_path):
    """No checkpoint yet, and the last line of metrics.jsonl is still being written."""
    records = [{"step": 0, "val_loss": 5.0, "unigram_entropy": 4.0}, {"step": 5, "loss": 4.8}]
    text = "".join(json.dumps(r) + "\n" for r in records) + '{"step": 10, "lo'
    (tmp_path / "metrics.jsonl").write_text(text)
    assert report.read_records(str(tmp_path)) == records
    page = report.build(str(tmp_path))
    assert "2 logged records, steps 0 to 5; last validation loss 5.0000" in page
    assert "No checkpoint yet" in page and len(images(page)) == 1


def test_report_errors_are_one_line(tmp_path):
    r = run("report.py", str(tmp_path))
    assert r.returncode == 2
    assert r.stderr == f"error: {tmp_path}: no metrics.jsonl there (is it a run's --out-dir?)\n"
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n')
    r = run("report.py", str(tmp_path), "--attention", "hello")
    assert r.returncode == 2 and r.stderr.startswith("error: --attention needs a GPT or BERT run")


def test_without_matplotlib_the_report_names_the_extra(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n')
    code = (
        "import sys; sys.modules['matplotlib'] = None; sys.path.insert(0, sys.argv[1]); "
        "sys.argv = sys.argv[1:]; import report; raise SystemExit(report.common.cli(report.main, "
        "sys.argv[1:]))"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, SCRIPTS, str(tmp_path)], cwd=ROOT, capture_output=True,
        text=True,
    )  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert r.stderr == (
        'error: the pictures need matplotlib, from the plots extra: pip install -e ".[plots]"\n'
    )
    assert not os.path.exists(tmp_path / "report.html")


def test_report_of_a_bert_run(bert_run, monkeypatch):
    """BERT's attention is bidirectional and its text is wrapped in [CLS] ... [SEP]; the fill-in
    sample it printed is the page's sample."""
    import figures

    out_dir, stdout = bert_run
    assert stdout.rstrip().splitlines()[-1] == f"report: python scripts/report.py {out_dir}"
    sample = (out_dir / "sample.txt").read_text(encoding="utf-8")
    assert sample.startswith("sample: fill in the masked tokens") and sample.strip() in stdout
    drawn = []
    attention_figure = figures.attention_figure
    monkeypatch.setattr(
        figures,
        "attention_figure",
        lambda w, t, title: drawn.append((w, t)) or attention_figure(w, t, title),
    )
    page = report.build(str(out_dir), backend="reference", attention="def f(x):")
    assert report.html.escape(sample) in page and len(drawn) == 2  # a grid per layer
    for weights, tokens in drawn:
        assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"
        T = len(tokens)
        for head in weights:
            assert len(head) == T
            assert all(math.isclose(sum(row), 1.0, rel_tol=1e-9) for row in head)
            assert all(row[-1] > 0.0 for row in head)  # every query sees the last token too


def test_report_of_a_resumed_run(tmp_path, monkeypatch):
    """Stopped by SIGTERM, then resumed: the report draws every step once, with the unigram
    entropy the first part logged."""
    import figures

    from ..scripts.helpers import interrupt
    from .conftest import GPT_TINY

    out_dir = str(tmp_path / "run")
    args = [*GPT_TINY, "--log-interval", "1", "--out-dir", out_dir]
    rc, stdout, stderr = interrupt("train_gpt.py", args, "step     4/")
    assert rc == 0 and "resume with:" in stdout, stderr
    r = run("train_gpt.py", *args, "--resume")
    assert r.returncode == 0, r.stderr
    drawn = []
    metrics_figure = figures.metrics_figure
    monkeypatch.setattr(
        figures, "metrics_figure", lambda rs, h: drawn.append((rs, h)) or metrics_figure(rs, h)
    )
    report.build(out_dir)
    ((records, entropy),) = drawn
    assert entropy == common.read_metrics(out_dir)[0]["unigram_entropy"]
    fig = metrics_figure(records, entropy)
    steps = list(fig.axes[0].get_lines()[0].get_xdata())
    assert steps == list(range(1, 11))


def test_report_of_a_tokenizer_file(tmp_path, monkeypatch):
    """train_tokenizer.py prints the command; the page boxes every token of the sample and the
    bars are bytes over tokens of each kind of text."""
    import figures

    import reference

    path = str(tmp_path / "tok.bpe")
    r = run("train_tokenizer.py", "--max-bytes", "30000", "--vocab-size", "300", "--out", path)
    assert r.returncode == 0, r.stderr
    assert (
        r.stdout.rstrip().splitlines()[-1] == f"report: python scripts/report.py --tokenizer {path}"
    )
    drawn = []
    bars = figures.bytes_per_token_figure
    monkeypatch.setattr(figures, "bytes_per_token_figure", lambda x: drawn.append(x) or bars(x))
    page = report.build_tokenizer_page(path)
    tok = reference.BPETokenizer.load(path)
    spans = re.findall(r"<span>(.*?)</span>", page, re.S)
    assert len(spans) == len(tok.encode(report.SEGMENTED))
    assert report.html.unescape("".join(spans)).startswith("def")
    (rates,) = drawn
    assert list(rates) == ["code", "English", "Chinese"]
    for kind, text in report.TEXTS.items():
        assert rates[kind] == len(text.encode()) / len(tok.encode(text))
    assert len(images(page)) == 1
    r = run("report.py", "--tokenizer", path, "--out", str(tmp_path / "t.html"))
    assert r.returncode == 0 and (tmp_path / "t.html").read_text(encoding="utf-8") != ""


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "error: give a run's folder (RUN_DIR), or --tokenizer FILE\n"),
        (["runs", "--tokenizer", "t.bpe"], "error: --tokenizer draws a tokenizer file alone: "
         "give it without RUN_DIR\n"),
        (["--tokenizer", "no-such.bpe"], "error: --tokenizer no-such.bpe: no such file\n"),
    ],
)  # fmt: skip
def test_report_argument_errors(args, message):
    r = run("report.py", *args)
    assert (r.returncode, r.stderr) == (2, message)


def test_report_of_a_seq2seq_run(tmp_path):
    """The encoder-decoder run prints the command too; its page has the curves and the
    configuration (no tokenizer, no attention)."""
    from ..scripts.test_resume_bert_seq2seq import SEQ2SEQ_TINY

    out_dir = tmp_path / "seq2seq"
    r = run("train_seq2seq.py", *SEQ2SEQ_TINY, "--steps", "3", "--out-dir", str(out_dir))
    assert r.returncode == 0, r.stderr
    assert r.stdout.rstrip().splitlines()[-1] == f"report: python scripts/report.py {out_dir}"
    page = report.build(str(out_dir))
    assert "<h2>Configuration</h2>" in page and "<h2>Tokenizer</h2>" not in page
    assert len(images(page)) == 1

"""Write a run's report: one self-contained HTML page of pictures, read from its folder.

    python scripts/report.py runs/gpt                          # after (or during) a run
    python scripts/report.py runs/gpt --attention "def add(a, b):"   # plus attention maps
    python scripts/report.py runs/mlp                          # the digit network's pictures
    python scripts/report.py runs/gpt --out /tmp/gpt.html
    python scripts/report.py --tokenizer tokenizer.bpe     # a tokenizer alone: tokenizer.bpe.html

Writes RUN_DIR/report.html (or --out): the training and validation loss against the unigram
entropy, the learning rate, the gradient norm and the throughput by step, from `metrics.jsonl`
(a run still going, or resumed, reads the same way); the run's configuration from its newest
checkpoint; the sample the run ended with. Then what the folder's model allows: for a GPT or
BERT, how its tokenizer cuts text (bytes per token for code, English and Chinese) and, with
--attention, one grid of attention maps per layer for that text; for the digit network, the
first hidden layer's weights as images, the confusion matrix on the held-out digits and some
digits it got wrong. Images are inline PNGs: the page needs no network and runs no script.

Needs matplotlib (`pip install -e ".[plots]"`). Bad arguments or files: one `error:` line, status 2.
"""

from __future__ import annotations

import html
import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402  (puts the repository root on sys.path)

import reference  # noqa: E402  (checkpoint lookup and the digit data are shared)

# Short texts of three kinds, for bytes per token: what the main job's tokenizer saw (code), and
# what it did not (English prose, Chinese).
TEXTS = {
    "code": "def mean(values):\n    total = 0\n    for v in values:\n        total += v\n"
    "    return total / len(values)\n",
    "English": "A neuron adds up its weighted inputs and fires when the sum passes a threshold. "
    "Training nudges every weight against the gradient of the loss.",
    "Chinese": "神经元把输入加权求和，超过阈值就激活。"
    "训练时沿着损失函数梯度的反方向调整每一个权重。",
}
SEGMENTED = "def greet(name):\n    return f'Hello, {name}!'\n神经网络 learns."
MISCLASSIFIED_SHOWN = 12


def read_records(run_dir: str) -> list[dict]:
    """metrics.jsonl's records; a line cut short (a run writing as we read) is skipped."""
    path = os.path.join(run_dir, "metrics.jsonl")
    records = []
    with common.user_errors(), open(path, encoding="utf-8") as f:
        for line in f:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
    return records


def read_json(path: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def newest_checkpoint(run_dir: str) -> str | None:
    with common.user_errors():
        return reference.latest_checkpoint(run_dir)


def model_folder(run_dir: str, checkpoint: str | None) -> str | None:
    """Where the run's newest model is: the export at the top of the folder, else its newest
    training checkpoint (the digit network keeps only those)."""
    for folder in (run_dir, checkpoint):
        if folder and os.path.isfile(os.path.join(folder, "config.json")):
            return folder
    return None


def run_args(checkpoint: str | None) -> dict:
    state = read_json(os.path.join(checkpoint, "trainer_state.json")) if checkpoint else None
    if state and "args" not in state and isinstance(state.get("trainer"), dict):
        state = state["trainer"]
    return state.get("args", {}) if state else {}


def unigram_entropy(records: list[dict]) -> float | None:
    """The validation text's unigram entropy, which train_gpt.py logs with step 0."""
    for r in records:
        if "unigram_entropy" in r:
            return float(r["unigram_entropy"])
    return None


# -- the page --------------------------------------------------------------------------------------

STYLE = """
body { font-family: sans-serif; max-width: 980px; margin: 1.5em auto; padding: 0 1em;
       color: #222; line-height: 1.4; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
img { max-width: 100%; display: block; margin: 0.6em 0; }
table { border-collapse: collapse; font-size: 0.85em; display: inline-table;
        vertical-align: top; margin: 0 2em 1em 0; }
caption { text-align: left; font-weight: bold; padding: 0.3em 0; }
td, th { border: 1px solid #ddd; padding: 2px 8px; text-align: left; vertical-align: top; }
pre { background: #f6f6f6; padding: 0.6em; white-space: pre-wrap; }
.tokens span { border: 1px solid #999; margin-right: 1px; white-space: pre;
               font-family: monospace; }
.tokens span:nth-child(3n+1) { background: #cfe3ff; }
.tokens span:nth-child(3n+2) { background: #ffe0b3; }
.tokens span:nth-child(3n) { background: #d5f5d0; }
.note { color: #666; font-size: 0.9em; }
"""


class Page:
    """The report's HTML, section by section."""

    def __init__(self, title: str, figures_dir: str | None = None):
        self.title = title
        self.parts: list[str] = []
        self.figures_dir = figures_dir  # also save each figure there as <name>.png

    def heading(self, text: str) -> None:
        self.parts.append(f"<h2>{html.escape(text)}</h2>")

    def text(self, text: str, cls: str = "") -> None:
        attr = f' class="{cls}"' if cls else ""
        self.parts.append(f"<p{attr}>{html.escape(text)}</p>")

    def pre(self, text: str) -> None:
        self.parts.append(f"<pre>{html.escape(text)}</pre>")

    def figure(self, fig, alt: str, name: str) -> None:
        import figures

        png = figures.png_bytes(fig)
        if self.figures_dir:
            with open(os.path.join(self.figures_dir, name + ".png"), "wb") as f:
                f.write(png)
        self.parts.append(f'<img src="{figures.data_uri(png)}" alt="{html.escape(alt)}">')

    def table(self, rows: dict, caption: str) -> None:
        cells = "".join(
            f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(json.dumps(v))}</td></tr>"
            for k, v in rows.items()
        )
        self.parts.append(f"<table><caption>{html.escape(caption)}</caption>{cells}</table>")

    def tokens(self, pieces: list[str]) -> None:
        spans = "".join(f"<span>{html.escape(p)}</span>" for p in pieces)
        self.parts.append(f'<p class="tokens">{spans}</p>')

    def html(self) -> str:
        body = "\n".join(self.parts)
        return (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{html.escape(self.title)}</title>\n<style>{STYLE}</style>\n</head>\n"
            f"<body>\n<h1>{html.escape(self.title)}</h1>\n{body}\n</body>\n</html>\n"
        )


# -- sections --------------------------------------------------------------------------------------


def training_section(page: Page, records: list[dict]) -> None:
    import figures

    page.heading("Training")
    entropy = unigram_entropy(records)
    steps = [r["step"] for r in records if "step" in r]
    last_val = [r["val_loss"] for r in records if "val_loss" in r]
    summary = (
        f"{len(records)} logged records, steps {min(steps, default=0)} to {max(steps, default=0)}"
    )
    if last_val:
        summary += f"; last validation loss {last_val[-1]:.4f}"
    if entropy is not None:
        summary += f" (unigram entropy {entropy:.4f} nats)"
    page.text(summary + ".")
    page.figure(figures.metrics_figure(records, entropy), "loss, learning rate, gradient norm and "
                "throughput by step", "metrics")  # fmt: skip


def configuration_section(page: Page, args: dict, config: dict | None) -> None:
    page.heading("Configuration")
    if args:
        page.table(args, "the run's arguments (newest checkpoint)")
    if config:
        page.table({k: v for k, v in config.items() if k != "architectures"}, "config.json")
    if not args and not config:
        page.text("No checkpoint yet: the run has not saved one.", "note")


def token_pieces(tok, text: str) -> list[str]:
    """The text of each token of `text` (a token that is part of a character shows its bytes,
    like \\xe7)."""
    return [
        tok.decode_bytes([i]).decode("utf-8", errors="backslashreplace") for i in tok.encode(text)
    ]


def tokenizer_section(page: Page, tok, path: str) -> None:
    import figures

    page.heading("Tokenizer")
    page.text(f"{path}: {tok.n_vocab} tokens. How it cuts a sample, one box per token:")
    page.tokens(token_pieces(tok, SEGMENTED))
    rates = {kind: len(text.encode()) / len(tok.encode(text)) for kind, text in TEXTS.items()}
    page.figure(
        figures.bytes_per_token_figure(rates), "bytes per token by kind of text", "bytes-per-token"
    )


def attention_section(page: Page, m, folder: str, config: dict, tok, text: str) -> None:
    import figures

    page.heading("Attention")
    ids = tok.encode_ordinary(text)
    family = config.get("model_type")
    if family == "bert":
        specials = tok.special_tokens
        ids = [specials["[CLS]"], *ids, specials["[SEP]"]] if "[CLS]" in specials else ids
        model = m.BERT.from_pretrained(folder)
    else:
        model = m.GPT.from_pretrained(folder)
    limit = config.get("n_positions") or config.get("max_position_embeddings") or len(ids)
    if len(ids) > limit:
        page.text(f"The text is {len(ids)} tokens; the first {limit} are shown.", "note")
        ids = ids[:limit]
    if not ids:
        common.fail("--attention: the text has no tokens")
    labels = [figures.token_label(tok.decode_bytes([i])) for i in ids]
    page.text(
        f"{text!r} as {len(ids)} tokens. Row i of a panel is query token i; each row sums to 1 "
        + ("over the tokens before it (the causal mask)." if family != "bert" else "over all.")
    )
    for layer, weights in enumerate(figures.attention_maps(model, ids)):
        fig = figures.attention_figure(weights, labels, f"layer {layer}")
        page.figure(
            fig, f"attention maps of layer {layer}, one panel per head", f"attention-layer-{layer}"
        )


def digits_section(page: Page, m, folder: str, args: dict) -> None:
    """The digit network: hidden weights as images, the confusion matrix, misclassified digits."""
    import figures

    page.heading("The digit network")
    model = m.MLP.from_pretrained(folder)
    weight = model.state_dict()["layers.0.weight"]  # (hidden, pixels)
    n_in = len(weight[0])
    side = math.isqrt(n_in)
    if side * side != n_in:
        page.text(f"The inputs ({n_in}) are not square images: no weight pictures.", "note")
        return
    page.figure(
        figures.hidden_weights_figure(weight, (side, side)),
        "first hidden layer weights",
        "hidden-weights",
    )
    data = args.get("data", "digits")
    loaders = {"digits": reference.load_digits, "mnist-sample": reference.load_mnist_sample}
    if data not in loaders:
        page.text(f"--data {data}: the held-out pictures need 'digits' or 'mnist-sample'.", "note")
        return
    with common.user_errors(f"--data {data}: "):
        x, y = loaders[data]()
    split = reference.train_test_split(
        x, y, test_fraction=args.get("test_fraction", 0.2), seed=args.get("seed", 0)
    )
    x_test, y_test = split[2], split[3]
    predicted = [int(p) for p in model.predict(x_test)]
    true = [int(t) for t in y_test]
    page.figure(figures.confusion_figure(figures.confusion_matrix(true, predicted, 10)),
                "confusion matrix on the held-out digits", "confusion")  # fmt: skip
    wrong = [i for i, (t, p) in enumerate(zip(true, predicted)) if t != p][:MISCLASSIFIED_SHOWN]
    if wrong:
        fig = figures.misclassified_figure(
            [x_test[i] for i in wrong], [true[i] for i in wrong], [predicted[i] for i in wrong],
            (side, side),
        )  # fmt: skip
        page.figure(fig, "misclassified held-out digits", "misclassified")


def build(
    run_dir: str, backend: str = "fast", attention: str | None = None, figures_dir=None
) -> str:
    """The report page for the run in `run_dir`, as HTML text."""
    records = read_records(run_dir)
    checkpoint = newest_checkpoint(run_dir)
    folder = model_folder(run_dir, checkpoint)
    config = read_json(os.path.join(folder, "config.json")) if folder else None
    family = (config or {}).get("model_type")
    page = Page(f"Run report: {os.path.basename(os.path.abspath(run_dir))}", figures_dir)
    page.text(f"{os.path.abspath(run_dir)}, read {time.strftime('%Y-%m-%d %H:%M:%S')}.", "note")
    training_section(page, records)
    configuration_section(page, run_args(checkpoint), config)
    sample = os.path.join(run_dir, "sample.txt")
    if os.path.isfile(sample):
        page.heading("Sample")
        with common.user_errors(), open(sample, encoding="utf-8") as f:
            page.pre(f.read())
    tok_path = next(
        (os.path.join(d, "tokenizer.bpe") for d in (run_dir, checkpoint or "")
         if d and os.path.isfile(os.path.join(d, "tokenizer.bpe"))),
        None,
    )  # fmt: skip
    tok = None
    if tok_path:
        with common.user_errors(f"{tok_path}: "):
            tok = reference.BPETokenizer.load(tok_path)
        tokenizer_section(page, tok, tok_path)
    if attention is not None:
        if family not in ("gpt2", "bert") or tok is None:
            common.fail(
                f"--attention needs a GPT or BERT run with its tokenizer; {run_dir} has none"
            )
        m = common.load_backend(backend, "GPT", "BERT")
        with common.user_errors(f"{folder}: "):
            attention_section(page, m, folder, config, tok, attention)
    if family == "mlp":
        m = common.load_backend(backend, "MLP")
        with common.user_errors(f"{folder}: "):
            digits_section(page, m, folder, run_args(checkpoint))
    return page.html()


def build_tokenizer_page(path: str, figures_dir=None) -> str:
    """A page for a tokenizer file alone (what train_tokenizer.py saves)."""
    with common.user_errors(f"{path}: "):
        tok = reference.BPETokenizer.load(path)
    page = Page(f"Tokenizer report: {os.path.basename(path)}", figures_dir)
    tokenizer_section(page, tok, path)
    return page.html()


def main(argv=None) -> int:
    p = common.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "run_dir", nargs="?", help="a training run's folder (--out-dir of a training script)"
    )
    p.add_argument(
        "--tokenizer",
        default=None,
        help="a tokenizer file (.bpe): with no RUN_DIR, a page of it alone (FILE.html)",
    )
    p.add_argument("--attention", default=None, help="draw the model's attention for this text")
    p.add_argument(
        "--out", default=None, help="where to write the page (default RUN_DIR/report.html)"
    )
    p.add_argument(
        "--backend",
        default="fast",
        choices=["reference", "fast"],
        help="the backend that runs the model for the attention and digit pictures",
    )
    p.add_argument("--figures", default=None, help="also save each figure as a PNG in this folder")
    args = p.parse_args(argv)
    if args.run_dir is None and args.tokenizer is None:
        common.fail("give a run's folder (RUN_DIR), or --tokenizer FILE")
    if args.run_dir is not None and args.tokenizer is not None:
        common.fail("--tokenizer draws a tokenizer file alone: give it without RUN_DIR")
    if args.tokenizer is not None and not os.path.isfile(args.tokenizer):
        common.fail(f"--tokenizer {args.tokenizer}: no such file")
    if args.run_dir is not None and not os.path.isfile(os.path.join(args.run_dir, "metrics.jsonl")):
        common.fail(f"{args.run_dir}: no metrics.jsonl there (is it a run's --out-dir?)")
    if args.tokenizer is not None and args.attention is not None:
        common.fail("--attention needs a run's model: give RUN_DIR, not --tokenizer")
    try:
        import figures  # noqa: F401
    except ImportError as e:
        common.fail(str(e))
    t0 = time.perf_counter()
    if args.figures:
        with common.user_errors("--figures: "):
            os.makedirs(args.figures, exist_ok=True)
    if args.tokenizer is not None:
        page = build_tokenizer_page(args.tokenizer, args.figures)
        out = args.out or args.tokenizer + ".html"
    else:
        page = build(args.run_dir, args.backend, args.attention, args.figures)
        out = args.out or os.path.join(args.run_dir, "report.html")
    with common.user_errors():
        common.write_atomically(out, page)
    print(f"wrote {out} ({len(page.encode()) / 1024:.0f} KiB) in {time.perf_counter() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(common.cli(main))

"""Draw the pictures of docs/tour.md from its own snippets.

    python scripts/tour_figures.py                     # all of them, into docs/tour/
    python scripts/tour_figures.py --out /tmp/tour --backend fast --only 10 14

Runs each chapter's snippet (with `reference`, or with `fast`: the snippet's first line names the
backend), then draws what the snippet computed into the PNG the chapter links to. Needs the plots
extra (`pip install -e ".[plots]"`).
"""

from __future__ import annotations

import math
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402  (puts the repository root on sys.path)

TOUR = os.path.join(common.ROOT, "docs", "tour.md")
IMPORT_LINE = "import reference as m"


def chapters(path: str = TOUR) -> list[tuple[int, str, str]]:
    """(number, code, image path relative to docs/) for each chapter of the tour, in order."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    found = []
    for part in re.split(r"^## ", text, flags=re.M)[1:]:
        number = int(part.split(".", 1)[0])
        code = re.search(r"```python\n(.*?)```", part, re.S).group(1)
        image = re.search(r"!\[[^\]]*\]\(([^)]+\.png)\)", part).group(1)
        found.append((number, code, image))
    return found


def run_snippet(code: str, backend: str = "reference") -> dict:
    """Execute one chapter's code with `backend` as `m`; the names it defined."""
    if not code.startswith(IMPORT_LINE) and IMPORT_LINE not in code:
        raise ValueError(f"a tour snippet must import the backend as {IMPORT_LINE!r}")
    namespace: dict = {"__name__": "tour"}
    exec(compile(code.replace(IMPORT_LINE, f"import {backend} as m"), "tour", "exec"), namespace)
    return namespace


def heads(maps, tokens, title):
    import figures

    return figures.attention_figure(maps, tokens, title)


def draw(number: int, ns: dict):
    """The figure of chapter `number` from the names its snippet defined."""
    import figures

    def curves(title, xlabel, ylabel, data, **more):
        return dict(title=title, xlabel=xlabel, ylabel=ylabel, curves=data, **more)

    def image(title, xlabel, ylabel, matrix, **more):
        return dict(title=title, xlabel=xlabel, ylabel=ylabel, image=matrix, **more)

    if number == 1:
        return figures.neuron_figure(ns["weights"], ns["threshold"], ns["table"])
    if number == 2:
        data = {name: (ns["xs"], ys) for name, ys in ns["curves"].items()}
        return figures.panels_figure([curves("activation functions", "net input", "output", data)])
    if number == 3:
        return figures.network_figure(ns["layers"])
    if number == 4:
        p = ns["p_right"]
        data = {
            "cross-entropy": (p, ns["cross_entropy"]),
            "mean squared error": (p, ns["squared_error"]),
        }
        return figures.panels_figure(
            [curves("two losses", "probability of the right class", "loss", data)]
        )
    if number == 5:
        bars = {"backpropagation": ns["analytic"], "measured slope": ns["numeric"]}
        title = "gradients of the first layer's 6 weights"
        return figures.panels_figure(
            [dict(title=title, xlabel="weight", ylabel="dE/dw", bars=bars)]
        )
    if number == 6:
        data = {n: (range(1, len(c) + 1), c) for n, c in ns["curves"].items()}
        data = {f"{n} ({ns['steps'][n]} steps)": v for n, v in data.items()}
        return figures.panels_figure(
            [curves("10 epochs of each", "epoch", "loss", data, logy=True, markers=True)]
        )
    if number == 7:
        data = {
            f"lr {lr}: {rule}": (range(1, len(h) + 1), h) for lr, (h, rule) in ns["runs"].items()
        }
        lrs = {"lr": (range(len(ns["lrs"])), ns["lrs"])}
        return figures.panels_figure([
            curves("learning rates and stopping rules", "epoch", "loss", data, logy=True),
            curves("warm-up, then cosine decay", "step", "learning rate", lrs),
        ])  # fmt: skip
    if number == 8:
        return figures.segmentation_figure(ns["pieces"], width=30)
    if number == 9:
        return figures.panels_figure([image("sinusoidal positions", "channel", "position",
                                            ns["positions"], cmap="RdBu_r", vmin=-1, vmax=1)],
                                     height=3.6)  # fmt: skip
    if number == 10:
        labels = ["token 0", "token 1", "token 2"]
        w = ns["weights"]
        panel = image("attention weights", "key", "query", w, labels=labels, vmin=0, vmax=1)
        return figures.panels_figure([dict(panel, values=True)])
    if number == 11:
        return heads(ns["maps"], [f"t{t}" for t in range(ns["T"])], "two heads, one input")
    if number == 12:
        return figures.panels_figure([
            image(f"{name} mask", "key", "query", w, vmin=0, vmax=1, values=True)
            for name, w in ns["masks"].items()
        ])  # fmt: skip
    if number == 13:
        maps = figures.attention_maps(ns["bert"], ns["masked"][0])
        tokens = ["[CLS]", "7", "[MASK]", "9", "10", "[SEP]"]
        return heads(maps[0], tokens, "BERT layer 0 after training: no mask")
    if number == 14:
        steps = range(1, len(ns["losses"]) + 1)
        loss = {
            "loss": (steps, ns["losses"]),
            "uniform guess": ([1, len(steps)], [math.log(ns["gpt"].config.vocab_size)] * 2),
        }
        maps = figures.attention_maps(ns["gpt"], ns["x"][0])[0]
        tokens = [str(t) for t in ns["x"][0]]
        return figures.panels_figure([
            curves("autoregressive training", "step", "loss", loss),
            image("layer 0, head 0 after training", "key", "query", maps[0], labels=tokens,
                  vmin=0, vmax=1),
        ], height=3.2)  # fmt: skip
    if number == 15:
        return figures.panels_figure([
            image(name, "key", "query", w, vmin=0, vmax=1)
            for name, w in ns["patterns"].items()
        ], title="what attention may look at")  # fmt: skip
    raise ValueError(f"the tour has no chapter {number}")


def main(argv=None) -> int:
    p = common.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.path.join(common.ROOT, "docs", "tour"), help="folder")
    p.add_argument("--backend", default="reference", choices=["reference", "fast"])
    p.add_argument("--only", type=common.positive_int, nargs="*", help="these chapters only")
    p.add_argument("--dpi", type=common.positive_int, default=60)
    args = p.parse_args(argv)
    try:
        import figures
    except ImportError as e:
        common.fail(str(e))
    os.makedirs(args.out, exist_ok=True)
    for number, code, image in chapters():
        if args.only and number not in args.only:
            continue
        t0 = time.perf_counter()
        fig = draw(number, run_snippet(code, args.backend))
        path = os.path.join(args.out, os.path.basename(image))
        with open(path, "wb") as f:
            f.write(figures.png_bytes(fig, dpi=args.dpi))
        size = os.path.getsize(path) / 1024
        print(f"{number:2d} {path} ({size:.0f} KiB, {time.perf_counter() - t0:.1f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(common.cli(main))

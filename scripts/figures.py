"""Pictures of what a network learned: each function takes plain numbers and returns a matplotlib
`Figure` (not yet drawn or saved), so a test can read back what it plots.

    fig = metrics_figure(records, unigram_entropy=4.1)   # the run's loss, lr, grad norm, speed
    fig.savefig("metrics.png")

matplotlib comes with the `plots` extra (`pip install -e ".[plots]"`); this is the one module of
the project that imports it. Figures are built with the object API (`Figure`, no pyplot), so
nothing opens a window and no global state is shared between them.
"""

from __future__ import annotations

import base64
import io
import math

try:
    import matplotlib
    from matplotlib.figure import Figure
except ImportError as e:  # the core install has no matplotlib: say which extra brings it
    raise ImportError(
        'the pictures need matplotlib, from the plots extra: pip install -e ".[plots]"'
    ) from e

from reference.attention import AttentionCache  # noqa: E402  (the cache attention returns)

matplotlib.rcParams.update({"font.size": 8, "axes.titlesize": 9, "figure.dpi": 72})

# The panels of metrics_figure, in order: (title, y label, the metrics.jsonl keys to try).
METRIC_PANELS = [
    ("loss", "loss (nats)", ("loss", "epoch_loss")),
    ("learning rate", "lr", ("lr",)),
    ("gradient norm", "norm before clipping", ("grad_norm",)),
    ("throughput", "per second", ("tokens_per_second", "samples_per_second")),
]


def series(records: list[dict], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of the records that hold `key`, in the order logged.

    >>> series([{"step": 0, "val_loss": 5.0}, {"step": 5, "loss": 4.0}], "loss")
    ([5], [4.0])
    """
    pairs = [(r["step"], r[key]) for r in records if key in r and "step" in r]
    return [s for s, _ in pairs], [float(v) for _, v in pairs]


def metrics_figure(records: list[dict], unigram_entropy: float | None = None) -> Figure:
    """Four panels by step: the training loss (with the validation loss and the unigram entropy,
    the loss of the best model that ignores context), the learning rate, the gradient norm and
    the throughput. A panel whose metric the run did not log says so."""
    fig = Figure(figsize=(9, 5.4), layout="constrained")
    axes = fig.subplots(2, 2).ravel()
    for ax, (title, ylabel, keys) in zip(axes, METRIC_PANELS):
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        key = next((k for k in keys if series(records, k)[0]), None)
        if key is None:
            ax.text(0.5, 0.5, "not logged by this run", ha="center", va="center",
                    transform=ax.transAxes)  # fmt: skip
            continue
        steps, values = series(records, key)
        ax.plot(steps, values, label=key.replace("_", " "), color="C0", linewidth=1.2)
        if title == "loss":
            val_steps, val = series(records, "val_loss")
            if val_steps:
                ax.plot(val_steps, val, "o-", label="val loss", color="C1", markersize=3)
            if unigram_entropy is not None:
                ax.axhline(unigram_entropy, color="C2", linestyle="--", label="unigram entropy")
            ax.legend(loc="upper right")
        if title == "throughput":
            ax.set_ylabel(key.replace("_", " "))
    return fig


def attention_maps(model, idx: list[int]) -> list:
    """The attention pattern of each layer, (H, T, T), for one sequence, in layer order: a forward
    in eval mode, then each attention layer's forward cache (`AttentionCache.weights`, the softmax
    before dropout). Reads the layers' private `_cache`: models keep no public copy of it."""
    model.eval()
    model([idx])
    maps = []
    for module in model.modules():
        cache = vars(module).get("_cache")
        found = [cache] if isinstance(cache, AttentionCache) else []
        if not found and isinstance(cache, tuple):
            found = [c for c in cache if isinstance(c, AttentionCache)]
        maps += [c.weights[0] for c in found]
    return maps


def token_label(piece: bytes) -> str:
    """A token's bytes as an axis label: a newline as \\n, spaces as middle dots, a broken
    character as its bytes.

    >>> token_label(b"  x\\n")
    '··x\\\\n'
    """
    text = piece.decode("utf-8", errors="backslashreplace")
    return text.replace("\n", "\\n").replace(" ", "·")


def attention_figure(weights, tokens: list[str], title: str = "") -> Figure:
    """One panel per head: weights (H, T, T), row i = how much query token i attends to each
    key token; tokens label both axes."""
    H = len(weights)
    cols = min(H, 4)
    rows = math.ceil(H / cols)
    T = len(tokens)
    side = 1.2 + 0.16 * T
    fig = Figure(figsize=(side * cols, side * rows + 0.3), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for h, ax in enumerate(axes):
        if h >= H:
            ax.set_visible(False)
            continue
        ax.imshow(weights[h], cmap="viridis", vmin=0.0, vmax=1.0)
        ax.set_title(f"head {h}")
        ax.set_xticks(range(T), tokens, rotation=90, fontsize=6)
        ax.set_yticks(range(T), tokens, fontsize=6)
        ax.set_xlabel("key")
        ax.set_ylabel("query")
    if title:
        fig.suptitle(title)
    return fig


def image_grid_figure(
    images, shape: tuple[int, int], titles: list[str], title: str = "", signed: bool = False
) -> Figure:
    """Small images in a grid, one panel each: rows of pixels reshaped to `shape`. `signed`
    draws negative values blue and positive red around a white zero (for weights)."""
    n = len(images)
    cols = min(n, 8)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(1.1 * cols, 1.25 * rows + 0.3), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for i, ax in enumerate(axes):
        ax.set_axis_off()
        if i >= n:
            continue
        pixels = [list(images[i][r * shape[1] : (r + 1) * shape[1]]) for r in range(shape[0])]
        if signed:
            lim = max(abs(float(v)) for v in images[i]) or 1.0
            ax.imshow(pixels, cmap="RdBu_r", vmin=-lim, vmax=lim)
        else:
            ax.imshow(pixels, cmap="gray_r", vmin=0.0, vmax=1.0)
        ax.set_title(titles[i], fontsize=7)
    if title:
        fig.suptitle(title)
    return fig


def hidden_weights_figure(weight, shape: tuple[int, int]) -> Figure:
    """The first hidden layer's weights (out x in) as images: unit j's weights on the pixels,
    red where a bright pixel raises its net input, blue where it lowers it."""
    return image_grid_figure(
        weight, shape, [f"unit {j}" for j in range(len(weight))],
        "first hidden layer: each unit's weights on the pixels", signed=True,
    )  # fmt: skip


def confusion_matrix(true: list[int], predicted: list[int], n_classes: int) -> list[list[int]]:
    """counts[t][p]: how many examples of class t were predicted as p.

    >>> confusion_matrix([0, 1, 1], [0, 1, 0], 2)
    [[1, 0], [1, 1]]
    """
    counts = [[0] * n_classes for _ in range(n_classes)]
    for t, p in zip(true, predicted):
        counts[t][p] += 1
    return counts


def confusion_figure(counts: list[list[int]]) -> Figure:
    """The confusion matrix: true class down, predicted class across, each cell's count."""
    n = len(counts)
    fig = Figure(figsize=(4.2, 3.8), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(counts, cmap="Blues")
    peak = max(max(row) for row in counts) or 1
    for t in range(n):
        for p in range(n):
            color = "white" if counts[t][p] > peak / 2 else "black"
            ax.text(p, t, str(counts[t][p]), ha="center", va="center", color=color, fontsize=7)
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    correct = sum(counts[i][i] for i in range(n))
    total = sum(map(sum, counts))
    ax.set_title(f"held-out digits: {correct}/{total} right ({correct / max(total, 1):.1%})")
    fig.colorbar(im, ax=ax, shrink=0.8)
    return fig


def misclassified_figure(images, true: list[int], predicted: list[int], shape) -> Figure:
    """A handful of held-out digits the network got wrong, each titled `true -> predicted`."""
    titles = [f"{t} -> {p}" for t, p in zip(true, predicted)]
    return image_grid_figure(images, shape, titles, "misclassified: true -> predicted")


def bytes_per_token_figure(rates: dict[str, float]) -> Figure:
    """Bars: bytes of UTF-8 per token for each kind of text (more = the tokenizer packs more)."""
    fig = Figure(figsize=(4.5, 2.8), layout="constrained")
    ax = fig.subplots()
    kinds = list(rates)
    ax.bar(kinds, [rates[k] for k in kinds], color=[f"C{i}" for i in range(len(kinds))])
    for i, k in enumerate(kinds):
        ax.text(i, rates[k], f"{rates[k]:.2f}", ha="center", va="bottom")
    ax.set_ylabel("bytes per token")
    ax.set_title("how much text one token carries")
    return fig


def segmentation_figure(pieces: list[str], width: int = 60) -> Figure:
    """Each token as a box around its text, boxes in alternating colours, wrapped at `width`
    characters: where BPE cuts. `pieces` are the tokens' texts in order (spaces shown as ·)."""
    gap = 0.8  # characters between boxes
    lines, line, used = [], [], 0.0
    for piece in pieces:
        shown = piece.replace("\n", "\\n").replace(" ", "·")
        if used + len(shown) > width and line:
            lines.append(line)
            line, used = [], 0.0
        line.append((used, shown))
        used += len(shown) + gap
    if line:
        lines.append(line)
    char = 0.6 * 10 / 72  # inches: a 10-point monospace character is 0.6 em wide
    span = max(start + len(text) for boxes in lines for start, text in boxes)
    fig = Figure(figsize=(char * span + 0.4, 0.3 * len(lines) + 0.45))
    fig.suptitle(f"{len(pieces)} tokens", fontsize=9)
    ax = fig.add_axes((0.2 / (char * span + 0.4), 0.0, char * span / (char * span + 0.4),
                       0.3 * len(lines) / (0.3 * len(lines) + 0.45)))  # fmt: skip
    ax.set_xlim(0, span)
    ax.set_ylim(len(lines), 0)
    ax.set_axis_off()
    k = 0
    for row, boxes in enumerate(lines):
        for start, text in boxes:
            color = ("#cfe3ff", "#ffe0b3", "#d5f5d0")[k % 3]
            box = {"boxstyle": "square,pad=0.2", "facecolor": color, "linewidth": 0.5}
            ax.text(start, row + 0.5, text, family="monospace", fontsize=10, va="center", bbox=box)
            k += 1
    return fig


def panels_figure(panels: list[dict], title: str = "", height: float = 3.0) -> Figure:
    """Panels side by side, each a dict with `title`, `xlabel`, `ylabel` and one of:

    - `curves`: {label: (xs, ys)} drawn as lines (`logy`: a log scale; `markers`: dots too);
    - `bars`: {label: values} drawn as groups of bars, one group per index;
    - `image`: a matrix (rows down), with optional `labels` for both axes, `xlabels`/`ylabels`,
      `cmap`, `vmin`, `vmax` and `values` (write each cell's number in it).
    """
    fig = Figure(figsize=(3.6 * len(panels), height), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, panel in zip(axes, panels):
        ax.set_title(panel.get("title", ""))
        ax.set_xlabel(panel.get("xlabel", ""))
        ax.set_ylabel(panel.get("ylabel", ""))
        if "curves" in panel:
            style = "o-" if panel.get("markers") else "-"
            for label, (xs, ys) in panel["curves"].items():
                ax.plot(list(xs), [float(v) for v in ys], style, label=label, markersize=3)
            if panel.get("logy"):
                ax.set_yscale("log")
            if len(panel["curves"]) > 1:
                ax.legend(fontsize=7)
        elif "bars" in panel:
            groups = panel["bars"]
            width = 0.8 / len(groups)
            for g, (label, values) in enumerate(groups.items()):
                xs = [i + (g - (len(groups) - 1) / 2) * width for i in range(len(values))]
                ax.bar(xs, [float(v) for v in values], width, label=label)
            ax.legend(fontsize=7)
        else:
            image = [[float(v) for v in row] for row in panel["image"]]
            ax.imshow(image, cmap=panel.get("cmap", "viridis"), vmin=panel.get("vmin"),
                      vmax=panel.get("vmax"))  # fmt: skip
            xlabels = panel.get("xlabels", panel.get("labels"))
            ylabels = panel.get("ylabels", panel.get("labels"))
            if xlabels is not None or len(image[0]) <= 12:  # else matplotlib's own ticks
                ax.set_xticks(range(len(image[0])), xlabels)
            if ylabels is not None or len(image) <= 12:
                ax.set_yticks(range(len(image)), ylabels)
            if panel.get("values"):
                for i, row in enumerate(image):
                    for j, v in enumerate(row):
                        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                                color="white" if v < 0.5 else "black")  # fmt: skip
    if title:
        fig.suptitle(title)
    return fig


def neuron_figure(weights, threshold: float, table: dict) -> Figure:
    """A two-input threshold neuron: its four inputs (filled where it fires) and the line
    w1 x1 + w2 x2 = threshold where its weighted sum crosses the threshold."""
    fig = Figure(figsize=(3.4, 3.2), layout="constrained")
    ax = fig.subplots()
    w1, w2 = weights
    xs = [-0.25, 1.25]
    ax.plot(xs, [(threshold - w1 * x) / w2 for x in xs], "--", color="C2", label="threshold")
    for (a, b), out in table.items():
        ax.scatter([a], [b], s=120, color="C1" if out else "white", edgecolors="black", zorder=3)
        ax.annotate(f"{out:g}", (a, b), textcoords="offset points", xytext=(9, 7))
    ax.set_xlim(-0.25, 1.25)
    ax.set_ylim(-0.25, 1.25)
    ax.set_xlabel("input 1")
    ax.set_ylabel("input 2")
    ax.set_title(f"weights {w1:g}, {w2:g}; threshold {threshold:g}")
    ax.legend(loc="lower left", fontsize=7)
    return fig


def network_figure(layers) -> Figure:
    """A feed-forward network as columns of neurons; each connection a line coloured by its
    weight (red positive, blue negative). `layers` are the weight matrices (out x in) in order."""
    sizes = [len(layers[0][0])] + [len(w) for w in layers]
    fig = Figure(figsize=(1.3 * len(sizes) + 0.6, 3.2), layout="constrained")
    ax = fig.subplots()
    cmap = matplotlib.colormaps["RdBu_r"]
    lim = max(abs(float(v)) for w in layers for row in w for v in row) or 1.0

    def y(n: int, i: int) -> float:
        return (i - (n - 1) / 2) * 0.8

    for k, w in enumerate(layers):
        for j, row in enumerate(w):
            for i, v in enumerate(row):
                color = cmap(0.5 + 0.5 * float(v) / lim)
                ax.plot([k, k + 1], [y(sizes[k], i), y(sizes[k + 1], j)], color=color,
                        linewidth=0.5 + 2 * abs(float(v)) / lim)  # fmt: skip
    for k, n in enumerate(sizes):
        ax.scatter([k] * n, [y(n, i) for i in range(n)], s=160, color="white", edgecolors="black",
                   zorder=3)  # fmt: skip
    names = ["input"] + ["hidden"] * (len(sizes) - 2) + ["output"]
    ax.set_xticks(range(len(sizes)), [f"{name}\n{n}" for name, n in zip(names, sizes)])
    ax.set_yticks([])
    ax.set_title("-".join(map(str, sizes)) + " network: weights red +, blue -")
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    return fig


def png_bytes(fig: Figure, dpi: int = 72) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def data_uri(png: bytes) -> str:
    """PNG bytes as a `data:image/png;base64,...` URI: an <img> inside a self-contained page."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")

"""Each figure plots the numbers it was given: read back from the figure's lines, images, bars
and texts, not just "it ran"."""

import numpy as np
import pytest

from ..scripts.helpers import SCRIPTS  # noqa: F401  (puts scripts/ on sys.path)

figures = pytest.importorskip("figures", reason="needs the plots extra (matplotlib)")

RECORDS = [
    {"step": 0, "val_loss": 5.5, "unigram_entropy": 4.25},
    {"step": 10, "loss": 5.0, "lr": 1e-3, "grad_norm": 2.0, "tokens_per_second": 900.0},
    {"step": 20, "loss": 4.0, "lr": 2e-3, "grad_norm": 1.5, "tokens_per_second": 1100.0},
    {"step": 20, "val_loss": 4.5},
    {"step": 30, "loss": 3.5, "lr": 1e-3, "grad_norm": 0.5, "tokens_per_second": 1000.0,
     "val_loss": 4.0},
]  # fmt: skip


def line(ax, label):
    found = [ln for ln in ax.get_lines() if ln.get_label() == label]
    assert len(found) == 1, [ln.get_label() for ln in ax.get_lines()]
    return list(found[0].get_xdata()), [float(v) for v in found[0].get_ydata()]


def test_metrics_figure_draws_each_metric_by_step():
    fig = figures.metrics_figure(RECORDS, unigram_entropy=4.25)
    loss, lr, norm, speed = fig.axes
    assert [a.get_title() for a in fig.axes] == [
        "loss", "learning rate", "gradient norm", "throughput",
    ]  # fmt: skip
    assert line(loss, "loss") == ([10, 20, 30], [5.0, 4.0, 3.5])
    assert line(loss, "val loss") == ([0, 20, 30], [5.5, 4.5, 4.0])
    assert line(loss, "unigram entropy")[1] == [4.25, 4.25]
    assert [t.get_text() for t in loss.get_legend().get_texts()] == [
        "loss", "val loss", "unigram entropy",
    ]  # fmt: skip
    assert line(lr, "lr") == ([10, 20, 30], [1e-3, 2e-3, 1e-3])
    assert line(norm, "grad norm") == ([10, 20, 30], [2.0, 1.5, 0.5])
    assert line(speed, "tokens per second") == ([10, 20, 30], [900.0, 1100.0, 1000.0])
    assert speed.get_ylabel() == "tokens per second"


def test_metrics_figure_says_what_a_run_did_not_log():
    """The digit network logs epoch losses and no learning rate per epoch."""
    records = [{"step": 45, "epoch": 1, "epoch_loss": 2.0, "grad_norm": 0.1, "val_loss": 1.9}]
    fig = figures.metrics_figure(records)
    loss, lr, _, speed = fig.axes
    assert line(loss, "epoch loss") == ([45], [2.0])
    assert all(ln.get_label() != "unigram entropy" for ln in loss.get_lines())
    for ax in (lr, speed):
        assert not ax.get_lines()
        assert [t.get_text() for t in ax.texts] == ["not logged by this run"]


def test_attention_figure_has_a_panel_per_head_with_the_tokens_on_both_axes():
    rng = np.random.default_rng(0)
    weights = rng.random((3, 4, 4))
    weights /= weights.sum(-1, keepdims=True)
    tokens = ["def", " f", "(", "x"]
    fig = figures.attention_figure(weights, tokens, "layer 1")
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in shown] == ["head 0", "head 1", "head 2"]
    for h, ax in enumerate(shown):
        np.testing.assert_array_equal(ax.get_images()[0].get_array(), weights[h])
        assert [t.get_text() for t in ax.get_xticklabels()] == tokens
        assert [t.get_text() for t in ax.get_yticklabels()] == tokens
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("key", "query")
    assert fig.get_suptitle() == "layer 1"


def test_hidden_weights_figure_draws_each_unit_as_an_image():
    weight = np.arange(3 * 16, dtype=float).reshape(3, 16) - 20.0  # 3 units on 4x4 pixels
    fig = figures.hidden_weights_figure(weight, (4, 4))
    drawn = [ax for ax in fig.axes if ax.get_images()]
    assert [ax.get_title() for ax in drawn] == ["unit 0", "unit 1", "unit 2"]
    for j, ax in enumerate(drawn):
        image = ax.get_images()[0]
        np.testing.assert_array_equal(image.get_array(), weight[j].reshape(4, 4))
        lim = abs(weight[j]).max()
        assert image.get_clim() == (-lim, lim)  # zero is white: signs are comparable


def test_confusion_matrix_and_its_figure():
    true = [0, 0, 1, 2, 2, 2]
    predicted = [0, 1, 1, 2, 0, 2]
    counts = figures.confusion_matrix(true, predicted, 3)
    assert counts == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    fig = figures.confusion_figure(counts)
    ax = fig.axes[0]
    np.testing.assert_array_equal(ax.get_images()[0].get_array(), counts)
    cells = {
        (round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts
    }
    assert cells == {(t, p): str(counts[t][p]) for t in range(3) for p in range(3)}
    assert ax.get_title() == "held-out digits: 4/6 right (66.7%)"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted", "true")


def test_misclassified_figure_titles_true_then_predicted():
    images = [[0.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 1.0]]
    fig = figures.misclassified_figure(images, [3, 8], [5, 9], (2, 2))
    drawn = [ax for ax in fig.axes if ax.get_images()]
    assert [ax.get_title() for ax in drawn] == ["3 -> 5", "8 -> 9"]
    np.testing.assert_array_equal(drawn[1].get_images()[0].get_array(), [[1, 0], [0, 1]])


def test_bytes_per_token_figure_has_a_bar_per_kind():
    rates = {"code": 3.5, "English": 4.0, "Chinese": 1.25}
    fig = figures.bytes_per_token_figure(rates)
    ax = fig.axes[0]
    assert [p.get_height() for p in ax.patches] == [3.5, 4.0, 1.25]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["code", "English", "Chinese"]


def test_segmentation_figure_boxes_every_token_in_order():
    pieces = ["def", " greet", "(", "name", "):\n", "   ", " return"]
    fig = figures.segmentation_figure(pieces, width=12)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == [p.replace("\n", "\\n").replace(" ", "·") for p in pieces]
    rows = [round(t.get_position()[1] - 0.5) for t in fig.axes[0].texts]
    assert rows == sorted(rows) and rows[-1] >= 1  # wrapped onto more than one line
    assert fig.get_suptitle() == "7 tokens"


def test_data_uri_is_an_inline_png():
    import base64

    uri = figures.data_uri(figures.png_bytes(figures.bytes_per_token_figure({"a": 1.0})))
    assert uri.startswith("data:image/png;base64,")
    assert base64.b64decode(uri.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"


def test_panels_figure_draws_curves_bars_and_images():
    curves = {"a": ([1, 2, 3], [0.5, 0.25, 0.125]), "b": ([1, 2], [1.0, 2.0])}
    bars = {"left": [1.0, -2.0], "right": [0.5, 3.0]}
    image = [[0.1, 0.9], [0.7, 0.3]]
    fig = figures.panels_figure([
        dict(title="c", xlabel="x", ylabel="y", curves=curves, logy=True),
        dict(title="b", bars=bars),
        dict(title="i", image=image, labels=["p", "q"], values=True, vmin=0, vmax=1),
    ], title="three")  # fmt: skip
    c, b, i = fig.axes[:3]
    assert [a.get_title() for a in (c, b, i)] == ["c", "b", "i"]
    assert line(c, "a") == ([1, 2, 3], [0.5, 0.25, 0.125]) and line(c, "b") == ([1, 2], [1, 2])
    assert c.get_yscale() == "log"
    assert [p.get_height() for p in b.patches] == [1.0, -2.0, 0.5, 3.0]
    assert [t.get_text() for t in b.get_legend().get_texts()] == ["left", "right"]
    np.testing.assert_array_equal(i.get_images()[0].get_array(), image)
    assert [t.get_text() for t in i.get_xticklabels()] == ["p", "q"]
    assert sorted(t.get_text() for t in i.texts) == ["0.10", "0.30", "0.70", "0.90"]
    assert fig.get_suptitle() == "three"


def test_neuron_figure_marks_where_it_fires_and_its_threshold_line():
    table = {(0, 0): 0.0, (0, 1): 0.0, (1, 0): 0.0, (1, 1): 1.0}
    fig = figures.neuron_figure([1.0, 1.0], 1.5, table)
    ax = fig.axes[0]
    xs, ys = line(ax, "threshold")
    assert all(abs(x + y - 1.5) < 1e-12 for x, y in zip(xs, ys))  # w1 x1 + w2 x2 = threshold
    points = {tuple(c.get_offsets()[0]): c.get_facecolor()[0][:3] for c in ax.collections}
    fired = {p for p, color in points.items() if tuple(color) != (1.0, 1.0, 1.0)}
    assert fired == {(1.0, 1.0)} and len(points) == 4


def test_network_figure_draws_a_line_per_weight_coloured_by_sign():
    w1 = [[1.0, -1.0], [0.5, 0.0], [-0.5, 2.0]]  # 2 inputs -> 3 hidden
    w2 = [[1.0, 1.0, -1.0]]  # 3 hidden -> 1 output
    fig = figures.network_figure([w1, w2])
    ax = fig.axes[0]
    edges = ax.get_lines()
    assert len(edges) == 6 + 3
    weights = [v for w in (w1, w2) for row in w for v in row]
    for edge, v in zip(edges, weights):
        red, _, blue, _ = edge.get_color()
        assert (red > blue) if v > 0 else (blue > red) if v < 0 else abs(red - blue) < 0.05
    assert [len(c.get_offsets()) for c in ax.collections] == [2, 3, 1]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["input\n2", "hidden\n3", "output\n1"]


def test_docstring_examples():
    import doctest

    assert doctest.testmod(figures).failed == 0

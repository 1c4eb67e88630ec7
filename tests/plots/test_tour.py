"""docs/tour.md: every snippet runs with both backends, the Chinese tour carries the same code,
and every chapter's picture is drawn from its snippet and committed (small)."""

import importlib
import os
import re

import pytest

from ..scripts.helpers import ROOT

tour_figures = importlib.import_module("tour_figures")  # scripts/, put on sys.path by helpers

DOCS = os.path.join(ROOT, "docs")
TOUR, TOUR_ZH = os.path.join(DOCS, "tour.md"), os.path.join(DOCS, "tour.zh-CN.md")
CHAPTERS = tour_figures.chapters(TOUR)
_namespaces = {}


def code_blocks(path):
    with open(path, encoding="utf-8") as f:
        return re.findall(r"```python\n(.*?)```", f.read(), re.S)


def namespace(number, backend):
    """What chapter `number`'s snippet defines, run once per backend."""
    if (number, backend) not in _namespaces:
        code = next(c for n, c, _ in CHAPTERS if n == number)
        _namespaces[number, backend] = tour_figures.run_snippet(code, backend)
    return _namespaces[number, backend]


def test_the_tour_has_the_essays_fifteen_chapters_in_order():
    assert [n for n, _, _ in CHAPTERS] == list(range(1, 16))
    for _, code, _ in CHAPTERS:
        assert "import reference as m\n" in code, code[:80]


def test_both_tours_carry_the_same_code_and_pictures():
    assert code_blocks(TOUR) == code_blocks(TOUR_ZH)
    zh = tour_figures.chapters(TOUR_ZH)
    assert [(n, image) for n, _, image in zh] == [(n, image) for n, _, image in CHAPTERS]


@pytest.mark.parametrize("backend", ["reference", "fast"])
@pytest.mark.parametrize("number", [n for n, _, _ in CHAPTERS])
def test_snippet_runs(number, backend):
    namespace(number, backend)  # its asserts are the test


def test_the_backends_compute_the_same_numbers():
    """A few of the values the pictures draw, from each backend (fast in float32)."""
    for number, name in [(2, "curves"), (5, "analytic"), (9, "positions"), (10, "weights")]:
        ref, fast = namespace(number, "reference")[name], namespace(number, "fast")[name]
        if isinstance(ref, dict):
            ref, fast = list(ref.values()), list(fast.values())
        flat = [[], []]
        for out, value in zip(flat, (ref, fast)):
            stack = [value]
            while stack:
                v = stack.pop()
                if hasattr(v, "__len__"):
                    stack.extend(reversed(list(v)))
                else:
                    out.append(float(v))
        assert len(flat[0]) == len(flat[1]) > 0
        assert all(abs(a - b) <= 1e-5 + 1e-4 * abs(a) for a, b in zip(*flat)), number


@pytest.mark.parametrize("number", [n for n, _, _ in CHAPTERS])
def test_each_chapter_draws_its_committed_picture(number):
    pytest.importorskip("matplotlib", reason="needs the plots extra")
    image = next(i for n, _, i in CHAPTERS if n == number)
    path = os.path.join(DOCS, image)
    assert os.path.isfile(path), f"{image}: run python scripts/tour_figures.py"
    fig = tour_figures.draw(number, namespace(number, "reference"))
    drawn = [ax for ax in fig.axes if ax.get_lines() or ax.get_images() or ax.patches or ax.texts]
    assert drawn, f"chapter {number}: an empty figure"


def test_chapter_pictures_show_the_snippets_numbers():
    pytest.importorskip("matplotlib", reason="needs the plots extra")
    import numpy as np

    ns = namespace(2, "reference")
    ax = tour_figures.draw(2, ns).axes[0]
    assert {ln.get_label(): list(ln.get_ydata()) for ln in ax.get_lines()} == ns["curves"]
    ns = namespace(10, "reference")
    ax = tour_figures.draw(10, ns).axes[0]
    np.testing.assert_array_equal(ax.get_images()[0].get_array(), ns["weights"])
    ns = namespace(8, "reference")
    texts = [t.get_text() for t in tour_figures.draw(8, ns).axes[0].texts]
    assert texts == [p.replace(" ", "·") for p in ns["pieces"]]


def test_the_committed_pictures_are_small():
    sizes = {
        name: os.path.getsize(os.path.join(DOCS, "tour", name))
        for name in os.listdir(os.path.join(DOCS, "tour"))
    }
    assert all(name.endswith(".png") for name in sizes), sorted(sizes)
    assert sum(sizes.values()) < 400_000, sizes


def readme_section(path, heading):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return text.split(heading, 1)[1].split("\n## ", 1)[0]


def test_the_chinese_readme_follows_the_english_one():
    """The same quick-start commands (the test command as CI runs it) and a seed map row for
    every row of the English one, naming the same code."""
    en, zh = os.path.join(ROOT, "README.md"), os.path.join(ROOT, "README.zh-CN.md")
    with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as f:
        ci_test = next(line for line in f if line.startswith("python -m pip install -e"))
    for path, quick in ((en, "## Quick start"), (zh, "## 快速上手")):
        commands = re.search(r"```bash\n(.*?)```", readme_section(path, quick), re.S).group(1)
        assert commands.splitlines()[1] == ci_test.strip(), path

    def code_names(path, heading):
        rows = [r for r in readme_section(path, heading).splitlines() if r.startswith("| ")]
        return [re.findall(r"`([^`]+)`", r) for r in rows[1:]]  # below the header row

    assert code_names(zh, "## 概念对照表") == code_names(en, "## Seed map")


@pytest.mark.parametrize(
    "page", ["README.md", "README.zh-CN.md", "docs/tour.md", "docs/tour.zh-CN.md"]
)
def test_links_reach_their_files_and_headings(page):
    """Every relative link names a file that exists, and every #anchor a heading of its page
    (GitHub's rule: lower case, punctuation dropped, spaces as hyphens)."""
    path = os.path.join(ROOT, page)
    with open(path, encoding="utf-8") as f:
        text = f.read()

    def anchors(md):
        heads = re.findall(r"^#+ (.+)$", md, re.M)
        return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}

    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith(("http://", "https://")):
            continue
        file, _, anchor = target.partition("#")
        linked = os.path.normpath(os.path.join(os.path.dirname(path), file)) if file else path
        assert os.path.exists(linked), f"{page}: {target}"
        if anchor:
            with open(linked, encoding="utf-8") as f:
                assert anchor in anchors(f.read()), f"{page}: {target}"

"""The report opens in a real browser: headless Chromium loads each page from disk with no
console errors, and its screenshot shows the page (not a blank one).

Marked `browser`: a machine without Chromium runs the rest with `-m "not browser"`. CI installs
Debian's `chromium` (.ci/run) and runs these.
"""

import os
import re
import shutil
import subprocess

import pytest

from ..scripts.helpers import run

pytestmark = pytest.mark.browser

matplotlib_image = pytest.importorskip("matplotlib.image", reason="needs the plots extra")


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(
        "no Chromium on PATH: install it (apt-get install chromium) or deselect these tests "
        "with -m 'not browser'"
    )


def open_in_browser(page: str, screenshot: str) -> list[str]:
    """Load `page` in headless Chromium, save a screenshot; the console messages it logged."""
    r = subprocess.run(
        [
            chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--no-first-run", "--disable-dev-shm-usage", "--enable-logging=stderr", "--v=0",
            "--window-size=1000,1400", f"--screenshot={screenshot}",
            "file://" + os.path.abspath(page),
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    return [line for line in r.stderr.splitlines() if re.search(r":CONSOLE[:(]", line)]


def distinct_colours(png: str) -> int:
    pixels = matplotlib_image.imread(png)
    flat = (pixels[..., :3] * 255).round().astype("uint8").reshape(-1, 3)
    return len({tuple(p) for p in flat[:: max(1, len(flat) // 200_000)]})


@pytest.mark.parametrize("kind", ["gpt", "mlp"])
def test_report_opens_in_chromium_without_console_errors(kind, gpt_run, mlp_run, tmp_path):
    out_dir = (gpt_run if kind == "gpt" else mlp_run)[0]
    page = tmp_path / "report.html"
    extra = ["--attention", "def f(x):"] if kind == "gpt" else []
    r = run("report.py", str(out_dir), *extra, "--backend", "reference", "--out", str(page))
    assert r.returncode == 0, r.stderr
    shot = str(tmp_path / "shot.png")
    console = open_in_browser(str(page), shot)
    assert console == [], console
    # A blank or failed page is one or two colours; the report's text and plots are hundreds.
    assert distinct_colours(shot) > 100


def test_a_console_error_would_be_caught(tmp_path):
    """The check above can fail: a page whose script throws is reported."""
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><p>x</p><script>missing_function();</script>")
    console = open_in_browser(str(page), str(tmp_path / "bad.png"))
    assert any("missing_function" in line for line in console), console

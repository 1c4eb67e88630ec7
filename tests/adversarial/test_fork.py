"""fast survives fork(): a data loader's worker processes run kernels after the parent did.

Numba's GNU OpenMP layer kills such a child ("fork() called from a process already using GNU
OpenMP"); `fast` picks a fork-safe layer (fast/_threads.py). Each case runs in a fresh
interpreter (the layer is chosen once per process): the parent runs a GPT step, a child made by
each multiprocessing start method runs one, then the parent runs another.
"""

import json
import os
import subprocess
import sys

import pytest

from tests.adversarial.harness import ROOT

SCRIPT = r"""
import json, multiprocessing as mp, sys
sys.path.insert(0, {root!r})
{before}
import numpy as np
import fast
import fast.cpu
from fast.cpu import attention, elementwise, layers, optim, rng
for k in fast.cpu.KERNELS:
    k.serial_below = 0  # threads for every launch, however small (what this test is about)

def step(_=None):
    g = fast.GPT(fast.GPTConfig(vocab_size=32, block_size=8, n_layer=1, n_head=2, n_embd=16))
    _, loss = g(np.array([[1, 2, 3, 4]] * 4), np.array([[2, 3, 4, 5]] * 4))
    g.backward()
    return float(loss), float(np.abs(g.lm_head_weight.grad).sum())

if __name__ == "__main__":
    import numba
    first = step()
    ctx = mp.get_context({method!r})
    with ctx.Pool(2) as pool:
        children = pool.map(step, range(2))
    after = step()
    print(json.dumps({{"layer": numba.threading_layer(), "first": first,
                      "children": children, "after": after}}))
"""


def run(tmp_path, method: str, before: str = "") -> dict:
    """The script as a file: spawn and forkserver children import `step` from it."""
    script = tmp_path / "fork_case.py"
    script.write_text(SCRIPT.format(root=ROOT, method=method, before=before))
    child_env = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    proc = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=child_env,
    )
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-1500:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_children_run_kernels_after_the_parent_did(tmp_path, method):
    out = run(tmp_path, method)
    assert out["layer"] != "omp"
    for got in out["children"] + [out["after"]]:
        assert got == pytest.approx(out["first"], rel=1e-6)


def test_the_layer_is_chosen_even_when_numba_was_imported_first(tmp_path):
    out = run(tmp_path, "fork", before="import numba")
    assert out["layer"] != "omp"


def test_a_users_threading_layer_is_respected():
    code = (
        f"import sys, os; sys.path.insert(0, {ROOT!r}); import fast; "
        "print(os.environ['NUMBA_THREADING_LAYER'])"
    )
    env = {**os.environ, "NUMBA_THREADING_LAYER": "workqueue"}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.stdout.strip() == "workqueue"
    env.pop("NUMBA_THREADING_LAYER")
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.stdout.strip() == "forksafe"


def test_a_user_who_asks_for_tbb_gets_it_when_the_tbb_package_is_installed():
    """NUMBA_THREADING_LAYER=tbb set by the user: `fast` still loads the tbb wheel's library from
    the environment (a venv's loader would not find it), so Numba runs on TBB instead of failing
    with "Intel TBB is required"."""
    from importlib import metadata

    try:
        metadata.distribution("tbb")
    except metadata.PackageNotFoundError:
        expected = "workqueue"  # no TBB (not x86-64): asking for it must fail clearly, not crash
    else:
        expected = "tbb"
    code = (
        f"import sys; sys.path.insert(0, {ROOT!r}); import numpy as np, numba, fast; "
        "fast.sigmoid(np.ones(1 << 16, np.float32)); "  # over the threshold: threads
        "g = fast.GPT(fast.GPTConfig(vocab_size=16, block_size=4, n_layer=1, n_head=1, "
        "n_embd=4)); g([[1, 2]], [[2, 3]]); g.backward(); print(numba.threading_layer())"
    )
    env = {**os.environ, "NUMBA_THREADING_LAYER": "tbb"}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    if expected == "tbb":
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.strip().splitlines()[-1] == "tbb"
    else:
        assert proc.returncode != 0 and "TBB" in proc.stderr

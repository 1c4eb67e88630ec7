"""Data-parallel training under `mpiexec -n 2`: the same losses and weights as one process, a
stop and resume in the middle, and failures that end the job instead of hanging it.

These start real MPI jobs (the `mpi` extra: mpi4py and MPICH's mpiexec), about 1 minute in all.
"""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conformance.tolerance import assert_close, float32_tol

from ..scripts.helpers import ROOT, SCRIPTS, losses

pytestmark = pytest.mark.mpi

DRIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dp_driver.py")


def mpiexec():
    """The mpiexec beside this Python (the mpi extra installs it there), else the one on PATH."""
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if os.path.isfile(here):
        return here
    import shutil

    found = shutil.which("mpiexec")
    assert found, 'no mpiexec: install the mpi extra (pip install -e ".[mpi]")'
    return found


def mpirun(n, *argv, timeout=240, env=None):
    return subprocess.run(
        [mpiexec(), "-n", str(n), sys.executable, *argv],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env,
    )  # fmt: skip


def single(*argv, timeout=240, env=None):
    return subprocess.run(
        [sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env
    )


# -- the library: DataParallel in float64 ---------------------------------------------------


@pytest.mark.parametrize("kind", ["gpt", "mlp", "bert"])
def test_two_ranks_give_one_process_numbers_in_float64(tmp_path, kind):
    """GPT (AdamW in two groups, clipping), MLP through `fit` (whose last batch of an epoch
    splits 3/2 over the ranks), BERT (the ranks hold different numbers of masked targets)."""
    one, two = tmp_path / "one.npz", tmp_path / "two.npz"
    r = single(DRIVER, kind, "float64", str(one))
    assert r.returncode == 0, r.stderr
    r = mpirun(2, DRIVER, kind, "float64", str(two))
    assert r.returncode == 0, r.stderr
    a, b = np.load(one), np.load(two)
    assert sorted(a.files) == sorted(b.files)
    assert_close(b["losses"], a["losses"], rtol=1e-12, atol=0.0, what=f"{kind} losses")
    for name in a.files:
        assert_close(b[name], a[name], rtol=1e-10, atol=1e-13, what=f"{kind} {name}")


def test_two_ranks_give_one_process_numbers_in_float32(tmp_path):
    one, two = tmp_path / "one.npz", tmp_path / "two.npz"
    assert single(DRIVER, "gpt", "float32", str(one)).returncode == 0
    r = mpirun(2, DRIVER, "gpt", "float32", str(two))
    assert r.returncode == 0, r.stderr
    a, b = np.load(one), np.load(two)
    # the longest sums are the batch's rows (4 x 8) times a layer's width (12), 2 layers deep,
    # and six steps stack them
    tol = float32_tol(4 * 8 * 12, depth=2 * 6)
    assert_close(b["losses"], a["losses"], rtol=tol, atol=0.0, what="losses")
    for name in a.files:
        assert_close(b[name], a[name], rtol=tol, atol=tol, what=name)


def test_gradients_staged_through_the_host_on_cuda(tmp_path):
    """The CUDA backend's packed buffers are DeviceArrays: the all-reduce copies them back and up
    (run on Numba's CUDA simulator here)."""
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    one, two = tmp_path / "one.npz", tmp_path / "two.npz"
    r = single(DRIVER, "mlp-cuda", "float64", str(one), env=env)
    assert r.returncode == 0, r.stderr
    r = mpirun(2, DRIVER, "mlp-cuda", "float64", str(two), env=env)
    assert r.returncode == 0, r.stderr
    a, b = np.load(one), np.load(two)
    for name in a.files:
        assert_close(b[name], a[name], rtol=1e-10, atol=1e-13, what=name)


# -- the scripts: losses, a stop and a resume, errors --------------------------------------

GPT_TINY = [
    "--backend", "fast", "--text-bytes", "20000", "--vocab-size", "256", "--block-size", "16",
    "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--batch-size", "4", "--steps", "400",
    "--log-interval", "1", "--eval-interval", "100", "--eval-batches", "1", "--sample-tokens", "4",
]  # fmt: skip
MLP_ARGS = ["--backend", "fast", "--batch-size", "32", "--epochs", "3", "--log-interval", "1"]


def stop_when(n, script, args, when, timeout=240):
    """Start `mpiexec -n n script args`, send SIGTERM to mpiexec (which passes it to every
    rank) once rank 0 prints a line starting with `when`; (rc, stdout, stderr)."""
    proc = subprocess.Popen(
        [mpiexec(), "-n", str(n), sys.executable, os.path.join(SCRIPTS, script), *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines, sent = [], False
    for line in proc.stdout:
        lines.append(line)
        if not sent and line.startswith(when):
            proc.send_signal(signal.SIGTERM)
            sent = True
    rc = proc.wait(timeout=timeout)
    assert sent, "".join(lines) + proc.stderr.read()
    return rc, "".join(lines), proc.stderr.read()


@pytest.mark.parametrize(
    "script, args, when, total, val_key",
    [
        ("train_gpt.py", GPT_TINY, "step    40/", 400, "val_loss"),
        ("train_mlp.py", MLP_ARGS, "epoch   1", 135, "val_loss"),
    ],
    ids=["gpt", "mlp"],
)
def test_two_ranks_stopped_and_resumed_match_one_process(
    tmp_path, script, args, when, total, val_key
):
    """One process runs whole; two ranks are stopped by SIGTERM part-way and resumed (both
    ranks from rank 0's checkpoint): every logged loss agrees, each step logged once."""
    whole, part = str(tmp_path / "whole"), str(tmp_path / "part")
    r = single(os.path.join(SCRIPTS, script), *args, "--out-dir", whole)
    assert r.returncode == 0, r.stderr
    rc, out, err = stop_when(2, script, [*args, "--out-dir", part], when)
    assert rc == 0, err
    assert "Traceback" not in err
    assert out.count("stopped at step") == 1, out  # rank 0 alone prints
    stopped = int(out.split("stopped at step ")[1].split(";")[0])
    assert 0 < stopped < total
    r = mpirun(2, os.path.join(SCRIPTS, script), "--out-dir", part, "--resume")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count(f"resuming from {part}") == 1
    (a, va), (b, vb) = losses(whole, val_key), losses(part, val_key)
    assert sorted(a) == sorted(b) and len(a) >= total // 10
    steps = sorted(a)
    # float32 training: the ranks' sums split the batch, so they round differently; the
    # difference stays at rounding level (measured about 1e-9 relative over 400 GPT steps)
    tol = float32_tol(32 * 16, depth=4)
    assert_close([b[s] for s in steps], [a[s] for s in steps], rtol=tol, atol=0.0, what="loss")
    assert sorted(va) == sorted(vb)
    assert_close([vb[s] for s in sorted(va)], [va[s] for s in sorted(va)], rtol=tol, what="val")


def test_bert_trains_on_two_ranks(tmp_path):
    args = ["--backend", "fast", "--text-bytes", "20000", "--vocab-size", "256", "--steps", "12"]
    args += ["--log-every", "4", "--eval-every", "6", "--eval-batches", "1", "--batch-size", "4"]
    whole, part = str(tmp_path / "one"), str(tmp_path / "two")
    r = single(os.path.join(SCRIPTS, "train_bert.py"), *args, "--out-dir", whole)
    assert r.returncode == 0, r.stderr
    r = mpirun(2, os.path.join(SCRIPTS, "train_bert.py"), *args, "--out-dir", part)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("trained to step 12") == 1
    (a, _), (b, _) = losses(whole), losses(part)
    assert sorted(a) == sorted(b)
    tol = float32_tol(4 * 32 * 32, depth=4)
    assert_close([b[s] for s in sorted(a)], [a[s] for s in sorted(a)], rtol=tol, what="loss")


def test_a_rank_that_raises_ends_the_job_with_its_number():
    t0 = time.monotonic()
    r = mpirun(2, DRIVER, "fail-on-rank-1", "float64", os.devnull, timeout=120)
    assert r.returncode != 0
    assert "error: rank 1 of 2 failed: RuntimeError: an injected failure on rank 1" in r.stderr
    assert time.monotonic() - t0 < 60


def rank_pids(marker):
    """{rank: pid} of the processes whose command line holds `marker`, from /proc."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().decode(errors="replace")
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = dict(
                    item.split("=", 1) for item in f.read().decode(errors="replace").split("\0")
                    if "=" in item
                )  # fmt: skip
        except OSError:
            continue
        if marker in cmd and "PMI_RANK" in env and os.path.basename(sys.executable) in cmd:
            found[int(env["PMI_RANK"])] = int(pid)
    return found


def test_a_killed_rank_ends_the_job_and_the_checkpoint_resumes(tmp_path):
    """SIGKILL one rank mid-run: mpiexec ends the others (no hang), and the run resumes from
    its last checkpoint to the end."""
    part = str(tmp_path / "killed")
    args = [*GPT_TINY, "--steps", "200", "--eval-interval", "20", "--out-dir", part]
    proc = subprocess.Popen(
        [mpiexec(), "-n", "2", sys.executable, os.path.join(SCRIPTS, "train_gpt.py"), *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    for line in proc.stdout:
        if line.startswith("step    45/"):
            pids = rank_pids(part)
            assert sorted(pids) == [0, 1], pids
            os.kill(pids[1], signal.SIGKILL)
            break
    t0 = time.monotonic()
    proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert time.monotonic() - t0 < 30
    r = mpirun(2, os.path.join(SCRIPTS, "train_gpt.py"), "--out-dir", part, "--resume")
    assert r.returncode == 0, r.stderr
    assert "resuming from" in r.stdout and "at step 40" in r.stdout
    (a, _) = losses(part)
    assert sorted(a) == list(range(1, 201))


def one_error_line(r, expected):
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], r.stderr


def test_a_batch_that_does_not_divide_fails_on_every_rank(tmp_path):
    args = [*GPT_TINY, "--batch-size", "5", "--out-dir", str(tmp_path / "run")]
    r = mpirun(2, os.path.join(SCRIPTS, "train_gpt.py"), *args, timeout=60)
    one_error_line(r, "--batch-size 5 is the global batch, split over 2 processes")
    r = mpirun(2, os.path.join(SCRIPTS, "train_mlp.py"), "--backend", "fast", "--batch-size", "7")
    one_error_line(r, "must divide by 2 (try 6)")


def test_ranks_with_different_arguments_refuse_to_start(tmp_path):
    script = os.path.join(SCRIPTS, "train_gpt.py")
    out = ["--out-dir", str(tmp_path / "run")]
    r = subprocess.run(
        [mpiexec(), "-n", "1", sys.executable, script, *GPT_TINY, "--lr", "0.01", *out, ":",
         "-n", "1", sys.executable, script, *GPT_TINY, "--lr", "0.02", *out],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    one_error_line(r, "lr: 0.01 on rank 0, 0.02 on rank 1")


def test_what_cannot_run_data_parallel_says_so(tmp_path):
    r = mpirun(2, os.path.join(SCRIPTS, "train_gpt.py"), "--backend", "reference", timeout=60)
    one_error_line(r, "training on several processes runs on the fast backend")
    r = mpirun(2, os.path.join(SCRIPTS, "train_seq2seq.py"), "--backend", "fast", timeout=60)
    one_error_line(r, "trains in one process; run it without mpiexec")


def test_without_mpi4py_the_error_names_the_extra():
    """A process an MPI launcher started, where mpi4py cannot be imported."""
    code = (
        "import sys; sys.modules['mpi4py'] = None\n"
        "from fast import distributed\n"
        "try:\n    distributed.world()\n"
        "except distributed.MPIUnavailableError as e:\n    print(e)\n"
    )
    env = {**os.environ, "PMI_RANK": "0", "PMI_SIZE": "2"}
    r = single("-c", code, env=env)
    assert 'install the mpi extra (pip install "model-archaeology[mpi]"' in r.stdout, r.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_", "PMIX_"))}
    code = "from fast import distributed; w = distributed.world(); print(w.rank, w.size, w.comm)"
    r = single("-c", "import sys; sys.modules['mpi4py'] = None\n" + code, env=env)
    assert r.stdout.split() == ["0", "1", "None"], r.stderr  # no launcher: a world of one

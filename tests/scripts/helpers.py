"""Running the training scripts as a user does: in a child process, from the repository root,
with a signal sent part-way; and reading back what a run logged."""

import os
import signal
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPTS = os.path.join(ROOT, "scripts")
if SCRIPTS not in sys.path:
    sys.path.insert(0, SCRIPTS)

import common  # noqa: E402


def command(script, *args):
    return [sys.executable, os.path.join(SCRIPTS, script), *args]


def run(script, *args, timeout=300):
    return subprocess.run(
        command(script, *args), cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def interrupt(script, args, when, sig=signal.SIGTERM, timeout=300):
    """Start the script, send `sig` once a stdout line starts with `when`; (rc, stdout, stderr)."""
    proc = subprocess.Popen(
        command(script, *args), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    lines, sent = [], False
    for line in proc.stdout:
        lines.append(line)
        if not sent and line.startswith(when):
            proc.send_signal(sig)
            sent = True
    rc = proc.wait(timeout=timeout)
    assert sent, "".join(lines) + proc.stderr.read()
    return rc, "".join(lines), proc.stderr.read()


def losses(out_dir, val_key="val_loss"):
    """{step: loss} and {step: validation score} from a run's metrics.jsonl."""
    records = common.read_metrics(out_dir)
    steps = [r["step"] for r in records if "loss" in r]
    assert len(steps) == len(set(steps)), "a step logged twice"
    return (
        {r["step"]: r["loss"] for r in records if "loss" in r},
        {r["step"]: r[val_key] for r in records if val_key in r},
    )


def check_sigterm_then_resume(tmp_path, script, args, when, total, val_key="val_loss"):
    """Run `script` whole, then again stopped by SIGTERM once a stdout line starts with `when`
    and resumed: the second run's every logged loss (and validation score) equals the first's."""
    whole, part = str(tmp_path / "whole"), str(tmp_path / "part")
    r = run(script, *args, "--out-dir", whole)
    assert r.returncode == 0, r.stderr
    rc, out, err = interrupt(script, [*args, "--out-dir", part], when)
    assert rc == 0, err
    assert "SIGTERM: finishing this step" in err and "Traceback" not in err
    assert f"resume with: python scripts/{script} --out-dir {part} --resume" in out
    stopped = int(out.split("stopped at step ")[1].split(";")[0])
    assert stopped < total, "the run ended before the signal arrived: nothing was resumed"
    assert max(losses(part, val_key)[0]) <= stopped
    r = run(script, "--out-dir", part, "--resume")
    assert r.returncode == 0, r.stderr
    assert f"resuming from {part}" in r.stdout
    (a, va), (b, vb) = losses(whole, val_key), losses(part, val_key)
    assert len(a) == total and a == b  # every step's loss, exactly
    assert va == vb and len(va) > 1
    return whole, part


def assert_one_error_line(script, args, expected):
    """The script exits with status 2 and one `error:` stderr line that contains `expected`."""
    r = run(script, *args)
    lines = r.stderr.splitlines()
    assert r.returncode == 2, (script, args, r.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), (script, args, r.stderr)
    assert expected in lines[0], (script, args, lines[0])

"""Each contender of a benchmark in its own process, taking turns: fair timings across libraries.

Two libraries in one process share more than the machine: their thread pools. `fast` asks
OpenMP for passive waiting before PyTorch starts its pool (slowing PyTorch's threads), and
PyTorch's spinning threads, imported first, starve Numba's. So a comparison here starts one
server process per contender, with the environment this script was started with (nothing a
library set in the parent leaks into it), lets each build its model and warm up on its own (one
at a time), then asks them in turn, round after round, to time a few steps, rotating who goes
first. Only one contender computes at any moment; a round times each for at least half a second
of steps (steady state, not the wake-up after another's turn); each figure is a median over the
rounds, reported with its spread (min-max).

    python scripts/bench_isolated.py serve gpt torch '[512, 64, 2, 4, 64, 16]'   # a server

The servers speak one JSON object per line on stdin/stdout: the first line they write says
they are ready (what one step does: units, FLOPs per unit, warm-up steps taken), then each
`{"calls": k}` they read is answered with `{"seconds": s}`, the mean seconds per call over k calls.
The orchestrator (`measure`) imports neither `fast` nor `torch`.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CLEAN_ENV = dict(os.environ)  # taken before any library of this process changes it


class Contender:
    """One server process: started, warmed up, then timed on request."""

    def __init__(self, section: str, name: str, shape, timeout: float = 1800.0):
        self.name = name
        cmd = [sys.executable, os.path.abspath(__file__), "serve", section, name, json.dumps(shape)]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=CLEAN_ENV, cwd=os.path.dirname(HERE),
        )  # fmt: skip
        self.timeout = timeout
        self.info = self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read().strip().splitlines()
            raise RuntimeError(f"{self.name} stopped: {err[-1] if err else 'no output'}")
        return json.loads(line)

    def time(self, calls: int) -> float:
        self.proc.stdin.write(json.dumps({"calls": calls}) + "\n")
        self.proc.stdin.flush()
        return self._read()["seconds"]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)


ROUND_SECONDS = 0.5  # a round times at least this long a run of steps (steady state)


def calls_per_round(info: dict, calls: int, min_seconds: float = ROUND_SECONDS) -> int:
    """At least `calls`, and enough steps (by the warm-up step's time) to fill `min_seconds`:
    a 20 ms step timed twice after another process's turn measures the wake-up more than the
    training loop."""
    step = info.get("step_seconds")
    if not step:
        return calls
    return max(calls, math.ceil(min_seconds / step))


def measure(section: str, shape, names: list[str], rounds: int, calls: int) -> dict:
    """{name: {"seconds": [per round], "info": {...}}} for the contenders that start (a
    contender that cannot, e.g. a library not installed, is {"skipped": reason}). Each round
    times each contender over `calls_per_round` calls."""
    servers, out = [], {}
    for name in names:  # one at a time: each warms up on a quiet machine
        try:
            servers.append(Contender(section, name, shape))
        except (RuntimeError, OSError, ValueError) as e:
            out[name] = {"skipped": str(e)}
    try:
        for r in range(rounds):
            turn = servers[r % len(servers) :] + servers[: r % len(servers)] if servers else []
            for s in turn:
                out.setdefault(s.name, {"seconds": [], "info": s.info})["seconds"].append(
                    s.time(calls_per_round(s.info, calls))
                )
                time.sleep(0.2)  # let the last one's threads go idle
    finally:
        for s in servers:
            s.close()
    return {name: out[name] for name in names if name in out}


def summary(seconds: list[float]) -> tuple[float, float, float]:
    """(median, min, max) seconds."""
    return statistics.median(seconds), min(seconds), max(seconds)


def serve(section: str, name: str, shape) -> None:
    sys.path.insert(0, HERE)
    if name == "fast":
        import fast  # noqa: F401  before numpy, as the scripts do (its BLAS settings, fast/_threads.py)
    import bench_models

    step, info = bench_models.build(section, name, shape)
    info["step_seconds"] = None
    for _ in range(info.get("warmup", 2)):  # compile, fill caches
        t0 = time.perf_counter()
        step()
        info["step_seconds"] = time.perf_counter() - t0  # the last warm-up step's time
    print(json.dumps(info), flush=True)
    for line in sys.stdin:
        calls = json.loads(line)["calls"]
        t0 = time.perf_counter()
        for _ in range(calls):
            step()
        print(json.dumps({"seconds": (time.perf_counter() - t0) / calls}), flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 5 or sys.argv[1] != "serve":
        print("usage: bench_isolated.py serve SECTION CONTENDER SHAPE_JSON", file=sys.stderr)
        raise SystemExit(2)
    serve(sys.argv[2], sys.argv[3], json.loads(sys.argv[4]))

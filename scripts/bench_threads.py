"""Numba's threading layers compared on fast's two main jobs: which one should `fast` run on?

    python scripts/bench_threads.py                      # omp, tbb, workqueue, 5 rounds
    python scripts/bench_threads.py --rounds 9 --layers omp workqueue

Each layer runs in its own worker process (Numba picks its layer once per process), started with
NUMBA_THREADING_LAYER set and kept warm. The rounds interleave: in each round every worker in
turn times one GPT forward+backward (V=1024, T=128, L=4, H=4, C=128, B=16) and one epoch of the
784-16-16-10 digit network (Adam, batch 32, 10,000 synthetic images), so a change in the
machine's load hits every layer alike. Prints the median seconds per job and layer. A layer
that cannot load (no TBB library, say) is reported and skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.dirname(os.path.abspath(__file__)) not in sys.path:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402  (one-line argument errors)

LAYERS = ("omp", "tbb", "workqueue")
JOBS = ("gpt", "mlp")
GPT_SHAPE = (1024, 128, 4, 4, 128, 16)  # V, T, L, H, C, B


def worker() -> None:
    """Read job names from stdin, answer each with one JSON line: its seconds."""
    sys.path.insert(0, ROOT)
    import time

    import numba
    import numpy as np

    import fast

    V, T, L, H, C, B = GPT_SHAPE
    rng = np.random.default_rng(0)
    gpt = fast.GPT(fast.GPTConfig(vocab_size=V, block_size=T, n_layer=L, n_head=H, n_embd=C))
    idx, tgt = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))
    x = rng.random((10_000, 784), dtype=np.float32)
    y = rng.integers(0, 10, 10_000)
    mlp = fast.MLP([784, 16, 16, 10], activation="sigmoid")
    opt = fast.Adam(mlp.parameters(), lr=1e-3)

    def gpt_step():
        gpt(idx, tgt)
        gpt.zero_grad()
        gpt.backward()

    def mlp_epoch():
        fast.fit(mlp, opt, x, y, batch_size=32, epochs=1)

    jobs = {"gpt": gpt_step, "mlp": mlp_epoch}
    try:
        for job in jobs.values():  # compile, and load the threading layer
            job()
        ready = {"layer": numba.threading_layer(), "threads": numba.get_num_threads()}
    except Exception as e:  # a layer that cannot load: say so, and stop
        ready = {"error": f"{type(e).__name__}: {e}"}
    print(json.dumps(ready), flush=True)
    if "error" in ready:
        return
    for line in sys.stdin:
        start = time.perf_counter()
        jobs[line.strip()]()
        print(json.dumps(time.perf_counter() - start), flush=True)


def start(layer: str) -> tuple[subprocess.Popen, dict]:
    env = {**os.environ, "NUMBA_THREADING_LAYER": layer}
    proc = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    line = proc.stdout.readline()
    return proc, (json.loads(line) if line else {"error": f"worker exited {proc.wait()}"})


def main(argv: list[str] | None = None) -> int:
    p = common.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--layers", nargs="+", choices=LAYERS, default=list(LAYERS))
    p.add_argument("--rounds", type=common.positive_int, default=5)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker()
        return 0
    load = os.getloadavg()[0]
    workers = {}
    for layer in args.layers:
        proc, ready = start(layer)
        if "error" in ready:
            print(f"{layer}: skipped ({ready['error']})")
            proc.wait()
            continue
        print(f"{layer}: running as {ready['layer']} with {ready['threads']} threads")
        workers[layer] = proc
    times = {layer: {job: [] for job in JOBS} for layer in workers}
    for _ in range(args.rounds):
        for job in JOBS:
            for layer, proc in workers.items():
                proc.stdin.write(job + "\n")
                proc.stdin.flush()
                times[layer][job].append(json.loads(proc.stdout.readline()))
    for proc in workers.values():
        proc.stdin.close()
        proc.wait()
    V, T, L, H, C, B = GPT_SHAPE
    print(
        f"\nmedian seconds over {args.rounds} interleaved rounds (load average {load:.1f} at "
        f"start, {os.cpu_count()} cores)\n"
    )
    print(f"| layer | GPT fwd+bwd (V={V}, T={T}, L={L}, H={H}, C={C}, B={B}) | digit epoch |")
    print("|---|---|---|")
    for layer, jobs in times.items():
        gpt, mlp = (statistics.median(jobs[job]) for job in JOBS)
        print(f"| {layer} | {gpt:.3f} | {mlp:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(common.cli(main))

"""Data-parallel training measured: 1 process x T threads against N processes x T/N threads.

    python scripts/bench_dp.py                      # the comparison (starts mpiexec itself)
    python scripts/bench_dp.py --rounds 5 --steps 8
    mpiexec -n 2 python scripts/bench_dp.py allreduce   # MPI_Allreduce latency and bandwidth

The comparison runs each contender in its own processes, alternating them round by round, and
reports the median over rounds of the GPT training tokens/s at the benchmark's three shapes
(`scripts/bench_models.py`), with the all-reduce's share of each step. `allreduce` times the
gradient all-reduce alone from 8 bytes to 64 MB (bus bandwidth = 2 (N-1)/N x bytes / time, the
traffic each rank sends in a ring all-reduce). The machine is printed with the figures.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import common  # noqa: E402  (one-line argument errors; puts the repository root on sys.path)


def step_figures(steps: int, warmup: int) -> list[dict]:
    """In this process (one rank of a job, or alone): per shape, seconds per step and the
    seconds of it spent in the gradient all-reduce (rank 0's view)."""
    import bench_models
    import numpy as np

    import fast
    from fast import distributed

    world = distributed.world()
    out = []
    for shape, _ in bench_models.GPT_SHAPES:
        V, T, L, H, C, B = shape
        config = fast.GPTConfig(vocab_size=V, block_size=T, n_layer=L, n_head=H, n_embd=C)
        model = fast.GPT(config)
        opt = fast.AdamW(model.parameters(), lr=1e-4)
        dp = distributed.DataParallel(model, opt, world)
        reduce_seconds = [0.0]
        average = world.average_gradients

        def timed_average(*a, _average=average, _spent=reduce_seconds):
            t0 = time.perf_counter()
            _average(*a)
            _spent[0] += time.perf_counter() - t0

        world.average_gradients = timed_average
        rng = np.random.default_rng(0)
        x = rng.integers(0, V, size=(B, T))
        y = rng.integers(0, V, size=(B, T))
        for _ in range(warmup):
            dp(x, y)
            dp.zero_grad()
            dp.backward()
            opt.step()
        world.barrier()
        reduce_seconds[0] = 0.0
        t0 = time.perf_counter()
        for _ in range(steps):
            dp(x, y)
            dp.zero_grad()
            dp.backward()
            opt.step()
        world.barrier()
        seconds = (time.perf_counter() - t0) / steps
        world.average_gradients = average
        out.append(
            dict(
                shape=list(shape),
                parameters=model.num_parameters(),
                step_seconds=seconds,
                tokens_per_second=B * T / seconds,
                flops_per_second=model.flops_per_token() * B * T / seconds,
                allreduce_seconds=reduce_seconds[0] / steps,
            )
        )
    return out if world.is_root else []


def allreduce_figures(repeats: int) -> list[dict]:
    """MPI_Allreduce (in place, sum, float32) of 8 B .. 64 MB: median seconds, bus bandwidth."""
    import numpy as np

    from fast import distributed

    world = distributed.world(require=True)
    rows = []
    for exponent in range(3, 27, 2):
        nbytes = 2**exponent
        buf = np.ones(max(1, nbytes // 4), dtype=np.float32)
        times = []
        for _ in range(max(3, repeats)):
            world.barrier()
            t0 = time.perf_counter()
            world.all_reduce(buf)
            times.append(time.perf_counter() - t0)
        t = statistics.median(times)
        n = world.size
        rows.append(
            dict(bytes=buf.nbytes, seconds=t, bus_gb_s=2 * (n - 1) / n * buf.nbytes / t / 1e9)
        )
    return rows if world.is_root else []


# The projection's network: link bandwidth (bytes/s) and per-message latency (seconds, assumed:
# typical of TCP over 10 GbE and of RDMA over 100 Gbit/s InfiniBand; not measured here).
NETWORKS = {"10 Gbit/s": (10e9 / 8, 25e-6), "100 Gbit/s": (100e9 / 8, 5e-6)}
NODES = (2, 4, 8, 16, 32, 64)


def ring_allreduce_seconds(n: int, nbytes: float, bandwidth: float, latency: float) -> float:
    """Ring all-reduce of `nbytes` over n nodes: 2 (n-1) messages in sequence, each node
    sending and receiving 2 (n-1)/n of the buffer: 2 (n-1) latency + 2 (n-1)/n nbytes / bw."""
    return 2 * (n - 1) * latency + 2 * (n - 1) / n * nbytes / bandwidth


def project(one: list[dict], local_bus: float) -> None:
    """Tokens/s and scaling efficiency on 2..64 nodes like this one, from the measured one-process
    step (no overlap of communication and compute, as fast does it: t_N = t_1 + all-reduce).
    The bandwidth is the smaller of the link's and the all-reduce bus bandwidth measured here
    (the reduction itself runs on the node's cores)."""
    import bench

    header = ["shape", "network", *[f"{n} nodes: tok/s (eff.)" for n in NODES]]
    rows = []
    for r in one:
        nbytes = 4 * r["parameters"]  # float32 gradients
        t1, tokens = r["step_seconds"], r["tokens_per_second"] * r["step_seconds"]
        for name, (bw, latency) in NETWORKS.items():
            cells = []
            for n in NODES:
                t = t1 + ring_allreduce_seconds(n, nbytes, min(bw, local_bus), latency)
                cells.append(f"{n * tokens / t:,.0f} ({t1 / t:.0%})")
            rows.append([str(tuple(r["shape"])), name, *cells])
    bench.print_table("projection: weak scaling, per-node batch as measured", header, rows)
    flops = max(r["flops_per_second"] for r in one)
    print(
        f"\ncommunication under 10% of a step needs, per node and step, more than "
        f"12 F (n-1)/n / bw tokens (F = {flops / 1e9:.1f} GFLOP/s measured, the bandwidth "
        "as above), whatever the model size (compute and gradient bytes both grow with it):"
    )
    for name, (bw, _) in NETWORKS.items():
        print(
            f"  {name}: more than {12 * flops / min(bw, local_bus):,.0f} tokens per node per step"
        )


def run_contender(cmd: list[str], env: dict) -> list[dict]:
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    if r.returncode != 0:
        common.fail(f"{' '.join(cmd[:4])} ... failed: {r.stderr.strip().splitlines()[-1:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def compare(args) -> None:
    import bench
    import bench_models

    from fast.distributed import INSTALL_HINT

    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if not os.path.isfile(mpiexec):
        common.fail(f"no mpiexec beside {sys.executable}: {INSTALL_HINT}")
    cores = os.cpu_count() or 1
    n = args.processes
    base = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    me = [os.path.abspath(__file__), "steps", "--steps", str(args.steps)]
    contenders = {
        f"1 process x {cores} threads": (
            [sys.executable, *me],
            {**base, "NUMBA_NUM_THREADS": str(cores), "OPENBLAS_NUM_THREADS": str(cores)},
        ),
        f"{n} processes x {max(1, cores // n)} thread(s)": (
            [mpiexec, "-n", str(n), sys.executable, *me],
            base,  # fast gives each rank its share of the cores
        ),
    }
    print(f"== data-parallel GPT training ==\n{bench.machine()}")
    results = {name: [] for name in contenders}
    for _ in range(args.rounds):  # alternate the contenders round by round
        for name, (cmd, env) in contenders.items():
            results[name].append(run_contender(cmd, env))
    header = ["shape (V, T, L, H, C, B)", "parameters"]
    rows = []
    for i, (shape, _) in enumerate(bench_models.GPT_SHAPES):
        row = [str(tuple(shape)), f"{results[next(iter(results))][0][i]['parameters']:,}"]
        for name in contenders:
            runs = [r[i] for r in results[name]]
            tps = [r["tokens_per_second"] for r in runs]
            share = statistics.median(r["allreduce_seconds"] / r["step_seconds"] for r in runs)
            row.append(f"{statistics.median(tps):,.0f} ({min(tps):,.0f}-{max(tps):,.0f})")
            row.append(f"{share:.1%}")
        rows.append(row)
    for name in contenders:
        header += [f"{name}: tokens/s (range)", "all-reduce share"]
    bench.print_table(
        f"median of {args.rounds} alternated rounds, {args.steps} timed steps", header, rows
    )
    one_name = next(iter(contenders))
    medians = []
    for i in range(len(bench_models.GPT_SHAPES)):
        runs = sorted((r[i] for r in results[one_name]), key=lambda r: r["step_seconds"])
        medians.append(runs[len(runs) // 2])
    reduce_run = subprocess.run(
        [mpiexec, "-n", str(n), sys.executable, os.path.abspath(__file__), "allreduce"],
        capture_output=True, text=True, env=base, timeout=600,
    )  # fmt: skip
    print(f"\nMPI_Allreduce, {n} processes on this machine (float32, in place):")
    print(reduce_run.stdout.rstrip())
    local_bus = max(float(line.split()[-2]) for line in reduce_run.stdout.splitlines())
    project(medians, local_bus * 1e9)


def main(argv=None) -> int:
    p = common.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", nargs="?", default="compare", choices=["compare", "steps", "allreduce"])
    p.add_argument("--rounds", type=common.positive_int, default=3)
    p.add_argument("--steps", type=common.positive_int, default=5, help="timed steps per shape")
    p.add_argument("--processes", type=common.positive_int, default=2)
    args = p.parse_args(argv)
    if args.what == "steps":
        import fast  # noqa: F401  (first: each rank's share of the cores, before numpy's BLAS)

        figures = step_figures(args.steps, warmup=2)
        if figures:  # rank 0's
            print(json.dumps(figures))
    elif args.what == "allreduce":
        rows = allreduce_figures(repeats=20)
        if rows:
            for r in rows:
                print(
                    f"{r['bytes']:>10,} B  {r['seconds'] * 1e6:10.1f} us  {r['bus_gb_s']:7.2f} GB/s"
                )
    else:
        compare(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(common.cli(main))

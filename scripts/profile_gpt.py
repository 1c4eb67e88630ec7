"""Where a fast GPT training step spends its time, op by op, at the benchmark's shapes.

    python scripts/profile_gpt.py                 # the three shapes of `bench.py gpt`
    python scripts/profile_gpt.py --steps 20

For the run, a timer wraps every layer and attention function the GPT calls by name (what
`fast/gpt.py` imports from `fast.layers` and `fast.attention`), the forward and backward of every
layer and model class (`fast/layers.py`, `fast/gpt.py`) and the optimizer's step; each is charged
its self time (its own time minus that of the wrapped calls inside it), so a class's line is its
own array work and Python around its children. Prints one table per shape: milliseconds per step
and share of the step. The timers cost about a microsecond per call.
"""

from __future__ import annotations

import os
import sys
import time
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402  (one-line argument errors; puts the repository root on sys.path)


class SelfTimer:
    """Self time of wrapped callables: a call's time minus the time of the wrapped calls it made,
    so nested layers (a Block's forward calls its LayerNorm's) are not counted twice."""

    def __init__(self):
        self.spent = defaultdict(float)
        self.calls = defaultdict(int)
        self.stack = []  # [time spent in wrapped children] per open call
        self.undo = []

    def wrap(self, owner, attr: str, name: str) -> None:
        original = getattr(owner, attr)

        def timed(*a, **k):
            self.stack.append(0.0)
            t0 = time.perf_counter()
            try:
                return original(*a, **k)
            finally:
                elapsed = time.perf_counter() - t0
                children = self.stack.pop()
                self.spent[name] += elapsed - children
                self.calls[name] += 1
                if self.stack:
                    self.stack[-1] += elapsed

        setattr(owner, attr, timed)
        self.undo.append((owner, attr, original))

    def restore(self) -> None:
        for owner, attr, original in reversed(self.undo):
            setattr(owner, attr, original)


def profile(shape, steps: int) -> list[tuple[str, float, int]]:
    """[(op, self seconds per step, calls per step)], the whole step first as "step"."""
    import bench_models

    import fast
    from fast import attention, gpt, layers

    timer = SelfTimer()
    ours = (layers.__name__, attention.__name__)
    for name, value in list(vars(gpt).items()):  # the functions the model calls by name
        if callable(value) and not isinstance(value, type) and value.__module__ in ours:
            timer.wrap(gpt, name, name)
    for module in (layers, gpt):  # the layers' and the model's forward and backward
        for cls in vars(module).values():
            if isinstance(cls, type) and cls.__module__ == module.__name__:
                for attr in ("forward", "backward"):
                    if attr in vars(cls):
                        timer.wrap(cls, attr, f"{cls.__name__}.{attr}")
    timer.wrap(fast.AdamW, "step", "AdamW.step")
    try:
        step, _ = bench_models._fast_gpt_step(tuple(shape))
        for _ in range(2):
            step()
        timer.spent.clear()
        timer.calls.clear()
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        total = (time.perf_counter() - t0) / steps
    finally:
        timer.restore()
    rows = [(n, s / steps, timer.calls[n] // steps) for n, s in timer.spent.items()]
    rows.sort(key=lambda r: -r[1])
    other = total - sum(r[1] for r in rows)
    return [("step", total, 1), *rows, ("other (the benchmark's loop)", other, 0)]


def main(argv=None) -> int:
    import bench_models

    p = common.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=common.positive_int, default=10)
    args = p.parse_args(argv)
    for shape, _ in bench_models.GPT_SHAPES:
        rows = profile(shape, args.steps)
        total = rows[0][1]
        print(f"\n### {tuple(shape)}: {total * 1e3:.1f} ms per step\n")
        print("| op | ms per step | calls | share |\n| --- | --- | --- | --- |")
        for name, seconds, n in rows[1:]:
            print(f"| `{name}` | {seconds * 1e3:.2f} | {n or ''} | {seconds / total:.1%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(common.cli(main))

"""Pieces the training scripts share: backend choice, corpus + tokenizer, batches, progress,
one-line errors, stopping on a signal, metrics.jsonl and resuming, and training on several
processes under mpiexec (`WORLD`; `fast/distributed.py` does the communication).

Scripts import this as `common` (they put their own folder on sys.path). Nothing under
`reference/` or `fast/` imports it.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import reference  # noqa: E402
from reference.rng import below, random_u32s  # noqa: E402


class CommandError(Exception):
    """A bad argument or file: the script prints `error: <message>` and exits with status 2.

    `collective`: every rank of a data-parallel job reaches the same error at the same point
    (it follows from the arguments they agreed on), so each exits with status 2 and rank 0 alone
    prints it. Any other error on one rank aborts the whole job, naming the rank."""

    def __init__(self, message: str, collective: bool = False):
        super().__init__(message)
        self.collective = collective


def fail(message: str, collective: bool = False):
    raise CommandError(message, collective)


# What an MPI launcher sets in each process it starts (MPICH and Intel MPI's Hydra, Open MPI,
# PMIx launchers such as Slurm's srun): read before MPI starts, to know who prints.
MPI_RANK_VARS = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK")


def launch_rank() -> int | None:
    """This process's rank when an MPI launcher started it, else None."""
    for name in MPI_RANK_VARS:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return None


class Solo:
    """The world of a run in one process: rank 0 of 1, the same few methods as
    `fast.distributed.World` doing nothing, so the scripts have one code path."""

    rank, size, is_root = 0, 1, True

    def any(self, *flags: bool) -> list[bool]:
        return [bool(f) for f in flags]

    def broadcast(self, obj, root: int = 0):
        return obj


WORLD = Solo()  # the job's processes: a fast.distributed.World under mpiexec -n N (N > 1)


def cli(main, argv=None) -> int:
    """Run `main(argv)`; a CommandError becomes one `error:` line on stderr and status 2.

    Under mpiexec, an error on one rank alone (anything but a collective CommandError) prints
    the rank's number and aborts every rank, so none is left waiting for the others forever."""
    try:
        return main(argv)
    except CommandError as e:
        sys.stdout.flush()
        if WORLD.size > 1 and not e.collective:
            print(f"error: rank {WORLD.rank} of {WORLD.size}: {e}", file=sys.stderr, flush=True)
            WORLD.abort(2)
        if WORLD.is_root:
            print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    except SystemExit:
        raise
    except BaseException as e:
        if WORLD.size > 1:
            WORLD.fail(e)
        raise


@contextlib.contextmanager
def user_errors(what: str = ""):
    """Turn the library's complaints about arguments and files (ValueError, TypeError, OSError)
    into a CommandError while setting a run up. The library's own types stay as they are;
    only the script reports them as one line."""
    try:
        yield
    except (CommandError, KeyboardInterrupt):
        raise
    except UnicodeDecodeError as e:
        fail(f"{what}not UTF-8 text ({e.reason} at byte {e.start})")
    except FileNotFoundError as e:
        fail(f"{what}{e.strerror or e}: {e.filename}" if e.filename else f"{what}{e}")
    except (ValueError, TypeError, OSError) as e:
        fail(f"{what}{e}")


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one `error:` line on stderr (status 2), no usage dump."""

    def error(self, message: str):
        sys.stdout.flush()
        if not launch_rank():  # under mpiexec every rank sees the same arguments: rank 0 says it
            print(f"error: {message} (see --help)", file=sys.stderr, flush=True)
        raise SystemExit(2)


def _number(kind, minimum, inclusive: bool):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a{'n int' if kind is int else ' number'}, got {text!r}"
            ) from None
        if not math.isfinite(value) or value < minimum or (value == minimum and not inclusive):
            bound = f">= {minimum}" if inclusive else f"> {minimum}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


positive_int = _number(int, 1, True)
non_negative_int = _number(int, 0, True)
positive_float = _number(float, 0.0, False)
non_negative_float = _number(float, 0.0, True)


def parse_args(p: argparse.ArgumentParser, argv=None) -> tuple[argparse.Namespace, set[str]]:
    """(arguments, the names of those given on the command line), so a resumed run can tell a
    flag the user typed from a default."""
    unset = object()
    probe = argparse.Namespace(**{a.dest: unset for a in p._actions if a.dest != "help"})
    given = {k for k, v in vars(p.parse_args(argv, probe)).items() if v is not unset}
    return p.parse_args(argv), given


def check_text_file(path: str | None, flag: str) -> None:
    """Refuse a missing, unreadable or non-UTF-8 text file before any work is done."""
    if path is None:
        return
    if not os.path.exists(path):
        fail(f"{flag} {path}: no such file")
    if os.path.isdir(path):
        fail(f"{flag} {path}: is a folder, expected a UTF-8 text file")
    try:
        with open(path, encoding="utf-8") as f:
            while f.read(1 << 20):
                pass
    except UnicodeDecodeError as e:
        fail(f"{flag} {path}: not UTF-8 text: {e.reason} at byte {e.start}")
    except OSError as e:
        fail(f"{flag} {path}: {e.strerror or e}")


def add_backend_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--backend",
        default=None,
        choices=["reference", "fast"],
        help="which implementation of the API to train with (default: reference, or fast "
        "with --device cuda)",
    )
    p.add_argument(
        "--device",
        default="cpu",
        choices=["cpu", "cuda"],
        help="where the fast backend keeps the model: cpu, or cuda (an NVIDIA GPU; or Numba's "
        "simulator with NUMBA_ENABLE_CUDASIM=1, very slowly)",
    )
    p.add_argument("--seed", type=int, default=0)


def finish_backend_args(args: argparse.Namespace) -> argparse.Namespace:
    """Resolve the backend default (--device cuda means fast) and refuse what cannot run."""
    if args.backend is None:
        args.backend = "fast" if args.device == "cuda" else "reference"
    if args.device == "cuda" and args.backend != "fast":
        fail(
            "--device cuda runs the fast backend's CUDA kernels: use --backend fast "
            "(or leave --backend out)"
        )
    if args.device == "cuda":
        from fast.device import resolve_device

        try:
            resolve_device("cuda")  # no GPU (and no simulator): say so now, not after the data
        except RuntimeError as e:
            fail(str(e))
    return args


def model_options(args: argparse.Namespace) -> dict:
    """Keyword arguments for a model constructor: the device, when it is not the default."""
    return {"device": args.device} if args.device != "cpu" else {}


def load_backend(name: str, *required: str):
    """Import the backend module, or stop with a clear message if it lacks what we need."""
    try:
        m = importlib.import_module(name)
    except ImportError as e:
        fail(f"cannot import the {name!r} backend: {e}")
    missing = [r for r in required if not hasattr(m, r)]
    if missing:
        fail(f"the {name!r} backend does not implement {', '.join(missing)} yet")
    return m


def corpus_ids(
    text_bytes: int,
    vocab_size: int,
    path: str | None = None,
    cache_dir: str | None = None,
    backend=reference,
    tokenizer_file: str | None = None,
):
    """(tokenizer, ids) for a slice of the default corpus (or `path`), BPE-tokenized by the
    backend's BPETokenizer.

    The tokenizer is read from `tokenizer_file` when given (a resumed run), else trained on the
    same slice (cached in `cache_dir` when given, so a second run does not train it again).
    """
    text = reference.load_text_corpus(max_bytes=text_bytes, path=path)
    tok_path = os.path.join(cache_dir, f"tokenizer-{vocab_size}.bpe") if cache_dir else None
    if tokenizer_file is not None:
        tok = backend.BPETokenizer.load(tokenizer_file)
    elif tok_path and os.path.isfile(tok_path):
        tok = backend.BPETokenizer.load(tok_path)
    else:
        tok = backend.BPETokenizer(pattern="gpt2")
        t0 = time.perf_counter()
        tok.train(text, vocab_size)
        print(
            f"trained a {tok.vocab_size}-token BPE tokenizer on {len(text.encode()):,} bytes "
            f"in {time.perf_counter() - t0:.1f}s"
        )
        if tok_path:
            tok.save(tok_path)
    ids = tok.encode_ordinary(text)
    return tok, ids


def unigram_entropy(ids: list[int]) -> float:
    """Entropy (nats) of the token frequency distribution: the loss of the best model that
    ignores context. A language model has learned something once its loss is well below this."""
    counts = Counter(ids)
    n = len(ids)
    return -sum(c / n * math.log(c / n) for c in counts.values())


def lm_batch(ids, block_size: int, batch_size: int, seed: int, step: int):
    """A batch of (inputs, next-token targets), B x T each, at random offsets drawn from the
    shared generator (seed, stream=step), so every backend sees the same batches.

    `ids` a list gives lists; a numpy array (what the fast backend trains from) gives int64
    arrays, gathered in one indexing operation instead of B list slices converted later."""
    if len(ids) <= block_size + 1:
        fail(f"a corpus of {len(ids)} tokens is too short for --block-size {block_size}")
    starts = [below(w, len(ids) - block_size - 1) for w in random_u32s(seed, step, batch_size)]
    if not isinstance(ids, list):  # a numpy array
        import numpy as np

        rows = ids[np.asarray(starts)[:, None] + np.arange(block_size + 1)]
        return rows[:, :-1], rows[:, 1:]
    x = [ids[s : s + block_size] for s in starts]
    y = [ids[s + 1 : s + block_size + 1] for s in starts]
    return x, y


class Progress:
    """One line per report: step, loss, tokens per second, elapsed time."""

    def __init__(self, total_steps: int, tokens_per_step: int, start: int = 0):
        self.total, self.tokens = total_steps, tokens_per_step
        self.t0 = self.last = time.perf_counter()
        self.last_step = start

    def report(self, step: int, loss: float, extra: str = "") -> float:
        """Print the line; return the tokens per second since the last report."""
        now = time.perf_counter()
        rate = (step - self.last_step) * self.tokens / max(now - self.last, 1e-9)
        self.last, self.last_step = now, step
        print(
            f"step {step:5d}/{self.total}  loss {loss:.4f}  {rate:9.1f} tok/s  "
            f"{now - self.t0:7.1f}s  {extra}",
            flush=True,
        )
        return rate


class StopSignals:
    """SIGINT (Ctrl-C) and SIGTERM ask the run to stop after the current step: `requested`
    turns True and the loop saves a checkpoint and exits with status 0. A second signal quits at
    once (status 130); checkpoints are written atomically, so none is left half-written."""

    def __init__(self):
        self.requested = False
        self.name = ""
        self._old = {}

    def _handle(self, signum, frame):
        name = signal.Signals(signum).name
        if self.requested:
            os.write(2, f"\n{name} again: quitting at once\n".encode())
            os._exit(130)
        self.requested, self.name = True, name
        os.write(
            2,
            f"\n{name}: finishing this step, then saving a checkpoint "
            "(send it again to quit at once)\n".encode(),
        )

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False

    def __call__(self) -> bool:
        return self.requested


def write_atomically(path: str, text: str) -> None:
    """Write `text` to `path` so that the file is always either the old or the new content."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable where the OS allows
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


class Metrics:
    """`out_dir/metrics.jsonl`: one JSON object per logged step (floats at full precision).

    A fresh run starts the file over; a resumed run drops the lines after the checkpoint's step
    (that part of the run is redone) and appends."""

    def __init__(self, out_dir: str, resume_step: int | None = None):
        self.path = os.path.join(out_dir, "metrics.jsonl")
        kept = []
        if resume_step is not None and os.path.isfile(self.path):
            with open(self.path, encoding="utf-8") as f:
                for line in f:
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue  # a line cut short by a crash
                    if isinstance(record, dict) and record.get("step", math.inf) <= resume_step:
                        kept.append(json.dumps(record) + "\n")
        write_atomically(self.path, "".join(kept))
        self._file = open(self.path, "a", encoding="utf-8")

    def log(self, **fields) -> None:
        record = {k: v for k, v in fields.items() if v is not None}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            os.fsync(self._file.fileno())
            self._file.close()


def read_metrics(out_dir: str) -> list[dict]:
    with open(os.path.join(out_dir, "metrics.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def prepare_out_dir(out_dir: str, resume: bool, overwrite: bool, backend) -> str | None:
    """The checkpoint to resume from (None for a fresh run), after refusing what cannot work:
    --resume with nothing to resume, or a fresh run over another run's checkpoints."""
    checkpoints = os.path.join(out_dir, "checkpoints")
    if resume:
        if overwrite:
            fail("--resume and --overwrite contradict each other: choose one")
        latest = backend.latest_checkpoint(out_dir) if os.path.isdir(out_dir) else None
        if latest is None:
            fail(f"--resume: no checkpoint under {checkpoints} to resume from")
        return latest
    if os.path.isdir(checkpoints) and os.listdir(checkpoints):
        if not overwrite:
            fail(
                f"{out_dir} already holds a run's checkpoints: add --resume to continue it, "
                "--overwrite to start over, or choose another --out-dir"
            )
        shutil.rmtree(checkpoints)
    os.makedirs(out_dir, exist_ok=True)
    return None


def saved_trainer_state(checkpoint: str) -> dict:
    """The trainer state a checkpoint folder holds, read without loading the model."""
    path = os.path.join(checkpoint, "trainer_state.json")
    try:
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
    except (OSError, ValueError) as e:
        fail(f"--resume: cannot read {path}: {e}")
    if isinstance(state, dict) and "args" not in state and isinstance(state.get("trainer"), dict):
        state = state["trainer"]
    if not isinstance(state, dict) or not isinstance(state.get("args"), dict):
        fail(f"--resume: {path} was not written by this script (no run arguments in it)")
    return state


def restore_args(
    args, given: set[str], saved: dict, frozen: tuple[str, ...], kept: tuple[str, ...] = ()
) -> None:
    """Take the run's arguments from its checkpoint: the `frozen` ones always (refusing one typed
    differently), the `kept` ones unless typed again."""
    for name in kept:
        if name in saved and name not in given:
            setattr(args, name, saved[name])
    for name in frozen:
        if name not in saved:
            continue
        if name in given and getattr(args, name) != saved[name]:
            flag = "--" + name.replace("_", "-")
            fail(
                f"--resume: the run was started with {flag} {saved[name]}, got "
                f"{getattr(args, name)}; a run cannot change it (start a new --out-dir)"
            )
        setattr(args, name, saved[name])


def add_run_args(p: argparse.ArgumentParser, out_dir: str) -> None:
    """--out-dir, --resume, --overwrite, --keep: where a run keeps its checkpoints and metrics."""
    p.add_argument(
        "--out-dir", default=out_dir, help="the run's folder: model, metrics.jsonl, checkpoints/"
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from the newest checkpoint in --out-dir (losses as if never stopped)",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="start over in an --out-dir that holds a run"
    )
    p.add_argument(
        "--keep", type=positive_int, default=2, help="training checkpoints to keep (newest)"
    )


def stop_message(script: str, step: int, checkpoint: str, out_dir: str) -> None:
    print(f"stopped at step {step}; checkpoint saved to {checkpoint}", flush=True)
    print(f"resume with: python scripts/{script} --out-dir {out_dir} --resume", flush=True)


def parse_run_args(
    p: argparse.ArgumentParser,
    argv,
    frozen: tuple[str, ...],
    kept: tuple[str, ...] = (),
    data_parallel: bool = False,
) -> tuple[argparse.Namespace, str | None]:
    """(arguments, the checkpoint to resume from or None) for a script with `add_run_args`:
    --out-dir checked (a fresh run does not write over another run's checkpoints), on --resume
    the run's own arguments taken from its checkpoint, and the backend resolved.

    Under `mpiexec -n N` (N > 1) it also joins the job (`WORLD`), for a script that trains
    `data_parallel`: rank 0 alone prepares --out-dir and picks the checkpoint, every rank
    resumes from that one, and the ranks check they were all given the same arguments."""
    args, given = parse_args(p, argv)
    join_world(data_parallel, p.prog)
    resume_from = None
    if args.resume and not args.out_dir:
        fail("--resume needs the run's --out-dir", collective=True)
    if args.out_dir:
        resume_from = on_root(
            lambda: prepare_out_dir(args.out_dir, args.resume, args.overwrite, reference)
        )
    if resume_from is not None:
        restore_args(args, given, saved_trainer_state(resume_from)["args"], frozen, kept)
    args = finish_backend_args(args)
    if WORLD.size > 1:
        if args.backend != "fast":
            fail(
                "training on several processes runs on the fast backend: add --backend fast",
                collective=True,
            )
        try:
            WORLD.check_same(vars(args), "argument")
        except ValueError as e:
            fail(str(e), collective=True)
    return args, resume_from


def join_world(data_parallel: bool, script: str) -> None:
    """Under an MPI launcher, join the job: `WORLD` becomes its `fast.distributed.World`, and the
    ranks other than 0 stop printing to stdout. Started without one: nothing changes."""
    global WORLD
    if launch_rank() is None:
        return
    try:
        from fast import distributed

        world = distributed.world()
    except ImportError as e:
        fail(str(e), collective=True)
    if world.size == 1:
        return
    WORLD = world
    if not data_parallel:
        fail(
            f"{script} trains in one process; run it without mpiexec (train_gpt.py, "
            "train_bert.py and train_mlp.py train on several)",
            collective=True,
        )
    if not world.is_root:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process


def on_root(task):
    """`task()` run by rank 0 alone (it touches the file system), its result (or its
    CommandError, then raised on every rank) given to every rank."""
    if WORLD.size == 1:
        return task()
    outcome = None
    if WORLD.is_root:
        try:
            outcome = ("ok", task())
        except CommandError as e:
            outcome = ("error", str(e))
    kind, value = WORLD.broadcast(outcome)
    if kind == "error":
        fail(value, collective=True)
    return value


def check_global_batch(batch_size: int, flag: str = "--batch-size") -> None:
    """Under mpiexec -n N the batch size is the global batch, split evenly over the ranks."""
    n = WORLD.size
    if n > 1 and batch_size % n:
        fail(
            f"{flag} {batch_size} is the global batch, split over {n} processes: it must "
            f"divide by {n} (try {batch_size - batch_size % n or n})",
            collective=True,
        )


def data_parallel(model, optimizer):
    """`model` trained by every rank of the job on its rows of each batch (see
    `fast.distributed.DataParallel`); in one process, `model` itself."""
    if WORLD.size == 1:
        return model
    from fast.distributed import DataParallel

    return DataParallel(model, optimizer, WORLD)


class Run:
    """The bookkeeping of one resumable training run in `args.out_dir` ('' keeps nothing).

    On --resume it restores `model` and `optimizer` from `resume_from` (`saved` is the trainer
    state the checkpoint holds, `start` its step). `checkpoint(step)` writes a training checkpoint
    of the arguments named in `fields`, the script's own `state()` and the elapsed time (with
    `write_extra(folder)` adding files to it), then `export(out_dir)` refreshes the model at the top
    of the folder. `log(...)` appends to metrics.jsonl; `diverged` and `stopped` end the run."""

    def __init__(
        self, script: str, args, fields: tuple[str, ...], m, model, optimizer,
        resume_from: str | None, *, state=dict, write_extra=None, export=None, started=None,
    ):  # fmt: skip
        self.script, self.args, self.fields, self.m = script, args, fields, m
        self.model, self.optimizer = model, optimizer
        self.state, self.write_extra, self.export = state, write_extra, export
        self.t0 = time.perf_counter() if started is None else started
        self.saved = {}
        if resume_from is not None:
            with user_errors(f"--resume {resume_from}: "):
                self.saved = m.load_training_checkpoint(resume_from, model, optimizer)
        self.start = self.saved_at = self.saved.get("step", 0)
        self.resumed_from = self.last_checkpoint = resume_from
        self.elapsed_before = self.saved.get("elapsed_seconds", 0.0)
        resume_step = None if resume_from is None else self.start
        writes = args.out_dir and WORLD.is_root  # under mpiexec, rank 0 keeps the records
        self.metrics = Metrics(args.out_dir, resume_step) if writes else None

    def resuming(self) -> None:
        """Say where a resumed run goes on from (nothing for a fresh run)."""
        if self.resumed_from is not None:
            print(f"resuming from {self.resumed_from} at step {self.start}", flush=True)

    def elapsed(self) -> float:
        """Seconds of training so far, the runs before a resume included."""
        return self.elapsed_before + time.perf_counter() - self.t0

    def log(self, **fields) -> None:
        if self.metrics:
            self.metrics.log(**fields, elapsed_seconds=self.elapsed())

    def log_step(self, step: int, loss, grad_norm=None, rate=None, **extra) -> None:
        """A training step's line: its loss (full precision), the learning rate, the gradient
        norm (None: not clipped), tokens per second (None: not measured), and `extra`."""
        self.log(
            step=step,
            loss=float(loss),
            lr=self.optimizer.lr,
            grad_norm=None if grad_norm is None else float(grad_norm),
            tokens_per_second=rate,
            **extra,
        )

    def checkpoint(self, step: int) -> str | None:
        """A training checkpoint at `step` (and the export at the top of --out-dir)."""
        if not self.args.out_dir or not WORLD.is_root:
            self.saved_at = step
            return None
        state = {"step": step, "args": {k: getattr(self.args, k) for k in self.fields}}
        state.update(self.state())
        state["elapsed_seconds"] = self.elapsed()
        self.last_checkpoint = self.m.save_training_checkpoint(
            self.args.out_dir,
            self.model,
            self.optimizer,
            state,
            keep=self.args.keep,
            write_extra=self.write_extra,
        )
        self.saved_at = step
        if self.export is not None:
            self.export(self.args.out_dir)
        return self.last_checkpoint

    def close(self) -> None:
        if self.metrics:
            self.metrics.close()

    def diverged(self, loss: float, step: int) -> int:
        """A NaN or infinite loss: say so on stderr, keep the last good checkpoint; status 1.
        (Under mpiexec the loss is the global one, so every rank stops at the same step.)"""
        self.close()
        if not WORLD.is_root:
            return 1
        print(
            f"error: loss became {loss} at step {step}; training stopped. The last good "
            f"checkpoint is {self.last_checkpoint or 'none'} (try a lower --lr)",
            file=sys.stderr,
            flush=True,
        )
        return 1

    def stopped(self, step: int) -> int:
        """Stopped by a signal after `step`: checkpoint (unless that step has one), say how to
        resume; status 0."""
        path = self.checkpoint(step) if step != self.saved_at else self.last_checkpoint
        self.close()
        if not WORLD.is_root:
            return 0
        if self.args.out_dir and path:
            stop_message(self.script, step, path, self.args.out_dir)
        else:
            print(f"stopped at step {step} (no --out-dir, nothing saved)", flush=True)
        return 0


def update(m, model, optimizer, grad_clip: float):
    """Backpropagate the last forward's loss, clip the gradients to norm `grad_clip` (0: no
    clipping) and step the optimizer; the norm before clipping, or None."""
    model.zero_grad()
    model.backward()
    norm = m.clip_grad_norm(model.parameters(), grad_clip) if grad_clip else None
    optimizer.step()
    return norm


def export_model(model, out_dir: str, tok=None, huggingface_tokenizer: bool = False) -> None:
    """The model as `save_pretrained` writes it (Hugging Face loads the folder), plus the
    tokenizer in the project's format (and as vocab.json + merges.txt when asked)."""
    model.save_pretrained(out_dir)
    if tok is not None:
        tok.save(os.path.join(out_dir, "tokenizer.bpe"))
        if huggingface_tokenizer:
            tok.save_huggingface(out_dir)


def print_report_command(out_dir: str) -> None:
    """The last line of a finished run: how to see it as pictures (scripts/report.py)."""
    print(f"report: python scripts/report.py {out_dir}", flush=True)

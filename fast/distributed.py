"""Data parallelism on MPI: several processes train one model, each on its slice of the batch.

Every process (a *rank*; there are `size` of them, the *world*) holds the whole model and the same
optimizer. Each step, every rank takes the same global batch from the shared generator, keeps its
own rows of it, computes the loss and the gradients on them, and then the ranks *all-reduce* the
gradients: afterwards every rank holds the average over the global batch, exactly what one process
would have computed on the whole batch (up to the order of the float additions), so every
optimizer takes the same step and the weights stay identical everywhere.

    world = distributed.world()              # rank, size (size 1 when not under mpiexec)
    model = distributed.DataParallel(GPT(config), optimizer_of_it, world)
    _, loss = model(x, y)                    # x, y: the global batch; loss: the global loss
    model.zero_grad(); model.backward()      # local gradients, then one all-reduce per buffer
    optimizer.step()                         # the same update on every rank

Launch with `mpiexec -n 2 python train.py` (the `mpi` extra: `pip install mpi4py mpich`, or
mpi4py built against a cluster's own MPI). A process started without `mpiexec` is a world of
one: `world()` then never imports mpi4py, and every collective is a no-op, so the same training
code runs with or without MPI.

Averaging. A rank's loss is the mean over the targets it holds that count (for integer targets,
those >= 0: -100 marks BERT's unmasked positions; otherwise its rows). With n_r of them on rank r
and N = sum n_r, the global loss is sum_r n_r * loss_r / N, and each gradient likewise
sum_r n_r * g_r / N: the same mean one process takes over all N, also when the ranks hold unequal
counts (the masked positions of a BERT batch, the short last batch of an epoch).

Few calls. The optimizers keep every parameter's gradient in one packed buffer per parameter
group (`fast/optim.py`), so the gradient all-reduce is one `MPI_Allreduce` per group (two for
the GPT script's decay / no-decay groups), not one per parameter. GPU buffers are staged through
the host (copied back, reduced, copied up): GPU-direct transfers are a later step.

Failures. A rank that raises must not leave the others waiting in a collective forever:
`World.guard()` prints the error with the rank's number and calls `MPI_Abort`, which ends every
rank of the job. A rank killed by a signal ends the job through `mpiexec` itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import traceback

import numpy as np

from .device import device_of, is_device_array, to_device, to_host

__all__ = ["World", "world", "launched_by_mpi", "DataParallel", "MPIUnavailableError"]

INSTALL_HINT = (
    'install the mpi extra (pip install "model-archaeology[mpi]", or mpi4py built against '
    "your cluster's MPI)"
)

# What each MPI launcher sets in the processes it starts: MPICH's and Intel MPI's Hydra (PMI_*),
# Open MPI (OMPI_COMM_WORLD_*), PMIx-based launchers such as Slurm's srun (PMIX_RANK).
_RANK_VARS = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK")
_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")


class MPIUnavailableError(ImportError):
    """Data-parallel training was asked for (or the process was started by mpiexec) but mpi4py
    is not installed."""


def _env_int(names) -> int | None:
    for name in names:
        value = os.environ.get(name)
        if value is not None and value.strip().isdigit():
            return int(value)
    return None


def launched_by_mpi() -> bool:
    """Whether an MPI launcher started this process (read from its environment; no import)."""
    return _env_int(_RANK_VARS) is not None


def launch_rank() -> int:
    """This process's rank as the launcher's environment says (0 when not launched by MPI):
    known before MPI starts, for deciding who prints an argument error."""
    return _env_int(_RANK_VARS) or 0


def launch_size() -> int:
    """The number of ranks the launcher started (1 when not launched, or when it does not say)."""
    return _env_int(_SIZE_VARS) or 1


class World:
    """The processes of one job: `rank` (0 .. size - 1) and `size`, and the collectives the
    training loop needs. A world of one (no MPI) has the same methods, doing nothing."""

    def __init__(self, comm=None):
        self.comm = comm
        self.rank = 0 if comm is None else comm.Get_rank()
        self.size = 1 if comm is None else comm.Get_size()

    def __repr__(self) -> str:
        return f"World(rank={self.rank}, size={self.size})"

    @property
    def is_root(self) -> bool:
        """Rank 0: the one that prints, logs and writes checkpoints."""
        return self.rank == 0

    # -- the batch ---------------------------------------------------------------------------
    def shard(self, n: int) -> slice:
        """This rank's rows of a global batch of n rows: contiguous, sizes differing by at most
        one (rank r gets rows [r*n//size, (r+1)*n//size))."""
        return slice(self.rank * n // self.size, (self.rank + 1) * n // self.size)

    def local(self, batch):
        """This rank's rows of `batch` (a numpy array or a list of rows)."""
        return batch[self.shard(len(batch))]

    # -- small values ----------------------------------------------------------------------------
    def sum(self, *values: float) -> list[float]:
        """Each value summed over the ranks (one call for all of them)."""
        if self.comm is None:
            return [float(v) for v in values]
        buf = np.asarray(values, dtype=np.float64)
        self.all_reduce(buf)
        return [float(v) for v in buf]

    def any(self, *flags: bool) -> list[bool]:
        """Each flag, True when it is True on any rank: how the ranks agree to stop together
        (a signal, or a time limit, may reach one rank a step before another)."""
        return [v > 0 for v in self.sum(*(1.0 if f else 0.0 for f in flags))]

    def broadcast(self, obj, root: int = 0):
        """`obj` as rank `root` has it, on every rank (any picklable value)."""
        return obj if self.comm is None else self.comm.bcast(obj, root=root)

    def barrier(self) -> None:
        if self.comm is not None:
            self.comm.Barrier()

    def check_same(self, config: dict, what: str = "configuration") -> None:
        """Refuse to start when the ranks were given different settings: every rank compares
        the sha256 of its `config` (JSON) with rank 0's and, on a mismatch, every rank raises the
        same ValueError naming the ranks and the keys that differ."""
        if self.comm is None:
            return
        text = json.dumps(config, sort_keys=True, default=repr)
        digest = hashlib.sha256(text.encode()).hexdigest()
        digests = self.comm.allgather(digest)
        if len(set(digests)) == 1:
            return
        configs = self.comm.allgather(json.loads(text))
        differ = [r for r, d in enumerate(digests) if d != digests[0]]
        keys = sorted(
            k
            for r in differ
            for k in set(configs[0]) | set(configs[r])
            if configs[0].get(k) != configs[r].get(k)
        )
        first = differ[0]
        shown = ", ".join(
            f"{k}: {configs[0].get(k)!r} on rank 0, {configs[first].get(k)!r} on rank {first}"
            for k in sorted(set(keys))
        )
        raise ValueError(
            f"the ranks were started with different {what}s (rank 0's differs from rank"
            f"{'s' if len(differ) > 1 else ''} {', '.join(map(str, differ))}): {shown}"
        )

    # -- gradients and weights ----------------------------------------------------------------
    def average_gradients(self, optimizer, weight: float, total: float) -> None:
        """Every gradient of `optimizer`'s parameters becomes sum_r weight_r * g_r / total: one
        all-reduce per packed gradient buffer. `weight` is this rank's share (its counted
        targets), `total` the sum of the shares over the ranks."""
        if self.comm is None:
            return
        for g in optimizer.gradient_buffers():
            if is_device_array(g):  # staged through the host
                host = to_host(g)
                host *= weight
                self.all_reduce(host)
                host *= 1.0 / max(total, 1.0)
                g[...] = to_device(host, device_of(g))
            else:
                g *= weight
                self.all_reduce(g)
                g *= 1.0 / max(total, 1.0)

    def broadcast_parameters(self, model) -> None:
        """Rank 0's weights into every rank's model (once, at the start: the ranks then stay
        equal because they take equal steps)."""
        if self.comm is None:
            return
        for _, p in model.named_parameters():
            host = np.ascontiguousarray(to_host(p.data))
            self.comm.Bcast(host, root=0)
            p.data[...] = to_device(host, device_of(p.data))

    def all_reduce(self, buf: np.ndarray) -> None:
        """Sum a host buffer over the ranks, in place (one MPI_Allreduce)."""
        from mpi4py import MPI

        self.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)

    # -- failures -----------------------------------------------------------------------------
    def abort(self, code: int = 1) -> None:
        """End every rank of the job now (MPI_Abort); in a world of one, exit."""
        sys.stdout.flush()
        sys.stderr.flush()
        if self.comm is not None:
            self.comm.Abort(code)
        raise SystemExit(code)

    def fail(self, error: BaseException) -> None:
        """Report `error` (its traceback, then one line naming this rank) and abort the job."""
        traceback.print_exception(error)
        print(
            f"error: rank {self.rank} of {self.size} failed: {type(error).__name__}: {error}; "
            "aborting every rank (the last checkpoint stays loadable)",
            file=sys.stderr,
            flush=True,
        )
        self.abort(1)

    @contextlib.contextmanager
    def guard(self):
        """Run a rank's work so that an exception on this rank alone cannot hang the others: it
        is reported with the rank's number and the whole job is aborted (`fail`). SystemExit
        passes through (a clean, agreed exit)."""
        try:
            yield
        except (SystemExit, GeneratorExit):
            raise
        except BaseException as e:  # noqa: BLE001 - anything, KeyboardInterrupt included
            if self.comm is None:
                raise
            self.fail(e)


_WORLD: World | None = None


def world(require: bool = False) -> World:
    """The job's World: MPI's when an MPI launcher started this process (or `require` is True),
    else a world of one without importing mpi4py. A MPIUnavailableError names the extra to
    install when MPI is wanted but mpi4py is missing."""
    global _WORLD
    if _WORLD is not None and (_WORLD.comm is not None or not require):
        return _WORLD
    if not (require or launched_by_mpi()):
        _WORLD = World()
        return _WORLD
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise MPIUnavailableError(
            f"data-parallel training needs mpi4py, which is not installed ({e}): {INSTALL_HINT}"
        ) from None
    _WORLD = World(MPI.COMM_WORLD)
    return _WORLD


_the_world = world


def _counted(targets) -> int:
    """How many of a batch's targets count in its mean loss: integer targets >= 0 (negative ones,
    BERT's -100, are ignored), or one per row for anything else."""
    arr = np.asarray(targets) if not is_device_array(targets) else to_host(targets)
    if arr.dtype.kind in "iu":
        return int((arr >= 0).sum())
    return len(arr)


class DataParallel:
    """A model trained by every rank on its rows of the global batch.

    `model(*inputs, **kw)` takes the global batch (every rank passes the same one), keeps this
    rank's rows of each argument that has one per row, runs the model on them and returns
    (its local outputs, the global loss). `backward()` backpropagates locally, then averages the
    gradients over the ranks (weighted by each rank's counted targets; see the module notes).
    Everything else (`parameters`, `train`, `eval`, `save_pretrained`, `generate`, ...) is the
    wrapped model's: `module` is the model itself (rank 0 evaluates and saves it alone).

    Dropout draws its masks per local batch, so with dropout on, N ranks draw other (equally
    random) masks than one process would; with dropout 0 the runs agree to float rounding.
    """

    def __init__(self, model, optimizer, world: World | None = None):
        if not hasattr(optimizer, "gradient_buffers"):
            raise TypeError(
                "optimizer must be a fast optimizer (SGD, Adam or AdamW) built on the model's "
                f"parameters, got {type(optimizer).__name__}"
            )
        self.module = model
        self.optimizer = optimizer
        self.world = world if world is not None else _the_world()
        self._weight = self._total = None
        self.world.broadcast_parameters(model)

    def __getattr__(self, name):
        return getattr(self.module, name)

    def _rows(self, value, n: int):
        if isinstance(value, (list, tuple, np.ndarray)) and len(value) == n:
            return self.world.local(value)
        return value

    def __call__(self, *args, **kwargs):
        if self.world.size == 1:
            return self.module(*args, **kwargs)
        if not args or len(args[0]) < self.world.size:
            raise ValueError(
                f"the global batch must have at least one row per rank ({self.world.size}), "
                f"got {len(args[0]) if args else 0}"
            )
        n = len(args[0])
        local = [self._rows(a, n) for a in args]
        local_kw = {k: self._rows(v, n) for k, v in kwargs.items()}
        out, loss = self.module(*local, **local_kw)
        targets = local[1] if len(local) > 1 else local_kw.get("labels", local_kw.get("targets"))
        if loss is None or targets is None:
            return out, loss
        weight = float(_counted(targets))
        weighted, total = self.world.sum(weight * float(loss) if weight else 0.0, weight)
        self._weight, self._total = weight, total
        return out, (weighted / total if total else float(loss))

    def backward(self) -> None:
        self.module.backward()
        if self.world.size > 1:
            if self._weight is None:
                raise RuntimeError("backward() needs a forward with targets first")
            self.world.average_gradients(self.optimizer, self._weight, self._total)

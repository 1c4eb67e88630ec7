"""The benchmark's PyTorch LLaMA is the same architecture as ours: on the same weights it gives
fast.Llama's loss (to the float32 rotary angles it computes), and its bench section runs."""

import numpy as np
import pytest

import fast

from . import helpers  # noqa: F401  (puts scripts/ on sys.path)


def test_torch_llama_computes_our_llama():
    torch = pytest.importorskip("torch")
    from torch_baselines import TorchLlama

    V, T, L, H, H_kv, C, I, B = 32, 8, 2, 6, 2, 24, 20, 2
    config = fast.LlamaConfig(
        vocab_size=V, hidden_size=C, intermediate_size=I, num_hidden_layers=L,
        num_attention_heads=H, num_key_value_heads=H_kv, max_position_embeddings=T,
        tie_word_embeddings=True, initializer_range=0.3,
    )  # fmt: skip
    ours = fast.Llama(config, dtype="float64")
    theirs = TorchLlama(V, T, L, H, H_kv, C, I).double()
    state = {}
    for name, value in ours.state_dict().items():  # their names drop the submodule levels
        key = name.removeprefix("model.").replace("self_attn.", "").replace("mlp.", "")
        state[key] = torch.tensor(value)
    theirs.load_state_dict(state, strict=True)
    rng = np.random.default_rng(0)
    idx, targets = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))
    want = ours(idx, targets)[1]
    assert theirs(torch.tensor(idx), torch.tensor(targets)).item() == pytest.approx(want, rel=1e-6)


def test_the_llama_bench_contenders_run_in_their_own_processes():
    """What `bench.py llama` times, at a tiny shape: each contender a server of its own."""
    pytest.importorskip("torch")
    import bench_isolated

    shape = [16, 8, 1, 4, 2, 8, 8, 1]
    res = bench_isolated.measure("llama", shape, ["fast", "torch"], rounds=2, calls=1)
    for name in ("fast", "torch"):
        assert len(res[name]["seconds"]) == 2 and min(res[name]["seconds"]) > 0
        assert res[name]["info"]["units"] == 8
    assert res["fast"]["info"]["flops_per_unit"] > 0

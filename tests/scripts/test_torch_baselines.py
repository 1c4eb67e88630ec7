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


def test_the_llama_bench_section_runs_at_a_tiny_shape(capsys):
    pytest.importorskip("torch")
    import bench_models

    rows = bench_models.bench_llama(repeats=1, shapes=[(16, 8, 1, 4, 2, 8, 8, 1)])
    assert rows[0]["fast"] > 0 and rows[0]["torch"] > 0
    assert "fast/torch" in capsys.readouterr().out

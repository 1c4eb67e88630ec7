"""The models on device="cuda": what the conformance suite does not cover — determinism run to run,
device handling, errors before any kernel, checkpoints across devices, the training script.

Run on a GPU when there is one, else under Numba's simulator (the root conftest.py), at tiny sizes.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

import fast
import reference
from fast.cuda.array import DeviceArray
from fast.device import resolve_device, to_host

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = dict(vocab_size=13, block_size=6, n_layer=1, n_head=2, n_embd=8)


def tiny_gpt(dropout=0.1, device="cuda", dtype="float32"):
    return fast.GPT(fast.GPTConfig(**CONFIG, dropout=dropout), dtype=dtype, device=device)


def batch():
    idx = np.arange(10).reshape(2, 5) % 13
    return idx, (idx * 3 + 1) % 13


def test_training_is_bit_identical_run_to_run():
    """No atomics in any path: the same losses and weights, bit for bit, every run."""
    runs = []
    for _ in range(2):
        model = tiny_gpt()
        opt = fast.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
        losses = []
        for _ in range(3):
            _, loss = model(*batch())
            model.zero_grad()
            model.backward()
            fast.clip_grad_norm(model.parameters(), 0.5)
            opt.step()
            losses.append(loss)
        runs.append((losses, model.state_dict()))
    assert runs[0][0] == runs[1][0]
    for name, value in runs[0][1].items():
        assert np.array_equal(value, runs[1][1][name]), name


def test_everything_stays_on_the_device():
    model = tiny_gpt()
    fast.AdamW(model.parameters(), lr=1e-3)
    logits, loss = model(*batch())
    assert isinstance(logits, DeviceArray) and isinstance(loss, float)
    for name, p in model.named_parameters():
        assert isinstance(p.data, DeviceArray) and isinstance(p.grad, DeviceArray), name
    assert model.device == "cuda" and model.transformer.h[0].attn.device == "cuda"
    with pytest.raises(TypeError, match="copy_to_host"):
        np.asarray(logits)
    assert to_host(logits).shape == (2, 5, 13)


def test_checkpoints_move_between_devices(tmp_path):
    gpu = tiny_gpt(dropout=0.0, dtype="float64")
    gpu.save_pretrained(tmp_path, dtype="float64")
    cpu = fast.GPT.from_pretrained(tmp_path, dtype="float64")
    ref = reference.GPT.from_pretrained(tmp_path)
    again = fast.GPT.from_pretrained(tmp_path, dtype="float64", device="cuda")
    idx, targets = batch()
    want, loss = ref(idx.tolist(), targets.tolist())
    for model in (gpu, cpu, again):
        logits, got = model(idx, targets)
        np.testing.assert_allclose(to_host(logits), want, rtol=1e-10, atol=1e-12)
        assert abs(got - loss) < 1e-10
    cpu.to("cuda")  # and a model moves whole
    np.testing.assert_allclose(to_host(cpu(idx)[0]), want, rtol=1e-10, atol=1e-12)
    cpu.to("cpu")
    assert isinstance(cpu.transformer.wte.weight.data, np.ndarray)


def test_bad_input_is_refused_before_any_kernel():
    model = tiny_gpt()
    with pytest.raises(ValueError, match="token id 13 out of range for vocab_size 13"):
        model([[1, 13]])
    with pytest.raises(ValueError, match="target id 99 out of range"):
        model([[1, 2]], [[3, 99]])
    with pytest.raises(ValueError, match="exceeds block_size=6"):
        model(np.zeros((1, 7), dtype=np.int64))
    with pytest.raises(ValueError, match=r"dlogits must have shape \(1, 2, 13\)"):
        model([[1, 2]])
        model.backward(np.zeros((1, 2, 12)))


def test_device_argument_errors():
    with pytest.raises(ValueError, match="device must be 'cpu' or 'cuda', got 'gpu'"):
        resolve_device("gpu")
    with pytest.raises(TypeError, match="device must be 'cpu' or 'cuda', got int 0"):
        fast.MLP([2, 3], device=0)
    with pytest.raises(ValueError, match="device must be 'cpu' or 'cuda'"):
        fast.BERT(fast.BERTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=1, n_embd=2),
                  device="tpu")  # fmt: skip


def test_no_gpu_and_no_simulator_is_a_clear_error():
    """Without the simulator, device="cuda" needs a GPU: on a machine without one the error says
    what is missing and how to run the kernels anyway."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    code = (
        "import fast\n"
        "try:\n"
        "    fast.MLP([2, 3], device='cuda')\n"
        "    print('built on a GPU')\n"
        "except RuntimeError as e:\n"
        "    print('refused:', e)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    if os.path.exists("/dev/nvidia0"):
        assert "built on a GPU" in run.stdout
    else:
        assert "refused: device='cuda' needs an NVIDIA GPU" in run.stdout
        assert "NUMBA_ENABLE_CUDASIM=1" in run.stdout


def test_mlp_fit_on_the_device():
    """The training loop of the seed (fit with its stopping rules) runs a GPU model unchanged."""
    x = np.random.default_rng(0).standard_normal((12, 4))
    y = (x[:, 0] > 0).astype(np.int64)
    results = []
    for device in ("cpu", "cuda"):
        model = fast.MLP([4, 5, 2], activation="tanh", dtype="float64", device=device)
        opt = fast.SGD(model.parameters(), lr=0.5, momentum=0.9)
        results.append(fast.fit(model, opt, x, y, batch_size=4, epochs=3, seed=1))
    assert results[0].loss_history == pytest.approx(results[1].loss_history, rel=1e-10)
    assert results[0].stopped_by == results[1].stopped_by
    assert results[0].grad_norm_history == pytest.approx(results[1].grad_norm_history, rel=1e-9)


def test_train_gpt_script_on_cuda(tmp_path):
    """`scripts/train_gpt.py --device cuda` trains, evaluates, saves and samples."""
    run = subprocess.run(
        [
            sys.executable, os.path.join(ROOT, "scripts", "train_gpt.py"), "--device", "cuda",
            "--text-bytes", "2000", "--vocab-size", "256", "--block-size", "6", "--n-layer", "1",
            "--n-head", "1", "--n-embd", "4", "--batch-size", "2", "--steps", "2",
            "--eval-batches", "1", "--eval-interval", "2", "--log-interval", "1",
            "--sample-tokens", "2", "--out-dir", str(tmp_path / "run"),
        ],
        capture_output=True, text=True, env=dict(os.environ), timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "fast: GPT L=1 H=1 C=4" in run.stdout and "step     2/2" in run.stdout
    reloaded = fast.GPT.from_pretrained(tmp_path / "run")
    assert reloaded.config.n_embd == 4


def test_moving_a_model_after_building_its_optimizer_is_refused():
    model = fast.MLP([3, 4, 2], device="cpu")
    opt = fast.SGD(model.parameters(), lr=0.1)
    model.to("cuda")
    model([[0.1, 0.2, 0.3]], [1])
    model.zero_grad()
    model.backward()
    with pytest.raises(RuntimeError, match="build the optimizer after moving the model"):
        opt.step()


def test_keyword_arguments_reach_the_gpu_path_and_device_upstream_gradients_work():
    from fast.cuda.array import to_device

    rng = np.random.default_rng(3)
    q = rng.standard_normal((1, 1, 3, 2))
    out, _ = fast.attention_forward(q=to_device(q), k=to_device(q), v=to_device(q))
    np.testing.assert_allclose(to_host(out), fast.attention_forward(q, q, q)[0], atol=1e-12)
    cpu = fast.MLP([3, 2], dtype="float64")
    gpu = fast.MLP([3, 2], dtype="float64", device="cuda")
    x, g = rng.standard_normal((2, 3)), rng.standard_normal((2, 2))
    cpu(x)
    gpu(x)
    np.testing.assert_allclose(to_host(gpu.backward(to_device(g))), cpu.backward(g), atol=1e-12)


LLAMA = dict(
    vocab_size=13, hidden_size=8, intermediate_size=6, num_hidden_layers=1,
    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=6,
)  # fmt: skip


def test_llama_stays_on_the_device_with_a_kv_cache_of_its_kv_heads(tmp_path):
    model = fast.Llama(fast.LlamaConfig(**LLAMA, attention_dropout=0.1), device="cuda")
    opt = fast.AdamW(model.parameters(), lr=1e-3)
    logits, loss = model(*batch())
    assert isinstance(logits, DeviceArray) and isinstance(loss, float)
    model.zero_grad()
    model.backward()
    opt.step()
    for name, p in model.named_parameters():
        assert isinstance(p.data, DeviceArray) and isinstance(p.grad, DeviceArray), name
    cache = model.new_kv_cache(2)
    assert isinstance(cache.keys, DeviceArray) and cache.keys.shape == (1, 2, 6, 4)  # 2 KV heads
    idx = batch()[0][:, :3]  # (generation on the GPU: conformance/test_llama.py on cuda)
    model.save_pretrained(tmp_path, dtype="float64")
    cpu = fast.Llama.from_pretrained(tmp_path, dtype="float64")
    ref = reference.Llama.from_pretrained(tmp_path)
    gpu = fast.Llama.from_pretrained(tmp_path, dtype="float64", device="cuda")
    want, _ = ref(idx.tolist())
    for m in (cpu, gpu):
        np.testing.assert_allclose(to_host(m(idx)[0]), want, rtol=1e-10, atol=1e-12)

"""Model benchmarks for scripts/bench.py: GPT training throughput and the digit network's epoch.

On the CPU every contender runs in its own process (`scripts/bench_isolated.py` starts them and
has them take turns; `build` below is what each server builds), so that no library's thread pool
or environment settings touch another's:
- GPT training tokens/s: `fast` against PyTorch eager and `torch.compile` (inductor) on the CPU
  (same GPT-2 shapes, batch and AdamW), and against `reference` at the smallest shape (a couple
  of steps: pure Python is slow);
- MFU: the model's training FLOP/s (nanoGPT's 6N + 12LCT per token) over this machine's float32
  GEMM rate, measured in the same run (its own process) with a 1024^3 numpy matmul;
- LLaMA training tokens/s: `fast.Llama` against a PyTorch eager LLaMA of the same architecture
  (`torch_baselines.TorchLlama`), at GPT_SHAPES' largest shape with 6 query / 2 key-value heads
  and LLaMA's SwiGLU width 8C/3;
- the 784-16-16-10 digit network's epoch (synthetic 28x28 data, batch 32, Adam): `fast.fit`
  against a PyTorch training loop;
This module imports `fast` and `torch` only inside the functions that build their contenders.
- GPT training tokens/s on an NVIDIA GPU: `fast` with device="cuda" against PyTorch eager on the
  same GPU, at the CPU shapes plus a GPT-2-small-sized model, with the float32 matmul rates of
  our tiled kernel and of cuBLAS (through PyTorch) measured in the same run.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

GPT_SHAPES = [  # (vocab, block, layers, heads, width, batch) and the target: fast's tokens/s
    # over PyTorch eager's ("eager") or over the better of eager and torch.compile ("best")
    ((512, 64, 2, 4, 64, 16), (1.5, "eager")),
    ((2048, 128, 4, 4, 128, 8), (1.0, "best")),
    ((4096, 256, 6, 6, 384, 4), (1.0, "eager")),  # and MFU >= 50% of the numpy GEMM rate
]
MLP_JOB = (10_000, 32)  # images per epoch, batch


def timed(fn, repeats: int, inner: int = 1) -> float:
    """Median seconds per call over `repeats` rounds of `inner` calls."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t) / inner)
    return statistics.median(times)


def _gpt_batch(V, T, B, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))


def _fast_gpt_step(shape, device="cpu"):
    import fast

    V, T, L, H, C, B = shape
    config = fast.GPTConfig(vocab_size=V, block_size=T, n_layer=L, n_head=H, n_embd=C)
    model = fast.GPT(config, device=device)
    opt = fast.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    idx, tgt = _gpt_batch(V, T, B)

    sync = _cuda_synchronize if device == "cuda" else (lambda: None)

    def step():
        model(idx, tgt)
        model.zero_grad()
        model.backward()
        opt.step()
        sync()  # GPU launches are asynchronous: the step ends when its last kernel does

    return step, model.flops_per_token()


def _cuda_synchronize():
    from numba import cuda

    cuda.synchronize()


def _torch_gpt_step(shape, compiled: bool = False):
    import torch
    from torch_baselines import TorchGPT

    V, T, L, H, C, B = shape
    torch.manual_seed(0)
    model = TorchGPT(V, T, L, H, C)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    if compiled:
        model = torch.compile(model)  # inductor: compiled on the first (warm-up) steps
    idx, tgt = (torch.tensor(a) for a in _gpt_batch(V, T, B))

    def step():
        loss = model(idx, tgt)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def _reference_gpt_step(shape):
    import reference

    V, T, L, H, C, B = shape
    model = reference.GPT(
        reference.GPTConfig(vocab_size=V, block_size=T, n_layer=L, n_head=H, n_embd=C)
    )
    opt = reference.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    idx, tgt = (a.tolist() for a in _gpt_batch(V, T, B))

    def step():
        model(idx, tgt)
        model.zero_grad()
        model.backward()
        opt.step()

    return step


LLAMA_SHAPES = [  # (vocab, block, layers, heads, KV heads, width, SwiGLU width, batch)
    (4096, 256, 6, 6, 2, 384, 1024, 4),
]


def _llama_config(shape):
    import fast

    V, T, L, H, H_kv, C, I, _ = shape
    return fast.LlamaConfig(
        vocab_size=V, hidden_size=C, intermediate_size=I, num_hidden_layers=L,
        num_attention_heads=H, num_key_value_heads=H_kv, max_position_embeddings=T,
        tie_word_embeddings=True,
    )  # fmt: skip


def _fast_llama_step(shape, device="cpu"):
    import fast

    V, T, B = shape[0], shape[1], shape[-1]
    model = fast.Llama(_llama_config(shape), device=device)
    opt = fast.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    idx, tgt = _gpt_batch(V, T, B)
    sync = _cuda_synchronize if device == "cuda" else (lambda: None)

    def step():
        model(idx, tgt)
        model.zero_grad()
        model.backward()
        opt.step()
        sync()

    return step, model.flops_per_token()


def _torch_llama_step(shape):
    import torch
    from torch_baselines import TorchLlama

    V, T, L, H, H_kv, C, I, B = shape
    torch.manual_seed(0)
    model = TorchLlama(V, T, L, H, H_kv, C, I)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    idx, tgt = (torch.tensor(a) for a in _gpt_batch(V, T, B))

    def step():
        loss = model(idx, tgt)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def _mlp_data(n: int):
    rng = np.random.default_rng(0)
    return rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, n)


def _fast_mlp_epoch(n: int, batch: int):
    import fast

    x, y = _mlp_data(n)
    model = fast.MLP([784, 16, 16, 10], activation="sigmoid")
    opt = fast.Adam(model.parameters(), lr=1e-3)
    return lambda: fast.fit(model, opt, x, y, batch_size=batch, epochs=1)


def _torch_mlp_epoch(n: int, batch: int):
    import torch
    from torch_baselines import torch_mlp

    x, y = _mlp_data(n)
    tm = torch_mlp([784, 16, 16, 10])
    topt = torch.optim.Adam(tm.parameters(), lr=1e-3)
    tx, ty = torch.tensor(x), torch.tensor(y)
    loss_fn = torch.nn.CrossEntropyLoss()

    def epoch():
        perm = torch.randperm(n)
        for s in range(0, n, batch):
            i = perm[s : s + batch]
            loss = loss_fn(tm(tx[i]), ty[i])
            topt.zero_grad()
            loss.backward()
            topt.step()

    return epoch


def _reference_mlp_epoch(n: int, batch: int):
    import reference

    x, y = _mlp_data(n)
    model = reference.MLP([784, 16, 16, 10], activation="sigmoid")
    opt = reference.Adam(model.parameters(), lr=1e-3)
    xs, ys = x.tolist(), y.tolist()
    return lambda: reference.fit(model, opt, xs, ys, batch_size=batch, epochs=1)


def _numpy_gemm(n: int):
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    b = a.copy()
    return lambda: a @ b


def build(section: str, name: str, shape):
    """(step, info) for one contender of a process-isolated benchmark (bench_isolated.py):
    `step()` is what is timed, info["units"] what one step does (tokens, images, FLOPs) and
    info["flops_per_unit"] where known (fast's model FLOPs, for MFU)."""
    if section == "gpt":
        V, T, L, H, C, B = shape
        shape = tuple(shape)
        if name == "fast":
            step, flops_per_token = _fast_gpt_step(shape)
            return step, {"units": B * T, "flops_per_unit": flops_per_token}
        if name in ("torch", "torch.compile"):
            return _torch_gpt_step(shape, compiled=name == "torch.compile"), {"units": B * T}
        if name == "reference":  # pure Python: one step, no warm-up to speak of
            return _reference_gpt_step(shape), {"units": B * T, "warmup": 0}
    if section == "llama":
        tokens = shape[1] * shape[-1]
        if name == "fast":
            step, flops_per_token = _fast_llama_step(tuple(shape))
            return step, {"units": tokens, "flops_per_unit": flops_per_token}
        if name == "torch":
            return _torch_llama_step(tuple(shape)), {"units": tokens}
    if section == "mlp":
        n, batch = shape
        makers = {"fast": _fast_mlp_epoch, "torch": _torch_mlp_epoch}
        makers["reference"] = _reference_mlp_epoch
        if name in makers:
            return makers[name](n, batch), {"units": n, "warmup": 0 if name == "reference" else 1}
    if section == "gemm" and name == "numpy":
        (n,) = shape
        return _numpy_gemm(n), {"units": 2 * n**3}
    raise ValueError(f"no contender {name!r} in section {section!r}")


# -- on an NVIDIA GPU ----------------------------------------------------------------------------
GPT2_SMALL = (50257, 1024, 12, 12, 768, 8)  # GPT-2 small's shape, batch 8 x 1024 tokens
CUDA_SHAPES = [shape for shape, _ in GPT_SHAPES] + [GPT2_SMALL]
TINY_CUDA_SHAPES = [(16, 8, 1, 2, 8, 2)]  # the simulator's smoke test of this code path


def _torch_cuda_gpt_step(shape):
    import torch
    from torch_baselines import TorchGPT

    V, T, L, H, C, B = shape
    torch.manual_seed(0)
    model = TorchGPT(V, T, L, H, C).cuda()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    idx, tgt = (torch.tensor(a).cuda() for a in _gpt_batch(V, T, B))

    def step():
        loss = model(idx, tgt)
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss.item()  # synchronize, as ours does

    return step


def our_gemm_gflops(n: int) -> float:
    """float32 GFLOP/s of fast.cuda's tiled matmul on n x n x n."""
    from fast.cuda.array import to_device

    a = to_device(np.random.default_rng(0).standard_normal((n, n)).astype(np.float32))

    def run():
        (a @ a).item() if n == 1 else (a @ a)[0, 0].item()

    run()
    return 2 * n**3 / timed(run, 3) / 1e9


def torch_gemm_gflops(n: int) -> float | None:
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    a = torch.randn(n, n, device="cuda")
    torch.backends.cuda.matmul.allow_tf32 = False  # plain float32, as ours

    def run():
        (a @ a)[0, 0].item()

    run()
    return 2 * n**3 / timed(run, 3) / 1e9


def bench_gpt_cuda(repeats: int = 3, tiny: bool = False) -> list[dict]:
    """Rows of GPT training throughput on the GPU; prints a table as it goes."""
    try:
        import torch

        have_torch = torch.cuda.is_available()
    except ImportError:
        have_torch = False
    n = 64 if tiny else 4096
    ours, theirs = our_gemm_gflops(n), torch_gemm_gflops(n)
    print(
        f"float32 matmul {n}^3 (this run): fast.cuda tiled kernel {ours:.1f} GFLOP/s; "
        + (f"cuBLAS via PyTorch {theirs:.1f} GFLOP/s" if theirs else "cuBLAS: no CUDA PyTorch")
    )
    print(
        f"{'shape (V, T, L, H, C, B)':34s} {'fast tok/s':>11s} {'torch tok/s':>12s} "
        f"{'fast/torch':>10s} {'fast TFLOP/s':>12s}"
    )
    rows = []
    for shape in TINY_CUDA_SHAPES if tiny else CUDA_SHAPES:
        tokens = shape[-1] * shape[1]
        fstep, flops_per_token = _fast_gpt_step(shape, device="cuda")
        fstep()  # compile / warm up
        tstep = _torch_cuda_gpt_step(shape) if have_torch else None
        if tstep:
            tstep()
        f_times, t_times = [], []
        for _ in range(repeats):
            f_times.append(timed(fstep, 1, 1))
            if tstep:
                t_times.append(timed(tstep, 1, 1))
        row = {"shape": shape, "fast": tokens / statistics.median(f_times)}
        row["torch"] = tokens / statistics.median(t_times) if t_times else None
        row["tflops"] = row["fast"] * flops_per_token / 1e12
        rows.append(row)
        ratio = row["fast"] / row["torch"] if row["torch"] else float("nan")
        print(
            f"{str(shape):34s} {row['fast']:11.0f} {(row['torch'] or float('nan')):12.0f} "
            f"{ratio:10.3f} {row['tflops']:12.3f}",
            flush=True,
        )
    return rows

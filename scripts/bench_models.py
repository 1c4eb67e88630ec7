"""Model benchmarks for scripts/bench.py: GPT training throughput and the digit network's epoch.

Everything is measured in one run, side by side, so the ratios compare like with like:
- GPT training tokens/s: `fast` against PyTorch eager on the CPU (same GPT-2 shapes, batch and
  AdamW), and against `reference` at the smallest shape (a couple of steps: pure Python is slow);
- MFU: the model's training FLOP/s (nanoGPT's 6N + 12LCT per token) over this machine's float32
  GEMM rate, measured in the same run with a 1024^3 numpy matmul;
- LLaMA training tokens/s: `fast.Llama` against a PyTorch eager LLaMA of the same architecture
  (`torch_baselines.TorchLlama`), at GPT_SHAPES' largest shape with 6 query / 2 key-value heads
  and LLaMA's SwiGLU width 8C/3;
- the 784-16-16-10 digit network's epoch (synthetic 28x28 data, batch 32, Adam): `fast.fit`
  against a PyTorch training loop;
- GPT training tokens/s on an NVIDIA GPU: `fast` with device="cuda" against PyTorch eager on the
  same GPU, at the CPU shapes plus a GPT-2-small-sized model, with the float32 matmul rates of
  our tiled kernel and of cuBLAS (through PyTorch) measured in the same run.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

import fast
import reference

GPT_SHAPES = [  # (vocab, block, layers, heads, width, batch) and the target ratio
    ((512, 64, 2, 4, 64, 16), 1.0),
    ((2048, 128, 4, 4, 128, 8), 1.0),
    ((4096, 256, 6, 6, 384, 4), 0.8),
]


def timed(fn, repeats: int, inner: int = 1) -> float:
    """Median seconds per call over `repeats` rounds of `inner` calls."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t) / inner)
    return statistics.median(times)


def gemm_gflops(n: int = 1024) -> float:
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    b = a.copy()
    a @ b
    return 2 * n**3 / timed(lambda: a @ b, 5) / 1e9


def _gpt_batch(V, T, B, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))


def _fast_gpt_step(shape, device="cpu"):
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


def _torch_gpt_step(shape):
    import torch
    from torch_baselines import TorchGPT

    V, T, L, H, C, B = shape
    torch.manual_seed(0)
    model = TorchGPT(V, T, L, H, C)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    idx, tgt = (torch.tensor(a) for a in _gpt_batch(V, T, B))

    def step():
        loss = model(idx, tgt)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def _reference_gpt_step(shape):
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


def bench_gpt(with_reference: bool = True, repeats: int = 5) -> list[dict]:
    """Rows of GPT training throughput; prints a table as it goes."""
    try:
        import torch  # noqa: F401

        have_torch = True
    except ImportError:
        have_torch = False
    peak = gemm_gflops()
    print(f"float32 GEMM peak (numpy 1024^3, this run): {peak:.1f} GFLOP/s")
    print(
        f"{'shape (V, T, L, H, C, B)':28s} {'fast tok/s':>11s} {'torch tok/s':>12s} "
        f"{'fast/torch':>10s} {'target':>7s} {'MFU':>6s} {'ref tok/s':>10s} {'fast/ref':>9s}"
    )
    rows = []
    for i, (shape, target) in enumerate(GPT_SHAPES):
        V, T, L, H, C, B = shape
        tokens = B * T
        fstep, flops_per_token = _fast_gpt_step(shape)
        fstep()
        fstep()  # compile / warm caches
        row = {"shape": shape, "target": target}
        if have_torch:
            tstep = _torch_gpt_step(shape)
            tstep()
            tstep()
        f_times, t_times = [], []
        for _ in range(repeats):  # alternate, so both see the same machine state
            f_times.append(timed(fstep, 1, 2))
            if have_torch:
                t_times.append(timed(tstep, 1, 2))
        row["fast"] = tokens / statistics.median(f_times)
        row["mfu"] = row["fast"] * flops_per_token / (peak * 1e9)
        row["torch"] = tokens / statistics.median(t_times) if have_torch else None
        if with_reference and i == 0:
            rstep = _reference_gpt_step(shape)
            row["reference"] = tokens / timed(rstep, 1, 1)
        else:
            row["reference"] = None
        rows.append(row)
        ratio = row["fast"] / row["torch"] if row["torch"] else None
        ref_ratio = row["fast"] / row["reference"] if row["reference"] else None
        print(
            f"{str(shape):28s} {row['fast']:11.0f} "
            f"{(row['torch'] or float('nan')):12.0f} "
            f"{(ratio or float('nan')):10.2f} {target:7.1f} {row['mfu']:6.1%} "
            f"{(row['reference'] or float('nan')):10.1f} {(ref_ratio or float('nan')):9.0f}",
            flush=True,
        )
    return rows


LLAMA_SHAPES = [  # (vocab, block, layers, heads, KV heads, width, SwiGLU width, batch)
    (4096, 256, 6, 6, 2, 384, 1024, 4),
]


def _llama_config(shape):
    V, T, L, H, H_kv, C, I, _ = shape
    return fast.LlamaConfig(
        vocab_size=V, hidden_size=C, intermediate_size=I, num_hidden_layers=L,
        num_attention_heads=H, num_key_value_heads=H_kv, max_position_embeddings=T,
        tie_word_embeddings=True,
    )  # fmt: skip


def _fast_llama_step(shape, device="cpu"):
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


def bench_llama(repeats: int = 5, shapes=None) -> list[dict]:
    """Rows of LLaMA training throughput, fast against PyTorch eager, alternating; prints a table
    as it goes. `shapes` defaults to LLAMA_SHAPES."""
    try:
        import torch  # noqa: F401

        have_torch = True
    except ImportError:
        have_torch = False
    peak = gemm_gflops()
    print(f"float32 GEMM peak (numpy 1024^3, this run): {peak:.1f} GFLOP/s")
    print(
        f"{'shape (V, T, L, H, Hkv, C, I, B)':36s} {'fast tok/s':>11s} {'torch tok/s':>12s} "
        f"{'fast/torch':>10s} {'MFU':>6s}"
    )
    rows = []
    for shape in LLAMA_SHAPES if shapes is None else shapes:
        tokens = shape[1] * shape[-1]
        fstep, flops_per_token = _fast_llama_step(shape)
        fstep()
        fstep()  # compile / warm caches
        tstep = _torch_llama_step(shape) if have_torch else None
        if tstep:
            tstep()
            tstep()
        f_times, t_times = [], []
        for _ in range(repeats):  # alternate, so both see the same machine state
            f_times.append(timed(fstep, 1, 2))
            if tstep:
                t_times.append(timed(tstep, 1, 2))
        row = {"shape": shape, "fast": tokens / statistics.median(f_times)}
        row["torch"] = tokens / statistics.median(t_times) if tstep else None
        row["mfu"] = row["fast"] * flops_per_token / (peak * 1e9)
        rows.append(row)
        ratio = row["fast"] / row["torch"] if row["torch"] else float("nan")
        print(
            f"{str(shape):36s} {row['fast']:11.0f} {(row['torch'] or float('nan')):12.0f} "
            f"{ratio:10.2f} {row['mfu']:6.1%}",
            flush=True,
        )
    return rows


def bench_mlp(n: int = 10_000, batch: int = 32, repeats: int = 3) -> dict:
    """The 784-16-16-10 network: one epoch of Adam over n synthetic images."""
    rng = np.random.default_rng(0)
    x = rng.random((n, 784), dtype=np.float32)
    y = rng.integers(0, 10, n)
    model = fast.MLP([784, 16, 16, 10], activation="sigmoid")
    opt = fast.Adam(model.parameters(), lr=1e-3)

    def fast_epoch():
        fast.fit(model, opt, x, y, batch_size=batch, epochs=1)

    fast_epoch()
    result = {"n": n, "batch": batch, "fast": timed(fast_epoch, repeats)}
    try:
        import torch
        from torch_baselines import torch_mlp
    except ImportError:
        result["torch"] = None
    else:
        tm = torch_mlp([784, 16, 16, 10])
        topt = torch.optim.Adam(tm.parameters(), lr=1e-3)
        tx, ty = torch.tensor(x), torch.tensor(y)
        loss_fn = torch.nn.CrossEntropyLoss()

        def torch_epoch():
            perm = torch.randperm(n)
            for s in range(0, n, batch):
                i = perm[s : s + batch]
                loss = loss_fn(tm(tx[i]), ty[i])
                topt.zero_grad()
                loss.backward()
                topt.step()

        torch_epoch()
        result["torch"] = timed(torch_epoch, repeats)
    # the reference on a tenth of the data, scaled: for scale only
    rmodel = reference.MLP([784, 16, 16, 10], activation="sigmoid")
    ropt = reference.Adam(rmodel.parameters(), lr=1e-3)
    m = n // 10
    xs, ys = x[:m].tolist(), y[:m].tolist()
    result["reference"] = (
        timed(lambda: reference.fit(rmodel, ropt, xs, ys, batch_size=batch, epochs=1), 1) * 10
    )
    t = result["torch"]
    print(
        f"784-16-16-10, one epoch of {n} images, batch {batch}: fast {result['fast']:.3f}s, "
        f"torch {t if t is None else round(t, 3)}s"
        + (f" -> fast is {t / result['fast']:.2f}x faster (target 2x)" if t else "")
        + f"; reference {result['reference']:.1f}s (from {m} images, scaled)"
    )
    return result


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

"""Benchmarks: the fast backend against the production libraries, measured in the same run.

    python scripts/bench.py tokenizer                  # one section
    python scripts/bench.py all                        # every section
    python scripts/bench.py tokenizer --mb 10 --vocab-size 8192 --repeat 3
    python scripts/bench.py tokenizer --reference run  # also time the reference once (minutes)
    python scripts/bench.py gpt --reference run        # GPT training vs PyTorch (and reference)
    python scripts/bench.py llama                      # LLaMA training vs a PyTorch LLaMA
    python scripts/bench.py mlp                        # the digit network's epoch vs PyTorch
    python scripts/bench.py gpt-cuda                   # GPT training on an NVIDIA GPU vs PyTorch

Each section is one function, `bench_<name>(args)`, registered in SECTIONS; it prints the machine,
what it timed, and a table of median times and ratios. The model sections (gpt, mlp) run every
contender in its own process, taking turns round after round (`scripts/bench_isolated.py`):
medians over --repeat rounds with their spread. The tokenizer section times each library in this
process, one after the other (their work is single-threaded here except where noted). Optional
contenders (a library that is not installed) are reported as skipped, never estimated.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import sysconfig
import tempfile
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for path in (ROOT, os.path.join(ROOT, "scripts")):
    if path not in sys.path:
        sys.path.insert(0, path)

import bench_isolated  # noqa: E402  (first: it keeps the environment before any library runs)
import common  # noqa: E402  (one-line argument errors)

import reference  # noqa: E402  (the corpus loader and the oracle)

# ---------------------------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------------------------


def machine() -> str:
    """One line about the machine: CPU model, cores, load, versions."""
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        model = names[0] if names else model
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    import numba
    import numpy

    return (
        f"{model}, {os.cpu_count()} cores, load average {load:.1f} at start; Python "
        f"{platform.python_version()}, numpy {numpy.__version__}, numba {numba.__version__}"
    )


def interleaved(contenders: dict, repeat: int) -> dict:
    """{name: (median seconds, last result)}: the contenders run in turn, `repeat` rounds, so
    that a change in the machine's load hits them all alike."""
    times = {name: [] for name in contenders}
    results = {}
    for _ in range(repeat):
        for name, run in contenders.items():
            start = time.perf_counter()
            results[name] = run()
            times[name].append(time.perf_counter() - start)
    return {name: (statistics.median(times[name]), results[name]) for name in contenders}


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    """A Markdown table, so the output pastes into docs/benchmarks.md as it is."""
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join(" --- " for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def optional(module: str):
    """The module, or None when it is not installed (the contender is then skipped)."""
    try:
        return __import__(module)
    except ImportError:
        return None


# ---------------------------------------------------------------------------------------------
# Tokenizer: training against Hugging Face `tokenizers`, encoding against `tiktoken`
# ---------------------------------------------------------------------------------------------


def bench_corpus(max_bytes: int) -> tuple[str, str]:
    """(text, description): the default corpus (the standard library's top-level *.py files,
    `reference.load_text_corpus`), extended with the sources of its subpackages (sorted walk,
    site-packages left out) when `max_bytes` asks for more, cut at `max_bytes`."""
    text = reference.load_text_corpus()
    size = len(text.encode("utf-8"))
    parts, files = [text], 0
    folder = sysconfig.get_paths()["stdlib"]
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in ("site-packages", "__pycache__"))
        if size >= max_bytes:
            break
        if root == folder:
            continue  # the top level is the default corpus already
        for name in sorted(names):
            if not name.endswith(".py") or size >= max_bytes:
                continue
            try:
                with open(os.path.join(root, name), encoding="utf-8") as f:
                    part = f.read()
            except (UnicodeDecodeError, OSError):
                continue
            parts.append(part)
            size += len(part.encode("utf-8"))
            files += 1
    text = "".join(parts).encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore")
    default = len(parts[0].encode("utf-8"))
    described = f"{len(text.encode('utf-8')):,} bytes: "
    if files:
        described += (
            f"the default corpus (reference.load_text_corpus(), all of its {default:,} bytes) "
            f"plus {files} .py files of the standard library's subpackages, in sorted order"
        )
    else:
        described += (
            f"the start of the default corpus (reference.load_text_corpus(), {default:,} bytes)"
        )
    return text, described


def split_at_lines(text: str, n: int) -> list[str]:
    """`text` cut into about n pieces at line ends: "".join(pieces) == text."""
    pieces, start, step = [], 0, max(1, len(text) // n)
    while start < len(text):
        end = text.find("\n", start + step)
        end = len(text) if end < 0 else end + 1
        pieces.append(text[start:end])
        start = end
    return pieces


def hf_train(text_path: str, vocab_size: int):
    """Hugging Face's byte-level BPE trainer on the GPT-2 split, from a file (its fastest path)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train([text_path], trainer)
    return tok


def tiktoken_encoding(tok, folder: str):
    """tiktoken.Encoding over `tok`'s exported rank file (read by tiktoken's own loader)."""
    import tiktoken
    import tiktoken.load

    path = os.path.join(folder, "ranks.tiktoken")
    tok.save_tiktoken(path)
    saved = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = ""  # read the local file, cache nothing
    try:
        ranks = tiktoken.load.load_tiktoken_bpe(path)
    finally:
        if saved is None:
            del os.environ["TIKTOKEN_CACHE_DIR"]
        else:
            os.environ["TIKTOKEN_CACHE_DIR"] = saved
    return tiktoken.Encoding(
        name="bench",
        pat_str=reference.SPLIT_PATTERNS[tok.pattern],
        mergeable_ranks=ranks,
        special_tokens={},
    )


def bench_tokenizer(args) -> None:
    """Training time against HF `tokenizers`, encoding MB/s against `tiktoken`, and the
    reference's time on the same job for scale (with --reference run)."""
    import fast.bpe
    from fast.cpu.bpe import count_chunks
    from fast.pretokenize import MODES, split_batch

    text, described = bench_corpus(int(args.mb * 1e6))
    mb = len(text.encode("utf-8")) / 1e6
    data, bounds, _ = split_batch([text], MODES["gpt2"])
    _, starts, _ = count_chunks(data, bounds)
    print(f"\n## Tokenizer\n\n{machine()}")
    print(f"corpus: {described}")
    print(
        f"{len(bounds) - 1:,} chunks under the gpt2 split, {len(starts) - 1:,} distinct ones of "
        f"two bytes or more ({starts[-1]:,} bytes): what training holds in memory"
    )
    print(f"job: byte-level BPE, gpt2 split, vocab_size {args.vocab_size}; {args.repeat} rounds")

    # Compile (or load from the cache) every kernel before timing.
    warm = fast.bpe.BPETokenizer("gpt2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warm.train("warm up, warm up: 12 times", 300)
    warm.decode(warm.encode_ordinary_batch(["warm up", "again"])[0])

    def train_fast():
        tok = fast.bpe.BPETokenizer("gpt2")
        tok.train(text, args.vocab_size)
        return tok

    tokenizers, tiktoken = optional("tokenizers"), optional("tiktoken")
    with tempfile.TemporaryDirectory() as folder:
        contenders = {"fast": train_fast}
        if tokenizers is not None:
            path = os.path.join(folder, "corpus.txt")
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            contenders["hf"] = lambda: hf_train(path, args.vocab_size)
        trained = interleaved(contenders, args.repeat)
        tok = trained["fast"][1]
        enc = tiktoken_encoding(tok, folder) if tiktoken is not None else None

    fast_train = trained["fast"][0]
    train_rows = [["fast.BPETokenizer.train", f"{fast_train:.2f} s", "1.00"]]
    if "hf" in trained:
        hf_time = trained["hf"][0]
        name = f"tokenizers {tokenizers.__version__} BpeTrainer (ByteLevel, from a file)"
        train_rows.append([name, f"{hf_time:.2f} s", f"{fast_train / hf_time:.2f}"])
    else:
        train_rows.append(["tokenizers", "not installed", "skipped"])

    files = split_at_lines(text, 1000)  # the same bytes as a batch of 1,000 texts
    threads = os.cpu_count() or 1
    contenders = {
        "fast": lambda: tok.encode_ordinary(text),
        "fast batch": lambda: tok.encode_ordinary_batch(files),
    }
    if enc is not None:
        contenders["tiktoken"] = lambda: enc.encode_ordinary(text)
        contenders["tiktoken batch"] = lambda: enc.encode_ordinary_batch(files, num_threads=threads)
    encoded = interleaved(contenders, args.repeat)
    fast_encode, ids = encoded["fast"]
    fast_batch, batch_ids = encoded["fast batch"]
    encode_rows = [
        ["fast encode_ordinary (one text)", f"{mb / fast_encode:.2f} MB/s", "1.00", ""],
        ["fast encode_ordinary_batch (1,000 texts)", f"{mb / fast_batch:.2f} MB/s", "1.00", ""],
    ]
    if enc is not None:
        tt_encode, tt_ids = encoded["tiktoken"]
        tt_batch, tt_batch_ids = encoded["tiktoken batch"]
        encode_rows += [
            [
                f"tiktoken {tiktoken.__version__} encode_ordinary (one text)",
                f"{mb / tt_encode:.2f} MB/s",
                f"{tt_encode / fast_encode:.2f}",
                "yes" if tt_ids == ids else "NO",
            ],
            [
                f"tiktoken encode_ordinary_batch (1,000 texts, {threads} threads)",
                f"{mb / tt_batch:.2f} MB/s",
                f"{tt_batch / fast_batch:.2f}",
                "yes" if tt_batch_ids == batch_ids else "NO",
            ],
        ]
    else:
        encode_rows.append(["tiktoken", "not installed", "skipped", ""])

    if args.reference == "run":
        ref_tok = reference.BPETokenizer("gpt2")
        ref_train, _ = interleaved({"reference": lambda: ref_tok.train(text, args.vocab_size)}, 1)[
            "reference"
        ]
        same = "yes" if ref_tok.merges == tok.merges else "NO"
        train_rows.append(
            [
                f"reference.BPETokenizer.train (one run; identical merges: {same})",
                f"{ref_train:.1f} s",
                f"{fast_train / ref_train:.2g}",
            ]
        )
        ref_encode, ref_ids = interleaved({"reference": lambda: ref_tok.encode_ordinary(text)}, 1)[
            "reference"
        ]
        encode_rows.append(
            [
                "reference encode_ordinary (one run)",
                f"{mb / ref_encode:.3f} MB/s",
                f"{ref_encode / fast_encode:.3g}",
                "yes" if ref_ids == ids else "NO",
            ]
        )
    print_table(
        "Training",
        ["trainer", "median time", "fast time ÷ this time (target ≤ 1.5)"],
        train_rows,
    )
    print_table(
        "Encoding",
        ["encoder", "median throughput", "fast speed ÷ this speed (target ≥ 0.67)", "same ids"],
        encode_rows,
    )


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------


def figure(seconds: list[float], units: float) -> str:
    """units/s as "median (min-max)" over the rounds."""
    med, lo, hi = bench_isolated.summary(seconds)
    return f"{units / med:,.0f} ({units / hi:,.0f}-{units / lo:,.0f})"


def rate(result: dict) -> float | None:
    """Median units per second of a contender's result (None when it was skipped)."""
    if "seconds" not in result:
        return None
    return result["info"]["units"] / statistics.median(result["seconds"])


def bench_gpt(args) -> None:
    """GPT training tokens/s: fast vs PyTorch eager vs torch.compile (CPU), each in its own
    process, with MFU against the numpy float32 GEMM rate of the same run; and the reference."""
    import bench_models

    print(f"\n== GPT training throughput ==\n{machine()}")
    gemm = bench_isolated.measure("gemm", [1024], ["numpy"], args.repeat, 3)["numpy"]
    peak = rate(gemm)
    gflops = figure(gemm["seconds"], gemm["info"]["units"] / 1e9)
    print(f"float32 GEMM (numpy 1024^3, its own process): {gflops} GFLOP/s")
    header = ["shape (V, T, L, H, C, B)", "fast tok/s", "eager tok/s", "compile tok/s"]
    header += ["fast/eager", "fast/best", "target", "MFU"]
    rows = []
    for i, (shape, (target, against)) in enumerate(bench_models.GPT_SHAPES):
        names = ["fast", "torch", "torch.compile"]
        res = bench_isolated.measure("gpt", list(shape), names, args.repeat, 2)
        fast_rate, eager, compiled = (rate(res[n]) for n in names)
        best = max(r for r in (eager, compiled) if r) if (eager or compiled) else None
        cells = [
            figure(res[n]["seconds"], res[n]["info"]["units"]) if rate(res[n]) else "skipped"
            for n in names
        ]
        mfu = fast_rate * res["fast"]["info"]["flops_per_unit"] / peak
        versus = eager if against == "eager" else best
        met = "met" if versus and fast_rate / versus >= target else "not met"
        rows.append(
            [
                str(tuple(shape)),
                *cells,
                f"{fast_rate / eager:.2f}x" if eager else "-",
                f"{fast_rate / best:.2f}x" if best else "-",
                f">= {target}x {against}: {met}",
                f"{mfu:.1%}",
            ]
        )
        if args.reference == "run" and i == 0:
            ref = bench_isolated.measure("gpt", list(shape), ["reference"], 1, 1)["reference"]
            print(
                f"reference at {shape}: {rate(ref):,.1f} tok/s (fast {fast_rate / rate(ref):,.0f}x)"
            )
    print_table(
        f"median over {args.repeat} alternated rounds (min-max), each contender in its own process",
        header,
        rows,
    )


def bench_llama(args) -> None:
    """LLaMA training tokens/s: fast vs a PyTorch eager LLaMA of the same architecture (CPU),
    each in its own process, with MFU against the numpy float32 GEMM rate of the same run."""
    import bench_models

    print(f"\n== LLaMA training throughput ==\n{machine()}")
    gemm = bench_isolated.measure("gemm", [1024], ["numpy"], args.repeat, 3)["numpy"]
    gflops = figure(gemm["seconds"], gemm["info"]["units"] / 1e9)
    print(f"float32 GEMM (numpy 1024^3, its own process): {gflops} GFLOP/s")
    header = ["shape (V, T, L, H, H_kv, C, I, B)", "fast tok/s", "eager tok/s", "fast/eager"]
    rows = []
    for shape in bench_models.LLAMA_SHAPES:
        res = bench_isolated.measure("llama", list(shape), ["fast", "torch"], args.repeat, 2)
        fast_rate, eager = rate(res["fast"]), rate(res["torch"])
        cells = [
            figure(res[n]["seconds"], res[n]["info"]["units"]) if rate(res[n]) else "skipped"
            for n in ("fast", "torch")
        ]
        mfu = fast_rate * res["fast"]["info"]["flops_per_unit"] / rate(gemm)
        rows.append(
            [str(tuple(shape)), *cells, f"{fast_rate / eager:.2f}x" if eager else "-"]
            + [f"{mfu:.1%}"]
        )
    print_table(
        f"median over {args.repeat} alternated rounds (min-max), each contender in its own process",
        [*header, "MFU"],
        rows,
    )


def bench_mlp(args) -> None:
    """The 784-16-16-10 digit network's epoch: fast vs PyTorch, each in its own process (and the
    reference on a tenth of the images, scaled)."""
    import bench_models

    n, batch = bench_models.MLP_JOB
    print(f"\n== 784-16-16-10 epoch ==\n{machine()}")
    res = bench_isolated.measure("mlp", [n, batch], ["fast", "torch"], args.repeat, 1)
    f, t = (statistics.median(res[k]["seconds"]) if "seconds" in res[k] else None for k in res)
    spread = {k: bench_isolated.summary(v["seconds"]) for k, v in res.items() if "seconds" in v}
    line = ", ".join(f"{k} {m:.3f}s ({lo:.3f}-{hi:.3f})" for k, (m, lo, hi) in spread.items())
    print(f"one epoch of {n:,} images, batch {batch}, median over {args.repeat} rounds: {line}")
    if t:
        print(f"  -> fast is {t / f:.2f}x faster than PyTorch (target: at least 3x)")
    ref = bench_isolated.measure("mlp", [n // 10, batch], ["reference"], 1, 1)["reference"]
    print(f"reference: {ref['seconds'][0] * 10:.1f}s per epoch (from {n // 10:,} images, scaled)")


def bench_gpt_cuda(args) -> None:
    """GPT training tokens/s on an NVIDIA GPU: fast with device="cuda" vs PyTorch on the same
    GPU. Under NUMBA_ENABLE_CUDASIM=1 it runs one tiny shape (a smoke test, not a measurement)."""
    import bench_models

    from fast.cuda.launch import SIMULATOR, cuda_available

    if not cuda_available():
        print("\n== GPT training on the GPU ==\nskipped: no CUDA GPU here (numba.cuda found none)")
        return
    where = "the CUDA simulator (smoke test only)" if SIMULATOR else gpu_name()
    print(f"\n== GPT training on the GPU ==\n{machine()}\nGPU: {where}")
    bench_models.bench_gpt_cuda(repeats=args.repeat, tiny=SIMULATOR)


def gpu_name() -> str:
    from numba import cuda

    device = cuda.get_current_device()
    name = device.name.decode() if isinstance(device.name, bytes) else device.name
    return f"{name}, compute capability {device.compute_capability}"


SECTIONS = {
    "tokenizer": bench_tokenizer,
    "gpt": bench_gpt,
    "llama": bench_llama,
    "mlp": bench_mlp,
    "gpt-cuda": bench_gpt_cuda,
}


def main(argv: list[str] | None = None) -> int:
    parser = common.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("section", choices=[*SECTIONS, "all"], help="what to benchmark")
    parser.add_argument(
        "--repeat", type=common.positive_int, default=3, help="runs per contender (median)"
    )
    parser.add_argument(
        "--mb", type=common.positive_float, default=10.0, help="tokenizer: corpus size in MB"
    )
    parser.add_argument(
        "--vocab-size", type=common.positive_int, default=8192, help="tokenizer: vocabulary"
    )
    parser.add_argument(
        "--reference",
        choices=["skip", "run"],
        default="skip",
        help="also time the reference once on the same job (minutes for the tokenizer)",
    )
    args = parser.parse_args(argv)
    for name in SECTIONS if args.section == "all" else [args.section]:
        SECTIONS[name](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(common.cli(main))

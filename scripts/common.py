"""Pieces the training scripts share: backend choice, corpus + tokenizer, batches, progress.

Scripts import this as `common` (they put their own folder on sys.path). Nothing under
`reference/` or `fast/` imports it.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import sys
import time
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import reference  # noqa: E402
from reference.rng import below, random_u32s  # noqa: E402


def add_backend_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--backend",
        default=None,
        choices=["reference", "fast"],
        help="which implementation of the API to train with (default: reference, or fast "
        "with --device cuda)",
    )
    p.add_argument(
        "--device",
        default="cpu",
        choices=["cpu", "cuda"],
        help="where the fast backend keeps the model: cpu, or cuda (an NVIDIA GPU; or Numba's "
        "simulator with NUMBA_ENABLE_CUDASIM=1, very slowly)",
    )
    p.add_argument("--seed", type=int, default=0)


def finish_backend_args(args: argparse.Namespace) -> argparse.Namespace:
    """Resolve the backend default (--device cuda means fast) and refuse what cannot run."""
    if args.backend is None:
        args.backend = "fast" if args.device == "cuda" else "reference"
    if args.device == "cuda" and args.backend != "fast":
        raise SystemExit(
            "--device cuda runs the fast backend's CUDA kernels: use --backend fast "
            "(or leave --backend out)"
        )
    if args.device == "cuda":
        from fast.device import resolve_device

        try:
            resolve_device("cuda")  # no GPU (and no simulator): say so now, not after the data
        except RuntimeError as e:
            raise SystemExit(str(e)) from None
    return args


def model_options(args: argparse.Namespace) -> dict:
    """Keyword arguments for a model constructor: the device, when it is not the default."""
    return {"device": args.device} if args.device != "cpu" else {}


def load_backend(name: str, *required: str):
    """Import the backend module, or exit with a clear message if it lacks what we need."""
    m = importlib.import_module(name)
    missing = [r for r in required if not hasattr(m, r)]
    if missing:
        raise SystemExit(f"the {name!r} backend does not implement {', '.join(missing)} yet")
    return m


def corpus_ids(
    text_bytes: int, vocab_size: int, path: str | None = None, cache_dir: str | None = None
):
    """(tokenizer, ids) for a slice of the default corpus (or `path`), BPE-tokenized.

    The tokenizer is trained on the same slice (cached in `cache_dir` when given, so a second run
    does not train it again).
    """
    text = reference.load_text_corpus(max_bytes=text_bytes, path=path)
    tok_path = os.path.join(cache_dir, f"tokenizer-{vocab_size}.bpe") if cache_dir else None
    if tok_path and os.path.isfile(tok_path):
        tok = reference.BPETokenizer.load(tok_path)
    else:
        tok = reference.BPETokenizer(pattern="gpt2")
        t0 = time.perf_counter()
        tok.train(text, vocab_size)
        print(
            f"trained a {tok.vocab_size}-token BPE tokenizer on {len(text.encode()):,} bytes "
            f"in {time.perf_counter() - t0:.1f}s"
        )
        if tok_path:
            tok.save(tok_path)
    ids = tok.encode_ordinary(text)
    return tok, ids


def unigram_entropy(ids: list[int]) -> float:
    """Entropy (nats) of the token frequency distribution: the loss of the best model that
    ignores context. A language model has learned something once its loss is well below this."""
    counts = Counter(ids)
    n = len(ids)
    return -sum(c / n * math.log(c / n) for c in counts.values())


def lm_batch(ids: list[int], block_size: int, batch_size: int, seed: int, step: int):
    """A batch of (inputs, next-token targets), B x T each, at random offsets drawn from the
    shared generator (seed, stream=step), so every backend sees the same batches."""
    if len(ids) <= block_size + 1:
        raise SystemExit(f"corpus of {len(ids)} tokens is too short for block_size {block_size}")
    starts = [below(w, len(ids) - block_size - 1) for w in random_u32s(seed, step, batch_size)]
    x = [ids[s : s + block_size] for s in starts]
    y = [ids[s + 1 : s + block_size + 1] for s in starts]
    return x, y


class Progress:
    """One line per report: step, loss, tokens per second, elapsed time."""

    def __init__(self, total_steps: int, tokens_per_step: int):
        self.total, self.tokens = total_steps, tokens_per_step
        self.t0 = self.last = time.perf_counter()
        self.last_step = 0

    def report(self, step: int, loss: float, extra: str = "") -> None:
        now = time.perf_counter()
        rate = (step - self.last_step) * self.tokens / max(now - self.last, 1e-9)
        self.last, self.last_step = now, step
        print(
            f"step {step:5d}/{self.total}  loss {loss:.4f}  {rate:9.1f} tok/s  "
            f"{now - self.t0:7.1f}s  {extra}",
            flush=True,
        )

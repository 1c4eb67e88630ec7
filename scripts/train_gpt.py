"""Train a small GPT-2 on a slice of the default corpus (the standard library's own sources).

    python scripts/train_gpt.py --backend fast    # the main job: a 0.9M-parameter GPT, minutes
    python scripts/train_gpt.py                   # reference backend, bytes, a few minutes
    python scripts/train_gpt.py --vocab-size 384 --n-embd 32 --n-head 4 --steps 400
    python scripts/train_gpt.py --data my.txt --backend fast --max-minutes 10

Each backend has a preset sized to what it can train in minutes on two cores (`--preset`; any
flag given explicitly overrides the preset's value).

Trains a byte-level BPE tokenizer on the slice, holds out its last tokens for validation, then
trains with AdamW (weight decay on matrices only, as GPT-2), a cosine learning-rate schedule and
gradient clipping. Prints progress, evaluates the validation loss every --eval-interval steps
against the unigram entropy (the loss of the best model that ignores context), saves a Hugging
Face-loadable checkpoint (save_pretrained plus the tokenizer) to --out-dir, and ends with a
sample.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402  (puts the repository root on sys.path)


def tokenized_corpus(args):
    """(tokenizer, ids) for the slice, by common.corpus_ids."""
    return common.corpus_ids(args.text_bytes, args.vocab_size, args.data, args.cache_dir)


def make_optimizer(m, model, args):
    """AdamW with weight decay on the matrices (embeddings and weights), none on biases and
    layer-norm gains, as GPT-2 and nanoGPT do."""
    params = list(model.parameters())
    decay = [p for p in params if len(p.shape) >= 2]
    no_decay = [p for p in params if len(p.shape) < 2]
    groups = [
        {"params": decay, "weight_decay": args.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return m.AdamW(groups, lr=args.lr, betas=(0.9, 0.95))


def evaluate(model, batches) -> float:
    """Mean loss over fixed validation batches, in eval mode (no dropout)."""
    was_training = model.training
    model.eval()
    total = 0.0
    for x, y in batches:
        _, loss = model(x, y)
        total += float(loss)
    model.train(was_training)
    return total / len(batches)


def save(model, tok, out_dir: str) -> None:
    """A directory Hugging Face loads: config.json, model.safetensors, vocab.json, merges.txt;
    plus the tokenizer in the project's own format."""
    model.save_pretrained(out_dir)
    tok.save(os.path.join(out_dir, "tokenizer.bpe"))
    tok.save_huggingface(out_dir)


# Sizes that train in minutes on two cores: pure Python needs a tiny model; fast a real one.
PRESETS = {
    "tiny": dict(
        text_bytes=100_000,
        vocab_size=256,
        block_size=32,
        n_layer=2,
        n_head=2,
        n_embd=16,
        batch_size=8,
        steps=150,
        lr=1e-2,
        min_lr=1e-3,
        warmup=10,
        log_interval=5,
        eval_interval=25,
    ),
    "small": dict(
        text_bytes=1_000_000,
        vocab_size=1024,
        block_size=128,
        n_layer=4,
        n_head=4,
        n_embd=128,
        batch_size=16,
        steps=600,
        lr=3e-3,
        min_lr=3e-4,
        warmup=50,
        log_interval=20,
        eval_interval=100,
    ),
}
DEFAULT_PRESET = {"reference": "tiny", "fast": "small"}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_backend_args(p)
    p.add_argument("--data", default=None, help="a UTF-8 text file (default: the stdlib corpus)")
    p.add_argument("--text-bytes", type=int, default=None, help="size of the corpus slice")
    p.add_argument("--vocab-size", type=int, default=None, help="BPE vocabulary (256 = bytes)")
    p.add_argument("--cache-dir", default=None, help="folder to cache the trained tokenizer in")
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--block-size", type=int, default=None)
    p.add_argument("--n-layer", type=int, default=None)
    p.add_argument("--n-head", type=int, default=None)
    p.add_argument("--n-embd", type=int, default=None)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="stopping rule: end training (then evaluate, save, sample) after this long",
    )
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--min-lr", type=float, default=None)
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--grad-clip", type=float, default=1.0, help="0 turns clipping off")
    p.add_argument("--log-interval", type=int, default=None)
    p.add_argument("--eval-interval", type=int, default=None)
    p.add_argument("--eval-batches", type=int, default=8)
    p.add_argument("--out-dir", default="runs/gpt", help="checkpoint folder ('' for none)")
    p.add_argument("--prompt", default="def ")
    p.add_argument("--sample-tokens", type=int, default=48)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=None,
        help="model and run size (default: tiny for reference, small for fast)",
    )
    args = common.finish_backend_args(p.parse_args(argv))
    for key, value in PRESETS[args.preset or DEFAULT_PRESET[args.backend]].items():
        if getattr(args, key) is None:
            setattr(args, key, value)

    try:
        m = common.load_backend(
            args.backend, "GPT", "GPTConfig", "AdamW", "CosineWarmupLR", "clip_grad_norm"
        )
    except ImportError as e:
        raise SystemExit(f"cannot import the {args.backend!r} backend: {e}") from None
    t_start = time.perf_counter()
    tok, ids = tokenized_corpus(args)
    n_val = max(args.block_size + 2, int(len(ids) * args.val_fraction))
    train_ids, val_ids = ids[:-n_val], ids[-n_val:]
    h_train, h_val = common.unigram_entropy(train_ids), common.unigram_entropy(val_ids)
    print(
        f"corpus: {args.text_bytes:,} bytes -> {len(ids):,} tokens ({len(train_ids):,} train, "
        f"{len(val_ids):,} val); unigram entropy {h_train:.3f} nats (train), {h_val:.3f} (val); "
        f"uniform over the vocabulary {math.log(tok.n_vocab):.3f}"
    )

    config = m.GPTConfig(
        vocab_size=tok.n_vocab,
        block_size=args.block_size,
        n_layer=args.n_layer,
        n_head=args.n_head,
        n_embd=args.n_embd,
        dropout=args.dropout,
        seed=args.seed,
    )
    model = m.GPT(config, **common.model_options(args))
    opt = make_optimizer(m, model, args)
    warmup = min(args.warmup, args.steps - 1)  # the schedule needs warmup < steps
    schedule = m.CosineWarmupLR(args.lr, warmup, args.steps, min_lr=args.min_lr)
    tokens_per_step = args.batch_size * args.block_size
    flops = model.flops_per_token() if hasattr(model, "flops_per_token") else None
    print(
        f"{args.backend}: GPT L={config.n_layer} H={config.n_head} C={config.n_embd} "
        f"T={config.block_size} V={config.vocab_size}, {model.num_parameters():,} parameters"
        + (f", {flops:,} training FLOPs per token" if flops else "")
        + f"; batch {args.batch_size} x {args.block_size} = {tokens_per_step} tokens per step"
    )
    # The same validation batches every time, so evaluations compare like with like.
    val_batches = [
        common.lm_batch(val_ids, args.block_size, args.batch_size, args.seed + 1, k)
        for k in range(args.eval_batches)
    ]

    def relative(loss: float) -> str:
        gap = h_val - loss
        return f"{gap:.3f} nats below" if gap >= 0 else f"{-gap:.3f} nats above"

    def run_eval(step: int) -> float:
        t0 = time.perf_counter()
        val = evaluate(model, val_batches)
        print(
            f"  eval at step {step}: val loss {val:.4f} ({relative(val)} the unigram entropy "
            f"{h_val:.3f})  [{time.perf_counter() - t0:.1f}s]",
            flush=True,
        )
        if args.out_dir:
            save(model, tok, args.out_dir)
        return val

    progress = common.Progress(args.steps, tokens_per_step)
    history = [(0, run_eval(0))]
    model.train()
    for step in range(args.steps):
        x, y = common.lm_batch(train_ids, args.block_size, args.batch_size, args.seed, step)
        opt.lr = schedule(step)
        _, loss = model(x, y)
        model.zero_grad()
        model.backward()
        norm = m.clip_grad_norm(model.parameters(), args.grad_clip) if args.grad_clip else None
        opt.step()
        if not math.isfinite(loss):
            raise SystemExit(f"loss became {loss} at step {step + 1}; try a lower --lr")
        done = step + 1
        if done % args.log_interval == 0 or done == args.steps:
            extra = f"lr {opt.lr:.2e}" + (f"  grad norm {norm:.3f}" if norm is not None else "")
            progress.report(done, float(loss), extra)
        out_of_time = args.max_minutes is not None and (
            time.perf_counter() - t_start > 60.0 * args.max_minutes
        )
        if done % args.eval_interval == 0 or done == args.steps or out_of_time:
            history.append((done, run_eval(done)))
        if out_of_time:
            print(f"stopping after {done} steps: --max-minutes {args.max_minutes} reached")
            break

    elapsed = time.perf_counter() - t_start
    curve = ", ".join(f"{s}: {v:.3f}" for s, v in history)
    print(f"val loss by step: {curve}")
    final = history[-1][1]
    print(
        f"final val loss {final:.4f}, {relative(final)} the unigram entropy {h_val:.4f} "
        f"({1 - final / h_val:.1%} lower); {elapsed:.0f}s in all"
    )
    if args.out_dir:
        print(f"checkpoint: {args.out_dir} (loads with GPT.from_pretrained or transformers)")

    prompt = tok.encode_ordinary(args.prompt) or [0]
    t0 = time.perf_counter()
    out = model.generate(
        [prompt],
        args.sample_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed,
    )
    print(f"sample ({args.sample_tokens} tokens in {time.perf_counter() - t0:.1f}s):")
    print(tok.decode([int(t) for t in out[0]]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

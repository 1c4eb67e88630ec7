"""Train a small GPT-2 (or LLaMA) on a slice of the default corpus (the standard library's sources).

    python scripts/train_gpt.py --backend fast    # the main job: a 0.9M-parameter GPT, minutes
    python scripts/train_gpt.py --backend fast --arch llama   # the same budget, a LLaMA
    python scripts/train_gpt.py                   # reference backend, bytes, a few minutes
    python scripts/train_gpt.py --vocab-size 384 --n-embd 32 --n-head 4 --steps 400
    python scripts/train_gpt.py --data my.txt --backend fast --max-minutes 10
    python scripts/train_gpt.py --out-dir runs/gpt --resume   # continue a stopped run
    mpiexec -n 2 python scripts/train_gpt.py --backend fast   # data-parallel on 2 processes

Each backend has a preset sized to what it can train in minutes on two cores (`--preset`; any
flag given explicitly overrides the preset's value).

`--arch llama` trains the LLaMA-family decoder instead (RMS norm, rotary positions, SwiGLU,
grouped-query attention with --n-kv-head key/value heads, the head tied to the embedding as the
GPT's), on the same data, batches, optimizer and schedule. Its --intermediate-size defaults to
the multiple of 8 that brings a layer's parameter count nearest the GPT block's (12 C^2 + 13 C),
so the two compare at a matched size; --dropout is its attention dropout (its only site).

Trains a byte-level BPE tokenizer on the slice, holds out its last tokens for validation, then
trains with AdamW (weight decay on matrices only, as GPT-2), a cosine learning-rate schedule and
gradient clipping. Prints progress, evaluates the validation loss every --eval-interval steps
against the unigram entropy (the loss of the best model that ignores context), saves a Hugging
Face-loadable checkpoint (save_pretrained plus the tokenizer) to --out-dir, and ends with a
sample.

Every run writes `metrics.jsonl` in --out-dir (one JSON object per logged step) and training
checkpoints (weights, optimizer, position, tokenizer) under `--out-dir/checkpoints/` at every
evaluation, at the end, and when stopped by Ctrl-C or SIGTERM (which finish the current step,
save, and exit with status 0). `--resume` continues from the newest one with the losses the run
would have had uninterrupted. Bad arguments or files give one `error:` line and status 2.

Under `mpiexec -n N` every process trains on its share of each batch (--batch-size is the global
batch and must divide by N) and the gradients are averaged over the processes: the same losses
and weights as one process, to float rounding. Rank 0 alone prints, evaluates, writes metrics
and checkpoints; every rank resumes from the same checkpoint.
"""

from __future__ import annotations

import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402  (puts the repository root on sys.path)


def tokenized_corpus(m, args, tokenizer_file=None):
    """(tokenizer, ids) for the slice, by common.corpus_ids with the backend's tokenizer."""
    return common.corpus_ids(
        args.text_bytes, args.vocab_size, args.data, args.cache_dir, m, tokenizer_file
    )


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


# What a run cannot change when it is resumed: the data, the model, the batches, the schedule.
FROZEN = (
    "backend",
    "arch",
    "n_kv_head",
    "intermediate_size",
    "data",
    "text_bytes",
    "vocab_size",
    "val_fraction",
    "block_size",
    "n_layer",
    "n_head",
    "n_embd",
    "dropout",
    "batch_size",
    "steps",
    "lr",
    "min_lr",
    "warmup",
    "weight_decay",
    "grad_clip",
    "eval_batches",
    "seed",
)
# What a resumed run keeps unless given again: how often it reports and evaluates.
KEPT = ("log_interval", "eval_interval", "max_minutes", "keep", "cache_dir")
NEEDS = (
    "GPT",
    "GPTConfig",
    "Llama",
    "LlamaConfig",
    "AdamW",
    "CosineWarmupLR",
    "clip_grad_norm",
    "BPETokenizer",
    "save_training_checkpoint",
    "load_training_checkpoint",
    "latest_checkpoint",
)


def parse_args(argv=None):
    """(arguments, names typed on the command line), with the preset and, on --resume, the
    run's own arguments filled in; the checkpoint to resume from (or None)."""
    p = common.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_backend_args(p)
    pos_int, nonneg = common.positive_int, common.non_negative_float
    p.add_argument("--data", default=None, help="a UTF-8 text file (default: the stdlib corpus)")
    p.add_argument("--text-bytes", type=pos_int, default=None, help="size of the corpus slice")
    p.add_argument("--vocab-size", type=pos_int, default=None, help="BPE vocabulary (256 = bytes)")
    p.add_argument("--cache-dir", default=None, help="folder to cache the trained tokenizer in")
    p.add_argument("--val-fraction", type=common.positive_float, default=0.1)
    p.add_argument("--block-size", type=pos_int, default=None)
    p.add_argument("--n-layer", type=pos_int, default=None)
    p.add_argument("--n-head", type=pos_int, default=None)
    p.add_argument("--n-embd", type=pos_int, default=None)
    p.add_argument(
        "--arch",
        choices=("gpt", "llama"),
        default="gpt",
        help="GPT-2 (default) or the LLaMA-family decoder",
    )
    p.add_argument(
        "--n-kv-head",
        type=pos_int,
        default=None,
        help="llama: key/value heads (default: half of --n-head when that divides it, else all)",
    )
    p.add_argument(
        "--intermediate-size",
        type=pos_int,
        default=None,
        help="llama: the SwiGLU hidden size (default: matches the GPT block's parameter count)",
    )
    p.add_argument("--dropout", type=nonneg, default=0.0)
    p.add_argument("--batch-size", type=pos_int, default=None)
    p.add_argument("--steps", type=pos_int, default=None)
    p.add_argument(
        "--max-minutes",
        type=common.positive_float,
        default=None,
        help="stopping rule: end training (then evaluate, save, sample) after this long",
    )
    p.add_argument("--lr", type=nonneg, default=None)
    p.add_argument("--min-lr", type=nonneg, default=None)
    p.add_argument("--warmup", type=common.non_negative_int, default=None)
    p.add_argument("--weight-decay", type=nonneg, default=0.1)
    p.add_argument("--grad-clip", type=nonneg, default=1.0, help="0 turns clipping off")
    p.add_argument("--log-interval", type=pos_int, default=None)
    p.add_argument("--eval-interval", type=pos_int, default=None)
    p.add_argument("--eval-batches", type=pos_int, default=8)
    common.add_run_args(p, "runs/gpt")
    p.add_argument("--prompt", default="def ")
    p.add_argument("--sample-tokens", type=common.non_negative_int, default=48)
    p.add_argument("--temperature", type=nonneg, default=0.8)
    p.add_argument("--top-k", type=pos_int, default=None)
    p.add_argument("--top-p", type=common.positive_float, default=0.95)
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=None,
        help="model and run size (default: tiny for reference, small for fast)",
    )
    args, resume_from = common.parse_run_args(p, argv, FROZEN, KEPT, data_parallel=True)
    for key, value in PRESETS[args.preset or DEFAULT_PRESET[args.backend]].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    common.check_global_batch(args.batch_size)
    if args.n_embd % args.n_head:
        common.fail(f"--n-embd ({args.n_embd}) must be divisible by --n-head ({args.n_head})")
    if args.arch == "llama":
        if (args.n_embd // args.n_head) % 2:
            common.fail(
                f"--arch llama needs an even head size (rotary embeddings turn pairs of "
                f"channels), got --n-embd {args.n_embd} / --n-head {args.n_head} = "
                f"{args.n_embd // args.n_head}"
            )
        if args.n_kv_head is None:
            args.n_kv_head = args.n_head // 2 if args.n_head % 2 == 0 else args.n_head
        if args.n_head % args.n_kv_head:
            common.fail(f"--n-kv-head ({args.n_kv_head}) must divide --n-head ({args.n_head})")
        if args.intermediate_size is None:
            args.intermediate_size = matched_intermediate_size(
                args.n_embd, args.n_embd // args.n_head * args.n_kv_head
            )
    elif args.n_kv_head is not None or args.intermediate_size is not None:
        common.fail("--n-kv-head and --intermediate-size belong to --arch llama")
    common.check_text_file(args.data, "--data")
    return args, resume_from


def matched_intermediate_size(C: int, C_kv: int) -> int:
    """The SwiGLU width (a multiple of 8, at least 8) whose LLaMA layer has the parameter count
    nearest a GPT-2 block's of width C: 12 C^2 + 13 C there; here q and o (2 C^2), k and v
    (2 C C_kv), gate, up and down (3 C I) and two RMS gains (2 C)."""
    budget = 12 * C * C + 13 * C - 2 * C * C - 2 * C * C_kv - 2 * C
    return max(8, 8 * round(budget / (3 * C) / 8))


def build_model(m, args, vocab_size: int):
    """(config, model) of --arch on the backend `m`."""
    if args.arch == "llama":
        config = m.LlamaConfig(
            vocab_size=vocab_size,
            hidden_size=args.n_embd,
            intermediate_size=args.intermediate_size,
            num_hidden_layers=args.n_layer,
            num_attention_heads=args.n_head,
            num_key_value_heads=args.n_kv_head,
            max_position_embeddings=args.block_size,
            tie_word_embeddings=True,  # as the GPT's head
            attention_dropout=args.dropout,
            seed=args.seed,
        )
        return config, m.Llama(config, **common.model_options(args))
    config = m.GPTConfig(
        vocab_size=vocab_size,
        block_size=args.block_size,
        n_layer=args.n_layer,
        n_head=args.n_head,
        n_embd=args.n_embd,
        dropout=args.dropout,
        seed=args.seed,
    )
    return config, m.GPT(config, **common.model_options(args))


def main(argv=None) -> int:
    args, resume_from = parse_args(argv)
    m = common.load_backend(args.backend, *NEEDS)
    t_start = time.perf_counter()
    tok_file = os.path.join(resume_from, "tokenizer.bpe") if resume_from else None
    with common.user_errors("--data: " if args.data else ""):
        tok, ids = tokenized_corpus(m, args, tok_file)
    n_val = max(args.block_size + 2, int(len(ids) * args.val_fraction))
    train_ids, val_ids = ids[:-n_val], ids[-n_val:]
    if len(train_ids) <= args.block_size + 1:
        common.fail(
            f"the corpus ({len(ids)} tokens, {n_val} held out) is too short for --block-size "
            f"{args.block_size}: give more --text-bytes"
        )
    h_train, h_val = common.unigram_entropy(train_ids), common.unigram_entropy(val_ids)
    print(
        f"corpus: {args.text_bytes:,} bytes -> {len(ids):,} tokens ({len(train_ids):,} train, "
        f"{len(val_ids):,} val); unigram entropy {h_train:.3f} nats (train), {h_val:.3f} (val); "
        f"uniform over the vocabulary {math.log(tok.n_vocab):.3f}"
    )

    with common.user_errors():
        config, model = build_model(m, args, tok.n_vocab)
        opt = make_optimizer(m, model, args)
        warmup = min(args.warmup, args.steps - 1)  # the schedule needs warmup < steps
        schedule = m.CosineWarmupLR(args.lr, warmup, args.steps, min_lr=args.min_lr)
    history = []  # (step, val loss)
    best = None

    def save_tokenizer(folder: str) -> None:
        tok.save(os.path.join(folder, "tokenizer.bpe"))

    run = common.Run(
        "train_gpt.py", args, FROZEN + KEPT, m, model, opt, resume_from,
        state=lambda: {"history": [list(h) for h in history], "best_val_loss": best},
        write_extra=save_tokenizer,
        export=lambda folder: common.export_model(model, folder, tok, huggingface_tokenizer=True),
        started=t_start,
    )  # fmt: skip
    history[:] = [tuple(h) for h in run.saved.get("history", [])]
    best = run.saved.get("best_val_loss")
    tokens_per_step = args.batch_size * args.block_size
    flops = model.flops_per_token() if hasattr(model, "flops_per_token") else None
    shape = f"L={args.n_layer} H={args.n_head} C={args.n_embd} T={args.block_size}"
    if args.arch == "llama":
        shape = f"LLaMA {shape} KV heads={args.n_kv_head} I={args.intermediate_size}"
    else:
        shape = f"GPT {shape}"
    print(
        f"{args.backend}: {shape} V={tok.n_vocab}, {model.num_parameters():,} parameters"
        + (f", {flops:,} training FLOPs per token" if flops else "")
        + f"; batch {args.batch_size} x {args.block_size} = {tokens_per_step} tokens per step"
    )
    run.resuming()
    # The same validation batches every time, so evaluations compare like with like.
    val_batches = [
        common.lm_batch(val_ids, args.block_size, args.batch_size, args.seed + 1, k)
        for k in range(args.eval_batches)
    ]

    def relative(loss: float) -> str:
        gap = h_val - loss
        return f"{gap:.3f} nats below" if gap >= 0 else f"{-gap:.3f} nats above"

    def record_eval(step: int) -> float:
        nonlocal best
        t0 = time.perf_counter()
        val = evaluate(model, val_batches)
        print(
            f"  eval at step {step}: val loss {val:.4f} ({relative(val)} the unigram entropy "
            f"{h_val:.3f})  [{time.perf_counter() - t0:.1f}s]",
            flush=True,
        )
        history.append((step, val))
        best = val if best is None else min(best, val)
        return val

    progress = common.Progress(args.steps, tokens_per_step, start=run.start)
    batch_source = train_ids
    if args.backend == "fast":  # batches gathered as arrays (the same tokens as the lists)
        import numpy as np

        batch_source = np.asarray(train_ids, dtype=np.int64)
    world = common.WORLD
    trainer = common.data_parallel(model, opt)  # the model itself in one process
    with common.StopSignals() as stop:
        if resume_from is None:
            # the unigram entropies go with step 0: the report draws the loss against them
            val0 = record_eval(0) if world.is_root else None
            run.log(step=0, val_loss=val0, unigram_entropy=h_val, unigram_entropy_train=h_train)
            run.checkpoint(0)
        model.train()
        done = run.start
        for step in range(run.start, args.steps):
            if world.any(stop.requested)[0]:  # every rank stops after the same step
                stop.requested = True
                break
            x, y = common.lm_batch(batch_source, args.block_size, args.batch_size, args.seed, step)
            opt.lr = schedule(step)
            _, loss = trainer(x, y)  # the global batch's loss on every rank
            done = step + 1
            if not math.isfinite(loss):
                return run.diverged(loss, done)
            norm = common.update(m, trainer, opt, args.grad_clip)
            (out_of_time,) = world.any(
                args.max_minutes is not None
                and time.perf_counter() - t_start > 60.0 * args.max_minutes
            )
            logged = done % args.log_interval == 0 or done == args.steps
            evaluated = done % args.eval_interval == 0 or done == args.steps or out_of_time
            rate = None
            if logged:
                extra = f"lr {opt.lr:.2e}" + (f"  grad norm {norm:.3f}" if norm is not None else "")
                rate = progress.report(done, float(loss), extra)
            val = record_eval(done) if evaluated and world.is_root else None
            if logged or evaluated:
                run.log_step(done, loss, norm, rate, val_loss=val)
            if evaluated:
                run.checkpoint(done)
            if out_of_time:
                print(f"stopping after {done} steps: --max-minutes {args.max_minutes} reached")
                break
        if stop.requested:
            return run.stopped(done)
    run.close()
    if not world.is_root:
        return 0

    curve = ", ".join(f"{s}: {v:.3f}" for s, v in history)
    print(f"val loss by step: {curve}")
    final = history[-1][1]
    print(
        f"final val loss {final:.4f}, {relative(final)} the unigram entropy {h_val:.4f} "
        f"({1 - final / h_val:.1%} lower); {run.elapsed():.0f}s in all"
    )
    if args.out_dir:
        family = "Llama" if args.arch == "llama" else "GPT"
        print(f"checkpoint: {args.out_dir} (loads with {family}.from_pretrained or transformers)")
        print(f"metrics: {os.path.join(args.out_dir, 'metrics.jsonl')}")

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
    sample = tok.decode([int(t) for t in out[0]])
    print(f"sample ({args.sample_tokens} tokens in {time.perf_counter() - t0:.1f}s):")
    print(sample)
    if args.out_dir:
        common.write_atomically(os.path.join(args.out_dir, "sample.txt"), sample)
        common.print_report_command(args.out_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(common.cli(main))

"""Pre-train a tiny BERT by masked-language modelling on a slice of the default corpus.

    python scripts/train_bert.py                          # reference backend, 120 steps
    python scripts/train_bert.py --backend fast --steps 2000 --n-embd 128 --n-layer 4
    python scripts/train_bert.py --max-minutes 5 --out-dir runs/bert
    python scripts/train_bert.py --out-dir runs/bert --resume   # after Ctrl-C

Each step draws a batch of windows of the training text, wraps each in [CLS] ... [SEP], corrupts
15% of the tokens by BERT's recipe (`mask_tokens`: 80% [MASK], 10% a random token, 10% unchanged)
and trains the model to recover the originals. Batches come from the shared generator with seed
`--seed + 1` on stream step, masks with `--seed` on stream step * 2**16 (site 0, next to the
dropout sites): both are functions of the step, so every backend, and a resumed run, sees the same
data and the same masks.

Prints a progress line every --log-every steps, the held-out MLM loss and accuracy every
--eval-every steps (on fixed masked windows of the last 10% of the text), and ends by filling in
the masked tokens of a held-out snippet. --out-dir (default runs/bert) gets `metrics.jsonl`,
training checkpoints (at every evaluation, at the end, and on Ctrl-C or SIGTERM, which finish the
step, save and exit with status 0) and the latest model at the top (`config.json` +
`model.safetensors`, loadable by Hugging Face as BertForMaskedLM, and `tokenizer.bpe`); `--resume`
continues from the newest checkpoint with the losses an uninterrupted run would have had.

With the defaults (38k parameters, 8 x 32 tokens a step) the reference takes 5-10 s a step on a
busy two-core machine: its held-out MLM loss falls from ln V = 5.78 to the unigram level (about
4.48) within some 60 steps and below it by step 100; recovering masked tokens from their context
takes longer runs (or the fast backend).

`mpiexec -n N python scripts/train_bert.py --backend fast` trains data-parallel (--batch-size is
the global batch and must divide by N): the masks are drawn for the global batch, each process
takes its rows, and the gradients are averaged weighted by each process's count of masked
positions, which is the one-process mean. Rank 0 alone prints, evaluates and saves.
"""

from __future__ import annotations

import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402  (puts the repository root on sys.path)

from reference.layers import dropout_stream  # noqa: E402  (the shared stream convention)

SPECIALS = ("[PAD]", "[CLS]", "[SEP]", "[MASK]")
NEEDS = ("BERT", "BERTConfig", "mask_tokens", "AdamW", "CosineWarmupLR", "clip_grad_norm")
NEEDS += ("BPETokenizer", "save_training_checkpoint", "load_training_checkpoint")
NEEDS += ("latest_checkpoint",)
# What a resumed run cannot change (the data, the model, the masks, the schedule) ...
FROZEN = (
    "backend",
    "corpus",
    "text_bytes",
    "vocab_size",
    "block_size",
    "batch_size",
    "n_layer",
    "n_head",
    "n_embd",
    "dropout",
    "mask_prob",
    "steps",
    "lr",
    "warmup",
    "weight_decay",
    "grad_clip",
    "eval_batches",
    "seed",
)
# ... and what it keeps unless given again.
KEPT = ("log_every", "eval_every", "max_minutes", "keep", "cache_dir")


def parse_args(argv=None):
    """(arguments, the checkpoint to resume from or None)."""
    p = common.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_backend_args(p)
    pos_int, nonneg = common.positive_int, common.non_negative_float
    p.add_argument("--text-bytes", type=pos_int, default=200_000, help="slice of the corpus")
    p.add_argument("--corpus", default=None, help="a UTF-8 text file instead of the default")
    p.add_argument("--vocab-size", type=pos_int, default=320, help="BPE tokens before specials")
    p.add_argument("--cache-dir", default=None, help="folder to cache the trained tokenizer in")
    p.add_argument("--block-size", type=pos_int, default=32, help="tokens per sequence, T")
    p.add_argument("--batch-size", type=pos_int, default=8)
    p.add_argument("--n-layer", type=pos_int, default=2)
    p.add_argument("--n-head", type=pos_int, default=2)
    p.add_argument("--n-embd", type=pos_int, default=32)
    p.add_argument("--dropout", type=nonneg, default=0.0, help="BERT uses 0.1; short runs: 0")
    p.add_argument("--mask-prob", type=common.positive_float, default=0.15)
    p.add_argument("--steps", type=pos_int, default=120)
    p.add_argument(
        "--max-minutes", type=common.positive_float, default=None, help="stop after this long"
    )
    p.add_argument("--lr", type=nonneg, default=3e-3)
    p.add_argument("--warmup", type=common.non_negative_int, default=10)
    p.add_argument("--weight-decay", type=nonneg, default=0.01)
    p.add_argument("--grad-clip", type=nonneg, default=1.0, help="0 turns clipping off")
    p.add_argument("--log-every", type=pos_int, default=5)
    p.add_argument("--eval-every", type=pos_int, default=20)
    p.add_argument("--eval-batches", type=pos_int, default=4)
    common.add_run_args(p, "runs/bert")
    args, resume_from = common.parse_run_args(p, argv, FROZEN, KEPT, data_parallel=True)
    common.check_global_batch(args.batch_size)
    if args.block_size < 3:
        common.fail(f"--block-size must be >= 3 ([CLS], a token, [SEP]), got {args.block_size}")
    if args.mask_prob > 1:
        common.fail(f"--mask-prob must be <= 1, got {args.mask_prob}")
    if args.n_embd % args.n_head:
        common.fail(f"--n-embd ({args.n_embd}) must be divisible by --n-head ({args.n_head})")
    common.check_text_file(args.corpus, "--corpus")
    return args, resume_from


def add_specials(tok) -> tuple[int, ...]:
    """Register [PAD] [CLS] [SEP] [MASK] right after the ordinary tokens (a tokenizer read from a
    checkpoint has them already); their ids."""
    wanted = {name: tok.vocab_size + k for k, name in enumerate(SPECIALS)}
    if not tok.special_tokens:
        tok.register_special_tokens(wanted)
    if tok.special_tokens != wanted:
        common.fail(f"the tokenizer's special tokens are {tok.special_tokens}, expected {wanted}")
    return tuple(wanted.values())


def wrap(windows, cls_id, sep_id):
    """[CLS] + window + [SEP] for every window of a batch: (B, T - 2) -> (B, T)."""
    return [[cls_id, *w, sep_id] for w in windows]


def masked_batch(m, ids, args, n_ordinary, specials, step):
    """(inputs, labels) for one step: random windows, wrapped, corrupted by BERT's recipe; the
    windows from (seed + 1, stream step), the masks from (seed, stream step * 2**16)."""
    pad, cls_id, sep, mask = specials
    windows, _ = common.lm_batch(ids, args.block_size - 2, args.batch_size, args.seed + 1, step)
    return m.mask_tokens(
        wrap(windows, cls_id, sep),
        n_ordinary,  # random replacements come from the ordinary tokens only
        mask,
        set(specials),
        args.seed,
        dropout_stream(step, 0),
        args.mask_prob,
    )


def evaluate(model, batches) -> tuple[float, float]:
    """(mean MLM loss, accuracy) over every labelled position of the fixed held-out batches."""
    model.eval()
    total_loss = correct = count = 0.0
    for inputs, labels in batches:
        logits, loss = model(inputs, labels=labels)
        n = sum(y != -100 for row in labels for y in row)
        total_loss += loss * n
        count += n
        for b, row in enumerate(labels):
            for t, y in enumerate(row):
                if y != -100:
                    scores = logits[b][t]
                    correct += max(range(len(scores)), key=scores.__getitem__) == y
    model.train()
    return total_loss / max(count, 1), correct / max(count, 1)


def fill_in_sample(m, model, tok, ids, args, specials) -> str:
    """Hide a quarter of a held-out snippet's tokens and print the model's best guess for each;
    the text printed."""
    pad, cls_id, sep, mask = specials
    n_ordinary = tok.vocab_size
    start = len(ids) // 2
    snippet = ids[start : start + args.block_size - 2]
    sequence = [cls_id, *snippet, sep]
    # the recipe's selection rule picks the positions; every picked one is shown as [MASK]
    _, labels = m.mask_tokens([sequence], n_ordinary, mask, set(specials), args.seed, 1, 0.25)
    inputs = [[mask if y != -100 else x for x, y in zip(sequence, labels[0])]]
    model.eval()
    logits, _ = model(inputs)
    guesses, right = [], 0
    for t, y in enumerate(labels[0]):
        if y == -100:
            continue
        scores = logits[0][t]
        guess = max(range(n_ordinary), key=scores.__getitem__)  # ordinary tokens only
        guesses.append((t, guess))
        right += guess == y

    def show(replace) -> str:
        pieces = []
        for t, token in enumerate(snippet, start=1):
            pieces.append(replace.get(t, tok.decode([token])))
        return "".join(pieces)

    text = "\n".join([
        "sample: fill in the masked tokens of a held-out snippet",
        f"  original: {tok.decode(snippet)!r}",
        f"  masked:   {show({t: '[MASK]' for t, _ in guesses})!r}",
        f"  filled:   {show({t: f'[[{tok.decode([g])}]]' for t, g in guesses})!r}",
        f"  {right}/{len(guesses)} masked tokens recovered exactly",
    ])  # fmt: skip
    print("\n" + text)
    return text


def main(argv=None) -> int:
    args, resume_from = parse_args(argv)
    m = common.load_backend(args.backend, *NEEDS)
    tok_file = os.path.join(resume_from, "tokenizer.bpe") if resume_from else None
    with common.user_errors("--corpus: " if args.corpus else ""):
        tok, ids = common.corpus_ids(
            args.text_bytes, args.vocab_size, args.corpus, args.cache_dir, m, tok_file
        )
    n_ordinary = tok.vocab_size  # training may stop short of the size asked for
    specials = add_specials(tok)  # pad, cls, sep, mask
    split = int(0.9 * len(ids))
    train_ids, val_ids = ids[:split], ids[split:]
    if min(len(train_ids), len(val_ids)) <= args.block_size:
        common.fail(
            f"the corpus ({len(ids)} tokens, {len(val_ids)} held out) is too short for "
            f"--block-size {args.block_size}: give more --text-bytes"
        )

    with common.user_errors():
        config = m.BERTConfig(
            vocab_size=tok.n_vocab,
            block_size=args.block_size,
            n_layer=args.n_layer,
            n_head=args.n_head,
            n_embd=args.n_embd,
            dropout=args.dropout,
            pad_token_id=specials[0],
            seed=args.seed,
        )
        model = m.BERT(config, **common.model_options(args))
        opt = m.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
        warmup = min(args.warmup, args.steps - 1)  # the schedule needs warmup < steps
        schedule = m.CosineWarmupLR(args.lr, warmup, args.steps, args.lr / 10)
    history, recent = [], []  # (step, held-out loss, accuracy); losses since the last report

    def save_tokenizer(folder: str) -> None:
        tok.save(os.path.join(folder, "tokenizer.bpe"))

    run = common.Run(
        "train_bert.py", args, FROZEN + KEPT, m, model, opt, resume_from,
        state=lambda: {"history": history, "recent_losses": recent},
        write_extra=save_tokenizer,
        export=lambda folder: common.export_model(model, folder, tok),
    )  # fmt: skip
    history[:] = [tuple(h) for h in run.saved.get("history", [])]
    recent[:] = run.saved.get("recent_losses", [])
    # fixed held-out batches, so every evaluation scores the same masked positions
    eval_batches = [
        masked_batch(m, val_ids, args, n_ordinary, specials, 10**6 + k)
        for k in range(args.eval_batches)
    ]
    tokens_per_step = args.batch_size * args.block_size
    print(
        f"{args.backend}: BERT {args.n_layer} layers x {args.n_embd} channels, "
        f"{args.n_head} heads, vocab {tok.n_vocab} ({len(SPECIALS)} special), "
        f"{model.num_parameters():,} parameters; {len(train_ids):,} training / "
        f"{len(val_ids):,} held-out tokens, batch {args.batch_size} x {args.block_size}"
    )
    print(
        f"reference points: uniform guessing scores ln V = {math.log(tok.n_vocab):.3f}; "
        f"the unigram distribution (no context) about {common.unigram_entropy(train_ids):.3f}"
    )
    run.resuming()

    world = common.WORLD  # rank 0 alone evaluates and writes; every rank trains
    trainer = common.data_parallel(model, opt)  # the model itself in one process

    def record_eval(step: int) -> tuple[float, float]:
        if not world.is_root:
            return None, None
        val_loss, val_acc = evaluate(model, eval_batches)
        history.append((step, val_loss, val_acc))
        print(f"step {step:5d}  held-out MLM loss {val_loss:.4f}  accuracy {val_acc:6.2%}")
        return val_loss, val_acc

    progress = common.Progress(args.steps, tokens_per_step, start=run.start)
    t0 = time.perf_counter()
    with common.StopSignals() as stop:
        if resume_from is None:
            val_loss, val_acc = record_eval(0)
            run.log(step=0, val_loss=val_loss, val_accuracy=val_acc)
            run.checkpoint(0)
        done = run.start
        for step in range(run.start + 1, args.steps + 1):
            if world.any(stop.requested)[0]:  # every rank stops after the same step
                stop.requested = True
                break
            opt.lr = schedule(step - 1)
            inputs, labels = masked_batch(m, train_ids, args, n_ordinary, specials, step)
            _, loss = trainer(inputs, labels=labels)  # forward; the (global) loss is a float
            done = step
            if not math.isfinite(loss):
                return run.diverged(loss, step)
            norm = common.update(m, trainer, opt, args.grad_clip)  # backprop, clip, step
            recent.append(float(loss))
            (out_of_time,) = world.any(
                bool(args.max_minutes) and time.perf_counter() - t0 > 60 * args.max_minutes
            )
            logged = step % args.log_every == 0 or step == args.steps or out_of_time
            evaluated = step % args.eval_every == 0 or step == args.steps or out_of_time
            rate = None
            if logged:
                rate = progress.report(step, sum(recent) / len(recent), f"lr {opt.lr:.2e}")
                recent.clear()
            val_loss, val_acc = record_eval(step) if evaluated else (None, None)
            if logged or evaluated:
                run.log_step(step, loss, norm, rate, val_loss=val_loss, val_accuracy=val_acc)
            if evaluated and run.checkpoint(step):
                print(f"  checkpoint saved to {run.last_checkpoint}", flush=True)
            if out_of_time:
                print(f"stopping: --max-minutes {args.max_minutes} reached")
                break
        if stop.requested:
            return run.stopped(done)
    run.close()
    if not world.is_root:
        return 0
    print(f"trained to step {done} in {run.elapsed():.1f}s")
    if args.out_dir:
        print(f"model: {args.out_dir} (loads with BERT.from_pretrained or transformers)")
        print(f"metrics: {run.metrics.path}")
    sample = fill_in_sample(m, model, tok, val_ids, args, specials)
    if args.out_dir:
        common.write_atomically(os.path.join(args.out_dir, "sample.txt"), sample + "\n")
        common.print_report_command(args.out_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(common.cli(main))

"""Pre-train a tiny T5 by span corruption on the default corpus, then fine-tune it (copy/reverse).

    python scripts/train_t5.py --backend fast                   # the demonstration (minutes)
    python scripts/train_t5.py --backend fast --steps 3000 --d-model 128 --max-minutes 20
    python scripts/train_t5.py --backend fast --finetune-task reverse --finetune-steps 400
    python scripts/train_t5.py --out-dir runs/t5 --resume        # after Ctrl-C

Pre-training (steps 1 .. --steps): each step draws a batch of windows of the training text and
corrupts them by T5's recipe (`span_corruption`: about 15% of the tokens hidden in spans of mean
length 3, each span one sentinel in the input, listed after its sentinel in the target); the
model learns to write the hidden spans. Windows come from the shared generator with seed
`--seed + 1` on stream step, spans with `--seed` on stream step * 2**16 (site 0, next to the
dropout sites): both are functions of the step, so every backend, and a resumed run, sees the same
data. Every --eval-every steps it scores fixed corrupted windows of the last 10% of the text:
the teacher-forced loss and the **span-token accuracy**, the share of hidden tokens the model
predicts exactly (argmax, given the target so far), against the **unigram baseline**, the share
a model without context gets by always guessing the training text's most frequent token.

Fine-tuning (steps --steps + 1 .. --steps + --finetune-steps): the same model, optimizer and
vocabulary learn to copy (or reverse) windows of 3 to 8 tokens of the text, at the constant
--finetune-lr; at the end greedy decoding is scored by exact match on held-out windows.

--out-dir (default runs/t5) gets `metrics.jsonl`, training checkpoints (at every evaluation, at the
end, and on Ctrl-C or SIGTERM, which finish the step, save and exit with status 0) and the latest
model at the top (`config.json` + `model.safetensors`, which Hugging Face loads as
T5ForConditionalGeneration, and `tokenizer.bpe`); `--resume` continues from the newest
checkpoint with the losses an uninterrupted run would have had.

Measured with the fast backend on 2 shared, busy cores (seed 0, the defaults: 494k parameters):
3 min 18 s in all. Pre-training: span-token accuracy 0.8% at step 0, 13.0% at step 250, 23.8%
at step 1500, against the unigram baseline's 1.4%. Fine-tuning to copy: greedy exact match 0% on
the 200 held-out windows before, 10.5% after 1500 steps (copying is slow to learn without
absolute positions: cross-attention has no position bias, so the decoder must find its place by
content).
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402  (puts the repository root on sys.path)

from reference.layers import dropout_stream  # noqa: E402  (the shared stream convention)
from reference.rng import below, random_u32s  # noqa: E402

NEEDS = ("T5", "T5Config", "span_corruption", "AdamW", "CosineWarmupLR", "clip_grad_norm")
NEEDS += ("BPETokenizer", "save_training_checkpoint", "load_training_checkpoint")
NEEDS += ("latest_checkpoint",)
EVAL_STREAM = 10**6  # held-out batch k: windows on stream 10**6 + k, far from the steps
FT_MIN, FT_MAX = 3, 8  # fine-tuning windows: 3 to 8 tokens
FT_TEST_STREAM = 1 << 40
# What a resumed run cannot change (the data, the model, the spans, the schedule) ...
FROZEN = (
    "backend", "corpus", "text_bytes", "vocab_size", "block_size", "batch_size", "d_model",
    "d_kv", "num_heads", "layers", "d_ff", "feed_forward_proj", "dropout", "noise_density",
    "mean_span", "steps", "lr", "warmup", "weight_decay", "grad_clip", "eval_batches",
    "finetune_task", "finetune_steps", "finetune_lr", "finetune_test", "seed",
)  # fmt: skip
# ... and what it keeps unless given again.
KEPT = ("log_every", "eval_every", "max_minutes", "keep", "cache_dir")


def parse_args(argv=None):
    """(arguments, the checkpoint to resume from or None)."""
    p = common.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_backend_args(p)
    pos_int, nonneg = common.positive_int, common.non_negative_float
    p.add_argument("--text-bytes", type=pos_int, default=300_000, help="slice of the corpus")
    p.add_argument("--corpus", default=None, help="a UTF-8 text file instead of the default")
    p.add_argument("--vocab-size", type=pos_int, default=512, help="BPE tokens before specials")
    p.add_argument("--cache-dir", default=None, help="folder to cache the trained tokenizer in")
    p.add_argument("--block-size", type=pos_int, default=48, help="tokens per window")
    p.add_argument("--batch-size", type=pos_int, default=32)
    p.add_argument("--d-model", type=pos_int, default=96)
    p.add_argument("--d-kv", type=pos_int, default=24, help="head size")
    p.add_argument("--num-heads", type=pos_int, default=4)
    p.add_argument("--layers", type=pos_int, default=2, help="encoder blocks = decoder blocks")
    p.add_argument("--d-ff", type=pos_int, default=192)
    p.add_argument("--feed-forward-proj", default="gated-gelu", choices=["relu", "gated-gelu"])
    p.add_argument("--dropout", type=nonneg, default=0.0, help="T5 uses 0.1; short runs: 0")
    p.add_argument("--noise-density", type=common.positive_float, default=0.15)
    p.add_argument("--mean-span", type=common.positive_float, default=3.0)
    p.add_argument("--steps", type=pos_int, default=1500, help="pre-training steps")
    p.add_argument(
        "--max-minutes", type=common.positive_float, default=None,
        help="end pre-training after this long (fine-tuning still runs)",
    )  # fmt: skip
    p.add_argument("--lr", type=nonneg, default=3e-3)
    p.add_argument("--warmup", type=common.non_negative_int, default=30)
    p.add_argument("--weight-decay", type=nonneg, default=0.01)
    p.add_argument("--grad-clip", type=nonneg, default=1.0, help="0 turns clipping off")
    p.add_argument("--log-every", type=pos_int, default=50)
    p.add_argument("--eval-every", type=pos_int, default=250)
    p.add_argument("--eval-batches", type=pos_int, default=8)
    p.add_argument("--finetune-task", default="copy", choices=["copy", "reverse"])
    p.add_argument("--finetune-steps", type=common.non_negative_int, default=1500)
    p.add_argument("--finetune-lr", type=nonneg, default=3e-3)
    p.add_argument("--finetune-test", type=pos_int, default=200, help="held-out windows")
    common.add_run_args(p, "runs/t5")
    args, resume_from = common.parse_run_args(p, argv, FROZEN, KEPT)
    if not 0 < args.noise_density < 1:
        common.fail(f"--noise-density must be in (0, 1), got {args.noise_density}")
    if args.mean_span < 1:
        common.fail(f"--mean-span must be >= 1, got {args.mean_span}")
    if args.block_size < 2:
        common.fail(f"--block-size must be >= 2 (a span and a kept token), got {args.block_size}")
    common.check_text_file(args.corpus, "--corpus")
    return args, resume_from


def add_specials(tok, args) -> tuple[int, int, list[int]]:
    """Register [PAD], [EOS] and the sentinels <extra_id_0> ... right after the ordinary tokens
    (a tokenizer read from a checkpoint has them already): (pad, eos, sentinel ids). A window of
    --block-size tokens gets at most as many spans as hidden tokens, so that many sentinels."""
    n = max(1, math.floor(args.block_size * args.noise_density + 0.5))
    names = ["[PAD]", "[EOS]"] + [f"<extra_id_{k}>" for k in range(n)]
    wanted = {name: tok.vocab_size + k for k, name in enumerate(names)}
    if not tok.special_tokens:
        tok.register_special_tokens(wanted)
    if tok.special_tokens != wanted:
        common.fail(f"the tokenizer's special tokens are {tok.special_tokens}, expected {wanted}")
    ids = list(wanted.values())
    return ids[0], ids[1], ids[2:]


def pad_rows(rows: list[list[int]], pad: int) -> list[list[int]]:
    T = max(map(len, rows))
    return [r + [pad] * (T - len(r)) for r in rows]


def seq2seq_batch(sources, answers, pad, eos):
    """(src, tgt, targets), right-padded: tgt = the start token (the pad id, as T5) + answer,
    targets = answer + eos."""
    tgt = [[pad] + a for a in answers]
    targets = [a + [eos] for a in answers]
    return pad_rows(sources, pad), pad_rows(tgt, pad), pad_rows(targets, pad)


def corrupted_batch(m, ids, args, specials, step, window_seed):
    """One step's span-corruption batch: windows from (window_seed, stream step), spans from
    (--seed, stream step * 2**16)."""
    pad, eos, sentinels = specials
    windows, _ = common.lm_batch(ids, args.block_size, args.batch_size, window_seed, step)
    inputs, targets = m.span_corruption(
        windows, sentinels, eos, args.seed, dropout_stream(step, 0), args.noise_density,
        args.mean_span,
    )  # fmt: skip
    answers = [t[:-1] for t in targets]  # the target without its eos
    return seq2seq_batch(inputs, answers, pad, eos)


def span_accuracy(model, batches, specials, most_frequent: int):
    """(mean loss, span-token accuracy, unigram baseline accuracy) over the hidden tokens of the
    fixed held-out batches, teacher-forced (sentinels and eos are not counted)."""
    pad, eos, sentinels = specials
    skip = {pad, eos, *sentinels}
    model.eval()
    total = right = baseline = 0
    loss_sum = loss_count = 0.0
    for src, tgt, targets in batches:
        logits, loss = model(src, tgt, targets)
        if hasattr(logits, "copy_to_host"):  # a DeviceArray: the scores come back to pick
            logits = logits.copy_to_host()
        n = sum(y != pad for row in targets for y in row)
        loss_sum, loss_count = loss_sum + float(loss) * n, loss_count + n
        best = logits.argmax(axis=-1).tolist() if hasattr(logits, "argmax") else [
            [max(range(len(v)), key=v.__getitem__) for v in row] for row in logits
        ]  # fmt: skip
        for row_t, row_b in zip(targets, best):
            for y, g in zip(row_t, row_b):
                if y not in skip:
                    total += 1
                    right += g == y
                    baseline += y == most_frequent
    model.train()
    return loss_sum / loss_count, right / max(total, 1), baseline / max(total, 1)


def finetune_pairs(ids, task, seed, stream, n):
    """n (source, answer) pairs: windows of FT_MIN..FT_MAX tokens of `ids` from Philox."""
    words = random_u32s(seed, stream, 2 * n)
    pairs = []
    for k in range(n):
        length = FT_MIN + below(words[2 * k], FT_MAX - FT_MIN + 1)
        start = below(words[2 * k + 1], len(ids) - length)
        window = ids[start : start + length]
        pairs.append((window, window[::-1] if task == "reverse" else list(window)))
    return pairs


def finetune_batch(ids, args, specials, step):
    pad, eos, _ = specials
    pairs = finetune_pairs(ids, args.finetune_task, args.seed + 2, step, args.batch_size)
    return seq2seq_batch([s + [eos] for s, _ in pairs], [a for _, a in pairs], pad, eos)


def exact_match(model, pairs, specials, chunk: int = 50) -> float:
    pad, eos, _ = specials
    right = 0
    for i in range(0, len(pairs), chunk):
        part = pairs[i : i + chunk]
        src = pad_rows([s + [eos] for s, _ in part], pad)
        outputs = model.greedy_decode(src, max_len=FT_MAX + 1)
        right += sum(list(out) == list(a) for out, (_, a) in zip(outputs, part))
    return right / len(pairs)


def fill_in_sample(m, model, tok, val_ids, args, specials) -> None:
    """Corrupt a held-out window and print what greedy decoding writes for its spans."""
    pad, eos, sentinels = specials
    start = len(val_ids) // 2
    window = val_ids[start : start + args.block_size]
    inputs, targets = m.span_corruption(
        [window], sentinels, eos, args.seed, 1, args.noise_density, args.mean_span
    )
    out = model.greedy_decode([inputs[0]], max_len=len(targets[0]))[0]

    def show(ids):
        return "".join(
            f"<{sentinels.index(i)}>" if i in sentinels else tok.decode([i]) for i in ids
        )

    print("sample: the hidden spans of a held-out window, written by greedy decoding")
    print("  input:", repr(show(inputs[0][:-1])))
    print("  truth:", repr(show(targets[0][:-1])))
    print("  model:", repr(show(out)), flush=True)


def main(argv=None) -> int:
    args, resume_from = parse_args(argv)
    m = common.load_backend(args.backend, *NEEDS)
    tok_file = os.path.join(resume_from, "tokenizer.bpe") if resume_from else None
    with common.user_errors("--corpus: " if args.corpus else ""):
        tok, ids = common.corpus_ids(
            args.text_bytes, args.vocab_size, args.corpus, args.cache_dir, m, tok_file
        )
    specials = add_specials(tok, args)
    pad, eos, sentinels = specials
    split = int(0.9 * len(ids))
    train_ids, val_ids = ids[:split], ids[split:]
    if min(len(train_ids), len(val_ids)) <= args.block_size + 1:
        common.fail(
            f"the corpus ({len(ids)} tokens, {len(val_ids)} held out) is too short for "
            f"--block-size {args.block_size}: give more --text-bytes"
        )
    with common.user_errors():
        config = m.T5Config(
            vocab_size=tok.n_vocab, d_model=args.d_model, d_kv=args.d_kv, d_ff=args.d_ff,
            num_layers=args.layers, num_heads=args.num_heads, dropout_rate=args.dropout,
            feed_forward_proj=args.feed_forward_proj, pad_token_id=pad, eos_token_id=eos,
            max_len=args.block_size + 1, seed=args.seed,
        )  # fmt: skip
        model = m.T5(config, **common.model_options(args))
        opt = m.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
        warmup = min(args.warmup, args.steps - 1)  # the schedule needs warmup < steps
        schedule = m.CosineWarmupLR(args.lr, warmup, args.steps, args.lr / 10)
    history = []  # (step, held-out loss, span accuracy, unigram baseline)
    stage = {"pretrain_end": args.steps}  # moved earlier by --max-minutes; exact_match_before

    def save_tokenizer(folder: str) -> None:
        tok.save(os.path.join(folder, "tokenizer.bpe"))

    run = common.Run(
        "train_t5.py", args, FROZEN + KEPT, m, model, opt, resume_from,
        state=lambda: {"history": history, **stage}, write_extra=save_tokenizer,
        export=lambda folder: common.export_model(model, folder, tok),
    )  # fmt: skip
    history[:] = [tuple(h) for h in run.saved.get("history", [])]
    stage["pretrain_end"] = run.saved.get("pretrain_end", args.steps)
    if "exact_match_before" in run.saved:
        stage["exact_match_before"] = run.saved["exact_match_before"]
    eval_batches = [
        corrupted_batch(m, val_ids, args, specials, EVAL_STREAM + k, args.seed + 1)
        for k in range(args.eval_batches)
    ]
    most_frequent = Counter(train_ids).most_common(1)[0][0]
    finetune_test = finetune_pairs(
        val_ids, args.finetune_task, args.seed + 2, FT_TEST_STREAM, args.finetune_test
    )
    total = args.steps + args.finetune_steps
    print(
        f"{args.backend}: T5 {args.layers}+{args.layers} blocks x {args.d_model} channels, "
        f"{args.num_heads} heads of {args.d_kv}, ff {args.d_ff} ({args.feed_forward_proj}), "
        f"vocab {tok.n_vocab} ({len(sentinels)} sentinels), {model.num_parameters():,} "
        f"parameters; {len(train_ids):,} training / {len(val_ids):,} held-out tokens, batch "
        f"{args.batch_size} x {args.block_size}",
        flush=True,
    )
    run.resuming()

    def record_eval(step: int):
        loss, acc, base = span_accuracy(model, eval_batches, specials, most_frequent)
        history.append((step, loss, acc, base))
        print(
            f"step {step:5d}  held-out span loss {loss:.4f}  span-token accuracy {acc:6.2%}  "
            f"(unigram baseline {base:6.2%})",
            flush=True,
        )
        return loss, acc, base

    progress = common.Progress(total, args.batch_size * args.block_size, start=run.start)
    t0 = time.perf_counter()
    with common.StopSignals() as stop:
        if resume_from is None:
            loss, acc, base = record_eval(0)
            run.log(step=0, val_loss=loss, val_span_accuracy=acc, unigram_baseline=base)
            run.checkpoint(0)
        done = run.start
        for step in range(run.start + 1, total + 1):
            if stop.requested:
                break
            pretraining = step <= args.steps
            if pretraining and step > stage["pretrain_end"]:
                continue  # out of time: on to fine-tuning
            if pretraining:
                opt.lr = schedule(step - 1)
                batch = corrupted_batch(m, train_ids, args, specials, step, args.seed + 1)
            else:
                opt.lr = args.finetune_lr
                batch = finetune_batch(train_ids, args, specials, step)
            _, loss = model(*batch)
            done = step
            if not math.isfinite(loss):
                return run.diverged(loss, step)
            norm = common.update(m, model, opt, args.grad_clip)
            out_of_time = (
                pretraining and bool(args.max_minutes)
                and time.perf_counter() - t0 > 60 * args.max_minutes
            )  # fmt: skip
            last_pretraining = pretraining and (step == args.steps or out_of_time)
            logged = step % args.log_every == 0 or step == total or last_pretraining
            evaluated = pretraining and (step % args.eval_every == 0 or last_pretraining)
            phase = "pre-train" if pretraining else f"fine-tune ({args.finetune_task})"
            rate = progress.report(step, loss, f"lr {opt.lr:.2e}  {phase}") if logged else None
            fields = {}
            if evaluated:
                v_loss, acc, base = record_eval(step)
                fields = dict(val_loss=v_loss, val_span_accuracy=acc, unigram_baseline=base)
                if last_pretraining:
                    fill_in_sample(m, model, tok, val_ids, args, specials)
                    if args.finetune_steps:  # what pre-training alone gives on the new task
                        before = exact_match(model, finetune_test, specials)
                        stage["exact_match_before"] = before
                        print(
                            f"before fine-tuning: {args.finetune_task} exact match (greedy) "
                            f"{before:.2%} on {len(finetune_test)} held-out windows",
                            flush=True,
                        )
            if logged or evaluated:
                run.log_step(step, loss, norm, rate, **fields)
            if evaluated or step == total:
                run.checkpoint(step)
            if out_of_time:
                print(f"--max-minutes {args.max_minutes} reached: on to fine-tuning", flush=True)
                stage["pretrain_end"] = step
        if stop.requested:
            return run.stopped(done)
    run.close()
    print(f"{done} steps in {run.elapsed():.0f}s", flush=True)
    if history:
        step, loss, acc, base = history[-1]
        print(
            f"after pre-training (step {step}): span-token accuracy {acc:.2%} against the "
            f"unigram baseline {base:.2%} on the hidden tokens of "
            f"{args.eval_batches * args.batch_size} held-out windows"
        )
    if args.finetune_steps:
        test = finetune_test
        t1 = time.perf_counter()
        acc = exact_match(model, test, specials)
        print(
            f"fine-tuned to {args.finetune_task} for {args.finetune_steps} steps: held-out exact "
            f"match (greedy) {acc:.2%} on {len(test)} windows of {FT_MIN}-{FT_MAX} tokens "
            f"({time.perf_counter() - t1:.0f}s to decode; "
            f"{stage.get('exact_match_before', float('nan')):.2%} before fine-tuning)"
        )
    if args.out_dir:
        print(f"model: {args.out_dir}/config.json + model.safetensors; metrics: {run.metrics.path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(common.cli(main))

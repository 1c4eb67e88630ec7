"""Pre-train a tiny BERT by masked-language modelling on a slice of the default corpus.

    python scripts/train_bert.py                          # reference backend, 120 steps
    python scripts/train_bert.py --backend fast --steps 2000 --n-embd 128 --n-layer 4
    python scripts/train_bert.py --max-minutes 5 --out runs/bert

Each step draws a batch of windows of the training text, wraps each in [CLS] ... [SEP], corrupts
15% of the tokens by BERT's recipe (`mask_tokens`: 80% [MASK], 10% a random token, 10% unchanged)
and trains the model to recover the originals. Batches come from the shared generator with seed
`--seed + 1`, masks with `--seed` on stream step * 2**16 (site 0, next to the dropout sites), so
every backend sees the same data and the same masks.

Prints a progress line every --log-every steps, the held-out MLM loss and accuracy every
--eval-every steps (on fixed masked windows of the last 10% of the text), saves a checkpoint
(`config.json` + `model.safetensors`, loadable by Hugging Face as BertForMaskedLM) to --out, and
ends by filling in the masked tokens of a held-out snippet.

With the defaults (38k parameters, 8 x 32 tokens a step) the reference takes 5-10 s a step on a
busy two-core machine: its held-out MLM loss falls from ln V = 5.78 to the unigram level (about
4.48) within some 60 steps and below it by step 100; recovering masked tokens from their context
takes longer runs (or the fast backend).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402  (puts the repository root on sys.path)

from reference.layers import dropout_stream  # noqa: E402  (the shared stream convention)

SPECIALS = ("[PAD]", "[CLS]", "[SEP]", "[MASK]")
NEEDS = ("BERT", "BERTConfig", "mask_tokens", "AdamW", "CosineWarmupLR", "clip_grad_norm")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_backend_args(p)
    p.add_argument("--text-bytes", type=int, default=200_000, help="slice of the corpus to use")
    p.add_argument("--corpus", default=None, help="a UTF-8 text file instead of the default")
    p.add_argument("--vocab-size", type=int, default=320, help="BPE tokens before specials")
    p.add_argument("--block-size", type=int, default=32, help="tokens per sequence, T")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--n-layer", type=int, default=2)
    p.add_argument("--n-head", type=int, default=2)
    p.add_argument("--n-embd", type=int, default=32)
    p.add_argument("--dropout", type=float, default=0.0, help="BERT uses 0.1; short runs: 0")
    p.add_argument("--mask-prob", type=float, default=0.15)
    p.add_argument("--steps", type=int, default=120)
    p.add_argument("--max-minutes", type=float, default=None, help="stop after this long")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--log-every", type=int, default=5)
    p.add_argument("--eval-every", type=int, default=20)
    p.add_argument("--eval-batches", type=int, default=4)
    p.add_argument("--out", default="runs/bert", help="checkpoint and tokenizer folder")
    return common.finish_backend_args(p.parse_args(argv))


def load_backend(name: str):
    try:
        return common.load_backend(name, *NEEDS)
    except ModuleNotFoundError as e:
        raise SystemExit(f"the {name!r} backend is not available here ({e})") from e


def wrap(windows, cls_id, sep_id):
    """[CLS] + window + [SEP] for every window of a batch: (B, T - 2) -> (B, T)."""
    return [[cls_id, *w, sep_id] for w in windows]


def masked_batch(m, ids, args, specials, step, data_seed, mask_seed):
    """(inputs, labels) for one step: random windows, wrapped, corrupted by BERT's recipe."""
    pad, cls_id, sep, mask = specials
    windows, _ = common.lm_batch(ids, args.block_size - 2, args.batch_size, data_seed, step)
    return m.mask_tokens(
        wrap(windows, cls_id, sep),
        args.vocab_size,  # random replacements come from the ordinary tokens only
        mask,
        set(specials),
        mask_seed,
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


def fill_in_sample(m, model, tok, ids, args, specials, seed) -> None:
    """Hide a quarter of a held-out snippet's tokens and print the model's best guess for each."""
    pad, cls_id, sep, mask = specials
    start = len(ids) // 2
    snippet = ids[start : start + args.block_size - 2]
    sequence = [cls_id, *snippet, sep]
    # the recipe's selection rule picks the positions; every picked one is shown as [MASK]
    _, labels = m.mask_tokens([sequence], args.vocab_size, mask, set(specials), seed, 1, 0.25)
    inputs = [[mask if y != -100 else x for x, y in zip(sequence, labels[0])]]
    model.eval()
    logits, _ = model(inputs)
    guesses, right = [], 0
    for t, y in enumerate(labels[0]):
        if y == -100:
            continue
        scores = logits[0][t]
        guess = max(range(args.vocab_size), key=scores.__getitem__)  # ordinary tokens only
        guesses.append((t, guess))
        right += guess == y

    def show(replace) -> str:
        pieces = []
        for t, token in enumerate(snippet, start=1):
            pieces.append(replace.get(t, tok.decode([token])))
        return "".join(pieces)

    print("\nsample: fill in the masked tokens of a held-out snippet")
    print("  original:", repr(tok.decode(snippet)))
    print("  masked:  ", repr(show({t: "[MASK]" for t, _ in guesses})))
    print("  filled:  ", repr(show({t: f"[[{tok.decode([g])}]]" for t, g in guesses})))
    print(f"  {right}/{len(guesses)} masked tokens recovered exactly")


def main(argv=None) -> int:
    args = parse_args(argv)
    m = load_backend(args.backend)
    if args.block_size < 3:
        raise SystemExit("--block-size must be at least 3 ([CLS], a token, [SEP])")
    os.makedirs(args.out, exist_ok=True)
    tok, ids = common.corpus_ids(args.text_bytes, args.vocab_size, args.corpus, args.out)
    args.vocab_size = tok.vocab_size  # training may stop short of the size asked for
    specials = tuple(args.vocab_size + k for k in range(len(SPECIALS)))  # pad, cls, sep, mask
    tok.register_special_tokens(dict(zip(SPECIALS, specials)))
    split = int(0.9 * len(ids))
    train_ids, val_ids = ids[:split], ids[split:]
    data_seed, mask_seed = args.seed + 1, args.seed

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
    schedule = m.CosineWarmupLR(args.lr, min(args.warmup, args.steps - 1), args.steps, args.lr / 10)
    # fixed held-out batches, so every evaluation scores the same masked positions
    eval_batches = [
        masked_batch(m, val_ids, args, specials, 10**6 + k, data_seed, mask_seed)
        for k in range(args.eval_batches)
    ]
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
    val_loss, val_acc = evaluate(model, eval_batches)
    print(f"step     0  held-out MLM loss {val_loss:.4f}  accuracy {val_acc:6.2%}", flush=True)

    progress = common.Progress(args.steps, args.batch_size * args.block_size)
    t0, recent, step = time.perf_counter(), [], 0
    for step in range(1, args.steps + 1):
        opt.lr = schedule(step - 1)
        inputs, labels = masked_batch(m, train_ids, args, specials, step, data_seed, mask_seed)
        _, loss = model(inputs, labels=labels)  # forward; the loss is a float
        model.zero_grad()
        model.backward()  # explicit backprop through every layer
        m.clip_grad_norm(model.parameters(), args.grad_clip)
        opt.step()
        recent.append(loss)
        out_of_time = args.max_minutes and time.perf_counter() - t0 > 60 * args.max_minutes
        if step % args.log_every == 0 or step == args.steps or out_of_time:
            progress.report(step, sum(recent) / len(recent), f"lr {opt.lr:.2e}")
            recent = []
        if step % args.eval_every == 0 or step == args.steps or out_of_time:
            val_loss, val_acc = evaluate(model, eval_batches)
            model.save_pretrained(os.path.join(args.out, "checkpoint"))
            print(
                f"step {step:5d}  held-out MLM loss {val_loss:.4f}  accuracy {val_acc:6.2%}  "
                f"(checkpoint saved)",
                flush=True,
            )
        if out_of_time:
            print(f"stopping: --max-minutes {args.max_minutes} reached")
            break
    tok.save(os.path.join(args.out, "tokenizer.bpe"))
    print(f"trained {step} steps in {time.perf_counter() - t0:.1f}s; saved to {args.out}")
    fill_in_sample(m, model, tok, val_ids, args, specials, mask_seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Sample text from a GPT or LLaMA checkpoint written by train_gpt.py (or any GPT-2 or LLaMA
directory with a tokenizer; config.json's model_type says which).

    python scripts/sample_gpt.py runs/gpt --prompt "def " --max-new-tokens 100
    python scripts/sample_gpt.py runs/gpt --temperature 0        # greedy
    python scripts/sample_gpt.py runs/gpt --num-samples 3 --top-k 20 --seed 1

The tokenizer is read from the checkpoint folder: `tokenizer.bpe` (the project's format) or else
Hugging Face's `vocab.json` + `merges.txt`.
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402  (puts the repository root on sys.path)

import reference.module  # noqa: E402  (the config.json reader)


def load_tokenizer(m, folder: str):
    """The backend's BPETokenizer, read from the checkpoint folder."""
    path = os.path.join(folder, "tokenizer.bpe")
    if os.path.isfile(path):
        return m.BPETokenizer.load(path)
    if os.path.isfile(os.path.join(folder, "vocab.json")):
        return m.BPETokenizer.load_huggingface(folder)
    common.fail(f"{folder!r} has no tokenizer (tokenizer.bpe, or vocab.json + merges.txt)")


def main(argv=None) -> int:
    p = common.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", help="folder with config.json, model.safetensors, tokenizer")
    common.add_backend_args(p)
    p.add_argument("--prompt", default="\n")
    p.add_argument("--max-new-tokens", type=common.positive_int, default=64)
    p.add_argument(
        "--num-samples", type=common.positive_int, default=1, help="rows sampled side by side"
    )
    p.add_argument("--temperature", type=common.non_negative_float, default=0.8)
    p.add_argument("--top-k", type=common.positive_int, default=None)
    p.add_argument("--top-p", type=common.positive_float, default=None)
    p.add_argument("--no-cache", action="store_true", help="recompute the whole context per token")
    args = common.finish_backend_args(p.parse_args(argv))

    m = common.load_backend(args.backend, "GPT", "Llama", "BPETokenizer")
    if not os.path.isdir(args.checkpoint):
        common.fail(f"checkpoint {args.checkpoint}: no such folder")
    if not os.path.isfile(os.path.join(args.checkpoint, "config.json")):
        common.fail(f"checkpoint {args.checkpoint}: no config.json there (not a model folder)")
    with common.user_errors(f"checkpoint {args.checkpoint}: "):
        config = reference.module.read_config_json(os.path.join(args.checkpoint, "config.json"))
        family = m.Llama if config.get("model_type") == "llama" else m.GPT
        model = family.from_pretrained(args.checkpoint, **common.model_options(args))
        tok = load_tokenizer(m, args.checkpoint)
    prompt = tok.encode_ordinary(args.prompt)
    if not prompt:
        common.fail("--prompt must encode to at least one token")
    t0 = time.perf_counter()
    out = model.generate(
        [prompt] * args.num_samples,
        args.max_new_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed,
        use_cache=not args.no_cache,
    )
    elapsed = time.perf_counter() - t0
    for k, row in enumerate(out):
        print(f"--- sample {k} ---")
        print(tok.decode(row))
    n = args.max_new_tokens * args.num_samples
    print(f"--- {n} tokens in {elapsed:.1f}s ({n / max(elapsed, 1e-9):.1f} tok/s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(common.cli(main))

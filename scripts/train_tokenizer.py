"""Train a byte-level BPE tokenizer and show what it learned.

    python scripts/train_tokenizer.py                          # 1 MB of the stdlib's sources
    python scripts/train_tokenizer.py --input book.txt --vocab-size 4096 --pattern cl100k
    python scripts/train_tokenizer.py --tiktoken tok.tiktoken --hf-dir hf/   # also export

Reports training time, vocabulary size and bytes per token on the training text, saves the
tokenizer in the project's format (plus tiktoken / Hugging Face files when asked), and prints how
a sample of English, code and Chinese is cut into tokens.
"""

from __future__ import annotations

import importlib
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402  (puts the repository root on sys.path)

import reference  # noqa: E402  (the corpus loader is shared by every backend)

SAMPLE = "def greet(name):\n    return f'Hello, {name}!'  # 12345\n中文分词：你好，世界。 It's 😀"


def tokenizer_class(backend: str):
    """BPETokenizer from the chosen backend package (falling back to its `bpe` module)."""
    module = importlib.import_module(backend)
    if hasattr(module, "BPETokenizer"):
        return module.BPETokenizer
    return importlib.import_module(f"{backend}.bpe").BPETokenizer


def show_segmentation(tok, text: str) -> str:
    """The tokens of `text`, each as its text between bars: |def| greet|(|name|):|."""
    pieces = [
        tok.decode_bytes([i]).decode("utf-8", errors="backslashreplace") for i in tok.encode(text)
    ]
    return "|" + "|".join(p.replace("\n", "\\n").replace("\t", "\\t") for p in pieces) + "|"


def main(argv: list[str] | None = None) -> int:
    parser = common.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input", help="a UTF-8 text file (default: the stdlib's .py sources)")
    parser.add_argument(
        "--max-bytes", type=common.positive_int, default=1_000_000, help="cut the corpus here"
    )
    parser.add_argument("--vocab-size", type=common.positive_int, default=1000)
    parser.add_argument(
        "--pattern", default="gpt2", choices=["gpt2", "cl100k", "cl100k_tiktoken", "none"]
    )
    parser.add_argument("--out", default="tokenizer.bpe", help="where to save (project format)")
    parser.add_argument("--tiktoken", help="also write a tiktoken rank file here")
    parser.add_argument("--hf-dir", help="also write Hugging Face vocab.json + merges.txt here")
    parser.add_argument("--sample", default=SAMPLE, help="text whose segmentation is printed")
    parser.add_argument("--backend", default="reference", choices=["reference", "fast"])
    args = parser.parse_args(argv)
    common.check_text_file(args.input, "--input")
    if args.vocab_size < 256:
        common.fail(f"--vocab-size must be >= 256 (the byte tokens), got {args.vocab_size}")

    with common.user_errors("--input: " if args.input else ""):
        text = reference.load_text_corpus(max_bytes=args.max_bytes, path=args.input)
    n_bytes = len(text.encode("utf-8"))
    source = args.input or "the standard library's .py sources"
    print(f"corpus: {n_bytes:,} bytes, {len(text):,} characters from {source}")

    BPETokenizer = tokenizer_class(args.backend)
    tok = BPETokenizer(pattern=None if args.pattern == "none" else args.pattern)
    start = time.perf_counter()
    tok.train(text, args.vocab_size)
    train_s = time.perf_counter() - start
    print(f"trained: vocab_size {tok.vocab_size} ({len(tok.merges)} merges) in {train_s:.2f} s")

    start = time.perf_counter()
    ids = tok.encode_ordinary(text)
    encode_s = time.perf_counter() - start
    print(
        f"encoded the corpus: {len(ids):,} tokens, {n_bytes / max(len(ids), 1):.3f} bytes per "
        f"token, in {encode_s:.2f} s ({n_bytes / 1e6 / max(encode_s, 1e-9):.2f} MB/s)"
    )
    if tok.decode(ids) != text:
        raise SystemExit("round trip failed: decode(encode(text)) != text")

    with common.user_errors("--out: "):
        tok.save(args.out)
    print(f"saved {args.out}")
    if args.tiktoken:
        with common.user_errors("--tiktoken: "):
            tok.save_tiktoken(args.tiktoken)
        print(f"saved {args.tiktoken} (tiktoken ranks)")
    if args.hf_dir:
        with common.user_errors("--hf-dir: "):
            tok.save_huggingface(args.hf_dir)
        print(f"saved {args.hf_dir}/vocab.json and merges.txt")

    longest = sorted(tok.vocab.values(), key=len, reverse=True)[:8]
    print("longest tokens:", [t.decode("utf-8", errors="backslashreplace") for t in longest])
    print(f"sample: {args.sample}")
    print(f"tokens ({len(tok.encode(args.sample))}): {show_segmentation(tok, args.sample)}")
    print(f"report: python scripts/report.py --tokenizer {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(common.cli(main))

"""Decoding: turning a model's next-token scores into tokens.

Three rules, each written once and shared by every model and backend:

- `sample_next_token`: the sampling rule of a decoder-only model's `generate` (temperature,
  top-k, top-p), by inverse-CDF sampling from one uniform draw, so that backends that draw the
  same uniform pick the same token; `check_sampling` and `check_generate_args` check its knobs.
- `greedy_decode(model, src)`: an encoder-decoder's most likely next token, step by step.
- `beam_search(model, src)`: the `beam_width` most likely prefixes, step by step.

The two encoder-decoder searches take any `model` with a `config` (`src_vocab_size`, `max_len`,
`bos_id`, `eos_id`), `encode(src)` -> memory (B, Ts, C), `decode(tgt, memory, src)` -> logits
(B, Tt, V) as nested lists of floats, and `training` / `train(mode)` / `eval()`. They run in
evaluation mode (no dropout), encode once, stop a row at `eos_id`, and return the tokens
without `bos_id` and `eos_id`.
"""

from __future__ import annotations

import math
from typing import Any

from .checks import check_int, check_interval, check_seq2seq_ids
from .losses import log_softmax
from .rng import MASK64


# -- sampling --------------------------------------------------------------------------------------
def check_sampling(temperature: Any, top_k: Any, top_p: Any) -> None:
    """temperature >= 0 (finite), top_k None or an int >= 1, top_p None or in (0, 1]."""
    check_interval("temperature", temperature, 0.0, math.inf, high_open=True)
    if top_k is not None:
        check_int("top_k", top_k, low=1)
    if top_p is not None:
        if check_interval("top_p", top_p, 0.0, 1.0, high_open=False) == 0.0:
            raise ValueError("top_p must be in (0, 1], got 0.0 (it would keep no token)")


def check_generate_args(
    max_new_tokens: Any, temperature: Any, top_k: Any, top_p: Any, seed: Any
) -> None:
    """The arguments of `generate` after the prompt, checked in this order."""
    check_int("max_new_tokens", max_new_tokens, low=0)
    check_sampling(temperature, top_k, top_p)
    if check_int("seed", seed, low=0) > MASK64:
        raise ValueError(f"seed must be in [0, 2**64), got {seed}")


def sample_next_token(
    logits: list[float],
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    u: float = 0.0,
) -> int:
    """One token id from a row of V logits and a uniform u in [0, 1), by inverse-CDF sampling.

    The exact arithmetic, so that another backend picks the same token (sums run left to right):
    1. temperature 0: the argmax, ties to the lowest id (u is unused).
    2. z_i = logits_i / temperature; order the ids by z descending, ties by id ascending.
    3. top_k: keep the first top_k ids of that order (all of them if top_k >= V).
    4. softmax over the kept ids in that order: e_i = exp(z_i - z_first), p_i = e_i / sum(e).
    5. top_p: keep the shortest prefix whose running sum of p reaches top_p (at least one id).
    6. mass = sum of the kept p; walk the kept ids, c += p_i, and return the first with
       u * mass < c (the last kept id if rounding leaves none).

    >>> sample_next_token([0.0, 0.0, 1.0], u=0.99), sample_next_token([0.0, 0.0, 1.0], 0.0)
    (1, 2)
    """
    check_sampling(temperature, top_k, top_p)
    if not 0.0 <= u < 1.0:
        raise ValueError(f"u must be a uniform draw in [0, 1), got {u}")
    if not logits:
        raise ValueError("logits must hold at least one value")
    if temperature == 0.0:
        return _argmax(logits)
    z = [zi / temperature for zi in logits]  # (V,)
    for i, zi in enumerate(z):
        if not math.isfinite(zi):
            raise ValueError(f"logits / temperature must be finite, got {zi} at id {i}")
    order = sorted(range(len(z)), key=lambda i: (-z[i], i))  # most likely first
    if top_k is not None:
        order = order[:top_k]
    m = z[order[0]]  # the max: exp never overflows
    e = [math.exp(z[i] - m) for i in order]
    total = 0.0
    for ei in e:
        total += ei
    probs = [ei / total for ei in e]
    if top_p is not None and top_p < 1.0:
        c = 0.0
        for n, p in enumerate(probs, start=1):
            c += p
            if c >= top_p:  # the nucleus: the fewest most-likely tokens holding top_p
                order, probs = order[:n], probs[:n]
                break
    mass = 0.0
    for p in probs:
        mass += p
    target, c = u * mass, 0.0
    for i, p in zip(order, probs):
        c += p
        if target < c:
            return i
    return order[-1]


def _argmax(row: list[float]) -> int:
    """The index of the largest entry; the lowest index wins a tie."""
    best = 0
    for i, v in enumerate(row):
        if v > row[best]:  # strictly greater: a tie keeps the lower index
            best = i
    return best


# -- encoder-decoder searches ----------------------------------------------------------------------
def _check_count(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")
    return value


def check_max_len(max_len: Any, limit: int) -> int:
    """A decoding length: None means `limit` (the model's max_len), else an int in [1, limit]."""
    return _check_count("max_len", limit if max_len is None else max_len, 1, limit)


def check_beam_args(beam_width: Any, length_penalty: Any) -> None:
    """beam_width an int in [1, 2**20], length_penalty a finite number."""
    _check_count("beam_width", beam_width, 1, 1 << 20)
    if isinstance(length_penalty, bool) or not isinstance(length_penalty, (int, float)):
        raise TypeError(f"length_penalty must be a number, got {type(length_penalty).__name__}")
    if not math.isfinite(length_penalty):
        raise ValueError(f"length_penalty must be finite, got {length_penalty}")


def strip_eos(tokens: list[int], eos_id: int) -> list[int]:
    """The generated tokens before the first eos: [5, 3, eos, 7] -> [5, 3]."""
    return tokens[: tokens.index(eos_id)] if eos_id in tokens else tokens


def _check_src(model: Any, src: Any) -> list[list[int]]:
    c = model.config
    return check_seq2seq_ids("src", src, c.src_vocab_size, "src_vocab_size", c.max_len)


def greedy_decode(model: Any, src: Any, max_len: int | None = None) -> list[list[int]]:
    """Each source's output by picking the most likely next token until eos_id or `max_len`
    tokens (eos included; default config.max_len). Ties go to the lowest token id.
    Returns B lists of ids without bos_id / eos_id."""
    src = _check_src(model, src)
    c = model.config
    max_len = check_max_len(max_len, c.max_len)
    was_training = model.training
    model.eval()
    try:
        memory = model.encode(src)  # encode once; every step reuses it
        tgt = [[c.bos_id] for _ in src]
        live = list(range(len(src)))  # rows that have not produced eos yet
        for _ in range(max_len):
            logits = model.decode(
                [tgt[b] for b in live], [memory[b] for b in live], [src[b] for b in live]
            )  # (len(live), t, V): the decoder reruns on the whole prefix (no KV cache)
            for row, b in zip(logits, live):
                tgt[b].append(_argmax(row[-1]))
            live = [b for b in live if tgt[b][-1] != c.eos_id]
            if not live:
                break
    finally:
        model.train(was_training)
    return [strip_eos(t[1:], c.eos_id) for t in tgt]


def beam_search(
    model: Any,
    src: Any,
    beam_width: int = 4,
    max_len: int | None = None,
    length_penalty: float = 1.0,
) -> list[list[int]]:
    """Each source's best output by beam search: keep the `beam_width` most likely prefixes.

    Each step scores every (beam, token) extension by its summed log-probability and ranks
    them, ties to the lower beam then the lower token id. Walking down the ranking, an eos
    extension among the top `beam_width` finishes a hypothesis; other extensions fill the next
    beam up to `beam_width`. A row stops when `beam_width` hypotheses are finished (or after
    `max_len` tokens, when the live beams join them); the best by
    sum log p / length ** length_penalty (length counts eos) wins, the earlier on a tie. With
    beam_width 1 this is `greedy_decode`.
    """
    src = _check_src(model, src)
    max_len = check_max_len(max_len, model.config.max_len)
    check_beam_args(beam_width, length_penalty)
    was_training = model.training
    model.eval()
    try:
        memory = model.encode(src)  # (B, Ts, C), encoded once
        return [
            _beam_search_one(model, memory[b], src[b], beam_width, max_len, length_penalty)
            for b in range(len(src))
        ]
    finally:
        model.train(was_training)


def _beam_search_one(model, memory, src, k, max_len, length_penalty) -> list[int]:
    """Beam search for one source: memory (Ts, C), src (Ts,); see `beam_search`."""
    eos = model.config.eos_id
    beams = [(0.0, [model.config.bos_id])]  # (sum of log-probabilities, tokens from bos)
    finished = []  # (sum log p / length ** length_penalty, tokens without bos)
    for _ in range(max_len):
        n = len(beams)
        logits = model.decode([t for _, t in beams], [memory] * n, [src] * n)  # (n, t, V)
        ranked = sorted(
            (-(score + lp), i, v)
            for i, (score, _) in enumerate(beams)
            for v, lp in enumerate(log_softmax(logits[i][-1]))
        )  # best first; ties -> the lower beam, then the lower token id
        beams_next = []
        for rank, (neg_score, i, v) in enumerate(ranked):
            tokens = beams[i][1] + [v]
            if v == eos:
                if rank < k:  # an eos ranked below the top k is not worth keeping
                    length = len(tokens) - 1  # generated tokens, eos included
                    finished.append((-neg_score / length**length_penalty, tokens[1:]))
            else:
                beams_next.append((-neg_score, tokens))
                if len(beams_next) == k:  # every later rank is below the top k
                    break
        beams = beams_next
        if len(finished) >= k or not beams:
            break
    else:  # max_len reached: the unfinished beams compete as they are
        finished.extend((s / (len(t) - 1) ** length_penalty, t[1:]) for s, t in beams)
    best = min(range(len(finished)), key=lambda j: (-finished[j][0], j))  # earlier on a tie
    return strip_eos(finished[best][1], eos)

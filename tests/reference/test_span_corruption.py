"""reference/span_corruption.py: T5's span corruption, its bookkeeping (input and target rebuild
the text), its statistics on a large sample, determinism, and bad input."""

import math
from collections import Counter

import pytest

from reference.span_corruption import noise_span_lengths, span_corruption

SENTINELS = list(range(999, 979, -1))  # 20 sentinels, counted down as T5's <extra_id_k>
EOS = 1


def rebuild(source: list[int], target: list[int]) -> list[int]:
    """The text again: each sentinel of the input replaced by what follows it in the target."""
    spans, current = {}, None
    for i in target[:-1]:
        if i in SENTINELS:
            current = spans.setdefault(i, [])
        else:
            current.append(i)
    out = []
    for i in source[:-1]:
        out.extend(spans[i] if i in SENTINELS else [i])
    return out


def test_input_and_target_rebuild_the_text():
    texts = [list(range(100, 100 + n)) for n in (2, 3, 7, 20, 64, 101)]
    inputs, targets = span_corruption(texts, SENTINELS, EOS, seed=3, stream=4)
    for text, source, target in zip(texts, inputs, targets):
        assert source[-1] == EOS and target[-1] == EOS
        assert rebuild(source, target) == text
        assert source[0] == text[0]  # a text starts with kept tokens
        n_spans = sum(i in SENTINELS for i in source)
        assert [i for i in target if i in SENTINELS] == SENTINELS[:n_spans]
        assert len(target) - 1 - n_spans == min(
            max(math.floor(len(text) * 0.15 + 0.5), 1), len(text) - 1
        )


def test_statistics_on_a_large_sample():
    """15% of the tokens, in spans of mean length about 3, each composition equally likely, and
    the positions away from the ends hidden about equally often."""
    L, B = 64, 4000
    n_noise, n_spans = 10, 3  # floor(64 * 0.15 + 1/2), floor(10 / 3 + 1/2)
    first_span, hidden_at = Counter(), Counter()
    for b in range(B):
        kept, noise = noise_span_lengths(L, seed=7, stream=11, row=b)
        assert sum(noise) == n_noise and len(noise) == len(kept) == n_spans
        assert sum(kept) == L - n_noise and min(noise) >= 1 and min(kept) >= 1
        first_span[noise[0]] += 1
        t = 0
        for k, n in zip(kept, noise):
            t += k
            for j in range(t, t + n):
                hidden_at[j] += 1
            t += n
    # P(first span = m) = C(n_noise - m - 1, n_spans - 2) / C(n_noise - 1, n_spans - 1)
    total = math.comb(n_noise - 1, n_spans - 1)
    for m in range(1, n_noise - n_spans + 2):
        p = math.comb(n_noise - m - 1, n_spans - 2) / total
        sigma = math.sqrt(B * p * (1 - p))
        assert abs(first_span[m] - B * p) <= 4.5 * sigma, (m, first_span[m], B * p)
    # as T5's code: kept tokens first and a hidden span last; in between about uniform
    assert hidden_at[0] == 0 and hidden_at[L - 1] == B
    mean = B * n_noise / L
    assert all(0.6 * mean < hidden_at[j] < 1.4 * mean for j in range(4, L // 2)), hidden_at
    # the whole corpus: 15% hidden, mean span length 10/3
    inputs, targets = span_corruption([list(range(2, 2 + L))] * 200, SENTINELS, EOS, 7, 12)
    spans = sum(sum(i in SENTINELS for i in s) for s in inputs)
    hidden = sum(len(t) - 1 for t in targets) - spans
    assert hidden / (200 * L) == pytest.approx(0.15, abs=0.01)
    assert hidden / spans == pytest.approx(10 / 3)


def test_deterministic_per_row_and_stream():
    texts = [list(range(10, 50))] * 3
    a = span_corruption(texts, SENTINELS, EOS, seed=1, stream=2)
    assert a == span_corruption(texts, SENTINELS, EOS, seed=1, stream=2)
    assert a != span_corruption(texts, SENTINELS, EOS, seed=1, stream=3)
    assert len({tuple(s) for s in a[0]}) > 1  # each row draws its own spans
    # a row's spans do not depend on the other rows
    assert span_corruption(texts[:1], SENTINELS, EOS, 1, 2)[0][0] == a[0][0]


@pytest.mark.parametrize(
    "kwargs,error,words",
    [
        ({"sequences": []}, TypeError, "sequences must be a non-empty list"),
        ({"sequences": [[5]]}, ValueError, r"sequences\[0\] must hold at least 2 tokens"),
        ({"sequences": [[5, -1]]}, ValueError, r"sequences\[0\]\[1\] must be a token id"),
        ({"sequences": [5]}, TypeError, r"sequences\[0\] must be a list"),
        ({"sentinel_ids": [1.5]}, TypeError, "sentinel_ids must be a list of token ids"),
        ({"sentinel_ids": []}, ValueError, "gets 1 spans but sentinel_ids holds only 0"),
        ({"eos_id": -1}, ValueError, "eos_id must be a token id"),
        ({"noise_density": 1.0}, ValueError, r"noise_density must be in \(0, 1\)"),
        ({"noise_density": "x"}, TypeError, "noise_density must be a number"),
        ({"mean_noise_span_length": 0.5}, ValueError, "mean_noise_span_length must be >= 1"),
        ({"seed": -1}, ValueError, "seed"),
    ],
)
def test_errors(kwargs, error, words):
    args = {"sequences": [[5, 6, 7]], "sentinel_ids": SENTINELS, "eos_id": EOS, "seed": 0,
            "stream": 0, **kwargs}  # fmt: skip
    with pytest.raises(error, match=words):
        span_corruption(**args)

"""Text metrics: BLEU-n against a reference set; Self-BLEU and distinct-n for diversity.

BLEU here is the text-GAN benchmark protocol (SeqGAN / Texygen): every generated sentence
is scored against the *whole* reference set as its references, sentence-level BLEU with
uniform weights over 1..n-grams, NLTK's `SmoothingFunction().method1` (a zero n-gram match
count becomes 0.1), the closest reference length for the brevity penalty, and 0 when no
unigram matches (as NLTK does); the corpus score is the mean over sentences. It is an own
implementation equal to `nltk.translate.bleu_score.sentence_bleu(refs, hyp, weights,
smoothing_function=method1)`, made fast by precomputing, for every n-gram, its maximum
count in any one reference (the clipping count) once for the reference set.

NLL-oracle (the SeqGAN paper's synthetic-data metric): the mean per-token NLL, under the
oracle LSTM, of sequences sampled from the generator; NLL-test is a generator's own
`LanguageModel.nll` of held-out real sequences.
"""
from __future__ import annotations

import bisect
import math
from collections import Counter

import torch

from ..layers import LanguageModel


@torch.no_grad()
def nll_oracle(oracle: LanguageModel, generator: LanguageModel, n: int, seq_len: int,
               temperature: float = 1.0, bf16: bool = False) -> float:
    """Mean per-token NLL under `oracle` of n sequences sampled from `generator` (batched;
    `bf16`: the oracle's V-way projection inside the log-sum-exp in bf16)."""
    samples = generator.sample(n, seq_len, temperature)
    return oracle.nll(samples, bf16=bf16)


def _ngrams(words: list[str], n: int) -> Counter:
    return Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))


def _closest(lengths: list[int], c: int) -> int:
    """The reference length closest to c (the shorter on a tie), from a sorted list."""
    i = bisect.bisect_left(lengths, c)
    near = lengths[max(i - 1, 0): i + 1]
    return min(near, key=lambda r: (abs(r - c), r))


def _sentence_bleu(hyp: list[str], n_max: int, clip, ref_len) -> float:
    """Sentence BLEU-n_max with NLTK's method1; clip(n, gram) is the gram's largest count in
    any one reference, ref_len(c) the reference length used for the brevity penalty."""
    c = len(hyp)
    if c == 0:
        return 0.0
    log_p = 0.0
    for n in range(1, n_max + 1):
        counts = _ngrams(hyp, n)
        match = sum(min(k, clip(n, g)) for g, k in counts.items())
        total = max(sum(counts.values()), 1)
        if match == 0:
            if n == 1:
                return 0.0
            log_p += math.log(0.1 / total) / n_max  # NLTK method1
        else:
            log_p += math.log(match / total) / n_max
    r = ref_len(c)
    bp = 1.0 if c > r else math.exp(1 - r / c)
    return bp * math.exp(log_p)


class BLEU:
    """Precomputed clipping counts of a reference set; `score(hyps)` -> {bleu2: ..., ...}."""

    def __init__(self, references: list[list[str]], max_n: int = 5):
        self.max_n = max_n
        self.max_counts: list[dict] = [{} for _ in range(max_n + 1)]
        for ref in references:
            for n in range(1, max_n + 1):
                table = self.max_counts[n]
                for g, c in _ngrams(ref, n).items():
                    if c > table.get(g, 0):
                        table[g] = c
        self.ref_lens = sorted({len(r) for r in references})

    def sentence(self, hyp: list[str], n_max: int) -> float:
        return _sentence_bleu(hyp, n_max, lambda n, g: self.max_counts[n].get(g, 0),
                              lambda c: _closest(self.ref_lens, c))

    def score(self, hyps: list[list[str]], orders=(2, 3, 4, 5)) -> dict[str, float]:
        return {f"bleu{n}": sum(self.sentence(h, n) for h in hyps) / max(len(hyps), 1) for n in orders}


def distinct_n(sentences: list[list[str]], orders=(1, 2, 3)) -> dict[str, float]:
    """Unique n-grams / all n-grams over the generated set (Li et al. 2016)."""
    out = {}
    for n in orders:
        grams = [g for s in sentences for g in _ngrams(s, n).elements()]
        out[f"distinct{n}"] = len(set(grams)) / max(len(grams), 1)
    return out


def distinct_sequences(sentences: list[list[str]]) -> dict[str, float]:
    """Share of generated sequences that are distinct (a collapse check; gankit/diagnostics.py)."""
    return {"distinct_seqs": len({tuple(s) for s in sentences}) / max(len(sentences), 1)}


def self_bleu(sentences: list[list[str]], orders=(2, 3, 4, 5)) -> dict[str, float]:
    """Self-BLEU (Zhu et al. 2018, Texygen): every generated sentence scored as above against
    all the *other* generated sentences; higher = less diverse. Exact leave-one-out without
    n^2 work: an n-gram's clipping count without sentence i is its largest count in another
    sentence, known from each n-gram's two largest per-sentence counts."""
    if len(sentences) < 2:
        return {f"self_bleu{n}": 0.0 for n in orders}
    max_n = max(orders)
    top: list[dict] = [{} for _ in range(max_n + 1)]  # gram -> [largest, sentences with it, second]
    grams = []
    for s in sentences:
        mine = [None] + [_ngrams(s, n) for n in range(1, max_n + 1)]
        grams.append(mine)
        for n in range(1, max_n + 1):
            table = top[n]
            for g, c in mine[n].items():
                t = table.get(g)
                if t is None:
                    table[g] = [c, 1, 0]
                elif c > t[0]:
                    table[g] = [c, 1, t[0]]
                elif c == t[0]:
                    t[1] += 1
                elif c > t[2]:
                    t[2] = c
    lengths = Counter(len(s) for s in sentences)
    out = {}
    for n_max in orders:
        total = 0.0
        for s, mine in zip(sentences, grams):
            def clip(n, g, mine=mine):
                first, holders, second = top[n][g]
                return second if mine[n][g] == first and holders == 1 else first
            others = sorted(k for k, v in lengths.items() if v > (k == len(s)))
            total += _sentence_bleu(s, n_max, clip, lambda c, others=others: _closest(others, c))
        out[f"self_bleu{n_max}"] = total / len(sentences)
    return out

"""Why a run works or fails: rule-based hints from the numbers in metrics.jsonl.

What the records hold (written by the models, the trainer and `gankit eval`):

  every log interval (averaged over its steps, no per-step host sync)
    d_real, d_fake     mean D(x) and D(G(z)) on the last D update's batch of each step:
                       probabilities (sigmoid of D's logit) for bce and minimax; D's raw
                       score for lsgan (targets 1 real / 0 fake; its optimal D equals bce's
                       p_data / (p_data + p_g), so the scale reads the same) and hinge
                       (margins at +1 / -1)
    d_fake_rejected    share of those fakes D rejects with high confidence: D(G(z)) < 0.05
                       (bce, minimax, lsgan), score < -1 (hinge: past the margin)
    grad_norm_NAME     L2 norm of optimizer NAME's gradient at its last update in the last
                       step of the interval (one sample per interval, see trainer.Updater)
    reward_pos         SeqGAN: mean reward Q per token position (a list)
    d_acc_fake, d_acc_real   SeqGAN: D's accuracy on the round's fresh fakes / reals before
                       it trains on them; reward_var, reward_rollout_var, adv_sq: the
                       rewards' variance, the rollouts' spread, mean (Q - b)² (docs/seqgan.md);
                       d_trained (with model.d_target_acc): the share of D steps that trained
  every evaluation (`"eval": true`; metrics/diagnostics.py)
    class_hist, classes_covered, num_classes    generated samples under the domain classifier
    memo_nn_fake, memo_nn_real, memo_close      nearest-training-image distances (pixel space)
    distinct_seqs, self_bleu*, distinct*        SeqGAN diversity

`hints(records, loss)` applies each rule in RULES to a run's records and returns the hints
that fire, each one line carrying the numbers that triggered it. Pure: no torch, no files,
so every rule is tested on records made to show it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

PROB_SCALE = ("bce", "minimax", "lsgan")
"""losses whose d_fake reads as a probability (see above); hinge scores do not"""
D_WINS_BELOW = 0.01
"""D(G(z)) below this in a log interval: D rejects practically every fake"""
COVERAGE_MIN = 0.8
"""mode collapse when fewer than this share of the classes are covered (8 of 10)"""
MEMO_CLOSE_MAX = 0.25
"""memorisation when more than this share of samples sit closer to a training image than
95% of held-out real images do (a generator that samples like the data shows ~5%)"""
DISTINCT_MIN = 0.5
"""text collapse when fewer than this share of generated sequences are distinct"""


@dataclass(frozen=True)
class Hint:
    code: str
    """stable id (printed once per run, tested by name)"""
    text: str
    """one line: what happened, the numbers that show it, what to try"""


def _train(records: list[dict]) -> list[dict]:
    return [r for r in records if not r.get("eval")]


def _evals(records: list[dict], key: str) -> list[dict]:
    return [r for r in records if r.get("eval") and r.get(key) is not None]


def _longest_run(flags: list[bool]) -> tuple[int, int]:
    """(length, start index) of the longest run of True."""
    best, best_start, cur, start = 0, 0, 0, 0
    for i, f in enumerate(flags):
        if f:
            if cur == 0:
                start = i
            cur += 1
            if cur > best:
                best, best_start = cur, start
        else:
            cur = 0
    return best, best_start


def d_wins(records: list[dict], loss: str | None) -> Hint | None:
    """D(G(z)) < 0.01 (hinge: > 99% of fakes past the margin) for many log intervals in a
    row: D rejects every fake, so the non-saturating G loss is large but uninformative and
    the minimax one vanishes."""
    rows = [r for r in _train(records) if r.get("d_fake") is not None]
    if not rows:
        return None
    if loss in PROB_SCALE:
        flags = [r["d_fake"] < D_WINS_BELOW for r in rows]
        what = f"D(G(z)) < {D_WINS_BELOW}"
    else:
        flags = [r.get("d_fake_rejected", 0.0) > 0.99 for r in rows]
        what = "D rejects > 99% of fakes with high confidence"
    length, start = _longest_run(flags)
    if length < max(5, len(rows) // 10):  # "many": 5 intervals, or a tenth of the run
        return None
    span = rows[start:start + length]
    mean = lambda k: sum(r.get(k, 0.0) for r in span) / len(span)  # noqa: E731
    grads = ""
    if all("grad_norm_g" in r for r in span):
        grads = f", |grad G| {mean('grad_norm_g'):.3g}"
    return Hint("d_wins", f"D wins: {what} for {length} of {len(rows)} log intervals "
                f"(steps {span[0]['step']}-{span[-1]['step']}: mean D(x) {mean('d_real'):.3g}, "
                f"D(G(z)) {mean('d_fake'):.3g}, {100 * mean('d_fake_rejected'):.0f}% of fakes rejected{grads}). "
                "G learns little from a D this sure; lower train.lr_d, use model.d_steps=1, "
                "or regularise D (dropout, data augmentation)")


def mode_collapse(records: list[dict], loss: str | None = None) -> Hint | None:
    """The newest evaluation's samples cover fewer than 80% of the classes."""
    rows = _evals(records, "classes_covered")
    if not rows:
        return None
    r = rows[-1]
    k = int(r.get("num_classes") or len(r.get("class_hist") or []))
    if not k or r["classes_covered"] >= COVERAGE_MIN * k:
        return None
    hist = r.get("class_hist") or []
    top = ""
    if hist:
        c = max(range(len(hist)), key=hist.__getitem__)
        top = f"; class {c} alone takes {100 * hist[c]:.0f}% of samples"
    return Hint("mode_collapse", f"mode collapse: at step {r['step']} the samples cover {r['classes_covered']} "
                f"of {k} classes under the domain classifier{top}. Try model.loss=lsgan or hinge, "
                "a lower train.lr, or train.ema")


def memorisation(records: list[dict], loss: str | None = None) -> Hint | None:
    """Samples sit closer to training images than held-out real images do."""
    rows = _evals(records, "memo_close")
    if not rows:
        return None
    r = rows[-1]
    if r["memo_close"] <= MEMO_CLOSE_MAX or r.get("memo_nn_fake", 0.0) >= r.get("memo_nn_real", 0.0):
        return None
    return Hint("memorisation", f"memorisation: at step {r['step']} {100 * r['memo_close']:.0f}% of samples are "
                "closer to a training image than 95% of held-out real images are (median distance to the "
                f"nearest training image {r['memo_nn_fake']:.3g} vs {r['memo_nn_real']:.3g} for held-out images). "
                "G copies its data: use more data, fewer steps, or data augmentation")


def text_collapse(records: list[dict], loss: str | None = None) -> Hint | None:
    """SeqGAN: fewer than half of the generated sequences are distinct."""
    rows = _evals(records, "distinct_seqs")
    if not rows or rows[-1]["distinct_seqs"] >= DISTINCT_MIN:
        return None
    r = rows[-1]
    first = rows[0]["distinct_seqs"]
    return Hint("text_collapse", f"collapse: at step {r['step']} only {100 * r['distinct_seqs']:.0f}% of generated "
                f"sequences are distinct (first evaluation: {100 * first:.0f}%). NLL-oracle and BLEU reward "
                "this; stop earlier, lower train.lr, or mix in MLE")


RULES: list[Callable[[list[dict], str | None], Hint | None]] = [d_wins, mode_collapse, memorisation, text_collapse]


def hints(records: list[dict], loss: str | None = None) -> list[Hint]:
    """Every rule's hint for a run's records (metrics.jsonl rows), in RULES order.
    `loss` is the run's model.loss (None: a model without one, e.g. SeqGAN)."""
    return [h for rule in RULES if (h := rule(records, loss)) is not None]

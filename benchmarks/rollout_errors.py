"""Rollout decisions over many simulated rollouts: wrong decisions with no true difference, and
labels to a decision with one.

A rollout compares a challenger's accuracy with the champion's (0.80) and looks after every
``--look`` labels, as stage 2 would after every window, with driftline's confidence sequence
(:mod:`driftline.detectors.confidence`) and decision rule (:func:`driftline.detectors.rollout.
decide`: promote when the interval is above the margin, roll back when below minus it, nothing
before ``--min-labels``):

- **shadow** (paired): both versions score every label; they disagree on ``--disagree`` of
  the examples (the challenger alone right on half of those plus half the true difference).
- **canary** (unpaired): a share ``--share`` of the labelled requests went to the challenger.

1. No true difference: the share of ``--rollouts`` rollouts with any promote or roll back
   within ``--max-labels`` labels, against the configured alpha, beside the same rule with a
   fixed-sample 95 % normal interval recomputed at every look (the error a naive monitor
   makes).
2. True differences of +2 and -2 points: the share decided (rightly and wrongly) within
   ``--max-labels`` and within ``--long-labels``, and the median labels to a decision.

Evidence is drawn per look as counts (multinomial for shadow pairs, binomial per canary
version), which is exactly what the mergeable evidence keeps; a check at start runs the first
rollouts through ``RolloutComparison`` window by window and asserts the same decisions at the
same looks. Run: ``python benchmarks/rollout_errors.py`` (``--rollouts 200`` for a quick look).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from driftline.detectors.confidence import difference_bounds, mean_bounds
from driftline.detectors.rollout import RolloutComparison, RolloutPolicy
from driftline.detectors.rollout_evidence import PairedEvidence, RolloutMetric, UnpairedEvidence

FloatArray = NDArray[np.float64]
ACCURACY = RolloutMetric("accuracy")
CHAMPION = 0.80


@dataclass
class Looks:
    """Cumulative evidence of every rollout (rows) at every look (columns)."""

    design: str
    n_champion: FloatArray
    n_challenger: FloatArray
    labels: FloatArray  # labels folded so far, both versions
    bounds: tuple[FloatArray, FloatArray]
    naive: tuple[FloatArray, FloatArray]
    counts: tuple[NDArray[np.int64], ...]  # per look, not cumulative: for the check


def shadow_looks(
    rng: np.random.Generator, args: argparse.Namespace, gain: float, n_looks: int
) -> Looks:
    up, down = args.disagree / 2 + gain / 2, args.disagree / 2 - gain / 2
    draws = rng.multinomial(args.look, [up, down, 1 - up - down], size=(args.rollouts, n_looks))
    wins, losses = draws[..., 0], draws[..., 1]
    n = np.broadcast_to(args.look * np.arange(1, n_looks + 1, dtype=np.float64), wins.shape)
    total = np.cumsum(wins - losses, axis=1).astype(np.float64)
    squares = np.cumsum(wins + losses, axis=1).astype(np.float64)
    mean = total / n
    m2 = np.maximum(squares - total * mean, 0.0)
    bounds = mean_bounds(n, mean, m2, -1.0, 1.0, args.alpha)
    half = 1.96 * np.sqrt(m2 / (n - 1) / n)
    return Looks("shadow", n, n, n, bounds, (mean - half, mean + half), (wins, losses))


def canary_looks(
    rng: np.random.Generator, args: argparse.Namespace, gain: float, n_looks: int
) -> Looks:
    to_challenger = rng.binomial(args.look, args.share, size=(args.rollouts, n_looks))
    to_champion = args.look - to_challenger
    right_challenger = rng.binomial(to_challenger, CHAMPION + gain)
    right_champion = rng.binomial(to_champion, CHAMPION)
    parts = []
    for count, right in ((to_challenger, right_challenger), (to_champion, right_champion)):
        n = np.cumsum(count, axis=1).astype(np.float64)
        total = np.cumsum(right, axis=1).astype(np.float64)
        mean = np.divide(total, n, out=np.zeros_like(total), where=n > 0)
        parts.append((n, mean, np.maximum(total - total * mean, 0.0)))
    challenger, champion = parts
    bounds = difference_bounds(challenger, champion, 0.0, 1.0, args.alpha)
    diff = challenger[1] - champion[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.sqrt(
            challenger[1] * (1 - challenger[1]) / challenger[0]
            + champion[1] * (1 - champion[1]) / champion[0]
        )
    naive = (diff - 1.96 * se, diff + 1.96 * se)
    labels = challenger[0] + champion[0]
    counts = (to_challenger, right_challenger, to_champion, right_champion)
    return Looks("canary", champion[0], challenger[0], labels, bounds, naive, counts)


def first_decisions(
    looks: Looks, bounds: tuple[FloatArray, FloatArray], args: argparse.Namespace
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Per rollout: the look index of the first decision (-1: none) and its sign
    (+1 promote, -1 roll back, 0 none), by the rule of ``decide``."""
    lo, hi = bounds
    ready = np.minimum(looks.n_champion, looks.n_challenger) >= args.min_labels
    promote = ready & (lo > args.margin)
    rollback = ready & (hi < -args.margin)
    any_ = promote | rollback
    index = np.where(any_.any(axis=1), any_.argmax(axis=1), -1)
    rows = np.arange(index.size)
    sign = np.where(index < 0, 0, np.where(promote[rows, index], 1, -1))
    return index, sign


def check_against_the_api(looks: Looks, args: argparse.Namespace, rollouts: int) -> None:
    """The first rollouts through RolloutComparison window by window: same looks, same calls."""
    index, sign = first_decisions(looks, looks.bounds, args)
    policy = RolloutPolicy(
        alpha=args.alpha, margin=args.margin, min_labels=args.min_labels, max_labels=10**9
    )
    for r in range(rollouts):
        comparison = RolloutComparison(ACCURACY, looks.design, policy)  # type: ignore[arg-type]
        for k in range(looks.labels.shape[1]):
            if looks.design == "shadow":
                wins, losses = (int(c[r, k]) for c in looks.counts)
                rest = args.look - wins - losses
                champion = [0.0] * wins + [1.0] * losses + [1.0] * rest
                challenger = [1.0] * wins + [0.0] * losses + [1.0] * rest
                window: PairedEvidence | UnpairedEvidence = PairedEvidence(ACCURACY).update_scores(
                    champion, challenger
                )
            else:
                n_chal, right_chal, n_champ, right_champ = (int(c[r, k]) for c in looks.counts)
                window = UnpairedEvidence(ACCURACY)
                window.update_scores(
                    "challenger", [1.0] * right_chal + [0.0] * (n_chal - right_chal)
                )
                window.update_scores(
                    "champion", [1.0] * right_champ + [0.0] * (n_champ - right_champ)
                )
            if comparison.update(window).decided is not None:
                break
        decided = comparison.decided
        got = (-1, 0) if decided is None else (k, 1 if decided.decision == "promote" else -1)
        assert got == (int(index[r]), int(sign[r])), (looks.design, r, got, index[r], sign[r])


def labels_at(looks: Looks, index: NDArray[np.int64]) -> FloatArray:
    rows = np.arange(index.size)
    return np.where(index >= 0, looks.labels[rows, np.maximum(index, 0)], np.inf)


def report_null(looks: Looks, args: argparse.Namespace, name: str) -> None:
    index, sign = first_decisions(looks, looks.bounds, args)
    naive_index, _ = first_decisions(looks, looks.naive, args)
    wrong = float(np.mean(index >= 0))
    naive_wrong = float(np.mean(naive_index >= 0))
    final = looks.bounds[1][:, -1] - looks.bounds[0][:, -1]
    print(
        f"  {name:<28} wrong decisions {wrong:6.3f} (promote {np.mean(sign > 0):.3f}, "
        f"roll back {np.mean(sign < 0):.3f}) against alpha {args.alpha}; naive repeated "
        f"95% interval {naive_wrong:.3f}; final interval width median {np.median(final):.4f}"
    )


def report_shift(looks: Looks, args: argparse.Namespace, name: str, right: int) -> None:
    index, sign = first_decisions(looks, looks.bounds, args)
    used = labels_at(looks, index)
    for limit in (args.max_labels, args.long_labels):
        within = used <= limit
        print(
            f"  {name:<28} within {limit:>7,} labels: "
            f"right {np.mean(within & (sign == right)):.3f}, "
            f"wrong {np.mean(within & (sign == -right)):.3f}"
        )
    # Quantiles without interpolation: an undecided rollout counts as infinitely many labels.
    q1, median, q3 = np.quantile(used, [0.25, 0.5, 0.75], method="inverted_cdf").tolist()
    print(
        f"  {name:<28} labels (both versions) to a decision: median {median:,.0f}, quartiles "
        f"{q1:,.0f}-{q3:,.0f} (inf: none within {args.long_labels:,})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rollouts", type=int, default=1000)
    parser.add_argument("--look", type=int, default=500, help="labels between looks")
    parser.add_argument("--max-labels", type=int, default=20_000)
    parser.add_argument("--long-labels", type=int, default=200_000)
    parser.add_argument("--min-labels", type=int, default=500)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--margin", type=float, default=0.0)
    parser.add_argument("--disagree", type=float, default=0.2)
    parser.add_argument("--share", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    short, long = args.max_labels // args.look, args.long_labels // args.look

    check_against_the_api(shadow_looks(rng, args, 0.02, short), args, 20)
    check_against_the_api(canary_looks(rng, args, 0.0, short), args, 20)
    check_against_the_api(canary_looks(rng, args, 0.1, short), args, 20)
    print("check: 60 rollouts through RolloutComparison decide as the vectorised rule does")

    print(
        f"\n1. No true difference: {args.rollouts:,} rollouts per design, a look every "
        f"{args.look} labels up to {args.max_labels:,}, min {args.min_labels} labels per version"
    )
    report_null(shadow_looks(rng, args, 0.0, short), args, f"shadow ({args.disagree:.0%} disagree)")
    report_null(canary_looks(rng, args, 0.0, short), args, f"canary (share {args.share})")
    share = args.share
    args.share = 0.1
    report_null(canary_looks(rng, args, 0.0, short), args, "canary (share 0.1)")
    args.share = share

    print(
        f"\n2. True differences of +-2 points, champion accuracy {CHAMPION}, "
        f"{args.rollouts:,} rollouts each"
    )
    for gain in (0.02, -0.02):
        right = 1 if gain > 0 else -1
        report_shift(shadow_looks(rng, args, gain, long), args, f"shadow {gain:+.2f}", right)
        report_shift(
            canary_looks(rng, args, gain, long),
            args,
            f"canary {gain:+.2f} share {args.share}",
            right,
        )
    print(f"\nruntime {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()

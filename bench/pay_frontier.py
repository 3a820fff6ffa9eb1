"""The pay rule's frontier: how many honest experts go unpaid for a given clicker payout.

Pure maths, no database: the real ``rewards.weighting`` functions
(``blended_quality`` -> ``paid_quality`` -> ``reward_weights``) applied to
simulated epoch records, for a grid of ``pay_confidence`` values. It answers
one question the incentive bench cannot settle with ~390 accounts: can any
setting pay *every* honest expert with 30+ judgments while random clickers earn
at most 0.02x honest pay per judgment?

Model of one account's epoch record (the incentive bench's defaults):
- ``n`` judgments, 30% of them gold (the rate for new accounts), the rest
  compared with a consensus that is right 92% of the time (three raters of
  mixed accuracy, reliability-weighted);
- an honest expert is right with probability p in {0.7, 0.8, 0.9} (equal
  shares), a random clicker with 0.5; agreement is the share of compared
  answers matching the consensus, chance-corrected at balanced answers.

Prints, per ``n`` and ``pay_confidence``: the random clickers' pay per
judgment relative to honest, and the share of honest accounts paid nothing
(with the expected count among the bench's ~130 honest accounts per seed x 3
seeds). Run: ``.venv/bin/python bench/pay_frontier.py [--samples 200000]``.
"""

from __future__ import annotations

import argparse
import os
import sys
from statistics import NormalDist

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from rewards.weighting import blended_quality, paid_quality, reward_weights  # noqa: E402

HONEST = (0.7, 0.8, 0.9)
CONSENSUS_RIGHT = 0.92
GOLD_RATE = 0.3
BENCH_HONEST_ACCOUNTS = 390  # honest accounts over the incentive bench's scenarios and 3 seeds


def records(rng: np.random.Generator, p: float, n: int, samples: int):
    n_gold = rng.binomial(n, GOLD_RATE, samples)
    compared = np.round((n - n_gold) * 0.9)
    match = p * CONSENSUS_RIGHT + (1 - p) * (1 - CONSENSUS_RIGHT)
    agreement = rng.binomial(compared.astype(int), match) / np.maximum(compared, 1)
    gold_right = rng.binomial(n_gold, p)
    return blended_quality(agreement, compared, gold_right, n_gold)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    print(f"{'n':>4} {'pay_conf':>8} {'z':>5} {'random/honest':>14} {'honest unpaid':>14} {'of 390':>7}")
    for n in (30, 45, 65):
        draws = {p: records(rng, p, n, args.samples) for p in HONEST + (0.5,)}
        for confidence in (0.5, 0.6, 0.7, 0.8, 0.875, 0.95):
            z = NormalDist().inv_cdf(confidence)
            mean_w, unpaid = {}, 0.0
            for p, (q, n_eff) in draws.items():
                w = reward_weights(np.full(args.samples, n), paid_quality(q, n_eff, z=z),
                                   np.zeros(args.samples), s_half=1.0)
                mean_w[p] = float(w.mean())
                if p in HONEST:
                    unpaid += float((w <= 0).mean()) / len(HONEST)
            honest = float(np.mean([mean_w[p] for p in HONEST]))
            print(f"{n:>4} {confidence:>8.3f} {z:>5.2f} {mean_w[0.5] / honest:>13.4f}x {unpaid:>13.2%} "
                  f"{unpaid * BENCH_HONEST_ACCOUNTS:>7.1f}")
        print()


if __name__ == "__main__":
    main()

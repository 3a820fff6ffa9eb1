"""Time one epoch's pure settlement maths for 100k experts.

Run: .venv/bin/python bench/settle_math_bench.py [n_experts]

Prints the median of 3 runs for: time-weighted stake from events,
settle_epoch_math (quality, weights, exact integer split of a 10**18 budget)
and build_distribution (Merkle root and every proof). Not part of the test
run; the figures show whether settlement fits in a Celery task.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rewards.merkle import build_distribution  # noqa: E402
from datadao.wallet import to_checksum_address  # noqa: E402
from rewards.weighting import settle_epoch_math, time_weighted_stakes  # noqa: E402

RUNS = 3
BUDGET = 10**18
S_HALF = 1_000_000_000
EPOCH = (0, 7 * 24 * 3600)


def median_seconds(fn: Callable[[], object]) -> tuple[float, object]:
    times = []
    result = None
    for _ in range(RUNS):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def main(size: int) -> None:
    rng = np.random.default_rng(0)
    n_compared = rng.integers(0, 2000, size)
    gold_n = rng.integers(0, 50, size)
    # Mostly honest raters of varying accuracy, so most experts get paid and
    # the Merkle tree has close to `size` leaves.
    accuracy = rng.uniform(0.45, 0.95, size)
    inputs = dict(
        n=rng.integers(0, 2000, size),
        matches=rng.binomial(n_compared, accuracy),
        n_compared=n_compared,
        f_rater=rng.uniform(0.4, 0.6, size),
        f_consensus=rng.uniform(0.4, 0.6, size),
        gold_correct=rng.binomial(gold_n, accuracy),
        gold_n=gold_n,
    )
    # Three stake changes per expert, some before the epoch.
    events = {
        i: [(int(t), int(a)) for t, a in zip(rng.integers(-EPOCH[1], EPOCH[1], 3),
                                             rng.integers(0, 10**13, 3))]
        for i in range(size)
    }
    addresses = ["0x" + rng.bytes(20).hex() for _ in range(size)]

    t_stake, stakes = median_seconds(lambda: time_weighted_stakes(events, *EPOCH))
    stake = np.array([stakes[i] for i in range(size)])

    t_math, result = median_seconds(
        lambda: settle_epoch_math(budget=BUDGET, stake=stake, s_half=S_HALF, **inputs)
    )
    assert sum(result.payouts) + result.dust == BUDGET
    paid = [(to_checksum_address(a), p) for a, p in zip(addresses, result.payouts) if p > 0]

    t_merkle, dist = median_seconds(lambda: build_distribution(paid))
    assert len(dist.claims) == len(paid)
    # Worst case: every expert paid.
    everyone = [(to_checksum_address(a), p + 1) for a, p in zip(addresses, result.payouts)]
    t_merkle_all, dist = median_seconds(lambda: build_distribution(everyone))
    assert len(dist.claims) == size

    print(f"experts: {size}, paid: {len(paid)}, budget: {BUDGET}, dust: {result.dust}")
    print(f"median of {RUNS} runs:")
    print(f"  time_weighted_stakes, 3 events each:  {t_stake * 1000:8.1f} ms")
    print(f"  settle_epoch_math:                     {t_math * 1000:8.1f} ms")
    print(f"  build_distribution, {len(paid):>7} claims:  {t_merkle * 1000:8.1f} ms")
    print(f"  build_distribution, {size:>7} claims:  {t_merkle_all * 1000:8.1f} ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)

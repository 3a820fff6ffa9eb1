"""Time a campaign's quality maths on 1M judgments.

Run: .venv/bin/python bench/quality_math_bench.py [n_tasks]

Synthetic campaign: 100k K=2 tasks, overlap 10, 2,000 raters (1M
judgments). Raters: 85% honest (85% right), 10% random spammers, 2%
position-biased, 2% too fast, 1% always "A", plus 10 colluding pairs who
share tasks and answers and 1% of rationales copied from a co-rater.
Prints the median of 3 runs for: Krippendorff's alpha (nominal on direction
from the overlap x tasks slot matrix, ordinal on the -3..+3 strength), its
bootstrap interval (200 draws), raw agreement, Dawid-Skene, leave-one-out
agreement, pairwise kappa, and each moderation signal; then the peak
resident memory after each stage. Not part of the test run.
"""

from __future__ import annotations

import random
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from annotations.agreement import (  # noqa: E402
    alpha_bootstrap_ci_from_ratings,
    alpha_from_ratings,
    krippendorff_alpha,
    raw_agreement_from_ratings,
)
from annotations.rater_agreement import leave_one_out_agreement, pairwise_kappa  # noqa: E402
from annotations.consensus import dawid_skene_binary, majority_vote_binary  # noqa: E402
from annotations.signals import (  # noqa: E402
    collusion,
    copied_rationales,
    gold_accuracy,
    outside_expertise,
    position_bias,
    speed,
)

RUNS = 3
OVERLAP = 10
N_RATERS = 2000
N_BOOT = 200


def median_seconds(fn: Callable[[], object]) -> tuple[float, object]:
    times = []
    result = None
    for _ in range(RUNS):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def peak_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def campaign(n_tasks: int, seed: int = 0) -> dict[str, np.ndarray | list[str]]:
    rng = np.random.default_rng(seed)
    task = np.repeat(np.arange(n_tasks), OVERLAP)
    # Ten distinct raters per task: a random start and a stride below N_RATERS / OVERLAP.
    start = rng.integers(0, N_RATERS, n_tasks)[:, None]
    stride = rng.integers(1, N_RATERS // OVERLAP, n_tasks)[:, None]
    rater = (start + np.arange(OVERLAP) * stride) % N_RATERS
    kind = rng.choice(5, N_RATERS, p=[0.85, 0.10, 0.02, 0.02, 0.01])  # honest, spam, biased, fast, always A
    colluders = rng.choice(np.flatnonzero(kind == 0), 20, replace=False).reshape(10, 2)
    team_task = rng.random(n_tasks) < 0.01
    pair = rng.integers(0, 10, n_tasks)
    rater[team_task, 0] = colluders[pair[team_task], 0]
    rater[team_task, 1] = colluders[pair[team_task], 1]
    rater = rater.ravel()
    k = kind[rater]

    truth = rng.integers(0, 2, n_tasks)  # 1: B better
    a_first = rng.random(task.size) < 0.5
    says_b = np.where(rng.random(task.size) < 0.85, truth[task], 1 - truth[task])
    says_b = np.where(k == 1, rng.integers(0, 2, task.size), says_b)
    says_b = np.where((k == 2) & (rng.random(task.size) < 0.9), ~a_first, says_b)  # prefers the first shown
    says_b = np.where(k == 4, 0, says_b)
    team_rows = np.repeat(team_task, OVERLAP)
    second = team_rows & (np.arange(task.size) % OVERLAP == 1)
    says_b[second] = says_b[np.flatnonzero(second) - 1]  # the second colluder copies the first
    magnitude = rng.integers(0, 4, task.size)
    strength = np.where(says_b == 1, magnitude, -magnitude)
    tokens = rng.integers(200, 3000, task.size)
    seconds = tokens * 0.12 * rng.lognormal(0, 0.5, task.size)
    seconds = np.where(k == 3, seconds / 30, seconds)
    out_of_field = rng.random(N_RATERS) < 0.01  # 1% of raters joined the wrong campaign
    outside = rng.random(task.size) < np.where(out_of_field[rater], 0.5, 0.03)
    gold_task = rng.random(n_tasks) < 0.05

    r = random.Random(seed)
    vocab = ["".join(r.choices("abcdefghijklmnopqrstuvwxyz", k=r.randint(2, 9))) for _ in range(5000)]
    pool = [" ".join(r.choices(vocab, k=22)) for _ in range(200_000)]
    rationale = [pool[i] for i in rng.integers(0, len(pool), task.size).tolist()]
    for row in np.flatnonzero(rng.random(task.size) < 0.01).tolist():
        if row % OVERLAP:
            rationale[row] = rationale[row - 1]
    return {
        "task": task, "rater": rater, "truth": truth, "says_b": says_b.astype(np.int64),
        "strength": strength, "a_first": a_first, "tokens": tokens, "seconds": seconds,
        "outside": outside, "gold_task": gold_task, "rationale": rationale,
    }


def main() -> None:
    n_tasks = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    t0 = time.perf_counter()
    c = campaign(n_tasks)
    task, rater, says_b, strength = c["task"], c["rater"], c["says_b"], c["strength"]
    print(f"after generating: peak {peak_mib():,.0f} MiB")
    print(f"{task.size:,} judgments, {n_tasks:,} tasks, {N_RATERS:,} raters, overlap {OVERLAP} "
          f"(generated in {time.perf_counter() - t0:.1f} s); median of {RUNS} runs")

    rows: list[tuple[str, float, str]] = []

    def stage(name: str, fn: Callable[[], object], describe: Callable[[object], str]) -> object:
        seconds, result = median_seconds(fn)
        rows.append((name, seconds, describe(result)))
        print(f"  {name:<38} {seconds:8.3f} s  peak {peak_mib():6,.0f} MiB   {rows[-1][2]}", flush=True)
        return result

    decided = strength != 0  # ties carry no direction
    slots = np.where(decided, says_b, np.nan).astype(np.float64).reshape(n_tasks, OVERLAP).T
    stage("alpha nominal (slot matrix)", lambda: krippendorff_alpha(slots, "nominal"), lambda a: f"alpha={a:.4f}")
    stage("alpha ordinal (strength, long)", lambda: alpha_from_ratings(task, strength, "ordinal"),
          lambda a: f"alpha={a:.4f}")
    stage(f"alpha bootstrap CI nominal ({N_BOOT})",
          lambda: alpha_bootstrap_ci_from_ratings(task[decided], says_b[decided], "nominal", n_boot=N_BOOT),
          lambda r: "alpha={:.4f} [{:.4f}, {:.4f}]".format(*r))
    stage(f"alpha bootstrap CI ordinal ({N_BOOT})",
          lambda: alpha_bootstrap_ci_from_ratings(task, strength, "ordinal", n_boot=N_BOOT),
          lambda r: "alpha={:.4f} [{:.4f}, {:.4f}]".format(*r))
    stage("raw agreement", lambda: raw_agreement_from_ratings(task[decided], says_b[decided]), lambda a: f"{a:.4f}")

    gold_items = np.flatnonzero(c["gold_task"])
    truth = c["truth"]

    def run_ds():
        return dawid_skene_binary(task[decided], rater[decided], says_b[decided], n_tasks, N_RATERS,
                                  gold_item_idx=gold_items, gold_label=truth[gold_items])

    ds = stage("Dawid-Skene (two-coin, gold 5%)", run_ds, lambda r: f"{r.n_iter} iterations")
    mv = majority_vote_binary(task[decided], says_b[decided], n_tasks)
    print(f"  {'':<38} {'':8}                    accuracy: DS {((ds.posterior > 0.5) == truth).mean():.4f} "
          f"vs majority {((mv > 0.5) == truth).mean():.4f}")
    stage("leave-one-out agreement", lambda: leave_one_out_agreement(rater[decided], task[decided], says_b[decided]),
          lambda r: f"{r.rater.size} raters")
    stage("pairwise kappa (min 10 shared)", lambda: pairwise_kappa(rater[decided], task[decided], says_b[decided]),
          lambda r: f"{r.kappa.size:,} pairs")

    chose_first = says_b[decided] == (~c["a_first"][decided]).astype(np.int64)
    stage("signal: position bias", lambda: position_bias(rater[decided], chose_first),
          lambda r: f"{r.flagged.sum()} flagged")
    stage("signal: speed", lambda: speed(rater, c["seconds"], c["tokens"]), lambda r: f"{r.flagged.sum()} flagged")
    is_error = (says_b != (ds.posterior[task] > 0.5)) & decided
    stage("signal: collusion", lambda: collusion(rater[decided], task[decided], is_error[decided]),
          lambda r: f"{r.flagged.sum()} of {r.z.size:,} pairs flagged")
    stage("signal: copied rationales", lambda: copied_rationales(rater, task, c["rationale"]),
          lambda r: f"{r.flagged.sum()} pairs flagged")
    stage("signal: outside expertise", lambda: outside_expertise(rater, c["outside"]),
          lambda r: f"{r.flagged.sum()} flagged")
    on_gold = c["gold_task"][task] & decided
    stage("signal: gold accuracy", lambda: gold_accuracy(rater[on_gold], (says_b == truth[task])[on_gold], bar=0.5),
          lambda r: f"{r.flagged.sum()} flagged")

    total = sum(s for _, s, _ in rows)
    print(f"  {'total':<38} {total:8.3f} s")
    print(f"peak resident memory: {peak_mib():,.0f} MiB")


if __name__ == "__main__":
    main()

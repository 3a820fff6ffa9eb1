"""Do attacks on the rewards pay? Scenarios played through the real pipeline, medians over seeds, targets.

Run (PostgreSQL, its own database, created if missing, schema reset and migrated once per invocation):
    DATABASE_URL=postgres://root@127.0.0.1:5432/bench_incentive .venv/bin/python bench/incentive_bench.py
Quick check on SQLite (a file of its own, recreated):
    DATABASE_URL=sqlite:////tmp/bench_incentive.sqlite3 .venv/bin/python bench/incentive_bench.py --seeds 1

Options: --seeds N (3), --scenarios A,B,C,D,E,E0,F,F1,G (all), --tasks N (300; gold is a tenth),
--gold N, --judgments N (1300), --quality-every N (200), --no-reset (keep the database as it is),
--retry-wait S (60: a run that fails, say because a module is mid-edit, is retried once after S seconds).

Every run is a fresh campaign with its own lab and experts (``bench/incentive_sim.py`` says how it is
played). Per scenario the table shows, per strategy, the median over seeds of: accounts, judgments per
account, share of what was paid, pay per judgment (tokens) and relative to the honest mean, held
(payouts on hold for a moderator, where the settlement has holds); and the totals over seeds of
slashed accounts and of honest accounts with 30+ judgments that were paid nothing. Conservation (paid + dust + retained + held ==
budget on every epoch, ledger credits == paid, ``ledger_differences`` empty) is checked in every run.
Exit status 1 when a run broke conservation or failed; targets are reported, not enforced.
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
import traceback
from pathlib import Path
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("DATABASE_URL", "postgres://root@127.0.0.1:5432/bench_incentive")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "datadao.settings")


def _prepare_database() -> None:
    url = urlparse(os.environ["DATABASE_URL"])
    if url.scheme.startswith("postgres"):
        from pgbench_common import create_database

        create_database(url.path.lstrip("/"))
    elif url.scheme == "sqlite":
        path = Path(url.path[1:] if url.path.startswith("//") else url.path)
        if not path.name.startswith("bench") or path.resolve() == (Path(__file__).resolve().parent.parent / "db.sqlite3"):
            sys.exit(f"refusing to wipe {path}: name a SQLite file starting with 'bench'")
        path.unlink(missing_ok=True)


def reset_database() -> None:
    from django.core.management import call_command
    from django.db import connection

    name = str(connection.settings_dict["NAME"])
    if connection.vendor == "postgresql":
        if not name.startswith("bench"):
            sys.exit(f"refusing to wipe database {name!r}: point DATABASE_URL at bench_incentive")
        with connection.cursor() as cursor:
            cursor.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    call_command("migrate", verbosity=0)


def tokens(base_units: float) -> float:
    from incentive_sim import TOKEN

    return base_units / TOKEN


def median(values):
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return statistics.median(values) if values else math.nan


def fmt(value, spec: str = ".2f") -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def scenario_table(name, runs, sim) -> list[str]:
    """Rows of one scenario: per label, medians over the seeds."""
    labels: list[str] = []
    for r in runs:
        for a in r.accounts:
            if a.label not in labels:
                labels.append(a.label)
    figures = [sim.label_figures(r) for r in runs]
    lines = []
    for label in labels:
        rows = [f[label] for f in figures if label in f]
        lines.append(
            f"{name:<3} {label:<11} {median([x.accounts for x in rows]):>3.0f} "
            f"{median([x.judgments / x.accounts for x in rows]):>7.1f} "
            f"{100 * median([x.share_of_paid for x in rows]):>6.1f}% "
            f"{fmt(median([tokens(x.per_judgment) for x in rows]), '.3f'):>7} "
            f"{fmt(median([x.relative for x in rows]), '.3f'):>7} "
            f"{fmt(median([tokens(x.held) for x in rows]), '.1f'):>7} "
            f"{sum(x.slashed for x in rows):>4d} "
            f"{sum(x.unpaid_with_work for x in rows):>6d}"
        )
    groups = [sim.accuracy_groups(r) for r in runs]
    accuracies = sorted({acc for g in groups for acc in g})
    by_accuracy = ", ".join(
        f"p={acc}: {fmt(median([tokens(g[acc]) for g in groups if acc in g]), '.3f')}" for acc in accuracies)
    totals = (f"budget {median([tokens(r.budget) for r in runs]):.0f}, paid {median([tokens(r.paid_total) for r in runs]):.0f}, "
              f"held {median([tokens(r.held_total) for r in runs]):.0f}, retained {median([tokens(r.retained) for r in runs]):.0f}, "
              f"judgments {median([r.judgments for r in runs]):.0f}")
    lines.append(f"    honest pay/judgment by accuracy: {by_accuracy}; {totals}")
    return lines


def targets(results: dict[str, list], sim) -> list[tuple[str, bool | None, str]]:
    """(target, PASS/FAIL/None when the scenario was not run, the figure)."""
    out = []

    def rel(name, label):
        runs = results.get(name)
        if not runs:
            return None
        return median([sim.label_figures(r)[label].relative for r in runs])

    def check(text, value, ok, shown):
        out.append((text, None if value is None else bool(ok(value)), shown(value) if value is not None else "not run"))

    for name, label, limit in (("A", "random", 0.02), ("B", "position", 0.02), ("C", "ring", 0.10),
                               ("D", "timed ring", 0.10)):
        check(f"{name}: {label} pay/judgment <= {limit}x honest", rel(name, label),
              lambda v, limit=limit: v <= limit, lambda v: f"{v:.3f}x")
    share = median([sim.label_figures(r)["ring"].share_of_budget for r in results["E"]]) if results.get("E") else None
    check("E: majority ring paid <= 5% of the budget", share, lambda v: v <= 0.05, lambda v: f"{100 * v:.1f}%")
    if results.get("E") and results.get("E0"):
        e = median([sim.honest_per_judgment(r) for r in results["E"]])
        e0 = median([sim.honest_per_judgment(r) for r in results["E0"]])
        ratio = e / e0 if e0 else math.nan
    else:
        ratio = None
    check("E vs E0: honest pay/judgment within 10%", ratio, lambda v: abs(v - 1) <= 0.10,
          lambda v: f"{v:.3f}x of E0")
    if results.get("F") and results.get("F1"):
        split = [sim.label_figures(r)["split"] for r in results["F"]]
        single = [sim.label_figures(r)["single"] for r in results["F1"]]
        pair = (median([x.paid for x in split]), median([x.paid for x in single]),
                median([x.judgments for x in split]), median([x.judgments for x in single]))
    else:
        pair = None
    check("F vs F1: split over 5 accounts total <= one account", pair, lambda v: v[0] <= v[1],
          lambda v: f"{tokens(v[0]):.1f} tokens for {v[2]:.0f} judgments vs {tokens(v[1]):.1f} for {v[3]:.0f}")
    every = [r for runs in results.values() for r in runs]
    check("no honest expert slashed (all runs)", sum(sim.honest_slashed(r) for r in every) if every else None,
          lambda v: v == 0, lambda v: f"{v} slashed")
    check(f"every honest expert with {sim.MIN_WORK}+ judgments paid (all runs)",
          sum(sim.honest_unpaid(r) for r in every) if every else None, lambda v: v == 0, lambda v: f"{v} unpaid")
    # Pooled over every scenario: per seed, the mean over all honest accounts of an accuracy, then the median.
    by_seed: dict[int, dict[float, list[float]]] = {}
    for r in every:
        for a in r.accounts:
            if a.honest_checks and a.accuracy is not None and a.judgments:
                by_seed.setdefault(r.seed, {}).setdefault(a.accuracy, []).append(a.per_judgment)
    pooled = {acc: median([statistics.fmean(g[acc]) for g in by_seed.values() if acc in g])
              for acc in sorted({acc for g in by_seed.values() for acc in g})}
    if all(acc in pooled for acc in (0.7, 0.8, 0.9)):
        check("pay rises with accuracy 0.9 > 0.8 > 0.7 (pooled)", pooled,
              lambda v: v[0.9] > v[0.8] > v[0.7],
              lambda v: " > ".join(f"{tokens(v[a]):.3f}" for a in (0.9, 0.8, 0.7)) + " tokens/judgment")
    else:
        check("pay rises with accuracy 0.9 > 0.8 > 0.7 (pooled)", None, bool, str)
    if results.get("G"):
        ratios = []
        for r in results["G"]:
            f = sim.label_figures(r)
            ratios.append(f["stake 10x"].per_judgment / f["stake 1x"].per_judgment
                          if f["stake 1x"].per_judgment else math.nan)
        ratio = median(ratios)
    else:
        ratio = None
    check("G: 10x stake earns more per judgment, at most 2x", ratio, lambda v: 1 < v <= 2, lambda v: f"{v:.3f}x")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--scenarios", default="A,B,C,D,E,E0,F,F1,G")
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--gold", type=int, default=None)
    parser.add_argument("--judgments", type=int, default=1300)
    parser.add_argument("--quality-every", type=int, default=200)
    parser.add_argument("--no-reset", action="store_true")
    parser.add_argument("--retry-wait", type=float, default=60.0)
    args = parser.parse_args()

    if not args.no_reset:
        _prepare_database()
    import django

    django.setup()
    import logging

    logging.disable(logging.WARNING)  # the quality jobs' warnings would bury the table
    from datadao.celery import app

    app.conf.task_always_eager = app.conf.task_eager_propagates = True  # consensus in-process, as on_commit queues it
    if not args.no_reset:
        t0 = time.perf_counter()
        reset_database()
        print(f"database reset and migrated in {time.perf_counter() - t0:.1f} s")
    import incentive_sim as sim

    names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    unknown = [n for n in names if n not in sim.SCENARIOS]
    if unknown:
        sys.exit(f"unknown scenarios {unknown}; choose from {', '.join(sim.SCENARIOS)}")
    config = sim.RunConfig(tasks=args.tasks, gold=args.gold if args.gold is not None else max(1, args.tasks // 10),
                           judgments=args.judgments, quality_every=args.quality_every)
    from django.db import connection

    print(f"{connection.vendor} {connection.settings_dict['NAME']}: {config}, seeds {args.seeds}")

    started = time.perf_counter()
    results: dict[str, list] = {}
    failures = []
    for name in names:
        for seed in range(1, args.seeds + 1):
            for attempt in (1, 2):
                try:
                    r = sim.run(name, seed=seed, config=config)
                    break
                except Exception as exc:  # noqa: BLE001 - a run that fails is reported, then retried once
                    traceback.print_exc()
                    if attempt == 2:
                        failures.append(f"{name} seed {seed}: {type(exc).__name__}: {exc}")
                        r = None
                    else:
                        print(f"{name} seed {seed} failed ({type(exc).__name__}); retrying in {args.retry_wait:.0f} s",
                              flush=True)
                        time.sleep(args.retry_wait)
            if r is None:
                continue
            results.setdefault(name, []).append(r)
            status = "conserved" if r.conserved else "BROKEN: " + "; ".join(r.problems)
            print(f"{name} seed {seed}: {r.judgments} judgments, {r.epochs} epoch(s), budget {tokens(r.budget):.0f}, "
                  f"paid {tokens(r.paid_total):.0f}, held {tokens(r.held_total):.0f}, "
                  f"retained {tokens(r.retained):.0f}, dust {r.dust}, {status}, {r.seconds:.1f} s"
                  + (f" ({len(r.notes)} refusals, e.g. {r.notes[0]})" if r.notes else ""), flush=True)

    print()
    print("medians over seeds; slashed and unpaid (honest, 30+ judgments, paid nothing) are totals over seeds")
    print("scn strategy      n  jud/acc  paid%   tok/j  x hon.  held tk slsh unpd30")
    for name in names:
        if results.get(name):
            print(f"--- {name}: {sim.SCENARIOS[name].title}")
            for line in scenario_table(name, results[name], sim):
                print(line)
    every = [r for runs in results.values() for r in runs]
    broken = [f"{r.scenario} seed {r.seed}: {p}" for r in every for p in r.problems]
    print()
    print(f"conservation: {len(every) - len({(r.scenario, r.seed) for r in every if r.problems})}/{len(every)} runs "
          f"conserved" + (f"; {broken[:5]}" if broken else "") + (f"; FAILED RUNS: {failures}" if failures else ""))
    print("targets (medians over seeds):")
    for text, ok, shown in targets(results, sim):
        mark = "----" if ok is None else ("PASS" if ok else "FAIL")
        print(f"  {mark}  {text}: {shown}")
    print(f"total {time.perf_counter() - started:.0f} s for {len(every)} runs")
    if broken or failures:
        sys.exit(1)


if __name__ == "__main__":
    main()

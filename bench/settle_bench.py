"""Time the settlement service on an epoch of 100k experts and 1M judgments (PostgreSQL).

Run:
    psql -h 127.0.0.1 -U root -d postgres -c 'CREATE DATABASE bench_settle'
    DATABASE_URL=postgres://root@127.0.0.1:5432/bench_settle .venv/bin/python bench/settle_bench.py

Options: --experts N (100000), --judgments N (1000000), --runs N (3),
--wallet-share F (0.5: experts paid through Merkle claims), --stake-share F (0.7).

The database's public schema is dropped and migrated afresh, then loaded
with COPY (users, experts, tasks, assignments, judgments) and, for stakes
and funding, through the real posting service in batches. Each run settles
a new epoch over the same window (a campaign whose escrow holds the budget
of every run), and only ``rewards.settlement.epoch_settle`` is timed. The
median of the runs is the figure; the phases (plan, pay, finish) are shown
for where the time goes, and the ledger is reconciled at the end. Not part
of the test run.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DATABASE_URL", "postgres://root@127.0.0.1:5432/bench_settle")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "datadao.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from annotations.models import Assignment, Campaign, Expert, Judgment, Lab, Task  # noqa: E402
from rewards import ledger, settlement  # noqa: E402
from rewards.models import Account, Epoch, LedgerTransaction  # noqa: E402
from rewards.selectors import ledger_differences  # noqa: E402

TOKEN = 10**6
REWARD_PER_JUDGMENT = TOKEN + 3  # not a round number, so the split leaves dust
MIN_STAKE = 100 * TOKEN
POST_BATCH = 5000


def reset_database() -> None:
    name = connection.settings_dict["NAME"]
    if connection.vendor != "postgresql" or not name.startswith("bench"):
        sys.exit(f"refusing to wipe {connection.vendor} database {name!r}: point DATABASE_URL at bench_settle")
    with connection.cursor() as cursor:
        cursor.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    call_command("migrate", verbosity=0)


def copy_rows(model, columns: list[str], rows) -> int:
    """COPY rows into ``model``'s table; columns not given get the field's default."""
    now = timezone.now()
    given = set(columns)
    extra_cols, extra_vals = [], []
    for field in model._meta.concrete_fields:
        if field.attname in given or field.primary_key:
            continue
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            value = now
        else:
            value = field.get_default()  # "" for text fields without one, None otherwise
            if value is None and not field.null:
                raise SystemExit(f"{model.__name__}.{field.name} needs a value in the benchmark loader")
        if field.get_internal_type() == "JSONField" and value is not None:
            value = json.dumps(value)
        extra_cols.append(field.column)
        extra_vals.append(value)
    cols = ", ".join([model._meta.get_field(c).column if c != "id" else "id" for c in columns] + extra_cols)
    extra = tuple(extra_vals)
    n = 0
    with connection.cursor() as cursor, cursor.copy(f"COPY {model._meta.db_table} ({cols}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(tuple(row) + extra)
            n += 1
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT setval(pg_get_serial_sequence('{model._meta.db_table}', 'id'), "
            f"(SELECT MAX(id) FROM {model._meta.db_table}))"
        )
    return n


def load(n_experts: int, n_judgments: int, runs: int, wallet_share: float, stake_share: float):
    rng = np.random.default_rng(7)
    now = timezone.now()
    start, end = now - timedelta(days=7), now - timedelta(seconds=1)
    t0 = time.perf_counter()

    lab = Lab.objects.create(name="Bench Lab", slug="bench-lab")
    campaign = Campaign.objects.create(
        lab=lab, name="Bench campaign", domain="medicine", responses_per_task=2, overlap=3, max_overlap=5,
        reward_per_judgment=REWARD_PER_JUDGMENT, min_stake=MIN_STAKE, status=Campaign.Status.OPEN,
        opened_at=start, task_count=0,
    )

    copy_rows(User, ["id", "username", "password", "email"],
              ((i, f"bench{i}", "!", f"bench{i}@example.org") for i in range(1, n_experts + 1)))
    has_wallet = rng.random(n_experts) < wallet_share
    addresses = ["0x" + rng.bytes(20).hex() if w else "" for w in has_wallet]
    copy_rows(Expert, ["id", "user_id", "domains", "state", "wallet_address"],
              ((i, i, '["medicine"]', "vetted", addresses[i - 1]) for i in range(1, n_experts + 1)))

    raters = 3
    n_tasks = n_judgments // raters
    copy_rows(Task, ["id", "campaign_id", "external_id", "prompt", "target_overlap", "filled", "judgment_count"],
              ((t, campaign.pk, f"t{t}", '"bench prompt"', raters, raters, raters) for t in range(1, n_tasks + 1)))

    # Task t is rated by three distinct experts, consecutive in a random permutation.
    perm = rng.permutation(n_experts) + 1
    slots = np.arange(n_tasks * raters)
    expert_of = perm[slots % n_experts]
    task_of = slots // raters + 1
    accuracy = rng.uniform(0.45, 0.95, n_experts + 1)
    truth_first = rng.random(n_tasks + 1) < 0.5
    right = rng.random(slots.size) < accuracy[expert_of]
    first_better = np.where(right, truth_first[task_of], ~truth_first[task_of])
    seconds = rng.uniform(0, (end - start).total_seconds(), slots.size)
    when = [start + timedelta(seconds=float(s)) for s in seconds]
    copy_rows(Assignment, ["id", "task_id", "expert_id", "campaign_id", "state", "display_order",
                           "leased_at", "expires_at", "finished_at"],
              ((k + 1, int(task_of[k]), int(expert_of[k]), campaign.pk, "submitted", "[0, 1]", when[k], when[k], when[k])
               for k in range(slots.size)))
    copy_rows(Judgment, ["id", "assignment_id", "task_id", "expert_id", "campaign_id", "ranks", "display_order",
                         "time_spent_ms", "submitted_at"],
              ((k + 1, k + 1, int(task_of[k]), int(expert_of[k]), campaign.pk,
                "[1, 2]" if first_better[k] else "[2, 1]", "[0, 1]", 30_000, when[k])
               for k in range(slots.size)))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(f"loaded {n_experts} experts, {n_tasks} tasks, {slots.size} judgments in {time.perf_counter() - t0:.1f} s")

    # Stakes and funding go through the posting service, bonded before the epoch.
    t0 = time.perf_counter()
    before = start - timedelta(days=1)
    external = ledger.external_account().pk
    stakers = [i for i in range(1, n_experts + 1) if rng.random() < stake_share]
    available = ledger.expert_accounts_bulk(stakers, Account.Kind.AVAILABLE)
    bonded = ledger.expert_accounts_bulk(stakers, Account.Kind.BONDED)
    stake = {e: int(rng.integers(MIN_STAKE, 20 * MIN_STAKE)) for e in stakers}
    for lo in range(0, len(stakers), POST_BATCH):
        batch = []
        for e in stakers[lo : lo + POST_BATCH]:
            batch.append(ledger.Posting(key=f"bench:deposit:{e}", kind=LedgerTransaction.Kind.TOPUP,
                                        entries=((external, -stake[e]), (available[e], stake[e]))))
            batch.append(ledger.Posting(key=f"bench:bond:{e}", kind=LedgerTransaction.Kind.BOND,
                                        entries=((available[e], -stake[e]), (bonded[e], stake[e]))))
        ledger.ledger_post_batch(postings=batch, now=before)
    escrow_total = runs * slots.size * REWARD_PER_JUDGMENT
    lab_acct, escrow = ledger.lab_account(lab).pk, ledger.escrow_account(campaign).pk
    ledger.ledger_post_batch(postings=[
        ledger.Posting(key="bench:topup", kind=LedgerTransaction.Kind.TOPUP,
                       entries=((external, -escrow_total), (lab_acct, escrow_total))),
        ledger.Posting(key="bench:fund", kind=LedgerTransaction.Kind.FUND,
                       entries=((lab_acct, -escrow_total), (escrow, escrow_total))),
    ], now=before)
    print(f"posted {2 * len(stakers)} stake transactions in {time.perf_counter() - t0:.1f} s")
    return campaign, start, end


class PhaseTimer:
    """Wraps the settlement phases to show where the time goes."""

    def __init__(self):
        self.times: dict[str, float] = {}

    def wrap(self, name: str):
        original = getattr(settlement, name)

        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.times[name] = time.perf_counter() - t0

        setattr(settlement, name, timed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experts", type=int, default=100_000)
    parser.add_argument("--judgments", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--wallet-share", type=float, default=0.5)
    parser.add_argument("--stake-share", type=float, default=0.7)
    args = parser.parse_args()

    reset_database()
    with transaction.atomic():
        campaign, start, end = load(args.experts, args.judgments, args.runs, args.wallet_share, args.stake_share)

    timer = PhaseTimer()
    for phase in ("_plan", "_pay", "_finish"):
        timer.wrap(phase)
    totals = []
    for run in range(args.runs):
        epoch = Epoch.objects.create(campaign=campaign, index=run, starts_at=start, ends_at=end)
        t0 = time.perf_counter()
        settled = settlement.epoch_settle(epoch_id=epoch.pk)
        totals.append(time.perf_counter() - t0)
        assert settled.state == Epoch.State.SETTLED
        assert settled.paid_total + settled.dust + settled.retained == settled.budget
        phases = ", ".join(f"{k[1:]} {v:.1f} s" for k, v in timer.times.items())
        print(f"run {run + 1}: {totals[-1]:.1f} s ({phases}); {settled.experts_paid} experts paid, "
              f"{settled.judgment_count} judgments, budget {settled.budget}, dust {settled.dust}, "
              f"{settled.claims_total} in Merkle claims")
    t0 = time.perf_counter()
    differences = ledger_differences()
    print(f"reconciled in {time.perf_counter() - t0:.1f} s: {len(differences)} differences")
    print(f"median of {args.runs} runs: {statistics.median(totals):.1f} s "
          f"(target <= 30 s for 100k experts and 1M judgments)")
    if differences:
        sys.exit(1)


if __name__ == "__main__":
    main()

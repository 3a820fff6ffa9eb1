"""Quality job benchmark: ``campaign_quality_compute`` on 1M judgments read from PostgreSQL.

Run: .venv/bin/python bench/quality_bench.py [--tasks 100000] [--runs 3] [--keep]

Creates the database ``bench_quality`` (psql) and migrates it, then loads a
synthetic K=2 campaign with COPY (not timed): 100k tasks (5% gold), overlap
10, 2,000 raters with bonded stakes, 1M judgments. The raters are those of
``bench/quality_math_bench.py``: 85% honest (85% right), 10% spammers, 2%
position-biased, 2% too fast, 1% always "A", ten colluding pairs, 1% of
rationales copied from a co-rater.

Timed, each in a fresh process so peak memory is per run:

* cold: the first computation of the campaign (no consensus, no reports:
  every consensus row is created, every task's word count is taken), reset
  before each run; median of ``--runs``;
* incremental: 1% new judgments (1,000 tasks x 10) arrive, then the job
  runs again (consensus diffed and rewritten where it changed, rationales of
  new tasks plus a slice of the backlog); median of ``--runs``.

End to end means the service call: reading judgments, stakes and gold,
the maths, and every write. Prints the phase breakdown the job records.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
from pgbench_common import create_database, random_texts

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "bench_quality"
URL = f"postgres://root@127.0.0.1:5432/{DATABASE}"
OVERLAP, N_RATERS = 10, 2000


def setup_django() -> None:
    os.environ["DATABASE_URL"] = URL
    os.environ["DJANGO_DEBUG"] = "false"  # as in production: no query log
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "datadao.settings")
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))
    import django

    django.setup()


def _synthetic(n_tasks: int, seed: int) -> dict:
    """The math bench's campaign, without the few repeated (task, rater) pairs its colluders create."""
    from quality_math_bench import campaign as synthetic

    data = synthetic(n_tasks, seed=seed)
    _, first = np.unique(data["task"] * N_RATERS + data["rater"], return_index=True)
    keep = np.sort(first)
    for name in ("task", "rater", "says_b", "strength", "a_first", "tokens", "seconds", "outside"):
        data[name] = data[name][keep]
    data["rationale"] = [data["rationale"][r] for r in keep.tolist()]
    data["per_task"] = np.bincount(data["task"], minlength=n_tasks)
    return data


def _copy(cursor, table: str, columns: list[str], rows) -> None:
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def load(n_tasks: int) -> int:
    """Load the synthetic campaign with COPY; returns its id. Not timed."""
    from django.db import connection
    from django.utils import timezone

    from annotations.models import Campaign, Lab
    t0 = time.perf_counter()
    data = _synthetic(n_tasks, seed=0)
    rng = np.random.default_rng(1)
    lab, _ = Lab.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    campaign = Campaign.objects.create(lab=lab, name=f"quality bench {n_tasks}", domain="medicine",
                                       status=Campaign.Status.OPEN, overlap=OVERLAP, max_overlap=OVERLAP + 2,
                                       task_count=n_tasks)
    now = timezone.now() - timedelta(days=1)
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(max(id), 0) FROM auth_user")
        user0 = cursor.fetchone()[0]
        _copy(cursor, "auth_user", ["id", "password", "is_superuser", "username", "first_name", "last_name", "email",
                                    "is_staff", "is_active", "date_joined"],
              ((user0 + i + 1, "!", False, f"bench-{campaign.pk}-{i}", "", "", "", False, True, now)
               for i in range(N_RATERS)))
        cursor.execute("SELECT coalesce(max(id), 0) FROM annotations_expert")
        expert0 = cursor.fetchone()[0]
        _copy(cursor, "annotations_expert", ["id", "user_id", "domains", "credentials", "wallet_address", "state",
                                             "reputation", "applied_at", "review_note"],
              ((expert0 + i + 1, user0 + i + 1, '["medicine"]', "", "", "vetted", 0.5, now, "")
               for i in range(N_RATERS)))
        stakes = (rng.lognormal(0, 1.0, N_RATERS) * 10**6).astype(np.int64)
        stakes[0] = 10**12  # one whale: clipped in the consensus
        _copy(cursor, "rewards_account", ["kind", "expert_id", "balance", "created_at"],
              (("bonded", expert0 + i + 1, int(stakes[i]), now) for i in range(N_RATERS)))

        cursor.execute("SELECT coalesce(max(id), 0) FROM annotations_task")
        task0 = cursor.fetchone()[0]
        gold = data["gold_task"]
        prompts = random_texts(rng, n_tasks, 10, 60)
        _copy(cursor, "annotations_task", ["id", "campaign_id", "external_id", "prompt", "metadata", "gold", "is_gold",
                                           "state", "target_overlap", "filled", "judgment_count", "created_at"],
              ((task0 + t + 1, campaign.pk, f"t{t}", json.dumps(prompts[t]), "{}",
                json.dumps([1, 2] if data["truth"][t] == 0 else [2, 1]) if gold[t] else None, bool(gold[t]),
                "open" if gold[t] else "complete", 32767 if gold[t] else OVERLAP, int(data["per_task"][t]),
                int(data["per_task"][t]), now)
               for t in range(n_tasks)))
        texts = random_texts(rng, 2 * n_tasks, 30, 200)
        _copy(cursor, "annotations_response", ["task_id", "position", "model_name", "text"],
              ((task0 + t // 2 + 1, t % 2, f"model-{t % 2}", texts[t]) for t in range(2 * n_tasks)))
        del prompts, texts
        print(f"  tasks and responses loaded ({time.perf_counter() - t0:.0f} s)", flush=True)

        task, rater, says_b = data["task"], data["rater"], data["says_b"]
        strength, a_first = data["strength"], data["a_first"]
        n = task.size
        cursor.execute("SELECT coalesce(max(id), 0) FROM annotations_assignment")
        assignment0 = cursor.fetchone()[0]
        order = np.where(a_first, "[0, 1]", "[1, 0]")
        _copy(cursor, "annotations_assignment", ["id", "task_id", "expert_id", "campaign_id", "state", "display_order",
                                                 "leased_at", "expires_at", "finished_at", "skip_reason"],
              ((assignment0 + r + 1, task0 + int(task[r]) + 1, expert0 + int(rater[r]) + 1, campaign.pk, "submitted",
                order[r], now, now, now, "") for r in range(n)))
        # Seconds follow each task's length (words), as the speed signal assumes.
        cursor.execute("SELECT task_id, sum(length(text) - length(replace(text, ' ', '')) + 1) FROM "
                       "annotations_response WHERE task_id > %s GROUP BY task_id", [task0])
        words = np.zeros(n_tasks)
        for task_id, w in cursor.fetchall():
            words[task_id - task0 - 1] = w
        kind_fast = data["seconds"] / data["tokens"] < 0.012  # the synthetic set's fast raters (30x quicker)
        seconds = words[task] * 0.25 * rng.lognormal(0, 0.5, n)
        seconds = np.where(kind_fast, seconds / 30, seconds)
        ranks = np.where(strength == 0, "[1, 1]", np.where(says_b == 1, "[2, 1]", "[1, 2]"))
        flags = np.where(data["outside"], '["outside_expertise"]', "[]")
        correct = says_b == data["truth"][task]
        rationale = data["rationale"]
        _copy(cursor, "annotations_judgment", ["id", "assignment_id", "task_id", "expert_id", "campaign_id", "ranks",
                                               "strength", "ratings", "rationale", "flags", "display_order",
                                               "time_spent_ms", "submitted_at", "is_gold", "gold_correct", "voided",
                                               "voided_reason"],
              ((assignment0 + r + 1, assignment0 + r + 1, task0 + int(task[r]) + 1, expert0 + int(rater[r]) + 1,
                campaign.pk, ranks[r], int(strength[r]), "{}", rationale[r], flags[r], order[r],
                max(1, int(seconds[r] * 1000)), now, bool(gold[task[r]]),
                bool(correct[r]) if gold[task[r]] and strength[r] != 0 else None, False, "") for r in range(n)))
        for table in ("auth_user", "annotations_expert", "annotations_task", "annotations_assignment",
                      "annotations_judgment", "rewards_account", "annotations_response"):
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(f"  loaded {n:,} judgments in {time.perf_counter() - t0:.0f} s (not timed)", flush=True)
    return campaign.pk


def add_judgments(campaign_id: int, n_tasks: int, seed: int) -> None:
    """``n_tasks`` new complete tasks with OVERLAP judgments each (arrivals between two runs)."""
    from django.db import connection
    from django.utils import timezone

    from annotations.models import Campaign, Expert
    campaign = Campaign.objects.get(pk=campaign_id)
    data = _synthetic(n_tasks, seed=seed)
    experts = np.array(sorted(Expert.objects.filter(user__username__startswith=f"bench-{campaign_id}-")
                              .values_list("id", flat=True)))
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute("SELECT max(id) FROM annotations_task")
        task0 = cursor.fetchone()[0]
        _copy(cursor, "annotations_task", ["id", "campaign_id", "external_id", "prompt", "metadata", "is_gold",
                                           "state", "target_overlap", "filled", "judgment_count", "created_at"],
              ((task0 + t + 1, campaign.pk, f"late-{task0 + t + 1}", json.dumps("late prompt " * 10), "{}", False,
                "complete", OVERLAP, int(data["per_task"][t]), int(data["per_task"][t]), now) for t in range(n_tasks)))
        texts = random_texts(np.random.default_rng(seed), 2 * n_tasks, 30, 200)
        _copy(cursor, "annotations_response", ["task_id", "position", "model_name", "text"],
              ((task0 + t // 2 + 1, t % 2, "m", texts[t]) for t in range(2 * n_tasks)))
        words = np.array([len(texts[2 * t].split()) + len(texts[2 * t + 1].split()) + 20 for t in range(n_tasks)])
        cursor.execute("SELECT max(id) FROM annotations_assignment")
        a0 = cursor.fetchone()[0]
        task, rater, says_b, strength = data["task"], data["rater"], data["says_b"], data["strength"]
        order = np.where(data["a_first"], "[0, 1]", "[1, 0]")
        rows = range(task.size)
        _copy(cursor, "annotations_assignment", ["id", "task_id", "expert_id", "campaign_id", "state", "display_order",
                                                 "leased_at", "expires_at", "finished_at", "skip_reason"],
              ((a0 + r + 1, task0 + int(task[r]) + 1, int(experts[rater[r] % experts.size]), campaign.pk, "submitted",
                order[r], now, now, now, "") for r in rows))
        ranks = np.where(strength == 0, "[1, 1]", np.where(says_b == 1, "[2, 1]", "[1, 2]"))
        seconds = words[task] * 0.25 * np.random.default_rng(seed).lognormal(0, 0.5, task.size)
        _copy(cursor, "annotations_judgment", ["id", "assignment_id", "task_id", "expert_id", "campaign_id", "ranks",
                                               "strength", "ratings", "rationale", "flags", "display_order",
                                               "time_spent_ms", "submitted_at", "is_gold", "voided", "voided_reason"],
              ((a0 + r + 1, a0 + r + 1, task0 + int(task[r]) + 1, int(experts[rater[r] % experts.size]), campaign.pk,
                ranks[r], int(strength[r]), "{}", data["rationale"][r], "[]", order[r],
                int(seconds[r] * 1000) + 1, now, False, False, "") for r in rows))
        for table in ("annotations_task", "annotations_assignment", "annotations_judgment", "annotations_response"):
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")


def reset(campaign_id: int) -> None:
    """Forget every quality result of the campaign (a cold start). Not timed."""
    from django.db import connection

    with connection.cursor() as cursor:
        for table in ("annotations_rationalematch", "annotations_taskconsensus", "annotations_raterquality",
                      "annotations_qualityreport"):
            cursor.execute(f"DELETE FROM {table} WHERE campaign_id = %s", [campaign_id])
        late = "SELECT id FROM annotations_task WHERE campaign_id = %s AND external_id LIKE 'late-%%'"
        for table in ("annotations_judgment", "annotations_assignment", "annotations_response"):
            cursor.execute(f"DELETE FROM {table} WHERE task_id IN ({late})", [campaign_id])
        cursor.execute(f"DELETE FROM annotations_task WHERE id IN ({late})", [campaign_id])
        cursor.execute("UPDATE annotations_task SET state = 'complete', target_overlap = %s "
                       "WHERE campaign_id = %s AND NOT is_gold", [OVERLAP, campaign_id])
    connection.close()
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "root", "-d", DATABASE, "-qc", "VACUUM ANALYZE"], check=True)


def child(campaign_id: int) -> None:
    """One timed run in this fresh process; prints a JSON line."""
    setup_django()
    from annotations.quality import services

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    report = services.campaign_quality_compute(campaign_id=campaign_id)
    seconds = time.perf_counter() - t0
    print(json.dumps({
        "seconds": seconds, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "baseline_mib": rss_before / 1024, "timings": report.figures.get("timings_s"),
        "alpha": report.figures["alpha_nominal"], "raw": report.figures["raw_agreement"],
        "signals": report.figures["signals"], "adaptive": report.figures.get("adaptive_overlap"),
        "rationale_tasks": report.figures.get("rationale_checked_tasks"),
        "backlog": report.figures.get("rationale_backlog_after"), "written": report.figures.get("consensus_rows_written"),
        "n": report.n_judgments, "vs_majority": report.figures.get("consensus_vs_majority"),
    }))


def timed_run(campaign_id: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", str(campaign_id)], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def show(label: str, runs: list[dict]) -> None:
    for i, r in enumerate(runs):
        print(f"  {label} run {i + 1}: {r['seconds']:.2f} s, peak RSS {r['peak_mib']:,.0f} MiB "
              f"(Django baseline {r['baseline_mib']:,.0f}); phases {r['timings']}; rationale tasks "
              f"{r['rationale_tasks']:,}, backlog after {r['backlog']}; consensus rows written {r['written']}",
              flush=True)
    print(f"{label}: median {statistics.median(r['seconds'] for r in runs):.2f} s, "
          f"max peak RSS {max(r['peak_mib'] for r in runs):,.0f} MiB", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", type=int)
    parser.add_argument("--keep", action="store_true", help="reuse the campaign loaded last time")
    parser.add_argument("--load-only", action="store_true")
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    create_database(DATABASE)
    setup_django()
    from django.core.management import call_command

    from annotations.models import Campaign

    call_command("migrate", verbosity=0)
    existing = Campaign.objects.filter(name=f"quality bench {args.tasks}").order_by("-id").first()
    if args.keep and existing:
        campaign_id = existing.pk
    else:
        print(f"loading {args.tasks:,} tasks x {OVERLAP} judgments, {N_RATERS:,} raters into {DATABASE} ...",
              flush=True)
        campaign_id = load(args.tasks)

    if args.load_only:
        return
    cold = []
    for _ in range(args.runs):
        reset(campaign_id)
        cold.append(timed_run(campaign_id))
    print(f"figures: n={cold[-1]['n']:,} alpha={cold[-1]['alpha']} raw agreement={cold[-1]['raw']} "
          f"consensus = majority on {cold[-1]['vs_majority']} of tasks; flagged {cold[-1]['signals']}; "
          f"adaptive overlap {cold[-1]['adaptive']}")
    show("cold (first computation)", cold)

    incremental = []
    for seed in range(args.runs):
        add_judgments(campaign_id, args.tasks // 100, seed=100 + seed)
        incremental.append(timed_run(campaign_id))
    show("incremental (+1% judgments)", incremental)


if __name__ == "__main__":
    main()

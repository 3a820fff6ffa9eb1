"""Export benchmark: ``export_build`` of 1M preference pairs read from PostgreSQL, JSONL and Parquet.

Run: .venv/bin/python bench/export_bench.py [--pairs 1000000] [--runs 3] [--keep] [--formats trl_preference]

Creates the database ``bench_export`` (psql) and migrates it, then loads a
synthetic K=2 campaign with COPY (not timed): one task per pair (prompts of
10..60 words), two responses each (30..200 words), a consensus row per task
with a margin above the campaign's minimum, and a quality report.

Timed, each run in a fresh process so its peak memory is its own: the whole
service call (count, keyset-paginated reads, row building, writing, SHA-256,
dataset card, atomic rename). Prints every run, the median of ``--runs`` per
file format, pairs per second and peak RSS, and checks that the runs of one
file format produced the same checksum.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
from pgbench_common import create_database, random_texts

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "bench_export"
URL = f"postgres://root@127.0.0.1:5432/{DATABASE}"
FILES = Path(os.environ.get("BENCH_EXPORT_ROOT", "/tmp/bench_export_files"))


def setup_django() -> None:
    os.environ["DATABASE_URL"] = URL
    os.environ["DJANGO_DEBUG"] = "false"  # as in production: no query log
    os.environ["DATADAO_EXPORT_ROOT"] = str(FILES)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "datadao.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def _copy(cursor, table: str, columns: list[str], rows) -> None:
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def load(n: int) -> int:
    """Load the synthetic campaign with COPY; returns its id. Not timed."""
    from django.db import connection
    from django.utils import timezone

    from annotations.models import Campaign, Lab, QualityReport

    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    lab, _ = Lab.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    campaign = Campaign.objects.create(lab=lab, name=f"export bench {n}", domain="medicine",
                                       status=Campaign.Status.OPEN, task_count=n, consensus_min_margin=0.6,
                                       allowed_uses=["research"])
    now = timezone.now() - timedelta(days=1)
    step = 200_000  # texts are built per slice, so loading needs little memory too
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(max(id), 0) FROM annotations_task")
        task0 = cursor.fetchone()[0]
        for start in range(0, n, step):
            stop = min(n, start + step)
            m = stop - start
            prompts = random_texts(rng, m, 10, 60)
            _copy(cursor, "annotations_task", ["id", "campaign_id", "external_id", "prompt", "metadata", "is_gold",
                                               "state", "target_overlap", "filled", "judgment_count", "created_at"],
                  ((task0 + start + t + 1, campaign.pk, f"t{start + t}", json.dumps(prompts[t]), "{}", False,
                    "complete", 3, 3, 3, now) for t in range(m)))
            texts = random_texts(rng, 2 * m, 30, 200)
            _copy(cursor, "annotations_response", ["task_id", "position", "model_name", "text"],
                  ((task0 + start + t // 2 + 1, t % 2, f"model-{t % 2}", texts[t]) for t in range(2 * m)))
            first_better = rng.random(m) < 0.5
            margin = np.round(rng.uniform(0.61, 1.0, m), 6)
            p = np.round(np.where(first_better, (1 + margin) / 2, (1 - margin) / 2), 3)
            _copy(cursor, "annotations_taskconsensus",
                  ["task_id", "campaign_id", "ranks", "pairs", "margin", "n_raters", "method", "version",
                   "last_judgment_id", "computed_at"],
                  ((task0 + start + t + 1, campaign.pk, "[1, 2]" if first_better[t] else "[2, 1]",
                    json.dumps([{"i": 0, "j": 1, "p": float(p[t]), "margin": round(float(margin[t]), 3),
                                 "votes": 3}]),
                    float(margin[t]), 3, "weighted_vote", 1, 0, now) for t in range(m)))
            print(f"  {stop:,} tasks loaded ({time.perf_counter() - t0:.0f} s)", flush=True)
        for table in ("annotations_task", "annotations_response"):
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
    QualityReport.objects.create(
        campaign=campaign, version=1, computed_at=now, fingerprint="bench", n_judgments=3 * n, n_tasks=n, n_raters=50,
        figures={"alpha_nominal": {"value": 0.72, "low": 0.71, "high": 0.73}, "raw_agreement": 0.86},
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(f"  loaded {n:,} pairs in {time.perf_counter() - t0:.0f} s (not timed)", flush=True)
    return campaign.pk


def _rss_mib(field: str) -> float:
    """This process's resident set (``VmRSS``) or its peak (``VmHWM``) in MiB. Not ``ru_maxrss``: Linux
    carries that over from the parent through fork and exec, so a child started by a big parent (the
    one that just loaded a million rows) would report the parent's peak as its own."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def child(campaign_id: int, export_format: str, file_format: str) -> None:
    """One timed run in this fresh process; prints a JSON line."""
    setup_django()
    from annotations import tasks
    from exports import services
    from annotations.models import Campaign

    # Built below, timed, not by the request: it queues the build by name (datadao.jobs.job_queue ->
    # apply_async), which in-process Celery would run at once, untimed.
    tasks.export_build.apply_async = lambda *args, **kwargs: None

    campaign = Campaign.objects.get(pk=campaign_id)
    export = services.export_request(campaign=campaign, user=None, format=export_format, file_format=file_format,
                                     use="research")
    rss_before = _rss_mib("VmHWM")
    t0 = time.perf_counter()
    export = services.export_build(export_id=export.pk)
    seconds = time.perf_counter() - t0
    assert export.state == "done", export.error
    print(json.dumps({
        "seconds": seconds, "rows": export.rows_train + export.rows_test, "sha256": export.sha256_train,
        "bytes": export.bytes_train, "peak_mib": _rss_mib("VmHWM"), "baseline_mib": rss_before,
    }))
    shutil.rmtree(FILES / str(campaign_id) / str(export.pk), ignore_errors=True)


def timed_run(campaign_id: int, export_format: str, file_format: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", str(campaign_id), "--formats", export_format,
                          "--file-formats", file_format], capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--formats", default="trl_preference", help="comma-separated export formats")
    parser.add_argument("--file-formats", default="jsonl,parquet")
    parser.add_argument("--child", type=int)
    parser.add_argument("--keep", action="store_true", help="reuse the campaign loaded last time")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.formats, args.file_formats)
        return
    create_database(DATABASE)
    setup_django()
    from django.core.management import call_command

    from annotations.models import Campaign

    call_command("migrate", verbosity=0)
    existing = Campaign.objects.filter(name=f"export bench {args.pairs}").order_by("-id").first()
    if args.keep and existing:
        campaign_id = existing.pk
    else:
        print(f"loading {args.pairs:,} pairs into {DATABASE} ...", flush=True)
        campaign_id = load(args.pairs)
    from django.db import connection

    connection.close()
    for export_format in args.formats.split(","):
        for file_format in args.file_formats.split(","):
            runs = []
            for i in range(args.runs):
                run = timed_run(campaign_id, export_format, file_format)
                runs.append(run)
                print(f"  {export_format}/{file_format} run {i + 1}: {run['rows']:,} rows in {run['seconds']:.2f} s "
                      f"({run['rows'] / run['seconds']:,.0f} pairs/s), {run['bytes'] / 2**20:,.0f} MiB, peak RSS "
                      f"{run['peak_mib']:,.0f} MiB (Django baseline {run['baseline_mib']:,.0f})", flush=True)
            median = statistics.median(r["seconds"] for r in runs)
            same = len({r["sha256"] for r in runs}) == 1
            print(f"{export_format}/{file_format}: median {median:.2f} s = {runs[0]['rows'] / median:,.0f} pairs/s, "
                  f"max peak RSS {max(r['peak_mib'] for r in runs):,.0f} MiB, identical sha256 across runs: {same}",
                  flush=True)


if __name__ == "__main__":
    main()

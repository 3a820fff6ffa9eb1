"""Import benchmark: N tasks (two ~150-word responses each) from a JSONL file into PostgreSQL.

Prints tasks/s (validate + write, the whole service call) and peak RSS for
each size, the median of several runs, each run in a fresh process so peak
memory is per run. Memory should stay flat as the file grows.

    DATABASE_URL=postgres://root@127.0.0.1:5432/bench_import .venv/bin/python bench/import_bench.py
    (defaults to that URL; creates the database if missing)

Options: --sizes 20000,100000 --runs 3
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgres://root@127.0.0.1:5432/bench_import"
WORDS = (
    "the patient dose renal function risk evidence guideline trial outcome mortality benefit harm monitor review "
    "assess contraindicated interaction hepatic clearance titrate baseline follow adverse event therapy first line "
    "second line consider refer urgent routine code function return value error handle edge case complexity memory"
).split()


def write_file(path: Path, n: int) -> None:
    rng = random.Random(n)
    with path.open("w") as f:
        for i in range(n):
            row = {
                "external_id": f"bench-{i}",
                "prompt": " ".join(rng.choices(WORDS, k=40)),
                "responses": [
                    {"model": "model-a", "text": " ".join(rng.choices(WORDS, k=150))},
                    {"model": "model-b", "text": " ".join(rng.choices(WORDS, k=150))},
                ],
                "metadata": {"i": i},
            }
            f.write(json.dumps(row) + "\n")


def ensure_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def one_run(path: str) -> None:
    """Child process: import the file into a fresh campaign, print JSON figures."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "datadao.settings")
    sys.path.insert(0, str(ROOT))
    django.setup()
    from annotations import services
    from annotations.importing import iter_jsonl
    from annotations.models import Lab

    lab, _ = Lab.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    campaign = services.campaign_create(lab=lab, name=f"bench-{time.time()}", domain="medicine")
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with open(path, "rb") as handle:

        def rows():
            handle.seek(0)
            return iter_jsonl(handle)

        start = time.perf_counter()
        result = services.task_import(campaign=campaign, rows=rows)
        elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"created": result.created, "seconds": elapsed, "peak_mb": peak / 1024, "base_mb": rss_before / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="20000,100000")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        one_run(args.child)
        return

    url = os.environ.setdefault("DATABASE_URL", DEFAULT_URL)
    ensure_database(url)
    env = {**os.environ, "DATABASE_URL": url}
    subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "-v0"], check=True, env=env, cwd=ROOT)
    print(f"database: {url.rsplit('@', 1)[-1]}")
    print(f"{'tasks':>8} {'file MB':>8} {'tasks/s (median)':>17} {'runs tasks/s':>28} {'peak RSS MB':>12}")
    with tempfile.TemporaryDirectory() as tmp:
        for size in [int(s) for s in args.sizes.split(",")]:
            path = Path(tmp) / f"tasks-{size}.jsonl"
            write_file(path, size)
            rates, peaks = [], []
            for _ in range(args.runs):
                out = subprocess.run(
                    [sys.executable, __file__, "--child", str(path)], check=True, env=env, cwd=ROOT,
                    capture_output=True, text=True,
                ).stdout.strip().splitlines()[-1]
                figures = json.loads(out)
                assert figures["created"] == size, figures
                rates.append(size / figures["seconds"])
                peaks.append(figures["peak_mb"])
            file_mb = path.stat().st_size / 1e6
            runs = ", ".join(f"{r:,.0f}" for r in rates)
            print(f"{size:>8} {file_mb:>8.1f} {statistics.median(rates):>17,.0f} {runs:>28} {statistics.median(peaks):>12.0f}")
    with __import__("psycopg").connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE annotations_response, annotations_task CASCADE")


if __name__ == "__main__":
    main()

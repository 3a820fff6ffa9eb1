"""Simulated experts looping next -> submit over HTTP against gunicorn on PostgreSQL.

Run: .venv/bin/python bench/loop_bench.py            (full run, about 6-8 minutes)
     .venv/bin/python bench/loop_bench.py --quick    (one short run of each, about 2 minutes)

What it does:
1. (Re)creates the PostgreSQL database ``bench_loop`` (never the app's own),
   migrates the apps the loop needs, creates 200 vetted experts with API
   tokens, and starts gunicorn on 127.0.0.1 against that database.
2. Throughput and latency: for N = 20 and N = 200 experts, a fresh campaign of
   20,000 tasks (overlap 3, 5% gold rows, gold rate 0.1), loaded with the
   import service (COPY on PostgreSQL); each expert is a client thread with a
   keep-alive connection looping POST next -> POST judgment with no think
   time, for a fixed duration. Prints judgments/s and next/submit p50/p99,
   the median of 3 runs.
3. Scale: the same loop (N = 20, three runs of 500 judgments, 1,500 in all:
   half the small campaign's capacity) on a campaign of 1,000 tasks and one
   of --big-tasks (default 1,000,000) tasks, and the ratio of next p99.

The clients, gunicorn and PostgreSQL share this machine's cores; closed-loop
clients with no think time measure saturation: by Little's law, latency at
N clients is about N / throughput once the server is saturated. A paced
run (N = 200 experts thinking about 4 s per task, about 50 judgments/s offered)
shows latency below saturation; its experts arrive spread over one think
time, so the figure is not the queue of 200 simultaneous first clicks.
Not part of the test run.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG = os.environ.get("BENCH_PG", "postgres://root@127.0.0.1:5432")
DB_NAME = "bench_loop"
PORT = int(os.environ.get("BENCH_PORT", "8765"))
MAX_EXPERTS = 200
RATIONALE = "A is safer and more complete; B misses a contraindication."

os.environ["DATABASE_URL"] = f"{PG}/{DB_NAME}"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "datadao.settings")
SERVER_ENV = {
    **os.environ,
    "DJANGO_DEBUG": "false",
    "DJANGO_LOG_LEVEL": "ERROR",
    # The per-user API throttle (600/min) would cap a simulated expert
    # far below what the loop measures.
    "DATADAO_THROTTLE_ASSIGNMENT": "10000000/min",
    # As deployed, with a broker: a completed task queues its consensus job
    # (issue 4) instead of computing it inside the submit request. No worker
    # runs here, so the loop measures the request path; the queue is
    # flushed afterwards.
    "CELERY_BROKER_URL": os.environ.get("BENCH_BROKER", "redis://127.0.0.1:6379/12"),
}


# --------------------------------------------------------------------------
# Setup
# --------------------------------------------------------------------------


def reset_database() -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")
        if os.environ.get("BENCH_ASYNC_COMMIT"):  # to see what WAL fsync costs on this disk
            conn.execute(f"ALTER DATABASE {DB_NAME} SET synchronous_commit = off")
    for app in ("annotations", "authtoken"):
        subprocess.run(
            [sys.executable, "manage.py", "migrate", app, "--noinput", "-v", "0"], cwd=ROOT, env=SERVER_ENV, check=True,
        )


def flush_broker() -> None:
    import redis

    redis.Redis.from_url(SERVER_ENV["CELERY_BROKER_URL"]).flushdb()


def django_setup() -> None:
    import django

    django.setup()


def make_experts(n: int) -> list[str]:
    """n vetted medicine experts; returns their API tokens."""
    from django.contrib.auth.models import Group, User
    from rest_framework.authtoken.models import Token

    from annotations.models import Expert, ExpertDomain

    users = User.objects.bulk_create([User(username=f"bench-expert-{i}", password="!") for i in range(n)])
    group, _ = Group.objects.get_or_create(name="expert")
    User.groups.through.objects.bulk_create([User.groups.through(user_id=u.pk, group_id=group.pk) for u in users])
    experts = Expert.objects.bulk_create([
        Expert(user=u, domains=["medicine"], credentials="bench", state=Expert.State.VETTED) for u in users
    ])
    ExpertDomain.objects.bulk_create([
        ExpertDomain(expert=e, domain="medicine", state=ExpertDomain.State.VETTED) for e in experts
    ])
    tokens = [Token(user=u, key=Token.generate_key()) for u in users]
    Token.objects.bulk_create(tokens)
    return [t.key for t in tokens]


def task_rows(n: int):
    for i in range(n):
        row = {
            "external_id": f"t{i}",
            "prompt": f"Patient {i}: 58 years old, eGFR {20 + i % 60} mL/min, new type 2 diabetes. Start metformin?",
            "responses": [
                {"model": "model-a", "text": "Check renal function first: metformin is contraindicated below eGFR 30."},
                {"model": "model-b", "text": "Start 500 mg twice daily and titrate up over four weeks."},
            ],
        }
        if i % 20 == 0:
            row["gold"] = {"ranking": ["A", "B"]}
        yield i + 1, row


def make_campaign(lab, n_tasks: int, name: str):
    from annotations import services

    campaign = services.campaign_create(
        lab=lab, name=name, domain="medicine", overlap=3, gold_rate=0.1, rationale_min_length=20,
    )
    started = time.perf_counter()
    services.task_import(campaign=campaign, rows=lambda: task_rows(n_tasks))
    services.campaign_transition(campaign=campaign, action="open")
    return campaign, time.perf_counter() - started


def start_server(workers: int, threads: int) -> subprocess.Popen:
    command = [
        str(Path(sys.executable).parent / "gunicorn"), "datadao.wsgi:application",
        "--bind", f"127.0.0.1:{PORT}", "--workers", str(workers), "--backlog", "2048", "--log-level", "warning",
    ]
    if threads > 1:  # gthread keeps client connections alive; sync closes each one
        command += ["--worker-class", "gthread", "--threads", str(threads), "--keep-alive", "30"]
    server = subprocess.Popen(command, cwd=ROOT, env=SERVER_ENV, start_new_session=True)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=2)
            conn.request("GET", "/accounts/login/")
            conn.getresponse().read()
            return server
        except OSError:
            time.sleep(0.3)
    stop_server(server)
    raise RuntimeError("gunicorn did not start")


def stop_server(server: subprocess.Popen) -> None:
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(server.pid, signal.SIGKILL)


# --------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------


@dataclass
class Run:
    next_ms: list[float] = field(default_factory=list)
    submit_ms: list[float] = field(default_factory=list)
    judgments: int = 0
    empty: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    app_cpu_s: float = 0.0
    db_cpu_s: float = 0.0


# This machine is shared, so wall-clock figures move with other people's
# load; CPU seconds spent by gunicorn and by this database's backends per
# judgment do not, and give the capacity on dedicated cores.
_TICK = os.sysconf("SC_CLK_TCK")
SERVER_PID = [0]


def _cpu_seconds(pids: list[int]) -> dict[int, float]:
    out = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / _TICK
    return out


def _server_pids() -> list[int]:
    master = SERVER_PID[0]
    pids = [master]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == master:
                        pids.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return pids


def _db_pids() -> list[int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", [DB_NAME])
        return [row[0] for row in cursor.fetchall()]


def cpu_snapshot() -> tuple[dict[int, float], dict[int, float]]:
    return _cpu_seconds(_server_pids()), _cpu_seconds(_db_pids())


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(value - before.get(pid, 0.0) for pid, value in after.items())


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def expert_loop(token: str, campaign_id: int, run: Run, lock: threading.Lock, stop: threading.Event,
                budget: list[int], think_s: float, start: threading.Barrier) -> None:
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
    rng = random.Random(token)
    next_body = json.dumps({"campaign": campaign_id})
    nexts, submits, judgments, empty = [], [], 0, 0

    def post(path: str, body: str) -> tuple[int, bytes, float]:
        t0 = time.perf_counter()
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        return response.status, data, (time.perf_counter() - t0) * 1000

    try:
        start.wait()
        if think_s:
            # Paced experts arrive over one think time, as people do, rather
            # than all pressing Next in the same millisecond.
            time.sleep(rng.uniform(0.0, think_s))
        while not stop.is_set():
            with lock:
                if budget[0] <= 0:
                    break
                budget[0] -= 1
            status, data, ms = post("/api/v1/assignments/next", next_body)
            nexts.append(ms)
            if status == 204:
                empty += 1
                break
            if status != 200:
                raise RuntimeError(f"next -> {status}: {data[:200]!r}")
            lease = json.loads(data)
            first = rng.choice(["A", "B"])
            ranking = [first, "B" if first == "A" else "A"]
            body = json.dumps({"ranking": ranking, "strength": -2 if first == "A" else 2, "rationale": RATIONALE})
            status, data, ms = post(f"/api/v1/assignments/{lease['id']}/judgment", body)
            submits.append(ms)
            if status not in (200, 201):
                raise RuntimeError(f"judgment -> {status}: {data[:200]!r}")
            judgments += 1
            if think_s:
                time.sleep(rng.uniform(0.5, 1.5) * think_s)
    except Exception as exc:  # noqa: BLE001 - reported with the figures
        with lock:
            run.errors.append(str(exc))
    finally:
        conn.close()
        with lock:
            run.next_ms += nexts
            run.submit_ms += submits
            run.judgments += judgments
            run.empty += empty


def loop(tokens: list[str], campaign_id: int, *, seconds: float | None = None, judgments: int | None = None,
         think_s: float = 0.0) -> Run:
    run, lock, stop = Run(), threading.Lock(), threading.Event()
    budget = [judgments if judgments is not None else 10**12]
    start = threading.Barrier(len(tokens) + 1)
    threads = [
        threading.Thread(target=expert_loop, args=(t, campaign_id, run, lock, stop, budget, think_s, start), daemon=True)
        for t in tokens
    ]
    for thread in threads:
        thread.start()
    app_before, db_before = cpu_snapshot()
    start.wait()
    began = time.perf_counter()
    if seconds is not None:
        stop.wait(seconds)
        stop.set()
    for thread in threads:
        thread.join()
    run.seconds = time.perf_counter() - began
    app_after, db_after = cpu_snapshot()
    run.app_cpu_s, run.db_cpu_s = cpu_used(app_before, app_after), cpu_used(db_before, db_after)
    return run


def summary(run: Run) -> dict[str, float]:
    for error in sorted(set(run.errors))[:3]:
        print(f"  error: {error}", flush=True)
    return {
        "judgments_per_s": run.judgments / run.seconds if run.seconds else 0.0,
        "next_p50": percentile(run.next_ms, 50), "next_p99": percentile(run.next_ms, 99),
        "submit_p50": percentile(run.submit_ms, 50), "submit_p99": percentile(run.submit_ms, 99),
        "judgments": run.judgments, "errors": len(run.errors),
        "app_cpu_ms": 1000 * run.app_cpu_s / run.judgments if run.judgments else float("nan"),
        "db_cpu_ms": 1000 * run.db_cpu_s / run.judgments if run.judgments else float("nan"),
        "load": os.getloadavg()[0],
    }


def median_of(results: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in results) for key in results[0]}


def show(label: str, figures: dict[str, float]) -> None:
    print(
        f"{label:<34} {figures['judgments_per_s']:>8.1f} judgments/s   "
        f"next p50 {figures['next_p50']:>6.1f} ms  p99 {figures['next_p99']:>7.1f} ms   "
        f"submit p50 {figures['submit_p50']:>6.1f} ms  p99 {figures['submit_p99']:>7.1f} ms   "
        f"CPU/judgment app {figures['app_cpu_ms']:.1f} ms + db {figures['db_cpu_ms']:.1f} ms   "
        f"load {figures['load']:.1f}"
        + (f"   ERRORS {figures['errors']:.0f}" if figures["errors"] else ""),
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one short run of each figure")
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--big-tasks", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=12.0, help="length of each throughput run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1,
                        help="threads per worker; 1 = sync workers (as the README deploys: measured faster here "
                             "than 4 x 4 gthread, which loses time to the GIL)")
    parser.add_argument("--experts", default="20,200", help="closed-loop sizes to run, comma-separated")
    parser.add_argument("--skip", default="", help="comma-separated parts to leave out: paced, scale")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    if args.quick:
        args.runs, args.seconds, args.big_tasks = 1, 6.0, min(args.big_tasks, 100_000)

    t0 = time.perf_counter()
    flush_broker()
    reset_database()
    django_setup()
    from annotations.models import Lab

    lab = Lab.objects.create(name="Bench lab", slug="bench-lab")
    tokens = make_experts(MAX_EXPERTS)
    kind = f"{args.threads} threads (gthread)" if args.threads > 1 else "1 thread (sync)"
    print(f"cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}, gunicorn: {args.workers} workers x {kind}, "
          f"PostgreSQL at {PG}/{DB_NAME}", flush=True)
    server = start_server(args.workers, args.threads)
    SERVER_PID[0] = server.pid
    try:
        for n in [int(n) for n in args.experts.split(",") if n]:
            results = []
            for index in range(args.runs):
                campaign, load_s = make_campaign(lab, args.tasks, f"loop n={n} run={index}")
                if index == 0:
                    print(f"(imported {args.tasks:,} tasks in {load_s:.1f} s)", flush=True)
                results.append(summary(loop(tokens[:n], campaign.pk, seconds=args.seconds)))
            show(f"N={n}, {args.tasks:,} tasks (median of {args.runs})", median_of(results))

        if "paced" not in skip:
            campaign, _ = make_campaign(lab, args.tasks, "paced n=200")
            paced = summary(loop(tokens, campaign.pk, seconds=args.seconds * 1.5, think_s=4.0))
            show("N=200 paced (think ~4 s)", paced)

        scale = {}
        for size in (1_000, args.big_tasks) if "scale" not in skip else ():
            campaign, load_s = make_campaign(lab, size, f"scale {size}")
            print(f"(imported {size:,} tasks in {load_s:.1f} s)", flush=True)
            results = [summary(loop(tokens[:20], campaign.pk, judgments=500)) for _ in range(args.runs)]
            scale[size] = median_of(results)
            show(f"N=20, {size:,} tasks, 500 judgments x{args.runs}", scale[size])
        if scale:
            ratio = scale[args.big_tasks]["next_p99"] / scale[1_000]["next_p99"]
            print(f"next p99 at {args.big_tasks:,} tasks / at 1,000 tasks: {ratio:.2f}x", flush=True)
            per_judgment = statistics.median(
                r["app_cpu_ms"] + r["db_cpu_ms"] for r in [*scale.values()]
            )
            print(f"server CPU per judgment (app + db): {per_judgment:.1f} ms -> about "
                  f"{2000 / per_judgment:.0f} judgments/s on 2 dedicated cores", flush=True)
    finally:
        stop_server(server)
        flush_broker()
    print(f"total bench time {time.perf_counter() - t0:.0f} s, load average now {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

"""The expert loop (next -> submit over HTTP) measured as deployed, next to the database's floor.

Run: .venv/bin/python bench/loop_bench.py --floor               (20 and 100 experts, 3 runs of 8 s each)
     .venv/bin/python bench/loop_bench.py --experts 20 --tasks 1000 --runs 1 --seconds 5

As deployed (README, "Running on PostgreSQL and Redis"):

* ``datadao.settings.production`` (a random 64-character ``DJANGO_SECRET_KEY``,
  ``DJANGO_ALLOWED_HOSTS=127.0.0.1``); the clients send ``X-Forwarded-Proto:
  https``, the header ``SECURE_PROXY_SSL_HEADER`` honours, as the TLS proxy would;
* ``gunicorn datadao.wsgi -w 4`` (sync workers), a real ``celery -A datadao
  worker`` and ``beat`` against Redis (``redis://127.0.0.1:6379/9``, a db the
  tests do not use), PostgreSQL database ``bench_loop`` (dropped and created);
* every campaign with ``min_stake`` > 0 (the platform default) and every
  expert holding a bonded stake (deposit + bond through the rewards services),
  5% gold rows at gold rate 0.1, overlap 3 raised up to 5 by adaptive overlap;
* one client thread per expert with a keep-alive ``requests.Session``, looping
  POST next -> POST judgment with no think time, for ``--seconds``.

Printed per expert count (median of ``--runs``): judgments/s, next and submit
p50/p99, and server CPU per judgment from ``/proc/<pid>/stat`` (utime +
stime) over the run, split into web (gunicorn's process group), worker
(celery worker and beat's process groups) and PostgreSQL (the backends
``pg_stat_activity`` lists for ``bench_loop``, plus the server's own
background processes: WAL writer, checkpointer, background writer).

``--floor``: the statements the server sends for one judgment, captured from
one real Next + Submit in this run (every ``psycopg`` execute), are run
through raw psycopg with prepared statements, one autocommit connection per
expert (at most ``--floor-connections``, 32: this server allows 100
connections, shared with the app and other users), in the same run; the last line is
``fraction of floor: X`` (server judgments/s / floor judgments/s at the
smallest expert count). The statements of one judgment, as captured here on
2026-12-03 (before the hot-path work: 8; after: 6):

  Next:   token: user + expert profile + roles, one prepared statement  (datadao.authentication)
          context: campaign, vetting, live lease, gold count, flagged and,
                   after, the bonded stake                    (assignment._context_sql)
          (before only) SELECT 1: Django's CONN_HEALTH_CHECKS, sent before the
                   first ORM query of a request, which was the stake read
          (before only) stake: SELECT balance FROM rewards_account ... (ORM, not prepared)
          claim: pick + count + lease + the task's texts, one CTE     (leases._claim_sql)
  Submit: token (before: read a second time when DRF took a request over)
          submit read: lease + task + campaign                       (judgments._submit_sql)
          submit write: close lease, insert judgment, count, mark consensus due (one CTE)

The bench prints the list it captured, so a changed hot path shows here.
``--tasks`` above 100,000 are seeded in SQL (``generate_series`` copies of one
imported task and its responses; 1,000,000 took ~70 s here) instead of the import
service's COPY of every row.
Clients, gunicorn, the worker and PostgreSQL share this machine's cores:
closed-loop clients with no think time measure saturation (Little's law:
latency ~ N / throughput). Not part of the test run.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG = os.environ.get("BENCH_PG", "postgres://root@127.0.0.1:5432")
DB_NAME = "bench_loop"
PORT = int(os.environ.get("BENCH_PORT", "8765"))
RATIONALE = "A is safer and more complete; B misses a contraindication."
RESULTS = ROOT / "bench" / "loop_results.txt"

os.environ.update({
    "DATABASE_URL": f"{PG}/{DB_NAME}",
    "DJANGO_SETTINGS_MODULE": "datadao.settings.production",
    "DJANGO_SECRET_KEY": os.environ.get("BENCH_SECRET_KEY") or secrets.token_urlsafe(48),
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
    "DJANGO_LOG_LEVEL": "WARNING",
    "CELERY_BROKER_URL": os.environ.get("BENCH_BROKER", "redis://127.0.0.1:6379/9"),
    # The per-user API throttle (600/min) would cap a simulated expert far below what the loop measures.
    "DATADAO_THROTTLE_ASSIGNMENT": "10000000/min",
})
HEADERS = {"Content-Type": "application/json", "X-Forwarded-Proto": "https"}
_out = None


def say(line: str = "") -> None:
    print(line, flush=True)
    if _out is not None:
        _out.write(line + "\n")
        _out.flush()


# --------------------------------------------------------------------------
# Setup
# --------------------------------------------------------------------------


def reset_database() -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, check=True)


def flush_broker() -> None:
    import redis

    redis.Redis.from_url(os.environ["CELERY_BROKER_URL"]).flushdb()


@dataclass
class Expert:
    pk: int
    token: str


def make_experts(n: int) -> list[Expert]:
    """n vetted medicine experts, each with 100 tokens deposited and 50 bonded; returns ids and API tokens."""
    from django.conf import settings
    from django.contrib.auth.models import Group, User
    from rest_framework.authtoken.models import Token

    from annotations.models import Expert as ExpertModel
    from annotations.models import ExpertDomain
    from rewards import services as rewards

    unit = 10**settings.DATADAO_TOKEN_DECIMALS
    moderator = User.objects.create_superuser("bench-moderator", password=None)
    users = User.objects.bulk_create([User(username=f"bench-expert-{i}", password="!") for i in range(n)])
    group, _ = Group.objects.get_or_create(name="expert")
    User.groups.through.objects.bulk_create([User.groups.through(user_id=u.pk, group_id=group.pk) for u in users])
    experts = ExpertModel.objects.bulk_create([
        ExpertModel(user=u, domains=["medicine"], credentials="bench", state=ExpertModel.State.VETTED) for u in users
    ])
    ExpertDomain.objects.bulk_create([
        ExpertDomain(expert=e, domain="medicine", state=ExpertDomain.State.VETTED) for e in experts
    ])
    for expert in experts:
        rewards.expert_deposit(expert=expert, amount=100 * unit, reference="bench", actor=moderator)
        rewards.stake_bond(expert=expert, amount=50 * unit, client_key="bench")
    tokens = Token.objects.bulk_create([Token(user=u, key=Token.generate_key()) for u in users])
    return [Expert(e.pk, t.key) for e, t in zip(experts, tokens)]


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
    """An open campaign as the defaults make it (min_stake > 0), gold, overlap 3 raised to 5 by adaptive overlap."""
    from annotations import services

    campaign = services.campaign_create(
        lab=lab, name=name, domain="medicine", overlap=3, max_overlap=5, gold_rate=0.1, rationale_min_length=20,
    )
    assert campaign.min_stake > 0, "the bench measures stake weighting: DATADAO_MIN_STAKE must be > 0"
    started = time.perf_counter()
    if n_tasks > 100_000:
        bulk_tasks(campaign, n_tasks)
    else:
        services.task_import(campaign=campaign, rows=lambda: task_rows(n_tasks))
    services.campaign_transition(campaign=campaign, action="open")
    return campaign, time.perf_counter() - started


def bulk_tasks(campaign, n_tasks: int) -> None:
    """Many tasks straight in SQL (generate_series), the rows ``task_import`` would write; minutes faster at 1M."""
    from django.db import connection

    from annotations.models import Response, Task

    task_columns = {f.column for f in Task._meta.concrete_fields}
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT column_name, is_nullable, column_default FROM information_schema.columns "
                       f"WHERE table_name = '{Task._meta.db_table}'")
        described = cursor.fetchall()
    # Copy a template task made by the import service (a gold row), so every column has a real value.
    from annotations import services

    services.task_import(campaign=campaign, rows=lambda: task_rows(1))
    template = Task.objects.get(campaign=campaign)
    copied = [c for c, *_ in described if c in task_columns and c not in (
        "id", "external_id", "prompt", "is_gold", "gold", "target_overlap", "created_at")]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Task._meta.db_table} ({', '.join(copied)}, external_id, prompt, is_gold, gold, "
            "target_overlap, created_at) "
            f"SELECT {', '.join('t.' + c for c in copied)}, 'g' || g, to_jsonb('Patient ' || g || ': start metformin?'),"
            f" g %% 20 = 0, CASE WHEN g %% 20 = 0 THEN t.gold END, "
            f"CASE WHEN g %% 20 = 0 THEN t.target_overlap ELSE %s END, now() "
            f"FROM {Task._meta.db_table} t, generate_series(2, %s) g WHERE t.id = %s",
            [campaign.overlap, n_tasks, template.pk],
        )
        response_columns = [f.column for f in Response._meta.concrete_fields if f.column not in ("id", "task_id")]
        cursor.execute(
            f"INSERT INTO {Response._meta.db_table} (task_id, {', '.join(response_columns)}) "
            f"SELECT t.id, {', '.join('r.' + c for c in response_columns)} FROM {Task._meta.db_table} t "
            f"JOIN {Response._meta.db_table} r ON r.task_id = %s WHERE t.campaign_id = %s AND t.id <> %s",
            [template.pk, campaign.pk, template.pk],
        )
        cursor.execute(f"ANALYZE {Task._meta.db_table}")


def spawn(command: list[str]) -> subprocess.Popen:
    return subprocess.Popen(command, cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=open(tempfile.mktemp(prefix="loop_bench_"), "w"))


def start_services(workers: int) -> dict[str, list[subprocess.Popen]]:
    bin_dir = Path(sys.executable).parent
    schedule = tempfile.mktemp(prefix="loop_bench_beat_")
    web = spawn([str(bin_dir / "gunicorn"), "datadao.wsgi", "-w", str(workers), "-b", f"127.0.0.1:{PORT}",
                 "--log-level", "warning"])
    worker = spawn([str(bin_dir / "celery"), "-A", "datadao", "worker", "--loglevel=warning"])
    beat = spawn([str(bin_dir / "celery"), "-A", "datadao", "beat", "--loglevel=warning", "-s", schedule])
    import requests

    deadline = time.time() + 60
    while True:
        try:
            if requests.get(f"http://127.0.0.1:{PORT}/accounts/login/", headers=HEADERS, timeout=2).ok:
                break
        except requests.RequestException:
            pass
        if time.time() > deadline:
            stop_services({"all": [web, worker, beat]})
            raise RuntimeError("gunicorn did not start")
        time.sleep(0.3)
    return {"web": [web], "worker": [worker, beat]}


def stop_services(services: dict[str, list[subprocess.Popen]]) -> None:
    for process in [p for group in services.values() for p in group]:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# --------------------------------------------------------------------------
# CPU accounting
# --------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _group_pids(leaders: list[int]) -> list[int]:
    """Every process in the leaders' process groups (gunicorn's workers, celery's pool)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat(int(entry))) and int(fields[2]) in leaders:
            found.append(int(entry))
    return found


def _postgres_pids() -> list[int]:
    import psycopg

    with psycopg.connect(f"{PG}/{DB_NAME}", autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND (datname = %s OR backend_type IN "
            "('walwriter', 'checkpointer', 'background writer'))", [DB_NAME],
        ).fetchall()
    return [pid for pid, in rows]


def cpu_snapshot(services) -> dict[str, dict[int, float]]:
    pids = {kind: _group_pids([p.pid for p in group]) for kind, group in services.items()}
    pids["postgres"] = _postgres_pids()
    snapshot = {}
    for kind, group in pids.items():
        snapshot[kind] = {}
        for pid in group:
            if fields := _stat(pid):
                snapshot[kind][pid] = (int(fields[11]) + int(fields[12])) / _TICK
    return snapshot


def cpu_used(before, after) -> dict[str, float]:
    """CPU seconds per kind; a process that started during the run counts from zero."""
    return {kind: sum(v - before[kind].get(pid, 0.0) for pid, v in after[kind].items()) for kind in after}


# --------------------------------------------------------------------------
# The loop over HTTP
# --------------------------------------------------------------------------


@dataclass
class Run:
    next_ms: list[float] = field(default_factory=list)
    submit_ms: list[float] = field(default_factory=list)
    judgments: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    cpu_s: dict[str, float] = field(default_factory=dict)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def expert_loop(expert: Expert, campaign_id: int, run: Run, lock: threading.Lock, stop: threading.Event,
                start: threading.Barrier) -> None:
    import requests

    session = requests.Session()
    session.headers.update({**HEADERS, "Authorization": f"Token {expert.token}"})
    base = f"http://127.0.0.1:{PORT}/api/v1/assignments"
    rng = random.Random(expert.token)
    next_body = json.dumps({"campaign": campaign_id})
    nexts, submits, judgments = [], [], 0
    try:
        start.wait()
        while not stop.is_set():
            t0 = time.perf_counter()
            response = session.post(f"{base}/next", data=next_body)
            nexts.append((time.perf_counter() - t0) * 1000)
            if response.status_code == 204:
                break
            if response.status_code != 200:
                raise RuntimeError(f"next -> {response.status_code}: {response.text[:200]!r}")
            lease = response.json()
            first = rng.choice(["A", "B"])
            body = json.dumps({"ranking": [first, "B" if first == "A" else "A"],
                               "strength": -2 if first == "A" else 2, "rationale": RATIONALE})
            t0 = time.perf_counter()
            response = session.post(f"{base}/{lease['id']}/judgment", data=body)
            submits.append((time.perf_counter() - t0) * 1000)
            if response.status_code not in (200, 201):
                raise RuntimeError(f"judgment -> {response.status_code}: {response.text[:200]!r}")
            judgments += 1
    except Exception as exc:  # noqa: BLE001 - reported with the figures
        with lock:
            run.errors.append(str(exc))
    finally:
        session.close()
        with lock:
            run.next_ms += nexts
            run.submit_ms += submits
            run.judgments += judgments


def timed(services, target, experts: list[Expert], seconds: float, run: Run, *args) -> Run:
    lock, stop = threading.Lock(), threading.Event()
    start = threading.Barrier(len(experts) + 1)
    threads = [threading.Thread(target=target, args=(e, *args, run, lock, stop, start), daemon=True) for e in experts]
    for thread in threads:
        thread.start()
    before = cpu_snapshot(services)
    start.wait()
    began = time.perf_counter()
    stop.wait(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    run.seconds = time.perf_counter() - began
    run.cpu_s = cpu_used(before, cpu_snapshot(services))
    return run


def summary(run: Run) -> dict[str, float]:
    for error in sorted(set(run.errors))[:3]:
        say(f"  error: {error}")
    per = (lambda s: 1000 * s / run.judgments) if run.judgments else (lambda s: float("nan"))
    figures = {
        "judgments_per_s": run.judgments / run.seconds if run.seconds else 0.0,
        "next_p50": percentile(run.next_ms, 50), "next_p99": percentile(run.next_ms, 99),
        "submit_p50": percentile(run.submit_ms, 50), "submit_p99": percentile(run.submit_ms, 99),
        "errors": len(run.errors),
    }
    for kind, seconds in run.cpu_s.items():
        figures[f"cpu_{kind}_ms"] = per(seconds)
    figures["cpu_total_ms"] = sum(per(seconds) for seconds in run.cpu_s.values())
    return figures


def median_of(results: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in results) for key in results[0]}


def show(label: str, f: dict[str, float]) -> None:
    if "cpu_web_ms" not in f:
        say(f"{label}: {f['judgments_per_s']:.1f} judgments/s" + (f", ERRORS {f['errors']:.0f}" if f["errors"] else ""))
        return
    cpu = " + ".join(f"{kind} {f[f'cpu_{kind}_ms']:.2f}" for kind in ("web", "worker", "postgres") if f"cpu_{kind}_ms" in f)
    latency = (f"next p50/p99 {f['next_p50']:.1f}/{f['next_p99']:.1f} ms, submit p50/p99 "
               f"{f['submit_p50']:.1f}/{f['submit_p99']:.1f} ms, " if f.get("next_p50") == f.get("next_p50") else "")
    say(f"{label}: {f['judgments_per_s']:.1f} judgments/s, {latency}CPU per judgment {cpu} = {f['cpu_total_ms']:.2f} ms"
        + (f", ERRORS {f['errors']:.0f}" if f["errors"] else ""))


# --------------------------------------------------------------------------
# The statements of one judgment, and the floor
# --------------------------------------------------------------------------


def capture_statements(expert: Expert, campaign_id: int) -> list[tuple[str, str]]:
    """One Next + Submit in this process (the server's code and settings) with every psycopg execute recorded:
    [(request, sql)]."""
    import psycopg
    from django.core.signals import request_started
    from django.db import connection
    from django.test import Client

    seen, current = [], ["next"]
    execute = psycopg.Cursor.execute

    def recording(self, query, params=None, **kwargs):
        seen.append((current[0], query if isinstance(query, str) else repr(query)))
        return execute(self, query, params, **kwargs)

    client = Client(SERVER_NAME="127.0.0.1", HTTP_AUTHORIZATION=f"Token {expert.token}")
    connection.close()
    # The test client leaves out Django's request_started handler, which arms the health check per request.
    request_started.connect(lambda **kwargs: connection.close_if_unusable_or_obsolete(), weak=False,
                            dispatch_uid="loop_bench")
    client.post("/api/v1/assignments/next", {"campaign": campaign_id}, content_type="application/json", secure=True)
    psycopg.Cursor.execute = recording
    try:
        # The second Next of a lease gives it back; the recorded Next is a fresh claim after a submit.
        lease = client.post("/api/v1/assignments/next", {"campaign": campaign_id},
                            content_type="application/json", secure=True).json()
        body = {"ranking": ["A", "B"], "strength": -2, "rationale": RATIONALE}
        seen.clear()
        current[0] = "submit"
        client.post(f"/api/v1/assignments/{lease['id']}/judgment", body, content_type="application/json", secure=True)
        current[0] = "next"
        client.post("/api/v1/assignments/next", {"campaign": campaign_id}, content_type="application/json",
                    secure=True)
    finally:
        psycopg.Cursor.execute = execute
        request_started.disconnect(dispatch_uid="loop_bench")
    return [seen[i] for i in range(len(seen)) if seen[i][0] == "next"] + [s for s in seen if s[0] == "submit"]


def _kind(sql: str) -> str:
    from annotations import assignment, judgments, leases
    from datadao import authentication

    flat = " ".join(sql.split())
    known = {
        "health check": "SELECT 1",
        "token": authentication._statement()[0],
        "context": assignment._context_sql(max(0, _setting("DATADAO_NEW_EXPERT_GOLD_ANSWERS")))[0],
        "claim (gold)": leases._claim_sql(gold=True, window=max(1, _setting("DATADAO_ASSIGN_WINDOW"))),
        "claim": leases._claim_sql(gold=False, window=max(1, _setting("DATADAO_ASSIGN_WINDOW"))),
        "submit read": judgments._submit_sql()[0],
        "submit write": judgments._submit_sql()[4],
    }
    for name, text in known.items():
        if flat == " ".join(text.split()):
            return name
    if "rewards_account" in flat:
        return "stake"
    return "other: " + flat[:100]


def _setting(name: str):
    from django.conf import settings

    return getattr(settings, name)


class FloorClient:
    """One expert's judgment as the server's statements, through raw psycopg with prepared statements."""

    def __init__(self, expert: Expert, campaign_id: int, kinds: list[str]):
        import psycopg
        from django.conf import settings

        from annotations import assignment, judgments, leases, roles
        from annotations.models import Assignment, ExpertDomain, Task
        from datadao import authentication
        from rewards.models import Account

        self.conn = psycopg.connect(f"{PG}/{DB_NAME}", autocommit=True, prepare_threshold=0)
        self.kinds, self.expert, self.campaign_id = kinds, expert, campaign_id
        gold_answers = max(0, settings.DATADAO_NEW_EXPERT_GOLD_ANSWERS)
        window = max(1, settings.DATADAO_ASSIGN_WINDOW)
        self.sql = {
            "health check": "SELECT 1",
            "token": authentication._statement()[0],
            "context": assignment._context_sql(gold_answers)[0],
            "stake": f"SELECT balance FROM {Account._meta.db_table} WHERE kind = %s AND expert_id = %s "
                     "ORDER BY id LIMIT 1",
            "claim": leases._claim_sql(gold=False, window=window),
            "submit read": judgments._submit_sql()[0],
            "submit write": judgments._submit_sql()[4],
        }
        # The key is looked up as itself (DRF Token) and as its SHA-256 (ApiToken), as the server does.
        self.token_params = [*roles.ALL_ROLES, expert.token, hashlib.sha256(expert.token.encode()).hexdigest()]
        stake = assignment._context_sql(gold_answers)[3]  # the bonded stake's parameters, read in the context
        self.context_params = [*stake, *([expert.pk] if stake else []), expert.pk, ExpertDomain.State.VETTED, settings.DATADAO_NEW_EXPERT_GOLD_RATE,
                               expert.pk, expert.pk, expert.pk, Assignment.State.LEASED, campaign_id]
        self.states = {"open": Task.State.OPEN, "complete": Task.State.COMPLETE, "leased": Assignment.State.LEASED,
                       "submitted": Assignment.State.SUBMITTED}
        self.bonded = Account.Kind.BONDED
        self.rng = random.Random(expert.token)

    def _run(self, kind: str, params):
        return self.conn.execute(self.sql[kind], params, prepare=True).fetchall()

    def judgment(self) -> bool:
        from django.utils import timezone

        kinds = self.kinds
        for kind in kinds["next"]:
            if kind == "health check":
                self._run(kind, None)
            elif kind == "token":
                self._run(kind, self.token_params)
            elif kind == "context":
                self._run(kind, self.context_params)
            elif kind == "stake":
                self._run(kind, [self.bonded, self.expert.pk])
        now = timezone.now()
        order = [0, 1]
        self.rng.shuffle(order)
        rows = self._run("claim", {
            "campaign": self.campaign_id, "expert": self.expert.pk, "gold": False, "open": self.states["open"],
            "leased": self.states["leased"], "order": json.dumps(order), "now": now,
            "expires": now + timedelta(minutes=30), "salt": repr(self.rng.random()),
        })
        if not rows:
            return False
        for kind in kinds["submit"]:
            if kind == "health check":
                self._run(kind, None)
            elif kind == "token":
                self._run(kind, self.token_params)
        params = {"id": rows[0][0], "expert": self.expert.pk}
        self._run("submit read", params)
        now = timezone.now()
        params.update(
            submitted=self.states["submitted"], leased=self.states["leased"], now=now, campaign=self.campaign_id,
            ranks="[0, 1]", strength=-2, ratings="{}", rationale=RATIONALE, flags="[]", display_order=json.dumps(order),
            time_spent_ms=5, is_gold=False, gold_correct=None, open=self.states["open"],
            complete=self.states["complete"],
        )
        self._run("submit write", params)
        return True


def floor_loop(expert: Expert, campaign_id: int, kinds, run: Run, lock, stop, start) -> None:
    try:
        client, judgments = FloorClient(expert, campaign_id, kinds), 0
    except Exception as exc:  # noqa: BLE001 - no connection: end the run, say why
        with lock:
            run.errors.append(str(exc))
        start.abort()
        return
    try:
        start.wait()
        while not stop.is_set() and client.judgment():
            judgments += 1
    except Exception as exc:  # noqa: BLE001
        with lock:
            run.errors.append(str(exc))
    finally:
        client.conn.close()
        with lock:
            run.judgments += judgments


# --------------------------------------------------------------------------


def main() -> None:
    global _out
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--experts", default="20,100", help="expert counts, comma-separated")
    parser.add_argument("--tasks", type=int, default=20_000, help="tasks per campaign (1,000,000 uses generate_series)")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers (the README runs 4)")
    parser.add_argument("--floor", action="store_true", help="also run the statements on raw psycopg")
    parser.add_argument("--floor-connections", type=int, default=32,
                        help="most connections the floor opens (PostgreSQL here allows 100, shared with others)")
    parser.add_argument("--label", default="", help="a note for the results file (e.g. before/after)")
    parser.add_argument("--append", action="store_true", help=f"append to {RESULTS.name} instead of replacing it")
    args = parser.parse_args()
    sizes = sorted(int(n) for n in args.experts.split(",") if n)

    _out = open(RESULTS, "a" if args.append else "w")
    t0 = time.perf_counter()
    arguments = [a for a in sys.argv[1:] if a not in ("--label", args.label)]
    say(f"# loop_bench {' '.join(arguments)} {args.label}".rstrip())
    flush_broker()
    reset_database()
    import django

    django.setup()
    from django.db import connection

    from annotations.models import Lab

    lab = Lab.objects.create(name="Bench lab", slug="bench-lab")
    experts = make_experts(max(sizes) + 1)
    capture_expert, experts = experts[-1], experts[:-1]
    say(f"cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}; production settings; gunicorn "
        f"{args.workers} sync workers; celery worker + beat on {os.environ['CELERY_BROKER_URL']}; PostgreSQL "
        f"{PG}/{DB_NAME}; {args.tasks:,} tasks per campaign, overlap 3 (adaptive to 5), gold 5% at rate 0.1, "
        f"min_stake > 0; {args.runs} runs of {args.seconds:.0f} s")
    services = start_services(args.workers)
    connection.close()
    floors, served = {}, {}
    try:
        for n in sizes:
            campaign, load_s = make_campaign(lab, args.tasks, f"loop n={n}")
            say(f"(campaign of {args.tasks:,} tasks made in {load_s:.1f} s)")
            connection.close()
            if n == sizes[0]:
                captured = capture_statements(capture_expert, campaign.pk)
                connection.close()
                kinds = {"next": [], "submit": []}
                for request, sql in captured:
                    kinds[request].append(_kind(sql))
                say(f"statements per judgment ({len(captured)}): next: {', '.join(kinds['next'])}; "
                    f"submit: {', '.join(kinds['submit'])}")
            results = [summary(timed(services, expert_loop, experts[:n], args.seconds, Run(), campaign.pk))
                       for _ in range(args.runs)]
            served[n] = median_of(results)
            show(f"server, {n} experts (median of {args.runs})", served[n])
            if args.floor:
                clients = experts[:min(n, args.floor_connections)]
                results = [summary(timed(services, floor_loop, clients, args.seconds, Run(), campaign.pk, kinds))
                           for _ in range(args.runs)]
                results = [{k: v for k, v in r.items() if not k.startswith("cpu_")} for r in results]
                floors[n] = median_of(results)
                show(f"floor (raw psycopg, prepared), {len(clients)} connections (median of {args.runs})", floors[n])
    finally:
        stop_services(services)
        flush_broker()
    say(f"total bench time {time.perf_counter() - t0:.0f} s, load average now {os.getloadavg()[0]:.2f}")
    for n in sorted(floors, reverse=True):
        say(f"fraction of floor at {n} experts: {served[n]['judgments_per_s'] / floors[n]['judgments_per_s']:.2f}")
    if floors:
        n = sizes[0]
        say(f"fraction of floor: {served[n]['judgments_per_s'] / floors[n]['judgments_per_s']:.2f}")
    _out.close()


if __name__ == "__main__":
    main()

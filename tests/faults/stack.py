"""The fault suite's own services: PostgreSQL, Redis, gunicorn, a Celery worker and beat, in one temp folder.

Nothing here touches the machine's shared servers: PostgreSQL is a fresh
``initdb`` cluster and Redis a fresh server, each on a free port, and every
process is started in its own session so it can be killed whole.
"""
from __future__ import annotations

import contextlib
import glob
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
GUNICORN_WORKERS = 3
# Settings of the services under test; each is read by datadao/settings.
VISIBILITY_TIMEOUT_S = 10
SWEEP_EVERY_S = 10
EXPORT_STALE_S = 5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_bin() -> Path | None:
    for name in ("initdb", "pg_ctl"):
        if found := shutil.which(name):
            return Path(os.path.realpath(found)).parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def missing_binaries() -> list[str]:
    """What the suite needs and this machine lacks (the suite is skipped, naming them)."""
    missing = []
    pg = postgres_bin()
    if pg is None or not (pg / "pg_ctl").exists():
        missing.append("initdb/pg_ctl (PostgreSQL server)")
    if shutil.which("redis-server") is None:
        missing.append("redis-server")
    for name in ("gunicorn", "celery"):
        if not (VENV_BIN / name).exists():
            missing.append(f"{VENV_BIN / name}")
    if os.geteuid() == 0 and (shutil.which("runuser") is None or not _user_exists("postgres")):
        missing.append("runuser and a 'postgres' user (PostgreSQL refuses to run as root)")
    return missing


def _user_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def wait_for(what: str, predicate, timeout: float, interval: float = 0.2, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    tail = f"\n--- {log} ---\n{log_tail(log)}" if log else ""
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}{tail}")


def log_tail(path: Path | None, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:] if path else ""
    except OSError:
        return ""


class Process:
    """A child process in its own session, logging to a file; killed with its whole group."""

    def __init__(self, name: str, command: list[str], *, env: dict, cwd: Path, log: Path):
        self.name, self.command, self.env, self.cwd, self.log = name, command, env, cwd, log
        self.popen: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.popen = subprocess.Popen(self.command, cwd=self.cwd, env=self.env, stdout=out,
                                          stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self, sig: int = signal.SIGKILL, timeout: float = 20) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=timeout)

    def stop(self) -> None:
        self.kill(signal.SIGTERM, timeout=15)
        # Whatever the group left behind (a pool child), so nothing outlives the suite.
        with contextlib.suppress(ProcessLookupError, TypeError, AttributeError):
            os.killpg(self.popen.pid, signal.SIGKILL)

    def children(self) -> set[int]:
        try:
            return {int(pid) for pid in Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()}
        except OSError:
            return set()


class Postgres:
    """A throw-away cluster (initdb) on a free port; run as the ``postgres`` user when we are root."""

    def __init__(self, root: Path):
        self.bin = postgres_bin()
        self.dir = root / "pg"
        self.dir.mkdir()
        self.data, self.log = self.dir / "data", self.dir / "postgres.log"
        self.port = free_port()
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
            self.prefix = ["runuser", "-u", "postgres", "--"]
        else:
            self.prefix = []

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/faults"

    def _run(self, *args: str, timeout: float = 120) -> None:
        subprocess.run([*self.prefix, *args], check=True, capture_output=True, timeout=timeout)

    def init(self) -> None:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--no-sync", "--locale=C")
        self.start()
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "faults")

    def start(self) -> None:
        # fsync off: a stop here is a killed server, never a lost machine, so the OS keeps every write.
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100"
        self._run(str(self.bin / "pg_ctl"), "start", "-D", str(self.data), "-w", "-t", "60", "-l", str(self.log),
                  "-o", options)

    def stop_immediately(self) -> None:
        """As a crash: every backend ends at once, no checkpoint (the restart replays the WAL)."""
        self._run(str(self.bin / "pg_ctl"), "stop", "-D", str(self.data), "-m", "immediate", "-w", "-t", "60")

    def running(self) -> bool:
        result = subprocess.run([*self.prefix, str(self.bin / "pg_ctl"), "status", "-D", str(self.data)],
                                capture_output=True)
        return result.returncode == 0

    def ensure_running(self) -> None:
        if not self.running():
            self.start()

    def shutdown(self) -> None:
        if self.data.exists() and self.running():
            with contextlib.suppress(subprocess.SubprocessError):
                self.stop_immediately()

    def connect(self):
        import psycopg

        return psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=faults", autocommit=True,
                               connect_timeout=10)

    def query(self, sql: str, params=()) -> list[tuple]:
        with self.connect() as conn:
            return conn.execute(sql, params).fetchall()


class Redis:
    def __init__(self, root: Path):
        self.port = free_port()
        self.dir = root / "redis"
        self.dir.mkdir()
        self.process: Process | None = None
        self.log = self.dir / "redis.log"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = Process("redis", [shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1",
                                         "--save", "", "--appendonly", "no", "--dir", str(self.dir)],
                               env=dict(os.environ), cwd=self.dir, log=self.log)
        self.process.start()
        wait_for("redis-server to answer PING", self._pong, timeout=30, log=self.log)

    def _pong(self) -> bool:
        import redis

        try:
            return redis.Redis(port=self.port, socket_connect_timeout=1).ping()
        except redis.RedisError:
            return False

    def kill(self) -> None:
        self.process.kill(signal.SIGKILL)

    def shutdown(self) -> None:
        if self.process is not None:
            self.process.stop()


class Stack:
    """PostgreSQL, Redis, gunicorn (production settings), a Celery worker and beat, all in ``root``."""

    def __init__(self, root: Path):
        self.root = root
        self.postgres = Postgres(root)
        self.redis = Redis(root)
        self.export_root = root / "exports"
        self.export_root.mkdir()
        self.web_port = free_port()
        self.gunicorn: Process | None = None
        self.worker: Process | None = None
        self.beat: Process | None = None
        self.worker_starts = 0
        self.secret_key = secrets.token_urlsafe(64)

    # -- environment -------------------------------------------------------

    def env(self) -> dict[str, str]:
        """Production settings against our servers; nothing inherited that would point elsewhere."""
        inherited = {k: v for k, v in os.environ.items()
                     if not k.startswith(("DATABASE_", "CELERY_", "DJANGO_", "DATADAO_", "CACHE_", "FAULTS_"))}
        return {
            **inherited,
            "PYTHONUNBUFFERED": "1",
            "DJANGO_SETTINGS_MODULE": "datadao.settings.production",
            "DJANGO_SECRET_KEY": self.secret_key,
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DJANGO_SECURE_SSL_REDIRECT": "false",  # plain http to localhost; TLS is the proxy's
            "DJANGO_LOG_LEVEL": "WARNING",
            "DATABASE_URL": self.postgres.url,
            "CELERY_BROKER_URL": self.redis.url,
            "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT_S),
            "CELERY_UNACKED_RESTORE_INTERVAL": "1",
            "CELERY_UNACKED_RESTORE_THROTTLE": "1",
            "DATADAO_THROTTLE_ASSIGNMENT": "1000000/min",
            "DATADAO_MEDIA_ROOT": str(self.root / "media"),
            "DATADAO_EXPORT_ROOT": str(self.export_root),
            # Small pages: many heartbeats and a build long enough to be killed in the middle.
            "DATADAO_EXPORT_CHUNK": "200",
            "FAULTS_SWEEP_EVERY_S": str(SWEEP_EVERY_S),
            "FAULTS_EXPORT_STALE_S": str(EXPORT_STALE_S),
        }

    def manage(self, *args: str, timeout: float = 180) -> str:
        result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env(), capture_output=True,
                                text=True, timeout=timeout)
        if result.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
        return result.stdout

    def seed(self, *args: str) -> dict:
        result = subprocess.run([sys.executable, str(HERE / "seed.py"), *args], cwd=ROOT, env=self.env(),
                                capture_output=True, text=True, timeout=180)
        if result.returncode:
            raise RuntimeError(f"seed {' '.join(args)} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
        return json.loads(result.stdout.strip().splitlines()[-1])

    # -- processes ---------------------------------------------------------

    def start(self) -> None:
        self.postgres.init()
        self.redis.start()
        self.manage("migrate", "--noinput", "-v", "0")
        self.start_gunicorn()
        self.start_worker()
        self.beat = Process("beat", [sys.executable, str(HERE / "celery_run.py"), "beat", "--loglevel=INFO",
                                     "--schedule", str(self.root / "beat-schedule")],
                            env=self.env(), cwd=self.root, log=self.root / "beat.log")
        self.beat.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def start_gunicorn(self) -> None:
        self.gunicorn = Process(
            "gunicorn",
            [str(VENV_BIN / "gunicorn"), "datadao.wsgi:application", "--bind", f"127.0.0.1:{self.web_port}",
             "--workers", str(GUNICORN_WORKERS), "--timeout", "30", "--log-level", "warning"],
            env=self.env(), cwd=ROOT, log=self.root / "gunicorn.log",
        )
        self.gunicorn.start()
        wait_for("gunicorn to answer", self._web_answers, timeout=60, interval=0.3, log=self.gunicorn.log)
        wait_for(f"{GUNICORN_WORKERS} gunicorn workers", lambda: len(self.gunicorn.children()) >= GUNICORN_WORKERS,
                 timeout=30, log=self.gunicorn.log)

    def _web_answers(self) -> bool:
        if not self.gunicorn.alive():
            raise RuntimeError(f"gunicorn exited:\n{log_tail(self.gunicorn.log)}")
        try:
            return requests.get(f"{self.base_url}/api/v1/assignments/next", timeout=5).status_code > 0
        except requests.RequestException:
            return False

    def start_worker(self) -> None:
        """A worker (two pool processes, as on 2 cores) consuming the default queue; waits until it is ready."""
        self.worker_starts += 1
        log = self.root / f"worker-{self.worker_starts}.log"
        self.worker = Process(
            "worker",
            [sys.executable, str(HERE / "celery_run.py"), "worker", "--loglevel=INFO", "--concurrency=2",
             "-n", f"faults{self.worker_starts}@%h", "--without-gossip", "--without-mingle"],
            env=self.env(), cwd=self.root, log=log,
        )
        self.worker.start()
        wait_for("the Celery worker to be ready", lambda: self._ready(self.worker), timeout=90, interval=0.3, log=log)

    @staticmethod
    def _ready(worker: Process) -> bool:
        if not worker.alive():
            raise RuntimeError(f"the Celery worker exited:\n{log_tail(worker.log)}")
        return " ready." in log_tail(worker.log, 100_000)

    def restore(self) -> None:
        """Every service running again (after a test that stopped one and failed before restarting it)."""
        self.postgres.ensure_running()
        if not self.redis.process.alive():
            self.redis.start()
        if not self.worker.alive():
            self.start_worker()

    def shutdown(self) -> None:
        for process in (self.beat, self.worker, self.gunicorn):
            if process is not None:
                process.stop()
        self.redis.shutdown()
        self.postgres.shutdown()

    def logs(self) -> str:
        """The tails of every log, for a failure message."""
        paths = [self.postgres.log, self.redis.log, self.root / "gunicorn.log", self.root / "beat.log",
                 *sorted(self.root.glob("worker-*.log"))]
        return "\n".join(f"--- {p.name} ---\n{log_tail(p, 2500)}" for p in paths if p.exists())

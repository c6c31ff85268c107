#!/usr/bin/env python3
"""Outage benchmark (issue 16): the production process set (gunicorn, two Celery workers on the
threads pool, beat with the outage-tolerant scheduler) on a PostgreSQL cluster and a Redis of
its own, jobs posted through the API at ``--rate`` (10) per second, while one thing breaks:

- ``redis``: Redis SIGKILLed for ``--redis-seconds`` (30), then started again (empty, as the
  machine's Redis runs without persistence). Targets: every POST 201; workers and beat alive
  afterwards; the backlog drained within 30 s of Redis's return.
- ``pg-short`` / ``pg-long``: PostgreSQL stopped with ``pg_ctl -m immediate`` for
  ``--pg-short-seconds`` (15) / ``--pg-long-seconds`` (360: across beat's 5-minute schedule
  re-read), then started again. Targets: POSTs during the outage 503 with ``Retry-After``;
  gunicorn, workers and beat alive afterwards; everything synced within 60 s of the return.
- ``worker-kill``: a backlog of ``--backlog`` (1,000) routings posted at once (mock provider
  latency ``--kill-latency-ms``, 500, so it takes the workers a while), and one worker SIGKILLed
  once ``--kill-at-claimed`` routings are claimed; it is not started again. Target: the
  routings claimed at the kill synced within 60 s of it.

Each run prints lost routings (not synced at the end, or synced without their job at the
provider; plus jobs answered 201 that are not stored), duplicated ones (more than one job at the
provider for a routing, or two jobs stored for one Idempotency-Key), the POST statuses by phase,
the processes that died (exited, or logged Celery's "Unrecoverable error"; other CRITICAL lines
are counted apart) and the drain time: from the service's return (the kill, for
``worker-kill``) until every routing created before it is synced. The client sends a failed
POST again with its Idempotency-Key (after Retry-After, backing off), as an integrator would.
Exit status 0 when nothing was lost or duplicated in any scenario (the other targets are
reported as PASS / MISS lines), 1 otherwise, 2 when the run could not be done.

    flock /tmp/bench.lock .venv/bin/python bench/outages.py --scenario redis
    flock /tmp/bench.lock .venv/bin/python bench/outages.py --scenario all    # about 25 minutes

Every scenario builds its own stack from scratch: a PostgreSQL 15 cluster made with ``initdb``
in a new folder (``--pg-port``, 5499; trust auth; its socket in the folder), a ``redis-server``
without persistence (``--redis-port``, 6399), ``migrate`` and ``seed_demo --api-keys``, every
company on the mock provider. It never touches the machine's PostgreSQL or Redis. Everything it
started is stopped and the cluster deleted at the end, on failure and on Ctrl-C too; the logs
stay in the work folder it prints (``--work-dir``).
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import requests

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    BENCH_FIELD_ENCRYPTION_KEYS,
    REPO,
    BenchError,
    Postgres,
    Server,
    log,
    machine_info,
    machine_lines,
    port_answers,
    run,
    tail,
)

PG_BIN = Path("/usr/lib/postgresql/15/bin")
DB = "tradeengage"
# The README walkthrough's job, posted with Springfield Roofing's demo key: three routings each.
API_KEY = "te_d8488a33.71d275479e1ce53e769112e97130dc83"
JOB = {
    "summary": "Fix leaky kitchen faucet",
    "address": {
        "street": "456 Oak Avenue",
        "city": "Springfield",
        "state": "IL",
        "zip_code": "62701",
    },
    "homeowner": {"name": "Jane Smith", "phone": "(555) 987-6543", "email": "jane.smith@email.com"},
    "created_by_company_id": "2679ec4e-cd0d-5b26-ac07-f0a9298379e9",
    "created_by_technician_id": "b8f8f5d7-8498-51d7-902c-270eacb8479d",
    "required_skills": ["plumbing"],
    "skill_levels": {"plumbing": "intermediate"},
    "category": "plumbing",
}
SCENARIOS = ("redis", "pg-short", "pg-long", "worker-kill")
CLEANUP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
DRAIN_TARGET = {"redis": 30.0, "pg-short": 60.0, "pg-long": 60.0, "worker-kill": 60.0}


# --------------------------------------------------------------------------- the stack


def as_postgres(cmd: list) -> list:
    """initdb and the server refuse to run as root: run them as the postgres user then."""
    cmd = [str(c) for c in cmd]
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


class Cluster:
    """A throwaway PostgreSQL 15 cluster in ``folder``, listening on 127.0.0.1:``port``."""

    def __init__(self, folder: Path, port: int):
        self.folder, self.port = folder, port
        self.data = folder / "data"
        self.log_path = folder / "postgresql.log"
        self.pg = Postgres("127.0.0.1", port, "postgres")

    def create(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        initdb = [PG_BIN / "initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "-E", "UTF8"]
        run(as_postgres(initdb), stdout_path=self.folder / "initdb.log")
        self.start()
        self.pg.sql(f'CREATE DATABASE "{DB}"')

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder} "
            "-c max_connections=300 -c shared_buffers=128MB"
        )
        pg_ctl = [PG_BIN / "pg_ctl", "-D", self.data, "-l", self.log_path, "-o", options, "-w"]
        run(as_postgres([*pg_ctl, "-t", "60", "start"]))

    def stop(self, mode: str = "immediate") -> None:
        run(as_postgres([PG_BIN / "pg_ctl", "-D", self.data, "-m", mode, "-w", "stop"]))

    def destroy(self, keep_log_in: Path) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(BenchError):
                self.stop()
        with contextlib.suppress(OSError):
            shutil.copy(self.log_path, keep_log_in / "postgresql.log")
        shutil.rmtree(self.folder, ignore_errors=True)


class RedisServer:
    """A redis-server on 127.0.0.1:``port`` without persistence, like the machine's."""

    def __init__(self, folder: Path, port: int):
        self.folder, self.port = folder, port
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / "redis.log", "ab") as out:
            self.proc = subprocess.Popen(
                [
                    "redis-server",
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.folder),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + 10
        while not port_answers(self.port):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise BenchError(f"redis-server did not start:\n{tail(self.folder / 'redis.log')}")
            time.sleep(0.05)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


@dataclass
class Proc:
    """A Celery worker or beat: its own process group, its log, and whether we killed it."""

    name: str
    popen: subprocess.Popen
    log_path: Path
    killed_by_bench: bool = False

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)


class Stack:
    def __init__(self, args, scenario: str):
        self.args = args
        self.scenario = scenario
        self.work = Path(args.work_dir) / scenario
        self.work.mkdir(parents=True, exist_ok=True)
        self.python = Path(args.venv) / "bin" / "python"
        self.gunicorn_bin = Path(args.venv) / "bin" / "gunicorn"
        # The cluster lives in a folder of its own, deleted at the end; the logs stay.
        self.cluster = Cluster(Path(tempfile.mkdtemp(prefix="outages-pg-")), args.pg_port)
        self.redis = RedisServer(self.work / "redis", args.redis_port)
        self.gunicorn: Server | None = None
        self.celery: list[Proc] = []
        self.base_url = f"http://127.0.0.1:{args.port}"
        metrics = self.work / "metrics"
        metrics.mkdir(exist_ok=True)
        self.env = {
            "PATH": f"{Path(args.venv) / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": os.environ.get("HOME", "/tmp"),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "PYTHONUNBUFFERED": "1",
            "DJANGO_SETTINGS_MODULE": "tradeengage.settings",
            "DATABASE_URL": self.cluster.pg.url(DB),
            "REDIS_URL": f"redis://127.0.0.1:{args.redis_port}/0",
            "DEBUG": "false",
            "SECRET_KEY": "outage-benchmark-only-not-a-secret-" + "x" * 40,
            "FIELD_ENCRYPTION_KEYS": BENCH_FIELD_ENCRYPTION_KEYS,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT": "false",
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "INFO",
            "RATE_LIMIT_PLAN_OVERRIDE": "benchmark",
            "SYNC_UNCONFIGURED_WITH_MOCK": "true",
            "PROMETHEUS_MULTIPROC_DIR": str(metrics),
        }

    # -- building

    def build(self, latency_ms: int) -> None:
        for port, what in [
            (self.args.pg_port, "--pg-port"),
            (self.args.redis_port, "--redis-port"),
            (self.args.port, "--port"),
        ]:
            if port_answers(port):
                raise BenchError(f"something already listens on 127.0.0.1:{port} ({what})")
        log(f"[{self.scenario}] creating PostgreSQL cluster in {self.cluster.folder}")
        self.cluster.create()
        self.redis.start()
        self.manage("migrate", "--noinput", "-v", "0")
        self.manage("seed_demo", "--api-keys")
        self.set_latency(latency_ms)
        self.start_gunicorn()
        for index in range(self.args.workers):
            self.start_worker(index)
        self.start_beat()

    def manage(self, *argv: str) -> None:
        run(
            [self.python, "manage.py", *argv],
            env=self.env,
            cwd=REPO,
            stdout_path=self.work / f"manage-{argv[0]}.log",
        )

    def sql(self, statement: str) -> str:
        return self.cluster.pg.sql(statement, db=DB)

    def set_latency(self, latency_ms: int) -> None:
        """Every company on the mock provider, no injected failures, ``latency_ms`` per call."""
        self.sql(
            "UPDATE jobs_company SET provider_type = 'mock', "
            f"provider_settings = '{{\"latency_ms\": {int(latency_ms)}}}'::jsonb"
        )

    def start_gunicorn(self) -> None:
        self.gunicorn = Server(
            "gunicorn",
            self.args.port,
            [
                self.gunicorn_bin,
                "tradeengage.wsgi",
                "-w",
                "4",
                "-b",
                f"127.0.0.1:{self.args.port}",
                "--error-logfile",
                "-",
            ],
            cwd=REPO,
            env=self.env,
            log_path=self.work / "gunicorn.log",
        )
        self.gunicorn.start()
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(requests.RequestException):
                if requests.get(self.base_url + "/api/v1/health/live", timeout=2).ok:
                    return
            if time.monotonic() > deadline or not self.gunicorn.alive():
                raise BenchError(f"gunicorn did not start:\n{tail(self.gunicorn.log_path)}")
            time.sleep(0.3)

    def start_worker(self, index: int) -> Proc:
        name = f"worker-{index}"
        argv = [
            "worker",
            "-Q",
            "critical,high,default,low,webhooks",
            "--pool",
            "threads",
            "--concurrency",
            "4",
            "--loglevel",
            self.args.worker_loglevel,
            "--hostname",
            f"outages-{index}@%h",
        ]
        return self._start_celery(name, argv, ready=b" ready.")

    def start_beat(self) -> Proc:
        argv = [
            "beat",
            "-S",
            "tradeengage.beat:OutageTolerantScheduler",
            "--pidfile=",
            "--loglevel",
            "INFO",
        ]
        return self._start_celery("beat", argv, ready=b"beat: Starting")

    def _start_celery(self, name: str, argv: list[str], *, ready: bytes) -> Proc:
        log_path = self.work / f"{name}.log"
        with open(log_path, "ab") as out:
            popen = subprocess.Popen(
                [self.python, "-m", "celery", "-A", "tradeengage", *argv],
                cwd=REPO,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        proc = Proc(name, popen, log_path)
        self.celery.append(proc)
        deadline = time.monotonic() + 60
        while ready not in log_path.read_bytes():
            if time.monotonic() > deadline or not proc.alive():
                raise BenchError(f"{name} did not start:\n{tail(log_path)}")
            time.sleep(0.2)
        return proc

    # -- what the run reads

    def count(self, sql: str) -> int | None:
        """One number from the database, or None while it is away."""
        try:
            return int(self.sql(sql) or 0)
        except (BenchError, ValueError):
            return None

    def process_report(self) -> tuple[list[str], list[str]]:
        """The processes that died (exited, or logged Celery's "Unrecoverable error", after
        which a worker only waits for its running tasks and exits), and those that logged
        CRITICAL lines (kombu's "Couldn't ack" among them) but are alive."""
        died, critical = [], []
        processes = [("gunicorn master", self.gunicorn.alive(), self.gunicorn.log_path, False)]
        processes += [(p.name, p.alive(), p.log_path, p.killed_by_bench) for p in self.celery]
        for name, alive, log_path, killed in processes:
            if killed:
                continue
            text = log_path.read_text(errors="replace") if log_path.exists() else ""
            unrecoverable = "Unrecoverable" in text
            if not alive or unrecoverable:
                state = "exited" if not alive else "alive"
                died.append(f"{name} ({state}{', Unrecoverable error' if unrecoverable else ''})")
            elif "CRITICAL" in text:
                lines = [ln for ln in text.splitlines() if "CRITICAL" in ln]
                critical.append(f"{name}: {len(lines)}")
        return died, critical

    def stop(self) -> None:
        for proc in self.celery:
            if proc.alive():
                proc.signal_group(signal.SIGTERM)
        for proc in self.celery:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(20)
            proc.signal_group(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(5)
        if self.gunicorn:
            self.gunicorn.stop()
        self.redis.kill()
        self.cluster.destroy(keep_log_in=self.work)


# --------------------------------------------------------------------------- the client


@dataclass
class Attempt:
    at: float  # time.monotonic()
    status: str  # "201", "503", ..., or "connection error" / "timeout"
    retry_after: bool


@dataclass
class Poster:
    """Posts a new job every 1/``rate`` seconds from a pacing thread; requests run in a small
    pool so a hanging one does not slow the pace. A job that fails (5xx, 409, a connection
    error) is sent again with the same body and Idempotency-Key after its Retry-After (1 s
    without one) or, from its fourth attempt, a doubling wait of up to 60 s, as an integrator
    would back off; until ``retry_until``."""

    base_url: str
    rate: float
    attempts: list[Attempt] = field(default_factory=list)
    confirmed: dict[str, str] = field(default_factory=dict)  # Idempotency-Key -> job id
    keys: list[str] = field(default_factory=list)
    first_posted: dict[str, float] = field(default_factory=dict)  # key -> time.monotonic()
    retry_until: float = float("inf")

    def __post_init__(self):
        self._lock = threading.Lock()
        self._stop_new = threading.Event()
        self._stop_all = threading.Event()
        self._retries: list[tuple[float, str]] = []
        self._tries: Counter = Counter()
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="post")
        self._local = threading.local()
        self._thread = threading.Thread(target=self._pace, name="pacer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop_new(self) -> None:
        self._stop_new.set()

    def stop(self) -> None:
        self._stop_new.set()
        self._stop_all.set()
        self._thread.join(10)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def pending_retries(self) -> int:
        with self._lock:
            return len(self._retries)

    def burst(self, count: int, concurrency: int = 8) -> None:
        """``count`` jobs at once (a backlog), ``concurrency`` at a time, from this thread."""
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            for _ in range(count):
                key = str(uuid.uuid4())
                with self._lock:
                    self.keys.append(key)
                    self.first_posted[key] = time.monotonic()
                pool.submit(self._post, key)

    def _pace(self) -> None:
        start, sent = time.monotonic(), 0
        while not self._stop_all.is_set():
            now = time.monotonic()
            with self._lock:
                due = []
                while self._retries and self._retries[0][0] <= now:
                    due.append(heapq.heappop(self._retries)[1])
            for key in due:
                self._pool.submit(self._post, key)
            if not self._stop_new.is_set() and now >= start + sent / self.rate:
                key = str(uuid.uuid4())
                with self._lock:
                    self.keys.append(key)
                    self.first_posted[key] = time.monotonic()
                self._pool.submit(self._post, key)
                sent += 1
            time.sleep(0.01)

    def _session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
            self._local.session.trust_env = False  # loopback: never through a proxy
        return self._local.session

    def _post(self, key: str) -> None:
        body = {**JOB, "summary": f"Outage bench job {key}"}
        headers = {"X-API-Key": API_KEY, "Idempotency-Key": key}
        retry_in = 1.0
        try:
            response = self._session().post(
                self.base_url + "/api/v1/jobs/", json=body, headers=headers, timeout=15
            )
            status, retry_after = str(response.status_code), "Retry-After" in response.headers
            if response.status_code == 201:
                with self._lock:
                    self.confirmed[key] = response.json()["id"]
            elif retry_after:
                with contextlib.suppress(ValueError):
                    retry_in = float(response.headers["Retry-After"])
        except requests.Timeout:
            status, retry_after = "timeout", False
            self._local.__dict__.pop("session", None)
        except requests.RequestException:
            status, retry_after = "connection error", False
            self._local.__dict__.pop("session", None)
        now = time.monotonic()
        with self._lock:
            self.attempts.append(Attempt(now, status, retry_after))
            self._tries[key] += 1
            retry_in = max(retry_in, min(60.0, 2.0 ** (self._tries[key] - 1)))
            failed = status == "409" or (status != "201" and not status.startswith("4"))
            if failed and now + retry_in <= self.retry_until and not self._stop_all.is_set():
                heapq.heappush(self._retries, (now + retry_in, key))


# --------------------------------------------------------------------------- the scenarios


def utc_now() -> str:
    return datetime.now(UTC).isoformat()


def wait_synced(stack: Stack, which: str, started: float, timeout: float) -> float | None:
    """Seconds from ``started`` until no routing ``which`` (an SQL condition) is unsynced."""
    deadline = started + timeout
    while time.monotonic() < deadline:
        left = stack.count(
            "SELECT count(*) FROM routing_jobrouting WHERE sync_status NOT IN "
            f"('synced', 'completed') AND {which}"
        )
        if left == 0:
            return time.monotonic() - started
        time.sleep(0.5)
    return None


def outage_jobs(stack: Stack, poster: Poster, start: float, end: float, end_iso: str) -> dict:
    """The jobs first posted during the outage: how many are stored (answered 201 then, or
    created by the client's retries after it), and when the last of their routings was synced,
    in seconds after the service's return (None while one is not synced)."""
    with poster._lock:
        keys = {key for key, at in poster.first_posted.items() if start <= at < end}
    rows = stack.sql(
        "SELECT substr(j.summary, length('Outage bench job ') + 1),"
        f" extract(epoch FROM max(r.last_synced_at) - '{end_iso}'),"
        " bool_and(r.sync_status IN ('synced', 'completed'))"
        " FROM jobs_job j JOIN routing_jobrouting r ON r.job_id = j.id"
        " WHERE j.summary LIKE 'Outage bench job %' GROUP BY j.summary"
    ).splitlines()
    stored = [row.split("|")[1:] for row in rows if row.split("|")[0] in keys]
    all_synced = all(done == "t" for _, done in stored)
    last = max((float(after) for after, _ in stored), default=None)
    return {
        "outage_jobs": len(keys),
        "outage_jobs_stored": len(stored),
        "outage_jobs_synced_after": last if all_synced else None,
    }


def exactly_once(stack: Stack, poster: Poster) -> dict:
    values = stack.sql(
        "SELECT (SELECT count(*) FROM routing_jobrouting),"
        " (SELECT count(*) FROM routing_jobrouting WHERE sync_status IN ('synced', 'completed')),"
        " (SELECT count(*) FROM integrations_mockjob),"
        # lost: not synced, or synced without the job its key holds at the provider
        " (SELECT count(*) FROM routing_jobrouting r WHERE r.sync_status NOT IN"
        "   ('synced', 'completed') OR NOT EXISTS (SELECT 1 FROM integrations_mockjob m"
        "   WHERE m.idempotency_key = r.id::text AND m.external_id = r.external_id)),"
        # duplicated: a routing recording another job than its key holds, a provider job for
        # no routing, or a second job stored for one Idempotency-Key
        " (SELECT count(*) FROM routing_jobrouting r JOIN integrations_mockjob m"
        "   ON m.idempotency_key = r.id::text"
        "   WHERE r.sync_status IN ('synced', 'completed')"
        "   AND m.external_id IS DISTINCT FROM r.external_id),"
        " (SELECT count(*) FROM integrations_mockjob m WHERE NOT EXISTS ("
        "   SELECT 1 FROM routing_jobrouting r WHERE r.id::text = m.idempotency_key)),"
        " (SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM jobs_job"
        "   WHERE summary LIKE 'Outage bench job %' GROUP BY summary HAVING count(*) > 1) x),"
        " (SELECT count(*) FROM jobs_job WHERE summary LIKE 'Outage bench job %'),"
        " (SELECT coalesce(sum(create_calls), 0) FROM integrations_mockjob),"
        " (SELECT count(*) FROM routing_jobrouting WHERE sync_status = 'failed')"
    ).split("|")
    (routings, synced, provider_jobs, lost, mismatched, orphans, twice, jobs, calls, failed) = map(
        int, values
    )
    stored = set(stack.sql("SELECT id FROM jobs_job").split())
    missing_jobs = sum(1 for job_id in poster.confirmed.values() if job_id not in stored)
    return {
        "jobs": jobs,
        "jobs_confirmed": len(poster.confirmed),
        "jobs_posted": len(poster.keys),
        "routings": routings,
        "synced": synced,
        "failed": failed,
        "provider_jobs": provider_jobs,
        "provider_create_calls": calls,
        "missing_jobs": missing_jobs,
        "lost": lost + missing_jobs,
        "duplicated": mismatched + orphans + twice,
    }


def statuses(poster: Poster, start: float | None, end: float | None) -> Counter:
    with poster._lock:
        attempts = list(poster.attempts)
    counts = Counter()
    for attempt in attempts:
        if (start is None or attempt.at >= start) and (end is None or attempt.at < end):
            label = attempt.status
            if attempt.status.startswith("5") and not attempt.retry_after:
                label += " without Retry-After"
            counts[label] += 1
    return counts


def run_scenario(args, scenario: str) -> dict:
    stack = Stack(args, scenario)
    poster = None
    try:
        latency = args.kill_latency_ms if scenario == "worker-kill" else args.latency_ms
        stack.build(latency)
        machine = machine_info(stack.cluster.pg, stack.python, stack.gunicorn_bin, None)
        poster = Poster(stack.base_url, args.rate)
        poster.start()
        log(f"[{scenario}] posting {args.rate:g} jobs/s; warm-up {args.warmup:g} s")
        time.sleep(args.warmup)
        result = {"scenario": scenario, "latency_ms": latency, "machine": machine}
        outage_start = time.monotonic()
        if scenario == "redis":
            log(f"[{scenario}] SIGKILL redis-server for {args.redis_seconds:g} s")
            stack.redis.kill()
            time.sleep(args.redis_seconds)
            stack.redis.start()
            result["outage"] = f"Redis SIGKILLed for {args.redis_seconds:g} s"
        elif scenario in ("pg-short", "pg-long"):
            seconds = args.pg_short_seconds if scenario == "pg-short" else args.pg_long_seconds
            log(f"[{scenario}] pg_ctl stop -m immediate for {seconds:g} s")
            stack.cluster.stop("immediate")
            time.sleep(seconds)
            stack.cluster.start()
            result["outage"] = f"PostgreSQL stopped (-m immediate) for {seconds:g} s"
        else:
            result.update(worker_kill(stack, poster, args))
        returned, returned_iso = time.monotonic(), utc_now()
        if scenario == "worker-kill":
            returned, returned_iso = result.pop("killed_at"), result.pop("killed_at_iso")
            # The killed worker's claims: the routings processing at the kill (the other
            # worker's among them finish within seconds).
            claimed = f"id::text IN ({result.pop('claimed_ids')})"
            result["claims_seconds"] = wait_synced(stack, claimed, returned, args.drain_timeout)
            claims = result["claims_seconds"]
            log(f"[{scenario}] claims at the kill synced after {claims and round(claims, 1)} s")
        else:
            log(f"[{scenario}] back after {returned - outage_start:.1f} s; waiting for the drain")
        before_return = f"created_at <= '{returned_iso}'"
        drain = wait_synced(stack, before_return, returned, args.drain_timeout)
        log(f"[{scenario}] drain: {drain and round(drain, 1)} s")
        # Keep posting a while after the return, then let the client's retries finish.
        remaining = args.after - (time.monotonic() - returned)
        if remaining > 0:
            time.sleep(remaining)
        poster.retry_until = time.monotonic() + 20
        poster.stop_new()
        posting_end = time.monotonic()
        while poster.pending_retries() and time.monotonic() < posting_end + 25:
            time.sleep(0.5)
        poster.stop()
        final = wait_synced(stack, "true", time.monotonic(), 120)
        if final is None:
            log(f"[{scenario}] warning: not everything synced 120 s after posting stopped")
        result.update(
            phases={
                "before": statuses(poster, None, outage_start),
                "during": statuses(poster, outage_start, returned),
                "after": statuses(poster, returned, None),
            },
            drain_seconds=drain,
            **outage_jobs(stack, poster, outage_start, returned, returned_iso),
            **dict(zip(("died", "critical"), stack.process_report(), strict=True)),
            logs=notable_log_lines(stack),
            **exactly_once(stack, poster),
        )
        return result
    finally:
        # A second Ctrl-C must not leave half of the stack running.
        previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in CLEANUP_SIGNALS}
        try:
            if poster is not None:
                poster.stop()
            stack.stop()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def worker_kill(stack: Stack, poster: Poster, args) -> dict:
    """Post a backlog of ``--backlog`` routings at once, and SIGKILL worker-0 once half of it
    is stored and ``--kill-at-claimed`` routings are claimed. Returns once the backlog is
    posted, with the kill's time: the drain is timed from the kill."""
    jobs = -(-args.backlog // 3)
    log(f"[worker-kill] posting a backlog of {jobs} jobs ({args.backlog} routings)")
    before = stack.count("SELECT count(*) FROM routing_jobrouting") or 0
    burst = threading.Thread(target=poster.burst, args=(jobs,), daemon=True)
    burst.start()
    victim = stack.celery[0]
    deadline = time.monotonic() + 120
    held = 0
    while time.monotonic() < deadline:
        held = stack.count(
            "SELECT count(*) FROM routing_jobrouting WHERE sync_status = 'processing'"
        )
        created = (stack.count("SELECT count(*) FROM routing_jobrouting") or 0) - before
        if held and held >= args.kill_at_claimed and created >= args.backlog // 2:
            break
        time.sleep(0.1)
    ids = stack.sql("SELECT id FROM routing_jobrouting WHERE sync_status = 'processing'").split()
    victim.signal_group(signal.SIGKILL)
    killed_at, killed_at_iso = time.monotonic(), utc_now()
    victim.popen.wait(10)
    victim.killed_by_bench = True
    log(f"[worker-kill] SIGKILL {victim.name}: {created} of the backlog stored, {len(ids)} claimed")
    burst.join(120)
    return {
        "outage": f"{victim.name} SIGKILLed during a backlog of {args.backlog} routings "
        f"(mock provider latency {args.kill_latency_ms} ms)",
        "claimed_at_kill": len(ids),
        "claimed_ids": ",".join(f"'{i}'" for i in ids) or "NULL",
        "killed_at": killed_at,
        "killed_at_iso": killed_at_iso,
    }


def notable_log_lines(stack: Stack) -> list[str]:
    """First CRITICAL / ERROR / Traceback lines of each process's log, for the report."""
    notes = []
    paths = [stack.gunicorn.log_path] + [p.log_path for p in stack.celery]
    for path in paths:
        if not path.exists():
            continue
        lines = path.read_text(errors="replace").splitlines()
        levels = Counter()
        for line in lines:
            with contextlib.suppress(ValueError, AttributeError):
                levels[json.loads(line).get("levelname") or json.loads(line).get("level")] += 1
        hits = [ln for ln in lines if "CRITICAL" in ln or "Unrecoverable" in ln]
        summary = ", ".join(f"{k} {v}" for k, v in sorted(levels.items(), key=str) if k)
        notes.append(f"{path.name}: {len(lines)} lines ({summary or 'not JSON'})")
        notes += [f"    {ln[:300]}" for ln in hits[:3]]
    return notes


# --------------------------------------------------------------------------- the report


def report(result: dict) -> list[str]:
    scenario = result["scenario"]
    during = result["phases"]["during"]
    fivexx = Counter()
    for phase in result["phases"].values():
        for label, n in phase.items():
            if label[:1] == "5":
                fivexx[label] += n

    def fmt_counts(counts: Counter) -> str:
        return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "-"

    drain = result["drain_seconds"]
    lines = [
        "",
        f"== {scenario}: {result['outage']} ==",
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| jobs posted / answered 201 / stored | {result['jobs_posted']} / "
        f"{result['jobs_confirmed']} / {result['jobs']} |",
        f"| routings / synced / failed | {result['routings']} / {result['synced']} / "
        f"{result['failed']} |",
        f"| provider jobs / create calls | {result['provider_jobs']} / "
        f"{result['provider_create_calls']} |",
        f"| POSTs before the outage | {fmt_counts(result['phases']['before'])} |",
        f"| POSTs during the outage | {fmt_counts(during)} |",
        f"| POSTs after the return | {fmt_counts(result['phases']['after'])} |",
        f"| 5xx by status | {fmt_counts(fivexx)} |",
        f"| lost | {result['lost']} (jobs answered 201 but not stored: {result['missing_jobs']}) |",
        f"| duplicated | {result['duplicated']} |",
        f"| processes that died | {', '.join(result['died']) or 'none'} |",
        f"| CRITICAL log lines (alive) | {', '.join(result['critical']) or 'none'} |",
        f"| drain time | {f'{drain:.1f} s' if drain is not None else 'not drained'} |",
        f"| jobs first posted during the outage / stored / their last routing synced | "
        f"{result['outage_jobs']} / {result['outage_jobs_stored']} / "
        f"{fmt_seconds(result['outage_jobs_synced_after'])} after the return |",
    ]
    if "claimed_at_kill" in result:
        claims = result["claims_seconds"]
        lines.append(
            f"| routings claimed at the kill (both workers) | {result['claimed_at_kill']}, all "
            f"synced {f'{claims:.1f} s' if claims is not None else 'never'} after the kill |"
        )
    target = DRAIN_TARGET[scenario]
    checks = [
        ("nothing lost", result["lost"] == 0),
        ("nothing duplicated", result["duplicated"] == 0),
    ]
    all_posts = sum((result["phases"][p] for p in ("before", "during", "after")), Counter())
    if scenario == "redis":
        checks.append(("every POST 201", set(all_posts) == {"201"}))
    elif scenario.startswith("pg"):
        non_503 = {k for k in during if k not in ("201", "503")}
        checks.append(("POSTs during the outage 503 with Retry-After", not non_503))
        others = {k for k in all_posts if k not in ("201", "503")}
        checks.append(("no other failure status before, during or after", not others))
    if scenario == "worker-kill":
        checks.append(
            (
                f"claimed routings synced within {target:.0f} s of the kill",
                result["claims_seconds"] is not None and result["claims_seconds"] <= target,
            )
        )
    else:
        checks.append(
            (
                f"backlog drained within {target:.0f} s of the return",
                drain is not None and drain <= target,
            )
        )
    checks.append(("gunicorn, workers and beat alive without help", not result["died"]))
    lines += ["", *(f"  {'PASS' if ok else 'MISS'}  {what}" for what, ok in checks)]
    lines += ["", "Logs:", *(f"  {ln}" for ln in result["logs"])]
    return lines


def fmt_seconds(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds:.1f} s"


def git_state() -> list[str]:
    def out(*cmd):
        return subprocess.run(
            ["git", *cmd], capture_output=True, text=True, cwd=REPO, check=False
        ).stdout.strip()

    status = out("status", "--short")
    return [
        f"Git:     {out('log', '-1', '--oneline')}",
        "Status:  " + (status.replace("\n", "; ") if status else "clean"),
    ]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=(*SCENARIOS, "all"), default="all")
    parser.add_argument("--rate", type=float, default=10.0, help="jobs per second (10)")
    parser.add_argument("--warmup", type=float, default=20.0, help="seconds before the outage")
    parser.add_argument(
        "--after", type=float, default=40.0, help="seconds of posting after the return (40)"
    )
    parser.add_argument("--redis-seconds", type=float, default=30.0)
    parser.add_argument("--pg-short-seconds", type=float, default=15.0)
    parser.add_argument("--pg-long-seconds", type=float, default=360.0)
    parser.add_argument("--backlog", type=int, default=1000, help="routings (worker-kill)")
    parser.add_argument(
        "--kill-latency-ms",
        type=int,
        default=500,
        help="mock provider latency in worker-kill (500: the worker left, 32 calls at a time, "
        "carries the 30 routings/s of the steady load)",
    )
    parser.add_argument(
        "--kill-at-claimed",
        type=int,
        default=200,
        help="kill once this many routings are claimed (200; by both workers)",
    )
    parser.add_argument("--latency-ms", type=int, default=0, help="mock provider latency (0)")
    parser.add_argument("--drain-timeout", type=float, default=420.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-loglevel", default="INFO")
    parser.add_argument("--port", type=int, default=8499, help="gunicorn")
    parser.add_argument("--pg-port", type=int, default=5499)
    parser.add_argument("--redis-port", type=int, default=6399)
    parser.add_argument("--venv", default=str(REPO / ".venv"))
    parser.add_argument("--work-dir", help="logs (default: a new /tmp/outages-* folder)")
    args = parser.parse_args(argv)
    if 5432 in (args.pg_port, args.port) or 6379 in (args.redis_port, args.port):
        parser.error("5432 and 6379 are the machine's shared PostgreSQL and Redis")
    args.work_dir = args.work_dir or tempfile.mkdtemp(prefix="outages-")
    return args


def interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    args = parse_args(argv)
    # Ctrl-C and SIGTERM (a timeout, a supervisor) both stop everything started, then exit.
    for sig in CLEANUP_SIGNALS:
        signal.signal(sig, interrupt)
    scenarios = SCENARIOS if args.scenario == "all" else (args.scenario,)
    results, lines = [], []
    try:
        for scenario in scenarios:
            result = run_scenario(args, scenario)
            results.append(result)
            lines += report(result)
            if len(scenarios) > 1:
                print("\n".join(report(result)), flush=True)
    except BenchError as exc:
        log(f"error: {exc}")
        return 2
    except KeyboardInterrupt:
        log("interrupted; everything started was stopped")
        return 2
    header = machine_lines(results[0]["machine"]) if results else []
    print("\n".join(["", *header, *git_state(), f"Work dir (logs): {args.work_dir}", *lines]))
    return 0 if all(r["lost"] == 0 and r["duplicated"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Batch-ingestion benchmark (issue 19): jobs created through ``POST /api/v1/ingestion/jobs``
and the workers, against jobs created through ``POST /api/v1/jobs/``, in the same run.

One fresh PostgreSQL database with a ``--companies`` network (``bench/testbed.py``: migrate,
``seed_demo --api-keys``), gunicorn serving the app and ``--workers`` Celery worker processes
(threads pool, every queue) up for the whole run; every company on the mock provider at 0 ms,
so the routings the jobs make are synced as they come in both phases, as in production.

1. **Single endpoint.** ``--single-jobs`` jobs posted by the shared closed-loop load generator
   (``../shared/bench/loadgen.py``) at ``--concurrency``, each with its own company's key.
   jobs/s = 2xx responses / loadgen's wall time.
2. **Ingestion.** ``--jobs`` jobs with distinct external ids in batches of ``--batch-size``,
   each batch one company's (posted with its key), posted back to back. jobs/s = jobs / (first
   POST -> the last batch's ``completed_at``). Checked: every job created once, none invalid.
3. **Resubmission.** The same batches again: every item must be reported a duplicate of the
   job its external id made in phase 2, and no job created.

Between phases the workers drain the syncs still due, so a phase starts with an idle outbox.
The target: ingestion jobs/s >= ``--min-ratio`` (0.9) x the single endpoint's jobs/s.

    flock /tmp/bench.lock .venv/bin/python bench/ingestion.py --ref HEAD     # about 6 minutes
    flock /tmp/bench.lock .venv/bin/python bench/ingestion.py --companies 200 --jobs 2000 \\
        --single-jobs 600                                                    # smoke

Needs PostgreSQL (superuser, trust auth; psql on the PATH) and Redis on localhost. It drops and
recreates ``<--db>_<companies>`` (default ``tradeengage_ingestbench_10000``) and flushes the
Redis database of ``--redis-url`` (db 9) at the start and the end; ``--keep`` leaves both at
the end. Exit status 0 when every target passes, 1 when one fails, 2 when the run could not be
done. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    REPO,
    BenchError,
    Server,
    cpu_snapshot,
    export_ref,
    fmt,
    http,
    log,
    machine_info,
    machine_lines,
    markdown_table,
    redis_flushdb,
    steal_ticks,
    tail,
)
from testbed import JOBS_PATH, Testbed

INGEST_PATH = "/api/v1/ingestion/jobs"
DETAIL_PATH = "/api/v1/ingestion/{}"
QUEUES = "critical,high,default,low,webhooks"
SOURCE = "bench"
WARMUP_SOURCE = "bench-warmup"


class IngestTestbed(Testbed):
    """The create_jobs testbed for our app alone, with the workers' settings in its env."""

    def our_env(self, db: str) -> dict:
        env = super().our_env(db)
        port = self.args.port
        env.update(
            # Every company on the mock provider, answering at once.
            MOCK_PROVIDER_LATENCY_MS="0",
            # Provider calls run in this many threads per worker, each may hold a database
            # connection (the mock provider writes): at 0 ms eight are plenty, and the default
            # 32 per worker took the shared server past max_connections (100) with other
            # people's tests running.
            SYNC_CALL_CONCURRENCY=str(self.args.call_concurrency),
            SYNC_UNCONFIGURED_WITH_MOCK="true",
            # seed_demo stores this in its simulator-backed companies' settings: our own
            # gunicorn, never whatever else listens on 8000.
            DEMO_BASE_URL=f"http://127.0.0.1:{port}",
            INGESTION_MAX_JOBS=str(max(self.args.batch_size, 500)),
        )
        env.update(self.args.extra_env)
        return env


class Workers:
    """``count`` Celery worker processes, each in its own process group (harness.Server)."""

    def __init__(self, testbed: Testbed, db: str, args):
        self.testbed, self.db, self.args = testbed, db, args
        self.servers: list[Server] = []

    def start(self) -> None:
        a = self.args
        for index in range(a.workers):
            log_path = self.testbed.work / f"worker-{index}.log"
            server = Server(
                f"worker {index}",
                0,
                [
                    self.testbed.python,
                    "-m",
                    "celery",
                    "-A",
                    "tradeengage",
                    "worker",
                    "-Q",
                    QUEUES,
                    "--pool",
                    a.pool,
                    "--concurrency",
                    a.worker_concurrency,
                    "--loglevel",
                    a.worker_loglevel,
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                    "--hostname",
                    f"ingestbench-{index}@%h",
                ],
                cwd=self.testbed.app,
                # Celery's --loglevel sets the root logger's level: WARNING, as gunicorn's
                # LOG_LEVEL, so neither side logs a line per job.
                env=self.testbed.our_env(self.db),
                log_path=log_path,
            )
            self.servers.append(server)
            server.start()
            deadline = time.monotonic() + 90
            # Ready when it waits on the broker: one more client of our Redis db in BRPOP (its
            # "ready." line is logged at INFO, and the workers log at WARNING, as gunicorn).
            while redis_blocked_clients(a.redis_url) <= index:
                if not server.alive() or time.monotonic() > deadline:
                    raise BenchError(f"worker {index} did not start:\n{tail(log_path)}")
                time.sleep(0.2)
        log(f"{a.workers} worker(s) ready ({a.pool} pool, concurrency {a.worker_concurrency})")

    def check_alive(self) -> None:
        for server in self.servers:
            if not server.alive():
                raise BenchError(f"{server.name} exited:\n{tail(server.log_path)}")

    def stop(self) -> None:
        while self.servers:
            self.servers.pop().stop(timeout=20)

    @property
    def pgids(self) -> set[int]:
        return {s.pgid for s in self.servers if s.pgid}


def redis_blocked_clients(url: str) -> int:
    """Clients of the Redis database in ``url`` blocked in BRPOP (idle Celery consumers)."""
    parts = urlsplit(url)
    db = (parts.path or "/0").lstrip("/") or "0"
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 5) as s:
            s.sendall(b"*2\r\n$6\r\nCLIENT\r\n$4\r\nLIST\r\n")
            data = b""
            while b"\r\n" not in data:
                data += s.recv(65536)
            header, _, rest = data.partition(b"\r\n")
            size = int(header[1:])
            while len(rest) < size:
                chunk = s.recv(65536)
                if not chunk:
                    break
                rest += chunk
    except (OSError, ValueError):
        return 0
    return sum(
        1
        for line in rest[:size].decode(errors="replace").splitlines()
        if f" db={db} " in f" {line} " and " cmd=brpop " in f" {line} "
    )


def postgres_backends() -> dict[str, int]:
    """PostgreSQL's backends by database, from their process titles (no connection needed)."""
    counts: dict[str, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            words = Path(f"/proc/{entry.name}/cmdline").read_bytes().replace(b"\0", b" ").split()
        except OSError:
            continue
        if len(words) >= 5 and words[0] == b"postgres:" and b"(" in words[4]:
            name = words[3].decode(errors="replace")
            counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


class Bench:
    def __init__(self, args, testbed: IngestTestbed):
        self.args = args
        self.testbed = testbed
        self.n = args.companies
        self.db = testbed.our_db(self.n)
        self.pg = testbed.pg
        self.workers = Workers(testbed, self.db, args)
        self.server: Server | None = None
        self.data: dict = {}
        self.data_path: Path | None = None
        self.autovacuum: bool | None = None
        self.result: dict = {"rounds": []}

    # -- helpers

    def sql(self, statement: str) -> str:
        """psql, tried again for a while when the shared server is out of connections."""
        for attempt in range(120):
            try:
                return self.pg.sql(statement, db=self.db)
            except BenchError as exc:
                if "too many clients" not in str(exc) or attempt == 119:
                    raise
                log(f"PostgreSQL has no connection left ({postgres_backends()}); again in 1 s")
                time.sleep(1)
        raise AssertionError("unreachable")

    def ints(self, statement: str) -> list[int]:
        return [int(v or 0) for v in self.sql(statement).split("|")]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def analyze(self) -> None:
        """ANALYZE before each phase when the server runs without autovacuum (create_jobs.py's
        "Statistics": foreign-key checks planned against a one-page jobs table keep scanning)."""
        if self.autovacuum is None:
            self.autovacuum = self.pg.sql("SHOW autovacuum") == "on"
            if not self.autovacuum:
                log("autovacuum is off on this server: ANALYZE before every phase stands in")
        if not self.autovacuum:
            self.sql("ANALYZE")

    def table_counts(self) -> dict[str, int]:
        jobs, routings, events = self.ints(
            "SELECT (SELECT count(*) FROM jobs_job), (SELECT count(*) FROM routing_jobrouting),"
            " (SELECT count(*) FROM routing_outboxevent)"
        )
        return {"jobs": jobs, "routings": routings, "outbox_events": events}

    def drain(self, label: str) -> dict:
        """Wait until no outbox event is claimed or due (syncs, chunks); retries scheduled later
        (the demo network's deliberately failing companies) are left to come due."""
        started = time.monotonic()
        while True:
            self.workers.check_alive()
            busy, later = self.ints(
                "SELECT count(*) FILTER (WHERE status = 'processing' OR (status = 'pending'"
                " AND available_at <= now())), count(*) FILTER (WHERE status = 'pending'"
                " AND available_at > now()) FROM routing_outboxevent"
            )
            if busy == 0:
                break
            if time.monotonic() - started > self.args.timeout:
                raise BenchError(f"{label}: {busy} outbox events still due after the timeout")
            time.sleep(0.5)
        seconds = time.monotonic() - started
        synced, pending, failed = self.ints(
            "SELECT count(*) FILTER (WHERE sync_status = 'synced'),"
            " count(*) FILTER (WHERE sync_status IN ('pending', 'processing')),"
            " count(*) FILTER (WHERE sync_status = 'failed') FROM routing_jobrouting"
        )
        log(
            f"{label}: outbox drained in {seconds:.1f} s (routings synced {synced}, "
            f"waiting {pending}, failed {failed}; retries scheduled later {later})"
        )
        return {"seconds": round(seconds, 2), "routings_synced": synced, "retries_later": later}

    def cpu_begin(self) -> tuple:
        return cpu_snapshot(), os.times(), steal_ticks(), time.monotonic()

    def cpu_end(self, begin: tuple, jobs: int) -> dict:
        before, times_before, steal_before, started = begin
        after, times_after, steal_after = cpu_snapshot(), os.times(), steal_ticks()
        elapsed = time.monotonic() - started
        split = {"gunicorn": 0.0, "workers": 0.0, "postgres": 0.0, "redis": 0.0, "foreign": 0.0}
        me, workers = os.getpid(), self.workers.pgids
        for pid, (pgid, comm, cpu) in after.items():
            used = cpu - (before[pid][2] if pid in before else 0.0)
            if pid == me or (pgid == os.getpgrp() and comm in ("psql", "python", "python3")):
                continue
            if pgid == self.server.pgid:
                split["gunicorn"] += used
            elif pgid in workers:
                split["workers"] += used
            elif comm == "postgres":
                # Other people's databases on the same server (tests) are their work, not ours.
                split["postgres" if self.postgres_ours(pid) else "foreign"] += used
            elif comm.startswith("redis-server"):
                split["redis"] += used
            else:
                split["foreign"] += used
        split["bench"] = (
            times_after.user
            + times_after.system
            + times_after.children_user
            + times_after.children_system
            - (
                times_before.user
                + times_before.system
                + times_before.children_user
                + times_before.children_system
            )
        )
        capacity = len(os.sched_getaffinity(0)) * elapsed
        app = split["gunicorn"] + split["workers"] + split["postgres"] + split["redis"]
        return {
            "seconds": {k: round(v, 2) for k, v in split.items()},
            "ms_per_job": {k: round(v / max(jobs, 1) * 1000, 2) for k, v in split.items()},
            "app_ms_per_job": round(app / max(jobs, 1) * 1000, 2),
            "busy_share": round(sum(split.values()) / capacity, 3),
            "foreign_share": round(split["foreign"] / capacity, 3),
            "steal_share": round(
                (steal_after[0] - steal_before[0]) / max(steal_after[1] - steal_before[1], 1), 3
            ),
        }

    def postgres_ours(self, pid: int) -> bool:
        """A PostgreSQL process serving our database, or one of the server's own (checkpointer,
        WAL writer, ...): not a backend of another database."""
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            return True
        words = title.split()
        # "postgres: 15/main: <user> <database> <client> <state>" for a backend.
        if len(words) >= 5 and ("(" in words[4] or words[4] == "[local]"):
            return words[3] == self.db
        return True

    def log_cpu(self, label: str, cpu: dict) -> None:
        per = cpu["ms_per_job"]
        log(
            f"{label} cpu ms/job: gunicorn {per['gunicorn']}, workers {per['workers']}, "
            f"postgres {per['postgres']}, redis {per['redis']} (app {cpu['app_ms_per_job']}); "
            f"machine busy {cpu['busy_share']:.0%}, other processes {cpu['foreign_share']:.0%}, "
            f"steal {cpu['steal_share']:.0%}"
        )

    # -- setting up

    def set_up(self) -> None:
        network = self.testbed.build(self.n, 0)
        _, self.server, self.data_path = network["sides"][0]
        self.data = json.loads(self.data_path.read_text())
        self.result["network"] = network["size"]
        self.workers.start()
        self.result["sanity_drain"] = self.drain("sanity job")

    # -- phase 1: POST /api/v1/jobs/

    def loadgen(self, label: str, requests: int, seed: int, out: Path) -> dict:
        a = self.args
        cmd = [
            self.testbed.python,
            self.testbed.loadgen_path,
            "--url",
            self.base,
            "--path",
            JOBS_PATH,
            "--data",
            self.data_path,
            "-c",
            a.concurrency,
            "-d",
            600,
            "-n",
            requests,
            "--seed",
            seed,
            "--skills-per-job",
            "1-2",
            "--json-out",
            out,
        ]
        log(f"{label}: loadgen c={a.concurrency}, {requests} jobs")
        proc = subprocess.run(
            [str(c) for c in cmd], capture_output=True, text=True, timeout=700, check=False
        )
        for line in proc.stdout.splitlines():
            log(f"    {line}")
        if proc.returncode != 0:
            raise BenchError(f"loadgen failed ({proc.returncode}): {proc.stderr[-2000:]}")
        return json.loads(out.read_text())

    def phase_single(self, tag: str) -> dict:
        a = self.args
        self.analyze()
        before = self.table_counts()
        begin = self.cpu_begin()
        run = self.loadgen(
            f"single endpoint{tag}", a.single_jobs, a.seed, self.testbed.work / f"single{tag}.json"
        )
        # The CPU window runs until the phase's syncs are drained, in both phases: each job's
        # cost includes its routings' syncs.
        drained = self.drain("single endpoint")
        cpu = self.cpu_end(begin, run["ok_2xx"])
        after = self.table_counts()
        self.workers.check_alive()
        jobs = after["jobs"] - before["jobs"]
        rate = run["ok_2xx"] / run["duration_s"]
        errors = sum(run["errors_by_status"].values()) + sum(run["transport_errors"].values())
        self.log_cpu("single endpoint", cpu)
        log(f"single endpoint: {rate:.1f} jobs/s ({run['ok_2xx']} in {run['duration_s']} s)")
        phase = {
            "jobs": run["ok_2xx"],
            "jobs_stored": jobs,
            "seconds": run["duration_s"],
            "jobs_per_s": round(rate, 2),
            "errors": errors,
            "latency_ms": run["latency_ms"],
            "status_counts": run["status_counts"],
            "error_samples": run["error_samples"],
            "routings_per_job": round((after["routings"] - before["routings"]) / max(jobs, 1), 2),
            "cpu": cpu,
            "drain_after": drained,
        }
        return phase

    # -- phases 2 and 3: POST /api/v1/ingestion/jobs

    def make_batches(self, count: int, size: int, source: str, tag: str, seed: int) -> list:
        """``count`` batches of ``size`` jobs, each of one company (its own key), bodies built
        the way loadgen builds them (loadgen.BodyFactory), external ids distinct."""
        self.testbed.body(self.data)  # loads the shared loadgen module
        factory_class = self.testbed._loadgen.BodyFactory
        rng = random.Random(seed)
        pairs = [p for p in self.data["pairs"] if p.get("api_key")]
        if len(pairs) < count:
            raise BenchError(f"{count} batches need {count} companies with keys, {len(pairs)}")
        batches = []
        for index, pair in enumerate(rng.sample(pairs, count)):
            data = {"pairs": [pair], "skills": self.data["skills"], "levels": self.data["levels"]}
            factory = factory_class(data, random.Random(rng.random()), (1, 2))
            jobs = []
            for position in range(size):
                job = json.loads(factory.make())
                job["external_id"] = f"{tag}-{index:03d}-{position:05d}"
                jobs.append(job)
            body = json.dumps({"source": source, "jobs": jobs}, separators=(",", ":")).encode()
            batches.append({"key": pair["api_key"], "company_id": pair["company_id"], "body": body})
        return batches

    def post_batches(self, batches: list) -> tuple[float, list[dict]]:
        """Post every batch back to back; (the first POST's wall-clock start, per batch)."""
        posted = []
        first = None
        for batch in batches:
            sent = time.time()
            first = first or sent
            started = time.perf_counter()
            status, text = http(
                "POST",
                self.base + INGEST_PATH,
                batch["body"],
                timeout=120,
                headers={"X-API-Key": batch["key"]},
            )
            latency = time.perf_counter() - started
            if status != 202:
                raise BenchError(f"POST {INGEST_PATH} answered {status}: {text[:1000]}")
            data = json.loads(text)["data"]
            posted.append(
                {
                    "id": data["ingestion_id"],
                    "key": batch["key"],
                    "sent": sent,
                    "post_ms": round(latency * 1000, 1),
                    "received": data["jobs_received"],
                    "queued": data["jobs_queued"],
                }
            )
        return first, posted

    def wait_completed(self, posted: list[dict], label: str) -> list[dict]:
        """Poll the database (cheaply, once a second) until every batch is completed; the
        batches' completed_at, which the worker that completes each one writes, is the end."""
        ids = ",".join(f"'{b['id']}'" for b in posted)
        started = time.monotonic()
        while True:
            self.workers.check_alive()
            done, total = self.ints(
                "SELECT count(*) FILTER (WHERE status <> 'processing'), count(*)"
                f" FROM jobs_ingestionbatch WHERE id IN ({ids})"
            )
            if done == total == len(posted):
                break
            if time.monotonic() - started > self.args.timeout:
                raise BenchError(f"{label}: {total - done} batches not completed in time")
            time.sleep(self.args.poll)
        rows = self.sql(
            "SELECT id, status, extract(epoch FROM completed_at), extract(epoch FROM created_at)"
            f" FROM jobs_ingestionbatch WHERE id IN ({ids})"
        ).splitlines()
        by_id = {}
        for row in rows:
            batch_id, status, completed, created = row.split("|")
            by_id[batch_id] = (status, float(completed), float(created))
        for b in posted:
            b["status"], b["completed_at"], b["created_at"] = by_id[b["id"]]
        return posted

    def items_timeline(self, posted: list[dict], first: float) -> dict:
        """When the workers processed the items (their processed_at): the lag before the first,
        and the rate between the 10th and 90th percentile of items, in seconds from the first
        POST."""
        ids = ",".join(f"'{b['id']}'" for b in posted)
        values = self.sql(
            f"SELECT min(t), percentile_cont(0.1) WITHIN GROUP (ORDER BY t),"
            f" percentile_cont(0.9) WITHIN GROUP (ORDER BY t), max(t), count(*) FROM ("
            f" SELECT extract(epoch FROM processed_at) - {first} AS t FROM jobs_ingestionitem"
            f" WHERE batch_id IN ({ids}) AND processed_at IS NOT NULL) items"
        ).split("|")
        t_min, t10, t90, t_max, count = (float(v) for v in values)
        middle = 0.8 * count / (t90 - t10) if t90 > t10 else None
        return {
            "first_item_s": round(t_min, 2),
            "last_item_s": round(t_max, 2),
            "items_per_s_p10_p90": round(middle, 1) if middle else None,
        }

    def item_counts(self, posted: list[dict]) -> dict:
        ids = ",".join(f"'{b['id']}'" for b in posted)
        counts = {"queued": 0, "created": 0, "duplicate": 0, "invalid": 0}
        for row in self.sql(
            f"SELECT status, count(*) FROM jobs_ingestionitem WHERE batch_id IN ({ids})"
            " GROUP BY status"
        ).splitlines():
            status, number = row.split("|")
            counts[status] = int(number)
        return counts

    def api_check(self, posted: list[dict], expected: dict) -> list[str]:
        """GET each batch (after the measurement) and compare its status and counts."""
        problems = []
        for b in posted:
            status, text = http(
                "GET", self.base + DETAIL_PATH.format(b["id"]), None, 60, {"X-API-Key": b["key"]}
            )
            if status != 200:
                problems.append(f"GET {b['id']} answered {status}: {text[:300]}")
                continue
            data = json.loads(text)["data"]
            counts = {k: data["counts"].get(k) for k in expected}
            if data["status"] != "completed" or counts != expected:
                problems.append(f"batch {b['id']}: {data['status']} {data['counts']}")
        return problems

    def ingest(self, label: str, batches: list, jobs: int) -> dict:
        before = self.table_counts()
        begin = self.cpu_begin()
        first, posted = self.post_batches(batches)
        posted_all = time.time()
        log(f"{label}: {len(posted)} batches posted in {posted_all - first:.1f} s")
        self.wait_completed(posted, label)
        end = max(b["completed_at"] for b in posted)
        drained = self.drain(label)
        cpu = self.cpu_end(begin, jobs)
        after = self.table_counts()
        seconds = end - first
        post_ms = [b["post_ms"] for b in posted]
        to_completed = [b["completed_at"] - b["sent"] for b in posted]
        phase = {
            "batches": len(posted),
            "jobs": jobs,
            "seconds": round(seconds, 2),
            "jobs_per_s": round(jobs / seconds, 2),
            "posting_seconds": round(posted_all - first, 2),
            "post_ms": {
                "p50": round(percentile(post_ms, 50), 1),
                "max": round(max(post_ms), 1),
                "each": post_ms,
            },
            "post_to_completed_s": {
                "p50": round(percentile(to_completed, 50), 2),
                "max": round(max(to_completed), 2),
            },
            "statuses": sorted({b["status"] for b in posted}),
            "jobs_added": after["jobs"] - before["jobs"],
            "routings_per_job": round(
                (after["routings"] - before["routings"]) / max(after["jobs"] - before["jobs"], 1),
                2,
            ),
            "timeline": self.items_timeline(posted, first),
            "items": self.item_counts(posted),
            "cpu": cpu,
            "drain_after": drained,
        }
        self.log_cpu(label, cpu)
        log(
            f"{label}: {jobs} jobs in {seconds:.1f} s = {phase['jobs_per_s']:.1f} jobs/s; POST "
            f"p50 {phase['post_ms']['p50']} ms, max {phase['post_ms']['max']} ms; items "
            f"{phase['items']}; timeline {phase['timeline']}"
        )
        phase["posted"] = [{k: v for k, v in b.items() if k != "key"} for b in posted]
        return phase, posted

    def phase_ingest(self, round_index: int) -> tuple[dict, list, list]:
        """Phase 2 of a round: fresh batches (source ``bench``, ``bench-2``, ... by round)."""
        a = self.args
        source = SOURCE if round_index == 0 else f"{SOURCE}-{round_index + 1}"
        batches = self.make_batches(
            a.jobs // a.batch_size, a.batch_size, source, source, a.seed + 3 + round_index
        )
        self.analyze()
        phase, posted = self.ingest("ingestion", batches, a.jobs)
        ids = ",".join(repr(b["id"]) for b in posted)
        jobs, distinct, items_jobs = self.ints(
            "SELECT count(*), count(DISTINCT (created_by_company_id, external_id)),"
            " (SELECT count(DISTINCT job_id) FROM jobs_ingestionitem WHERE status = 'created'"
            f" AND batch_id IN ({ids})) FROM jobs_job WHERE source = '{source}'"
        )
        phase["source"] = source
        phase["check"] = {
            "jobs_with_source": jobs,
            "distinct_external_ids": distinct,
            "items_distinct_jobs": items_jobs,
            "api": self.api_check(
                posted, {"queued": 0, "created": a.batch_size, "duplicate": 0, "invalid": 0}
            ),
        }
        phase["once"] = (
            jobs == distinct == items_jobs == a.jobs
            and phase["items"] == {"queued": 0, "created": a.jobs, "duplicate": 0, "invalid": 0}
            and not phase["check"]["api"]
        )
        log(f"ingestion check: {phase['check']}, once: {phase['once']}")
        return phase, batches, posted

    def phase_resubmit(self, source: str, batches: list, posted: list) -> dict:
        """Phase 3: the last round's batches again; every item a duplicate of its first job."""
        a = self.args
        self.analyze()
        again, reposted = self.ingest("resubmission", batches, a.jobs)
        first_ids = ",".join(repr(b["id"]) for b in posted)
        again_ids = ",".join(repr(b["id"]) for b in reposted)
        jobs_after, same_job = self.ints(
            f"SELECT (SELECT count(*) FROM jobs_job WHERE source = '{source}'),"
            " (SELECT count(*) FROM jobs_ingestionitem d JOIN jobs_ingestionitem c"
            f" ON c.external_id = d.external_id AND c.batch_id IN ({first_ids})"
            f" WHERE d.batch_id IN ({again_ids}) AND d.status = 'duplicate'"
            " AND d.job_id = c.job_id)"
        )
        again["check"] = {
            "jobs_with_source": jobs_after,
            "duplicates_of_first_job": same_job,
            "api": self.api_check(
                reposted, {"queued": 0, "created": 0, "duplicate": a.batch_size, "invalid": 0}
            ),
        }
        again["passed"] = (
            jobs_after == a.jobs
            and same_job == a.jobs
            and again["jobs_added"] == 0
            and again["items"] == {"queued": 0, "created": 0, "duplicate": a.jobs, "invalid": 0}
            and not again["check"]["api"]
        )
        log(f"resubmission check: {again['check']}, passed: {again['passed']}")
        return again

    def warm_up(self) -> None:
        """loadgen's warm-up jobs through gunicorn, and one small batch through the workers."""
        a = self.args
        if a.warmup_jobs:
            self.loadgen("warm-up", a.warmup_jobs, a.seed + 1, self.testbed.work / "warmup.json")
            self.drain("warm-up")
        if a.warmup_batch:
            warm = self.make_batches(1, a.warmup_batch, WARMUP_SOURCE, "warm", a.seed + 2)
            _, posted = self.post_batches(warm)
            self.wait_completed(posted, "ingestion warm-up")
            self.drain("ingestion warm-up")

    def measure(self) -> None:
        """Set up, warm up, then each round: the single endpoint, then ingestion (the order
        alternating between rounds, so drift over a run hits both alike); then the last
        round's batches again."""
        a = self.args
        self.set_up()
        self.warm_up()
        rounds = self.result["rounds"]
        for r in range(a.rounds):
            tag = f" (round {r + 1}/{a.rounds})" if a.rounds > 1 else ""
            log(f"=== round {r + 1} of {a.rounds}")
            entry = {}
            rounds.append(entry)
            order = ("single", "ingestion") if r % 2 == 0 else ("ingestion", "single")
            for name in order:
                if name == "single":
                    entry["single"] = self.phase_single(f"-r{r + 1}" if tag else "")
                else:
                    entry["ingestion"], batches, posted = self.phase_ingest(r)
            entry["ratio"] = round(
                entry["ingestion"]["jobs_per_s"] / entry["single"]["jobs_per_s"], 3
            )
            log(f"round {r + 1}: ratio {entry['ratio']:.2f}")
        last = rounds[-1]["ingestion"]
        self.result["resubmission"] = self.phase_resubmit(last["source"], batches, posted)
        self.workers.stop()
        self.result["log_errors"] = self.log_problems()
        if a.worker_loglevel.upper() in ("INFO", "DEBUG"):
            self.result["ingest_tasks"] = self.ingest_tasks()

    def ingest_tasks(self) -> list[dict]:
        """Each ingest_items task's runtime and outcome counts, from the workers' INFO logs."""
        tasks = []
        for i in range(self.args.workers):
            path = self.testbed.work / f"worker-{i}.log"
            for line in path.read_text(errors="replace").splitlines():
                if "jobs.tasks.ingest_items" not in line or "succeeded in" not in line:
                    continue
                try:
                    entry = json.loads(line)
                    data = entry["data"]
                    tasks.append(
                        {
                            "worker": i,
                            "finished": entry.get("timestamp"),
                            "seconds": round(float(data["runtime"]), 2),
                            "counts": data["return_value"],
                        }
                    )
                except (ValueError, KeyError, TypeError):
                    tasks.append({"worker": i, "line": line[:300]})
        return tasks

    def log_problems(self) -> dict:
        """Lines at ERROR or CRITICAL in the workers' and gunicorn's logs."""
        found = {}
        paths = [s.log_path for s in [self.server] if s] + [
            self.testbed.work / f"worker-{i}.log" for i in range(self.args.workers)
        ]
        for path in paths:
            try:
                lines = path.read_text(errors="replace").splitlines()
            except OSError:
                continue
            bad = [ln for ln in lines if "ERROR" in ln or "CRITICAL" in ln or "Traceback" in ln]
            if bad:
                found[path.name] = {"count": len(bad), "first": bad[:3]}
        return found


def cpu_row(label: str, phase: dict) -> list[str]:
    per = phase["cpu"]["ms_per_job"]
    return [
        label,
        fmt(per["gunicorn"], 2),
        fmt(per["workers"], 2),
        fmt(per["postgres"], 2),
        fmt(per["redis"], 2),
        fmt(phase["cpu"]["app_ms_per_job"], 2),
        fmt(per["bench"], 2),
        f"{phase['cpu']['busy_share']:.0%}",
        f"{phase['cpu']['foreign_share']:.0%}",
        str(phase["routings_per_job"]),
    ]


def report(args, machine: dict, result: dict) -> tuple[list[str], dict]:
    rounds = [r for r in result["rounds"] if "ratio" in r]
    again = result.get("resubmission")
    lines = ["", *machine_lines(machine)]
    lines.append(
        f"Setup:   {args.companies:,} companies; gunicorn -w {args.gunicorn_workers}; "
        f"{args.workers} Celery worker processes ({args.pool} pool x {args.worker_concurrency}, "
        f"queues {QUEUES}, log level {args.worker_loglevel}, {args.call_concurrency} provider-call "
        "threads each) up in every phase, syncing each routing to the mock provider at 0 ms; "
        "no beat" + (f"; settings {dict(args.env)}" if args.env else "")
    )
    lines.append(
        f"Phases:  POST {JOBS_PATH}: {args.single_jobs:,} jobs by loadgen at c={args.concurrency}; "
        f"ingestion: {args.jobs:,} jobs in {args.jobs // args.batch_size} batches of "
        f"{args.batch_size} posted back to back, first POST -> last batch completed"
    )
    lines.append("")
    rows = []
    for index, r in enumerate(rounds, 1):
        single, ingest = r["single"], r["ingestion"]
        rows.append(
            [
                str(index),
                fmt(single["jobs_per_s"], 1),
                fmt(single["latency_ms"]["p50"], 1),
                fmt(single["latency_ms"]["p99"], 1),
                fmt(ingest["jobs_per_s"], 1),
                fmt(ingest["seconds"], 1),
                f"{r['ratio']:.2f}",
                fmt(ingest["post_ms"]["p50"], 0),
                fmt(ingest["post_ms"]["max"], 0),
                fmt(ingest["post_to_completed_s"]["p50"], 1),
                fmt(ingest["post_to_completed_s"]["max"], 1),
            ]
        )
    if again:
        rows.append(
            [
                "resubmit",
                "",
                "",
                "",
                fmt(again["jobs_per_s"], 1),
                fmt(again["seconds"], 1),
                "",
                fmt(again["post_ms"]["p50"], 0),
                fmt(again["post_ms"]["max"], 0),
                fmt(again["post_to_completed_s"]["p50"], 1),
                fmt(again["post_to_completed_s"]["max"], 1),
            ]
        )
    if rows:
        lines += markdown_table(
            [
                "round",
                "single jobs/s",
                "p50 ms",
                "p99 ms",
                "ingest jobs/s",
                "ingest s",
                "ratio",
                "batch POST p50 ms",
                "POST max ms",
                "POST->done p50 s",
                "POST->done max s",
            ],
            rows,
        )
        lines += ["", "CPU per job (ms) by process, during each phase:"]
        cpu_rows = []
        for index, r in enumerate(rounds, 1):
            cpu_rows.append(cpu_row(f"{index}: single", r["single"]))
            cpu_rows.append(cpu_row(f"{index}: ingestion", r["ingestion"]))
        if again:
            cpu_rows.append(cpu_row("resubmission", again))
        lines += markdown_table(
            [
                "phase",
                "gunicorn",
                "workers",
                "postgres",
                "redis",
                "app total",
                "bench+loadgen",
                "machine busy",
                "other work",
                "routings/job",
            ],
            cpu_rows,
        )
        lines.append("")
    for label, phase in [(f"ingestion {i}", r["ingestion"]) for i, r in enumerate(rounds, 1)] + (
        [("resubmission", again)] if again else []
    ):
        t = phase["timeline"]
        lines.append(
            f"{label}: posted in {phase['posting_seconds']} s; items processed from "
            f"{t['first_item_s']} s to {t['last_item_s']} s after the first POST, "
            f"{t['items_per_s_p10_p90']} items/s between the 10th and 90th percentile; "
            f"items {phase['items']}; syncs drained {phase['drain_after']['seconds']} s after"
        )
    for index, r in enumerate(rounds, 1):
        first = r["ingestion"]["posted"][0]["sent"]
        lines.append(
            f"ingestion {index}: each batch posted -> completed, s after the first POST: "
            + ", ".join(
                f"{b['sent'] - first:.1f}->{b['completed_at'] - first:.1f}"
                for b in r["ingestion"]["posted"]
            )
        )
        cpu_single = r["single"]["cpu"]["app_ms_per_job"]
        cpu_ingest = r["ingestion"]["cpu"]["app_ms_per_job"]
        lines.append(
            f"ingestion {index}: app CPU per job (gunicorn + workers + PostgreSQL + Redis, syncs "
            f"included) {cpu_ingest:.2f} ms against {cpu_single:.2f} ms through POST "
            f"{JOBS_PATH}: {cpu_ingest / cpu_single:.2f} x"
        )
    if result.get("ingest_tasks"):
        tasks = result["ingest_tasks"]
        lines.append(
            f"ingest_items tasks: {len(tasks)}: "
            + ", ".join(
                f"{t.get('counts')} in {t.get('seconds')} s (w{t['worker']})" for t in tasks
            )
        )
    if result.get("log_errors"):
        lines.append(f"errors in logs: {json.dumps(result['log_errors'])[:1500]}")

    verdict = []
    ratio = statistics.median(r["ratio"] for r in rounds) if rounds else None
    if rounds:
        each = ", ".join(f"{r['ratio']:.2f}" for r in rounds)
        verdict.append(
            {
                "target": f"ingestion jobs/s >= {args.min_ratio} x POST {JOBS_PATH} jobs/s "
                f"(ratio {ratio:.3f}" + (f", the median of {each})" if len(rounds) > 1 else ")"),
                "pass": ratio >= args.min_ratio,
            }
        )
        errors = sum(r["single"]["errors"] for r in rounds)
        verdict.append(
            {"target": f"no errors from POST {JOBS_PATH} ({errors})", "pass": errors == 0}
        )
        verdict.append(
            {
                "target": "every ingested job created once, none invalid ("
                + "; ".join(
                    f"{r['ingestion']['items']['created']} created, "
                    f"{r['ingestion']['check']['jobs_with_source']} jobs, "
                    f"{r['ingestion']['check']['distinct_external_ids']} distinct external ids"
                    for r in rounds
                )
                + ")",
                "pass": all(r["ingestion"]["once"] for r in rounds),
            }
        )
    if again:
        verdict.append(
            {
                "target": f"resubmitted batches all duplicates of the first jobs, none created "
                f"({again['check']['duplicates_of_first_job']} of {again['jobs']}, "
                f"{again['jobs_added']} jobs added)",
                "pass": again["passed"],
            }
        )
    lines += ["", "Targets:"]
    lines += [f"  {'PASS' if v['pass'] else 'FAIL'}  {v['target']}" for v in verdict]
    passed = bool(verdict) and all(v["pass"] for v in verdict) and bool(again)
    lines.append(f"Overall: {'PASS' if passed else 'FAIL'}")
    return lines, {"ratio": ratio, "targets": verdict, "passed": passed}


def env_pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--companies", type=int, default=10000, help="network size (default 10000)")
    ap.add_argument("--jobs", type=int, default=10000, help="jobs to ingest (default 10000)")
    ap.add_argument("--batch-size", type=int, default=500, help="jobs per batch (default 500)")
    ap.add_argument(
        "--single-jobs",
        type=int,
        default=3000,
        help=f"jobs posted to POST {JOBS_PATH} in phase 1 (default 3000)",
    )
    ap.add_argument("--concurrency", type=int, default=8, help="loadgen concurrency (default 8)")
    ap.add_argument(
        "--warmup-jobs", type=int, default=300, help="single-endpoint warm-up jobs (default 300)"
    )
    ap.add_argument(
        "--warmup-batch",
        type=int,
        default=100,
        help="jobs in one ingestion warm-up batch before phase 2 (default 100; 0 = none)",
    )
    ap.add_argument("--workers", type=int, default=2, help="Celery worker processes (default 2)")
    ap.add_argument("--pool", default="threads", choices=["threads", "prefork", "solo"])
    ap.add_argument(
        "--worker-loglevel",
        default="WARNING",
        help="the workers' --loglevel (default WARNING, as gunicorn's LOG_LEVEL; INFO logs a "
        "line per job and per sync, and lets the report count the ingestion tasks)",
    )
    ap.add_argument(
        "--worker-concurrency", type=int, default=4, help="threads per worker (default 4)"
    )
    ap.add_argument(
        "--call-concurrency",
        type=int,
        default=8,
        help="SYNC_CALL_CONCURRENCY: provider-call threads per worker (default 8)",
    )
    ap.add_argument(
        "--gunicorn-workers",
        type=int,
        default=4,
        help="gunicorn workers (default 4, as create_jobs)",
    )
    ap.add_argument("--port", type=int, default=8350, help="gunicorn's port (default 8350)")
    ap.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure both phases this many times (the order alternating) and judge the "
        "median of the per-round ratios (default 1)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for a phase")
    ap.add_argument("--poll", type=float, default=1.0, help="seconds between database polls")
    ap.add_argument("--min-ratio", type=float, default=0.9)
    ap.add_argument(
        "--ref",
        help="measure this commit (exported with git archive into the work dir) instead of "
        "the work tree, so concurrent edits cannot change what is measured",
    )
    ap.add_argument(
        "--env",
        action="append",
        default=[],
        type=env_pair,
        metavar="NAME=VALUE",
        help="a setting for gunicorn and the workers, for experiments (repeatable)",
    )
    ap.add_argument(
        "--snapshot",
        action="store_true",
        help="without --ref: measure a copy of the work tree taken at the start",
    )
    ap.add_argument("--keep", action="store_true", help="leave the database and Redis at the end")
    ap.add_argument(
        "--db",
        default="tradeengage_ingestbench",
        help="database name, followed by _<companies> (dropped and recreated!)",
    )
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/9", help="flushed")
    ap.add_argument("--pg-host", default="127.0.0.1")
    ap.add_argument("--pg-port", type=int, default=5432)
    ap.add_argument("--pg-user", default="postgres")
    ap.add_argument("--venv", default=str(REPO / ".venv"))
    ap.add_argument("--shared-bench", default=str(REPO.parent / "shared" / "bench"))
    ap.add_argument("--work-dir", help="logs and data files (default: a new temp folder)")
    ap.add_argument("--json-out", help="write machine, options, every figure and the verdict")
    args = ap.parse_args(argv)
    if min(args.jobs, args.batch_size, args.single_jobs, args.workers, args.concurrency) < 1:
        ap.error("--jobs, --batch-size, --single-jobs, --workers and --concurrency must be >= 1")
    if args.jobs % args.batch_size:
        ap.error("--jobs must be a multiple of --batch-size")
    return args


def snapshot_work_tree(dest: Path) -> Path:
    """A copy of the work tree as it is now (uncommitted changes included, no git needed), so
    edits others make during the run do not change what is measured; the virtualenv stays."""
    target = dest / "app-work-tree"
    if target.exists():
        shutil.rmtree(target)
    skip = {".git", ".venv", "var", "results", "__pycache__", "node_modules", ".pytest_cache"}
    shutil.copytree(REPO, target, ignore=lambda folder, names: [n for n in names if n in skip])
    log(f"measuring the work tree as copied to {target}")
    return target


def testbed_args(args) -> SimpleNamespace:
    """What bench/testbed.py reads, for our app alone."""
    return SimpleNamespace(
        venv=args.venv,
        shared_bench=args.shared_bench,
        work_dir=args.work_dir,
        pg_host=args.pg_host,
        pg_port=args.pg_port,
        pg_user=args.pg_user,
        redis_url=args.redis_url,
        workers=args.gunicorn_workers,
        seed=args.seed,
        ref=args.ref,
        db=args.db,
        ceiling_db=args.db + "_ceiling_unused",
        port=args.port,
        ceiling_port=args.port + 1,
        skip_ceiling=True,
        keep=args.keep,
        companies=[args.companies],
        batch_size=args.batch_size,
        extra_env=dict(args.env),
        call_concurrency=args.call_concurrency,
    )


def main(argv=None) -> int:
    args = parse_args(argv)

    def terminate(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGHUP, terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)

    testbed = IngestTestbed(testbed_args(args))
    bench = Bench(args, testbed)
    try:
        testbed.preflight()
        machine = machine_info(testbed.pg, testbed.python, testbed.gunicorn, args.ref)
        if args.ref:
            testbed.app = export_ref(args.ref, testbed.work)
        elif args.snapshot:
            testbed.app = snapshot_work_tree(testbed.work)
            machine["commit"] += " (copied at the start: later edits not measured)"
        else:
            testbed.app = REPO
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in machine_lines(machine):
        print(line, flush=True)
    log(f"work dir {testbed.work}")

    failure = None
    try:
        redis_flushdb(args.redis_url)
        bench.measure()
    except BenchError as exc:
        failure = str(exc)
    except KeyboardInterrupt:
        failure = "interrupted"
    finally:
        bench.workers.stop()
        testbed.cleanup()

    lines, verdict = report(args, machine, bench.result)
    print("\n".join(lines), flush=True)
    if args.json_out:
        doc = {
            "machine": machine,
            "options": vars(args),
            "work_dir": str(testbed.work),
            "result": bench.result,
            "verdict": verdict,
            "error": failure,
        }
        Path(args.json_out).write_text(json.dumps(doc, indent=2, default=str))
        log(f"wrote {args.json_out}")
    log(f"work dir (logs, loadgen results): {testbed.work}")
    if failure:
        print(f"\nerror: the run did not complete: {failure}", file=sys.stderr)
        return 2
    return 0 if verdict["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())

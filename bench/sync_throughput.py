#!/usr/bin/env python3
"""Sync-engine benchmark: how fast real Celery workers drain a backlog of routings into the mock
provider, and how long a routing waits between its job's creation and its sync under a steady
stream of jobs.

1. **Drain.** A backlog of ``--routings`` pending routings (three per job, with their outbox
   events) is relayed and synced by ``--workers`` worker processes (threads pool), once per mock
   provider latency in ``--latencies`` (0 ms, and 800 ms: seed 001's job-creation delay).
   Reported: routings synced per second, from the first relay kick to the last routing synced.
2. **Steady.** Jobs are created in-process at ``--rate`` jobs per second for ``--steady-seconds``
   with ``job_create`` (as the API does: one transaction, then the relay kick on commit); the
   workers sync them as they come. Reported: job created -> routing synced latency p50/p95/p99.

After each phase it checks that every routing is synced exactly once at the provider (one mock
job per routing, and the create calls it took).

    .venv/bin/python bench/sync_throughput.py                    # the full run, about 3 minutes
    .venv/bin/python bench/sync_throughput.py --latencies 0 --steady-seconds 10     # quicker

Needs PostgreSQL (superuser, trust auth; psql on the PATH) and Redis on localhost. It drops and
recreates the database ``--db`` (default ``tradeengage_syncbench``) and flushes the Redis
database of ``--redis-url`` (default db 13); ``--keep`` leaves the database at the end. Exit
status 0 when every target passes, 1 when one fails, 2 when the run could not be done.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    BENCH_FIELD_ENCRYPTION_KEYS,
    REPO,
    BenchError,
    Postgres,
    log,
    machine_info,
    machine_lines,
    redis_flushdb,
    run,
    tail,
)

TARGETS = {
    "drain_0ms": 500.0,  # routings/s at 0 ms provider latency
    "drain_800ms": 60.0,  # routings/s at 800 ms
    # Issue 20: the drain at seed 001's 800 ms, as a share of the 0 ms drain of the same run.
    "drain_800ms_over_0ms": 0.5,
    "steady_p99_ms": 2000.0,  # job created -> routing synced, p99, at 50 jobs/s
}


# --------------------------------------------------------------------------- Django side


def driver(argv: list[str]) -> None:
    """The part that runs inside Django (``sync_throughput.py --driver ...``)."""
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradeengage.settings")
    import django  # only the driver side needs Django; the measuring side runs without it

    django.setup()
    command, *rest = argv
    commands = {"reset": _reset, "backlog": _backlog, "kick": _kick, "steady": _steady}
    commands["hang"] = _hang
    commands["policy"] = _policy
    commands[command](*rest)


def _reset(latency_ms: str) -> None:
    # Application modules load only once driver() has set Django up.
    from integrations.models import MockJob
    from jobs.models import Company, Job
    from routing.models import JobRouting, OutboxEvent, SyncAttempt

    for model in (SyncAttempt, OutboxEvent, JobRouting, MockJob):
        model.objects.all().delete()
    Job.objects.all().delete()
    Company.objects.update(
        provider_type="mock",
        provider_settings={"latency_ms": int(latency_ms)},
        open_routing_count=0,
    )


def _backlog(count: str) -> None:
    """``count`` pending routings with their events, three per job, as job creation leaves
    them (written in bulk: the backlog's creation is not what is measured)."""
    # Application modules load only once driver() has set Django up.
    from django.db import transaction

    from jobs.models import Company, Job, Technician
    from routing.models import JobRouting, OutboxEvent

    count = int(count)
    companies = list(Company.objects.all())
    technician = Technician.objects.select_related("company").first()
    with transaction.atomic():
        jobs = Job.objects.bulk_create(
            Job(
                summary=f"Backlog job {n}",
                street="456 Oak Avenue",
                city="Springfield",
                state="IL",
                zip_code="62701",
                homeowner_name="Jane Smith",
                created_by_company=technician.company,
                created_by_technician=technician,
            )
            for n in range(math.ceil(count / 3))
        )
        routings = JobRouting.objects.bulk_create(
            JobRouting(job=jobs[n // 3], company=companies[n % len(companies)])
            for n in range(count)
        )
        OutboxEvent.objects.bulk_create(
            (OutboxEvent.for_routing(routing) for routing in routings), batch_size=1000
        )


def _kick() -> None:
    # Application modules load only once driver() has set Django up.
    from routing.tasks import relay_outbox

    relay_outbox.delay()


def _hang(share: str, data_path: str) -> None:
    """Reset for the isolation phase and make companies that receive about ``share`` of the
    routings hang until the provider timeout (their mock's latency far beyond it); prints their
    ids and share. The shares are the routings' of the phase before (the steady phase, same
    bodies and rate: ties in matching go to the least loaded, so only a real run shows who
    receives what), else those of matching a sample of the bodies."""
    # Application modules load only once driver() has set Django up.
    from django.db.models import Count

    from jobs.models import Company
    from routing.models import JobRouting

    received = dict(JobRouting.objects.values_list("company_id").annotate(n=Count("id")).order_by())
    if sum(received.values()) < 500:
        received = _sampled_shares(data_path)
    total = sum(received.values())
    wanted, chosen, taken = float(share), [], 0.0
    for company_id, count in sorted(received.items(), key=lambda item: (-item[1], str(item[0]))):
        if taken + count / total <= wanted * 1.25:
            chosen.append(company_id)
            taken += count / total
        if taken >= wanted * 0.8:
            break
    _reset("0")
    Company.objects.filter(id__in=chosen).update(provider_settings={"latency_ms": 10**7})
    print(json.dumps({"companies": [str(c) for c in chosen], "share": round(taken, 3)}))


def _policy() -> None:
    # Application modules load only once driver() has set Django up.
    from routing.retry import PROVIDER_CALL_RETRY

    print(1 + PROVIDER_CALL_RETRY.retries)


def _sampled_shares(data_path: str) -> dict:
    sys.path.insert(0, str(REPO.parent / "shared" / "bench"))
    # The shared load generator, found on the path just added; application modules load only
    # once driver() has set Django up.
    from django.conf import settings
    from loadgen import BodyFactory

    from jobs.matching import match_companies
    from jobs.selectors import managed_lists
    from jobs.services import resolve_category, resolve_skills

    bodies = BodyFactory(json.loads(Path(data_path).read_text()), random.Random(0), (1, 2))
    lists = managed_lists()
    received: dict = {}
    for _ in range(600):
        body = json.loads(bodies.make())
        for match in match_companies(
            requirements=resolve_skills(
                skill_levels=body["skill_levels"], skill_ids=lists["skills"]
            ),
            category_id=resolve_category(slug=body["category"], category_ids=lists["categories"]),
            state=body["address"]["state"],
            zip_code=body["address"]["zip_code"],
            exclude_company_id=uuid.UUID(body["created_by_company_id"]),
            limit=settings.MATCH_LIMIT,
        ):
            received[match.company_id] = received.get(match.company_id, 0) + 1
    return received


def _steady(rate: str, seconds: str, data_path: str) -> None:
    """Create jobs at ``rate`` per second for ``seconds`` with job_create, paced by the clock."""

    sys.path.insert(0, str(REPO.parent / "shared" / "bench"))
    from loadgen import BodyFactory  # the shared load generator, found on the path just added

    # Application modules load only once driver() has set Django up.
    from jobs.services import job_create

    bodies = BodyFactory(json.loads(Path(data_path).read_text()), random.Random(0), (1, 2))
    rate, seconds = float(rate), float(seconds)
    start, created = time.monotonic(), 0
    while created < rate * seconds:
        delay = start + created / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        body = json.loads(bodies.make())
        job_create(
            summary=body["summary"],
            address=body["address"],
            homeowner=body["homeowner"],
            created_by_company_id=uuid.UUID(body["created_by_company_id"]),
            created_by_technician_id=uuid.UUID(body["created_by_technician_id"]),
            skill_levels=body["skill_levels"],
            category=body["category"],
        )
        created += 1
    print(json.dumps({"jobs": created, "seconds": round(time.monotonic() - start, 2)}))


# --------------------------------------------------------------------------- the benchmark


class Bench:
    def __init__(self, args):
        self.args = args
        self.pg = Postgres(args.pg_host, args.pg_port, args.pg_user)
        self.python = Path(args.venv) / "bin" / "python"
        self.work = Path(args.work_dir or f"/tmp/tradeengage-syncbench-{int(time.time())}")
        self.work.mkdir(parents=True, exist_ok=True)
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", "/tmp"),
            "DATABASE_URL": self.pg.url(args.db),
            "REDIS_URL": args.redis_url,
            "DEBUG": "false",
            "SECRET_KEY": "sync-benchmark-only-not-a-secret-" + "x" * 40,
            "FIELD_ENCRYPTION_KEYS": BENCH_FIELD_ENCRYPTION_KEYS,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "LOG_LEVEL": "INFO",
            "LOG_FORMAT": "json",
            "SYNC_CALL_CONCURRENCY": str(args.call_concurrency),
        }
        self.workers: list[subprocess.Popen] = []

    def django(self, *argv: str, timeout: float = 900) -> str:
        return run(
            [self.python, __file__, "--driver", *argv], env=self.env, cwd=REPO, timeout=timeout
        )

    def manage(self, *argv: str, stdout_path: Path | None = None) -> str:
        return run(
            [self.python, "manage.py", *argv], env=self.env, cwd=REPO, stdout_path=stdout_path
        )

    def count(self, sql: str) -> int:
        return int(self.pg.sql(sql, db=self.args.db) or 0)

    def start_workers(self, label: str, count: int | None = None, **extra_env) -> None:
        for _ in range(count or self.args.workers):
            index = len(self.workers)
            self._start_celery(
                [
                    "worker",
                    "-Q",
                    "critical,high,default,low,webhooks",
                    "--pool",
                    "threads",
                    "--concurrency",
                    str(self.args.concurrency),
                    "--loglevel",
                    "INFO",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                    "--hostname",
                    f"bench-{label}-{index}@%h",
                ],
                log_path=self.work / f"worker-{label}-{index}.log",
                ready=b" ready.",
                env={**self.env, **{key: str(value) for key, value in extra_env.items()}},
            )

    def start_beat(self, label: str) -> None:
        """celery-beat with the production schedule (relay every 5 s, which also picks up the
        retries the commit kicks do not cover, back-sync, retry queue)."""
        self._start_celery(
            ["beat", "--loglevel", "INFO"],
            log_path=self.work / f"beat-{label}.log",
            ready=b"beat: Starting",
            env=self.env,
        )

    def _start_celery(self, argv: list[str], *, log_path: Path, ready: bytes, env: dict) -> None:
        with open(log_path, "wb") as out:
            self.workers.append(
                subprocess.Popen(
                    [self.python, "-m", "celery", "-A", "tradeengage", *argv],
                    cwd=REPO,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        deadline = time.monotonic() + 60
        while ready not in log_path.read_bytes():
            if time.monotonic() > deadline or self.workers[-1].poll() is not None:
                raise BenchError(f"{argv[0]} did not start:\n{tail(log_path)}")
            time.sleep(0.2)

    def stop_workers(self) -> None:
        for process in self.workers:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.workers:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        self.workers = []

    @contextlib.contextmanager
    def connections_sampled(self):
        """The most PostgreSQL connections to the bench database seen while the block runs
        (sampled every 0.25 s; the sampler's own is not counted): ``peak["connections"]``."""
        peak, stop = {"connections": 0}, threading.Event()
        sql = f"SELECT count(*) - 1 FROM pg_stat_activity WHERE datname = '{self.args.db}'"

        def sample():
            while not stop.wait(0.25):
                with contextlib.suppress(BenchError):
                    peak["connections"] = max(peak["connections"], self.count(sql))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            yield peak
        finally:
            stop.set()
            sampler.join()

    def wait_synced(self, total: int, timeout: float) -> float | None:
        """Seconds until ``total`` routings are synced, or None on timeout."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            synced = self.count(
                "SELECT count(*) FROM routing_jobrouting WHERE sync_status = 'synced'"
            )
            if synced >= total:
                return time.monotonic() - start
            time.sleep(0.1)
        return None

    def exactly_once(self) -> dict:
        """Each routing synced with the one job its key holds at the provider. Lost: routings
        not synced, or synced without that job. Duplicated: provider jobs for no routing, or a
        routing recording a different job than the provider holds for its key."""
        values = self.pg.sql(
            "SELECT (SELECT count(*) FROM routing_jobrouting),"
            " (SELECT count(*) FROM routing_jobrouting WHERE sync_status = 'synced'),"
            " (SELECT count(*) FROM integrations_mockjob),"
            " (SELECT count(*) FROM routing_jobrouting r JOIN integrations_mockjob m"
            "   ON m.idempotency_key = r.id::text AND m.external_id = r.external_id"
            "   WHERE r.sync_status = 'synced'),"
            " (SELECT count(*) FROM routing_jobrouting r JOIN integrations_mockjob m"
            "   ON m.idempotency_key = r.id::text"
            "   WHERE r.sync_status = 'synced' AND m.external_id IS DISTINCT FROM r.external_id),"
            " (SELECT count(*) FROM integrations_mockjob m WHERE NOT EXISTS ("
            "   SELECT 1 FROM routing_jobrouting r WHERE r.id::text = m.idempotency_key)),"
            " (SELECT coalesce(sum(create_calls), 0) FROM integrations_mockjob),"
            " (SELECT count(*) FROM routing_outboxevent WHERE status <> 'done')",
            db=self.args.db,
        ).split("|")
        routings, synced, remote, matching, mismatched, orphans, calls, open_events = map(
            int, values
        )
        return {
            "routings": routings,
            "synced": synced,
            "provider_jobs": remote,
            "provider_create_calls": calls,
            "events_not_done": open_events,
            "lost": routings - matching,
            "duplicated": mismatched + orphans,
        }

    def drain(self, latency_ms: int) -> dict:
        log(f"drain: {self.args.routings} routings at {latency_ms} ms provider latency")
        redis_flushdb(self.args.redis_url)
        self.django("reset", str(latency_ms))
        self.django("backlog", str(self.args.routings))
        self.pg.sql("VACUUM ANALYZE", db=self.args.db)
        self.start_workers(f"drain{latency_ms}")
        try:
            with self.connections_sampled() as peak:
                started = time.monotonic()
                self.django("kick")
                seconds = self.wait_synced(self.args.routings, timeout=self.args.timeout)
                if seconds is not None:  # from before the kick, not from the first poll
                    seconds = time.monotonic() - started
        finally:
            self.stop_workers()
        check = self.exactly_once()
        rate = self.args.routings / seconds if seconds else None
        log(
            f"drain at {latency_ms} ms: {rate and round(rate, 1)} routings/s, "
            f"{peak['connections']} connections at most; {check}"
        )
        return {
            "latency_ms": latency_ms,
            "seconds": seconds,
            "routings_per_s": rate,
            "peak_connections": peak["connections"],
            **check,
        }

    def steady(self, latency_ms: int, data_path: Path) -> dict:
        args = self.args
        log(f"steady: {args.rate} jobs/s for {args.steady_seconds} s at {latency_ms} ms")
        redis_flushdb(args.redis_url)
        self.django("reset", str(latency_ms))
        self.start_workers(f"steady{latency_ms}")
        try:
            created = json.loads(
                self.django("steady", str(args.rate), str(args.steady_seconds), str(data_path))
                .strip()
                .splitlines()[-1]
            )
            routings = self.count("SELECT count(*) FROM routing_jobrouting")
            self.wait_synced(routings, timeout=60)
        finally:
            self.stop_workers()
        p50, p95, p99, worst = (
            float(v) * 1000
            for v in self.pg.sql(
                "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s), "
                "percentile_cont(0.95) WITHIN GROUP (ORDER BY s), "
                "percentile_cont(0.99) WITHIN GROUP (ORDER BY s), max(s) FROM ("
                " SELECT extract(epoch FROM last_synced_at - created_at) AS s"
                " FROM routing_jobrouting WHERE last_synced_at IS NOT NULL) latencies",
                db=args.db,
            ).split("|")
        )
        check = self.exactly_once()
        result = {
            "latency_ms": latency_ms,
            "jobs": created["jobs"],
            "jobs_per_s": round(created["jobs"] / created["seconds"], 1),
            "p50_ms": p50,
            "p95_ms": p95,
            "p99_ms": p99,
            "max_ms": worst,
            **check,
        }
        log(f"steady at {latency_ms} ms: p50 {p50:.0f} ms, p99 {p99:.0f} ms; {check}")
        return result

    def isolation(self, data_path: Path) -> dict:
        """The steady phase at 0 ms with about ``--hanging-share`` of the routings going to
        companies whose provider hangs until the timeout: the others' created -> synced
        latency, then (``--hanging-end-timeout``) the workers keep running until every hanging
        routing has ended as the retry policy says."""
        args = self.args
        log(
            f"isolation: {args.rate} jobs/s for {args.steady_seconds} s, "
            f"{args.hanging_share:.0%} of routings to hanging companies"
        )
        redis_flushdb(args.redis_url)
        hanging = json.loads(
            self.django("hang", str(args.hanging_share), str(data_path)).strip().splitlines()[-1]
        )
        quoted = ", ".join(f"'{company}'" for company in hanging["companies"]) or "NULL"
        others = f"company_id NOT IN ({quoted})"
        self.start_workers("isolation")
        try:
            with self.connections_sampled() as peak:
                started = time.monotonic()
                created = json.loads(
                    self.django("steady", str(args.rate), str(args.steady_seconds), str(data_path))
                    .strip()
                    .splitlines()[-1]
                )
                total = self.count(f"SELECT count(*) FROM routing_jobrouting WHERE {others}")
                wait_from = time.monotonic()
                while time.monotonic() - wait_from < 60:
                    synced = self.count(
                        "SELECT count(*) FROM routing_jobrouting"
                        f" WHERE {others} AND sync_status = 'synced'"
                    )
                    if synced >= total:
                        break
                    time.sleep(0.2)
                states_then = self.hanging_states(quoted)
                ended_after = states_at_end = None
                if args.hanging_end_timeout:
                    ended_after = self.hanging_end(quoted, started)
                    states_at_end = self.hanging_states(quoted)
        finally:
            self.stop_workers()
        p50, p95, p99, worst = (
            float(v or 0) * 1000
            for v in self.pg.sql(
                "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s), "
                "percentile_cont(0.95) WITHIN GROUP (ORDER BY s), "
                "percentile_cont(0.99) WITHIN GROUP (ORDER BY s), max(s) FROM ("
                " SELECT extract(epoch FROM last_synced_at - created_at) AS s"
                f" FROM routing_jobrouting WHERE {others} AND last_synced_at IS NOT NULL) l",
                db=args.db,
            ).split("|")
        )
        all_routings = self.count("SELECT count(*) FROM routing_jobrouting")
        result = {
            "jobs": created["jobs"],
            "jobs_per_s": round(created["jobs"] / created["seconds"], 1),
            "hanging_companies": len(hanging["companies"]),
            "hanging_share": round(1 - total / all_routings, 3) if all_routings else 0,
            "others": total,
            "others_not_synced": total
            - self.count(
                f"SELECT count(*) FROM routing_jobrouting WHERE {others} AND sync_status = 'synced'"
            ),
            "p50_ms": p50,
            "p95_ms": p95,
            "p99_ms": p99,
            "max_ms": worst,
            "hanging_states": states_then,
            "hanging_ended_after_s": round(ended_after, 1) if ended_after else None,
            "hanging_states_at_end": states_at_end,
            "policy_attempts": self.policy_attempts(),
            "peak_connections": peak["connections"],
        }
        log(f"isolation: {result}")
        return result

    def hanging_states(self, quoted: str) -> dict[str, int]:
        """The hanging companies' routings by state, attempts made and their event's state."""
        rows = self.pg.sql(
            "SELECT r.sync_status || ', ' || (SELECT count(*) FROM routing_syncattempt a"
            "   WHERE a.routing_id = r.id) || ' attempts, event ' || coalesce((SELECT"
            "   string_agg(DISTINCT e.status, '/') FROM routing_outboxevent e"
            "   WHERE e.aggregate_id = r.id), 'none'), count(*)"
            f" FROM routing_jobrouting r WHERE r.company_id IN ({quoted})"
            " GROUP BY 1 ORDER BY 1",
            db=self.args.db,
        )
        return {state: int(n) for state, n in (line.split("|") for line in rows.splitlines())}

    def hanging_end(self, quoted: str, started: float) -> float | None:
        """Seconds from the phase's start until no routing of a hanging company is pending or
        being called, or None after ``--hanging-end-timeout``."""
        log("isolation: waiting for the hanging companies' routings to end")
        while time.monotonic() - started < self.args.hanging_end_timeout:
            open_routings = self.count(
                "SELECT count(*) FROM routing_jobrouting"
                f" WHERE company_id IN ({quoted}) AND sync_status IN ('pending', 'processing')"
            )
            if not open_routings:
                return time.monotonic() - started
            time.sleep(1)
        return None

    def policy_attempts(self) -> int:
        """Attempts the retry policy allows a routing: the first and one per backoff step."""
        return int(self.django("policy").strip().splitlines()[-1])

    def run(self) -> int:
        args = self.args
        machine = machine_info(self.pg, self.python, Path(args.venv) / "bin" / "gunicorn", None)
        self.pg.recreate(args.db)
        self.manage("migrate", "--noinput", "-v", "0")
        data_path = self.work / "network.json"
        self.manage("seed_demo", "--json", stdout_path=data_path)
        drains = [self.drain(latency) for latency in args.latencies]
        steadies = [self.steady(latency, data_path) for latency in args.steady_latencies]
        isolation = self.isolation(data_path) if args.hanging_share else None
        if not args.keep:
            self.pg.drop(args.db)
        redis_flushdb(args.redis_url)
        verdict = report(args, machine, drains, steadies, isolation)
        if args.json_out:
            Path(args.json_out).write_text(
                json.dumps(
                    {
                        "machine": machine,
                        "args": vars(args),
                        "drain": drains,
                        "steady": steadies,
                        "isolation": isolation,
                        "verdict": verdict,
                    },
                    indent=2,
                    default=str,
                )
            )
        log(f"work dir (worker logs): {self.work}")
        return 0 if all(v["pass"] for v in verdict) else 1


def report(
    args, machine: dict, drains: list[dict], steadies: list[dict], isolation: dict | None = None
) -> list[dict]:
    lines = ["", *machine_lines(machine)]
    lines.append(
        f"Workers: {args.workers} processes x {args.concurrency} threads, provider calls "
        f"{args.call_concurrency} threads per process; relay batches of 50"
    )
    lines += [
        "",
        "| provider latency | routings | seconds | routings/s | lost | duplicated | create calls "
        "| PostgreSQL connections, peak |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for d in drains:
        rate = f"{d['routings_per_s']:.0f}" if d["routings_per_s"] else "timeout"
        seconds = f"{d['seconds']:.1f}" if d["seconds"] else "-"
        lines.append(
            f"| {d['latency_ms']} ms | {d['routings']} | {seconds} | {rate} | {d['lost']} | "
            f"{d['duplicated']} | {d['provider_create_calls']} | {d['peak_connections']} |"
        )
    lines += [
        "",
        "| provider latency | jobs/s | routings | p50 ms | p95 ms | p99 ms | max ms | lost "
        "| duplicated |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in steadies:
        lines.append(
            f"| {s['latency_ms']} ms | {s['jobs_per_s']} | {s['routings']} | {s['p50_ms']:.0f} | "
            f"{s['p95_ms']:.0f} | {s['p99_ms']:.0f} | {s['max_ms']:.0f} | {s['lost']} | "
            f"{s['duplicated']} |"
        )
    verdict = []
    for d in drains:
        target = TARGETS.get(f"drain_{d['latency_ms']}ms")
        if target:
            verdict.append(
                {
                    "target": f"drain at {d['latency_ms']} ms >= {target:.0f} routings/s",
                    "pass": bool(d["routings_per_s"] and d["routings_per_s"] >= target),
                }
            )
    rates = {d["latency_ms"]: d["routings_per_s"] for d in drains}
    if rates.get(0) and 800 in rates:
        ratio = (rates[800] or 0) / rates[0]
        target = TARGETS["drain_800ms_over_0ms"]
        verdict.append(
            {
                "target": f"drain at 800 ms >= {target:g} x the drain at 0 ms ({ratio:.2f})",
                "pass": ratio >= target,
            }
        )
    for s in steadies:
        if s["latency_ms"] == 0:
            verdict.append(
                {
                    "target": f"steady p99 at {args.rate:g} jobs/s "
                    f"< {TARGETS['steady_p99_ms']:.0f} ms",
                    "pass": s["p99_ms"] < TARGETS["steady_p99_ms"],
                }
            )
    for phase in [*drains, *steadies]:
        verdict.append(
            {
                "target": f"nothing lost or duplicated ({phase['latency_ms']} ms)",
                "pass": not (phase["lost"] or phase["duplicated"] or phase["events_not_done"]),
            }
        )
    if isolation:
        lines += [
            "",
            f"Isolation: {isolation['jobs_per_s']} jobs/s for {args.steady_seconds:g} s, "
            f"{isolation['hanging_share']:.1%} of the routings to {isolation['hanging_companies']} "
            "companies whose provider hangs until the timeout "
            f"({isolation['hanging_states']}); the other {isolation['others']} routings: "
            f"p50 {isolation['p50_ms']:.0f} ms, p95 {isolation['p95_ms']:.0f} ms, "
            f"p99 {isolation['p99_ms']:.0f} ms, max {isolation['max_ms']:.0f} ms, "
            f"{isolation['others_not_synced']} not synced; "
            f"{isolation['peak_connections']} PostgreSQL connections at most",
        ]
        if isolation["hanging_states_at_end"] is not None:
            lines.append(
                "The hanging companies' routings ended "
                + (
                    f"{isolation['hanging_ended_after_s']:g} s after the phase's start"
                    if isolation["hanging_ended_after_s"]
                    else f"(not all within {args.hanging_end_timeout:g} s)"
                )
                + f": {isolation['hanging_states_at_end']}"
            )
        verdict.append(
            {
                "target": "isolation: the others' p99 at "
                f"{args.rate:g} jobs/s < {TARGETS['steady_p99_ms']:.0f} ms, all synced",
                "pass": isolation["p99_ms"] < TARGETS["steady_p99_ms"]
                and not isolation["others_not_synced"],
            }
        )
        verdict.append(
            {
                "target": "isolation: no routing of a hanging company synced",
                "pass": not any(
                    state.startswith("synced") for state in isolation["hanging_states"]
                ),
            }
        )
        if isolation["hanging_states_at_end"] is not None:
            ended = f"failed, {isolation['policy_attempts']} attempts, event dead"
            verdict.append(
                {
                    "target": "isolation: every routing of a hanging company ended as the retry "
                    f"policy says ({ended})",
                    "pass": bool(isolation["hanging_ended_after_s"])
                    and set(isolation["hanging_states_at_end"]) == {ended},
                }
            )
    lines += ["", "Targets:"]
    lines += [f"  {'PASS' if v['pass'] else 'FAIL'}  {v['target']}" for v in verdict]
    print("\n".join(lines))
    return verdict


def int_list(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def add_bench_options(parser: argparse.ArgumentParser, *, db: str, redis_url: str) -> None:
    """The options ``Bench`` reads: the workers (as the production worker command runs them),
    the database it drops and recreates, the Redis database it flushes, where things are."""
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--concurrency", type=int, default=8, help="threads per worker")
    parser.add_argument(
        "--call-concurrency",
        type=int,
        default=256,
        help="SYNC_CALL_CONCURRENCY: provider-call threads per worker process",
    )
    parser.add_argument("--db", default=db, help=f"dropped and recreated (default {db})")
    parser.add_argument("--redis-url", default=redis_url, help=f"flushed (default {redis_url})")
    parser.add_argument("--pg-host", default="127.0.0.1")
    parser.add_argument("--pg-port", type=int, default=5432)
    parser.add_argument("--pg-user", default="postgres")
    parser.add_argument("--venv", default=str(REPO / ".venv"))
    parser.add_argument("--work-dir", help="worker and beat logs")
    parser.add_argument("--keep", action="store_true", help="keep the database at the end")


def checked_args(parser: argparse.ArgumentParser, argv) -> argparse.Namespace:
    args = parser.parse_args(argv)
    if args.db in {"postgres", "template0", "template1"}:
        parser.error(f"refusing to use database {args.db}")
    return args


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--routings", type=int, default=5000)
    parser.add_argument(
        "--latencies",
        type=int_list,
        default=[0, 800],
        help="mock provider latencies for the drain, ms (default 0,800)",
    )
    parser.add_argument(
        "--steady-latencies",
        type=int_list,
        default=[0],
        help="mock provider latencies for the steady phase, ms (default 0)",
    )
    parser.add_argument("--rate", type=float, default=50.0, help="jobs per second (default 50)")
    parser.add_argument(
        "--hanging-share",
        type=float,
        default=0.1,
        help="isolation phase: the share of routings to companies whose provider hangs until "
        "the timeout (default 0.1; 0 skips the phase)",
    )
    parser.add_argument(
        "--hanging-end-timeout",
        type=float,
        default=1200.0,
        help="isolation phase: seconds to wait for every hanging routing to end as the retry "
        "policy says (default 1200; 0 stops at the others' measure)",
    )
    parser.add_argument("--steady-seconds", type=float, default=30.0)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per drain")
    parser.add_argument("--json-out")
    add_bench_options(parser, db="tradeengage_syncbench", redis_url="redis://127.0.0.1:6379/13")
    return checked_args(parser, argv)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--driver"]:
        driver(argv[1:])
        return 0
    bench = Bench(parse_args(argv))
    try:
        return bench.run()
    except BenchError as exc:
        log(f"error: {exc}")
        return 2
    except KeyboardInterrupt:
        log("interrupted")
        return 2
    finally:
        bench.stop_workers()


if __name__ == "__main__":
    sys.exit(main())

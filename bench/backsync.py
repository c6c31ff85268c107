#!/usr/bin/env python3
"""Back-sync benchmark (issue 16): under sustained job creation, do completions found by polling
reach our jobs within a bounded time?

Jobs are created at ``--jobs-per-second`` for ``--minutes`` (default 50 jobs/s for 10 minutes)
while ``--workers`` real Celery worker processes and a real beat run the whole pipeline against
PostgreSQL and Redis: the outbox relay and the sync push every routing into the mock provider,
which completes each of its jobs ``--complete-after`` seconds (60) after creating it; beat's
back-sync claims the routings due for a question, the workers poll the provider in batches and
complete the routings and their jobs. The mock provider sends no webhooks, so every completion
is found by polling. Jobs are created in-process with ``job_create`` through the sync benchmark's
load driver (``sync_throughput.py --driver steady``: one transaction per job and the relay kick
on commit, as the API does), not over HTTP: what is measured is the routings' way through sync
and back-sync, not the API.

A completion's lag is the time from the provider's completion (its job's creation plus the
delay) to the moment the back-sync wrote it onto our job (the routing's ``updated_at``, written
in the transaction that rolls the job up). After the load it waits until every routing is
completed, or until the last provider completion is ``--target-seconds`` old. It prints jobs
created, routings, completions found, the lag's p50, p95 and max, and whether every completion
arrived within ``--target-seconds`` (300); it also checks each job's roll-up (completed at its
latest routing completion, revenue the sum of its completed routings' revenue).

    flock /tmp/bench.lock .venv/bin/python bench/backsync.py               # about 15 minutes
    flock /tmp/bench.lock .venv/bin/python bench/backsync.py --minutes 2   # quicker

Needs PostgreSQL (superuser, trust auth; psql on the PATH) and Redis on localhost. It drops and
recreates the database ``--db`` (default ``tradeengage_bench_backsync``) and flushes the Redis
database of ``--redis-url`` (default db 12); ``--keep`` leaves the database at the end. Exit
status 0 when the target passes, 1 when it fails, 2 when the run could not be done.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import REPO, BenchError, log, machine_info, machine_lines, redis_flushdb, tail
from sync_throughput import Bench

# The load's jobs and routings (seed_demo's historic jobs are left out of every figure).
LOAD_JOBS = "SELECT id FROM jobs_job WHERE summary LIKE 'loadgen #%'"
LOAD_ROUTINGS = f"SELECT * FROM routing_jobrouting WHERE job_id IN ({LOAD_JOBS})"
# Per synced routing: when the provider completed its job, and when the completion reached our
# job (null while it has not).
LAGS = f"""
    SELECT r.id, r.job_id, r.sync_status,
           m.created_at + make_interval(secs => {{delay}}) AS provider_completed_at,
           CASE WHEN r.sync_status = 'completed' THEN r.updated_at END AS arrived_at
    FROM ({LOAD_ROUTINGS}) r
    JOIN integrations_mockjob m ON m.idempotency_key = r.id::text
"""
DUE_AT = "coalesce(status_check_due_at, last_synced_at, created_at)"
PROGRESS = f"""
    WITH r AS ({LOAD_ROUTINGS})
    SELECT ({LOAD_JOBS.replace("SELECT id", "SELECT count(*)")}),
           (SELECT count(*) FROM r),
           (SELECT count(*) FROM r WHERE sync_status = 'synced'),
           (SELECT count(*) FROM r WHERE sync_status = 'completed'),
           (SELECT count(*) FROM r WHERE sync_status = 'synced' AND {DUE_AT} <= now()),
           (SELECT coalesce(extract(epoch FROM now() - min({DUE_AT})), 0)::int
              FROM r WHERE sync_status = 'synced' AND {DUE_AT} <= now())
"""


class BacksyncBench(Bench):
    def progress(self) -> dict:
        values = self.pg.sql(PROGRESS, db=self.args.db).split("|")
        names = ["jobs", "routings", "synced", "completed", "due", "oldest_due_s"]
        return dict(zip(names, map(int, values), strict=True))

    def last_completion_age(self) -> float:
        """Seconds since the provider's latest completion (negative: still to come)."""
        value = self.pg.sql(
            "SELECT extract(epoch FROM now() - max(created_at)) - "
            f"{self.args.complete_after} FROM integrations_mockjob",
            db=self.args.db,
        )
        return float(value or 0)

    def load(self, data_path: Path) -> dict:
        """Create the jobs in a background process, logging progress until it is done."""
        args = self.args
        seconds = args.minutes * 60
        command = [
            self.python,
            REPO / "bench" / "sync_throughput.py",
            "--driver",
            "steady",
            str(args.jobs_per_second),
            str(seconds),
            str(data_path),
        ]
        log(f"load: {args.jobs_per_second:g} jobs/s for {args.minutes:g} min")
        out_path = self.work / "load.out"
        with open(out_path, "wb") as out, open(self.work / "load.err", "wb") as err:
            process = subprocess.Popen(
                [str(part) for part in command], cwd=REPO, env=self.env, stdout=out, stderr=err
            )
            while process.poll() is None:
                time.sleep(min(args.progress_seconds, 5))
                self.log_progress(every=args.progress_seconds)
            if process.returncode != 0:
                raise BenchError(f"the load driver failed:\n{tail(self.work / 'load.err')}")
        return json.loads(out_path.read_text().strip().splitlines()[-1])

    _last_progress = 0.0

    def log_progress(self, every: float) -> dict | None:
        if time.monotonic() - self._last_progress < every:
            return None
        self._last_progress = time.monotonic()
        progress = self.progress()
        log(
            "jobs {jobs}, routings {routings}: {synced} synced and open, {completed} completed; "
            "{due} due for a question, the oldest for {oldest_due_s} s".format(**progress)
        )
        return progress

    def wait_for_completions(self) -> None:
        """Until every routing is completed, or the provider's last completion is older than
        the target (what is still missing then is late)."""
        args = self.args
        while True:
            progress = self.progress()
            if progress["completed"] >= progress["routings"]:
                return
            if self.last_completion_age() > args.target_seconds + 10:
                log("the last provider completion is past the target; measuring what arrived")
                return
            self.log_progress(every=args.progress_seconds)
            time.sleep(2)

    def measure(self) -> dict:
        args = self.args
        values = self.pg.sql(
            f"""WITH lags AS ({LAGS.format(delay=args.complete_after)}),
                lag AS (SELECT extract(epoch FROM arrived_at - provider_completed_at) AS s,
                               arrived_at, provider_completed_at FROM lags)
            SELECT ({LOAD_JOBS.replace("SELECT id", "SELECT count(*)")}),
                   (SELECT count(*) FROM ({LOAD_ROUTINGS}) r),
                   (SELECT count(*) FROM lags),
                   count(*) FILTER (WHERE arrived_at IS NOT NULL),
                   coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY s), 0),
                   coalesce(percentile_cont(0.95) WITHIN GROUP (ORDER BY s), 0),
                   coalesce(max(s), 0),
                   count(*) FILTER (WHERE s > {args.target_seconds}
                       OR (arrived_at IS NULL AND extract(epoch FROM now() -
                           provider_completed_at) > {args.target_seconds})),
                   count(*) FILTER (WHERE arrived_at IS NULL),
                   (SELECT count(*) FROM jobs_job j WHERE j.id IN ({LOAD_JOBS})
                       AND j.status = 'completed' AND (
                       j.revenue IS DISTINCT FROM (SELECT sum(revenue) FROM routing_jobrouting
                           WHERE job_id = j.id AND sync_status = 'completed')
                       OR j.completed_at IS DISTINCT FROM (SELECT max(completed_at)
                           FROM routing_jobrouting
                           WHERE job_id = j.id AND sync_status = 'completed'))),
                   (SELECT count(*) FROM ({LOAD_ROUTINGS}) r JOIN integrations_mockjob m
                       ON m.idempotency_key = r.id::text WHERE r.sync_status = 'completed'
                       AND (r.revenue IS DISTINCT FROM m.revenue
                            OR r.completed_at IS DISTINCT FROM m.completed_at))
            FROM lag""",
            db=args.db,
        ).split("|")
        names = [
            "jobs",
            "routings",
            "synced",
            "completions",
            "lag_p50_s",
            "lag_p95_s",
            "lag_max_s",
            "late",
            "missing",
            "jobs_rolled_up_wrong",
            "routings_unlike_provider",
        ]
        result = {}
        for name, value in zip(names, values, strict=True):
            result[name] = float(value) if name.startswith("lag") else int(value)
        return result

    def run(self) -> int:
        args = self.args
        machine = machine_info(self.pg, self.python, Path(args.venv) / "bin" / "gunicorn", None)
        self.pg.recreate(args.db)
        self.manage("migrate", "--noinput", "-v", "0")
        data_path = self.work / "network.json"
        self.manage("seed_demo", "--json", stdout_path=data_path)
        self.pg.sql(
            "UPDATE jobs_company SET provider_type = 'mock', open_routing_count = 0, "
            f"provider_settings = '{{\"complete_after_seconds\": {args.complete_after}}}'",
            db=args.db,
        )
        self.pg.sql("VACUUM ANALYZE", db=args.db)
        redis_flushdb(args.redis_url)
        self.start_workers("backsync")
        self.start_beat("backsync")
        try:
            created = self.load(data_path)
            self.wait_for_completions()
            result = {**self.measure(), "jobs_per_s": created["jobs"] / created["seconds"]}
        finally:
            self.stop_workers()
        if not args.keep:
            self.pg.drop(args.db)
        redis_flushdb(args.redis_url)
        passed = bool(result["synced"]) and result["late"] == 0 and result["missing"] == 0
        passed = passed and not result["jobs_rolled_up_wrong"]
        passed = passed and not result["routings_unlike_provider"]
        report(args, machine, result, passed)
        log(f"work dir (worker logs): {self.work}")
        return 0 if passed else 1


def report(args, machine: dict, result: dict, passed: bool) -> None:
    print(
        "\n".join(
            [
                "",
                *machine_lines(machine),
                f"Workers: {args.workers} processes x {args.concurrency} threads, and beat",
                f"Load:    {args.jobs_per_second:g} jobs/s for {args.minutes:g} min "
                f"(achieved {result['jobs_per_s']:.1f} jobs/s); the mock provider completes "
                f"each job {args.complete_after:g} s after creating it",
                "",
                f"jobs created:        {result['jobs']}",
                f"routings:            {result['routings']} ({result['synced']} synced)",
                f"completions found:   {result['completions']} "
                f"({result['missing']} not on our job at the end)",
                "provider completion -> on our job: "
                f"p50 {result['lag_p50_s']:.1f} s, p95 {result['lag_p95_s']:.1f} s, "
                f"max {result['lag_max_s']:.1f} s",
                f"later than {args.target_seconds:g} s (or missing past it): {result['late']}",
                f"jobs whose roll-up disagrees with their routings: "
                f"{result['jobs_rolled_up_wrong']}; routings unlike the provider's job: "
                f"{result['routings_unlike_provider']}",
                "",
                f"{'PASS' if passed else 'FAIL'}  every completion on our job within "
                f"{args.target_seconds:g} s of the provider's completion",
            ]
        )
    )


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs-per-second", type=float, default=50.0)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument(
        "--complete-after", type=float, default=60.0, help="seconds the mock takes to complete"
    )
    parser.add_argument("--target-seconds", type=float, default=300.0)
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--concurrency", type=int, default=4, help="threads per worker")
    parser.add_argument(
        "--call-concurrency",
        type=int,
        default=32,
        help="SYNC_CALL_CONCURRENCY: provider-call threads per worker process",
    )
    parser.add_argument("--progress-seconds", type=float, default=30.0)
    parser.add_argument("--db", default="tradeengage_bench_backsync")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--pg-host", default="127.0.0.1")
    parser.add_argument("--pg-port", type=int, default=5432)
    parser.add_argument("--pg-user", default="postgres")
    parser.add_argument("--venv", default=str(REPO / ".venv"))
    parser.add_argument("--work-dir")
    parser.add_argument("--keep", action="store_true", help="keep the database at the end")
    args = parser.parse_args(argv)
    if args.db in {"postgres", "template0", "template1"}:
        parser.error(f"refusing to use database {args.db}")
    args.work_dir = args.work_dir or f"/tmp/tradeengage-backsync-{int(time.time())}"
    return args


def main(argv=None) -> int:
    bench = BacksyncBench(parse_args(argv))
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

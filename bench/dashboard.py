#!/usr/bin/env python3
"""Ops dashboard benchmark: the admin page (``/admin/dashboard/``) and
``GET /api/v1/analytics/dashboard`` over a network with a realistic history of ``--routings``
routings (default 1,000,000), against the target of a p95 under 500 ms.

1. **Load.** A fresh database ``--db``, migrated, then filled with set-based SQL (``INSERT ...
   SELECT FROM generate_series``, no ORM rows): ``--companies`` companies with a technician each,
   ``--routings`` / 2.5 jobs over ``--days`` days (created_at rising with insertion order, as in
   production), 2 or 3 routings per job (most synced seconds after creation and completed days
   later with revenue, some synced and still open, a few pending or in progress, a few % failed
   for good), one SyncAttempt per provider call (the successful one of every synced routing,
   plus the retried and dead-lettered calls), one outbox event per routing (done, pending,
   in flight or dead) and ``--nights`` nightly processing runs for ``--nightly-clients``
   clients. Then ``VACUUM ANALYZE``: production runs autovacuum, these machines do not.
2. **Roll-up.** ``daily_figures_roll_up()`` twice: every closed day, then only yesterday.
3. **Dashboard.** ``dashboard()`` in process, the API endpoint with an ops key and the admin page
   as a superuser, each through Django's test Client (and through a real gunicorn with
   ``--gunicorn``), ``--runs`` times after one warm-up call; p50/p95/max. One ``dashboard()``
   call's queries are captured: how many, the slowest three, and ``EXPLAIN (ANALYZE, BUFFERS)``
   of the slowest.
4. **Check.** The dashboard's figures against the same figures counted directly in SQL.

    .venv/bin/python bench/dashboard.py                         # 1,000,000 routings, ~5 minutes
    .venv/bin/python bench/dashboard.py --routings 100000 --companies 2000     # a quick one

Needs PostgreSQL on 127.0.0.1:5432 (superuser, trust auth; psql on the PATH) and Redis. It drops
and recreates ``--db`` and drops it at the end unless ``--keep``. It does not flush Redis
(``--redis-url``, db 10): it only adds the ops key's rate-limit counters there, which expire.
The load writes with ``session_replication_role = replica`` (foreign-key triggers off: the rows
are consistent by construction, and checked after the load). Exit status 0 when the targets
pass, 1 when one fails, 2 when the run could not be done.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import textwrap
import time
import traceback
from datetime import timedelta
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    BENCH_FIELD_ENCRYPTION_KEYS,
    REPO,
    BenchError,
    Postgres,
    Server,
    fmt,
    http,
    log,
    machine_info,
    machine_lines,
    markdown_table,
    port_answers,
    wait_until,
)

TARGET_P95_MS = 500.0
ROUTINGS_PER_JOB = 2.5
STATES = ["CA", "TX", "FL", "NY", "IL", "AZ", "WA", "CO", "GA", "NC", "OH", "PA"]
ERROR = "Mock provider: HTTP 503 Service Unavailable"


def percentile(values: list[float], fraction: float) -> float | None:
    """Linear interpolation between closest ranks (PostgreSQL's percentile_cont)."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = fraction * (len(ordered) - 1)
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(samples: list[float]) -> dict:
    return {
        "runs": len(samples),
        "p50_ms": percentile(samples, 0.5),
        "p95_ms": percentile(samples, 0.95),
        "max_ms": max(samples) if samples else None,
    }


# --------------------------------------------------------------------------- the load


def _ts(moment) -> str:
    return f"TIMESTAMPTZ '{moment.isoformat()}'"


class Loader:
    """The history, written with set-based SQL on Django's connection (one session, so the
    staging tables are temporary ones)."""

    def __init__(self, args, now):
        self.args = args
        self.now = now
        self.start = now - timedelta(days=args.days)
        self.jobs = max(1, round(args.routings / ROUTINGS_PER_JOB))
        self.steps: list[tuple[str, float, int]] = []

    def sql(self, statement: str):
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(statement)
            return cursor.rowcount

    def step(self, what: str, statement: str) -> int:
        started = time.monotonic()
        rows = self.sql(statement)
        seconds = time.monotonic() - started
        self.steps.append((what, seconds, rows))
        log(f"  {what}: {rows:,} rows in {seconds:.1f} s")
        return rows

    def load(self) -> float:
        from jobs.models import Company

        args = self.args
        companies = args.companies
        if companies < 4:
            raise BenchError("--companies must be at least 4 (a job goes to three others)")
        token = Company._meta.get_field("provider_credentials").get_prep_value({})
        now, start = _ts(self.now), _ts(self.start)
        span = f"({now} - {start})"
        # Jobs route to 3 companies at offsets step, 2 step, 3 step (+ a per-job shift below
        # step) from their creator: distinct companies, spread over the network.
        step = companies // 4
        states = "ARRAY[" + ", ".join(f"'{s}'" for s in STATES) + "]"
        started = time.monotonic()
        for statement in [
            "SET session_replication_role = replica",
            "SET synchronous_commit = off",
            "SET work_mem = '256MB'",
            "SET maintenance_work_mem = '512MB'",
        ]:
            self.sql(statement)

        self.step(
            "staging: companies",
            f"""CREATE TEMP TABLE bench_company AS
            SELECT n, gen_random_uuid() AS id, gen_random_uuid() AS tech_id
            FROM generate_series(1, {companies}) AS n""",
        )
        self.sql("ALTER TABLE bench_company ADD PRIMARY KEY (n)")
        self.step(
            "jobs_company",
            f"""INSERT INTO jobs_company (id, name, is_active, accepts_jobs, plan,
                leads_per_report, send_day, notification_email, provider_type, provider_settings,
                provider_credentials, open_routing_count, primary_category_id, last_processed_at,
                created_at, updated_at)
            SELECT c.id, 'Bench Company ' || lpad(c.n::text, 6, '0'), true, true,
                (ARRAY['free', 'pro', 'enterprise'])[1 + mod(c.n, 3)], 10, 1 + mod(c.n, 28),
                'ops+' || c.n || '@example.com', 'mock', '{{}}'::jsonb, '{token}', 0,
                cats.ids[1 + mod(c.n, greatest(cardinality(cats.ids), 1))], NULL,
                {start} - interval '30 days', {start} - interval '30 days'
            FROM bench_company c,
                (SELECT array_agg(id ORDER BY id) AS ids FROM jobs_category) AS cats
            ORDER BY c.n""",
        )
        self.step(
            "jobs_technician",
            f"""INSERT INTO jobs_technician (id, name, email, phone, is_active, created_at,
                company_id)
            SELECT tech_id, 'Technician ' || n, '', '', true, {start} - interval '30 days', id
            FROM bench_company ORDER BY n""",
        )

        # Jobs: evenly over the history, created_at rising with i (the insertion order).
        self.step(
            "staging: jobs",
            f"""CREATE TEMP TABLE bench_job AS
            SELECT i, gen_random_uuid() AS id,
                {start} + {span} * ((i - 1 + random()) / {self.jobs}) AS created_at,
                1 + mod(i * 7919, {companies}) AS creator
            FROM generate_series(1::bigint, {self.jobs}) AS i""",
        )
        self.step(
            "jobs_job",
            f"""INSERT INTO jobs_job (id, summary, street, city, state, zip_code, homeowner_name,
                homeowner_phone, homeowner_email, status, revenue, completed_at, correlation_id,
                created_at, updated_at, category_id, created_by_company_id,
                created_by_technician_id)
            SELECT j.id, 'Bench job ' || j.i || ': leaking water heater', j.i || ' Main St',
                'Springfield', ({states})[1 + mod(j.i, {len(STATES)})],
                lpad(mod(j.i * 37, 99999)::text, 5, '0'), 'Jane Smith', '', '',
                CASE WHEN j.created_at > {now} - interval '2 days' THEN 'pending'
                     WHEN mod(j.i, 20) = 0 THEN 'cancelled'
                     WHEN j.created_at > {now} - interval '14 days' THEN 'in_progress'
                     ELSE 'completed' END,
                NULL, NULL, '', j.created_at, j.created_at,
                cats.ids[1 + mod(j.i, greatest(cardinality(cats.ids), 1))], c.id, c.tech_id
            FROM bench_job j JOIN bench_company c ON c.n = j.creator,
                (SELECT array_agg(id ORDER BY id) AS ids FROM jobs_category) AS cats
            ORDER BY j.i""",
        )
        self.step(
            "jobs_jobskill",
            """INSERT INTO jobs_jobskill (level, job_id, skill_id)
            SELECT 1 + mod(j.i, 3), j.id, s.ids[1 + mod(j.i, cardinality(s.ids))]
            FROM bench_job j, (SELECT array_agg(id ORDER BY id) AS ids FROM jobs_skill) AS s
            WHERE cardinality(s.ids) > 0
            ORDER BY j.i""",
        )

        # Routings: 3 for even jobs, 2 for odd ones (2.5 a job), written with their job. Their
        # fate, from independent random draws u (status), w (delays), v (completion), x, y:
        #   failed for good: 2 % anywhere, and half of the routings of every 25th company (a
        #     broken integration), dead-lettered 10-60 minutes after creation (pending and
        #     retrying while younger than that);
        #   retried then synced: 5 %, synced 30-630 s after creation (pending until then);
        #   waiting on a retry: 2 % of the last 6 hours' routings;
        #   the others synced 0.8-3.8 s after creation (the last seconds' in progress);
        #   completed: 88 % of the synced, 6 hours to 14 days after the sync, with revenue.
        self.step(
            "staging: routings",
            f"""CREATE TEMP TABLE bench_routing AS
            SELECT *,
                CASE kind
                    WHEN 'failed' THEN created_at + make_interval(secs => 600 + 3000 * w)
                    WHEN 'retried' THEN created_at + make_interval(secs => 30 + 600 * w)
                    WHEN 'waiting' THEN NULL
                    ELSE created_at + make_interval(secs => 0.8 + 3 * w * w)
                END AS done_at,
                CASE kind WHEN 'failed' THEN 1 + floor(w * 4)::int
                          WHEN 'retried' THEN 1 + floor(w * 2)::int
                          WHEN 'waiting' THEN 1 + floor(w * 3)::int
                          ELSE 0 END AS retries
            FROM (
                SELECT j.i, r, gen_random_uuid() AS id, j.id AS job_id, c.id AS company_id,
                    c.n AS company_n, j.created_at + make_interval(secs => 0.002 * r) AS created_at,
                    CASE WHEN u < 0.02 OR (mod(c.n, 25) = 0 AND u < 0.5) THEN 'failed'
                         WHEN u < 0.07 THEN 'retried'
                         WHEN u < 0.09 AND j.created_at > {now} - interval '6 hours'
                             THEN 'waiting'
                         ELSE 'ok' END AS kind,
                    w, v, x, y
                FROM (
                    SELECT j.*, r, random() AS u, random() AS w, random() AS v, random() AS x,
                        random() AS y
                    FROM bench_job j, generate_series(1, 3 - mod(j.i, 2)::int) AS r
                ) AS j
                JOIN bench_company c ON c.n = 1 + mod(
                    j.creator - 1 + r * {step} + mod(j.i * 104729, {step}), {companies})
            ) AS routed""",
        )
        self.step(
            "staging: routings' outcome",
            f"""CREATE TEMP TABLE bench_outcome AS
            SELECT b.*,
                CASE WHEN b.kind = 'failed' AND b.done_at <= {now} THEN 'failed'
                     WHEN b.kind IN ('failed', 'waiting') THEN 'pending'
                     WHEN b.done_at > {now} AND b.created_at > {now} - interval '10 seconds'
                         AND b.kind = 'ok' THEN 'processing'
                     WHEN b.done_at > {now} THEN 'pending'
                     WHEN b.v < 0.88 AND b.completed_at <= {now} THEN 'completed'
                     ELSE 'synced' END AS status
            FROM (
                SELECT r.*, r.done_at + make_interval(
                    secs => 21600 + 1188000 * r.x * r.x) AS completed_at
                FROM bench_routing r
            ) AS b""",
        )
        self.sql("DROP TABLE bench_routing")
        routings = self.step(
            "routing_jobrouting",
            f"""INSERT INTO routing_jobrouting (id, job_id, company_id, external_id, sync_status,
                retry_count, last_sync_attempt, last_synced_at, next_retry_at, error_message,
                claimed_at, status_checked_at, completed_at, revenue, matching_score,
                matched_skills, missing_skills, match_reason, routed_by, created_at, updated_at)
            SELECT id, job_id, company_id,
                CASE WHEN status IN ('synced', 'completed') THEN 'mock-' || left(id::text, 13)
                END,
                status, retries,
                CASE WHEN status IN ('synced', 'completed', 'failed') THEN done_at
                     WHEN status = 'pending' AND retries > 0 THEN created_at END,
                CASE WHEN status IN ('synced', 'completed') THEN done_at END,
                CASE WHEN status = 'pending' AND retries > 0
                    THEN {now} + make_interval(secs => 60 + 900 * w) END,
                CASE WHEN status = 'failed' OR (status = 'pending' AND retries > 0)
                    THEN '{ERROR}' END,
                CASE WHEN status = 'processing' THEN {now} END,
                CASE WHEN status = 'completed' THEN completed_at
                     WHEN status = 'synced' THEN greatest(done_at, {now} - make_interval(
                         secs => 3600 * y)) END,
                CASE WHEN status = 'completed' THEN completed_at END,
                CASE WHEN status = 'completed' THEN round((80 + 2400 * y * y)::numeric, 2) END,
                round((0.4 + 0.6 * v)::numeric, 3)::float8, '["plumbing"]'::jsonb, '[]'::jsonb,
                'Serves the ZIP and holds every skill', '', created_at,
                CASE WHEN status = 'completed' THEN completed_at
                     WHEN status IN ('synced', 'failed') THEN done_at ELSE created_at END
            FROM bench_outcome ORDER BY i, r""",
        )
        # One attempt per provider call that happened by now: the retried ones spread between
        # creation and the outcome, then the call that synced or dead-lettered the routing.
        self.step(
            "routing_syncattempt",
            f"""INSERT INTO routing_syncattempt (routing_id, number, provider, outcome, error,
                started_at, duration_ms)
            SELECT routing_id, number, 'mock', outcome, error, started_at, duration_ms
            FROM (
                SELECT o.id AS routing_id, k AS number, 'retry' AS outcome, '{ERROR}' AS error,
                    o.created_at + make_interval(secs => k * (CASE WHEN o.kind = 'waiting'
                        THEN 600 ELSE extract(epoch FROM o.done_at - o.created_at)
                        / (o.retries + 1) END)) AS started_at,
                    (20 + 1500 * o.y)::int AS duration_ms
                FROM bench_outcome o, generate_series(1, o.retries) AS k
                WHERE o.retries > 0
                UNION ALL
                SELECT o.id, o.retries + 1,
                    CASE WHEN o.status = 'failed' THEN 'failed' ELSE 'synced' END,
                    CASE WHEN o.status = 'failed' THEN '{ERROR}' ELSE '' END,
                    o.done_at - make_interval(secs => 0.1 + 0.6 * o.x),
                    (100 + 600 * o.x)::int
                FROM bench_outcome o
                WHERE o.status IN ('synced', 'completed', 'failed')
            ) AS calls
            WHERE started_at <= {now}
            ORDER BY started_at""",
        )
        # One job_sync event per routing, closed as its routing stands.
        self.step(
            "routing_outboxevent",
            f"""INSERT INTO routing_outboxevent (event_type, aggregate_id, event_data, status,
                attempts, available_at, claimed_at, processed_at, last_error, created_at)
            SELECT 'job_sync', o.id,
                jsonb_build_object('routing_id', o.id::text, 'job_id', o.job_id::text,
                    'company_id', o.company_id::text, 'matching_score', 0.8,
                    'matched_skills', '["plumbing"]'::jsonb, 'provider_type', 'mock'),
                CASE o.status WHEN 'failed' THEN 'dead' WHEN 'pending' THEN 'pending'
                    WHEN 'processing' THEN 'processing' ELSE 'done' END,
                o.retries + CASE WHEN o.status = 'pending' THEN 0 ELSE 1 END,
                CASE WHEN o.status = 'pending' AND o.retries > 0
                    THEN {now} + make_interval(secs => 60 + 900 * o.w) ELSE o.created_at END,
                CASE WHEN o.status = 'processing' THEN {now} END,
                CASE WHEN o.status IN ('synced', 'completed', 'failed') THEN o.done_at END,
                CASE WHEN o.status = 'failed' OR (o.status = 'pending' AND o.retries > 0)
                    THEN '{ERROR}' ELSE '' END,
                o.created_at
            FROM bench_outcome o ORDER BY o.i, o.r""",
        )
        # Nightly runs: the last --nights nights (today's midnight run included) for the first
        # --nightly-clients companies; last night's still partly running or retrying.
        today = self.now.date()
        clients = min(args.nightly_clients, companies)
        self.step(
            "processing_processingjob",
            f"""INSERT INTO processing_processingjob (job_id, client_id, status, trigger,
                run_date, attempt_count, last_attempt, next_attempt, error_message,
                leads_assigned, assigned_job_ids, jobs_completed, revenue, report_sent_to,
                created_at, updated_at)
            SELECT gen_random_uuid(), c.id, s.status, 'nightly', s.run_date,
                CASE WHEN s.status = 'pending' THEN 2 ELSE 1 END, s.ran_at,
                CASE WHEN s.status = 'pending' THEN s.ran_at + interval '15 minutes' END,
                CASE WHEN s.status IN ('failed', 'pending') THEN 'SMTP timeout' END,
                CASE WHEN s.status = 'completed' THEN mod(c.n * 7 + s.d, 16) ELSE 0 END,
                '[]'::jsonb, mod(c.n + s.d, 5),
                CASE WHEN s.status = 'completed' THEN round((mod(c.n * 13 + s.d, 90) * 37.5)
                    ::numeric, 2) END,
                CASE WHEN s.status = 'completed' THEN 'ops+' || c.n || '@example.com'
                    ELSE '' END,
                s.run_date::timestamptz, s.ran_at
            FROM bench_company c, LATERAL (
                SELECT d, DATE '{today.isoformat()}' - d AS run_date,
                    least({now}, (DATE '{today.isoformat()}' - d)::timestamptz
                        + make_interval(secs => 1 + mod(c.n, 1800))) AS ran_at,
                    CASE WHEN d = 0 AND mod(c.n, 10) = 0 THEN 'processing'
                         WHEN d = 0 AND mod(c.n, 37) = 0 THEN 'pending'
                         WHEN mod(c.n + d, 50) = 0 THEN 'failed'
                         ELSE 'completed' END AS status
                FROM generate_series(0, {args.nights - 1}) AS d
            ) AS s
            WHERE c.n <= {clients}
            ORDER BY s.run_date, c.n""",
        )
        self.sql("DROP TABLE bench_outcome")
        self.sql("DROP TABLE bench_job")
        self.sql("DROP TABLE bench_company")
        self.sql("RESET session_replication_role")
        self.sql("RESET synchronous_commit")
        orphans = self._orphans()
        if orphans:
            raise BenchError(f"the load left rows without their parent: {orphans}")
        seconds = time.monotonic() - started
        log(f"loaded {routings:,} routings in {seconds:.1f} s")
        return seconds

    def _orphans(self) -> dict:
        from django.db import connection

        checks = {
            "routings without job": """SELECT count(*) FROM routing_jobrouting r
                WHERE NOT EXISTS (SELECT FROM jobs_job j WHERE j.id = r.job_id)""",
            "routings without company": """SELECT count(*) FROM routing_jobrouting r
                WHERE NOT EXISTS (SELECT FROM jobs_company c WHERE c.id = r.company_id)""",
            "attempts without routing": """SELECT count(*) FROM routing_syncattempt a
                WHERE NOT EXISTS (SELECT FROM routing_jobrouting r WHERE r.id = a.routing_id)""",
        }
        found = {}
        with connection.cursor() as cursor:
            for what, statement in checks.items():
                cursor.execute(statement)
                n = cursor.fetchone()[0]
                if n:
                    found[what] = n
        return found


# --------------------------------------------------------------------------- the measures


def timed(call, runs: int) -> tuple[float, list[float]]:
    """(the warm-up call's ms, the next ``runs`` calls' ms)."""
    started = time.perf_counter()
    call()
    first = (time.perf_counter() - started) * 1000
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return first, samples


def expect_200(response, what: str):
    if response.status_code != 200:
        body = getattr(response, "content", b"")[:500]
        raise BenchError(f"{what} answered {response.status_code}: {body!r}")
    return response


def capture_queries() -> tuple[list[dict], float]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from analytics.selectors import dashboard

    started = time.perf_counter()
    with CaptureQueriesContext(connection) as ctx:
        dashboard()
    total = (time.perf_counter() - started) * 1000
    queries = [{"sql": q["sql"], "ms": float(q["time"]) * 1000} for q in ctx.captured_queries]
    return queries, total


def explain(sql: str) -> list[str]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
        return [row[0] for row in cursor.fetchall()]


def figures_check(now) -> list[tuple[str, object, object]]:
    """(figure, dashboard's value, the same counted directly in SQL) at one moment."""
    from django.db import connection
    from django.utils import timezone

    from analytics.selectors import dashboard
    from analytics.services import Window

    figures = dashboard(now=now)
    today = timezone.localdate(now)
    yesterday = today - timedelta(days=1)
    day = Window.of_day(yesterday)
    day_start, day_end = day.start, day.end
    month_start = Window.of_day(today.replace(day=1)).start
    since = now - timedelta(hours=24)

    def one(statement: str, *params):
        with connection.cursor() as cursor:
            cursor.execute(statement, list(params))
            return cursor.fetchone()

    p50, p95 = one(
        """SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s),
                  percentile_cont(0.95) WITHIN GROUP (ORDER BY s)
           FROM (SELECT extract(epoch FROM last_synced_at - created_at) AS s
                 FROM routing_jobrouting
                 WHERE last_synced_at >= %s AND last_synced_at < %s) AS t""",
        since,
        now,
    )
    yesterday_row = next(d for d in figures["daily"] if d["day"] == yesterday)
    statuses = dict(
        (status, n)
        for status, n in _rows(
            "SELECT sync_status, count(*) FROM routing_jobrouting GROUP BY sync_status"
        )
    )
    events = dict(_rows("SELECT status, count(*) FROM routing_outboxevent GROUP BY status"))
    direct_day = one(
        """SELECT
            (SELECT count(*) FROM jobs_job WHERE created_at >= %s AND created_at < %s),
            (SELECT count(*) FROM routing_jobrouting r JOIN jobs_job j ON j.id = r.job_id
             WHERE j.created_at >= %s AND j.created_at < %s),
            (SELECT count(*) FROM routing_jobrouting
             WHERE last_synced_at >= %s AND last_synced_at < %s),
            (SELECT count(*) FROM routing_jobrouting
             WHERE completed_at >= %s AND completed_at < %s),
            (SELECT coalesce(sum(revenue), 0) FROM routing_jobrouting
             WHERE completed_at >= %s AND completed_at < %s)""",
        *([day_start, day_end] * 5),
    )
    last_run = figures["last_nightly_run"] or {}
    rows = [
        ("total jobs", figures["total_jobs"], one("SELECT count(*) FROM jobs_job")[0]),
        (
            "total routings",
            figures["total_routings"],
            one("SELECT count(*) FROM routing_jobrouting")[0],
        ),
        (
            "jobs created, 24 h",
            figures["jobs_created_24h"],
            one(
                "SELECT count(*) FROM jobs_job WHERE created_at >= %s AND created_at <= %s",
                since,
                now,
            )[0],
        ),
        (
            "routings synced, 24 h",
            figures["routings_synced_24h"],
            one(
                "SELECT count(*) FROM routing_jobrouting"
                " WHERE last_synced_at >= %s AND last_synced_at <= %s",
                since,
                now,
            )[0],
        ),
        (
            "failed provider calls, 24 h",
            figures["sync_failures_24h"],
            one(
                "SELECT count(*) FROM routing_syncattempt WHERE outcome IN ('retry', 'failed')"
                " AND started_at >= %s AND started_at <= %s",
                since,
                now,
            )[0],
        ),
        ("sync latency p50 s, 24 h", _round(figures["sync_latency_p50_seconds"]), _round(p50)),
        ("sync latency p95 s, 24 h", _round(figures["sync_latency_p95_seconds"]), _round(p95)),
        ("routings waiting", figures["routings_waiting"], statuses.get("pending", 0)),
        ("routings in progress", figures["routings_in_progress"], statuses.get("processing", 0)),
        ("routings synced, open", figures["routings_synced_open"], statuses.get("synced", 0)),
        ("routings failed", figures["routings_failed"], statuses.get("failed", 0)),
        (
            "active routings",
            figures["active_routings"],
            sum(statuses.get(s, 0) for s in ("pending", "processing", "synced")),
        ),
        ("events pending", figures["backlog"]["pending"], events.get("pending", 0)),
        ("events in flight", figures["backlog"]["in_flight"], events.get("processing", 0)),
        ("dead letters", figures["backlog"]["dead"], events.get("dead", 0)),
        (
            "revenue, month to date",
            figures["revenue_mtd"],
            one(
                "SELECT coalesce(sum(revenue), 0) FROM routing_jobrouting"
                " WHERE completed_at >= %s AND completed_at <= %s",
                month_start,
                now,
            )[0],
        ),
        (f"{yesterday}: jobs created", yesterday_row["jobs_created"], direct_day[0]),
        (f"{yesterday}: routings created", yesterday_row["routings_created"], direct_day[1]),
        (f"{yesterday}: routings synced", yesterday_row["routings_synced"], direct_day[2]),
        (f"{yesterday}: routings completed", yesterday_row["routings_completed"], direct_day[3]),
        (f"{yesterday}: revenue", yesterday_row["revenue"], direct_day[4]),
        (
            "last nightly run: clients",
            last_run.get("clients"),
            one(
                "SELECT count(*) FROM processing_processingjob WHERE trigger = 'nightly'"
                " AND run_date = (SELECT max(run_date) FROM processing_processingjob"
                " WHERE trigger = 'nightly')"
            )[0],
        ),
    ]
    return rows


HOURLY = ("jobs created, 24 h", "routings synced, 24 h", "failed provider calls, 24 h")


def differs(name: str) -> str:
    if name in HOURLY:
        # The hourly series starts at the top of the hour 23 hours ago: 23 to 24 hours.
        return "DIFFERS (the dashboard's window starts at the top of the hour 23 h ago)"
    return "DIFFERS"


def _rows(statement: str) -> list[tuple]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement)
        return cursor.fetchall()


def _round(value):
    return None if value is None else round(float(value), 2)


# --------------------------------------------------------------------------- main


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--companies", type=int, default=10000)
    parser.add_argument("--routings", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=90, help="days of history")
    parser.add_argument("--runs", type=int, default=20, help="timed calls of each kind")
    parser.add_argument("--nights", type=int, default=7, help="nightly runs recorded")
    parser.add_argument("--nightly-clients", type=int, default=3000)
    parser.add_argument("--db", default="tradeengage_bench_dashboard")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/10")
    parser.add_argument("--pg-host", default="127.0.0.1")
    parser.add_argument("--pg-port", type=int, default=5432)
    parser.add_argument("--pg-user", default="postgres")
    parser.add_argument("--venv", default=str(REPO / ".venv"))
    parser.add_argument(
        "--gunicorn", action="store_true", help="also time both pages through a real gunicorn"
    )
    parser.add_argument("--port", type=int, default=8300, help="the gunicorn's port")
    parser.add_argument("--workers", type=int, default=2, help="the gunicorn's workers")
    parser.add_argument("--work-dir", help="the gunicorn's log (default: a new /tmp folder)")
    parser.add_argument("--json-out", help="write the figures here as JSON")
    parser.add_argument("--keep", action="store_true", help="do not drop the database")
    args = parser.parse_args(argv)
    if args.routings < 10 or args.days < 2 or args.runs < 1 or args.nights < 1:
        parser.error("--routings >= 10, --days >= 2, --runs >= 1 and --nights >= 1")
    return args


def bench_env(args, pg: Postgres) -> dict:
    return {
        "DJANGO_SETTINGS_MODULE": "tradeengage.settings",
        "DATABASE_URL": pg.url(args.db),
        "REDIS_URL": args.redis_url,
        "DEBUG": "false",
        "SECRET_KEY": "dashboard-benchmark-only-not-a-secret-" + "x" * 40,
        "FIELD_ENCRYPTION_KEYS": BENCH_FIELD_ENCRYPTION_KEYS,
        "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        "SECURE_SSL_REDIRECT": "false",
        "LOG_LEVEL": "WARNING",
        "LOG_FORMAT": "json",
    }


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    pg = Postgres(args.pg_host, args.pg_port, args.pg_user)
    venv = Path(args.venv)
    created = False
    try:
        machine = machine_info(pg, venv / "bin" / "python", venv / "bin" / "gunicorn", None)
        autovacuum = pg.sql("SHOW autovacuum")
        if args.gunicorn and port_answers(args.port):
            raise BenchError(f"something already answers on port {args.port}")
        pg.recreate(args.db)
        created = True
        env = bench_env(args, pg)
        os.environ.update(env)
        sys.path.insert(0, str(REPO))
        import django

        django.setup()
        result = run_bench(args, pg, env, machine, autovacuum)
    except BenchError as exc:
        log(f"error: {exc}")
        return 2
    except KeyboardInterrupt:
        log("interrupted")
        return 2
    except Exception:  # a failed statement, a bug: say what, still drop the database
        log("error:\n" + traceback.format_exc())
        return 2
    finally:
        if created and not args.keep:
            if "django" in sys.modules:
                from django.db import connections

                connections.close_all()
            try:
                pg.drop(args.db)
            except BenchError as exc:
                log(f"warning: {exc}")
    return result


def run_bench(args, pg, env, machine, autovacuum) -> int:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    from access.services import api_key_create
    from analytics.selectors import dashboard
    from analytics.services import daily_figures_roll_up

    log(f"migrating {args.db}")
    call_command("migrate", verbosity=0, interactive=False)

    log(f"loading {args.companies:,} companies, {args.routings:,} routings over {args.days} days")
    loader = Loader(args, timezone.now())
    load_seconds = loader.load()
    connection.close()
    started = time.monotonic()
    pg.sql("VACUUM ANALYZE", db=args.db)
    vacuum_seconds = time.monotonic() - started
    log(f"VACUUM ANALYZE in {vacuum_seconds:.1f} s")
    counts = pg.counts(
        args.db,
        {
            "companies": "jobs_company",
            "jobs": "jobs_job",
            "routings": "routing_jobrouting",
            "sync attempts": "routing_syncattempt",
            "outbox events": "routing_outboxevent",
            "processing jobs": "processing_processingjob",
        },
    )
    by_status = dict(
        line.split("|")
        for line in pg.sql(
            "SELECT sync_status, count(*) FROM routing_jobrouting GROUP BY 1 ORDER BY 1",
            db=args.db,
        ).splitlines()
    )
    events = dict(
        line.split("|")
        for line in pg.sql(
            "SELECT status, count(*) FROM routing_outboxevent GROUP BY 1 ORDER BY 1", db=args.db
        ).splitlines()
    )
    db_size = pg.sql(f"SELECT pg_size_pretty(pg_database_size('{args.db}'))")

    # (a) the roll-up: every closed day, then only yesterday again.
    log("rolling up the daily figures (first run: every closed day)")
    started = time.perf_counter()
    days_first = daily_figures_roll_up()
    rollup_first_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    days_second = daily_figures_roll_up()
    rollup_second_ms = (time.perf_counter() - started) * 1000
    log(f"roll-up: {days_first} days in {rollup_first_ms:.0f} ms, then {days_second} day(s)")

    # (b) dashboard() in process.
    log(f"dashboard() x {args.runs}")
    dash_first, dash = timed(dashboard, args.runs)
    queries, captured_ms = capture_queries()
    slowest = sorted(queries, key=lambda q: q["ms"], reverse=True)[:3]
    plan = explain(slowest[0]["sql"]) if slowest else []

    # (c) the endpoint with an ops key, (d) the admin page as a superuser.
    ops_key, raw_key = api_key_create(name="dashboard benchmark (ops)")
    api_client = Client(headers={"X-API-Key": raw_key})
    log(f"GET /api/v1/analytics/dashboard x {args.runs} (test Client, ops key)")
    api_first, api = timed(
        lambda: expect_200(api_client.get("/api/v1/analytics/dashboard"), "the endpoint"),
        args.runs,
    )
    user = get_user_model().objects.create_superuser(
        "dashboard-bench", "dashboard-bench@example.com", "dashboard-bench-password-1"
    )
    admin_client = Client()
    admin_client.force_login(user)
    log(f"GET /admin/dashboard/ x {args.runs} (test Client, superuser)")
    page = expect_200(admin_client.get("/admin/dashboard/"), "the admin page")
    if b'id="dashboard"' not in page.content:
        raise BenchError("the admin page answered 200 without the dashboard in it")
    admin_first, admin = timed(
        lambda: expect_200(admin_client.get("/admin/dashboard/"), "the admin page"), args.runs
    )

    rows = [
        (f"daily_figures_roll_up(), first run ({days_first} days)", "", [rollup_first_ms], None),
        (
            f"daily_figures_roll_up(), second run ({days_second} day)",
            "",
            [rollup_second_ms],
            None,
        ),
        ("dashboard() in process", dash_first, dash, None),
        ("GET /api/v1/analytics/dashboard (test Client)", api_first, api, TARGET_P95_MS),
        ("GET /admin/dashboard/ (test Client)", admin_first, admin, TARGET_P95_MS),
    ]

    # Optionally the same through a real gunicorn (the session made by force_login).
    if args.gunicorn:
        work = Path(args.work_dir or f"/tmp/tradeengage-dashboard-{int(time.time())}")
        work.mkdir(parents=True, exist_ok=True)
        gunicorn = Path(args.venv) / "bin" / "gunicorn"
        server_env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", "/tmp"),
            **env,
        }
        server = Server(
            "gunicorn",
            args.port,
            [gunicorn, "tradeengage.wsgi", "-w", args.workers, "-b", f"127.0.0.1:{args.port}"],
            cwd=REPO,
            env=server_env,
            log_path=work / "gunicorn.log",
        )
        base = f"http://127.0.0.1:{args.port}"
        try:
            server.start()
            wait_until(
                server, lambda: http("GET", base + "/api/v1/health/live")[0] == 200, "health"
            )
            session = admin_client.cookies["sessionid"].value
            for path, headers, what in [
                ("/api/v1/analytics/dashboard", {"X-API-Key": raw_key}, "endpoint"),
                ("/admin/dashboard/", {"Cookie": f"sessionid={session}"}, "admin page"),
            ]:

                def get(path=path, headers=headers, what=what):
                    status, body = http("GET", base + path, headers=headers, timeout=30)
                    if status != 200:
                        raise BenchError(f"gunicorn's {what} answered {status}: {body[:300]}")

                for _ in range(args.workers):  # every worker's first request, untimed
                    get()
                log(f"GET {path} x {args.runs} (gunicorn, {args.workers} workers)")
                first, samples = timed(get, args.runs)
                rows.append((f"GET {path} (gunicorn)", first, samples, TARGET_P95_MS))
        finally:
            server.stop()

    check = figures_check(timezone.now())

    # ---------------------------------------------------------------- report
    verdicts = []
    table = []
    for what, first, samples, target in rows:
        s = summary(samples)
        if target is not None:
            ok = s["p95_ms"] < target
            verdicts.append((ok, f"{what}: p95 {s['p95_ms']:.1f} ms < {target:.0f} ms"))
        table.append(
            [
                what,
                first if isinstance(first, str) else fmt(first),
                str(s["runs"]),
                fmt(s["p50_ms"]),
                fmt(s["p95_ms"]),
                fmt(s["max_ms"]),
                "" if target is None else ("PASS" if s["p95_ms"] < target else "FAIL"),
            ]
        )
    passed = all(ok for ok, _ in verdicts)
    lines = [
        "",
        "# Ops dashboard benchmark",
        "",
        *machine_lines(machine),
        f"Data:    {counts['companies']:,} companies, {counts['jobs']:,} jobs, "
        f"{counts['routings']:,} routings over {args.days} days "
        f"({', '.join(f'{k} {int(v):,}' for k, v in by_status.items())}), "
        f"{counts['sync attempts']:,} sync attempts, {counts['outbox events']:,} outbox events "
        f"({', '.join(f'{k} {int(v):,}' for k, v in events.items())}), "
        f"{counts['processing jobs']:,} nightly runs; database {db_size}",
        f"Load:    {load_seconds:.1f} s of set-based SQL, then VACUUM ANALYZE {vacuum_seconds:.1f}"
        f" s (production runs autovacuum; this server has autovacuum = {autovacuum})",
        "",
        *markdown_table(
            ["measured", "first call ms", "runs", "p50 ms", "p95 ms", "max ms", "< 500 ms"],
            table,
        ),
        "",
        f"One dashboard() call: {len(queries)} queries, {sum(q['ms'] for q in queries):.1f} ms "
        f"in the database of {captured_ms:.1f} ms. The slowest three:",
        "",
        *markdown_table(
            ["ms", "query"],
            [[fmt(q["ms"]), " ".join(q["sql"].split())[:150]] for q in slowest],
        ),
        "",
        "EXPLAIN (ANALYZE, BUFFERS) of the slowest:",
        *textwrap.wrap(
            " ".join(slowest[0]["sql"].split()) if slowest else "",
            width=100,
            initial_indent="    ",
            subsequent_indent="    ",
        ),
        "",
        *(f"    {line}" for line in plan),
        "",
        "The dashboard's figures against the same counted directly in SQL (same moment):",
        "",
        *markdown_table(
            ["figure", "dashboard", "direct SQL", ""],
            [
                [name, str(shown), str(direct), "" if shown == direct else differs(name)]
                for name, shown, direct in check
            ],
        ),
        "",
        *(f"{'PASS' if ok else 'FAIL'}  {text}" for ok, text in verdicts),
        f"{'PASS' if passed else 'FAIL'}  ops dashboard under {TARGET_P95_MS:.0f} ms (p95) "
        f"with {counts['routings']:,} routings",
    ]
    print("\n".join(lines), flush=True)
    if args.json_out:
        Path(args.json_out).write_text(
            json.dumps(
                {
                    "machine": machine,
                    "options": vars(args),
                    "counts": counts,
                    "load_seconds": load_seconds,
                    "vacuum_seconds": vacuum_seconds,
                    "load_steps": loader.steps,
                    "measures": {
                        what: {"first_ms": first, **summary(samples)}
                        for what, first, samples, _ in rows
                    },
                    "queries": queries,
                    "plan": plan,
                    "check": [[n, str(a), str(b)] for n, a, b in check],
                    "passed": passed,
                },
                indent=2,
                default=str,
            )
        )
    ops_key.delete()
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())

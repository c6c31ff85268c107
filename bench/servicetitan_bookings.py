#!/usr/bin/env python3
"""ServiceTitan bookings benchmark: bookings created per second through the real ServiceTitan
client (``integrations/servicetitan/client.py``) over HTTP against the simulator's slice of the
real API (``/servicetitan-sim/``), served by gunicorn on PostgreSQL.

Each booking is what a sync makes: a lookup by externalId, a customer lookup by phone (for
``isFirstTimeClient``), then the create (three requests, plus a token fetch per thread's first
call); the booking stays New. Bookings carry category "garage_doors" and the client a mapping
(campaign, business unit and job type by trade) that the simulator checks against the tenant's
active ids. For each case the client runs ``--threads`` threads for ``--duration`` seconds with
fresh booking ids and reports bookings/s, per-booking latency, errors and the HTTP statuses the
server answered (counted by wrapping ``ServiceTitanApi._send`` in the driver), 429s among them.

Two limits are at play, set per case: the client's own request budget (``requests_per_second``,
a token bucket in Redis) and the simulator's (``SERVICETITAN_SIMULATOR_REQUESTS_PER_SECOND``: a
429 with ``Retry-After: 1`` above it per app key and tenant; the client waits a short 429 out
within the call, up to 3 times and 5 s in all). The cases:

- delays off, both limits lifted: the capacity of client and simulator together;
- delays off, both at ServiceTitan's 60 requests/s: what one tenant gets;
- delays off, the client's budget lifted against the simulator's 60/s: 429s, waited out;
- delays on (seed 001; in the slice only the create sleeps, 800 ms), both limits lifted.

    .venv/bin/python bench/servicetitan_bookings.py          # about 2 minutes

Needs PostgreSQL (superuser, trust auth; psql on the PATH) and Redis on localhost; drops and
recreates ``--db`` (default ``tradeengage_stbench``), flushes the Redis database of
``--redis-url`` (default db 11) and listens on ``--port`` (8200).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    BENCH_FIELD_ENCRYPTION_KEYS,
    REPO,
    BenchError,
    Postgres,
    Server,
    cpu_snapshot,
    cpu_split,
    log,
    machine_info,
    machine_lines,
    redis_flushdb,
    run,
)
from harness import wait_until as wait_for_server

# The benchmark's client at the simulator, which the server is configured to accept.
CLIENT_ID, CLIENT_SECRET = "bench", "bench-secret"

LIFTED = 100000
CASES = [
    # (label, simulation delays, client's requests/s per tenant, simulator's requests/s)
    ("delays off, both limits lifted", False, LIFTED, LIFTED),
    ("delays off, client 60/s, simulator 60/s", False, 60, 60),
    ("delays off, client lifted, simulator 60/s (429s)", False, LIFTED, 60),
    ("delays on, both limits lifted", True, LIFTED, LIFTED),
]
# The mapping the driver's client sends bookings with: ids of the simulator's tenant (office.py),
# by the bookings' trade, so that the client's mapping and the simulator's checks both run.
MAPPING = {
    "campaign_id": 41,
    "business_unit_id": 50,
    "business_units_by_trade": {"garage_doors": 51},
    "job_type_id": 60,
    "job_types_by_category": {"garage_doors": 60},
}
BOOKINGS_TABLE = "integrations_simulatedbooking"


def driver(argv: list[str]) -> None:
    """Inside Django: create bookings through the real client; prints the results as JSON."""
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradeengage.settings")
    import django  # only the driver side needs Django; the measuring side runs without it

    django.setup()
    # Application modules load only once Django is set up.
    from integrations.providers import ProviderError
    from integrations.servicetitan.client import ServiceTitanApi
    from integrations.servicetitan.mapping import booking_mapping
    from integrations.servicetitan.service import servicetitan_config
    from integrations.servicetitan.types import Booking

    base_url, threads, duration, per_second = argv[0], int(argv[1]), float(argv[2]), argv[3]
    config = servicetitan_config(
        {
            "api_url": f"{base_url}/servicetitan-sim",
            "auth_url": f"{base_url}/servicetitan-sim",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "app_key": "bench-app-key",
            "tenant_id": "2001",
            "booking_provider_id": "7",
            "requests_per_second": int(per_second),
            "timeout_seconds": 30,
            **MAPPING,
        }
    )
    booking_mapping(config)  # the client's own check of the mapping: raises if it is invalid
    latencies, errors = [], []
    statuses: dict[str, int] = {}
    lock = threading.Lock()
    send = ServiceTitanApi._send

    def counted_send(self, method, url, *, path, **kwargs):
        """Every HTTP exchange's status (or exception name); token fetches apart."""
        outcome = "error"
        try:
            response = send(self, method, url, path=path, **kwargs)
            outcome = str(response.status_code)
            return response
        except ProviderError as exc:
            outcome = type(exc).__name__
            raise
        finally:
            key = "token" if path == "/connect/token" else outcome
            with lock:
                statuses[key] = statuses.get(key, 0) + 1

    ServiceTitanApi._send = counted_send
    deadline = time.monotonic() + duration

    def work():
        client = ServiceTitanApi(config)
        while time.monotonic() < deadline:
            booking = Booking(
                booking_id=str(uuid.uuid4()),
                first_name="Jane",
                last_name="Smith",
                phone="5559876543",
                email="jane.smith@example.com",
                address="456 Oak Avenue",
                city="Phoenix",
                state="AZ",
                zip="85001",
                problem_type="broken_spring",
                summary="Garage door spring snapped",
                category="garage_doors",
                trades=("garage_doors",),
            )
            started = time.monotonic()
            try:
                client.create_job(booking)
            except ProviderError as exc:
                with lock:
                    errors.append(str(exc)[:200])
                continue
            with lock:
                latencies.append(time.monotonic() - started)

    started = time.monotonic()
    workers = [threading.Thread(target=work) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    elapsed = time.monotonic() - started
    latencies.sort()

    def percentile(p):
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    print(
        json.dumps(
            {
                "bookings": len(latencies),
                "seconds": round(elapsed, 2),
                "bookings_per_s": round(len(latencies) / elapsed, 1),
                "p50_ms": round(percentile(0.5), 1) if latencies else None,
                "p99_ms": round(percentile(0.99), 1) if latencies else None,
                "mean_ms": round(statistics.mean(latencies) * 1000, 1) if latencies else None,
                "errors": len(errors),
                "error_samples": sorted(set(errors))[:3],
                # API requests the server answered other than with a 429, per booking made.
                "requests_per_booking": round(
                    sum(n for k, n in statuses.items() if k.isdigit() and k != "429")
                    / len(latencies),
                    2,
                )
                if latencies
                else None,
                "http_429": statuses.get("429", 0),
                "statuses": dict(sorted(statuses.items())),
            }
        )
    )


def stored_bookings(pg: Postgres, db: str) -> int:
    """The simulator's New bookings with the mapping's campaign and the trade's ids."""
    return int(
        pg.sql(
            f"SELECT count(*) FROM {BOOKINGS_TABLE} WHERE status = 'New' AND campaign_id = "
            f"{MAPPING['campaign_id']} AND business_unit_id = "
            f"{MAPPING['business_units_by_trade']['garage_doors']} AND job_type_id = "
            f"{MAPPING['job_types_by_category']['garage_doors']}",
            db=db,
        )
    )


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--driver"]:
        driver(argv[1:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers (threads: 4)")
    parser.add_argument("--port", type=int, default=8200)
    parser.add_argument("--db", default="tradeengage_stbench")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11")
    parser.add_argument("--venv", default=str(REPO / ".venv"))
    parser.add_argument("--work-dir")
    args = parser.parse_args(argv)
    if args.db in {"postgres", "template0", "template1"}:
        parser.error(f"refusing to use database {args.db}")

    python = Path(args.venv) / "bin" / "python"
    gunicorn = Path(args.venv) / "bin" / "gunicorn"
    work = Path(args.work_dir or f"/tmp/tradeengage-stbench-{int(time.time())}")
    work.mkdir(parents=True, exist_ok=True)
    pg = Postgres("127.0.0.1", 5432, "postgres")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "DATABASE_URL": pg.url(args.db),
        "REDIS_URL": args.redis_url,
        "DEBUG": "false",
        "SECRET_KEY": "servicetitan-benchmark-only-" + "x" * 40,
        "FIELD_ENCRYPTION_KEYS": BENCH_FIELD_ENCRYPTION_KEYS,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false",
        "LOG_LEVEL": "WARNING",
        # DEBUG is off, so the simulator is mounted and its client configured explicitly.
        "SERVICETITAN_SIMULATOR_ENABLED": "true",
        "SERVICETITAN_SIMULATOR_CLIENTS": f"{CLIENT_ID}:{CLIENT_SECRET}",
    }
    base_url = f"http://127.0.0.1:{args.port}"
    results = []
    server = None
    try:
        machine = machine_info(pg, python, gunicorn, None)
        pg.recreate(args.db)
        run([python, "manage.py", "migrate", "--noinput", "-v", "0"], env=env, cwd=REPO)
        for label, delays, per_second, server_per_second in CASES:
            redis_flushdb(args.redis_url)
            stored_before = stored_bookings(pg, args.db)
            server_env = {
                **env,
                "SERVICETITAN_SIMULATION_DELAYS": "true" if delays else "false",
                "SERVICETITAN_SIMULATOR_REQUESTS_PER_SECOND": str(server_per_second),
            }
            server = Server(
                "simulator",
                args.port,
                [
                    gunicorn,
                    "tradeengage.wsgi",
                    "-w",
                    str(args.workers),
                    "--threads",
                    "4",
                    "-b",
                    f"127.0.0.1:{args.port}",
                ],
                cwd=REPO,
                env=server_env,
                log_path=work / "gunicorn.log",
            )
            server.start()
            wait_for_server(
                server,
                lambda: urllib.request.urlopen(f"{base_url}/api/v1/health/live", timeout=2),
                "/api/v1/health/live",
            )
            log(f"case: {label}")
            cpu_before, children_before = cpu_snapshot(), os.times()
            output = run(
                [
                    python,
                    __file__,
                    "--driver",
                    base_url,
                    str(args.threads),
                    str(args.duration),
                    str(per_second),
                ],
                env=env,
                cwd=REPO,
            )
            cpu = cpu_split(cpu_before, cpu_snapshot(), server.pgid, {os.getpgid(0)})
            children = os.times()
            # The driver has exited: its CPU is in this process's waited-for children.
            cpu["client"] = (children.children_user + children.children_system) - (
                children_before.children_user + children_before.children_system
            )
            result = {
                "case": label,
                "client_per_s": per_second,
                "simulator_per_s": server_per_second,
                **json.loads(output.strip().splitlines()[-1]),
                # Bookings the simulator stored with the mapping's ids for the trade (a check
                # that every reported booking was made, and made right).
                "stored": stored_bookings(pg, args.db) - stored_before,
                # CPU seconds used during the case: the driver (client), the simulator's
                # gunicorn, PostgreSQL, Redis, and anything else on the machine.
                "cpu_s": {name: round(seconds, 1) for name, seconds in cpu.items()},
            }
            log(f"{label}: {result}")
            results.append(result)
            server.stop()
            server = None
        pg.drop(args.db)
        redis_flushdb(args.redis_url)
    except BenchError as exc:
        log(f"error: {exc}")
        return 2
    finally:
        if server is not None:
            server.stop()
    lines = [
        "",
        *machine_lines(machine),
        f"Client: {args.threads} threads for {args.duration:g} s per case; simulator: "
        f"gunicorn {args.workers} workers x 4 threads",
        "",
        "| case | bookings | bookings/s | p50 ms | p99 ms | errors | 429s | requests/booking |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r['case']} | {r['bookings']} | {r['bookings_per_s']} | {r['p50_ms']} | "
            f"{r['p99_ms']} | {r['errors']} | {r['http_429']} | {r['requests_per_booking']} |"
        )
    print("\n".join(lines))
    for r in results:
        if r["stored"] != r["bookings"]:
            log(f"{r['case']}: {r['bookings']} bookings reported, {r['stored']} stored")
    return 0 if all(r["errors"] == 0 and r["stored"] == r["bookings"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

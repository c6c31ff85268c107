#!/usr/bin/env python3
"""ServiceTitan bookings benchmark: bookings created per second through the real ServiceTitan
client (``integrations/servicetitan/client.py``) over HTTP against the simulator's slice of the
real API (``/servicetitan-sim/``), served by gunicorn on PostgreSQL.

Each booking is what a sync makes: a lookup by externalId, then the create (two requests, plus a
token fetch per thread's first call). For each case the client runs ``--threads`` threads for
``--duration`` seconds with fresh booking ids and reports bookings/s and per-booking latency:

- simulation delays off and on (seed 001: create 800 ms, queries 300-600 ms), and
- the per-tenant rate limit at ServiceTitan's 60 requests/s, or lifted, to show the client's and
  the simulator's own capacity.

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
    log,
    machine_info,
    machine_lines,
    redis_flushdb,
    run,
)
from harness import wait_until as wait_for_server

# The benchmark's client at the simulator, which the server is configured to accept.
CLIENT_ID, CLIENT_SECRET = "bench", "bench-secret"

CASES = [
    # (label, simulation delays, requests per second per tenant)
    ("delays off, rate limit lifted", False, 100000),
    ("delays off, 60 requests/s per tenant", False, 60),
    ("delays on, rate limit lifted", True, 100000),
]


def driver(argv: list[str]) -> None:
    """Inside Django: create bookings through the real client; prints the results as JSON."""
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradeengage.settings")
    import django  # only the driver side needs Django; the measuring side runs without it

    django.setup()
    # Application modules load only once Django is set up.
    from integrations.providers import ProviderError
    from integrations.servicetitan.client import ServiceTitanApi
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
        }
    )
    latencies, errors = [], []
    lock = threading.Lock()
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
            }
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
        for label, delays, per_second in CASES:
            redis_flushdb(args.redis_url)
            server_env = {**env, "SERVICETITAN_SIMULATION_DELAYS": "true" if delays else "false"}
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
            result = {"case": label, **json.loads(output.strip().splitlines()[-1])}
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
        "| case | bookings | bookings/s | p50 ms | p99 ms | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r['case']} | {r['bookings']} | {r['bookings_per_s']} | {r['p50_ms']} | "
            f"{r['p99_ms']} | {r['errors']} |"
        )
    print("\n".join(lines))
    return 0 if all(r["errors"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Chaos benchmark: workers SIGKILLed in the middle of their batches while a backlog of
routings syncs, with celery beat running the relay as in production. Prints how many routings
were lost (not synced, or synced without a job at the provider) and duplicated (more than one
job at the provider for a routing); both must be 0.

A backlog of ``--routings`` (default 2,000) pending routings goes to ``--workers`` worker
processes with a mock provider latency of ``--latency-ms``, claims leased for
``--lease-seconds``. Each time another ``--kill-every`` routings are synced, one worker is
killed with SIGKILL (``--kills`` times) and a new one started. Beat runs the relay every second,
so the killed workers' claims are taken again once their lease expires.

    .venv/bin/python bench/chaos_sync.py

Same requirements and side effects as ``sync_throughput.py`` (it drops and recreates
``--db``, flushes the Redis database of ``--redis-url``). Exit status 0 when nothing was lost or
duplicated, 1 otherwise, 2 when the run could not be done.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import REPO, BenchError, log, machine_info, machine_lines, redis_flushdb
from sync_throughput import Bench


def chaos(bench: Bench, args) -> dict:
    bench.pg.recreate(args.db)
    bench.manage("migrate", "--noinput", "-v", "0")
    bench.manage("seed_demo", stdout_path=bench.work / "seed.log")
    redis_flushdb(args.redis_url)
    bench.django("reset", str(args.latency_ms))
    bench.django("backlog", str(args.routings))
    lease = {"OUTBOX_LEASE_SECONDS": args.lease_seconds, "OUTBOX_RELAY_INTERVAL_SECONDS": 1}
    bench.start_workers("chaos", **lease)
    beat = subprocess.Popen(
        [
            bench.python,
            "-m",
            "celery",
            "-A",
            "tradeengage",
            "beat",
            "--scheduler",
            "tradeengage.beat:OutageTolerantScheduler",
            "--pidfile=",
        ],
        cwd=REPO,
        env={**bench.env, "OUTBOX_RELAY_INTERVAL_SECONDS": "1"},
        stdout=open(bench.work / "beat.log", "wb"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    started = time.monotonic()
    kills, held_at_kills = 0, []
    try:
        while time.monotonic() - started < args.timeout:
            synced = bench.count(
                "SELECT count(*) FROM routing_jobrouting WHERE sync_status = 'synced'"
            )
            if synced >= args.routings:
                break
            if kills < args.kills and synced >= (kills + 1) * args.kill_every:
                held = bench.count(
                    "SELECT count(*) FROM routing_jobrouting WHERE sync_status = 'processing'"
                )
                victim = bench.workers.pop(0)
                os.killpg(victim.pid, signal.SIGKILL)
                victim.wait(timeout=10)
                kills += 1
                held_at_kills.append(held)
                log(f"kill {kills}: SIGKILL at {synced} synced, {held} routings claimed")
                bench.start_workers("chaos", count=1, **lease)
            time.sleep(0.05)
        seconds = time.monotonic() - started
    finally:
        os.killpg(beat.pid, signal.SIGTERM)
        beat.wait(timeout=20)
        bench.stop_workers()
    check = bench.exactly_once()
    replays = check["provider_create_calls"] - check["provider_jobs"]
    return {
        "seconds": round(seconds, 1),
        "kills": kills,
        "claimed_at_kills": held_at_kills,
        "replayed_create_calls": replays,
        **check,
    }


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--routings", type=int, default=2000)
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--kill-every", type=int, default=400, help="synced routings per kill")
    parser.add_argument("--lease-seconds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--call-concurrency", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--db", default="tradeengage_chaos")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--pg-host", default="127.0.0.1")
    parser.add_argument("--pg-port", type=int, default=5432)
    parser.add_argument("--pg-user", default="postgres")
    parser.add_argument("--venv", default=str(REPO / ".venv"))
    parser.add_argument("--work-dir")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    if args.db in {"postgres", "template0", "template1"}:
        parser.error(f"refusing to use database {args.db}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    bench = Bench(args)
    try:
        machine = machine_info(bench.pg, bench.python, Path(args.venv) / "bin" / "gunicorn", None)
        result = chaos(bench, args)
        if not args.keep:
            bench.pg.drop(args.db)
        redis_flushdb(args.redis_url)
    except BenchError as exc:
        log(f"error: {exc}")
        return 2
    except KeyboardInterrupt:
        log("interrupted")
        return 2
    finally:
        bench.stop_workers()
    ok = result["lost"] == 0 and result["duplicated"] == 0 and result["events_not_done"] == 0
    print(
        "\n".join(
            [
                "",
                *machine_lines(machine),
                f"Workers: {args.workers} x {args.concurrency} threads; provider latency "
                f"{args.latency_ms} ms; lease {args.lease_seconds} s; beat relays every 1 s",
                "",
                f"routings:            {result['routings']}",
                f"workers SIGKILLed:   {result['kills']} (routings claimed at each kill: "
                f"{', '.join(map(str, result['claimed_at_kills'])) or '-'})",
                f"all synced after:    {result['seconds']} s",
                f"lost:                {result['lost']}",
                f"duplicated:          {result['duplicated']}",
                f"events not done:     {result['events_not_done']}",
                f"replayed creates:    {result['replayed_create_calls']} (the same idempotency "
                "key sent again after a kill; the provider kept one job each)",
                "",
                f"{'PASS' if ok else 'FAIL'}  nothing lost or duplicated",
                f"work dir (worker and beat logs): {bench.work}",
            ]
        )
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

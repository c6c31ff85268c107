#!/usr/bin/env python3
"""Chaos benchmark: workers SIGKILLed in the middle of their batches while a backlog of
routings syncs, with celery beat running the relay as in production. Prints how many routings
were lost (not synced, or synced without a job at the provider) and duplicated (more than one
job at the provider for a routing), both of which must be 0, and how long the routings a killed
worker held took to sync after its kill (issue 20: within 90 s).

A backlog of ``--routings`` (default 2,000) pending routings goes to ``--workers`` worker
processes with a mock provider latency of ``--latency-ms`` (800: seed 001's delay) and the
production leases (``OUTBOX_LEASE_SECONDS`` 30, renewed every 10 s) and relay beat (5 s);
``--lease-seconds`` and ``--relay-seconds`` change them. Each time another ``--kill-every``
routings are synced, one worker is killed with SIGKILL (``--kills`` times) and a new one
started. Right after each kill, the routings still claimed are noted: the killed worker's are
among them, free again once their lease runs out.

    .venv/bin/python bench/chaos_sync.py

Same requirements and side effects as ``sync_throughput.py`` (it drops and recreates
``--db``, flushes the Redis database of ``--redis-url``). Exit status 0 when nothing was lost or
duplicated and every routing held at a kill synced in time, 1 otherwise, 2 when the run could
not be done.
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
from sync_throughput import Bench, add_bench_options, checked_args

KILL_TO_SYNCED_TARGET_SECONDS = 90.0


def chaos(bench: Bench, args) -> dict:
    bench.pg.recreate(args.db)
    bench.manage("migrate", "--noinput", "-v", "0")
    bench.manage("seed_demo", stdout_path=bench.work / "seed.log")
    redis_flushdb(args.redis_url)
    bench.django("reset", str(args.latency_ms))
    bench.django("backlog", str(args.routings))
    bench.pg.sql(
        "CREATE TABLE chaos_held (kill int, routing_id uuid, killed_at timestamptz)", db=args.db
    )
    overrides = {}
    if args.lease_seconds:
        overrides["OUTBOX_LEASE_SECONDS"] = str(args.lease_seconds)
    if args.relay_seconds:
        overrides["OUTBOX_RELAY_INTERVAL_SECONDS"] = str(args.relay_seconds)
    bench.env.update(overrides)
    bench.start_workers("chaos")
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
        env=bench.env,
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
                victim = bench.workers.pop(0)
                os.killpg(victim.pid, signal.SIGKILL)
                victim.wait(timeout=10)
                kills += 1
                # Noted after the kill: the dead worker's claims stay as they were until their
                # lease runs out, so all of them are here (and the live worker's of the moment).
                held = bench.count(
                    "WITH held AS (INSERT INTO chaos_held"
                    f" SELECT {kills}, id, now() FROM routing_jobrouting"
                    " WHERE sync_status = 'processing' RETURNING 1) SELECT count(*) FROM held"
                )
                held_at_kills.append(held)
                log(f"kill {kills}: SIGKILL at {synced} synced, {held} routings claimed")
                bench.start_workers("chaos", count=1)
            time.sleep(0.05)
        seconds = time.monotonic() - started
    finally:
        os.killpg(beat.pid, signal.SIGTERM)
        beat.wait(timeout=20)
        bench.stop_workers()
    check = bench.exactly_once()
    replays = check["provider_create_calls"] - check["provider_jobs"]
    after_kills = [
        {
            "kill": int(kill),
            "held": int(held),
            "not_synced": int(not_synced),
            "slowest_s": float(slowest or 0),
        }
        for kill, held, not_synced, slowest in (
            line.split("|")
            for line in bench.pg.sql(
                "SELECT h.kill, count(*), count(*) FILTER (WHERE r.sync_status <> 'synced'),"
                " round(max(extract(epoch FROM r.last_synced_at - h.killed_at))::numeric, 1)"
                " FROM chaos_held h JOIN routing_jobrouting r ON r.id = h.routing_id"
                " GROUP BY h.kill ORDER BY h.kill",
                db=args.db,
            ).splitlines()
        )
    ]
    return {
        "seconds": round(seconds, 1),
        "kills": kills,
        "claimed_at_kills": held_at_kills,
        "after_kills": after_kills,
        "replayed_create_calls": replays,
        **check,
    }


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--routings", type=int, default=2000)
    parser.add_argument("--latency-ms", type=int, default=800)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--kill-every", type=int, default=400, help="synced routings per kill")
    parser.add_argument(
        "--lease-seconds", type=int, default=0, help="OUTBOX_LEASE_SECONDS (0: the setting's)"
    )
    parser.add_argument(
        "--relay-seconds",
        type=int,
        default=0,
        help="OUTBOX_RELAY_INTERVAL_SECONDS, the relay's beat (0: the setting's)",
    )
    parser.add_argument("--timeout", type=float, default=300.0)
    add_bench_options(parser, db="tradeengage_chaos", redis_url="redis://127.0.0.1:6379/12")
    return checked_args(parser, argv)


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
    held_in_time = all(
        k["not_synced"] == 0 and k["slowest_s"] <= KILL_TO_SYNCED_TARGET_SECONDS
        for k in result["after_kills"]
    )
    ok = (
        result["lost"] == 0
        and result["duplicated"] == 0
        and result["events_not_done"] == 0
        and result["kills"] == args.kills
        and held_in_time
    )
    lease = f"{args.lease_seconds} s" if args.lease_seconds else "the setting's (30 s)"
    relay = f"{args.relay_seconds} s" if args.relay_seconds else "the setting's (5 s)"
    print(
        "\n".join(
            [
                "",
                *machine_lines(machine),
                f"Workers: {args.workers} x {args.concurrency} threads, provider calls "
                f"{args.call_concurrency} threads per process; provider latency "
                f"{args.latency_ms} ms; lease {lease}; relay beat {relay}",
                "",
                f"routings:            {result['routings']}",
                f"workers SIGKILLed:   {result['kills']} (routings claimed at each kill: "
                f"{', '.join(map(str, result['claimed_at_kills'])) or '-'})",
                f"all synced after:    {result['seconds']} s",
                *(
                    f"kill {k['kill']}: the {k['held']} routings claimed right after it synced "
                    f"within {k['slowest_s']:g} s of the kill ({k['not_synced']} not synced)"
                    for k in result["after_kills"]
                ),
                f"lost:                {result['lost']}",
                f"duplicated:          {result['duplicated']}",
                f"events not done:     {result['events_not_done']}",
                f"replayed creates:    {result['replayed_create_calls']} (the same idempotency "
                "key sent again after a kill; the provider kept one job each)",
                "",
                f"{'PASS' if ok else 'FAIL'}  {args.kills} kills, nothing lost or duplicated, "
                "every routing claimed at a kill synced within "
                f"{KILL_TO_SYNCED_TARGET_SECONDS:g} s of it",
                f"work dir (worker and beat logs): {bench.work}",
            ]
        )
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Job-creation benchmark: our POST /api/v1/jobs/ against the stack's ceiling, in one run.

For each company count it builds a fresh PostgreSQL database for our app (migrate + seed_demo)
and one for the shared ceiling app (../shared/bench/ceiling.py) and starts both under gunicorn;
every network's pair of servers is up for the whole run. Then, for each concurrency and round, it
runs the shared closed-loop load generator against each network in turn, ours and then the
ceiling, with the same duration, data size, concurrency and seed. Figures drift on a small shared
machine, so the numbers that matter are ratios of runs taken a few seconds apart: ours / ceiling
per point, and ours at the largest network / ours at the smallest, each paired within a round.

Standard library only; run it with the project's virtualenv, which has what the servers need:

    .venv/bin/python bench/create_jobs.py                      # 100 and 10,000 companies, c=1,8,32
    .venv/bin/python bench/create_jobs.py --companies 100 --concurrency 8 --duration 5   # smoke
    .venv/bin/python bench/create_jobs.py --ref HEAD   # a commit, not the work tree being edited

Needs PostgreSQL (superuser, trust auth) and Redis on localhost. It drops and recreates the bench
databases (default ``tradeengage_bench_<N>`` and ``ceiling_<N>`` for N companies) and flushes
the bench's Redis database (db 14 by default); ``--keep`` leaves them as they are at the end.
Exit status: 0 when every target passes, 1 when one fails, 2 when the run itself could not be
done.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from create_jobs_report import median_run, report, summarise
from harness import (
    REPO,
    BenchError,
    Server,
    cpu_snapshot,
    cpu_split,
    export_ref,
    log,
    machine_info,
    machine_lines,
    redis_flushdb,
    steal_ticks,
)
from testbed import JOBS_PATH, Testbed


class Bench:
    """The measurement: loadgen against each network's two servers in turn, round after round."""

    def __init__(self, args, testbed: Testbed):
        self.args = args
        self.testbed = testbed
        self.networks: list[dict] = []
        self.points: list[dict] = []
        self.autovacuum: bool | None = None
        self.sizes: list[dict] = []

    def loadgen(
        self,
        label: str,
        server: Server,
        data_path: Path,
        concurrency: int,
        duration: float,
        seed: int,
        out: Path,
    ) -> dict:
        cmd = [
            self.testbed.python,
            self.testbed.loadgen_path,
            "--url",
            f"http://127.0.0.1:{server.port}",
            "--path",
            JOBS_PATH,
            "--data",
            data_path,
            "-c",
            concurrency,
            "-d",
            duration,
            "--seed",
            seed,
            "--skills-per-job",
            "1-2",
            "--json-out",
            out,
        ]
        if self.args.idempotency_keys:
            cmd.append("--idempotency-keys")
        log(f"{label}: loadgen c={concurrency} {duration:g}s")
        steal_before = steal_ticks()
        before, times_before, started = cpu_snapshot(), os.times(), time.monotonic()
        try:
            proc = subprocess.run(
                [str(c) for c in cmd],
                capture_output=True,
                text=True,
                timeout=duration + 120,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise BenchError(f"loadgen against {label} did not finish in time") from exc
        after, times_after, elapsed = cpu_snapshot(), os.times(), time.monotonic() - started
        steal_after = steal_ticks()
        for line in proc.stdout.splitlines():
            log(f"    {line}")
        if proc.returncode != 0:
            raise BenchError(f"loadgen failed ({proc.returncode}): {proc.stderr[-2000:]}")
        result = json.loads(out.read_text())
        others = {s.pgid for s in self.testbed.servers if s is not server and s.pgid}
        split = cpu_split(before, after, server.pgid, others)
        split["loadgen"] = (times_after.children_user + times_after.children_system) - (
            times_before.children_user + times_before.children_system
        )
        jobs = max(result["ok_2xx"], 1)
        capacity = len(os.sched_getaffinity(0)) * elapsed
        result["cpu"] = {
            "seconds": {k: round(v, 3) for k, v in split.items()},
            "ms_per_job": {k: round(v / jobs * 1000, 2) for k, v in split.items()},
            "foreign_share": round(split["foreign"] / capacity, 3),
            "busy_share": round(sum(split.values()) / capacity, 3),
            "steal_share": round(
                (steal_after[0] - steal_before[0]) / max(steal_after[1] - steal_before[1], 1), 3
            ),
        }
        cpu = result["cpu"]
        log(
            f"    cpu ms/job: server {cpu['ms_per_job']['server']}, "
            f"postgres {cpu['ms_per_job']['postgres']}, loadgen {cpu['ms_per_job']['loadgen']}; "
            f"machine busy {cpu['busy_share']:.0%}, other processes {cpu['foreign_share']:.0%}, "
            f"steal {cpu['steal_share']:.0%}"
        )
        return result

    # -- one company count, then all of them

    def set_up(self, n: int, index: int) -> dict:
        """One network size built (see Testbed.build) and warmed up."""
        a = self.args
        network = self.testbed.build(n, index)
        if a.warmup > 0:
            for side, server, data_path in network["sides"]:
                self.loadgen(
                    f"warm-up {side} {n:,}",
                    server,
                    data_path,
                    max(a.workers * 2, 4),
                    a.warmup,
                    a.seed + 1,
                    self.testbed.work / f"warmup-{side}-{n}.json",
                )
        return network

    def measure(self) -> None:
        """Every concurrency, round and network: ours then the ceiling, network after network
        (the order of the networks alternating between rounds), so each ratio the report takes
        compares runs made a few seconds apart."""
        a = self.args
        for index, n in enumerate(a.companies):
            self.networks.append(self.set_up(n, index))
        for c in a.concurrency:
            runs = {(net["n"], side): [] for net in self.networks for side, *_ in net["sides"]}
            for r in range(a.rounds):
                suffix = f"-r{r + 1}" if a.rounds > 1 else ""
                tag = f" (round {r + 1}/{a.rounds})" if a.rounds > 1 else ""
                for net in self.networks if r % 2 == 0 else self.networks[::-1]:
                    for side, server, data_path in net["sides"]:
                        self.analyze_if_no_autovacuum(side, net["n"])
                        runs[(net["n"], side)].append(
                            self.loadgen(
                                f"{side} {net['n']:,}{tag}",
                                server,
                                data_path,
                                c,
                                a.duration,
                                a.seed,
                                self.testbed.work / f"{side}-{net['n']}-c{c}{suffix}.json",
                            )
                        )
                        time.sleep(a.pause)
            for net in self.networks:
                point = {"companies": net["n"], "concurrency": c}
                for side, *_ in net["sides"]:
                    point[side] = median_run(runs[(net["n"], side)])
                    if a.rounds > 1:
                        point[f"{side}_rounds"] = runs[(net["n"], side)]
                self.points.append(point)

        self.points.sort(key=lambda point: (point["companies"], point["concurrency"]))
        self.testbed.stop_servers()
        for net in self.networks:
            size = net["size"]
            size.update(self.testbed.rows_written(net["n"]))
            self.sizes.append(size)

    def analyze_if_no_autovacuum(self, side: str, n: int) -> None:
        """ANALYZE a side's database before a run when the server's autovacuum is off.

        Autovacuum re-analyzes a table as it grows, and that makes every connection plan its
        cached statements again, such as the foreign-key checks PostgreSQL runs at commit.
        Without it, a check first planned while the jobs table held a page keeps scanning the
        whole table for good, and a run costs more the more jobs earlier runs stored."""
        if self.autovacuum is None:
            self.autovacuum = self.testbed.pg.sql("SHOW autovacuum") == "on"
            if not self.autovacuum:
                log("autovacuum is off on this server: ANALYZE before every run stands in for it")
        if not self.autovacuum:
            db = self.testbed.our_db(n) if side == "ours" else self.testbed.ceiling_db(n)
            self.testbed.pg.sql("ANALYZE", db=db)


def int_list(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from exc
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError("values must be positive")
    return values


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--companies",
        type=int_list,
        default=int_list("100,10000"),
        help="company counts, comma-separated (default 100,10000)",
    )
    ap.add_argument(
        "--concurrency",
        type=int_list,
        default=int_list("1,8,32"),
        help="loadgen concurrencies, comma-separated (default 1,8,32)",
    )
    ap.add_argument("--duration", type=float, default=15.0, help="seconds per run (default 15)")
    ap.add_argument(
        "--warmup",
        type=float,
        default=3.0,
        help="warm-up seconds per server and company count (default 3; 0 = none)",
    )
    ap.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="repeat each concurrency's runs this many times and report the median run of each "
        "side and the median of the per-round ratios (default 1)",
    )
    ap.add_argument("--pause", type=float, default=1.0, help="seconds between runs (default 1)")
    ap.add_argument("--seed", type=int, default=0, help="loadgen seed, the same for both sides")
    ap.add_argument(
        "--port",
        type=int,
        default=8000,
        help="our gunicorn's port for the first company count, +1 for each next (default 8000)",
    )
    ap.add_argument(
        "--ceiling-port",
        type=int,
        default=8100,
        help="the ceiling's port for the first company count, +1 for each next (default 8100)",
    )
    ap.add_argument("--workers", type=int, default=4, help="gunicorn workers each (default 4)")
    ap.add_argument(
        "--keep",
        action="store_true",
        help="leave the bench databases and Redis db as they are at the end",
    )
    ap.add_argument("--skip-ceiling", action="store_true", help="measure our app only")
    ap.add_argument(
        "--idempotency-keys",
        action="store_true",
        help="send a fresh Idempotency-Key with every job (both sides; the ceiling ignores it)",
    )
    ap.add_argument(
        "--shared-bench",
        default=str(REPO.parent / "shared" / "bench"),
        help="folder with loadgen.py and ceiling.py (default <repo>/../shared/bench)",
    )
    ap.add_argument(
        "--ref",
        help="measure this commit (exported with git archive into the work dir) instead of "
        "the work tree, so concurrent edits cannot change what is measured",
    )
    ap.add_argument("--venv", default=str(REPO / ".venv"), help="virtualenv for the servers")
    ap.add_argument(
        "--db",
        default="tradeengage_bench",
        help="our databases' name, followed by _<company count> (dropped!)",
    )
    ap.add_argument(
        "--ceiling-db",
        default="ceiling",
        help="the ceiling's databases' name, followed by _<company count> (dropped!)",
    )
    ap.add_argument("--pg-host", default="127.0.0.1")
    ap.add_argument("--pg-port", type=int, default=5432)
    ap.add_argument("--pg-user", default="postgres")
    ap.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/14",
        help="our app's REDIS_URL; this Redis database is flushed at the end",
    )
    ap.add_argument(
        "--work-dir",
        help="where data files, loadgen JSON and gunicorn logs go "
        "(default: a new folder under the temp dir)",
    )
    ap.add_argument("--json-out", help="write machine, options, every result and the verdict")
    ap.add_argument("--min-ratio", type=float, default=0.9)
    ap.add_argument("--min-scaling", type=float, default=0.9)
    ap.add_argument("--max-p99-ms", type=float, default=100.0)
    ap.add_argument("--p99-concurrency", type=int, default=8)
    ap.add_argument(
        "--noise-warn",
        type=float,
        default=0.10,
        help="warn when unrelated processes use more than this share of the CPUs during a run",
    )
    args = ap.parse_args(argv)
    if args.duration <= 0 or args.duration > 600:
        ap.error("--duration must be in (0, 600]")
    if args.workers < 1 or args.rounds < 1:
        ap.error("--workers and --rounds must be positive")
    args.companies = sorted(set(args.companies))
    return args


def main(argv=None) -> int:
    args = parse_args(argv)

    def terminate(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGHUP, terminate)
    # Started in the background by a script, SIGINT arrives ignored; Ctrl-C must still clean up.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    testbed = Testbed(args)
    bench = Bench(args, testbed)
    try:
        testbed.preflight()
        machine = machine_info(testbed.pg, testbed.python, testbed.gunicorn, args.ref)
        testbed.app = export_ref(args.ref, testbed.work) if args.ref else REPO
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in machine_lines(machine):
        print(line, flush=True)
    log(f"work dir {testbed.work}")

    failure = None
    try:
        if not args.keep:
            redis_flushdb(args.redis_url)
        bench.measure()
    except BenchError as exc:
        failure = str(exc)
    except KeyboardInterrupt:
        failure = "interrupted"
    finally:
        testbed.cleanup()

    summary = summarise(args, bench.points, bench.sizes) if bench.points else None
    if summary:
        print("\n".join(report(args, machine, summary, bench.points, testbed.work)), flush=True)
    if args.json_out:
        doc = {
            "machine": machine,
            "options": {k: v for k, v in vars(args).items()},
            "work_dir": str(testbed.work),
            "points": bench.points,
            "summary": summary,
            "error": failure,
        }
        Path(args.json_out).write_text(json.dumps(doc, indent=2, default=str))
        log(f"wrote {args.json_out}")
    if failure:
        print(f"\nerror: the run did not complete: {failure}", file=sys.stderr)
        return 2
    return 0 if summary and summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())

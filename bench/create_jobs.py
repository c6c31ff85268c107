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
import statistics
import subprocess
import sys
import time
from pathlib import Path

from harness import (
    REPO,
    BenchError,
    Server,
    cpu_snapshot,
    cpu_split,
    export_ref,
    fmt,
    log,
    machine_info,
    machine_lines,
    markdown_table,
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


def median_run(runs: list[dict]) -> dict:
    """The run with the median 2xx throughput (the lower middle one for an even count); its
    latencies and errors come with it."""
    return sorted(runs, key=lambda r: r["ok_rps"])[(len(runs) - 1) // 2]


def round_ratios(point: dict) -> list[float]:
    pairs = zip(point.get("ours_rounds", []), point.get("ceiling_rounds", []), strict=False)
    return [o["ok_rps"] / c["ok_rps"] for o, c in pairs if c["ok_rps"]]


def paired_ratios(small: dict, large: dict, side: str) -> list[float]:
    """Per round, one side's throughput on the large network over the small one's: the two
    runs of a round were made a few seconds apart."""
    pairs = zip(small.get(f"{side}_rounds", []), large.get(f"{side}_rounds", []), strict=False)
    return [b["ok_rps"] / a["ok_rps"] for a, b in pairs if a["ok_rps"]]


def scaling_ratio(small: dict, large: dict, side: str) -> float | None:
    """The median per-round ratio (with one round, the ratio of the two runs)."""
    paired = paired_ratios(small, large, side)
    if paired:
        return statistics.median(paired)
    a, b = small.get(side), large.get(side)
    return b["ok_rps"] / a["ok_rps"] if a and b and a["ok_rps"] else None


def ok_rps(res: dict | None) -> float | None:
    return None if res is None else res["ok_rps"]


def errors_of(res: dict) -> int:
    return sum(res["errors_by_status"].values()) + sum(res["transport_errors"].values())


def summarise(args, points: list[dict], sizes: list[dict]) -> dict:
    by_key = {(p["companies"], p["concurrency"]): p for p in points}
    rows = []
    for p in points:
        ours, ceiling = p["ours"], p.get("ceiling")
        ratio = (ours["ok_rps"] / ceiling["ok_rps"]) if ceiling and ceiling["ok_rps"] else None
        paired = round_ratios(p)
        if paired:
            # Each round pairs ours with the ceiling right after it, so drift cancels within a
            # round: the median of those ratios is steadier than a ratio of medians.
            ratio = statistics.median(paired)
        rows.append(
            {
                "companies": p["companies"],
                "concurrency": p["concurrency"],
                "ours_rps": ours["ok_rps"],
                "ceiling_rps": ok_rps(ceiling),
                "ratio": ratio,
                "ours_p50": ours["latency_ms"]["p50"],
                "ours_p95": ours["latency_ms"]["p95"],
                "ours_p99": ours["latency_ms"]["p99"],
                "ceiling_p99": ceiling["latency_ms"]["p99"] if ceiling else None,
                "ours_errors": errors_of(ours),
                "ceiling_errors": errors_of(ceiling) if ceiling else None,
            }
        )
    counts = sorted({p["companies"] for p in points})
    scaling = []
    if len(counts) >= 2:
        lo, hi = counts[0], counts[-1]
        for c in args.concurrency:
            a, b = by_key.get((lo, c)), by_key.get((hi, c))
            if not a or not b:
                continue
            scaling.append(
                {
                    "concurrency": c,
                    "from": lo,
                    "to": hi,
                    "ours": scaling_ratio(a, b, "ours"),
                    "ceiling": scaling_ratio(a, b, "ceiling"),
                    "ours_rounds": paired_ratios(a, b, "ours"),
                    "ceiling_rounds": paired_ratios(a, b, "ceiling"),
                }
            )

    checks = []
    ratios = [r["ratio"] for r in rows if r["ratio"] is not None]
    if args.skip_ceiling or not ratios:
        checks.append(
            {
                "target": f"ours/ceiling >= {args.min_ratio} at every point",
                "result": "SKIP",
                "detail": "no ceiling measured",
            }
        )
    else:
        worst = min(rows, key=lambda r: r["ratio"] if r["ratio"] is not None else 1e9)
        checks.append(
            {
                "target": f"ours/ceiling >= {args.min_ratio} at every point",
                "result": "PASS" if all(x >= args.min_ratio for x in ratios) else "FAIL",
                "detail": f"lowest {worst['ratio']:.2f} at {worst['companies']:,} companies, "
                f"c={worst['concurrency']}",
            }
        )
    if scaling:
        values = [s["ours"] for s in scaling if s["ours"] is not None]
        worst = min(scaling, key=lambda s: s["ours"] if s["ours"] is not None else 1e9)
        checks.append(
            {
                "target": f"ours at {counts[-1]:,} companies >= {args.min_scaling}x ours at "
                f"{counts[0]:,}, every concurrency",
                "result": "PASS"
                if values and all(v >= args.min_scaling for v in values)
                else "FAIL",
                "detail": f"lowest {worst['ours']:.2f} at c={worst['concurrency']}",
            }
        )
    else:
        checks.append(
            {
                "target": f"large/small network throughput >= {args.min_scaling}",
                "result": "SKIP",
                "detail": "needs two company counts",
            }
        )
    p99_rows = [r for r in rows if r["concurrency"] == args.p99_concurrency]
    if p99_rows:
        worst = max(p99_rows, key=lambda r: r["ours_p99"])
        checks.append(
            {
                "target": f"our p99 < {args.max_p99_ms:g} ms at c={args.p99_concurrency}",
                "result": "PASS"
                if all(r["ours_p99"] < args.max_p99_ms for r in p99_rows)
                else "FAIL",
                "detail": f"highest {worst['ours_p99']:.1f} ms at {worst['companies']:,} companies",
            }
        )
    else:
        checks.append(
            {
                "target": f"our p99 < {args.max_p99_ms:g} ms at c={args.p99_concurrency}",
                "result": "SKIP",
                "detail": f"c={args.p99_concurrency} not measured",
            }
        )
    total_errors = sum(r["ours_errors"] for r in rows)
    checks.append(
        {
            "target": "sanity: no non-2xx or transport errors from our app",
            "result": "PASS" if total_errors == 0 else "FAIL",
            "detail": f"{total_errors} error(s)",
        }
    )
    return {
        "rows": rows,
        "scaling": scaling,
        "checks": checks,
        "sizes": sizes,
        "passed": all(c["result"] != "FAIL" for c in checks),
    }


def report(args, machine: dict, summary: dict, points: list[dict], work: Path) -> list[str]:
    run_line = (
        f"Run:     --duration {args.duration:g}s per point, --workers {args.workers} "
        f"(gunicorn sync), --seed {args.seed}, --skills-per-job 1-2, warm-up {args.warmup:g}s, "
        f"{args.rounds} round(s); "
        "req/s = 2xx responses per second"
    )
    out = ["", "# Job creation: ours vs the ceiling", "", *machine_lines(machine), run_line, ""]
    header = [
        "companies",
        "c",
        "ours req/s",
        "ceiling req/s",
        "ours/ceiling",
        "ours p50 ms",
        "ours p95 ms",
        "ours p99 ms",
        "ceiling p99 ms",
        "ours errors",
    ]
    rows = [
        [
            f"{r['companies']:,}",
            str(r["concurrency"]),
            fmt(r["ours_rps"]),
            fmt(r["ceiling_rps"]),
            fmt(r["ratio"], 2),
            fmt(r["ours_p50"]),
            fmt(r["ours_p95"]),
            fmt(r["ours_p99"]),
            fmt(r["ceiling_p99"]),
            str(r["ours_errors"]),
        ]
        for r in summary["rows"]
    ]
    out += markdown_table(header, rows)
    if args.rounds > 1:
        out += [
            "",
            f"{args.rounds} rounds per point: req/s and latencies are each side's median run; "
            "ours/ceiling is the median of the per-round ratios, which are:",
        ]
        for p in points:
            ratios = round_ratios(p)
            ours_rps = [f"{o['ok_rps']:.0f}" for o in p.get("ours_rounds", [])]
            out.append(
                f"  {p['companies']:,} c={p['concurrency']}: ours req/s {', '.join(ours_rps)}"
                + (f"; ratio {', '.join(f'{x:.2f}' for x in ratios)}" if ratios else "")
            )

    def cpu_cell(res, key):
        return fmt(res["cpu"]["ms_per_job"][key], 2) if res and "cpu" in res else "n/a"

    def noise(res) -> float:
        cpu = (res or {}).get("cpu") or {}
        return cpu.get("foreign_share", 0.0) + cpu.get("steal_share", 0.0)

    def noise_cell(res):
        return f"{noise(res):.0%}" if res and "cpu" in res else "n/a"

    out += [
        "",
        "CPU per 2xx job, ms (app = the gunicorn master and workers; PostgreSQL = all backends), "
        "and the share of the machine taken by other work during each run, ours / ceiling "
        "(unrelated processes plus hypervisor steal):",
        "",
    ]
    out += markdown_table(
        ["companies", "c", "ours app", "ours PG", "ceiling app", "ceiling PG", "other load"],
        [
            [
                f"{p['companies']:,}",
                str(p["concurrency"]),
                cpu_cell(p["ours"], "server"),
                cpu_cell(p["ours"], "postgres"),
                cpu_cell(p.get("ceiling"), "server"),
                cpu_cell(p.get("ceiling"), "postgres"),
                f"{noise_cell(p['ours'])} / {noise_cell(p.get('ceiling'))}",
            ]
            for p in points
        ],
    )
    noisy = [
        f"{side} {p['companies']:,} c={p['concurrency']} ({noise(p[side]):.0%})"
        for p in points
        for side in ("ours", "ceiling")
        if p.get(side) and noise(p[side]) > args.noise_warn
    ]
    if noisy:
        out += [
            "",
            f"WARNING: other work took more than {args.noise_warn:.0%} of the machine during: "
            + ", ".join(noisy)
            + ". Those points are suspect; run again when the machine is quiet.",
        ]

    if summary["scaling"]:
        s0 = summary["scaling"][0]
        out += ["", f"Scaling: throughput at {s0['to']:,} companies / at {s0['from']:,}", ""]
        out += markdown_table(
            ["c", "ours", "ceiling (reference)"],
            [
                [str(s["concurrency"]), fmt(s["ours"], 2), fmt(s["ceiling"], 2)]
                for s in summary["scaling"]
            ],
        )
        if args.rounds > 1:
            out += ["", "The median of the per-round ratios, which are:"]
            out += [
                f"  c={s['concurrency']}: ours {', '.join(f'{x:.2f}' for x in s['ours_rounds'])}"
                + (
                    f"; ceiling {', '.join(f'{x:.2f}' for x in s['ceiling_rounds'])}"
                    if s["ceiling_rounds"]
                    else ""
                )
                for s in summary["scaling"]
            ]

    out += ["", "Work per job (rows written during the run, incl. warm-up and sanity):"]
    for s in summary["sizes"]:

        def per_job(rows_):
            jobs = rows_["jobs"] or 1
            return (
                f"{rows_['jobs']:,} jobs, {rows_['routings'] / jobs:.2f} routings/job, "
                f"{rows_['outbox_events'] / jobs:.2f} outbox events/job, "
                f"{rows_['job_skills'] / jobs:.2f} skills/job"
            )

        line = f"  {s['companies']:,} companies: ours {per_job(s['ours_rows'])}"
        if s["ours_companies"] != s["companies"]:
            line += f" (network of {s['ours_companies']:,} companies)"
        if s.get("ceiling_rows"):
            line += f"; ceiling {per_job(s['ceiling_rows'])}"
        out.append(line)

    codes = sorted({s["code"] for s in summary["sizes"]})
    if len(codes) > 1:
        out += ["", f"WARNING: the app's code changed between company counts: {codes}"]

    samples = []
    for p in points:
        for side in ("ours", "ceiling"):
            res = p.get(side)
            if res and (res["errors_by_status"] or res["transport_errors"]):
                samples.append(
                    f"  {side} {p['companies']:,} c={p['concurrency']}: by status "
                    f"{res['errors_by_status']}, transport {res['transport_errors']}"
                )
                for code, text in res["error_samples"].items():
                    samples.append(f"    sample {code}: {text[:300]}")
    out += ["", "Errors:"] + (samples or ["  none"])

    out += ["", "Targets:"]
    for c in summary["checks"]:
        out.append(f"  {c['result']:4}  {c['target']}  ({c['detail']})")
    out += [
        "",
        f"Overall: {'PASS' if summary['passed'] else 'FAIL'}",
        f"Raw loadgen results, data files and gunicorn logs: {work}",
    ]
    return out


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

"""The figures and the verdict of the job-creation benchmark: each point's representative run,
the ours/ceiling and scaling ratios paired within a round, the targets, and the printed report.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from harness import fmt, machine_lines, markdown_table


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
        + ("a fresh Idempotency-Key per job; " if getattr(args, "idempotency_keys", False) else "")
        + "each job posted with its company's API key; req/s = 2xx responses per second"
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

"""What the benchmarks in this folder share: running commands and gunicorns, waiting for them,
plain HTTP, PostgreSQL through psql, Redis FLUSHDB, the machine and code a run measures, the CPU
each process used during a run (from /proc), and markdown tables. Standard library only, so a
benchmark can import it before Django is set up.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
# The benchmarks run with DEBUG off, which needs a field-encryption key: this one is public
# (base64 of "benchmark-only-not-a-secret-key!") and good for benchmark databases only.
BENCH_FIELD_ENCRYPTION_KEYS = "YmVuY2htYXJrLW9ubHktbm90LWEtc2VjcmV0LWtleSE="


class BenchError(Exception):
    """The run cannot go on (a server would not start, a sanity check failed, ...)."""


def log(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def run(cmd, *, env=None, cwd=None, stdout_path: Path | None = None, timeout=900) -> str:
    """Run a command to completion; its stdout goes to stdout_path or is returned."""
    log("$ " + " ".join(str(c) for c in cmd) + (f" > {stdout_path}" if stdout_path else ""))
    out = open(stdout_path, "wb") if stdout_path else subprocess.PIPE  # noqa: SIM115
    try:
        proc = subprocess.run(
            [str(c) for c in cmd],
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.PIPE,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"timed out after {timeout}s: {cmd[:3]}") from exc
    finally:
        if stdout_path:
            out.close()
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace")[-3000:]
        raise BenchError(f"exit {proc.returncode}: {' '.join(str(c) for c in cmd)}\n{err}")
    return "" if stdout_path else proc.stdout.decode(errors="replace")


class Server:
    """A gunicorn in its own process group, so stopping it stops its workers too."""

    def __init__(self, name: str, port: int, cmd: list, *, cwd: Path, env: dict, log_path: Path):
        self.name, self.port, self.cmd, self.cwd, self.env = name, port, cmd, cwd, env
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.pgid: int | None = None

    def start(self) -> None:
        log(f"starting {self.name}: {' '.join(str(c) for c in self.cmd)} (log {self.log_path})")
        with open(self.log_path, "ab") as fh:
            self.proc = subprocess.Popen(
                [str(c) for c in self.cmd],
                cwd=self.cwd,
                env=self.env,
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pgid = self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session: the group id is the master's pid
        if self.proc.poll() is None:
            log(f"stopping {self.name} (process group {pgid})")
            self._signal_group(pgid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log(f"{self.name} did not stop in {timeout:.0f}s; killing group {pgid}")
        # Workers left behind by a master that died: kill what is left of the group.
        self._signal_group(pgid, signal.SIGKILL)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            log(f"warning: {self.name} (pid {pgid}) still not reaped")
        self.proc = None

    @staticmethod
    def _signal_group(pgid: int, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)


def port_answers(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_snapshot() -> dict[int, tuple[int, str, float]]:
    """pid -> (process group, command name, CPU seconds used so far), from /proc."""
    snap = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        snap[int(entry.name)] = (int(fields[2]), comm, cpu)
    return snap


def steal_ticks() -> tuple[int, int]:
    """(steal, total) clock ticks of the whole machine from /proc/stat: on a virtual machine,
    steal is time the host gave our CPUs to someone else, which no process here shows."""
    try:
        with open("/proc/stat") as fh:
            values = [int(v) for v in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    # user nice system idle iowait irq softirq steal [guest guest_nice: already in user/nice]
    return (values[7] if len(values) > 7 else 0), sum(values[:8])


def cpu_split(before: dict, after: dict, server_pgid: int, other_pgids: set[int]) -> dict:
    """CPU seconds between two snapshots: the measured server's process group, PostgreSQL,
    Redis, and everything else on the machine (other people's work: the noise). Processes that
    both started and ended between the snapshots are not seen."""
    split = {"server": 0.0, "postgres": 0.0, "redis": 0.0, "foreign": 0.0}
    me = os.getpid()
    for pid, (pgid, comm, cpu) in after.items():
        used = cpu - (before[pid][2] if pid in before else 0.0)
        if pid == me or pgid in other_pgids:
            continue
        if pgid == server_pgid:
            split["server"] += used
        elif comm == "postgres":
            split["postgres"] += used
        elif comm.startswith("redis-server"):
            split["redis"] += used
        else:
            split["foreign"] += used
    return split


# Requests go to our own servers on loopback: never through a proxy from the environment.

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http(
    method: str,
    url: str,
    body: bytes | None = None,
    timeout: float = 10.0,
    headers: dict | None = None,
):
    """(status, body text); an HTTP error status is returned, not raised."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    req.add_header("Accept", "application/json")
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def wait_until(server: Server, probe, what: str, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if not server.alive():
            raise BenchError(f"{server.name} exited while starting:\n{tail(server.log_path)}")
        try:
            return probe()
        except (OSError, urllib.error.URLError) as exc:
            last = exc
        time.sleep(0.3)
    raise BenchError(f"{server.name} did not answer {what} in {timeout:.0f}s ({last})")


class Postgres:
    def __init__(self, host: str, port: int, user: str):
        self.host, self.port, self.user = host, port, user

    def url(self, db: str) -> str:
        return f"postgres://{self.user}@{self.host}:{self.port}/{db}"

    def sql(self, statement: str, db: str = "postgres") -> str:
        cmd = [
            "psql",
            "-h",
            self.host,
            "-p",
            str(self.port),
            "-U",
            self.user,
            "-d",
            db,
            "-v",
            "ON_ERROR_STOP=1",
            "-Atqc",
            statement,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
        if proc.returncode != 0:
            raise BenchError(f"psql failed ({statement[:80]}): {proc.stderr.strip()}")
        return proc.stdout.strip()

    def recreate(self, db: str) -> None:
        log(f"dropping and creating database {db}")
        self.sql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        self.sql(f'CREATE DATABASE "{db}"')

    def drop(self, db: str) -> None:
        log(f"dropping database {db}")
        self.sql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')

    def counts(self, db: str, tables: dict[str, str]) -> dict[str, int]:
        selects = ", ".join(f"(SELECT count(*) FROM {t})" for t in tables.values())
        values = self.sql(f"SELECT {selects}", db=db).split("|")
        return {name: int(v) for name, v in zip(tables, values, strict=True)}


def redis_flushdb(url: str) -> int | None:
    """FLUSHDB on the bench's Redis database (relay kicks pile up there: no worker runs)."""
    parts = urlsplit(url)
    db = (parts.path or "/0").lstrip("/") or "0"

    def cmd(*args: str) -> bytes:
        out = f"*{len(args)}\r\n"
        for a in args:
            out += f"${len(a.encode())}\r\n{a}\r\n"
        return out.encode()

    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 5) as s:
            s.sendall(cmd("SELECT", db) + cmd("DBSIZE") + cmd("FLUSHDB"))
            data = b""
            while data.count(b"\r\n") < 3:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        replies = data.split(b"\r\n")
        return int(replies[1][1:]) if replies[1].startswith(b":") else None
    except (OSError, ValueError, IndexError) as exc:
        log(f"warning: could not flush Redis {url}: {exc}")
        return None


def code_fingerprint(ref: str | None) -> str:
    """Which code the servers run. With --ref, that commit. Otherwise HEAD plus a hash of the
    uncommitted changes (tracked diffs and untracked file names): other people may be editing
    the app while a run is going, and each company count starts its servers afresh."""
    if ref:
        return git_rev(ref)
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=30,
        ).stdout.strip()
        diff = subprocess.run(
            ["git", "diff", "HEAD", "--", ".", ":!bench"], capture_output=True, cwd=REPO, timeout=30
        ).stdout
        diff += subprocess.run(
            ["git", "ls-files", "--others", "--exclude-standard", "--", ".", ":!bench"],
            capture_output=True,
            cwd=REPO,
            timeout=30,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return head + (f"+dirty:{hashlib.sha1(diff).hexdigest()[:10]}" if diff else "")


def git_rev(ref: str) -> str:
    proc = subprocess.run(
        ["git", "rev-parse", "--short", "--verify", f"{ref}^{{commit}}"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=30,
        check=False,
    )
    if proc.returncode != 0:
        raise BenchError(f"--ref {ref!r} is not a commit: {proc.stderr.strip()}")
    return proc.stdout.strip()


def export_ref(ref: str, dest: Path) -> Path:
    """A clean copy of the app at a commit, so edits in the work tree during the run (other
    people's) do not change what is measured. The virtualenv stays the repository's."""
    rev = git_rev(ref)
    target = dest / f"app-{rev}"
    if not (target / "manage.py").exists():
        target.mkdir(parents=True, exist_ok=True)
        archive = dest / f"app-{rev}.tar"
        run(["git", "archive", "--format=tar", "-o", archive, rev], cwd=REPO)
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")
        archive.unlink()
    log(f"measuring commit {rev} ({ref}) from {target}")
    return target


def machine_info(pg: Postgres, python: Path, gunicorn: Path, ref: str | None) -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        nproc = int(subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip())
    except (OSError, ValueError):
        nproc = os.cpu_count()

    def output(cmd) -> str:
        try:
            proc = subprocess.run(
                [str(c) for c in cmd], capture_output=True, text=True, timeout=30, cwd=REPO
            )
            return proc.stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return "unknown"

    try:
        pg_version = pg.sql("SHOW server_version")
    except BenchError as exc:
        raise BenchError(f"PostgreSQL is not reachable: {exc}") from exc
    commit = code_fingerprint(ref)
    if ref:
        commit += f" (--ref {ref}, exported; work tree not used)"
    elif "+dirty" in commit:
        commit += " (work tree with uncommitted changes)"
    mem_total = ""
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        mem_total = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, AttributeError, ValueError):
        pass
    return {
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "nproc": nproc,
        "cpu_model": cpu,
        "memory": mem_total,
        "postgresql": pg_version,
        "python": output([python, "-c", "import sys; print(sys.version.split()[0])"]),
        "django": output([python, "-c", "import django; print(django.get_version())"]),
        "gunicorn": output([gunicorn, "--version"]).replace("gunicorn (version ", "").rstrip(")"),
        "commit": commit,
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def machine_lines(m: dict) -> list[str]:
    return [
        f"Date:    {m['date_utc']}",
        f"Machine: {m['nproc']} CPUs (nproc), {m['cpu_model']}, {m['memory']} RAM; "
        f"load average at start {m['loadavg_at_start']}",
        f"Stack:   PostgreSQL {m['postgresql']}, Python {m['python']}, Django {m['django']}, "
        f"gunicorn {m['gunicorn']}",
        f"Code:    commit {m['commit']}",
    ]


def fmt(value, digits=1, suffix="") -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}{suffix}"


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)
    ]

    def line(cells):
        return "| " + " | ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return [line(header), "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|"] + [
        line(r) for r in rows
    ]

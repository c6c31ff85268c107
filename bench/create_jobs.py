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
import contextlib
import hashlib
import importlib.util
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
JOBS_PATH = "/api/v1/jobs/"
LIVE_PATH = "/api/v1/health/live"
PROTECTED_DATABASES = {"postgres", "template0", "template1"}
# Tables whose row counts show how much work each side did per job.
OUR_TABLES = {
    "jobs": "jobs_job",
    "job_skills": "jobs_jobskill",
    "routings": "routing_jobrouting",
    "outbox_events": "routing_outboxevent",
}
CEILING_TABLES = {
    "jobs": "ceiling_app_job",
    "job_skills": "ceiling_app_jobskill",
    "routings": "ceiling_app_jobrouting",
    "outbox_events": "ceiling_app_outboxevent",
}


class BenchError(Exception):
    """The run cannot go on (a server would not start, a sanity check failed, ...)."""


def log(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# --------------------------------------------------------------------------- processes


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


# --------------------------------------------------------------------------- CPU accounting

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


# --------------------------------------------------------------------------- HTTP (no proxies)

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http(method: str, url: str, body: bytes | None = None, timeout: float = 10.0):
    """(status, body text); an HTTP error status is returned, not raised."""
    req = urllib.request.Request(url, data=body, method=method)
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


# --------------------------------------------------------------------------- PostgreSQL, Redis


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


# --------------------------------------------------------------------------- machine


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


# --------------------------------------------------------------------------- the benchmark


class Bench:
    def __init__(self, args):
        self.args = args
        self.venv = Path(args.venv).resolve()
        self.python = self.venv / "bin" / "python"
        self.gunicorn = self.venv / "bin" / "gunicorn"
        self.shared = Path(args.shared_bench).resolve()
        self.loadgen_path = self.shared / "loadgen.py"
        self.ceiling_path = self.shared / "ceiling.py"
        self.work = Path(args.work_dir or tempfile.mkdtemp(prefix="tradeengage-bench-"))
        self.work.mkdir(parents=True, exist_ok=True)
        self.pg = Postgres(args.pg_host, args.pg_port, args.pg_user)
        self.servers: list[Server] = []
        self.networks: list[dict] = []
        self.points: list[dict] = []
        self.autovacuum: bool | None = None
        self.sizes: list[dict] = []
        self.created_dbs: set[str] = set()
        self._loadgen = None
        self.app = REPO  # where manage.py and tradeengage/ are read from (see --ref)

    # -- environments

    def _base_env(self) -> dict:
        env = {
            "PATH": f"{self.venv / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "PYTHONUNBUFFERED": "1",
            "PGPORT": str(self.args.pg_port),
        }
        if os.environ.get("TMPDIR"):
            env["TMPDIR"] = os.environ["TMPDIR"]
        return env

    def our_env(self, db: str) -> dict:
        env = self._base_env()
        env.update(
            DJANGO_SETTINGS_MODULE="tradeengage.settings",
            DATABASE_URL=self.pg.url(db),
            REDIS_URL=self.args.redis_url,
            DEBUG="false",
            SECRET_KEY="bench-not-a-secret-" + "x" * 40,
            ALLOWED_HOSTS="127.0.0.1,localhost",
            LOG_LEVEL="WARNING",
            SECURE_SSL_REDIRECT="false",
        )
        return env

    def ceiling_env(self, db: str) -> dict:
        env = self._base_env()
        env["CEILING_DB"] = db
        return env

    # -- one database and one port pair per company count

    def our_db(self, n: int) -> str:
        return f"{self.args.db}_{n}"

    def ceiling_db(self, n: int) -> str:
        return f"{self.args.ceiling_db}_{n}"

    def ports(self, index: int) -> tuple[int, int]:
        return self.args.port + index, self.args.ceiling_port + index

    # -- checks before anything is touched

    def preflight(self) -> None:
        a = self.args
        for path, what in [
            (self.python, "virtualenv python"),
            (self.gunicorn, "gunicorn"),
            (self.loadgen_path, "loadgen.py"),
        ]:
            if not path.exists():
                raise BenchError(f"{what} not found at {path}")
        if not a.skip_ceiling and not self.ceiling_path.exists():
            raise BenchError(f"ceiling.py not found at {self.ceiling_path} (--shared-bench)")
        names = [name for n in a.companies for name in (self.our_db(n), self.ceiling_db(n))]
        for name in names:
            if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name) or name in PROTECTED_DATABASES:
                raise BenchError(f"refusing to drop and recreate database {name!r}")
        if len(set(names)) != len(names):
            raise BenchError("--db and --ceiling-db must differ")
        ports = [
            port
            for index in range(len(a.companies))
            for port in self.ports(index)[: 1 if a.skip_ceiling else 2]
        ]
        if len(set(ports)) != len(ports):
            raise BenchError(
                "our ports (--port + 0, 1, ...) and the ceiling's (--ceiling-port + 0, 1, ...) "
                "must not overlap"
            )
        for port in ports:
            if port_answers(port):
                raise BenchError(
                    f"something already listens on 127.0.0.1:{port}; pick another "
                    "port (--port / --ceiling-port) so we do not measure it"
                )

    # -- preparation

    def prepare_ours(self, n: int) -> Path:
        db = self.our_db(n)
        self.pg.recreate(db)
        self.created_dbs.add(db)
        env = self.our_env(db)
        run([self.python, "manage.py", "migrate", "--noinput", "-v", "0"], env=env, cwd=self.app)
        raw = self.work / f"ours-{n}.seed.out"
        run(
            [self.python, "manage.py", "seed_demo", "--companies", n, "--json"],
            env=env,
            cwd=self.app,
            stdout_path=raw,
            timeout=1800,
        )
        # The command prints one JSON object; keep only that line should anything else appear.
        lines = [ln for ln in raw.read_text().splitlines() if ln.startswith("{")]
        if not lines:
            raise BenchError(f"seed_demo printed no JSON object:\n{tail(raw)}")
        data = json.loads(lines[-1])
        path = self.work / f"ours-{n}.json"
        path.write_text(json.dumps(data))
        self.pg.sql("VACUUM ANALYZE", db=db)
        return path

    def prepare_ceiling(self, n: int) -> Path:
        db = self.ceiling_db(n)
        self.pg.recreate(db)
        self.created_dbs.add(db)
        env = self.ceiling_env(db)
        run([self.python, self.ceiling_path, "migrate"], env=env, cwd=self.shared)
        path = self.work / f"ceiling-{n}.json"
        run(
            [self.python, self.ceiling_path, "seed", n],
            env=env,
            cwd=self.shared,
            stdout_path=path,
            timeout=1800,
        )
        json.loads(path.read_text())  # fail here, not in loadgen, if it is not JSON
        self.pg.sql("VACUUM ANALYZE", db=db)
        return path

    # -- servers

    def start_ours(self, n: int, port: int) -> Server:
        a = self.args
        server = Server(
            f"our app ({n:,} companies)",
            port,
            [
                self.gunicorn,
                "tradeengage.wsgi",
                "-w",
                a.workers,
                "-b",
                f"127.0.0.1:{port}",
                "--graceful-timeout",
                "5",
                "--error-logfile",
                "-",
            ],
            cwd=self.app,
            env=self.our_env(self.our_db(n)),
            log_path=self.work / f"gunicorn-ours-{n}.log",
        )
        self.servers.append(server)
        server.start()
        base = f"http://127.0.0.1:{port}"

        def probe():
            status, body = http("GET", base + LIVE_PATH, timeout=5)
            if status != 200:
                raise BenchError(f"{LIVE_PATH} answered {status}: {body[:300]}")
            return status

        wait_until(server, probe, LIVE_PATH)
        log(f"our app answers on {base}")
        return server

    def start_ceiling(self, n: int, port: int, data: dict) -> Server:
        a = self.args
        server = Server(
            f"ceiling ({n:,} companies)",
            port,
            [
                self.gunicorn,
                "ceiling:application",
                "-w",
                a.workers,
                "-b",
                f"127.0.0.1:{port}",
                "--chdir",
                self.shared,
                "--graceful-timeout",
                "5",
                "--error-logfile",
                "-",
            ],
            cwd=self.shared,
            env=self.ceiling_env(self.ceiling_db(n)),
            log_path=self.work / f"gunicorn-ceiling-{n}.log",
        )
        self.servers.append(server)
        server.start()
        url = f"http://127.0.0.1:{port}{JOBS_PATH}"
        status, body = wait_until(server, lambda: http("POST", url, self.body(data), 10), "a POST")
        if status != 201:
            raise BenchError(f"ceiling answered {status} to a job POST: {body[:500]}")
        log(f"ceiling answers on 127.0.0.1:{port} (a POST got 201)")
        return server

    def stop_servers(self) -> None:
        while self.servers:
            self.servers.pop().stop()

    # -- requests

    def body(self, data: dict) -> bytes:
        """One request body built exactly as loadgen builds them."""
        if self._loadgen is None:
            spec = importlib.util.spec_from_file_location("shared_loadgen", self.loadgen_path)
            self._loadgen = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(self._loadgen)
        factory = self._loadgen.BodyFactory(data, random.Random(self.args.seed + 7), (1, 1))
        return factory.make()

    def sanity_ours(self, server: Server, data: dict) -> dict:
        base = f"http://127.0.0.1:{server.port}"
        body = self.body(data)
        status, text = http("POST", base + JOBS_PATH, body, 30)
        if status != 201:
            raise BenchError(
                f"sanity POST {JOBS_PATH} answered {status}, expected 201:\n"
                f"request  {body.decode()}\nresponse {text[:1000]}"
            )
        job = json.loads(text)
        r_status, r_text = http("GET", f"{base}/api/v1/jobs/{job['id']}/routings", timeout=30)
        routings = json.loads(r_text) if r_status == 200 else None
        n_routings = len(routings) if isinstance(routings, list) else None
        log(
            f"sanity: POST {JOBS_PATH} -> 201, job {job['id']} "
            f"({', '.join(job.get('required_skills') or [])}), {n_routings} routing(s)"
        )
        if not n_routings:
            log(f"warning: the sanity job got no routings (GET routings -> {r_status})")
        return {"status": status, "job_id": job["id"], "routings": n_routings}

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
            self.python,
            self.loadgen_path,
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
        others = {s.pgid for s in self.servers if s is not server and s.pgid}
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
        """Databases, data files and both servers for one network size, warmed up."""
        a = self.args
        log(f"=== {n:,} companies ===")
        ours_path = self.prepare_ours(n)
        ours_data = json.loads(ours_path.read_text())
        size = {
            "companies": n,
            "code": code_fingerprint(self.args.ref),
            "ours_pairs": len(ours_data["pairs"]),
            "ours_companies": len(ours_data.get("companies") or []),
        }
        if size["ours_companies"] != n:
            log(
                f"warning: our network has {size['ours_companies']} companies, not {n} "
                "(seed_demo always loads its 48-company demo network)"
            )
        ceiling_path = ceiling_data = None
        if not a.skip_ceiling:
            ceiling_path = self.prepare_ceiling(n)
            ceiling_data = json.loads(ceiling_path.read_text())
            size["ceiling_pairs"] = len(ceiling_data["pairs"])
        log(f"data: ours {size['ours_pairs']} pairs, ceiling {size.get('ceiling_pairs', '-')}")
        our_port, ceiling_port = self.ports(index)
        ours = self.start_ours(n, our_port)
        ceiling = None if a.skip_ceiling else self.start_ceiling(n, ceiling_port, ceiling_data)
        size["sanity"] = self.sanity_ours(ours, ours_data)
        network = {
            "n": n,
            "size": size,
            "sides": [("ours", ours, ours_path)]
            + ([] if a.skip_ceiling else [("ceiling", ceiling, ceiling_path)]),
        }
        if a.warmup > 0:
            for side, server, data_path in network["sides"]:
                self.loadgen(
                    f"warm-up {side} {n:,}",
                    server,
                    data_path,
                    max(a.workers * 2, 4),
                    a.warmup,
                    a.seed + 1,
                    self.work / f"warmup-{side}-{n}.json",
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
                                self.work / f"{side}-{net['n']}-c{c}{suffix}.json",
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
        self.stop_servers()
        for net in self.networks:
            size = net["size"]
            size["ours_rows"] = self.pg.counts(self.our_db(net["n"]), OUR_TABLES)
            if not a.skip_ceiling:
                size["ceiling_rows"] = self.pg.counts(self.ceiling_db(net["n"]), CEILING_TABLES)
            self.sizes.append(size)

    def analyze_if_no_autovacuum(self, side: str, n: int) -> None:
        """ANALYZE a side's database before a run when the server's autovacuum is off.

        Autovacuum re-analyzes a table as it grows, and that makes every connection plan its
        cached statements again, such as the foreign-key checks PostgreSQL runs at commit.
        Without it, a check first planned while the jobs table held a page keeps scanning the
        whole table for good, and a run costs more the more jobs earlier runs stored."""
        if self.autovacuum is None:
            self.autovacuum = self.pg.sql("SHOW autovacuum") == "on"
            if not self.autovacuum:
                log("autovacuum is off on this server: ANALYZE before every run stands in for it")
        if not self.autovacuum:
            self.pg.sql("ANALYZE", db=self.our_db(n) if side == "ours" else self.ceiling_db(n))

    def cleanup(self) -> None:
        self.stop_servers()
        if self.args.keep:
            log(f"--keep: leaving databases {sorted(self.created_dbs)} and Redis as they are")
            return
        for db in sorted(self.created_dbs):
            try:
                self.pg.drop(db)
            except BenchError as exc:
                log(f"warning: {exc}")
        flushed = redis_flushdb(self.args.redis_url)
        if flushed is not None:
            log(f"flushed Redis {self.args.redis_url} ({flushed} keys)")


# --------------------------------------------------------------------------- report


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


# --------------------------------------------------------------------------- main


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

    bench = Bench(args)
    try:
        bench.preflight()
        machine = machine_info(bench.pg, bench.python, bench.gunicorn, args.ref)
        bench.app = export_ref(args.ref, bench.work) if args.ref else REPO
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in machine_lines(machine):
        print(line, flush=True)
    log(f"work dir {bench.work}")

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
        bench.cleanup()

    summary = summarise(args, bench.points, bench.sizes) if bench.points else None
    if summary:
        print("\n".join(report(args, machine, summary, bench.points, bench.work)), flush=True)
    if args.json_out:
        doc = {
            "machine": machine,
            "options": {k: v for k, v in vars(args).items()},
            "work_dir": str(bench.work),
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

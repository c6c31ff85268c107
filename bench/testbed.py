"""The two apps the job-creation benchmark compares, one network per company count: our app
and the ceiling (../shared/bench/ceiling.py), each on a fresh PostgreSQL database seeded to that
size and served by its own gunicorn, checked with a sanity POST before anything is measured.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import re
import tempfile
from pathlib import Path

from harness import (
    BENCH_FIELD_ENCRYPTION_KEYS,
    REPO,
    BenchError,
    Postgres,
    Server,
    code_fingerprint,
    http,
    log,
    port_answers,
    redis_flushdb,
    run,
    tail,
    wait_until,
)

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


class Testbed:
    """Databases, data files and servers of both apps; ``cleanup`` stops and drops them all."""

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
            FIELD_ENCRYPTION_KEYS=BENCH_FIELD_ENCRYPTION_KEYS,
            ALLOWED_HOSTS="127.0.0.1,localhost",
            LOG_LEVEL="WARNING",
            SECURE_SSL_REDIRECT="false",
            # Every key on the high-limit plan: the benchmark measures job creation, and still
            # pays for counting each request against its limits (README "Rate limits").
            RATE_LIMIT_PLAN_OVERRIDE="benchmark",
            # Metrics counted as in production: in files every gunicorn worker shares.
            PROMETHEUS_MULTIPROC_DIR=str(self.metrics_dir(db)),
        )
        return env

    def metrics_dir(self, db: str) -> Path:
        folder = self.work / f"metrics-{db}"
        folder.mkdir(exist_ok=True)
        return folder

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
            # Every company gets its (demo) API key, and loadgen posts each job with its
            # company's own key, as integrators would.
            [self.python, "manage.py", "seed_demo", "--companies", n, "--json", "--api-keys"],
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
        key = {"X-API-Key": data["ops_api_key"]}
        status, text = http("POST", base + JOBS_PATH, body, 30, headers=key)
        if status != 201:
            raise BenchError(
                f"sanity POST {JOBS_PATH} answered {status}, expected 201:\n"
                f"request  {body.decode()}\nresponse {text[:1000]}"
            )
        job = json.loads(text)
        r_status, r_text = http(
            "GET", f"{base}/api/v1/jobs/{job['id']}/routings", timeout=30, headers=key
        )
        routings = json.loads(r_text) if r_status == 200 else None
        n_routings = len(routings) if isinstance(routings, list) else None
        log(
            f"sanity: POST {JOBS_PATH} -> 201, job {job['id']} "
            f"({', '.join(job.get('required_skills') or [])}), {n_routings} routing(s)"
        )
        if not n_routings:
            log(f"warning: the sanity job got no routings (GET routings -> {r_status})")
        return {"status": status, "job_id": job["id"], "routings": n_routings}

    # -- one network, and what it wrote

    def build(self, n: int, index: int) -> dict:
        """Databases, data files and both servers for one network size, sanity-checked."""
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
        return {
            "n": n,
            "size": size,
            "sides": [("ours", ours, ours_path)]
            + ([] if a.skip_ceiling else [("ceiling", ceiling, ceiling_path)]),
        }

    def rows_written(self, n: int) -> dict:
        """Each side's row counts in the tables that show its work per job."""
        rows = {"ours_rows": self.pg.counts(self.our_db(n), OUR_TABLES)}
        if not self.args.skip_ceiling:
            rows["ceiling_rows"] = self.pg.counts(self.ceiling_db(n), CEILING_TABLES)
        return rows

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

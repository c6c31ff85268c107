"""A worker survives losing Redis while it holds unacknowledged messages (issue 16).

A real worker of our app (threads pool, our Celery settings: late acks, prefetch 1; gossip,
mingle and remote control on, as in production) consumes from a throwaway ``redis-server``
started here. Redis is SIGKILLed while two late-acked tasks hold two of the worker's four
threads and it waits on Redis for more, the state of a worker under a trickle of jobs, then
started again. The worker must stay alive and consume again. Before ``tradeengage.celery``'s
RedisTransport it logged "Unrecoverable error: AttributeError("'NoneType' object has no
attribute 'hostname'")" and stopped.

This module is also the worker's Celery app (``-A``), for the one task below.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from celery import Celery

from tradeengage.celery import app

REPO = Path(__file__).resolve().parents[2]
HOLD_TASK = "tests.broker_loss.hold"
WORKER_ARGS = (
    "worker -Q critical,high,default,low,webhooks --pool threads --concurrency 4 --loglevel INFO"
)

__all__ = ["app"]


@app.task(name=HOLD_TASK)
def hold(marker: str, label: str, seconds: float) -> None:
    """Note that ``label`` started, hold the worker thread ``seconds``, note that it ended."""
    with open(marker, "a") as fh:
        fh.write(f"started {label}\n")
    time.sleep(seconds)
    with open(marker, "a") as fh:
        fh.write(f"ended {label}\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class RedisServer:
    def __init__(self, port: int, folder: Path):
        self.port, self.folder, self.proc = port, folder, None

    def start(self) -> None:
        options = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), *options, "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def listens() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.port)) == 0

        wait_for(listens, 10, "redis-server to listen")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def redis_server(tmp_path):
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not on PATH")
    server = RedisServer(free_port(), tmp_path)
    server.start()
    yield server
    server.kill()


def test_worker_survives_redis_killed_while_it_holds_unacknowledged_messages(
    tmp_path, redis_server
):
    broker_url = f"redis://127.0.0.1:{redis_server.port}/0"
    env = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR")
    }
    env.update(
        REDIS_URL=broker_url,
        VAR_DIR=str(tmp_path / "var"),
        CELERY_TASK_ALWAYS_EAGER="false",
        DJANGO_SETTINGS_MODULE="tradeengage.settings",
        PYTHONUNBUFFERED="1",
    )
    log_path, marker = tmp_path / "worker.log", tmp_path / "marker"
    marker.touch()
    hostname = f"broker-loss-{redis_server.port}@%h"
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", __name__, *WORKER_ARGS.split(), "-n", hostname],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    client = Celery(broker=broker_url)
    try:
        wait_for(lambda: b" ready." in log_path.read_bytes(), 30, "the worker to start")
        for n in range(2):
            client.send_task(HOLD_TASK, args=[str(marker), f"before-{n}", 8], queue="default")
        wait_for(lambda: marker.read_text().count("started") == 2, 20, "two tasks running")

        redis_server.kill()
        time.sleep(2)
        redis_server.start()

        client.send_task(HOLD_TASK, args=[str(marker), "after", 0], queue="critical")
        wait_for(
            lambda: "ended after" in marker.read_text() or worker.poll() is not None,
            25,
            "the task sent after Redis's return",
        )
        log_text = log_path.read_text(errors="replace")
        fatal = [line for line in log_text.splitlines() if "Unrecoverable" in line]
        assert not fatal, fatal
        assert worker.poll() is None, f"the worker exited:\n{log_text[-3000:]}"
        assert "ended after" in marker.read_text()
    finally:
        client.close()
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)

"""make run's runner: supervisord with the repository's supervisord.conf starts web, worker and
beat, starts a process that dies again and says so on the terminal, and stops all three on
Ctrl-C. The real commands run, on the embedded default (a SQLite file and the filesystem broker)
in a temporary folder, so the test touches neither the test database nor a shared broker."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

BASE_DIR = Path(settings.BASE_DIR)
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        return listener.getsockname()[1]


class Runner:
    """supervisord in the foreground, as ``make run`` starts it, its terminal output in a file."""

    def __init__(self, folder: Path, environment: dict[str, str]):
        self.output_path = folder / "terminal.log"
        self.web_port = environment["WEB_PORT"]
        with open(self.output_path, "ab") as terminal:
            self.process = subprocess.Popen(
                [
                    VENV_BIN / "supervisord",
                    "--configuration",
                    BASE_DIR / "supervisord.conf",
                    # This clone's var/ may hold a developer's make run: keep out of its files.
                    "--pidfile",
                    folder / "supervisord.pid",
                    "--logfile",
                    folder / "supervisord.log",
                ],
                cwd=folder,
                env=environment,
                stdout=terminal,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.output_path.read_text(errors="replace")

    def wait_for(self, pattern: str, *, count: int = 1, timeout: float = 30) -> list[str]:
        """Every match of ``pattern`` (its group, if it has one), once there are ``count``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            matches = re.findall(pattern, self.output())
            if len(matches) >= count:
                return matches
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        pytest.fail(f"no {count} x {pattern!r} within {timeout} s\n{self.output()[-5000:]}")

    def spawned_pids(self) -> list[int]:
        return [int(pid) for pid in re.findall(r"spawned: '\w+' with pid (\d+)", self.output())]

    def interrupt(self, *, timeout: float = 30) -> int:
        """Ctrl-C: SIGINT to supervisord, which stops its processes before it exits."""
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                self.interrupt()
            except subprocess.TimeoutExpired:
                self.process.kill()
        for pid in self.spawned_pids():
            if process_group_is_alive(pid):
                os.killpg(pid, signal.SIGKILL)


def process_group_is_alive(pid: int) -> bool:
    """supervisord starts each program in a process group of its own, led by the program."""
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def runner(tmp_path):
    """make run's runner and environment, on a migrated SQLite file and a broker folder of its
    own under ``tmp_path``, web on a free port."""
    (tmp_path / "metrics").mkdir()
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in {"DATABASE_URL", "REDIS_URL", "SQLITE_PATH"}
    }
    environment.update(
        VAR_DIR=str(tmp_path / "var"),
        WEB_PORT=str(free_port()),
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
        # make run puts the virtualenv first on PATH, where supervisord finds the commands.
        PATH=f"{VENV_BIN}{os.pathsep}{environment.get('PATH', '')}",
    )
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=BASE_DIR,
        env=environment,
        check=True,
        capture_output=True,
    )
    runner = Runner(tmp_path, environment)
    yield runner
    runner.stop()


def test_a_killed_worker_is_started_again_and_ctrl_c_stops_everything(runner):
    for program in ("web", "worker", "beat"):
        runner.wait_for(rf"success: {program} entered RUNNING state")
    # The programs' own output reaches the terminal too, and web listens on make run's port.
    runner.wait_for(rf"Starting development server at http://127.0.0.1:{runner.web_port}/")
    [worker] = runner.wait_for(r"spawned: 'worker' with pid (\d+)")

    os.kill(int(worker), signal.SIGKILL)

    runner.wait_for(r"exited: worker \(terminated by SIGKILL; not expected\)", timeout=5)
    workers = runner.wait_for(r"spawned: 'worker' with pid (\d+)", count=2, timeout=5)
    assert workers[1] != worker
    runner.wait_for(r"success: worker entered RUNNING state", count=2, timeout=10)
    pids = runner.spawned_pids()
    assert len(pids) == 4  # web, beat and two workers

    assert runner.interrupt() == 0

    assert [pid for pid in pids if process_group_is_alive(pid)] == []
    for program in ("web", "worker", "beat"):
        assert re.search(rf"stopped: {program} ", runner.output())

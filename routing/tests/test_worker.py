"""The sync pipeline with real Celery workers, Redis and PostgreSQL: end to end, relays and
workers racing, and a worker killed in the middle of its batch.

The workers are separate processes started on the test database, so these tests commit their
data (``transactional_db``). They purge the Celery queues of ``REDIS_URL``'s database: give the
tests a database of their own (CI uses ``/15``).
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from integrations.models import MockJob
from jobs.models import SkillLevel
from jobs.tests.factories import CompanyFactory, JobFactory, TechnicianFactory
from routing.models import JobRouting, OutboxEvent, OutboxStatus, SyncStatus
from routing.services import job_sync_event
from routing.tasks import relay_outbox
from tradeengage.celery import app as celery_app

BASE_DIR = Path(settings.BASE_DIR)

pytestmark = [
    pytest.mark.worker,
    # Committed data the workers can see; the managed skills and categories, seeded by a
    # migration, are restored before each test.
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.skipif(
        not settings.REDIS_URL or settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"),
        reason="needs PostgreSQL and Redis (set DATABASE_URL and REDIS_URL)",
    ),
]


def database_url() -> str:
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return (
        f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/"
        f"{db['NAME']}"
    )


class Workers:
    """Celery worker processes on the test database and the test broker."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen] = []

    def start(self, *, concurrency: int = 4, **environment) -> subprocess.Popen:
        env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "CELERY_TASK_ALWAYS_EAGER": "false",
            "LOG_FORMAT": "console",
            "LOG_LEVEL": "WARNING",
            **{key: str(value) for key, value in environment.items()},
        }
        log = open(self.log_dir / f"worker-{len(self.processes)}.log", "wb")  # noqa: SIM115
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "tradeengage",
                "worker",
                "-Q",
                "critical,high,default,low",
                "--pool",
                "threads",
                "--concurrency",
                str(concurrency),
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--hostname",
                f"test-worker-{len(self.processes)}@%h",
            ],
            cwd=BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    def kill(self, process: subprocess.Popen) -> None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
            for path in sorted(self.log_dir.glob("worker-*.log"))
        )


@pytest.fixture
def workers(tmp_path):
    celery_app.conf.task_always_eager = False
    celery_app.control.purge()
    workers = Workers(tmp_path)
    yield workers
    workers.stop_all()
    celery_app.control.purge()


def wait_until(condition, *, timeout: float, workers: Workers, interval: float = 0.2, kick=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if kick:
            kick()
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout} s\n{workers.logs()}")


def all_synced(count: int):
    return lambda: JobRouting.objects.filter(sync_status=SyncStatus.SYNCED).count() >= count


def routings_with_events(count: int, **company) -> list[JobRouting]:
    companies = [CompanyFactory(provider_type="mock", **company) for _ in range(5)]
    jobs = [JobFactory() for _ in range(count // 5 + 1)]
    routings = JobRouting.objects.bulk_create(
        JobRouting(job=jobs[n // 5], company=companies[n % 5]) for n in range(count)
    )
    OutboxEvent.objects.bulk_create(OutboxEvent(**job_sync_event(r)) for r in routings)
    return routings


def assert_each_synced_exactly_once_at_the_provider(routings, *, allow_replays: bool):
    remote = {job.idempotency_key: job for job in MockJob.objects.all()}
    assert len(remote) == len(routings)
    for routing in JobRouting.objects.filter(id__in=[r.id for r in routings]):
        job = remote[str(routing.id)]
        assert routing.sync_status == SyncStatus.SYNCED
        assert routing.external_id == job.external_id
        if not allow_replays:
            assert job.create_calls == 1, routing.id
    assert not OutboxEvent.objects.exclude(status=OutboxStatus.DONE).exists()


def test_a_job_created_over_http_is_synced_by_a_real_worker(workers, api_client):
    workers.start()
    requester = CompanyFactory(service_areas=["IL"])
    technician = TechnicianFactory(company=requester)
    for _ in range(3):
        CompanyFactory(
            provider_type="mock", service_areas=["IL"], skills={"plumbing": SkillLevel.EXPERT}
        )

    response = api_client.post(
        "/api/v1/jobs/",
        {
            "summary": "Fix leaky kitchen faucet",
            "address": {
                "street": "456 Oak Avenue",
                "city": "Springfield",
                "state": "IL",
                "zip_code": "62701",
            },
            "homeowner": {"name": "Jane Smith"},
            "created_by_company_id": str(requester.id),
            "created_by_technician_id": str(technician.id),
            "required_skills": ["plumbing"],
        },
        format="json",
    )
    assert response.status_code == 201, response.content

    wait_until(all_synced(3), timeout=30, workers=workers)
    routings = list(JobRouting.objects.filter(job_id=response.json()["id"]))
    assert len(routings) == 3
    assert_each_synced_exactly_once_at_the_provider(routings, allow_replays=False)


def test_relays_and_workers_racing_over_500_events_sync_each_routing_once(workers):
    routings = routings_with_events(500)
    for _ in range(2):
        workers.start(OUTBOX_RELAY_BATCH_SIZE=25, OUTBOX_RELAY_MAX_BATCHES=4)
    for _ in range(6):  # relays racing in both workers, each enqueuing the next while work is left
        relay_outbox.delay()

    wait_until(all_synced(500), timeout=90, workers=workers, interval=0.5)
    assert_each_synced_exactly_once_at_the_provider(routings, allow_replays=False)


def test_a_worker_killed_mid_batch_loses_nothing_and_duplicates_nothing(workers):
    routings = routings_with_events(200, provider_settings={"latency_ms": 50})
    lease = {"OUTBOX_LEASE_SECONDS": 3, "OUTBOX_RELAY_BATCH_SIZE": 20, "SYNC_CALL_CONCURRENCY": 4}
    doomed = workers.start(**lease)
    relay_outbox.delay()

    wait_until(all_synced(20), timeout=30, workers=workers, interval=0.05)
    workers.kill(doomed)
    synced_at_the_kill = JobRouting.objects.filter(sync_status=SyncStatus.SYNCED).count()
    held = JobRouting.objects.filter(sync_status=SyncStatus.PROCESSING).count()
    assert synced_at_the_kill < 200 and held > 0, "the kill came too late to test anything"

    workers.start(**lease)
    wait_until(all_synced(200), timeout=90, workers=workers, interval=1.0, kick=relay_outbox.delay)
    assert_each_synced_exactly_once_at_the_provider(routings, allow_replays=True)

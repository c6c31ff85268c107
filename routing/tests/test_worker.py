"""The sync pipeline with real Celery workers, Redis and PostgreSQL: end to end, relays and
workers racing, and a worker killed in the middle of its batch.

The workers are separate processes started on the test database, so these tests commit their
data (``transactional_db``). They purge the Celery queues of ``REDIS_URL``'s database: give the
tests a database of their own (CI uses ``/15``).
"""

import pytest

from integrations.models import MockJob
from jobs.models import SkillLevel
from jobs.tests.factories import CompanyFactory, JobFactory, TechnicianFactory
from routing.models import JobRouting, OutboxEvent, OutboxStatus, SyncStatus
from routing.tasks import relay_outbox
from routing.tests.celery_workers import NEEDS_POSTGRESQL_AND_REDIS, wait_until

pytestmark = [
    pytest.mark.worker,
    # Committed data the workers can see; the managed skills and categories, seeded by a
    # migration, are restored before each test.
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    NEEDS_POSTGRESQL_AND_REDIS,
]


def all_synced(count: int):
    return lambda: JobRouting.objects.filter(sync_status=SyncStatus.SYNCED).count() >= count


def routings_with_events(count: int, **company) -> list[JobRouting]:
    companies = [CompanyFactory(provider_type="mock", **company) for _ in range(5)]
    jobs = [JobFactory() for _ in range(count // 5 + 1)]
    routings = JobRouting.objects.bulk_create(
        JobRouting(job=jobs[n // 5], company=companies[n % 5]) for n in range(count)
    )
    OutboxEvent.objects.bulk_create(OutboxEvent.for_routing(r) for r in routings)
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


def test_a_job_created_over_http_is_synced_by_a_real_worker(
    workers, api_client, client, tmp_path, monkeypatch
):
    """And the worker's counts show at /metrics (prometheus_client's multiprocess mode)."""
    metrics_folder = tmp_path / "metrics"
    metrics_folder.mkdir()
    workers.start(PROMETHEUS_MULTIPROC_DIR=metrics_folder)
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
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(metrics_folder))
    scraped = client.get("/metrics").content.decode()
    assert 'sync_success_total{provider="mock"} 3.0' in scraped
    assert 'sync_latency_seconds_count{provider="mock"} 3.0' in scraped


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

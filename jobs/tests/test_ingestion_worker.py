"""Batch ingestion with real Celery workers, Redis and PostgreSQL: a batch posted over HTTP is
created and routed by the workers, and a worker killed in the middle of a batch loses and
duplicates nothing (its chunks are taken again when their lease runs out)."""

import pytest

from jobs.models import IngestionBatch, IngestionItem, IngestionStatus, Job, SkillLevel
from jobs.tests.factories import CompanyFactory, TechnicianFactory
from routing.models import JobRouting, SyncStatus
from routing.tasks import relay_outbox
from routing.tests.celery_workers import NEEDS_POSTGRESQL_AND_REDIS, wait_until

pytestmark = [
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    NEEDS_POSTGRESQL_AND_REDIS,
]


def batch_body(requester, technician, external_ids) -> dict:
    return {
        "source": "crm-x",
        "jobs": [
            {
                "external_id": external_id,
                "summary": f"Fix leaky faucet {external_id}",
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
            }
            for external_id in external_ids
        ],
    }


@pytest.fixture
def network():
    requester = CompanyFactory(service_areas=["IL"])
    technician = TechnicianFactory(company=requester)
    for _ in range(2):
        CompanyFactory(
            provider_type="mock", service_areas=["IL"], skills={"plumbing": SkillLevel.EXPERT}
        )
    return requester, technician


def batches_completed(count: int):
    return lambda: (
        IngestionBatch.objects.exclude(status=IngestionStatus.PROCESSING).count() >= count
    )


def test_a_batch_posted_over_http_is_created_and_synced_by_real_workers(
    workers, api_client, network
):
    requester, technician = network
    workers.start(INGESTION_CHUNK_SIZE=10)
    workers.start(INGESTION_CHUNK_SIZE=10)
    external_ids = [f"ext-{n}" for n in range(60)]

    response = api_client.post(
        "/api/v1/ingestion/jobs",
        batch_body(requester, technician, [*external_ids, "ext-0"]),
        format="json",
    )
    assert response.status_code == 202, response.content
    ingestion_id = response.json()["data"]["ingestion_id"]

    wait_until(batches_completed(1), timeout=60, workers=workers, interval=0.3)
    data = api_client.get(f"/api/v1/ingestion/{ingestion_id}").json()["data"]
    assert data["status"] == "completed"
    assert data["counts"] == {"queued": 0, "created": 60, "duplicate": 1, "invalid": 0}
    assert Job.objects.filter(source="crm-x").count() == 60
    wait_until(
        lambda: JobRouting.objects.filter(sync_status=SyncStatus.SYNCED).count() >= 120,
        timeout=60,
        workers=workers,
    )


def test_a_worker_killed_mid_batch_loses_and_duplicates_nothing(workers, api_client, network):
    requester, technician = network
    lease = {"OUTBOX_LEASE_SECONDS": 3, "INGESTION_CHUNK_SIZE": 25}
    doomed = workers.start(**lease)
    external_ids = [f"ext-{n}" for n in range(300)]
    response = api_client.post(
        "/api/v1/ingestion/jobs", batch_body(requester, technician, external_ids), format="json"
    )
    assert response.status_code == 202, response.content

    wait_until(
        lambda: IngestionItem.objects.filter(status="created").count() >= 20,
        timeout=60,
        workers=workers,
        interval=0.05,
    )
    workers.kill(doomed)
    created_at_the_kill = IngestionItem.objects.filter(status="created").count()
    assert created_at_the_kill < 300, "the kill came too late to test anything"

    workers.start(**lease)
    wait_until(
        batches_completed(1), timeout=90, workers=workers, interval=1.0, kick=relay_outbox.delay
    )
    assert Job.objects.filter(source="crm-x").count() == 300
    assert IngestionItem.objects.filter(status="created").count() == 300
    assert IngestionBatch.objects.get().status == IngestionStatus.COMPLETED

"""Batch ingestion's service (jobs/ingestion.py): storing a batch, creating its jobs chunk by
chunk under the outbox's claims, duplicates by external id, per-item errors, completion."""

import threading
import uuid

import pytest
from django.db import close_old_connections, connection
from django.utils import timezone

from jobs.ingestion import (
    INGESTION_CHUNK,
    ItemIn,
    ingestion_batch_create,
    ingestion_chunk_process,
    ingestion_events_process,
    ingestion_item_counts,
)
from jobs.models import (
    IngestionBatch,
    IngestionItem,
    IngestionItemStatus,
    IngestionStatus,
    Job,
)
from routing.models import JobRouting, OutboxEvent, OutboxStatus
from tradeengage.logging import correlation_id_as

pytestmark = pytest.mark.django_db


def payload(job_payload, **changes) -> dict:
    """A validated item's payload: the job-create fields as the API stores them."""
    body = {key: value for key, value in job_payload.items() if key != "required_skills"}
    return {**body, **changes}


def item(job_payload, external_id: str, **changes) -> ItemIn:
    return ItemIn(external_id=external_id, payload=payload(job_payload, **changes), errors=[])


def invalid(external_id: str) -> ItemIn:
    errors = [{"field": "summary", "message": "This field is required."}]
    return ItemIn(external_id=external_id, payload=None, errors=errors)


def create(job_payload, items, *, source="crm-x", company_id=None) -> IngestionBatch:
    return ingestion_batch_create(
        company_id=company_id or uuid.UUID(job_payload["created_by_company_id"]),
        submitted_by="tests",
        source=source,
        items=items,
    )


def claim_ingestion_events() -> tuple[list[int], object]:
    """Claim every due ingestion chunk as the relay would; their ids and the claim's token."""
    now = timezone.now()
    ids = list(
        OutboxEvent.objects.filter(
            event_type=INGESTION_CHUNK, status=OutboxStatus.PENDING
        ).values_list("id", flat=True)
    )
    OutboxEvent.objects.filter(id__in=ids).update(
        status=OutboxStatus.PROCESSING, claimed_at=now, lease_expires_at=now
    )
    return ids, now


def ingest() -> dict:
    """Create the jobs of every queued chunk, as workers would."""
    ids, claimed_at = claim_ingestion_events()
    return ingestion_events_process(event_ids=ids, claimed_at=claimed_at)


def items_of(batch) -> list[IngestionItem]:
    return list(batch.items.order_by("position"))


def test_a_batch_is_stored_with_its_items_and_one_event_per_chunk(job_payload, settings):
    settings.INGESTION_CHUNK_SIZE = 2
    items = [item(job_payload, f"ext-{n}") for n in range(5)]

    batch = create(job_payload, [*items, invalid("bad-1")])

    assert (batch.status, batch.jobs_received, batch.jobs_queued) == ("processing", 6, 5)
    stored = items_of(batch)
    assert [i.status for i in stored] == ["queued"] * 5 + ["invalid"]
    assert stored[5].errors == [{"field": "summary", "message": "This field is required."}]
    chunks = OutboxEvent.objects.filter(event_type=INGESTION_CHUNK).order_by("id")
    assert [event.event_data["positions"] for event in chunks] == [[0, 1], [2, 3], [4]]
    assert {event.aggregate_id for event in chunks} == {batch.id}
    assert Job.objects.count() == 0  # the workers create them


def test_workers_create_the_jobs_routed_as_the_jobs_endpoint_routes_them(
    job_payload, plumbing_company
):
    batch = create(job_payload, [item(job_payload, "ext-1"), item(job_payload, "ext-2")])

    counts = ingest()

    assert counts == {"created": 2}
    first, second = items_of(batch)
    assert first.status == second.status == IngestionItemStatus.CREATED
    job = Job.objects.get(id=first.job_id)
    assert (job.source, job.external_id) == ("crm-x", "ext-1")
    assert job.created_by_company_id == uuid.UUID(job_payload["created_by_company_id"])
    routing = JobRouting.objects.get(job=job)
    assert routing.company_id == plumbing_company.id
    assert OutboxEvent.objects.filter(aggregate_id=routing.id, event_type="job_sync").exists()
    batch.refresh_from_db()
    assert batch.status == IngestionStatus.COMPLETED
    assert batch.completed_at is not None
    assert not OutboxEvent.objects.filter(
        event_type=INGESTION_CHUNK, status__in=[OutboxStatus.PENDING, OutboxStatus.PROCESSING]
    ).exists()


def test_a_repeated_external_id_in_one_batch_is_a_duplicate_of_the_first(job_payload):
    batch = create(job_payload, [item(job_payload, "same"), item(job_payload, "same")])

    ingest()

    first, second = items_of(batch)
    assert first.status == IngestionItemStatus.CREATED
    assert second.status == IngestionItemStatus.DUPLICATE
    assert second.job_id == first.job_id
    assert Job.objects.filter(external_id="same").count() == 1


def test_a_resubmitted_batch_reports_duplicates_and_creates_nothing(job_payload):
    first_batch = create(job_payload, [item(job_payload, "a"), item(job_payload, "b")])
    ingest()
    jobs_before = Job.objects.count()

    again = create(job_payload, [item(job_payload, "a"), item(job_payload, "b")])
    counts = ingest()

    assert counts == {"duplicate": 2}
    assert Job.objects.count() == jobs_before
    assert [i.job_id for i in items_of(again)] == [i.job_id for i in items_of(first_batch)]
    again.refresh_from_db()
    assert again.status == IngestionStatus.COMPLETED


def test_the_same_external_id_from_another_source_or_company_is_another_job(
    job_payload, plumbing_company
):
    create(job_payload, [item(job_payload, "x")], source="crm-x")
    create(job_payload, [item(job_payload, "x")], source="crm-y")
    ingest()

    assert Job.objects.filter(external_id="x").count() == 2


def test_an_item_the_network_refuses_is_invalid_and_the_others_are_created(job_payload):
    batch = create(
        job_payload,
        [
            item(job_payload, "ok"),
            item(job_payload, "ghost-technician", created_by_technician_id=str(uuid.uuid4())),
            item(job_payload, "unknown-skill", skill_levels={"welding": "basic"}),
        ],
    )

    counts = ingest()

    assert counts == {"created": 1, "invalid": 2}
    ok, ghost, unknown = items_of(batch)
    assert ok.status == IngestionItemStatus.CREATED
    assert ghost.status == IngestionItemStatus.INVALID
    assert ghost.errors[0]["field"] == "created_by_technician_id"
    assert "does not exist" in ghost.errors[0]["message"]
    assert unknown.errors[0]["field"] == "required_skills"
    assert "welding" in unknown.errors[0]["message"]
    batch.refresh_from_db()
    assert batch.status == IngestionStatus.COMPLETED_WITH_ERRORS
    assert ingestion_item_counts(batch_id=batch.id) == {
        "queued": 0,
        "created": 1,
        "duplicate": 0,
        "invalid": 2,
    }


def test_a_batch_with_nothing_valid_is_complete_at_once(job_payload):
    batch = create(job_payload, [invalid("a"), invalid("b")])

    assert batch.status == IngestionStatus.COMPLETED_WITH_ERRORS
    assert batch.completed_at is not None
    assert not OutboxEvent.objects.filter(event_type=INGESTION_CHUNK).exists()


def test_a_chunk_run_again_creates_nothing_more(job_payload):
    batch = create(job_payload, [item(job_payload, "a"), item(job_payload, "b")])
    ingest()
    jobs = Job.objects.count()

    counts = ingestion_chunk_process(batch_id=batch.id, positions=[0, 1])

    assert counts == {}
    assert Job.objects.count() == jobs


def test_a_chunk_half_done_when_its_worker_died_finishes_the_rest(job_payload, settings):
    settings.INGESTION_CHUNK_SIZE = 10
    batch = create(job_payload, [item(job_payload, f"e{n}") for n in range(3)])
    ingestion_chunk_process(batch_id=batch.id, positions=[0])  # the dead worker's progress
    batch.refresh_from_db()
    assert batch.status == IngestionStatus.PROCESSING

    counts = ingest()  # the chunk, taken again after its lease ran out

    assert counts == {"created": 2}
    assert Job.objects.filter(source="crm-x").count() == 3
    batch.refresh_from_db()
    assert batch.status == IngestionStatus.COMPLETED


def test_events_no_longer_claimed_under_the_token_are_left_alone(job_payload):
    create(job_payload, [item(job_payload, "a")])
    ids, claimed_at = claim_ingestion_events()
    OutboxEvent.objects.filter(id__in=ids).update(claimed_at=timezone.now())  # claimed again

    counts = ingestion_events_process(event_ids=ids, claimed_at=claimed_at)

    assert counts == {}
    assert Job.objects.count() == 0
    assert OutboxEvent.objects.get(id=ids[0]).status == OutboxStatus.PROCESSING


def test_a_batch_completes_once_when_its_last_chunk_finishes(job_payload, settings):
    settings.INGESTION_CHUNK_SIZE = 1
    batch = create(job_payload, [item(job_payload, "a"), item(job_payload, "b")])

    ingestion_chunk_process(batch_id=batch.id, positions=[0])
    batch.refresh_from_db()
    assert batch.status == IngestionStatus.PROCESSING
    ingestion_chunk_process(batch_id=batch.id, positions=[1])
    batch.refresh_from_db()
    assert batch.status == IngestionStatus.COMPLETED


def test_the_jobs_carry_the_batchs_correlation_id(job_payload):
    with correlation_id_as("req-ingest-1"):
        batch = create(job_payload, [item(job_payload, "a")])
    ingest()

    assert batch.correlation_id == "req-ingest-1"
    assert Job.objects.get(external_id="a").correlation_id == "req-ingest-1"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_racing_batches_with_the_same_external_ids_create_each_job_once(job_payload):
    """Two workers create the same external ids at the same instant, each for its own batch:
    the database's uniqueness lets one job per id through, and the loser reports a duplicate
    of the winner's job."""
    external_ids = [f"race-{n}" for n in range(20)]
    batches = [create(job_payload, [item(job_payload, e) for e in external_ids]) for _ in range(2)]
    start = threading.Barrier(2)
    errors = []

    def work(batch):
        try:
            start.wait()
            ingestion_chunk_process(batch_id=batch.id, positions=list(range(len(external_ids))))
        except Exception as exc:
            errors.append(exc)
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=work, args=(batch,)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert Job.objects.filter(external_id__in=external_ids).count() == len(external_ids)
    for external_id in external_ids:
        outcomes = IngestionItem.objects.filter(external_id=external_id).values_list(
            "status", "job_id"
        )
        statuses = sorted(status for status, _ in outcomes)
        assert statuses == ["created", "duplicate"], (external_id, statuses)
        assert len({job_id for _, job_id in outcomes}) == 1
    for batch in batches:
        batch.refresh_from_db()
        assert batch.status == IngestionStatus.COMPLETED


def test_a_resubmitted_chunk_finds_its_duplicates_in_one_query(
    job_payload, django_assert_max_num_queries
):
    create(job_payload, [item(job_payload, f"e{n}") for n in range(20)])
    ingest()
    again = create(job_payload, [item(job_payload, f"e{n}") for n in range(20)])

    # The batch, its items, the jobs already made (one query for all), one update per item,
    # then the completion: its transaction, the batch locked, the items counted, the batch
    # saved and its webhooks looked up.
    with django_assert_max_num_queries(20 + 10):
        counts = ingestion_chunk_process(batch_id=again.id, positions=list(range(20)))

    assert counts == {"duplicate": 20}

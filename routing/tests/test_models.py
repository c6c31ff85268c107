"""The state rules on routing's models: when a sync may take a routing, what each outcome of a
sync leaves on it and on its outbox event, the one builder of a ``job_sync`` payload,
completion and decline, and the provider's job. Rows are built in memory where a rule reads and
writes only the instance; completion and decline are conditional updates, so their tests store
their rows."""

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from jobs.models import Company
from routing.models import JobRouting, OutboxEvent, OutboxStatus, SyncStatus
from routing.tests.factories import JobRoutingFactory

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def routing(**fields) -> JobRouting:
    fields.setdefault("company", Company(name="Prairie Plumbing", provider_type="mock"))
    fields.setdefault("job_id", uuid.uuid4())
    return JobRouting(**fields)


def claimed(**fields) -> JobRouting:
    """A routing a sync holds, after two failed attempts."""
    return routing(
        sync_status=SyncStatus.PROCESSING,
        claimed_at=NOW - timedelta(seconds=3),
        lease_expires_at=NOW + timedelta(seconds=27),
        retry_count=2,
        next_retry_at=NOW - timedelta(seconds=1),
        error_message="Mock provider: HTTP 503 Service Unavailable",
        **fields,
    )


# JobRouting: which routings a sync may take


@pytest.mark.parametrize(
    ("sync_status", "lease_expires_at", "takeable"),
    [
        (SyncStatus.PENDING, None, True),
        (SyncStatus.PENDING, NOW + timedelta(seconds=30), True),
        (SyncStatus.PROCESSING, None, True),
        (SyncStatus.PROCESSING, NOW - timedelta(microseconds=1), True),
        (SyncStatus.PROCESSING, NOW, False),
        (SyncStatus.PROCESSING, NOW + timedelta(seconds=30), False),
        (SyncStatus.SYNCED, None, False),
        (SyncStatus.COMPLETED, None, False),
        (SyncStatus.FAILED, None, False),
    ],
    ids=[
        "pending",
        "pending-with-a-lease-left-on-it",
        "processing-without-a-lease",
        "processing-lease-ran-out",
        "processing-lease-running-out-now",
        "processing-lease-live",
        "synced",
        "completed",
        "failed",
    ],
)
def test_a_sync_takes_pending_routings_and_those_whose_lease_ran_out(
    sync_status, lease_expires_at, takeable
):
    candidate = routing(sync_status=sync_status, claimed_at=NOW, lease_expires_at=lease_expires_at)

    assert candidate.is_takeable(now=NOW) is takeable


@pytest.mark.parametrize(
    ("sync_status", "finished"),
    [
        (SyncStatus.PENDING, False),
        (SyncStatus.PROCESSING, False),
        (SyncStatus.SYNCED, True),
        (SyncStatus.COMPLETED, True),
        (SyncStatus.FAILED, False),
    ],
)
def test_a_routing_is_finished_once_synced_or_completed(sync_status, finished):
    assert routing(sync_status=sync_status).is_finished is finished


@pytest.mark.parametrize("sync_status", [SyncStatus.PENDING, SyncStatus.PROCESSING])
def test_a_routing_its_company_declined_is_finished_and_never_taken_again(sync_status):
    """A decline answers a push the company received: however its sync stands, nothing pushes
    it again."""
    declined = routing(sync_status=sync_status, declined_at=NOW, lease_expires_at=None)

    assert declined.is_finished
    assert not declined.is_takeable(now=NOW)


# JobRouting: what an outcome leaves


def test_a_synced_routing_holds_its_external_id_and_no_error_or_claim():
    synced = claimed()

    synced.mark_synced(external_id="MOCK-1", now=NOW)

    assert synced.sync_status == SyncStatus.SYNCED
    assert (synced.external_id, synced.last_synced_at, synced.updated_at) == ("MOCK-1", NOW, NOW)
    assert (synced.next_retry_at, synced.error_message, synced.claimed_at) == (None, None, None)
    assert synced.retry_count == 2  # how many retries it took stays visible
    assert synced.lease_expires_at is None


def test_a_waiting_routing_is_pending_and_due_again_after_its_wait():
    waiting = claimed()

    waiting.mark_waiting(error="No provider configured", seconds=300, now=NOW)

    assert waiting.sync_status == SyncStatus.PENDING
    assert waiting.next_retry_at == NOW + timedelta(seconds=300)
    assert (waiting.error_message, waiting.claimed_at, waiting.updated_at) == (
        "No provider configured",
        None,
        NOW,
    )
    assert waiting.lease_expires_at is None
    assert waiting.retry_count == 2  # the caller counts retries, not every wait


def test_a_wait_may_be_a_fraction_of_a_second():
    waiting = claimed()

    waiting.mark_waiting(error="Retry-After", seconds=0.25, now=NOW)

    assert waiting.next_retry_at == NOW + timedelta(milliseconds=250)


def test_a_failed_routing_is_in_the_dead_letters_with_its_error_and_nothing_due():
    failed = claimed()

    failed.mark_failed(error="Mock provider: HTTP 422 Validation Error", now=NOW)

    assert failed.sync_status == SyncStatus.FAILED
    assert failed.error_message == "Mock provider: HTTP 422 Validation Error"
    assert (failed.next_retry_at, failed.claimed_at, failed.updated_at) == (None, None, NOW)
    assert failed.lease_expires_at is None
    assert (failed.external_id, failed.retry_count) == (None, 2)


def test_an_outcome_leaves_the_routing_takeable_only_when_it_waits():
    synced, waiting, failed = claimed(), claimed(), claimed()

    synced.mark_synced(external_id="MOCK-1", now=NOW)
    waiting.mark_waiting(error="retry", seconds=5, now=NOW)
    failed.mark_failed(error="for good", now=NOW)

    assert [r.is_takeable(now=NOW) for r in (synced, waiting, failed)] == [
        False,
        True,
        False,
    ]


# OutboxEvent: the job_sync payload


def job_sync_data(provider_type: str) -> dict:
    return OutboxEvent.job_sync_data(
        routing_id=uuid.UUID(int=1),
        job_id=uuid.UUID(int=2),
        company_id=uuid.UUID(int=3),
        matching_score=5.25,
        matched_skills=["plumbing", "water_heater"],
        provider_type=provider_type,
    )


def test_a_job_sync_payload_holds_the_seed_fields_with_ids_as_text(settings):
    settings.SYNC_UNCONFIGURED_WITH_MOCK = False

    assert job_sync_data("servicetitan") == {
        "routing_id": "00000000-0000-0000-0000-000000000001",
        "job_id": "00000000-0000-0000-0000-000000000002",
        "company_id": "00000000-0000-0000-0000-000000000003",
        "matching_score": 5.25,
        "matched_skills": ["plumbing", "water_heater"],
        "provider_type": "servicetitan",
    }


@pytest.mark.parametrize(
    ("provider_type", "with_mock", "resolved"),
    [
        ("", False, ""),
        ("", True, "mock"),
        ("servicetitan", False, "servicetitan"),
        ("servicetitan", True, "servicetitan"),
        ("crm", True, "crm"),
        ("mock", False, "mock"),
    ],
)
def test_a_job_sync_payload_names_the_provider_the_routing_goes_to(
    settings, provider_type, with_mock, resolved
):
    settings.SYNC_UNCONFIGURED_WITH_MOCK = with_mock

    assert job_sync_data(provider_type)["provider_type"] == resolved


def test_an_event_for_a_routing_carries_its_payload_and_the_fields_given(settings):
    settings.SYNC_UNCONFIGURED_WITH_MOCK = True
    company = Company(name="No provider yet", provider_type="")
    source = routing(company=company, matching_score=4.5, matched_skills=["plumbing"])

    event = OutboxEvent.for_routing(source, status=OutboxStatus.PROCESSING, claimed_at=NOW)

    assert (event.event_type, event.aggregate_id) == (OutboxEvent.JOB_SYNC, source.id)
    assert (event.status, event.claimed_at, event.pk) == (OutboxStatus.PROCESSING, NOW, None)
    assert event.event_data == {
        "routing_id": str(source.id),
        "job_id": str(source.job_id),
        "company_id": str(company.id),
        "matching_score": 4.5,
        "matched_skills": ["plumbing"],
        "provider_type": "mock",
    }


def test_an_event_for_a_routing_is_pending_and_due_by_default():
    before = timezone.now()

    event = OutboxEvent.for_routing(routing())

    assert (event.status, event.attempts, event.last_error) == (OutboxStatus.PENDING, 0, "")
    assert before <= event.available_at <= timezone.now()


# OutboxEvent: closing and waiting


def held_event(**fields) -> OutboxEvent:
    """An event a relay claimed, after a failed attempt."""
    return OutboxEvent(
        event_type=OutboxEvent.JOB_SYNC,
        aggregate_id=uuid.uuid4(),
        status=OutboxStatus.PROCESSING,
        claimed_at=NOW - timedelta(seconds=3),
        lease_expires_at=NOW + timedelta(seconds=27),
        attempts=2,
        last_error="Mock provider: HTTP 503 Service Unavailable",
        **fields,
    )


def test_a_done_event_is_processed_unclaimed_and_keeps_its_last_error():
    event = held_event()

    event.close(OutboxStatus.DONE, now=NOW)

    assert (event.status, event.processed_at, event.claimed_at) == (OutboxStatus.DONE, NOW, None)
    assert event.lease_expires_at is None
    assert event.last_error == "Mock provider: HTTP 503 Service Unavailable"
    assert event.attempts == 2


def test_a_dead_event_records_the_error_that_killed_it():
    event = held_event()

    event.close(OutboxStatus.DEAD, now=NOW, error="Mock provider: HTTP 401 Unauthorized")

    assert (event.status, event.processed_at, event.claimed_at) == (OutboxStatus.DEAD, NOW, None)
    assert event.last_error == "Mock provider: HTTP 401 Unauthorized"


def test_a_waiting_event_is_pending_unclaimed_and_due_at_the_time_given():
    event = held_event()
    due = NOW + timedelta(seconds=10)

    event.wait_until(due, error="Mock provider: no answer within 30.0 s")

    assert (event.status, event.available_at, event.claimed_at) == (
        OutboxStatus.PENDING,
        due,
        None,
    )
    assert event.last_error == "Mock provider: no answer within 30.0 s"
    assert (event.processed_at, event.lease_expires_at) == (None, None)


def test_a_waiting_event_without_an_error_clears_the_last_one():
    event = held_event()

    event.wait_until(NOW)

    assert event.last_error == ""


# JobRouting: completion as its provider reports it


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("sync_status", "completed"),
    [
        (SyncStatus.SYNCED, True),
        (SyncStatus.PROCESSING, True),
        (SyncStatus.PENDING, False),
        (SyncStatus.FAILED, False),
        (SyncStatus.COMPLETED, False),
    ],
)
def test_only_a_routing_its_provider_holds_is_marked_completed(sync_status, completed):
    stored = JobRoutingFactory(sync_status=sync_status)

    changed = JobRouting.mark_completed(
        stored.id, completed_at=NOW, revenue=Decimal("325.00"), now=NOW
    )

    stored.refresh_from_db()
    assert changed is completed
    if completed:
        assert (stored.sync_status, stored.completed_at, stored.revenue) == (
            SyncStatus.COMPLETED,
            NOW,
            Decimal("325.00"),
        )
    else:
        assert (stored.sync_status, stored.revenue) == (sync_status, None)


@pytest.mark.django_db
def test_a_declined_routing_is_not_marked_completed():
    stored = JobRoutingFactory(sync_status=SyncStatus.SYNCED, declined_at=NOW)

    assert not JobRouting.mark_completed(stored.id, completed_at=NOW, revenue=Decimal(1), now=NOW)

    stored.refresh_from_db()
    assert (stored.sync_status, stored.completed_at) == (SyncStatus.SYNCED, None)


# JobRouting: declined by its company


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("sync_status", "declined"),
    [
        (SyncStatus.SYNCED, True),
        (SyncStatus.PROCESSING, True),
        (SyncStatus.PENDING, False),
        (SyncStatus.FAILED, False),
        (SyncStatus.COMPLETED, False),
    ],
)
def test_only_a_routing_its_provider_holds_is_marked_declined(sync_status, declined):
    stored = JobRoutingFactory(sync_status=sync_status)

    changed = JobRouting.mark_declined(
        stored.id, reason="Outside our service area", declined_at=NOW, now=NOW
    )

    stored.refresh_from_db()
    assert changed is declined
    assert stored.sync_status == sync_status  # a decline keeps the status
    if declined:
        assert (stored.declined_at, stored.decline_reason, stored.updated_at) == (
            NOW,
            "Outside our service area",
            NOW,
        )
    else:
        assert (stored.declined_at, stored.decline_reason) == (None, "")


@pytest.mark.django_db
def test_a_routing_is_declined_once():
    stored = JobRoutingFactory(sync_status=SyncStatus.SYNCED)
    later = NOW + timedelta(minutes=5)

    first = JobRouting.mark_declined(stored.id, reason="first", declined_at=NOW, now=NOW)
    second = JobRouting.mark_declined(stored.id, reason="second", declined_at=later, now=later)

    stored.refresh_from_db()
    assert (first, second) == (True, False)
    assert (stored.declined_at, stored.decline_reason) == (NOW, "first")


# JobRouting: the provider's job


@pytest.mark.parametrize(
    ("reported", "changed", "stored"),
    [
        (("81234", "JOB-81234"), True, ("81234", "JOB-81234")),
        (("", "JOB-81234"), True, ("700", "JOB-81234")),
        (("81234", ""), True, ("81234", "JOB-700")),
        (("700", "JOB-700"), False, ("700", "JOB-700")),
        (("", ""), False, ("700", "JOB-700")),
        (("9" * 70, ""), True, ("9" * 64, "JOB-700")),
    ],
    ids=["both-new", "number-only", "id-only", "the-same", "none-reported", "too-long"],
)
def test_the_providers_job_is_taken_where_reported_and_different(reported, changed, stored):
    known = routing(provider_job_id="700", provider_job_number="JOB-700", updated_at=None)

    result = known.provider_job_record(
        provider_job_id=reported[0], provider_job_number=reported[1], now=NOW
    )

    assert result is changed
    assert (known.provider_job_id, known.provider_job_number) == stored
    assert known.updated_at == (NOW if changed else None)

"""Requeueing (``routing.services.requeue``): failed routings out of the dead-letter queue and
waiting ones due now, through the outbox."""

import pytest

from integrations.models import MockJob
from routing.models import OutboxEvent, OutboxStatus, SyncStatus
from routing.services.requeue import routings_requeue
from routing.services.sync import routing_sync_now
from routing.tests.factories import JobRoutingFactory, routing_with_event
from routing.tests.in_process import fresh, relay

pytestmark = pytest.mark.django_db


def test_requeue_from_the_dead_letter_queue(clock):
    routing, event = routing_with_event(
        company__provider_settings={"fail_first": 1, "failure": "validation"}
    )
    relay()
    assert fresh(routing).sync_status == SyncStatus.FAILED
    load = fresh(routing.company).open_routing_count

    assert routings_requeue(routing_ids=[routing.id]) == [routing.id]

    routing, event = fresh(routing), fresh(event)
    assert (routing.sync_status, routing.retry_count) == (SyncStatus.PENDING, 0)
    assert (event.status, event.available_at, event.processed_at) == ("pending", clock.now, None)
    assert fresh(routing.company).open_routing_count == load + 1
    relay()
    routing = fresh(routing)
    assert routing.sync_status == SyncStatus.SYNCED
    assert fresh(event).status == OutboxStatus.DONE
    assert MockJob.objects.get().external_id == routing.external_id


def test_requeue_leaves_synced_and_in_flight_routings_alone(clock):
    synced, _ = routing_with_event(sync_status=SyncStatus.SYNCED, external_id="MOCK-1")
    busy, _ = routing_with_event(sync_status=SyncStatus.PROCESSING, claimed_at=clock.now)

    assert routings_requeue(routing_ids=[synced.id, busy.id]) == []

    assert fresh(synced).sync_status == SyncStatus.SYNCED
    assert fresh(busy).sync_status == SyncStatus.PROCESSING


def test_requeue_gives_a_routing_without_an_event_one(clock):
    routing = JobRoutingFactory(sync_status=SyncStatus.FAILED, company__provider_type="mock")

    assert routings_requeue(routing_ids=[routing.id]) == [routing.id]

    event = OutboxEvent.objects.get(aggregate_id=routing.id)
    assert (event.event_type, event.status) == ("job_sync", "pending")
    assert event.event_data["routing_id"] == str(routing.id)


# A routing its company declined: synced, and out of every pipeline


def declined_routing(clock, **kwargs):
    """A routing pushed to the mock provider and declined there, as the back-sync leaves it."""
    routing, event = routing_with_event(
        sync_status=SyncStatus.SYNCED,
        external_id="MOCK-1",
        declined_at=clock.now,
        decline_reason="Outside our service area",
        **kwargs,
    )
    MockJob.objects.create(
        idempotency_key=str(routing.id),
        external_id="MOCK-1",
        company_id=routing.company_id,
        create_calls=1,
        status=MockJob.Status.CANCELLED,
        created_at=clock.now,
    )
    OutboxEvent.objects.filter(id=event.id).update(status=OutboxStatus.DONE)
    return routing


def test_a_declined_routing_is_not_requeued(clock):
    routing = declined_routing(clock)

    assert routings_requeue(routing_ids=[routing.id]) == []

    assert not OutboxEvent.objects.filter(aggregate_id=routing.id, status="pending").exists()
    assert relay() == []
    assert MockJob.objects.get().create_calls == 1


def test_a_manual_sync_of_a_declined_routing_returns_it_unchanged(clock):
    routing = declined_routing(clock)

    synced = routing_sync_now(routing=routing)

    assert (synced.sync_status, synced.declined_at) == (SyncStatus.SYNCED, clock.now)
    assert MockJob.objects.get().create_calls == 1


def test_a_routing_declined_before_its_sync_was_recorded_is_never_pushed_again(clock):
    """A provider may report on a job while the sync that created it has yet to record it; if
    that sync's outcome then left the routing pending, its event must not push it again."""
    routing, event = routing_with_event(declined_at=clock.now, decline_reason="Not our trade")

    relay()

    assert fresh(event).status == OutboxStatus.DONE
    assert fresh(routing).declined_at == clock.now
    assert not MockJob.objects.exists()

"""The outbox relay (``routing.outbox``): claiming due events in batches under a lease, taking
events again once their lease expired, releasing a batch that could not be enqueued, and the
relay task's count. The kick that schedules the relay is in ``test_outbox_kick.py``."""

from datetime import timedelta

import pytest
from django.utils import timezone

from routing.models import OutboxStatus
from routing.outbox import outbox_claim_batch, outbox_relay
from routing.tasks import relay_outbox
from routing.tests.factories import OutboxEventFactory, routing_with_event
from routing.tests.in_process import fresh

pytestmark = pytest.mark.django_db


# Relay claims


def test_a_type_with_a_per_task_size_is_handed_out_in_groups_of_it(clock, settings):
    settings.OUTBOX_EVENTS_PER_TASK = {"job_sync": 2}
    events = [routing_with_event()[1] for _ in range(5)]
    handed = []

    outbox_relay(enqueue=lambda event_type, ids, at: handed.append((event_type, ids)))

    ids = [event.id for event in events]
    assert handed == [("job_sync", ids[0:2]), ("job_sync", ids[2:4]), ("job_sync", ids[4:])]


def test_relay_claims_due_events_in_batches_with_a_lease(clock, settings):
    settings.OUTBOX_RELAY_BATCH_SIZE = 2
    events = [routing_with_event()[1] for _ in range(5)]
    later = OutboxEventFactory(available_at=clock.now + timedelta(seconds=30))
    batches = []

    claimed, more_due = outbox_relay(
        dispatch=lambda ids, at: batches.append((ids, at)), max_batches=2
    )

    assert claimed == 4 and more_due
    ids = [event.id for event in events]
    assert [batch for batch, _ in batches] == [ids[0:2], ids[2:4]]
    for event in events[:4]:
        event = fresh(event)
        assert (event.status, event.claimed_at, event.attempts) == ("processing", clock.now, 1)
    assert fresh(events[4]).status == OutboxStatus.PENDING
    assert fresh(later).status == OutboxStatus.PENDING


def test_relay_takes_events_again_once_their_lease_expired(clock, settings):
    _, event = routing_with_event()
    assert outbox_claim_batch(now=clock.now, batch_size=10) == [event.id]
    assert outbox_claim_batch(now=clock.now, batch_size=10) == []

    clock.advance(settings.OUTBOX_LEASE_SECONDS - 1)
    assert outbox_claim_batch(now=clock.now, batch_size=10) == []
    clock.advance(2)
    assert outbox_claim_batch(now=clock.now, batch_size=10) == [event.id]
    assert fresh(event).attempts == 2


def test_a_batch_that_cannot_be_enqueued_is_released_due_at_once(clock):
    _, event = routing_with_event()

    def broker_down(ids, at):
        raise ConnectionError("broker unreachable")

    with pytest.raises(ConnectionError):
        outbox_relay(dispatch=broker_down)

    event = fresh(event)
    assert (event.status, event.claimed_at) == (OutboxStatus.PENDING, None)
    assert outbox_claim_batch(now=clock.now, batch_size=10) == [event.id]


# The relay task


def test_relay_outbox_returns_the_number_of_due_pending_events(db):
    now = timezone.now()
    OutboxEventFactory.create_batch(2, available_at=now - timedelta(seconds=1))
    OutboxEventFactory(available_at=now + timedelta(minutes=5))
    OutboxEventFactory(status=OutboxStatus.PROCESSING, available_at=now - timedelta(minutes=1))
    OutboxEventFactory(status=OutboxStatus.DONE, available_at=now - timedelta(minutes=1))
    OutboxEventFactory(status=OutboxStatus.DEAD, available_at=now - timedelta(minutes=1))

    assert relay_outbox() == 2


def test_relay_outbox_with_nothing_due_returns_zero(db):
    assert relay_outbox() == 0

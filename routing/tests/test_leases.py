"""Heartbeat leases (``routing.leases``): a renewal extends what its task still holds, and on
PostgreSQL never waits for rows another transaction holds (the task storing its outcomes locks
routings, then events; a renewal waiting on them in the other order could deadlock)."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from routing.leases import Lease
from routing.models import JobRouting, OutboxEvent, OutboxStatus, SyncStatus
from routing.tests.factories import routing_with_event
from routing.tests.in_process import fresh


def claimed(now):
    routing, event = routing_with_event()
    OutboxEvent.objects.filter(id=event.id).update(
        status=OutboxStatus.PROCESSING, claimed_at=now, lease_expires_at=now
    )
    JobRouting.objects.filter(id=routing.id).update(
        sync_status=SyncStatus.PROCESSING, claimed_at=now, lease_expires_at=now
    )
    return (
        routing,
        event,
        Lease(event_ids=[event.id], event_token=now, routing_ids=[routing.id], routing_token=now),
    )


@pytest.mark.django_db
def test_a_renewal_extends_what_the_task_still_holds():
    now = timezone.now()
    routing, event, lease = claimed(now)
    OutboxEvent.objects.filter(id=event.id).update(claimed_at=now + timedelta(seconds=1))

    renewed = lease.renew(now=now + timedelta(seconds=5))

    assert renewed == 1  # the event was claimed again by someone else: not ours to renew
    assert fresh(routing).lease_expires_at > now + timedelta(seconds=5)
    assert fresh(event).lease_expires_at == now


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_renewal_skips_rows_another_transaction_holds_instead_of_waiting():
    now = timezone.now()
    routing, event, lease = claimed(now)
    locked, done = threading.Event(), threading.Event()

    def store():
        try:
            with transaction.atomic():
                list(JobRouting.objects.select_for_update().filter(id=routing.id))
                locked.set()
                done.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=store)
    holder.start()
    assert locked.wait(10)
    try:
        started = time.monotonic()
        renewed = lease.renew(now=now + timedelta(seconds=5))
        waited = time.monotonic() - started
    finally:
        done.set()
        holder.join()

    assert renewed == 1  # the event; the routing was being stored
    assert waited < 2
    assert fresh(event).lease_expires_at > now + timedelta(seconds=5)
    assert lease.renew(now=now + timedelta(seconds=6)) == 2

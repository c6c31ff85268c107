"""Heartbeat leases with real Celery workers, Redis and PostgreSQL: a lease its worker renews is
never taken, a dead worker's work is taken again within a minute, and a task that loses its
database connection gives its work back at once (``routing.leases``).

Same set-up as ``test_worker``: the workers are separate processes on the committed test data.
"""

import time

import pytest
from django.db import connection

from routing.models import JobRouting, OutboxEvent, SyncStatus
from routing.tasks import relay_outbox
from routing.tests.celery_workers import NEEDS_POSTGRESQL_AND_REDIS, wait_until
from routing.tests.test_worker import (
    all_synced,
    assert_each_synced_exactly_once_at_the_provider,
    routings_with_events,
)

pytestmark = [
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    NEEDS_POSTGRESQL_AND_REDIS,
]


def held(count: int):
    return lambda: JobRouting.objects.filter(sync_status=SyncStatus.PROCESSING).count() >= count


def test_a_lease_its_worker_renews_is_never_taken(workers):
    """Provider calls outlast the lease three times over while a second worker and a relay run
    every 0.2 s look for work: nothing is taken twice."""
    routings = routings_with_events(8, provider_settings={"latency_ms": 9000})
    lease = {
        "OUTBOX_LEASE_SECONDS": 3,
        "OUTBOX_LEASE_RENEW_SECONDS": 0.5,
        "OUTBOX_RELAY_BATCH_SIZE": 8,
        "SYNC_CALL_CONCURRENCY": 8,
    }
    workers.start(**lease)
    workers.start(**lease)
    relay_outbox.delay()

    wait_until(all_synced(8), timeout=40, workers=workers, interval=0.2, kick=relay_outbox.delay)

    assert_each_synced_exactly_once_at_the_provider(routings, allow_replays=False)
    assert set(OutboxEvent.objects.values_list("attempts", flat=True)) == {1}


def test_a_dead_workers_routings_are_synced_again_within_a_minute(workers):
    """With the production lease (30 s, renewed every 10 s), a worker SIGKILLed while it holds
    its batches; a relay runs every second, as beat and new jobs would run it."""
    routings = routings_with_events(40, provider_settings={"latency_ms": 4000})
    batches = {"OUTBOX_RELAY_BATCH_SIZE": 10, "SYNC_CALL_CONCURRENCY": 10}
    doomed = workers.start(**batches)
    relay_outbox.delay()
    wait_until(held(40), timeout=20, workers=workers, interval=0.05)

    workers.kill(doomed)
    killed_at = time.monotonic()
    workers.start(**batches)
    wait_until(all_synced(40), timeout=75, workers=workers, interval=1.0, kick=relay_outbox.delay)

    assert time.monotonic() - killed_at < 60
    assert_each_synced_exactly_once_at_the_provider(routings, allow_replays=True)


def test_a_task_that_loses_its_database_gives_its_work_back_at_once(workers):
    """The worker's database connections are cut while its provider calls run: recording the
    outcome fails, the task gives its claim back on a new connection, and the work is synced
    again long before its lease (60 s here) would have run out."""
    routings = routings_with_events(10, provider_settings={"latency_ms": 3000})
    settings = {
        "OUTBOX_LEASE_SECONDS": 60,
        "OUTBOX_RELAY_BATCH_SIZE": 10,
        "SYNC_CALL_CONCURRENCY": 10,
    }
    workers.start(**settings)
    relay_outbox.delay()
    wait_until(held(10), timeout=20, workers=workers, interval=0.05)

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    cut_at = time.monotonic()
    wait_until(all_synced(10), timeout=40, workers=workers, interval=0.5, kick=relay_outbox.delay)

    assert time.monotonic() - cut_at < 30
    assert_each_synced_exactly_once_at_the_provider(routings, allow_replays=True)

"""Provider calls in real Celery workers, on PostgreSQL and Redis (issue 20): a sync stores each
outcome as it comes, so a fast routing is synced while a slow sibling of its batch is still
being called; and a company never has more calls in flight in a worker than its bound, its
other routings handed back and synced later, each once."""

import time

import pytest

from integrations.models import MockJob
from jobs.tests.factories import CompanyFactory, JobFactory
from routing.models import JobRouting, OutboxEvent, SyncStatus
from routing.tasks import relay_outbox
from routing.tests.celery_workers import NEEDS_POSTGRESQL_AND_REDIS, wait_until

pytestmark = [
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    NEEDS_POSTGRESQL_AND_REDIS,
]


def routings_of(company, count: int) -> list[JobRouting]:
    routings = JobRouting.objects.bulk_create(
        JobRouting(job=JobFactory(), company=company) for _ in range(count)
    )
    OutboxEvent.objects.bulk_create(OutboxEvent.for_routing(r) for r in routings)
    return routings


def synced(routings) -> int:
    return JobRouting.objects.filter(
        id__in=[r.id for r in routings], sync_status=SyncStatus.SYNCED
    ).count()


def test_a_fast_routing_is_synced_while_its_slow_sibling_is_still_being_called(workers):
    fast_company = CompanyFactory(provider_type="mock")
    slow_company = CompanyFactory(provider_type="mock", provider_settings={"latency_ms": 8000})
    fast = routings_of(fast_company, 4)
    slow = routings_of(slow_company, 1)
    workers.start(SYNC_CALL_CONCURRENCY=8, OUTBOX_RELAY_BATCH_SIZE=50)
    relay_outbox.delay()  # one batch: all five

    wait_until(lambda: synced(fast) == 4, timeout=6, workers=workers, interval=0.1)
    assert JobRouting.objects.get(id=slow[0].id).sync_status == SyncStatus.PROCESSING

    wait_until(lambda: synced(slow) == 1, timeout=30, workers=workers)
    assert all(job.create_calls == 1 for job in MockJob.objects.all())


def test_a_company_never_has_more_calls_in_flight_than_its_bound(workers):
    """Each of the slow company's calls lasts 1.5 s and is recorded at its end (the mock's
    ``created_at``): with two in flight at most, no 1.4 s holds more than two of their ends."""
    slow_company = CompanyFactory(provider_type="mock", provider_settings={"latency_ms": 1500})
    fast_company = CompanyFactory(provider_type="mock")
    slow = routings_of(slow_company, 8)
    fast = routings_of(fast_company, 8)
    workers.start(
        SYNC_CALL_CONCURRENCY=16,
        SYNC_COMPANY_MAX_IN_FLIGHT=2,
        SYNC_COMPANY_BUSY_DEFER_SECONDS=1,
    )
    started = time.monotonic()
    relay_outbox.delay()

    wait_until(lambda: synced(fast) == 8, timeout=10, workers=workers, interval=0.1)
    fast_done_after = time.monotonic() - started
    wait_until(lambda: synced(slow) == 8, timeout=60, workers=workers, kick=relay_outbox.delay)

    ends = sorted(
        MockJob.objects.filter(company_id=slow_company.id).values_list("created_at", flat=True)
    )
    most_together = max(
        sum(1 for other in ends if 0 <= (other - end).total_seconds() < 1.4) for end in ends
    )
    assert most_together <= 2, ends
    assert fast_done_after < 4  # not held behind the slow company's calls
    assert {job.create_calls for job in MockJob.objects.all()} == {1}
    assert MockJob.objects.count() == 16

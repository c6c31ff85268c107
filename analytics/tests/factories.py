"""A network's history at chosen times: created_at is set by the database on insert, so the
helpers move rows to their moment after creating them."""

from datetime import datetime, timedelta
from decimal import Decimal

from jobs.models import Job
from jobs.tests.factories import JobFactory
from routing.models import JobRouting, SyncAttempt, SyncStatus
from routing.tests.factories import JobRoutingFactory


def job_at(moment: datetime, **kwargs) -> Job:
    job = JobFactory(**kwargs)
    Job.objects.filter(pk=job.pk).update(created_at=moment)
    job.created_at = moment
    return job


def routing_of(
    job: Job,
    *,
    synced_after: timedelta | None = None,
    completed_after: timedelta | None = None,
    revenue: str | None = None,
    status: str | None = None,
    **kwargs,
) -> JobRouting:
    """A routing created with its job, synced and completed that long after, if given."""
    synced_at = job.created_at + synced_after if synced_after is not None else None
    completed_at = job.created_at + completed_after if completed_after is not None else None
    if status is None:
        status = (
            SyncStatus.COMPLETED
            if completed_at
            else SyncStatus.SYNCED
            if synced_at
            else SyncStatus.PENDING
        )
    routing = JobRoutingFactory(job=job, sync_status=status, **kwargs)
    JobRouting.objects.filter(pk=routing.pk).update(
        created_at=job.created_at,
        last_synced_at=synced_at,
        completed_at=completed_at,
        revenue=Decimal(revenue) if revenue is not None else None,
    )
    routing.refresh_from_db()
    return routing


def failed_call(routing: JobRouting, at: datetime, *, dead: bool = False) -> SyncAttempt:
    return SyncAttempt.objects.create(
        routing=routing,
        number=routing.attempts.count() + 1,
        provider="mock",
        outcome=SyncAttempt.Outcome.FAILED if dead else SyncAttempt.Outcome.RETRY,
        error="Mock provider: HTTP 503 Service Unavailable",
        started_at=at,
        duration_ms=12,
    )

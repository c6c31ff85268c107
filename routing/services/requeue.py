"""Sending routings back to the outbox for a fresh round of attempts: failed ones (the
dead-letter queue) and pending ones waiting for a retry."""

import logging
from datetime import datetime

from django.db import connection, transaction
from django.db.models import Max, Q
from django.utils import timezone

from routing.leases import lease_end
from routing.models import JobRouting, OutboxEvent, OutboxStatus, SyncStatus
from routing.outbox import outbox_relay_kick
from routing.services.load import company_loads_change

logger = logging.getLogger("routing")

OPEN_EVENT = Q(status__in=[OutboxStatus.PENDING, OutboxStatus.PROCESSING])


def routings_requeue(*, routing_ids: list) -> list:
    """Requeue routings: their latest dead or waiting event is made due now (a routing without
    one gets a new one). Synced, completed and in-flight routings are left alone. A few
    statements per call, whatever the number of routings; returns the ids requeued."""
    now = timezone.now()
    with transaction.atomic():
        revived = routings_revive(routing_ids)
        waiting = JobRouting.objects.filter(id__in=routing_ids, sync_status=SyncStatus.PENDING)
        if connection.vendor == "postgresql":
            waiting = waiting.select_for_update(of=("self",))
        requeued = list(waiting.values_list("id", flat=True))
        if not requeued:
            return []
        JobRouting.objects.filter(id__in=requeued).update(
            retry_count=0, next_retry_at=None, updated_at=now
        )
        OutboxEvent.objects.filter(
            aggregate_id__in=requeued, event_type=OutboxEvent.JOB_SYNC, status=OutboxStatus.PENDING
        ).update(available_at=now)
        dead_events_reopen(routing_ids=revived, status=OutboxStatus.PENDING, now=now)
        with_event = set(
            OutboxEvent.objects.filter(OPEN_EVENT, aggregate_id__in=requeued).values_list(
                "aggregate_id", flat=True
            )
        )
        without = JobRouting.objects.filter(
            id__in=[r for r in requeued if r not in with_event]
        ).select_related("company")
        OutboxEvent.objects.bulk_create(OutboxEvent.for_routing(r) for r in without)
        transaction.on_commit(outbox_relay_kick, robust=True)
    logger.info("Routings requeued", extra={"routings": len(requeued)})
    return requeued


def routings_revive(routing_ids: list) -> list:
    """Failed routings back to pending for a fresh round of attempts, their companies' load
    counting them again. Returns the ids that were failed."""
    with transaction.atomic():
        failed = JobRouting.objects.filter(id__in=routing_ids, sync_status=SyncStatus.FAILED)
        if connection.vendor == "postgresql":
            failed = failed.select_for_update(of=("self",))
        revived = list(failed.values_list("id", "company_id"))
        if not revived:
            return []
        JobRouting.objects.filter(id__in=[r for r, _ in revived]).update(
            sync_status=SyncStatus.PENDING,
            retry_count=0,
            next_retry_at=None,
            updated_at=timezone.now(),
        )
        company_loads_change((company_id, 1) for _, company_id in revived)
    return [r for r, _ in revived]


def dead_events_reopen(*, routing_ids: list, status: str, now: datetime) -> int:
    """Reopen the latest dead ``job_sync`` event of each routing: due now when ``status`` is
    pending, or claimed at ``now`` when it is processing (a sync taking it at once)."""
    latest = (
        OutboxEvent.objects.filter(
            aggregate_id__in=routing_ids,
            event_type=OutboxEvent.JOB_SYNC,
            status=OutboxStatus.DEAD,
        )
        .values("aggregate_id")
        .annotate(latest=Max("id"))
        .values_list("latest", flat=True)
    )
    claimed = status == OutboxStatus.PROCESSING
    return OutboxEvent.objects.filter(id__in=list(latest)).update(
        status=status,
        available_at=now,
        claimed_at=now if claimed else None,
        lease_expires_at=lease_end(now) if claimed else None,
        processed_at=None,
    )

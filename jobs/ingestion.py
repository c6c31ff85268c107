"""Batch ingestion (seed 003 "Job Ingestion"): an integrator sends up to ``INGESTION_MAX_JOBS``
jobs at once, each with its own ``external_id``; workers create them through ``job_create``,
the same service as ``POST /api/v1/jobs/``.

The request stores the batch, one item per job (validated, or invalid with its errors) and one
``ingestion_chunk`` outbox event per ``INGESTION_CHUNK_SIZE`` queued items, in one transaction,
and answers 202. The outbox relay hands each chunk to a worker (``jobs.tasks.ingest_items``)
under a lease renewed while it runs, as it hands out syncs: a worker that dies leaves its chunk
to be taken again, and items already done are not done twice.

A company's ``(source, external_id)`` names one job (``Job``'s ``job_external_id_once``): an
item whose job exists, from this batch, an earlier one or one racing it, is a duplicate of that
job, never a second one. The item is marked created in the job's own transaction, so a job and
its item's record commit together. The last chunk to finish completes the batch and tells the
company's webhooks (``ingestion.completed``).
"""

import logging
from datetime import datetime
from typing import NamedTuple
from uuid import UUID

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from jobs.models import (
    IngestionBatch,
    IngestionItem,
    IngestionItemStatus,
    IngestionStatus,
)
from jobs.selectors import jobs_with_external_ids
from jobs.services import DuplicateJob, job_create
from routing.leases import Lease, lease_held
from routing.models import OutboxEvent, OutboxStatus
from routing.outbox import outbox_relay_kick
from routing.services.webhooks import Notification, webhooks_notify
from tradeengage.exceptions import BusinessRuleError, flatten_errors
from tradeengage.logging import correlation_id_as, get_correlation_id

logger = logging.getLogger("jobs")

INGESTION_CHUNK = "ingestion_chunk"
# An item's outcome when another worker finished it first (its chunk was taken again).
TAKEN = "taken"


class ItemIn(NamedTuple):
    """One job of a batch as the request validated it: its job-creation fields (``payload``,
    JSON-ready) or its field errors (``[{field, message}]``)."""

    external_id: str
    payload: dict | None
    errors: list[dict]


def ingestion_batch_create(
    *, company_id: UUID | None, submitted_by: str, source: str, items: list[ItemIn]
) -> IngestionBatch:
    """Store a batch, its items and the outbox events of its queued items, in one transaction;
    the relay is kicked when it commits. A batch with nothing queued is complete at once."""
    now = timezone.now()
    queued = [position for position, item in enumerate(items) if item.payload is not None]
    with transaction.atomic():
        batch = IngestionBatch.objects.create(
            company_id=company_id,
            submitted_by=submitted_by,
            source=source,
            jobs_received=len(items),
            jobs_queued=len(queued),
            correlation_id=get_correlation_id() or "",
        )
        IngestionItem.objects.bulk_create(
            [
                IngestionItem(
                    batch=batch,
                    position=position,
                    external_id=item.external_id,
                    payload=item.payload or {},
                    status=IngestionItemStatus.QUEUED
                    if item.payload is not None
                    else IngestionItemStatus.INVALID,
                    errors=item.errors,
                    processed_at=None if item.payload is not None else now,
                )
                for position, item in enumerate(items)
            ],
            batch_size=500,
        )
        size = settings.INGESTION_CHUNK_SIZE
        OutboxEvent.objects.bulk_create(
            [
                OutboxEvent(
                    event_type=INGESTION_CHUNK,
                    aggregate_id=batch.id,
                    event_data={
                        "batch_id": str(batch.id),
                        "positions": queued[start : start + size],
                    },
                    available_at=now,
                )
                for start in range(0, len(queued), size)
            ]
        )
        if queued:
            transaction.on_commit(outbox_relay_kick, robust=True)
        else:
            _batch_complete(batch, now=now)
    logger.info(
        "Ingestion batch received",
        extra={
            "ingestion_id": str(batch.id),
            "source": source,
            "jobs_received": batch.jobs_received,
            "jobs_queued": batch.jobs_queued,
        },
    )
    return batch


def ingestion_events_process(
    *, event_ids: list[int], claimed_at: datetime, now: datetime | None = None
) -> dict[str, int]:
    """Create the jobs of the ``ingestion_chunk`` events a relay claimed at ``claimed_at``,
    holding their lease while it runs; events no longer claimed at that instant are left alone.
    Returns the number of items per outcome."""
    now = now or timezone.now()
    counts: dict[str, int] = {}
    with lease_held(Lease(event_ids=event_ids, event_token=claimed_at)) as lease:
        lease.renew(now=now)
        events = OutboxEvent.objects.filter(
            id__in=event_ids,
            event_type=INGESTION_CHUNK,
            status=OutboxStatus.PROCESSING,
            claimed_at=claimed_at,
        ).order_by("id")
        for event in events:
            chunk_counts = ingestion_chunk_process(
                batch_id=UUID(event.event_data["batch_id"]),
                positions=event.event_data["positions"],
            )
            for outcome, number in chunk_counts.items():
                counts[outcome] = counts.get(outcome, 0) + number
            OutboxEvent.objects.filter(
                id=event.id, status=OutboxStatus.PROCESSING, claimed_at=claimed_at
            ).update(
                status=OutboxStatus.DONE,
                processed_at=timezone.now(),
                claimed_at=None,
                lease_expires_at=None,
            )
    return counts


def ingestion_chunk_process(*, batch_id: UUID, positions: list[int]) -> dict[str, int]:
    """Create the jobs of a batch's items at ``positions`` that are still queued, then complete
    the batch if no item is left queued. Safe to run again: an item done is skipped."""
    batch = IngestionBatch.objects.filter(id=batch_id).first()
    if batch is None:  # deleted meanwhile
        return {}
    counts: dict[str, int] = {}
    items = list(
        IngestionItem.objects.filter(
            batch=batch, position__in=positions, status=IngestionItemStatus.QUEUED
        ).order_by("position")
    )
    # The jobs the chunk's external ids made before, read at once rather than item by item;
    # one made meanwhile by another worker is caught by the uniqueness (DuplicateJob).
    existing = jobs_with_external_ids(
        source=batch.source,
        keys=[(item.payload["created_by_company_id"], item.external_id) for item in items],
    )
    with correlation_id_as(batch.correlation_id or get_correlation_id()):
        for item in items:
            outcome = ingestion_item_process(item=item, source=batch.source, existing=existing)
            counts[outcome] = counts.get(outcome, 0) + 1
    ingestion_batch_finish(batch_id=batch.id)
    return counts


def ingestion_item_process(*, item: IngestionItem, source: str, existing: dict) -> str:
    """Create one item's job, or find that it is a duplicate or invalid; the item's new status,
    or ``TAKEN`` when another worker finished it first. ``existing`` maps ``(company id,
    external id)`` to the job made for it, as far as known; a job created here joins it."""
    payload = item.payload
    company_id = UUID(payload["created_by_company_id"])
    key = (payload["created_by_company_id"], item.external_id)
    if key in existing:
        return _item_close(item, IngestionItemStatus.DUPLICATE, job_id=existing[key])

    def record(job):
        # In the job's transaction: the job and its item's record commit together, and a
        # job whose item another worker finished meanwhile is undone.
        if _item_close(item, IngestionItemStatus.CREATED, job_id=job.id) == TAKEN:
            raise ItemTaken
        existing[key] = job.id

    try:
        job_create(
            summary=payload["summary"],
            address=payload["address"],
            homeowner=payload["homeowner"],
            created_by_company_id=company_id,
            created_by_technician_id=UUID(payload["created_by_technician_id"]),
            skill_levels=payload["skill_levels"],
            category=payload.get("category"),
            source=source,
            external_id=item.external_id,
            on_created=record,
        )
    except ItemTaken:
        return TAKEN
    except DuplicateJob as exc:
        return _item_close(item, IngestionItemStatus.DUPLICATE, job_id=exc.job_id)
    except BusinessRuleError as exc:
        errors = [{"field": exc.field, "message": exc.message}]
        return _item_close(item, IngestionItemStatus.INVALID, errors=errors)
    except DjangoValidationError as exc:
        detail = exc.message_dict if hasattr(exc, "error_dict") else exc.messages
        errors = [{"field": e["field"], "message": e["message"]} for e in flatten_errors(detail)]
        return _item_close(item, IngestionItemStatus.INVALID, errors=errors)
    return IngestionItemStatus.CREATED


class ItemTaken(Exception):
    """The item was finished by another worker while this one created its job."""


def _item_close(item: IngestionItem, status: str, *, job_id=None, errors=None) -> str:
    """Record the item's outcome unless another worker did; the status, or ``TAKEN``."""
    changed = IngestionItem.objects.filter(id=item.id, status=IngestionItemStatus.QUEUED).update(
        status=status, job_id=job_id, errors=errors or [], processed_at=timezone.now()
    )
    return status if changed else TAKEN


def ingestion_batch_finish(*, batch_id: UUID) -> bool:
    """Complete the batch if it is processing and no item is left queued; whether this call
    completed it. The batch row is locked, so of two chunks finishing at once one completes it."""
    with transaction.atomic():
        batches = IngestionBatch.objects.filter(id=batch_id, status=IngestionStatus.PROCESSING)
        if connection.vendor == "postgresql":
            batches = batches.select_for_update()
        batch = batches.first()
        if batch is None or batch.items.filter(status=IngestionItemStatus.QUEUED).exists():
            return False
        _batch_complete(batch, now=timezone.now())
    return True


def _batch_complete(batch: IngestionBatch, *, now: datetime) -> None:
    counts = ingestion_item_counts(batch_id=batch.id)
    batch.status = (
        IngestionStatus.COMPLETED_WITH_ERRORS
        if counts[IngestionItemStatus.INVALID]
        else IngestionStatus.COMPLETED
    )
    batch.completed_at = now
    batch.save(update_fields=["status", "completed_at"])
    logger.info(
        "Ingestion batch completed",
        extra={
            "ingestion_id": str(batch.id),
            "status": batch.status,
            **{f"items_{status}": number for status, number in counts.items()},
        },
    )
    if batch.company_id is not None:
        webhooks_notify(
            [
                Notification(
                    event="ingestion.completed",
                    company_id=batch.company_id,
                    data={
                        "ingestion_id": str(batch.id),
                        "source": batch.source,
                        "status": batch.status,
                        "jobs_received": batch.jobs_received,
                        "jobs_queued": batch.jobs_queued,
                        "counts": counts,
                    },
                )
            ]
        )


def ingestion_item_counts(*, batch_id: UUID) -> dict[str, int]:
    """The number of a batch's items in each status (every status named, 0 where none)."""
    counts = dict.fromkeys(IngestionItemStatus.values, 0)
    for status, number in (
        IngestionItem.objects.filter(batch_id=batch_id)
        .order_by()
        .values_list("status")
        .annotate(number=Count("id"))
    ):
        counts[status] = number
    return counts

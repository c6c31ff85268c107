"""History retention: what the pipeline leaves behind once its work is done, deleted when older
than its setting, so the tables the hot paths write stay the size of their recent work.

Dead letters are kept whatever their age (dead outbox events, failed webhook deliveries): they
wait for someone to act on them. A failed routing keeps its status and last error; its attempts
go with everyone's after ``SYNC_ATTEMPT_RETENTION_DAYS``.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Model, QuerySet
from django.utils import timezone

from integrations.models import WebhookReceipt
from jobs.models import IngestionBatch, IngestionStatus
from routing.models import (
    OutboxEvent,
    OutboxStatus,
    SyncAttempt,
    WebhookDelivery,
    WebhookDeliveryStatus,
)


def history_purge(*, now: datetime | None = None) -> dict[str, int]:
    """Delete, in batches of ``HISTORY_PURGE_BATCH_SIZE``: outbox events done, webhook
    deliveries delivered (with their attempts), finished ingestion batches (with their items)
    and inbound webhook receipts older than ``HISTORY_RETENTION_DAYS``, and sync attempts
    older than ``SYNC_ATTEMPT_RETENTION_DAYS``. Returns the rows deleted per kind."""
    now = now or timezone.now()
    before = now - timedelta(days=settings.HISTORY_RETENTION_DAYS)
    attempts_before = now - timedelta(days=settings.SYNC_ATTEMPT_RETENTION_DAYS)
    return {
        "outbox_events": _purge(
            OutboxEvent.objects.filter(status=OutboxStatus.DONE, processed_at__lt=before)
        ),
        "sync_attempts": _purge(SyncAttempt.objects.filter(started_at__lt=attempts_before)),
        "webhook_deliveries": _purge(
            WebhookDelivery.objects.filter(
                status=WebhookDeliveryStatus.DELIVERED, delivered_at__lt=before
            )
        ),
        "ingestion_batches": _purge(
            IngestionBatch.objects.exclude(status=IngestionStatus.PROCESSING).filter(
                completed_at__lt=before
            )
        ),
        "webhook_receipts": _purge(WebhookReceipt.objects.filter(received_at__lt=before)),
    }


def _purge(rows: QuerySet[Model]) -> int:
    """Delete ``rows`` a batch at a time, each in a short transaction of its own, so a large
    first purge neither holds locks long nor builds one huge statement. Returns how many rows
    of the queryset's model went (not counting the cascaded children)."""
    model, size, deleted = rows.model, settings.HISTORY_PURGE_BATCH_SIZE, 0
    while True:
        batch = list(rows.order_by().values_list("pk", flat=True)[:size])
        if not batch:
            return deleted
        deleted += model.objects.filter(pk__in=batch).delete()[1].get(model._meta.label, 0)
        if len(batch) < size:
            return deleted

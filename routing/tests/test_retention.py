"""History retention (``routing.services.retention``): finished work older than its setting is
deleted in batches; recent work and dead letters stay."""

from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from integrations.models import WebhookReceipt
from integrations.tests.factories import WebhookReceiptFactory
from jobs.models import IngestionBatch, IngestionItem, IngestionStatus
from jobs.tests.factories import CompanyFactory
from routing.models import (
    OutboxEvent,
    OutboxStatus,
    SyncAttempt,
    WebhookAttempt,
    WebhookDelivery,
    WebhookDeliveryStatus,
)
from routing.services.retention import history_purge
from routing.tasks import purge_history
from routing.tests.factories import JobRoutingFactory, OutboxEventFactory, WebhookDeliveryFactory

pytestmark = pytest.mark.django_db

NOW = timezone.now()
OLD = NOW - timedelta(days=31)  # past HISTORY_RETENTION_DAYS (30)
RECENT = NOW - timedelta(days=29)


def event(status: str, processed_at) -> OutboxEvent:
    return OutboxEventFactory(status=status, processed_at=processed_at)


def attempt(started_at) -> SyncAttempt:
    return SyncAttempt.objects.create(
        routing=JobRoutingFactory(),
        number=1,
        outcome=SyncAttempt.Outcome.RETRY,
        started_at=started_at,
        duration_ms=5,
    )


def delivery(status: str, at) -> WebhookDelivery:
    made = WebhookDeliveryFactory(
        status=status,
        created_at=at,
        delivered_at=at if status == WebhookDeliveryStatus.DELIVERED else None,
    )
    WebhookAttempt.objects.create(delivery=made, number=1, attempted_at=at, duration_ms=3)
    return made


def batch(status: str, completed_at) -> IngestionBatch:
    made = IngestionBatch.objects.create(
        company=CompanyFactory(),
        submitted_by="te_test",
        source="crm",
        status=status,
        jobs_received=1,
        jobs_queued=1,
        completed_at=completed_at,
    )
    IngestionItem.objects.create(batch=made, position=0, external_id="lead-1", payload={})
    return made


def receipt(received_at) -> WebhookReceipt:
    made = WebhookReceiptFactory()
    WebhookReceipt.objects.filter(id=made.id).update(received_at=received_at)
    return made


def test_finished_work_older_than_its_retention_goes_and_the_rest_stays():
    kept = [
        event(OutboxStatus.DONE, RECENT),
        event(OutboxStatus.DEAD, OLD),  # the dead-letter queue
        event(OutboxStatus.PENDING, None),
        attempt(NOW - timedelta(days=89)),  # SYNC_ATTEMPT_RETENTION_DAYS is 90
        delivery(WebhookDeliveryStatus.DELIVERED, RECENT),
        delivery(WebhookDeliveryStatus.FAILED, OLD),  # the webhooks' dead letters
        delivery(WebhookDeliveryStatus.PENDING, OLD),
        batch(IngestionStatus.COMPLETED, RECENT),
        batch(IngestionStatus.PROCESSING, None),
        receipt(RECENT),
    ]
    gone = [
        event(OutboxStatus.DONE, OLD),
        attempt(NOW - timedelta(days=91)),
        delivery(WebhookDeliveryStatus.DELIVERED, OLD),
        batch(IngestionStatus.COMPLETED, OLD),
        batch(IngestionStatus.COMPLETED_WITH_ERRORS, OLD),
        receipt(OLD),
    ]

    deleted = history_purge(now=NOW)

    assert deleted == {
        "outbox_events": 1,
        "sync_attempts": 1,
        "webhook_deliveries": 1,
        "ingestion_batches": 2,
        "webhook_receipts": 1,
    }
    assert all(type(row).objects.filter(pk=row.pk).exists() for row in kept)
    assert not any(type(row).objects.filter(pk=row.pk).exists() for row in gone)
    assert WebhookAttempt.objects.count() == 3  # the gone delivery's attempt went with it
    assert IngestionItem.objects.count() == 2  # and the gone batches' items


def test_the_purge_deletes_in_batches_until_nothing_old_is_left(settings):
    settings.HISTORY_PURGE_BATCH_SIZE = 2
    for _ in range(5):
        event(OutboxStatus.DONE, OLD)

    assert history_purge(now=NOW)["outbox_events"] == 5
    assert not OutboxEvent.objects.exists()
    assert history_purge(now=NOW)["outbox_events"] == 0


def test_the_retention_is_a_setting(settings):
    old_for_a_week = event(OutboxStatus.DONE, NOW - timedelta(days=8))
    settings.HISTORY_RETENTION_DAYS = 7

    assert history_purge(now=NOW)["outbox_events"] == 1
    assert not OutboxEvent.objects.filter(pk=old_for_a_week.pk).exists()


def test_beat_runs_the_purge_task_nightly_on_the_low_queue():
    event(OutboxStatus.DONE, timezone.now() - timedelta(days=31))
    entry = django_settings.CELERY_BEAT_SCHEDULE["purge-history"]

    assert entry["task"] == purge_history.name == "routing.tasks.purge_history"
    assert django_settings.CELERY_TASK_ROUTES[purge_history.name] == {"queue": "low"}
    assert purge_history()["outbox_events"] == 1

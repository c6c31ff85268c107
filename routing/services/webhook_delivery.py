"""Sending outbound webhook deliveries (README "Outbound webhooks") from claimed outbox events,
with the sync's claim, lease, retry and dead-letter machinery.

A batch is held under one lease (``routing.leases``) while its deliveries are sent, side by
side in ``WEBHOOK_SEND_CONCURRENCY`` threads, outside any transaction; then every outcome is
recorded in one transaction, for the events the batch still holds. A 2xx within
``WEBHOOK_TIMEOUT_SECONDS`` delivers; anything else is retried on ``WEBHOOK_DELIVERY_RETRY``'s
schedule and, after its last retry, is a dead letter (redeliverable from the admin). A 410
disables its endpoint at once; an endpoint whose every attempt has failed for
``WEBHOOK_DISABLE_AFTER_FAILING_DAYS`` is disabled and its company told by email. Disabling
ends the endpoint's pending deliveries.
"""

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from integrations.webhooks import SendResult, webhook_send
from routing.leases import Lease, lease_held
from routing.models import (
    OutboxEvent,
    OutboxStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from routing.retry import WEBHOOK_DELIVERY_RETRY
from routing.services.webhooks import endpoint_deliveries_end, webhook_endpoint_disabled_tell

logger = logging.getLogger("routing")

DELIVERY_FIELDS = [
    "status",
    "attempt_count",
    "retry_count",
    "next_attempt_at",
    "last_attempt_at",
    "last_response_status",
    "last_error",
    "delivered_at",
]
EVENT_FIELDS = [
    "status",
    "available_at",
    "claimed_at",
    "lease_expires_at",
    "processed_at",
    "last_error",
]

_executor: ThreadPoolExecutor | None = None


def webhook_deliveries_send(
    *, event_ids: list[int], claimed_at: datetime, now: datetime | None = None
) -> dict[str, int]:
    """Send the deliveries of the ``webhook_delivery`` events a relay claimed at
    ``claimed_at``; events no longer claimed at that instant are left alone. Returns the
    number of deliveries per outcome: delivered, retry, failed, skipped."""
    now = now or timezone.now()
    with lease_held(Lease(event_ids=event_ids, event_token=claimed_at)) as lease:
        lease.renew(now=now)
        return _deliveries_send(lease, now=now)


def _deliveries_send(lease: Lease, *, now: datetime) -> dict[str, int]:
    events = {
        event.aggregate_id: event
        for event in OutboxEvent.objects.filter(
            id__in=lease.event_ids,
            status=OutboxStatus.PROCESSING,
            claimed_at=lease.event_token,
            event_type=OutboxEvent.WEBHOOK_DELIVERY,
        )
    }
    deliveries = list(
        WebhookDelivery.objects.filter(id__in=list(events)).select_related("endpoint__company")
    )
    sendable = [d for d in deliveries if d.is_pending and d.endpoint.enabled]
    ended = [d for d in deliveries if d.is_pending and not d.endpoint.enabled]
    # Events whose delivery finished meanwhile (or was deleted with its endpoint).
    pending = {d.id for d in deliveries if d.is_pending}
    finished = [event for delivery_id, event in events.items() if delivery_id not in pending]
    results = _send_all(sendable, now=now)
    return _results_record(
        results,
        events,
        finished=finished,
        ended=ended,
        claimed_at=lease.event_token,
        now=timezone.now(),
    )


def _send_all(deliveries: list[WebhookDelivery], *, now: datetime) -> list[tuple]:
    global _executor
    if len(deliveries) <= 1 or settings.WEBHOOK_SEND_CONCURRENCY <= 1:
        return [(d, _send(d, now=now)) for d in deliveries]
    if _executor is None or _executor._max_workers != settings.WEBHOOK_SEND_CONCURRENCY:
        _executor = ThreadPoolExecutor(
            max_workers=settings.WEBHOOK_SEND_CONCURRENCY, thread_name_prefix="webhook-send"
        )
    # The secrets are read here, not on the pool's threads, which touch no database.
    calls = [(d, d.endpoint.signing_secrets(now=now)) for d in deliveries]
    results = _executor.map(lambda call: _send(call[0], now=now, secrets=call[1]), calls)
    return list(zip(deliveries, results, strict=True))


def _send(delivery: WebhookDelivery, *, now: datetime, secrets: list[str] | None = None):
    started_at = timezone.now()
    result = webhook_send(
        url=delivery.endpoint.url,
        message_id=str(delivery.id),
        body=delivery.body.encode(),
        secrets=secrets or delivery.endpoint.signing_secrets(now=now),
        timeout=settings.WEBHOOK_TIMEOUT_SECONDS,
        allow_http=settings.WEBHOOK_ALLOW_HTTP,
        allow_private=settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES,
        lookup_timeout=settings.WEBHOOK_DNS_TIMEOUT_SECONDS,
        timestamp=int(started_at.timestamp()),
    )
    return started_at, result


def _results_record(
    results, events: dict, *, finished, ended, claimed_at: datetime, now: datetime
) -> dict[str, int]:
    counts = {"delivered": 0, "retry": 0, "failed": 0, "skipped": len(finished) + len(ended)}
    attempts, stored, closed = [], [], []
    succeeded, failed, gone = set(), {}, {}
    for delivery, (started_at, result) in results:
        endpoint = delivery.endpoint
        delivery.attempt_count += 1
        delivery.last_attempt_at = started_at
        attempts.append(_attempt(delivery, result, started_at=started_at))
        event = events[delivery.id]
        if result.succeeded:
            delivery.mark_delivered(status=result.status, now=now)
            event.close(OutboxStatus.DONE, now=now)
            succeeded.add(endpoint.id)
            outcome = "delivered"
        elif result.status == 410:
            delivery.mark_failed(status=410, error="410 Gone: the endpoint was disabled.")
            event.close(OutboxStatus.DEAD, now=now, error=delivery.last_error)
            gone[endpoint.id] = endpoint
            outcome = "failed"
        else:
            failed[endpoint.id] = endpoint
            delay = WEBHOOK_DELIVERY_RETRY.delay(retries_so_far=delivery.retry_count)
            if delay is None:
                delivery.mark_failed(status=result.status, error=result.error)
                event.close(OutboxStatus.DEAD, now=now, error=result.error)
                outcome = "failed"
            else:
                delivery.mark_retry(
                    status=result.status, error=result.error, seconds=delay, now=now
                )
                event.wait_until(delivery.next_attempt_at, error=result.error)
                outcome = "retry"
        counts[outcome] += 1
        stored.append(delivery)
        closed.append(event)
        _log(delivery, result, outcome)
    for event in finished:
        event.close(OutboxStatus.DONE, now=now)
        closed.append(event)
    for delivery in ended:
        delivery.mark_failed(status=None, error="Endpoint disabled.")
        stored.append(delivery)
        event = events[delivery.id]
        event.close(OutboxStatus.DONE, now=now, error="Endpoint disabled.")
        closed.append(event)
    with transaction.atomic():
        # Only the events this batch still holds: one taken again after its lease ran out
        # belongs to another task now.
        still_ours = OutboxEvent.objects.filter(
            id__in=[e.id for e in closed], status=OutboxStatus.PROCESSING, claimed_at=claimed_at
        )
        if connection.vendor == "postgresql":
            # A relay's claim skips them while they are recorded.
            still_ours = still_ours.select_for_update()
        held = set(still_ours.values_list("id", flat=True))
        closed = [e for e in closed if e.id in held]
        ours = {e.aggregate_id for e in closed}
        stored = [d for d in stored if d.id in ours]
        WebhookAttempt.objects.bulk_create(a for a in attempts if a.delivery_id in ours)
        if stored:
            WebhookDelivery.objects.bulk_update(stored, DELIVERY_FIELDS)
        if closed:
            OutboxEvent.objects.bulk_update(closed, EVENT_FIELDS)
        disabled = _endpoints_health(succeeded, failed, gone, now=now)
    for endpoint in disabled:
        _tell(endpoint)
    return counts


def _attempt(delivery: WebhookDelivery, result: SendResult, *, started_at) -> WebhookAttempt:
    return WebhookAttempt(
        delivery=delivery,
        number=delivery.attempt_count,
        attempted_at=started_at,
        response_status=result.status,
        duration_ms=result.duration_ms,
        response_start=result.response_start,
        error=result.error,
        succeeded=result.succeeded,
    )


def _endpoints_health(succeeded: set, failed: dict, gone: dict, *, now: datetime) -> list:
    """Any success clears an endpoint's failures; an endpoint whose attempts all failed starts
    failing now, unless it already was, and is disabled once it has failed for the window. A
    410 disables its endpoint at once. Returns the endpoints disabled for failing too long."""
    if succeeded:
        WebhookEndpoint.objects.filter(id__in=succeeded, failing_since__isnull=False).update(
            failing_since=None
        )
    failing = {i: e for i, e in failed.items() if i not in succeeded and i not in gone}
    starting = [e for e in failing.values() if e.failing_since is None]
    if starting:
        WebhookEndpoint.objects.filter(
            id__in=[e.id for e in starting], failing_since__isnull=True
        ).update(failing_since=now)
        for endpoint in starting:
            endpoint.failing_since = now
    window = timedelta(days=settings.WEBHOOK_DISABLE_AFTER_FAILING_DAYS)
    too_long = [e for e in failing.values() if e.failing_for_too_long(now=now, window=window)]
    for endpoint in gone.values():
        _disable(endpoint, "The receiver answered 410 Gone.", now=now)
    days = f"{settings.WEBHOOK_DISABLE_AFTER_FAILING_DAYS:g}"
    return [
        endpoint
        for endpoint in too_long
        if _disable(endpoint, f"Every delivery failed for {days} days.", now=now)
    ]


def _disable(endpoint: WebhookEndpoint, reason: str, *, now: datetime) -> bool:
    if not WebhookEndpoint.objects.filter(id=endpoint.id, enabled=True).update(
        enabled=False, disabled_at=now, disabled_reason=reason, updated_at=now
    ):
        return False
    endpoint.enabled, endpoint.disabled_at, endpoint.disabled_reason = False, now, reason
    endpoint_deliveries_end(endpoint_ids=[endpoint.id], reason=f"Endpoint disabled: {reason}")
    logger.warning(
        "Webhook endpoint disabled",
        extra={
            "endpoint_id": str(endpoint.id),
            "company_id": str(endpoint.company_id),
            "reason": reason,
        },
    )
    return True


def _tell(endpoint: WebhookEndpoint) -> None:
    try:
        webhook_endpoint_disabled_tell(endpoint=endpoint)
    except Exception:
        logger.exception(
            "Could not email that a webhook endpoint was disabled",
            extra={"endpoint_id": str(endpoint.id)},
        )


def _log(delivery: WebhookDelivery, result: SendResult, outcome: str) -> None:
    logger.log(
        logging.INFO if outcome == "delivered" else logging.WARNING,
        "Webhook attempt",
        extra={
            "delivery_id": str(delivery.id),
            "endpoint_id": str(delivery.endpoint_id),
            "event": delivery.event,
            "attempt": delivery.attempt_count,
            "outcome": outcome,
            "response_status": result.status,
            "duration_ms": result.duration_ms,
            "error": result.error or None,
        },
    )

"""The CRM simulator's webhooks: which registrations an event goes to, and sending one delivery
signed as seed 002 describes ("Webhooks"): ``POST`` of ``{"event", "timestamp", "data"}`` with
``X-Webhook-Signature: sha256=<hex HMAC-SHA256 of the raw body under the registration's
secret>`` and ``X-Webhook-Id``, the delivery's id, the same on every attempt.

The seed's example payload carries a ``"signature"`` property inside the body; a signature
cannot sign the body that contains it, so the simulator sends it only in the header."""

import hashlib
import hmac
import json
from datetime import UTC, datetime

import requests
from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from integrations.models import CrmSimWebhook, CrmSimWebhookDelivery

# Seed 002, "Webhook Events".
WEBHOOK_EVENTS = (
    "work_order.created",
    "work_order.scheduled",
    "work_order.started",
    "work_order.completed",
    "invoice.created",
    "invoice.sent",
    "invoice.paid",
    "customer.created",
    "payment.received",
)
# By name: integrations.tasks imports this module (the task calls ``delivery_attempt``).
DELIVER_TASK = "integrations.tasks.crm_simulator_deliver_webhook"
ERROR_CHARS = 1000


def utc_timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``, as the seed's payloads show it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def deliveries_record(
    *, client_id: str, event: str, data: dict, now: datetime
) -> list[CrmSimWebhookDelivery]:
    """Record a delivery of ``event`` for each of the account's registrations that asked for
    it, and send each once the caller's transaction commits."""
    body = json.dumps({"event": event, "timestamp": utc_timestamp(now), "data": data})
    deliveries = [
        CrmSimWebhookDelivery.objects.create(webhook=webhook, event=event, body=body)
        for webhook in CrmSimWebhook.objects.filter(client_id=client_id)
        if event in webhook.events
    ]
    for delivery in deliveries:
        transaction.on_commit(
            lambda delivery_id=delivery.pk: current_app.tasks[DELIVER_TASK].delay(delivery_id)
        )
    return deliveries


def delivery_attempt(*, delivery_id: int) -> float | None:
    """Send a pending delivery once. Returns the seconds to wait before the next attempt when
    this one failed (a connection error, a timeout or an answer other than 2xx) and
    ``CRM_SIMULATOR_WEBHOOK_RETRY_SECONDS`` allows another; ``None`` when it was delivered, was
    given up, or there was nothing to send (no such delivery, or not pending). The attempt is
    claimed by a conditional update, so a delivery enqueued twice is sent once per attempt."""
    delivery = (
        CrmSimWebhookDelivery.objects.select_related("webhook").filter(pk=delivery_id).first()
    )
    if delivery is None or delivery.status != CrmSimWebhookDelivery.Status.PENDING:
        return None
    claimed = CrmSimWebhookDelivery.objects.filter(
        pk=delivery.pk, status=CrmSimWebhookDelivery.Status.PENDING, attempts=delivery.attempts
    ).update(attempts=F("attempts") + 1, last_attempt_at=timezone.now())
    if not claimed:
        return None
    attempt = delivery.attempts + 1
    body = delivery.body.encode()
    status_code, error = None, ""
    try:
        with requests.Session() as session:
            response = session.post(
                delivery.webhook.url,
                data=body,
                headers={
                    "Content-Type": "application/json",
                    "X-Webhook-Id": str(delivery.delivery_id),
                    "X-Webhook-Signature": signature(delivery.webhook.secret, body),
                },
                timeout=settings.CRM_SIMULATOR_WEBHOOK_TIMEOUT_SECONDS,
                allow_redirects=False,
            )
        status_code = response.status_code
        if not 200 <= status_code < 300:
            error = f"HTTP {status_code}: {response.text[:ERROR_CHARS]}"
    except requests.RequestException as exc:
        error = f"{type(exc).__name__}: {exc}"[:ERROR_CHARS]
    now = timezone.now()
    if not error:
        CrmSimWebhookDelivery.objects.filter(pk=delivery.pk).update(
            status=CrmSimWebhookDelivery.Status.DELIVERED,
            last_status_code=status_code,
            last_error="",
            delivered_at=now,
        )
        return None
    waits = settings.CRM_SIMULATOR_WEBHOOK_RETRY_SECONDS
    gave_up = attempt > len(waits)
    CrmSimWebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=CrmSimWebhookDelivery.Status.FAILED if gave_up else F("status"),
        last_status_code=status_code,
        last_error=error,
    )
    return None if gave_up else waits[attempt - 1]

"""Inbound ServiceTitan webhooks, verified and parsed: the signature is Standard Webhooks'
(HMAC-SHA256 over ``id.timestamp.body``, a 5-minute timestamp tolerance, constant-time
comparison), and the payload becomes a provider-neutral ``StatusUpdate``. Recording the event and
applying it to our routing is the domain's part (``routing.services.backsync``)."""

import json
import uuid

from django.utils import timezone
from rest_framework.exceptions import ValidationError
from standardwebhooks.webhooks import Webhook

from integrations.providers import ProviderJobStatus, ProviderType, StatusUpdate, WebhookRejected
from integrations.servicetitan import serializers as st

JOB_STATUSES = {
    "completed": ProviderJobStatus.COMPLETED,
    "cancelled": ProviderJobStatus.CANCELLED,
}


def webhook_verify(*, body: bytes, headers, secret: str) -> dict:
    try:
        return Webhook(secret).verify(body, dict(headers))
    except Exception as exc:
        # Missing or malformed headers, an old timestamp, a wrong signature, a bad secret or a
        # body that is not JSON: all the same to the sender, and nothing is read.
        raise WebhookRejected(f"Invalid webhook signature: {exc}") from None


def servicetitan_webhook_parse(*, body: bytes, headers, secret: str) -> StatusUpdate:
    """The status update a signed ServiceTitan webhook carries. The job is named by the
    booking's externalId (our routing id, as we sent it), its bookingId, or its jobNumber."""
    payload = webhook_verify(body=body, headers=headers, secret=secret)
    envelope = st.WebhookSerializer(data=payload if isinstance(payload, dict) else {})
    envelope.is_valid(raise_exception=True)
    update = st.WebhookDataSerializer(data=envelope.validated_data["data"])
    if not update.is_valid():
        raise ValidationError({"data": update.errors})
    data = update.validated_data
    return StatusUpdate(
        provider_type=ProviderType.SERVICETITAN,
        event_id=envelope.validated_data["eventId"],
        status=JOB_STATUSES.get(data["status"], ProviderJobStatus.OPEN),
        routing_ids=tuple(str(data[key]) for key in ("externalId", "bookingId") if data.get(key)),
        external_ids=tuple(str(data[key]) for key in ("jobNumber", "bookingId") if data.get(key)),
        completed_at=data.get("completedOn"),
        revenue=data.get("invoiceTotal"),
    )


def payload_signed(*, secret: str, payload: dict, event_id: str | None = None) -> tuple:
    """A body and its Standard Webhooks headers (for tests, the demo and senders we control)."""
    body = json.dumps(payload)
    message_id = event_id or f"msg_{uuid.uuid4().hex}"
    now = timezone.now()
    signature = Webhook(secret).sign(message_id, now, body)
    headers = {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }
    return body, headers

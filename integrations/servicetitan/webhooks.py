"""Inbound ServiceTitan webhooks, verified and parsed into a provider-neutral ``StatusUpdate``.
Recording the event and applying it to our routing is the domain's part
(``routing.services.backsync``).

Two signed forms are accepted, told apart by their headers and never by trying one after the
other:

- ServiceTitan's v2 webhooks (its v1 webhooks are retired on 2026-03-31: developer-next.
  servicetitan.io/docs/faqs-v2-webhooks): an HMAC of the payload with the app's HMAC key, sent
  in a request header (developer-next.servicetitan.io/docs/webhooks). The key is the account's
  ``webhook_secret``.
- Standard Webhooks (HMAC-SHA256 over ``id.timestamp.body``, a 5-minute tolerance), the form our
  simulator and the senders we control sign with.

A request with neither, or with both, is refused: nothing unsigned is ever read.
"""

import base64
import binascii
import hashlib
import hmac
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

# ServiceTitan's page says only "the signature sent in the request header". This name is the
# one public integrations read (see the README's ServiceTitan webhooks section); it is not
# pinned by ServiceTitan's own documentation.
SERVICETITAN_SIGNATURE_HEADER = "x-servicetitan-signature"
STANDARD_WEBHOOK_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
DIGEST_SIZE = hashlib.sha256().digest_size

# jpm v2 Job ``jobStatus`` and crm v2 Booking ``status`` values, and the last word of an event
# type, as ProviderJobStatus; anything else is open work. ServiceTitan spells "Canceled".
SERVICETITAN_JOB_STATUSES = {
    "completed": ProviderJobStatus.COMPLETED,
    "canceled": ProviderJobStatus.CANCELLED,
    "cancelled": ProviderJobStatus.CANCELLED,
}
SERVICETITAN_BOOKING_STATUSES = {
    "dismissed": ProviderJobStatus.CANCELLED,
}


def servicetitan_webhook_parse(*, body: bytes, headers, secret: str) -> StatusUpdate:
    """The status update a signed ServiceTitan webhook carries, in whichever of the two forms
    it is signed. ``WebhookRejected`` when it cannot be trusted (no signature, a malformed or
    wrong one, both forms at once); a DRF ``ValidationError`` when it is trusted but malformed."""
    if isinstance(body, str):
        body = body.encode()
    present = {name.lower(): value for name, value in dict(headers).items()}
    standard = any(name in present for name in STANDARD_WEBHOOK_HEADERS)
    servicetitan = SERVICETITAN_SIGNATURE_HEADER in present
    if standard and servicetitan:
        raise WebhookRejected("Invalid webhook signature: signed in two schemes at once.")
    if servicetitan:
        servicetitan_signature_verify(
            body=body, signature=present[SERVICETITAN_SIGNATURE_HEADER], secret=secret
        )
        return servicetitan_event_parse(body=body)
    if standard:
        return standard_event_parse(webhook_verify(body=body, headers=present, secret=secret))
    raise WebhookRejected("Invalid webhook signature: the request is not signed.")


def servicetitan_signature_verify(*, body: bytes, signature: str, secret: str) -> None:
    """Raise ``WebhookRejected`` unless ``signature`` is the HMAC-SHA256 of the raw body, as
    received, keyed with the HMAC key's UTF-8 bytes (the key is 32 to 64 characters, typed or
    generated in the developer portal: developer-next.servicetitan.io/docs/webhooks).

    ServiceTitan does not publish the digest's encoding: hex and base64 are both taken, with an
    optional ``sha256=`` prefix. Either must decode to exactly one SHA-256 digest, so taking
    both admits no forgery that one alone would refuse."""
    provided = _digest(signature)
    expected = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    if not hmac.compare_digest(provided, expected):
        raise WebhookRejected("Invalid webhook signature: it does not match the body.")


def _digest(signature: str) -> bytes:
    text = signature.strip()
    if text[:7].lower() == "sha256=":
        text = text[7:]
    try:
        if len(text) == 2 * DIGEST_SIZE:
            digest = bytes.fromhex(text)
        else:
            digest = base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        digest = b""
    if len(digest) != DIGEST_SIZE:
        raise WebhookRejected("Invalid webhook signature: malformed signature header.")
    return digest


def servicetitan_event_parse(*, body: bytes) -> StatusUpdate:
    """A verified v2 event as a status update: a job's (jpm v2 Job) or a booking's (crm v2
    Booking), told by the event type's first word ("job.completed", "booking.dismissed"), else
    by the fields present.

    ServiceTitan's public pages name no event id. Without an ``eventId`` the id is the body's
    SHA-256, so a retry (it resends at 10, 30, 60 and 300 seconds: developer-next.servicetitan.io
    /docs/faqs-v2-webhooks) or a replay of the same body is recorded once."""
    try:
        payload = json.loads(body)
    except ValueError:
        raise ValidationError({"body": "The webhook body is not JSON."}) from None
    if not isinstance(payload, dict):
        raise ValidationError({"body": "The webhook body is not a JSON object."})
    envelope = st.ServiceTitanEventSerializer(data=payload)
    envelope.is_valid(raise_exception=True)
    event = envelope.validated_data
    entity = st.ServiceTitanEntitySerializer(data=event.get("data", payload))
    if not entity.is_valid():
        raise ValidationError({"data": entity.errors})
    data = entity.validated_data

    event_id = event.get("eventId") or f"sha256:{hashlib.sha256(body).hexdigest()}"
    kind, _, action = event.get("eventType", "").lower().partition(".")
    if kind and kind not in ("job", "booking"):
        # A customer's, an invoice's...: acknowledged, and it names none of our routings.
        return StatusUpdate(
            provider_type=ProviderType.SERVICETITAN,
            event_id=event_id,
            status=ProviderJobStatus.OPEN,
        )
    if not kind:
        kind = "job" if data.get("jobStatus") or data.get("jobNumber") else "booking"
    entity_id = str(data["id"]) if data.get("id") is not None else ""
    if kind == "job":
        status = SERVICETITAN_JOB_STATUSES.get(str(data.get("jobStatus") or action).lower())
        booking_id = str(data["bookingId"]) if data.get("bookingId") is not None else ""
        job_id = entity_id
    else:
        status = SERVICETITAN_BOOKING_STATUSES.get(str(data.get("status") or action).lower())
        booking_id = entity_id
        job_id = str(data["jobId"]) if data.get("jobId") is not None else ""
    status = status or ProviderJobStatus.OPEN
    job_number = data.get("jobNumber") or ""
    routing_id = data.get("externalId") or ""
    if not (routing_id or booking_id or job_number):
        raise ValidationError(
            {"data": "One of externalId, the booking's id or jobNumber must name the job."}
        )
    reason = next(
        (data[key] for key in ("cancelReason", "dismissingReason", "memo") if data.get(key)), ""
    )
    return StatusUpdate(
        provider_type=ProviderType.SERVICETITAN,
        event_id=event_id,
        status=status,
        routing_ids=(routing_id,) if routing_id else (),
        external_ids=tuple(value for value in (booking_id, job_number) if value),
        completed_at=data.get("completedOn") if status == ProviderJobStatus.COMPLETED else None,
        revenue=data.get("total"),
        reason=reason if status == ProviderJobStatus.CANCELLED else "",
        provider_job_id=job_id,
        provider_job_number=job_number,
    )


def webhook_verify(*, body: bytes, headers, secret: str) -> dict:
    try:
        return Webhook(secret).verify(body, dict(headers))
    except Exception as exc:
        # Missing or malformed headers, an old timestamp, a wrong signature, a bad secret or a
        # body that is not JSON: all the same to the sender, and nothing is read.
        raise WebhookRejected(f"Invalid webhook signature: {exc}") from None


def standard_event_parse(payload) -> StatusUpdate:
    """A verified Standard Webhooks event. The job is named by the booking's externalId (our
    routing id, as we sent it), its bookingId, or its jobNumber."""
    envelope = st.WebhookSerializer(data=payload if isinstance(payload, dict) else {})
    envelope.is_valid(raise_exception=True)
    update = st.WebhookDataSerializer(data=envelope.validated_data["data"])
    if not update.is_valid():
        raise ValidationError({"data": update.errors})
    data = update.validated_data
    status = JOB_STATUSES.get(data["status"], ProviderJobStatus.OPEN)
    return StatusUpdate(
        provider_type=ProviderType.SERVICETITAN,
        event_id=envelope.validated_data["eventId"],
        status=status,
        routing_ids=tuple(str(data[key]) for key in ("externalId", "bookingId") if data.get(key)),
        external_ids=tuple(str(data[key]) for key in ("jobNumber", "bookingId") if data.get(key)),
        completed_at=data.get("completedOn"),
        revenue=data.get("invoiceTotal"),
        reason=data.get("reason", "") if status == ProviderJobStatus.CANCELLED else "",
        provider_job_id=str(data["jobId"]) if data.get("jobId") is not None else "",
        provider_job_number=data.get("jobNumber", ""),
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


def servicetitan_payload_signed(*, secret: str, payload: dict, encoding: str = "base64") -> tuple:
    """A body and its header signed as ServiceTitan's v2 webhooks are, as we read them (for
    tests and the simulator): the HMAC-SHA256 of the body with the HMAC key, in ``encoding``
    ("base64" or "hex")."""
    body = json.dumps(payload)
    digest = hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest()
    signature = digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()
    return body, {"X-ServiceTitan-Signature": signature}

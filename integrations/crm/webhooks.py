"""Inbound CRM webhooks (seed 002 "Webhooks"), verified and parsed into a provider-neutral
``StatusUpdate``. Recording the event and applying it to our routing is the domain's part.

The CRM signs the raw body: ``X-Webhook-Signature: sha256=<hex HMAC-SHA256(secret, body)>``,
the secret being the one we gave it when we registered the webhook (``connection``).
``X-Webhook-Id`` names the delivery (its retries reuse it). The body's ``timestamp`` is signed
with it, so a delivery older or newer than ``TOLERANCE_SECONDS`` is refused as a replay.
"""

import hashlib
import hmac
import json
import uuid
from datetime import timedelta

from django.utils import timezone
from rest_framework.exceptions import ValidationError

from integrations.crm.mapping import decimal_amount, timestamp
from integrations.providers import ProviderJobStatus, ProviderType, StatusUpdate, WebhookRejected

SIGNATURE_HEADER = "X-Webhook-Signature"
DELIVERY_ID_HEADER = "X-Webhook-Id"
SIGNATURE_PREFIX = "sha256="
TOLERANCE_SECONDS = 300
# The events a connected account is subscribed to, and what each says about the work order.
EVENT_STATUSES = {
    "work_order.scheduled": ProviderJobStatus.OPEN,
    "work_order.started": ProviderJobStatus.OPEN,
    "work_order.completed": ProviderJobStatus.COMPLETED,
    "invoice.paid": ProviderJobStatus.COMPLETED,
}
WEBHOOK_EVENTS = list(EVENT_STATUSES)
# The work order's own status each event tells (an invoice paid tells none of it).
EVENT_PROVIDER_STATUSES = {
    "work_order.scheduled": "scheduled",
    "work_order.started": "in_progress",
    "work_order.completed": "completed",
}


def crm_webhook_parse(*, body: bytes, headers, secret: str) -> StatusUpdate:
    """The status update a signed CRM webhook carries. ``WebhookRejected`` when it cannot be
    trusted (no signature, a malformed or wrong one, a timestamp more than five minutes from
    now either way); a DRF ``ValidationError`` when it is trusted but malformed. An event we do
    not follow is acknowledged as an update that names no work order."""
    if isinstance(body, str):
        body = body.encode()
    present = {str(name).lower(): value for name, value in dict(headers).items()}
    signature_verify(body=body, signature=present.get(SIGNATURE_HEADER.lower(), ""), secret=secret)
    try:
        payload = json.loads(body)
    except ValueError:
        raise ValidationError({"body": "The webhook body is not JSON."}) from None
    if not isinstance(payload, dict):
        raise ValidationError({"body": "The webhook body is not a JSON object."})
    # seed 002's example payload carries a "signature" field: a signature inside the body it
    # signs cannot be checked, so it is ignored; the header's is the one verified above.
    timestamp_verify(payload.get("timestamp"))
    event_id = present.get(DELIVERY_ID_HEADER.lower()) or (
        f"sha256:{hashlib.sha256(body).hexdigest()}"
    )
    event = str(payload.get("event") or "")
    status = EVENT_STATUSES.get(event)
    if status is None:
        return StatusUpdate(
            provider_type=ProviderType.CRM, event_id=event_id, status=ProviderJobStatus.OPEN
        )
    data = payload.get("data")
    if not isinstance(data, dict):
        raise ValidationError({"data": "This field is required and must be an object."})
    work_order_id = data.get("work_order_id")
    if work_order_id in (None, ""):
        raise ValidationError({"data": {"work_order_id": "This field is required."}})
    work_order_id = str(work_order_id)
    completed_at = None
    revenue = None
    if event == "work_order.completed":
        completed_at = _timestamp_field(data, "completed_at")
    elif event == "invoice.paid":
        completed_at = _timestamp_field(data, "paid_at")
        revenue = decimal_amount(data.get("total"))
        if revenue is None:
            raise ValidationError({"data": {"total": "A number is required."}})
    return StatusUpdate(
        provider_type=ProviderType.CRM,
        event_id=event_id,
        status=status,
        external_ids=(work_order_id,),
        completed_at=completed_at,
        revenue=revenue,
        provider_job_id=work_order_id,
        provider_status=EVENT_PROVIDER_STATUSES.get(event, ""),
    )


def signature_verify(*, body: bytes, signature: str, secret: str) -> None:
    """Raise ``WebhookRejected`` unless ``signature`` is ``sha256=`` and the hex HMAC-SHA256 of
    the raw body keyed with the secret, compared in constant time."""
    text = str(signature or "").strip()
    if not text:
        raise WebhookRejected(f"Invalid webhook signature: no {SIGNATURE_HEADER} header.")
    if not text.lower().startswith(SIGNATURE_PREFIX):
        raise WebhookRejected("Invalid webhook signature: malformed signature header.")
    try:
        provided = bytes.fromhex(text[len(SIGNATURE_PREFIX) :])
    except ValueError:
        provided = b""
    if len(provided) != hashlib.sha256().digest_size:
        raise WebhookRejected("Invalid webhook signature: malformed signature header.")
    expected = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    if not hmac.compare_digest(provided, expected):
        raise WebhookRejected("Invalid webhook signature: it does not match the body.")


def timestamp_verify(value) -> None:
    when = timestamp(value)
    if when is None:
        raise WebhookRejected("Invalid webhook: no readable timestamp.")
    if abs(timezone.now() - when) > timedelta(seconds=TOLERANCE_SECONDS):
        raise WebhookRejected(
            f"Invalid webhook: its timestamp {value} is more than {TOLERANCE_SECONDS} s from now."
        )


def _timestamp_field(data: dict, name: str):
    if not data.get(name):
        return None
    when = timestamp(data[name])
    if when is None:
        raise ValidationError({"data": {name: "An ISO 8601 timestamp is required."}})
    return when


def crm_payload_signed(
    *, secret: str, payload: dict, delivery_id: str | None = None
) -> tuple[bytes, dict]:
    """A body and its headers, signed as the CRM signs its webhooks (for tests and the
    simulator). A payload without a ``timestamp`` is given the current time."""
    if "timestamp" not in payload:
        payload = {**payload, "timestamp": timezone.now().isoformat().replace("+00:00", "Z")}
    body = json.dumps(payload).encode()
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: f"{SIGNATURE_PREFIX}{digest}",
        DELIVERY_ID_HEADER: delivery_id or f"whd_{uuid.uuid4().hex}",
    }
    return body, headers

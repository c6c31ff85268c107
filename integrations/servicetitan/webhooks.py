"""Inbound ServiceTitan webhooks: verify the signature (Standard Webhooks: HMAC-SHA256 over
``id.timestamp.body``, a 5-minute timestamp tolerance, constant-time comparison), acknowledge each
event id once, and move our routing through the sync engine's back-sync service."""

import json
import logging
import uuid

from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.exceptions import ValidationError
from standardwebhooks.webhooks import Webhook

from integrations.models import WebhookReceipt
from integrations.providers import ProviderType
from integrations.servicetitan import serializers as st
from integrations.servicetitan.service import servicetitan_config

logger = logging.getLogger("integrations")


class WebhookRejected(Exception):
    """The request is not a webhook we can trust: nothing was read or changed."""


def webhook_secret(company_id: str | None) -> str:
    """The signing secret: the named company's provider account's, else the global one."""
    from jobs.models import Company

    options = {}
    if company_id:
        try:
            company = Company.objects.filter(
                id=uuid.UUID(company_id), provider_type=ProviderType.SERVICETITAN
            ).first()
        except ValueError:
            company = None
        if company is None:
            raise WebhookRejected("Unknown provider account.")
        options = company.provider_settings
    secret = servicetitan_config(options).get("webhook_secret")
    if not secret:
        raise WebhookRejected("No webhook secret is configured for this provider account.")
    return secret


def webhook_verify(*, body: bytes, headers, secret: str) -> dict:
    try:
        return Webhook(secret).verify(body, dict(headers))
    except Exception as exc:
        # Missing or malformed headers, an old timestamp, a wrong signature, a bad secret or a
        # body that is not JSON: all the same to the sender, and nothing is read.
        raise WebhookRejected(f"Invalid webhook signature: {exc}") from None


def servicetitan_webhook_receive(*, body: bytes, headers, company_id: str | None) -> dict:
    payload = webhook_verify(body=body, headers=headers, secret=webhook_secret(company_id))
    envelope = st.WebhookSerializer(data=payload if isinstance(payload, dict) else {})
    envelope.is_valid(raise_exception=True)
    update = st.WebhookDataSerializer(data=envelope.validated_data["data"])
    if not update.is_valid():
        raise ValidationError({"data": update.errors})
    event_id = envelope.validated_data["eventId"]
    with transaction.atomic():
        try:
            with transaction.atomic():
                WebhookReceipt.objects.create(provider=ProviderType.SERVICETITAN, event_id=event_id)
        except IntegrityError:
            return {"eventId": event_id, "applied": "duplicate"}
        result = status_update_apply(update.validated_data)
    logger.info("ServiceTitan webhook applied", extra={"event_id": event_id, **result})
    return {"eventId": event_id, **result}


def status_update_apply(data: dict) -> dict:
    """A job's new status at ServiceTitan, for the routing it came from: a completion completes
    the routing (and rolls up into the job) through the back-sync service."""
    from routing.services import routing_complete

    routing = routing_for(data)
    if routing is None:
        return {"applied": "unknown job", "routingId": None}
    if data["status"] != "completed":
        return {"applied": "recorded", "routingId": str(routing.id)}
    completed = routing_complete(
        routing=routing,
        completed_at=data.get("completedOn") or timezone.now(),
        revenue=data.get("invoiceTotal"),
    )
    return {
        "applied": "completed" if completed else "already completed",
        "routingId": str(routing.id),
    }


def routing_for(data: dict):
    """Our routing for a ServiceTitan job: its booking's external id is the routing id; else
    the job number or booking id it was synced as."""
    from routing.models import JobRouting

    for key in ("externalId", "bookingId"):
        try:
            routing_id = uuid.UUID(str(data.get(key)))
        except ValueError:
            continue
        routing = JobRouting.objects.filter(id=routing_id).first()
        if routing is not None:
            return routing
    references = [str(data[key]) for key in ("jobNumber", "bookingId") if data.get(key)]
    return (
        JobRouting.objects.filter(
            external_id__in=references, company__provider_type=ProviderType.SERVICETITAN
        )
        .order_by("created_at")
        .first()
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

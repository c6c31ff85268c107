"""Inbound CRM webhooks: the raw body's HMAC in ``X-Webhook-Signature``, the delivery id, the
five-minute window, and seed 002's events as status updates."""

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from integrations.crm.webhooks import crm_payload_signed, crm_webhook_parse
from integrations.providers import ProviderJobStatus, WebhookRejected

SECRET = "whsec-test-secret"


def iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def signed(event, data, *, delivery_id="whd_1", **extra):
    payload = {"event": event, "timestamp": iso(timezone.now()), "data": data, **extra}
    return crm_payload_signed(secret=SECRET, payload=payload, delivery_id=delivery_id)


def test_a_completed_work_order_is_a_completion():
    body, headers = signed(
        "work_order.completed",
        {"work_order_id": 456, "customer_id": "123", "completed_at": "2026-11-20T15:30:00Z"},
        signature="sha256=xxx",
    )

    update = crm_webhook_parse(body=body, headers=headers, secret=SECRET)

    assert update.provider_type == "crm"
    assert update.event_id == "whd_1"
    assert update.status == ProviderJobStatus.COMPLETED
    assert update.external_ids == ("456",)
    assert update.provider_job_id == "456"
    assert update.routing_ids == ()
    assert update.completed_at == datetime(2026, 11, 20, 15, 30, tzinfo=UTC)
    assert update.revenue is None


def test_a_paid_invoice_is_a_completion_with_revenue_even_before_the_work_order_completes():
    body, headers = signed(
        "invoice.paid",
        {
            "invoice_id": "inv-789",
            "work_order_id": "456",
            "customer_id": "123",
            "total": 270.63,
            "paid_at": "2026-11-20T16:00:00Z",
        },
    )

    update = crm_webhook_parse(body=body, headers=headers, secret=SECRET)

    assert update.status == ProviderJobStatus.COMPLETED
    assert update.revenue == Decimal("270.63")
    assert update.completed_at == datetime(2026, 11, 20, 16, 0, tzinfo=UTC)
    assert update.external_ids == ("456",)


@pytest.mark.parametrize("event", ["work_order.scheduled", "work_order.started"])
def test_scheduled_and_started_work_orders_are_open(event):
    body, headers = signed(event, {"work_order_id": "456"})

    update = crm_webhook_parse(body=body, headers=headers, secret=SECRET)

    assert update.status == ProviderJobStatus.OPEN
    assert update.external_ids == ("456",)
    assert update.provider_status == {"work_order.scheduled": "scheduled"}.get(event, "in_progress")


def test_an_unknown_event_is_acknowledged_and_names_no_work_order():
    body, headers = signed("customer.created", {"customer_id": "123"})

    update = crm_webhook_parse(body=body, headers=headers, secret=SECRET)

    assert update.external_ids == ()
    assert update.routing_ids == ()


def test_without_a_delivery_id_the_event_id_is_the_bodys_digest():
    body, headers = signed("work_order.started", {"work_order_id": "456"})
    del headers["X-Webhook-Id"]

    update = crm_webhook_parse(body=body, headers=headers, secret=SECRET)

    assert update.event_id == f"sha256:{hashlib.sha256(body).hexdigest()}"


def test_headers_are_read_whatever_their_case():
    body, headers = signed("work_order.started", {"work_order_id": "456"})
    lowered = {name.lower(): value for name, value in headers.items()}

    assert crm_webhook_parse(body=body, headers=lowered, secret=SECRET).event_id == "whd_1"


def test_a_wrong_signature_is_rejected():
    body, headers = signed("work_order.completed", {"work_order_id": "456"})

    with pytest.raises(WebhookRejected, match="does not match"):
        crm_webhook_parse(body=body, headers=headers, secret="another-secret")


def test_a_changed_body_is_rejected():
    body, headers = signed("invoice.paid", {"work_order_id": "456", "total": 10})

    with pytest.raises(WebhookRejected):
        crm_webhook_parse(body=body.replace(b"10", b"99"), headers=headers, secret=SECRET)


def test_a_missing_signature_is_rejected():
    body, headers = signed("work_order.completed", {"work_order_id": "456"})
    del headers["X-Webhook-Signature"]

    with pytest.raises(WebhookRejected, match="no X-Webhook-Signature"):
        crm_webhook_parse(body=body, headers=headers, secret=SECRET)


@pytest.mark.parametrize("signature", ["sha256=xxx", "abc", f"sha1={'0' * 40}", "sha256="])
def test_a_malformed_signature_is_rejected(signature):
    body, headers = signed("work_order.completed", {"work_order_id": "456"})
    headers["X-Webhook-Signature"] = signature

    with pytest.raises(WebhookRejected, match="malformed"):
        crm_webhook_parse(body=body, headers=headers, secret=SECRET)


@pytest.mark.parametrize("offset", [timedelta(minutes=-6), timedelta(minutes=6)])
def test_a_stale_or_future_timestamp_is_rejected(offset):
    payload = {
        "event": "work_order.completed",
        "timestamp": iso(timezone.now() + offset),
        "data": {"work_order_id": "456"},
    }
    body, headers = crm_payload_signed(secret=SECRET, payload=payload)

    with pytest.raises(WebhookRejected, match="from now"):
        crm_webhook_parse(body=body, headers=headers, secret=SECRET)


def test_a_timestamp_within_the_window_is_accepted():
    payload = {
        "event": "work_order.started",
        "timestamp": iso(timezone.now() - timedelta(minutes=4)),
        "data": {"work_order_id": "456"},
    }
    body, headers = crm_payload_signed(secret=SECRET, payload=payload)

    assert crm_webhook_parse(body=body, headers=headers, secret=SECRET).external_ids == ("456",)


def test_a_signed_event_without_its_work_order_is_malformed():
    body, headers = signed("work_order.completed", {"customer_id": "123"})

    with pytest.raises(ValidationError):
        crm_webhook_parse(body=body, headers=headers, secret=SECRET)


def test_a_signed_body_that_is_not_json_is_malformed():
    body = b"not json"
    _, headers = crm_payload_signed(secret=SECRET, payload={})

    headers["X-Webhook-Signature"] = (
        "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    )

    with pytest.raises(ValidationError):
        crm_webhook_parse(body=body, headers=headers, secret=SECRET)


def test_the_signed_payload_helper_signs_the_exact_body():
    body, headers = crm_payload_signed(secret=SECRET, payload={"event": "x", "data": {}})

    assert json.loads(body)["timestamp"]
    assert headers["X-Webhook-Signature"].startswith("sha256=")
    assert headers["X-Webhook-Id"]

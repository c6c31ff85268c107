"""ServiceTitan webhooks verified and parsed into provider-neutral status updates: no database,
no routing."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from rest_framework.exceptions import ValidationError

from integrations.providers import ProviderAccount, ProviderJobStatus, WebhookRejected
from integrations.servicetitan.provider import ServiceTitanProvider
from integrations.servicetitan.webhooks import payload_signed, servicetitan_webhook_parse

SECRET = "whsec_" + "c2VjcmV0LWZvci10ZXN0cy1vbmx5LTEyMzQ1Njc4OTA="
ROUTING_ID = "0b6f3f0e-8f3a-4c5e-9d2b-6a1e2f3a4b5c"


def payload(**data):
    return {
        "eventId": "evt_1",
        "eventType": "job.status_changed",
        "data": {
            "jobId": 1001,
            "jobNumber": "JOB-001001",
            "externalId": ROUTING_ID,
            "status": "completed",
            "completedOn": "2026-11-24T10:00:00Z",
            "invoiceTotal": "325.00",
            **data,
        },
    }


def account(**settings) -> ProviderAccount:
    return ProviderAccount(
        company_id=None, company_name="", provider_type="servicetitan", settings=settings
    )


def test_a_signed_completion_becomes_a_status_update():
    body, headers = payload_signed(secret=SECRET, payload=payload())

    update = servicetitan_webhook_parse(body=body.encode(), headers=headers, secret=SECRET)

    assert update.provider_type == "servicetitan"
    assert update.event_id == "evt_1"
    assert update.status == ProviderJobStatus.COMPLETED
    assert update.routing_ids == (ROUTING_ID,)
    assert update.external_ids == ("JOB-001001",)
    assert update.completed_at == datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    assert update.revenue == Decimal("325.00")


@pytest.mark.parametrize(
    ("status", "neutral"),
    [
        ("cancelled", ProviderJobStatus.CANCELLED),
        ("dispatched", ProviderJobStatus.OPEN),
        ("scheduled", ProviderJobStatus.OPEN),
        ("in_progress", ProviderJobStatus.OPEN),
    ],
)
def test_other_statuses_map_to_neutral_ones(status, neutral):
    body, headers = payload_signed(secret=SECRET, payload=payload(status=status))

    assert servicetitan_webhook_parse(body=body, headers=headers, secret=SECRET).status == neutral


def test_a_booking_id_is_both_a_possible_routing_id_and_an_external_id():
    data = payload(bookingId="42")
    data["data"].pop("externalId")
    data["data"].pop("jobNumber")
    body, headers = payload_signed(secret=SECRET, payload=data)

    update = servicetitan_webhook_parse(body=body, headers=headers, secret=SECRET)

    assert (update.routing_ids, update.external_ids) == (("42",), ("42",))


def test_a_wrong_signature_is_rejected():
    body, headers = payload_signed(secret=SECRET, payload=payload())
    other = "whsec_" + "b3RoZXItc2VjcmV0LTEyMzQ1Njc4OTA="

    with pytest.raises(WebhookRejected, match="Invalid webhook signature"):
        servicetitan_webhook_parse(body=body, headers=headers, secret=other)


def test_a_signed_payload_without_a_job_reference_is_a_validation_error():
    data = payload()
    for key in ("externalId", "jobNumber"):
        data["data"].pop(key)
    body, headers = payload_signed(secret=SECRET, payload=data)

    with pytest.raises(ValidationError):
        servicetitan_webhook_parse(body=body, headers=headers, secret=SECRET)


def test_the_provider_verifies_with_its_account_secret(settings):
    settings.SERVICETITAN = {**settings.SERVICETITAN, "webhook_secret": ""}
    body, headers = payload_signed(secret=SECRET, payload=payload())

    update = ServiceTitanProvider(account(webhook_secret=SECRET)).webhook_status_update(
        body=body, headers=headers
    )

    assert update.event_id == "evt_1"


def test_the_provider_falls_back_to_the_global_secret(settings):
    settings.SERVICETITAN = {**settings.SERVICETITAN, "webhook_secret": SECRET}
    body, headers = payload_signed(secret=SECRET, payload=payload())

    assert ServiceTitanProvider(account()).webhook_status_update(body=body, headers=headers)


def test_without_any_secret_the_provider_rejects_every_webhook(settings):
    settings.SERVICETITAN = {**settings.SERVICETITAN, "webhook_secret": ""}
    body, headers = payload_signed(secret=SECRET, payload=payload())

    with pytest.raises(WebhookRejected, match="No webhook secret"):
        ServiceTitanProvider(account()).webhook_status_update(body=body, headers=headers)

"""ServiceTitan webhooks verified and parsed into provider-neutral status updates: no database,
no routing."""

import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from rest_framework.exceptions import ValidationError

from integrations.providers import ProviderAccount, ProviderJobStatus, WebhookRejected
from integrations.servicetitan.provider import ServiceTitanProvider
from integrations.servicetitan.webhooks import (
    payload_signed,
    servicetitan_payload_signed,
    servicetitan_webhook_parse,
)

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


# ServiceTitan's v2 form: HMAC-SHA256 of the raw body with the app's HMAC key, in a header.

HMAC_KEY = "st-hmac-key-for-tests-only-0123456789abcdef"


def job_event(**data):
    return {
        "eventId": "st_evt_1",
        "eventType": "job.completed",
        "data": {
            "id": 1001,
            "jobNumber": "1001",
            "jobStatus": "Completed",
            "bookingId": 42,
            "completedOn": "2026-11-24T10:00:00Z",
            "total": "325.00",
            **data,
        },
    }


def booking_event(**data):
    return {
        "eventId": "st_evt_2",
        "eventType": "booking.dismissed",
        "data": {"id": 42, "externalId": ROUTING_ID, "status": "Dismissed", **data},
    }


def parse(body, headers, secret=HMAC_KEY):
    return servicetitan_webhook_parse(body=body.encode(), headers=headers, secret=secret)


@pytest.mark.parametrize("encoding", ["base64", "hex"])
def test_a_servicetitan_signed_job_completion_becomes_a_status_update(encoding):
    body, headers = servicetitan_payload_signed(
        secret=HMAC_KEY, payload=job_event(), encoding=encoding
    )

    update = parse(body, headers)

    assert update.provider_type == "servicetitan"
    assert update.event_id == "st_evt_1"
    assert update.status == ProviderJobStatus.COMPLETED
    assert update.routing_ids == ()
    assert update.external_ids == ("42", "1001")
    assert update.completed_at == datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    assert update.revenue == Decimal("325.00")
    assert (update.provider_job_id, update.provider_job_number) == ("1001", "1001")
    assert update.reason == ""


def test_a_servicetitan_job_cancellation_carries_its_reason():
    payload = job_event(
        jobStatus="Canceled", cancelReason={"id": 7, "name": "Customer cancelled"}, total=None
    )
    payload["eventType"] = "job.canceled"
    body, headers = servicetitan_payload_signed(secret=HMAC_KEY, payload=payload)

    update = parse(body, headers)

    assert update.status == ProviderJobStatus.CANCELLED
    assert update.reason == "Customer cancelled"
    assert update.completed_at is None
    assert update.revenue is None


def test_a_dismissed_booking_is_cancelled_and_names_our_routing():
    body, headers = servicetitan_payload_signed(
        secret=HMAC_KEY, payload=booking_event(dismissingReason="Out of service area")
    )

    update = parse(body, headers)

    assert update.status == ProviderJobStatus.CANCELLED
    assert update.reason == "Out of service area"
    assert update.routing_ids == (ROUTING_ID,)
    assert update.external_ids == ("42",)
    assert update.provider_job_id == ""


def test_a_converted_booking_is_open_and_names_its_job():
    body, headers = servicetitan_payload_signed(
        secret=HMAC_KEY,
        payload=booking_event(status="Converted", jobId=1001, jobNumber="1001"),
    )
    update = parse(body, headers)

    assert update.status == ProviderJobStatus.OPEN
    assert update.provider_job_id == "1001"
    assert update.external_ids == ("42", "1001")


def test_without_an_event_id_the_body_hash_is_the_event_id():
    payload = job_event()
    payload.pop("eventId")
    body, headers = servicetitan_payload_signed(secret=HMAC_KEY, payload=payload)

    first = parse(body, headers)
    again = parse(body, headers)

    assert first.event_id == again.event_id == f"sha256:{hashlib.sha256(body.encode()).hexdigest()}"


def test_a_bare_entity_without_an_envelope_is_read_as_the_event():
    body, headers = servicetitan_payload_signed(
        secret=HMAC_KEY, payload={"id": 1001, "jobNumber": "1001", "jobStatus": "Completed"}
    )

    update = parse(body, headers)

    assert (update.status, update.external_ids) == (ProviderJobStatus.COMPLETED, ("1001",))


def test_an_event_about_another_entity_names_no_job():
    body, headers = servicetitan_payload_signed(
        secret=HMAC_KEY, payload={"eventType": "customer.created", "data": {"id": 42}}
    )

    update = parse(body, headers)

    assert (update.status, update.routing_ids, update.external_ids) == (
        ProviderJobStatus.OPEN,
        (),
        (),
    )


def tampered(body, headers):
    return body.replace("325.00", "999.00"), headers


def wrong_key(body, headers):
    return servicetitan_payload_signed(
        secret="another-hmac-key-0123456789abcdef", payload=job_event()
    )


def no_header(body, headers):
    return body, {}


def malformed(body, headers):
    return body, {"X-ServiceTitan-Signature": "not a signature"}


def short(body, headers):
    return body, {"X-ServiceTitan-Signature": headers["X-ServiceTitan-Signature"][:20]}


def both_schemes(body, headers):
    _, standard = payload_signed(secret=SECRET, payload=payload())
    return body, {**headers, **standard}


@pytest.mark.parametrize("tamper", [tampered, wrong_key, no_header, malformed, short, both_schemes])
def test_an_untrusted_servicetitan_webhook_is_rejected(tamper):
    body, headers = tamper(*servicetitan_payload_signed(secret=HMAC_KEY, payload=job_event()))

    with pytest.raises(WebhookRejected, match="Invalid webhook signature"):
        parse(body, headers)


def test_a_servicetitan_signature_is_checked_over_the_raw_bytes():
    body, headers = servicetitan_payload_signed(secret=HMAC_KEY, payload=job_event())
    reformatted = json.dumps(json.loads(body), indent=2)

    with pytest.raises(WebhookRejected):
        parse(reformatted, headers)


def test_the_header_name_is_case_insensitive():
    body, headers = servicetitan_payload_signed(secret=HMAC_KEY, payload=job_event())

    update = parse(body, {"x-servicetitan-signature": headers["X-ServiceTitan-Signature"]})

    assert update.event_id == "st_evt_1"


def test_a_trusted_servicetitan_event_without_a_job_reference_is_a_validation_error():
    body, headers = servicetitan_payload_signed(
        secret=HMAC_KEY, payload={"eventType": "job.completed", "data": {"jobStatus": "Completed"}}
    )

    with pytest.raises(ValidationError):
        parse(body, headers)


def test_a_trusted_servicetitan_body_that_is_not_an_object_is_a_validation_error():
    body, headers = servicetitan_payload_signed(secret=HMAC_KEY, payload=[1, 2])

    with pytest.raises(ValidationError):
        parse(body, headers)


def test_a_standard_webhooks_cancellation_carries_its_reason_and_job():
    body, headers = payload_signed(
        secret=SECRET, payload=payload(status="cancelled", reason="Customer cancelled")
    )

    update = servicetitan_webhook_parse(body=body, headers=headers, secret=SECRET)

    assert update.status == ProviderJobStatus.CANCELLED
    assert update.reason == "Customer cancelled"
    assert (update.provider_job_id, update.provider_job_number) == ("1001", "JOB-001001")

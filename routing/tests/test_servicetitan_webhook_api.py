"""POST /api/integrations/servicetitan/webhook: a ServiceTitan webhook verified and parsed by
the integration, recorded once and applied by routing's back-sync, answering in seed 001's
envelope."""

from decimal import Decimal

import pytest
from django.utils import timezone

from integrations.models import WebhookReceipt
from integrations.servicetitan.webhooks import payload_signed, servicetitan_payload_signed
from jobs.models import JobStatus
from routing.models import SyncStatus
from routing.tests.factories import JobRoutingFactory

pytestmark = pytest.mark.django_db

URL = "/api/integrations/servicetitan/webhook"
SECRET = "whsec_" + "c2VjcmV0LWZvci10ZXN0cy1vbmx5LTEyMzQ1Njc4OTA="


def assert_error(response, status: int, error: str):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["success"] is False
    assert body["error"] == error
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["details"], list)
    return body


@pytest.fixture
def webhook_secret(settings):
    settings.SERVICETITAN = {**settings.SERVICETITAN, "webhook_secret": SECRET}
    return SECRET


@pytest.fixture
def synced_routing():
    routing = JobRoutingFactory(
        company__provider_type="servicetitan",
        sync_status=SyncStatus.SYNCED,
        external_id="JOB-001001",
    )
    return routing


def completion(routing, event_id="evt_1", **data):
    return {
        "eventId": event_id,
        "eventType": "job.status_changed",
        "data": {
            "jobId": 1001,
            "jobNumber": "JOB-001001",
            "externalId": str(routing.id),
            "status": "completed",
            "completedOn": "2026-11-24T10:00:00Z",
            "invoiceTotal": "325.00",
            **data,
        },
    }


def post_webhook(api_client, body, headers, query=""):
    return api_client.generic(
        "POST",
        f"{URL}{query}",
        body,
        content_type="application/json",
        headers=headers,
    )


def test_a_signed_completion_completes_the_routing_and_its_job(
    api_client, webhook_secret, synced_routing
):
    body, headers = payload_signed(secret=webhook_secret, payload=completion(synced_routing))

    response = post_webhook(api_client, body, headers)

    assert response.status_code == 200, response.content
    assert response.json()["data"]["applied"] == "completed"
    synced_routing.refresh_from_db()
    assert synced_routing.sync_status == SyncStatus.COMPLETED
    assert synced_routing.revenue == Decimal("325.00")
    job = synced_routing.job
    job.refresh_from_db()
    assert (job.status, job.revenue) == (JobStatus.COMPLETED, Decimal("325.00"))


def test_a_replayed_event_is_acknowledged_once(api_client, webhook_secret, synced_routing):
    payload = completion(synced_routing)
    for _ in range(2):
        body, headers = payload_signed(secret=webhook_secret, payload=payload)
        response = post_webhook(api_client, body, headers)
    assert response.status_code == 200
    assert response.json()["data"]["applied"] == "duplicate"
    assert WebhookReceipt.objects.count() == 1


@pytest.mark.parametrize("tamper", ["body", "signature", "old", "missing", "other-secret"])
def test_a_bad_signature_is_401_and_changes_nothing(
    api_client, webhook_secret, synced_routing, tamper
):
    body, headers = payload_signed(secret=webhook_secret, payload=completion(synced_routing))
    if tamper == "body":
        body = body.replace("325.00", "999.00")
    elif tamper == "signature":
        headers["webhook-signature"] = "v1,AAAA" + headers["webhook-signature"][7:]
    elif tamper == "old":
        headers["webhook-timestamp"] = str(int(timezone.now().timestamp()) - 3600)
    elif tamper == "missing":
        headers.pop("webhook-signature")
    else:
        body, headers = payload_signed(
            secret="whsec_" + "b3RoZXItc2VjcmV0LTEyMzQ1Njc4OTA=", payload=completion(synced_routing)
        )

    response = post_webhook(api_client, body, headers)

    assert_error(response, 401, "Unauthorized")
    synced_routing.refresh_from_db()
    assert synced_routing.sync_status == SyncStatus.SYNCED
    assert not WebhookReceipt.objects.exists()


def test_without_a_secret_every_webhook_is_refused(api_client, synced_routing):
    body, headers = payload_signed(secret=SECRET, payload=completion(synced_routing))

    assert_error(post_webhook(api_client, body, headers), 401, "Unauthorized")


def test_a_provider_account_signs_with_its_own_secret(api_client, synced_routing):
    company = synced_routing.company
    company.provider_credentials = {"webhook_secret": SECRET}
    company.save()
    body, headers = payload_signed(secret=SECRET, payload=completion(synced_routing))

    response = post_webhook(api_client, body, headers, f"?company_id={company.id}")

    assert response.status_code == 200
    assert response.json()["data"]["applied"] == "completed"


def test_a_webhook_found_by_job_number_and_a_status_that_is_not_completion(
    api_client, webhook_secret, synced_routing
):
    payload = completion(synced_routing, externalId=None, status="dispatched")
    payload["data"].pop("externalId")
    body, headers = payload_signed(secret=webhook_secret, payload=payload)

    response = post_webhook(api_client, body, headers)

    assert response.json()["data"] == {
        "eventId": "evt_1",
        "applied": "recorded",
        "routingId": str(synced_routing.id),
        "receivedAt": response.json()["data"]["receivedAt"],
    }
    synced_routing.refresh_from_db()
    assert synced_routing.sync_status == SyncStatus.SYNCED


def test_a_signed_but_malformed_update_is_a_validation_error(api_client, webhook_secret):
    body, headers = payload_signed(
        secret=webhook_secret,
        payload={"eventId": "evt_9", "eventType": "job.status_changed", "data": {"status": "x"}},
    )

    assert_error(post_webhook(api_client, body, headers), 400, "Validation Error")
    assert not WebhookReceipt.objects.exists()


# ServiceTitan's v2 form: the HMAC key configured for the app is the account's webhook secret.

HMAC_KEY = "st-hmac-key-for-tests-only-0123456789abcdef"


@pytest.fixture
def hmac_key(settings):
    settings.SERVICETITAN = {**settings.SERVICETITAN, "webhook_secret": HMAC_KEY}
    return HMAC_KEY


@pytest.fixture
def booked_routing():
    """A routing pushed as ServiceTitan booking 42: its external id is the booking's id."""
    return JobRoutingFactory(
        company__provider_type="servicetitan", sync_status=SyncStatus.SYNCED, external_id="42"
    )


def job_event(event_id="st_evt_1", **data):
    return {
        "eventId": event_id,
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


def test_a_servicetitan_signed_completion_completes_the_routing_and_its_job(
    api_client, hmac_key, booked_routing
):
    body, headers = servicetitan_payload_signed(secret=hmac_key, payload=job_event())

    response = post_webhook(api_client, body, headers)

    assert response.status_code == 200, response.content
    assert response.json()["data"]["applied"] == "completed"
    assert response.json()["data"]["routingId"] == str(booked_routing.id)
    booked_routing.refresh_from_db()
    assert booked_routing.sync_status == SyncStatus.COMPLETED
    assert booked_routing.revenue == Decimal("325.00")
    job = booked_routing.job
    job.refresh_from_db()
    assert (job.status, job.revenue) == (JobStatus.COMPLETED, Decimal("325.00"))


def test_a_servicetitan_dismissal_finds_the_routing_by_its_external_id_and_completes_nothing(
    api_client, hmac_key, booked_routing
):
    payload = {
        "eventId": "st_evt_2",
        "eventType": "booking.dismissed",
        "data": {
            "id": 42,
            "externalId": str(booked_routing.id),
            "status": "Dismissed",
            "dismissingReason": "Out of service area",
        },
    }
    body, headers = servicetitan_payload_signed(secret=hmac_key, payload=payload, encoding="hex")

    response = post_webhook(api_client, body, headers)

    assert response.status_code == 200, response.content
    assert response.json()["data"]["routingId"] == str(booked_routing.id)
    assert response.json()["data"]["applied"] != "completed"
    booked_routing.refresh_from_db()
    assert booked_routing.sync_status != SyncStatus.COMPLETED
    assert WebhookReceipt.objects.filter(event_id="st_evt_2").exists()


def test_a_replayed_servicetitan_delivery_without_an_event_id_is_a_duplicate(
    api_client, hmac_key, booked_routing
):
    payload = job_event()
    payload.pop("eventId")
    body, headers = servicetitan_payload_signed(secret=hmac_key, payload=payload)

    first = post_webhook(api_client, body, headers)
    again = post_webhook(api_client, body, headers)

    assert first.json()["data"]["applied"] == "completed"
    assert again.status_code == 200
    assert again.json()["data"]["applied"] == "duplicate"
    assert again.json()["data"]["eventId"] == first.json()["data"]["eventId"]
    assert WebhookReceipt.objects.count() == 1


@pytest.mark.parametrize(
    "tamper", ["body", "other-key", "missing", "malformed", "unsigned-standard", "both"]
)
def test_a_bad_servicetitan_signature_is_401_and_changes_nothing(
    api_client, hmac_key, booked_routing, tamper
):
    body, headers = servicetitan_payload_signed(secret=hmac_key, payload=job_event())
    if tamper == "body":
        body = body.replace("325.00", "999.00")
    elif tamper == "other-key":
        body, headers = servicetitan_payload_signed(
            secret="another-hmac-key-0123456789abcdef", payload=job_event()
        )
    elif tamper == "missing":
        headers = {}
    elif tamper == "malformed":
        headers = {"X-ServiceTitan-Signature": "sha256=zz" + "0" * 62}
    elif tamper == "unsigned-standard":
        headers = {"webhook-id": "msg_1", "webhook-timestamp": str(int(timezone.now().timestamp()))}
    else:
        _, standard = payload_signed(secret=SECRET, payload=completion(booked_routing))
        headers = {**headers, **standard}

    response = post_webhook(api_client, body, headers)

    assert_error(response, 401, "Unauthorized")
    booked_routing.refresh_from_db()
    assert booked_routing.sync_status == SyncStatus.SYNCED
    assert not WebhookReceipt.objects.exists()


def test_a_servicetitan_signed_but_malformed_event_is_a_validation_error(api_client, hmac_key):
    body, headers = servicetitan_payload_signed(
        secret=hmac_key, payload={"eventType": "job.completed", "data": {"total": "abc"}}
    )

    assert_error(post_webhook(api_client, body, headers), 400, "Validation Error")
    assert not WebhookReceipt.objects.exists()

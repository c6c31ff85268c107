"""POST /api/integrations/servicetitan/webhook: a ServiceTitan webhook verified and parsed by
the integration, recorded once and applied by routing's back-sync, answering in seed 001's
envelope."""

from decimal import Decimal

import pytest
from django.utils import timezone

from integrations.models import WebhookReceipt
from integrations.servicetitan.webhooks import payload_signed
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

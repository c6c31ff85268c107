import hashlib
import hmac
import json

import pytest
import requests
import responses
from django.utils import timezone

from integrations.crm.simulator import office
from integrations.crm.simulator.deliveries import deliveries_record
from integrations.models import CrmSimWebhookDelivery
from integrations.tasks import crm_simulator_deliver_webhook
from integrations.tests.factories import CrmSimWebhookFactory, CrmSimWorkOrderFactory

pytestmark = pytest.mark.django_db

URL = "https://receiver.example.com/crm-webhook"
SECRET = "your-webhook-secret"


@pytest.fixture(autouse=True)
def _quick_retries(settings):
    settings.CRM_SIMULATOR_WEBHOOK_RETRY_SECONDS = [5, 30, 120]


def record(event="work_order.completed") -> CrmSimWebhookDelivery:
    CrmSimWebhookFactory(url=URL, secret=SECRET)
    (delivery,) = deliveries_record(
        client_id="demo-crm",
        event=event,
        data={"work_order_id": "456"},
        now=timezone.now(),
    )
    return delivery


@responses.activate
def test_delivery_is_signed_over_the_raw_body():
    responses.post(URL, status=200)
    delivery = record()

    crm_simulator_deliver_webhook(delivery.pk)

    (call,) = responses.calls
    body = call.request.body
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert call.request.headers["X-Webhook-Signature"] == f"sha256={expected}"
    assert call.request.headers["X-Webhook-Id"] == str(delivery.delivery_id)
    assert call.request.headers["Content-Type"] == "application/json"
    payload = json.loads(body)
    assert set(payload) == {"event", "timestamp", "data"}  # no "signature" inside the body
    assert payload["event"] == "work_order.completed"
    assert payload["timestamp"].endswith("Z")
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 1, 200)


@responses.activate
def test_retries_after_a_500_with_the_same_id_then_delivers(monkeypatch):
    responses.post(URL, status=500, body="boom")
    responses.post(URL, status=204)
    delivery = record()
    countdowns = []
    apply_async = crm_simulator_deliver_webhook.apply_async
    monkeypatch.setattr(
        crm_simulator_deliver_webhook,
        "apply_async",
        lambda args, countdown: (
            countdowns.append(countdown) or apply_async(args, countdown=countdown)
        ),
    )

    crm_simulator_deliver_webhook(delivery.pk)

    assert countdowns == [5]
    ids = {call.request.headers["X-Webhook-Id"] for call in responses.calls}
    bodies = {call.request.body for call in responses.calls}
    assert ids == {str(delivery.delivery_id)}
    assert len(bodies) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 2, 204)


@responses.activate
def test_gives_up_after_the_last_retry():
    responses.post(URL, body=requests.ConnectionError("refused"))
    delivery = record()

    crm_simulator_deliver_webhook(delivery.pk)

    assert len(responses.calls) == 4
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("failed", 4)
    assert "ConnectionError" in delivery.last_error


@responses.activate
def test_a_delivered_delivery_is_not_sent_again():
    responses.post(URL, status=200)
    delivery = record()
    crm_simulator_deliver_webhook(delivery.pk)

    crm_simulator_deliver_webhook(delivery.pk)
    crm_simulator_deliver_webhook(999_999)

    assert len(responses.calls) == 1


def test_only_registrations_of_the_account_for_the_event_get_deliveries():
    CrmSimWebhookFactory(events=["invoice.paid"])
    CrmSimWebhookFactory(client_id="other-crm", events=["work_order.created"])
    wanted = CrmSimWebhookFactory(events=["work_order.created"])

    CrmSimWorkOrderFactory()  # a row alone records nothing: events come from the office
    office.work_order_create(
        client_id="demo-crm",
        customer=CrmSimWorkOrderFactory().customer,
        fields={"service_type": "Pumping"},
    )

    assert [d.webhook_id for d in CrmSimWebhookDelivery.objects.all()] == [wanted.pk]


@responses.activate
def test_deliveries_are_sent_once_the_transaction_commits(django_capture_on_commit_callbacks):
    responses.post(URL, status=200)
    CrmSimWebhookFactory(url=URL, events=["work_order.created"])

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        work_order = office.work_order_create(
            client_id="demo-crm",
            customer=CrmSimWorkOrderFactory().customer,
            fields={"service_type": "Pumping"},
        )

    assert len(callbacks) == 1
    payload = json.loads(responses.calls[0].request.body)
    assert payload["data"] == {
        "work_order_id": work_order.api_id,
        "customer_id": work_order.customer.api_id,
        "technician_id": None,
        "status": "draft",
        "scheduled_date": None,
    }
    assert CrmSimWebhookDelivery.objects.get().status == "delivered"

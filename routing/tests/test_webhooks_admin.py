"""The ops admin of outbound webhooks: endpoints (secrets never shown) with "Disable", and
deliveries with their attempts and "Redeliver"."""

import pytest
from django.urls import reverse
from django.utils import timezone

from routing.models import (
    OutboxEvent,
    OutboxStatus,
    WebhookAttempt,
    WebhookDeliveryStatus,
)
from routing.tests.factories import WebhookDeliveryFactory, WebhookEndpointFactory
from routing.tests.in_process import fresh

pytestmark = pytest.mark.django_db

ENDPOINTS_URL = reverse("admin:routing_webhookendpoint_changelist")
DELIVERIES_URL = reverse("admin:routing_webhookdelivery_changelist")


def dead_delivery(**kwargs):
    delivery = WebhookDeliveryFactory(
        status=WebhookDeliveryStatus.FAILED,
        attempt_count=8,
        retry_count=7,
        last_response_status=503,
        last_error="HTTP 503",
        **kwargs,
    )
    WebhookAttempt.objects.create(
        delivery=delivery,
        number=8,
        attempted_at=timezone.now(),
        response_status=503,
        duration_ms=41,
        response_start="upstream unavailable",
        error="HTTP 503",
    )
    return delivery


def test_endpoints_are_listed_and_shown_without_their_secret(ops_client):
    endpoint = WebhookEndpointFactory()
    secret = endpoint.secrets["secret"]

    listing = ops_client.get(ENDPOINTS_URL)
    page = ops_client.get(reverse("admin:routing_webhookendpoint_change", args=[endpoint.id]))

    for response in (listing, page):
        assert response.status_code == 200
        assert endpoint.url in response.content.decode()
        assert secret not in response.content.decode()
        assert "whsec_" not in response.content.decode()


def test_a_delivery_shows_its_attempts_with_status_timing_and_the_answers_start(ops_client):
    delivery = dead_delivery()

    response = ops_client.get(reverse("admin:routing_webhookdelivery_change", args=[delivery.id]))

    assert response.status_code == 200
    content = response.content.decode()
    for shown in ("503", "41", "upstream unavailable", "HTTP 503"):
        assert shown in content


@pytest.mark.parametrize("query", ["", "?status__exact=failed", "?event=webhook.test", "?q=hooks"])
def test_the_delivery_list_renders_with_each_filter(ops_client, query):
    dead_delivery()
    WebhookDeliveryFactory()

    assert ops_client.get(DELIVERIES_URL + query).status_code == 200


def test_redeliver_sends_a_dead_delivery_again(ops_client):
    delivery = dead_delivery()
    pending = WebhookDeliveryFactory()

    response = ops_client.post(
        DELIVERIES_URL,
        {"action": "redeliver", "_selected_action": [delivery.id, pending.id]},
        follow=True,
    )

    assert "Redelivering 1 delivery. 1 left alone" in response.content.decode()
    delivery = fresh(delivery)
    assert (delivery.status, delivery.retry_count) == (WebhookDeliveryStatus.PENDING, 0)
    event = OutboxEvent.objects.get(aggregate_id=delivery.id)
    assert event.status in (OutboxStatus.PENDING, OutboxStatus.DONE)


def test_disable_stops_an_endpoint_and_ends_its_pending_deliveries(ops_client):
    endpoint = WebhookEndpointFactory()
    pending = WebhookDeliveryFactory(endpoint=endpoint)

    response = ops_client.post(
        ENDPOINTS_URL, {"action": "disable", "_selected_action": [endpoint.id]}, follow=True
    )

    assert "Disabled 1 endpoint." in response.content.decode()
    endpoint = fresh(endpoint)
    assert not endpoint.enabled
    assert endpoint.disabled_reason.startswith("Disabled by ")
    assert fresh(pending).status == WebhookDeliveryStatus.FAILED


def test_endpoints_and_deliveries_cannot_be_added_or_edited_by_hand(ops_client):
    endpoint = WebhookEndpointFactory()

    assert ops_client.get(reverse("admin:routing_webhookendpoint_add")).status_code == 403
    response = ops_client.post(
        reverse("admin:routing_webhookendpoint_change", args=[endpoint.id]),
        {"url": "https://evil.example.com/"},
    )
    assert response.status_code == 403
    assert fresh(endpoint).url == endpoint.url

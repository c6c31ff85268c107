"""The CRM's webhook receiver over HTTP (seed 002): what it refuses, in seed 002's error shape.
The signature scheme and the payload's parsing are tested with the CRM integration."""

from decimal import Decimal

import pytest

from integrations.crm.webhooks import crm_payload_signed
from jobs.tests.factories import CompanyFactory
from routing.models import JobRouting, SyncStatus
from routing.tests.factories import JobRoutingFactory

pytestmark = pytest.mark.django_db

URL = "/api/integrations/crm/webhook"


def assert_crm_error(response, status: int, error: str) -> dict:
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"error", "detail", "hint"}
    assert body["error"] == error
    assert body["detail"] and body["hint"]
    return body


@pytest.mark.parametrize(
    "account",
    ["", "not-a-uuid", "00000000-0000-0000-0000-000000000000"],
)
def test_a_webhook_for_no_known_account_is_401_in_seed_002s_shape(client, account):
    response = client.post(
        f"{URL}?account={account}",
        {"event": "work_order.completed"},
        content_type="application/json",
    )

    assert_crm_error(response, 401, "unauthorized")


def test_a_webhook_for_a_company_on_another_provider_is_401(client):
    company = CompanyFactory(provider_type="mock")

    response = client.post(
        f"{URL}?account={company.id}", {"event": "invoice.paid"}, content_type="application/json"
    )

    assert_crm_error(response, 401, "unauthorized")


def test_get_is_405_in_seed_002s_shape(client):
    assert_crm_error(client.get(URL), 405, "method_not_allowed")


def test_an_unknown_path_under_the_crm_prefix_is_404_in_seed_002s_shape(client):
    assert_crm_error(client.post("/api/integrations/crm/nothing-here"), 404, "not_found")


SECRET = "crm-webhook-secret-of-the-account"


@pytest.fixture
def crm_routing():
    return JobRoutingFactory(
        company__provider_type="crm",
        company__provider_credentials={
            "client_id": "c",
            "client_secret": "s",
            "webhook_secret": SECRET,
        },
        sync_status=SyncStatus.SYNCED,
        external_id="456",
    )


def event(name: str, **data) -> dict:
    return {"event": name, "data": {"work_order_id": "456", "customer_id": "123", **data}}


def post_signed(client, routing, payload, *, secret=SECRET, delivery_id=None):
    body, headers = crm_payload_signed(secret=secret, payload=payload, delivery_id=delivery_id)
    return client.generic(
        "POST",
        f"{URL}?account={routing.company_id}",
        body,
        content_type="application/json",
        headers=headers,
    )


def test_signed_events_move_complete_and_pay_the_routing_once(client, crm_routing):
    started = post_signed(client, crm_routing, event("work_order.started", status="in_progress"))
    completed = post_signed(
        client,
        crm_routing,
        event("work_order.completed", completed_at="2026-11-30T09:00:00Z"),
        delivery_id="d-2",
    )
    paid = post_signed(
        client,
        crm_routing,
        event("invoice.paid", invoice_id="inv-1", total=270.63, paid_at="2026-11-30T09:05:00Z"),
    )
    replayed = post_signed(
        client,
        crm_routing,
        event("work_order.completed", completed_at="2026-11-30T09:00:00Z"),
        delivery_id="d-2",
    )

    assert [r.status_code for r in (started, completed, paid, replayed)] == [200] * 4
    assert [r.json()["applied"] for r in (started, completed, paid, replayed)] == [
        "recorded",
        "completed",
        "revenue recorded",
        "duplicate",
    ]
    routing = JobRouting.objects.get(id=crm_routing.id)
    assert (routing.sync_status, routing.revenue, routing.provider_status) == (
        SyncStatus.COMPLETED,
        Decimal("270.63"),
        "completed",
    )
    routing.job.refresh_from_db()
    assert routing.job.revenue == Decimal("270.63")


def test_a_step_delivered_after_the_completion_leaves_the_final_status(client, crm_routing):
    """The CRM sends its webhooks in any order: "started" arriving last changes nothing."""
    post_signed(
        client, crm_routing, event("work_order.completed", completed_at="2026-11-30T09:00:00Z")
    )
    late = post_signed(client, crm_routing, event("work_order.started", status="in_progress"))

    assert late.status_code == 200
    routing = JobRouting.objects.get(id=crm_routing.id)
    assert (routing.sync_status, routing.provider_status) == (SyncStatus.COMPLETED, "completed")


def test_an_invoice_paid_before_the_completion_completes_with_the_revenue(client, crm_routing):
    paid = post_signed(
        client,
        crm_routing,
        event("invoice.paid", invoice_id="inv-1", total=99.5, paid_at="2026-11-30T09:05:00Z"),
    )
    completed = post_signed(client, crm_routing, event("work_order.completed"))

    assert (paid.json()["applied"], completed.json()["applied"]) == (
        "completed",
        "already completed",
    )
    routing = JobRouting.objects.get(id=crm_routing.id)
    assert (routing.sync_status, routing.revenue) == (SyncStatus.COMPLETED, Decimal("99.50"))


def test_a_wrong_signature_is_401_and_changes_nothing(client, crm_routing):
    response = post_signed(
        client, crm_routing, event("work_order.completed"), secret="someone-else"
    )

    assert_crm_error(response, 401, "unauthorized")
    assert JobRouting.objects.get(id=crm_routing.id).sync_status == SyncStatus.SYNCED


def test_a_stale_event_is_401(client, crm_routing):
    payload = {**event("work_order.completed"), "timestamp": "2026-01-01T00:00:00Z"}

    assert_crm_error(post_signed(client, crm_routing, payload), 401, "unauthorized")


def test_an_unknown_event_is_acknowledged_and_ignored(client, crm_routing):
    response = post_signed(client, crm_routing, event("customer.created"))

    assert response.status_code == 200
    assert response.json()["applied"] == "unknown job"
    assert JobRouting.objects.get(id=crm_routing.id).sync_status == SyncStatus.SYNCED

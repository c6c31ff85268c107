import json
from decimal import Decimal

import pytest
from django.urls import reverse

from integrations.crm.simulator import office
from integrations.models import CrmSimInvoice, CrmSimWebhookDelivery, CrmSimWorkOrder
from integrations.tests.factories import (
    CrmSimInvoiceFactory,
    CrmSimWebhookFactory,
    CrmSimWorkOrderFactory,
)

pytestmark = pytest.mark.django_db

WORK_ORDERS_URL = reverse("admin:integrations_crmsimworkorder_changelist")
INVOICES_URL = reverse("admin:integrations_crmsiminvoice_changelist")
EVERY_EVENT = [
    "work_order.scheduled",
    "work_order.started",
    "work_order.completed",
    "invoice.created",
    "invoice.sent",
    "invoice.paid",
]


def act(client, url: str, action: str, rows):
    return client.post(
        url,
        {"action": action, "_selected_action": [row.pk for row in rows], "index": 0},
        follow=True,
    )


def shown_messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def payloads() -> list[dict]:
    return [json.loads(delivery.body) for delivery in CrmSimWebhookDelivery.objects.order_by("id")]


def test_the_office_moves_a_work_order_along_and_reports_each_move():
    CrmSimWebhookFactory(events=EVERY_EVENT)
    work_order = CrmSimWorkOrderFactory()

    office.work_order_schedule(work_order)
    work_order = office.work_order_start(work_order)
    work_order = office.work_order_complete(work_order)

    assert work_order.status == CrmSimWorkOrder.Status.COMPLETED
    assert work_order.technician.first_name == "Mike"  # the roster's first active technician
    events = payloads()
    assert [p["event"] for p in events] == EVERY_EVENT[:3]
    assert events[0]["data"]["status"] == "scheduled"
    assert events[0]["data"]["technician_id"] == work_order.technician.api_id
    assert events[0]["data"]["scheduled_date"] == work_order.scheduled_date.isoformat()
    assert events[1]["data"]["started_at"].endswith("Z")
    assert events[2]["data"]["completed_at"].endswith("Z")
    assert set(events[2]["data"]) == {
        "work_order_id",
        "customer_id",
        "technician_id",
        "status",
        "scheduled_date",
        "completed_at",
    }


def test_the_office_refuses_a_move_out_of_order():
    work_order = CrmSimWorkOrderFactory()

    with pytest.raises(office.OfficeRefused):
        office.work_order_complete(work_order)
    with pytest.raises(office.OfficeRefused):
        office.work_order_start(work_order)


def test_invoice_issue_creates_and_sends_a_realistic_invoice():
    CrmSimWebhookFactory(events=EVERY_EVENT)
    work_order = CrmSimWorkOrderFactory(status="completed", estimated_duration_hours=3)

    invoice = office.invoice_issue(work_order)

    assert invoice.status == CrmSimInvoice.Status.SENT
    assert (invoice.subtotal, invoice.tax, invoice.total) == (
        Decimal("344.00"),
        Decimal("28.38"),
        Decimal("372.38"),
    )
    assert [p["event"] for p in payloads()] == ["invoice.created", "invoice.sent"]
    assert payloads()[1]["data"] == {
        "invoice_id": invoice.api_id,
        "work_order_id": work_order.api_id,
        "customer_id": work_order.customer.api_id,
        "total": 372.38,
        "status": "sent",
    }


def test_invoice_mark_paid_reports_paid_at():
    CrmSimWebhookFactory(events=["invoice.paid"])
    invoice = CrmSimInvoiceFactory(status="sent")

    office.invoice_mark_paid(invoice)

    (paid,) = payloads()
    assert paid["event"] == "invoice.paid"
    assert paid["data"]["status"] == "paid"
    assert paid["data"]["paid_at"].endswith("Z")


def test_admin_actions_drive_the_demo_and_emit_deliveries(ops_client):
    CrmSimWebhookFactory(events=EVERY_EVENT)
    work_order = CrmSimWorkOrderFactory()
    completed_elsewhere = CrmSimWorkOrderFactory(status="completed")

    for action, done in [
        ("schedule", "1 scheduled."),
        ("start", "1 started."),
        ("complete", "1 completed."),
        ("issue_invoice", "1 invoiced and sent."),
    ]:
        response = act(ops_client, WORK_ORDERS_URL, action, [work_order])
        assert shown_messages(response) == [done]
    response = act(ops_client, WORK_ORDERS_URL, "start", [completed_elsewhere])
    assert shown_messages(response) == [
        f"Work order {completed_elsewhere.pk} cannot move from completed to in_progress."
    ]
    invoice = CrmSimInvoice.objects.get()
    response = act(ops_client, INVOICES_URL, "mark_paid", [invoice])

    assert shown_messages(response) == ["1 marked paid."]
    invoice.refresh_from_db()
    assert invoice.status == CrmSimInvoice.Status.PAID
    assert [p["event"] for p in payloads()] == EVERY_EVENT


def test_admin_cancel_action(ops_client):
    work_order = CrmSimWorkOrderFactory(status="scheduled")

    response = act(ops_client, WORK_ORDERS_URL, "cancel", [work_order])

    assert shown_messages(response) == ["1 cancelled."]
    work_order.refresh_from_db()
    assert work_order.status == CrmSimWorkOrder.Status.CANCELLED


def test_admin_rows_are_read_only(ops_client):
    work_order = CrmSimWorkOrderFactory()
    change_url = reverse("admin:integrations_crmsimworkorder_change", args=[work_order.pk])

    response = ops_client.post(change_url, {"service_type": "Changed"})

    assert response.status_code == 403
    assert ops_client.get(WORK_ORDERS_URL).status_code == 200

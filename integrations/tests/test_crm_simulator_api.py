from datetime import date, timedelta

import pytest
from django.test import Client

from integrations.crm.simulator import api
from integrations.models import CrmSimCustomer, CrmSimInvoice, CrmSimWebhook, CrmSimWorkOrder
from integrations.tests.factories import (
    CrmSimCustomerFactory,
    CrmSimInvoiceFactory,
    CrmSimTechnicianFactory,
    CrmSimWorkOrderFactory,
)

pytestmark = pytest.mark.django_db

BASE = "/crm-sim/api/v2/"
ACCOUNT = "demo-crm"
OTHER_ACCOUNT = "other-crm"


@pytest.fixture(autouse=True)
def _clients(settings):
    settings.CRM_SIMULATOR_CLIENTS = {ACCOUNT: "demo-crm-secret", OTHER_ACCOUNT: "other-secret"}
    settings.CRM_SIMULATOR_READ_ONLY_CLIENTS = []


def get_token(client: Client, client_id=ACCOUNT, secret="demo-crm-secret") -> str:
    response = client.post(
        BASE + "oauth/token",
        {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )
    assert response.status_code == 200, response.content
    return response.json()["access_token"]


@pytest.fixture
def crm():
    """A client of the demo account, its bearer token on every request."""
    client = Client()
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {get_token(client)}"
    return client


def post(client, path, body):
    return client.post(BASE + path, body, content_type="application/json")


def patch(client, path, body):
    return client.patch(BASE + path, body, content_type="application/json")


def assert_error(response, status: int, code: str):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error", "detail", "hint"}
    assert body["error"] == code
    assert body["detail"] and body["hint"]


# The token.


def test_token_for_a_configured_client():
    response = Client().post(
        BASE + "oauth/token",
        {
            "grant_type": "client_credentials",
            "client_id": ACCOUNT,
            "client_secret": "demo-crm-secret",
        },
    )

    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["access_token"]


@pytest.mark.parametrize(
    "client_id, secret", [(ACCOUNT, "wrong"), ("stranger", "demo-crm-secret"), ("", "")]
)
def test_token_refused_for_a_wrong_client(client_id, secret):
    response = Client().post(
        BASE + "oauth/token",
        {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )

    assert_error(response, 401, "invalid_client")


def test_token_refused_for_another_grant():
    response = Client().post(
        BASE + "oauth/token",
        {"grant_type": "password", "client_id": ACCOUNT, "client_secret": "demo-crm-secret"},
    )

    assert_error(response, 400, "unsupported_grant_type")


@pytest.mark.parametrize("authorization", [None, "Bearer not-a-token", "Basic abc", "Bearer"])
def test_requests_without_a_valid_token_are_unauthorized(authorization):
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}

    response = Client().get(BASE + "work-orders", **headers)

    assert_error(response, 401, "unauthorized")
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_unknown_path_is_a_404_in_the_error_shape(crm):
    assert_error(crm.get(BASE + "customers"), 404, "not_found")  # the seed's slash is required
    assert_error(crm.get(BASE + "nothing/here"), 404, "not_found")


# Customers.


def test_customer_create_and_get(crm):
    response = post(
        crm,
        "customers/",
        {
            "first_name": "John",
            "last_name": "Doe",
            "email": "john@example.com",
            "phone": "512-555-0100",
            "address": "123 Main St",
            "city": "Austin",
            "state": "tx",
            "zip": "78701",
        },
    )

    assert response.status_code == 201, response.content
    created = response.json()
    assert created["id"].isdigit()
    assert created["state"] == "TX"
    assert created["phone"] == "512-555-0100"
    assert created["status"] == "active"
    assert created["created_at"].endswith("Z")
    assert crm.get(BASE + f"customers/{created['id']}").json() == created


@pytest.mark.parametrize(
    "change, field",
    [
        ({"first_name": None}, "first_name"),
        ({"first_name": ""}, "first_name"),
        ({"last_name": 42}, "last_name"),
        ({"email": "not-an-email"}, "email"),
        ({"state": "Texas"}, "state"),
        ({"zip": "7870"}, "zip"),
        ({"zip": 78701}, "zip"),
        ({"zip": "78701-12"}, "zip"),
        ({"phone": 5125550100}, "phone"),
        ({"nickname": "Johnny"}, "nickname"),
        ({"status": "archived"}, "status"),
    ],
)
def test_customer_create_validation(crm, change, field):
    body = {"first_name": "John", "last_name": "Doe"} | change
    body = {name: value for name, value in body.items() if value is not None}

    response = post(crm, "customers/", body)

    assert_error(response, 422, "validation_error")
    assert response.json()["detail"].startswith(f"{field}:")
    assert not CrmSimCustomer.objects.exists()


@pytest.mark.parametrize("zip_code", ["78701", "787011234", "78701-1234"])
def test_customer_zip_of_5_or_9_digits(crm, zip_code):
    response = post(crm, "customers/", {"first_name": "A", "last_name": "B", "zip": zip_code})

    assert response.status_code == 201


def test_email_error_has_the_seed_hint(crm):
    response = post(crm, "customers/", {"first_name": "A", "last_name": "B", "email": "x"})

    assert response.json()["hint"] == "Email must be a valid email address"


def test_malformed_json_is_a_400(crm):
    response = crm.post(BASE + "customers/", "{not json", content_type="application/json")

    assert_error(response, 400, "invalid_json")


def test_customer_list_envelope_and_page_size(crm):
    CrmSimCustomerFactory.create_batch(5)
    CrmSimCustomerFactory(client_id=OTHER_ACCOUNT)

    body = crm.get(BASE + "customers/", {"page": 2, "page_size": 2}).json()

    assert [body[key] for key in ("total", "page", "page_size", "total_pages")] == [5, 2, 2, 3]
    assert len(body["items"]) == 2
    assert crm.get(BASE + "customers/").json()["page_size"] == 20


@pytest.mark.parametrize(
    "query", [{"page_size": 0}, {"page_size": 101}, {"page": 0}, {"page": "two"}]
)
def test_page_and_page_size_out_of_range(crm, query):
    for path in ("customers/", "work-orders", "technicians/", "invoices/", "payments/"):
        assert_error(crm.get(BASE + path, query), 422, "validation_error")


@pytest.mark.parametrize(
    "search, expected",
    [
        ("jane@", ["Jane"]),
        ("ROE", ["Jane"]),
        ("jane roe", ["Jane"]),
        ("(512) 555-0199", ["Jane"]),
        ("5125550199", ["Jane"]),
        ("555", ["John", "Jane"]),
        ("nobody", []),
    ],
)
def test_customer_search_by_name_email_or_phone(crm, search, expected):
    CrmSimCustomerFactory(first_name="John", last_name="Doe", phone="512-555-0100")
    CrmSimCustomerFactory(
        first_name="Jane", last_name="Roe", email="jane@example.com", phone="512.555.0199"
    )

    items = crm.get(BASE + "customers/", {"search": search}).json()["items"]

    assert [item["first_name"] for item in items] == expected


def test_customer_status_filter(crm):
    CrmSimCustomerFactory(first_name="Active")
    CrmSimCustomerFactory(first_name="Gone", status="inactive")

    items = crm.get(BASE + "customers/", {"status": "inactive"}).json()["items"]

    assert [item["first_name"] for item in items] == ["Gone"]
    assert_error(crm.get(BASE + "customers/", {"status": "lost"}), 422, "validation_error")


def test_customer_list_is_deprecated_but_served(crm):
    response = crm.get(BASE + "customers/")

    assert response.status_code == 200
    assert response["Deprecation"] == "true"
    assert response["Sunset"] == "Sat, 01 Mar 2027 00:00:00 GMT"
    assert (
        response["Link"] == '<http://testserver/crm-sim/api/v3/customers>; rel="successor-version"'
    )
    customer = CrmSimCustomerFactory()
    assert "Deprecation" not in crm.get(BASE + f"customers/{customer.pk}")


def test_customer_patch_and_delete(crm):
    customer = CrmSimCustomerFactory()

    response = patch(
        crm, f"customers/{customer.pk}", {"phone": "(512) 555-0111", "status": "inactive"}
    )

    assert response.status_code == 200
    assert response.json()["phone"] == "(512) 555-0111"
    assert response.json()["status"] == "inactive"
    assert_error(patch(crm, f"customers/{customer.pk}", {"zip": "1"}), 422, "validation_error")
    assert crm.delete(BASE + f"customers/{customer.pk}").status_code == 204
    assert not CrmSimCustomer.objects.exists()


def test_customer_with_work_orders_is_not_deleted(crm):
    work_order = CrmSimWorkOrderFactory()

    response = crm.delete(BASE + f"customers/{work_order.customer_id}")

    assert_error(response, 422, "record_in_use")


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_another_accounts_customer_is_not_found(crm, method):
    theirs = CrmSimCustomerFactory(client_id=OTHER_ACCOUNT)

    response = (
        getattr(crm, method)(
            BASE + f"customers/{theirs.pk}",
            {} if method == "get" else "{}",
            content_type="application/json",
        )
        if method != "get"
        else crm.get(BASE + f"customers/{theirs.pk}")
    )

    assert_error(response, 404, "not_found")
    assert CrmSimCustomer.objects.filter(pk=theirs.pk).exists()


def test_a_read_only_client_may_read_but_not_write(crm, settings):
    settings.CRM_SIMULATOR_READ_ONLY_CLIENTS = [ACCOUNT]

    assert crm.get(BASE + "work-orders").status_code == 200
    assert_error(
        post(crm, "customers/", {"first_name": "A", "last_name": "B"}),
        403,
        "insufficient_permissions",
    )


# Work orders.


def test_work_order_create_draft_and_scheduled(crm):
    customer = CrmSimCustomerFactory()

    draft = post(crm, "work-orders", {"customer_id": str(customer.pk), "service_type": "Pumping"})
    scheduled = post(
        crm,
        "work-orders",
        {
            "customer_id": str(customer.pk),
            "service_type": "Pumping",
            "priority": "urgent",
            "scheduled_date": "2027-01-20",
            "time_window_start": "09:00",
            "notes": "Customer requested morning appointment",
        },
    )

    assert draft.status_code == 201, draft.content
    assert draft.json()["status"] == "draft"
    assert draft.json()["priority"] == "normal"
    body = scheduled.json()
    assert body["status"] == "scheduled"
    assert body["scheduled_date"] == "2027-01-20"
    assert body["time_window_start"] == "09:00"
    assert body["completed_at"] is None
    assert set(body) == {
        "id",
        "customer_id",
        "status",
        "priority",
        "service_type",
        "scheduled_date",
        "time_window_start",
        "assigned_technician",
        "estimated_duration_hours",
        "notes",
        "created_at",
        "updated_at",
        "completed_at",
    }


@pytest.mark.parametrize(
    "change, field",
    [
        ({"service_type": None}, "service_type"),
        ({"service_type": 5}, "service_type"),
        ({"priority": "asap"}, "priority"),
        ({"scheduled_date": "01/20/2027"}, "scheduled_date"),
        ({"time_window_start": "9am"}, "time_window_start"),
        ({"customer_id": "999999"}, "customer_id"),
        ({"customer_id": 1}, "customer_id"),
        ({"assigned_technician": "tech-999999"}, "assigned_technician"),
        ({"status": "completed"}, "status"),
    ],
)
def test_work_order_create_validation(crm, change, field):
    customer = CrmSimCustomerFactory()
    body = {"customer_id": str(customer.pk), "service_type": "Pumping"} | change
    body = {name: value for name, value in body.items() if value is not None}

    response = post(crm, "work-orders", body)

    assert_error(response, 422, "validation_error")
    assert response.json()["detail"].startswith(f"{field}:")


def test_work_order_for_another_accounts_customer_is_refused(crm):
    theirs = CrmSimCustomerFactory(client_id=OTHER_ACCOUNT)

    response = post(crm, "work-orders", {"customer_id": str(theirs.pk), "service_type": "Pumping"})

    assert_error(response, 422, "validation_error")


def test_work_order_list_filters(crm):
    technician = CrmSimTechnicianFactory()
    first = CrmSimWorkOrderFactory(
        status="scheduled", scheduled_date=date(2027, 1, 20), technician=technician
    )
    second = CrmSimWorkOrderFactory()
    CrmSimWorkOrderFactory(customer=CrmSimCustomerFactory(client_id=OTHER_ACCOUNT))

    def ids(**query):
        return [item["id"] for item in crm.get(BASE + "work-orders", query).json()["items"]]

    assert ids() == [str(first.pk), str(second.pk)]
    assert ids(status="draft") == [str(second.pk)]
    assert ids(scheduled_date="2027-01-20") == [str(first.pk)]
    assert ids(customer_id=str(second.customer_id)) == [str(second.pk)]
    assert ids(technician_id=technician.api_id) == [str(first.pk)]
    assert ids(customer_id="abc") == []
    assert_error(crm.get(BASE + "work-orders", {"status": "open"}), 422, "validation_error")
    assert_error(
        crm.get(BASE + "work-orders", {"scheduled_date": "2027-1-2x"}), 422, "validation_error"
    )


def test_work_order_moves_along_by_patch(crm):
    work_order = CrmSimWorkOrderFactory()
    path = f"work-orders/{work_order.pk}"

    assert (
        patch(crm, path, {"status": "scheduled", "scheduled_date": "2027-01-20"}).json()["status"]
        == "scheduled"
    )
    assert patch(crm, path, {"status": "in_progress"}).json()["status"] == "in_progress"
    completed = patch(crm, path, {"status": "completed", "notes": "Done"}).json()

    assert completed["status"] == "completed"
    assert completed["notes"] == "Done"
    assert completed["completed_at"].endswith("Z")


@pytest.mark.parametrize(
    "status, body",
    [
        ("draft", {"status": "in_progress"}),
        ("draft", {"status": "scheduled"}),  # no date to schedule it on
        ("scheduled", {"status": "completed"}),
        ("completed", {"status": "cancelled"}),
        ("cancelled", {"status": "scheduled"}),
        ("in_progress", {"status": "draft"}),
    ],
)
def test_invalid_status_moves_are_refused(crm, status, body):
    work_order = CrmSimWorkOrderFactory(status=status)

    response = patch(crm, f"work-orders/{work_order.pk}", body)

    assert_error(response, 422, "invalid_status_transition")
    work_order.refresh_from_db()
    assert work_order.status == status


def test_any_open_work_order_may_be_cancelled(crm):
    work_order = CrmSimWorkOrderFactory(status="in_progress")

    assert (
        patch(crm, f"work-orders/{work_order.pk}", {"status": "cancelled"}).json()["status"]
        == "cancelled"
    )


def test_work_order_patch_and_delete_of_another_account_are_not_found(crm):
    theirs = CrmSimWorkOrderFactory(customer=CrmSimCustomerFactory(client_id=OTHER_ACCOUNT))

    assert_error(patch(crm, f"work-orders/{theirs.pk}", {"notes": "x"}), 404, "not_found")
    assert_error(crm.delete(BASE + f"work-orders/{theirs.pk}"), 404, "not_found")
    assert_error(crm.get(BASE + "work-orders/abc"), 404, "not_found")


def test_work_order_delete(crm):
    work_order = CrmSimWorkOrderFactory()

    assert crm.delete(BASE + f"work-orders/{work_order.pk}").status_code == 204
    assert not CrmSimWorkOrder.objects.exists()


# Technicians.


def test_technicians_roster_search_and_active_only(crm):
    everyone = crm.get(BASE + "technicians/").json()

    assert everyone["total"] == 3
    assert everyone["items"][0] | {"id": "x"} == {
        "id": "x",
        "first_name": "Mike",
        "last_name": "Johnson",
        "email": "mike@example.com",
        "phone": "512-555-0101",
        "skills": ["HVAC", "Plumbing", "Septic"],
        "is_active": True,
        "hourly_rate": 45.0,
    }
    assert everyone["items"][0]["id"].startswith("tech-")
    assert crm.get(BASE + "technicians/", {"active_only": "true"}).json()["total"] == 2
    assert [
        t["first_name"]
        for t in crm.get(BASE + "technicians/", {"search": "mike j"}).json()["items"]
    ] == ["Mike"]


# Invoices and payments.


def test_invoice_create_send_and_mark_paid(crm):
    work_order = CrmSimWorkOrderFactory(status="completed")

    created = post(
        crm, "invoices/", {"work_order_id": str(work_order.pk), "subtotal": 250.00, "tax": 20.63}
    )

    assert created.status_code == 201, created.content
    invoice = created.json()
    assert invoice["id"].startswith("inv-")
    assert (invoice["status"], invoice["subtotal"], invoice["tax"], invoice["total"]) == (
        "draft",
        250.0,
        20.63,
        270.63,
    )
    assert invoice["paid_at"] is None
    sent = post(crm, f"invoices/{invoice['id']}/send", {})
    assert sent.json()["status"] == "sent"
    assert_error(post(crm, f"invoices/{invoice['id']}/send", {}), 422, "invalid_status_transition")
    paid = post(crm, f"invoices/{invoice['id']}/mark-paid", {}).json()
    assert paid["status"] == "paid"
    assert paid["paid_at"].endswith("Z")
    assert_error(
        post(crm, f"invoices/{invoice['id']}/mark-paid", {}), 422, "invalid_status_transition"
    )


def test_invoice_amounts_are_computed_when_not_given(crm):
    work_order = CrmSimWorkOrderFactory(status="completed")

    invoice = post(crm, "invoices/", {"work_order_id": str(work_order.pk)}).json()

    # The trip charge and 2 hours at the rate without a technician, Texas's 8.25% tax.
    assert (invoice["subtotal"], invoice["tax"], invoice["total"]) == (259.0, 21.37, 280.37)


@pytest.mark.parametrize(
    "body, code",
    [
        ({"subtotal": "250.00"}, "validation_error"),
        ({"subtotal": -1}, "validation_error"),
        ({"tax": 1.234}, "validation_error"),
        ({"work_order_id": "999999"}, "validation_error"),
        ({"work_order_status": "x"}, "validation_error"),
    ],
)
def test_invoice_create_validation(crm, body, code):
    work_order = CrmSimWorkOrderFactory(status="completed")

    response = post(crm, "invoices/", {"work_order_id": str(work_order.pk)} | body)

    assert_error(response, 422, code)


def test_only_a_completed_work_order_is_invoiced_once(crm):
    open_one = CrmSimWorkOrderFactory(status="scheduled")
    invoiced = CrmSimInvoiceFactory().work_order

    assert_error(
        post(crm, "invoices/", {"work_order_id": str(open_one.pk)}), 422, "work_order_not_completed"
    )
    assert_error(
        post(crm, "invoices/", {"work_order_id": str(invoiced.pk)}), 422, "already_invoiced"
    )


def test_invoice_list_filters_and_overdue(crm):
    draft = CrmSimInvoiceFactory()
    overdue = CrmSimInvoiceFactory(status="sent", due_date=date.today() - timedelta(days=1))
    sent = CrmSimInvoiceFactory(status="sent")
    CrmSimInvoiceFactory(work_order__customer__client_id=OTHER_ACCOUNT)

    def ids(**query):
        return [item["id"] for item in crm.get(BASE + "invoices/", query).json()["items"]]

    assert ids() == [draft.api_id, overdue.api_id, sent.api_id]
    assert ids(status="overdue") == [overdue.api_id]
    assert ids(status="sent") == [sent.api_id]
    assert ids(customer_id=str(draft.customer_id)) == [draft.api_id]
    assert (
        crm.get(BASE + "invoices/", {"status": "overdue"}).json()["items"][0]["status"] == "overdue"
    )
    assert_error(crm.get(BASE + "invoices/", {"status": "void"}), 422, "validation_error")


def test_another_accounts_invoice_is_not_found(crm):
    theirs = CrmSimInvoiceFactory(work_order__customer__client_id=OTHER_ACCOUNT)

    assert_error(post(crm, f"invoices/{theirs.api_id}/send", {}), 404, "not_found")
    assert_error(post(crm, f"invoices/{theirs.api_id}/mark-paid", {}), 404, "not_found")


def test_payments_settle_an_invoice(crm):
    invoice = CrmSimInvoiceFactory(status="sent")

    first = post(
        crm,
        "payments/",
        {"invoice_id": invoice.api_id, "amount": 100, "method": "card", "reference": "ch_1"},
    )
    assert first.status_code == 201, first.content
    assert first.json()["id"].startswith("pay-")
    assert first.json()["amount"] == 100.0
    invoice.refresh_from_db()
    assert invoice.status == CrmSimInvoice.Status.SENT
    assert_error(
        post(crm, "payments/", {"invoice_id": invoice.api_id, "amount": 200, "method": "card"}),
        422,
        "amount_exceeds_balance",
    )
    post(crm, "payments/", {"invoice_id": invoice.api_id, "amount": 170.63, "method": "check"})

    invoice.refresh_from_db()
    assert invoice.status == CrmSimInvoice.Status.PAID
    listed = crm.get(BASE + "payments/", {"invoice_id": invoice.api_id}).json()
    assert [p["amount"] for p in listed["items"]] == [100.0, 170.63]


@pytest.mark.parametrize(
    "body",
    [{"amount": 0}, {"amount": "10"}, {"method": "bitcoin"}, {"invoice_id": "inv-999999"}],
)
def test_payment_validation(crm, body):
    invoice = CrmSimInvoiceFactory(status="sent")

    response = post(
        crm, "payments/", {"invoice_id": invoice.api_id, "amount": 10, "method": "card"} | body
    )

    assert_error(response, 422, "validation_error")


# Webhooks.


def test_webhook_registration(crm):
    response = post(
        crm,
        "webhooks",
        {
            "url": "https://your-server.com/webhook",
            "events": ["work_order.created", "work_order.completed", "invoice.paid"],
            "secret": "your-webhook-secret",
        },
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["id"].startswith("wh-")
    assert "secret" not in body
    assert CrmSimWebhook.objects.get().client_id == ACCOUNT


@pytest.mark.parametrize(
    "change",
    [
        {"url": "ftp://example.com/hook"},
        {"url": "not a url"},
        {"events": []},
        {"events": ["work_order.deleted"]},
        {"secret": "short"},
        {"format": "json"},
    ],
)
def test_webhook_registration_validation(crm, change):
    body = {
        "url": "https://example.com/hook",
        "events": ["invoice.paid"],
        "secret": "long-enough-secret",
    }

    assert_error(post(crm, "webhooks", body | change), 422, "validation_error")


# Rate limits.


@pytest.mark.parametrize(
    "method, path",
    [("get", "customers/"), ("get", "work-orders"), ("get", "nowhere"), ("post", "webhooks")],
)
def test_rate_limit_headers_on_every_response(crm, method, path):
    response = getattr(crm, method)(BASE + path)

    assert response["X-RateLimit-Limit"] == "1000"
    assert int(response["X-RateLimit-Remaining"]) < 1000
    assert int(response["X-RateLimit-Reset"]) % 60 == 0


def test_unauthenticated_requests_have_the_lower_limit():
    response = Client().get(BASE + "work-orders")

    assert response.status_code == 401
    assert response["X-RateLimit-Limit"] == "100"
    assert response["X-RateLimit-Remaining"] == "99"


def test_over_the_limit_is_a_429_until_the_window_ends(crm, settings, monkeypatch):
    settings.CRM_SIMULATOR_RATE_LIMIT_PER_MINUTE = 3
    monkeypatch.setattr(api, "clock", lambda: 6_000_010.0)
    responses = [crm.get(BASE + "work-orders") for _ in range(4)]

    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert [r["X-RateLimit-Remaining"] for r in responses] == ["2", "1", "0", "0"]
    assert_error(responses[3], 429, "rate_limit_exceeded")
    assert responses[3]["Retry-After"] == "50"
    assert responses[3]["X-RateLimit-Reset"] == "6000060"
    monkeypatch.setattr(api, "clock", lambda: 6_000_060.0)
    assert crm.get(BASE + "work-orders").status_code == 200


def test_the_token_endpoint_counts_as_unauthenticated(settings, monkeypatch):
    settings.CRM_SIMULATOR_UNAUTHENTICATED_RATE_LIMIT_PER_MINUTE = 1
    monkeypatch.setattr(api, "clock", lambda: 6_000_010.0)
    client = Client()
    get_token(client)

    response = client.post(BASE + "oauth/token", {"grant_type": "client_credentials"})

    assert_error(response, 429, "rate_limit_exceeded")

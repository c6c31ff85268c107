"""The CRM provider against seed 002's API, served by ``responses``: finding or creating the
customer, creating the work order once across retries, reading statuses and revenue back,
cancelling, and the provider's webhooks."""

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import requests
import responses
from responses import matchers

from integrations.crm.provider import CrmProvider
from integrations.crm.webhooks import crm_payload_signed
from integrations.providers import (
    Address,
    Customer,
    PermanentProviderError,
    ProviderAccount,
    ProviderJobStatus,
    RetryableProviderError,
    WebhookRejected,
    Work,
)
from integrations.registry import provider_for

API_URL = "https://crm.example.com/api/v2"
CUSTOMERS_URL = f"{API_URL}/customers/"
WORK_ORDERS_URL = f"{API_URL}/work-orders"
INVOICES_URL = f"{API_URL}/invoices/"
KEY = "6f1c2a51-routing"
REFERENCE = f"TradeEngage routing {KEY}"
SETTINGS = {
    "api_url": API_URL,
    "client_id": "te-client",
    "client_secret": "crm-client-secret",
    "webhook_secret": "whsec-test",
}
WORK = Work(
    idempotency_key=KEY,
    summary="Water heater leaking in the garage",
    customer=Customer(name="Jane Q Homeowner", phone="(512) 555-0100", email="Jane@Example.com"),
    address=Address(street="1 Main St", city="Austin", state="TX", zip_code="78701-1234"),
    category="plumbing",
)


@pytest.fixture
def http():
    with responses.RequestsMock() as mock:
        mock.post(f"{API_URL}/oauth/token", json={"access_token": "token-1", "expires_in": 3600})
        yield mock


def provider(**settings) -> CrmProvider:
    return provider_for(
        ProviderAccount(
            company_id="c1",
            company_name="Austin Plumbing",
            provider_type="crm",
            settings={**SETTINGS, **settings},
        )
    )


def page(items, *, page=1, total_pages=1, total=None):
    return {
        "items": items,
        "total": len(items) if total is None else total,
        "page": page,
        "page_size": 100,
        "total_pages": total_pages,
    }


def query(**params):
    return [matchers.query_param_matcher(params, strict_match=False)]


def serve_customer_search(http, search, pages):
    for number, items in enumerate(pages, start=1):
        http.get(
            CUSTOMERS_URL,
            json=page(items, page=number, total_pages=len(pages)),
            match=query(search=search, page=str(number)),
        )


def serve_work_orders(http, customer_id, items):
    return http.get(WORK_ORDERS_URL, json=page(items), match=query(customer_id=customer_id))


def test_the_registry_serves_crm_companies_with_the_crm_provider():
    assert isinstance(provider(), CrmProvider)
    assert CrmProvider.credential_keys == ("client_id", "client_secret", "webhook_secret")


def test_the_customer_is_matched_exactly_by_email_across_pages(http):
    near_miss = {"id": "c-9", "email": "jane@example.com.au", "phone": "512-555-0100"}
    serve_customer_search(
        http, "Jane@Example.com", [[near_miss], [{"id": "c-1", "email": "jane@example.com"}]]
    )
    serve_work_orders(http, "c-1", [])
    created = http.post(WORK_ORDERS_URL, status=201, json={"id": "wo-1", "customer_id": "c-1"})

    assert provider().create_job(work=WORK, timeout=10) == "wo-1"

    assert json.loads(created.calls[0].request.body) == {
        "customer_id": "c-1",
        "service_type": "General Service",
        "priority": "normal",
        "notes": f"Water heater leaking in the garage\n\n{REFERENCE}",
    }


def test_the_customer_is_matched_by_phone_digits_when_no_email_matches(http):
    serve_customer_search(http, "Jane@Example.com", [[]])
    serve_customer_search(
        http,
        "(512) 555-0100",
        [[{"id": "c-8", "phone": "512-555-0199"}, {"id": "c-2", "phone": "+1 512 555 0100"}]],
    )
    serve_work_orders(http, "c-2", [])
    http.post(WORK_ORDERS_URL, status=201, json={"id": "wo-2"})

    assert provider().create_job(work=WORK, timeout=10) == "wo-2"


def test_a_customer_is_created_when_none_matches(http):
    serve_customer_search(http, "Jane@Example.com", [[]])
    serve_customer_search(http, "(512) 555-0100", [[]])
    customer = http.post(CUSTOMERS_URL, status=201, json={"id": "c-3"})
    serve_work_orders(http, "c-3", [])
    http.post(WORK_ORDERS_URL, status=201, json={"id": "wo-3"})

    assert (
        provider(service_types={"plumbing": "Plumbing Repair"}).create_job(work=WORK, timeout=10)
        == "wo-3"
    )

    assert json.loads(customer.calls[0].request.body) == {
        "first_name": "Jane",
        "last_name": "Q Homeowner",
        "email": "Jane@Example.com",
        "phone": "(512) 555-0100",
        "address": "1 Main St",
        "city": "Austin",
        "state": "TX",
        "zip": "78701",
    }
    assert json.loads(http.calls[-1].request.body)["service_type"] == "Plumbing Repair"


def test_the_work_order_is_created_once_across_a_lost_answer(http):
    serve_customer_search(http, "Jane@Example.com", [[{"id": "c-1", "email": "jane@example.com"}]])
    serve_customer_search(http, "Jane@Example.com", [[{"id": "c-1", "email": "jane@example.com"}]])
    http.get(WORK_ORDERS_URL, json=page([]), match=query(customer_id="c-1"))
    lost = http.post(WORK_ORDERS_URL, body=requests.ReadTimeout("read timed out"))
    other = {"id": "wo-0", "notes": "TradeEngage routing 6f1c2a51-routing-2"}
    mine = {"id": "wo-7", "notes": f"Water heater leaking\n\n{REFERENCE}"}
    http.get(
        WORK_ORDERS_URL,
        json=page([other], page=1, total_pages=2),
        match=query(customer_id="c-1", page="1"),
    )
    http.get(
        WORK_ORDERS_URL,
        json=page([mine], page=2, total_pages=2),
        match=query(customer_id="c-1", page="2"),
    )
    crm = provider()

    with pytest.raises(RetryableProviderError):
        crm.create_job(work=WORK, timeout=10)
    assert crm.create_job(work=WORK, timeout=10) == "wo-7"

    assert lost.call_count == 1


def serve_work_order(http, work_order):
    http.get(f"{WORK_ORDERS_URL}/{work_order['id']}", json=work_order)


@pytest.mark.parametrize("status", ["draft", "scheduled", "in_progress"])
def test_unfinished_work_orders_are_open(http, status):
    serve_work_order(http, {"id": "wo-1", "customer_id": "c-1", "status": status})

    result = provider().get_job_status(external_id="wo-1", timeout=10)

    assert result == ProviderJobStatus(
        external_id="wo-1",
        status=ProviderJobStatus.OPEN,
        provider_job_id="wo-1",
        provider_status=status,
    )


def test_a_cancelled_work_order_is_the_company_declining(http):
    serve_work_order(http, {"id": "wo-1", "customer_id": "c-1", "status": "cancelled"})

    result = provider().get_job_status(external_id="wo-1", timeout=10)

    assert result.status == ProviderJobStatus.CANCELLED
    assert result.reason == "Work order cancelled in the CRM"


def test_a_completed_work_order_has_the_revenue_of_its_paid_and_sent_invoices(http):
    serve_work_order(
        http,
        {
            "id": "wo-1",
            "customer_id": "c-1",
            "status": "completed",
            "completed_at": "2026-11-20T15:30:00Z",
        },
    )
    invoices = [
        [
            {"id": "i1", "work_order_id": "wo-1", "status": "paid", "total": 270.63},
            {"id": "i2", "work_order_id": "wo-1", "status": "draft", "total": 1000},
            {"id": "i3", "work_order_id": "wo-2", "status": "paid", "total": 55},
        ],
        [
            {"id": "i4", "work_order_id": "wo-1", "status": "sent", "total": "100.00"},
            {"id": "i5", "work_order_id": "wo-1", "status": "cancelled", "total": 999},
        ],
    ]
    for number, items in enumerate(invoices, start=1):
        http.get(
            INVOICES_URL,
            json=page(items, page=number, total_pages=2),
            match=query(customer_id="c-1", page=str(number)),
        )

    result = provider().get_job_status(external_id="wo-1", timeout=10)

    assert result.status == ProviderJobStatus.COMPLETED
    assert result.completed_at == datetime(2026, 11, 20, 15, 30, tzinfo=UTC)
    assert result.revenue == Decimal("370.63")
    assert result.provider_job_id == "wo-1"


def test_a_completed_work_order_without_invoices_has_no_revenue_yet(http):
    serve_work_order(
        http,
        {
            "id": "wo-1",
            "customer_id": "c-1",
            "status": "completed",
            "updated_at": "2026-11-21T08:00:00",
        },
    )
    http.get(INVOICES_URL, json=page([]))

    result = provider().get_job_status(external_id="wo-1", timeout=10)

    assert result.revenue is None
    assert result.completed_at == datetime(2026, 11, 21, 8, 0, tzinfo=UTC)


def test_many_statuses_read_invoices_once_per_customer_and_leave_out_unknown_ones(http):
    for work_order_id in ("wo-1", "wo-2"):
        serve_work_order(http, {"id": work_order_id, "customer_id": "c-1", "status": "completed"})
    serve_work_order(http, {"id": "wo-3", "customer_id": "c-2", "status": "scheduled"})
    http.get(
        f"{WORK_ORDERS_URL}/wo-4",
        status=404,
        json={"error": "not_found", "detail": "No such work order", "hint": ""},
    )
    invoices = http.get(
        INVOICES_URL,
        json=page(
            [
                {"work_order_id": "wo-1", "status": "paid", "total": 10},
                {"work_order_id": "wo-2", "status": "sent", "total": 20},
            ]
        ),
        match=query(customer_id="c-1"),
    )

    statuses = provider().get_job_statuses(
        external_ids=["wo-1", "wo-2", "wo-3", "wo-4"], timeout=10
    )

    assert {key: value.status for key, value in statuses.items()} == {
        "wo-1": "completed",
        "wo-2": "completed",
        "wo-3": "open",
    }
    assert statuses["wo-1"].revenue == Decimal("10")
    assert statuses["wo-2"].revenue == Decimal("20")
    assert invoices.call_count == 1


def test_cancelling_patches_the_status_and_appends_the_reason(http):
    serve_work_order(http, {"id": "wo-1", "status": "scheduled", "notes": f"Leak\n\n{REFERENCE}"})
    patch = http.patch(f"{WORK_ORDERS_URL}/wo-1", json={"id": "wo-1", "status": "cancelled"})

    provider().cancel_job(external_id="wo-1", reason="Homeowner fixed it", timeout=10)

    assert json.loads(patch.calls[0].request.body) == {
        "status": "cancelled",
        "notes": f"Leak\n\n{REFERENCE}\n\nCancelled through TradeEngage: Homeowner fixed it",
    }


def test_health_never_raises_without_configuration():
    crm = CrmProvider(ProviderAccount("c1", "Austin Plumbing", "crm", settings={}))

    assert crm.health()["status"] == "unhealthy"


def test_a_validation_error_on_create_is_permanent(http):
    serve_customer_search(http, "Jane@Example.com", [[{"id": "c-1", "email": "jane@example.com"}]])
    serve_work_orders(http, "c-1", [])
    http.post(
        WORK_ORDERS_URL,
        status=422,
        json={"error": "validation_error", "detail": "Unknown service type", "hint": "See docs"},
    )

    with pytest.raises(PermanentProviderError, match="Unknown service type"):
        provider().create_job(work=WORK, timeout=10)


def test_webhooks_are_verified_with_the_accounts_secret():
    payload = {
        "event": "work_order.completed",
        "data": {"work_order_id": "wo-1", "completed_at": "2026-11-20T15:30:00Z"},
    }
    body, headers = crm_payload_signed(secret="whsec-test", payload=payload)

    update = provider().webhook_status_update(body=body, headers=headers)

    assert update.status == ProviderJobStatus.COMPLETED
    assert update.external_ids == ("wo-1",)
    with pytest.raises(WebhookRejected):
        provider(webhook_secret="other").webhook_status_update(body=body, headers=headers)


def test_webhooks_are_rejected_without_a_configured_secret():
    body, headers = crm_payload_signed(secret="whsec-test", payload={"event": "x", "data": {}})

    with pytest.raises(WebhookRejected, match="connect"):
        provider(webhook_secret="").webhook_status_update(body=body, headers=headers)

"""The CRM's webhook receiver over HTTP (seed 002): what it refuses, in seed 002's error shape.
The signature scheme and the payload's parsing are tested with the CRM integration."""

import pytest

from jobs.tests.factories import CompanyFactory

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

"""The company admin's "Test connection" action: each selected ServiceTitan company's account
tested against ServiceTitan (served by ``responses``), its report shown as messages."""

import pytest
import responses
from django.contrib.messages import constants
from django.urls import reverse
from responses import matchers

from integrations.servicetitan import ratelimit
from jobs.models import SkillLevel
from jobs.tests.factories import CompanyFactory, CompanySkillFactory, category, skill

AUTH_URL = "https://auth-integration.servicetitan.io"
API_URL = "https://api-integration.servicetitan.io"
TOKEN_URL = f"{AUTH_URL}/connect/token"
TENANT = "1234567"
SECRET = "cs1.very-secret"
CREDENTIALS = {
    "client_id": "cid.test-client",
    "client_secret": SECRET,
    "app_key": "ak1.app-key",
    "tenant_id": TENANT,
    "booking_provider_id": "89",
}


@pytest.fixture(autouse=True)
def _process_local_rate_limit(settings, monkeypatch):
    settings.REDIS_URL = ""
    monkeypatch.setattr(ratelimit, "_local_buckets", {})


@pytest.fixture
def http():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def servicetitan_company(name="Phoenix Plumbing", **provider_settings):
    company = CompanyFactory(
        name=name,
        primary_category=category("plumbing"),
        skills={"plumbing": SkillLevel.EXPERT},
        provider_type="servicetitan",
        provider_settings={"api_url": API_URL, "auth_url": AUTH_URL, **provider_settings},
        provider_credentials=CREDENTIALS,
    )
    return company


def page(records):
    return {"page": 1, "pageSize": 500, "hasMore": False, "data": records}


def serve_tenant(http):
    http.post(TOKEN_URL, json={"access_token": "token-1", "expires_in": 900})
    tenant = f"{API_URL}/{{}}/v2/tenant/{TENANT}"
    http.get(f"{tenant.format('crm')}/booking-provider/89/bookings", json=page([]))
    http.get(
        f"{tenant.format('marketing')}/campaigns",
        json=page([{"id": 31, "name": "Google Ads", "active": False}]),
    )
    http.get(
        f"{tenant.format('settings')}/business-units",
        json=page([{"id": 41, "name": "Service", "active": True}]),
    )
    http.get(
        f"{tenant.format('jpm')}/job-types",
        json=page([{"id": 62, "name": "Plumbing Repair"}]),
        match=[matchers.query_param_matcher({"page": "1", "pageSize": "500"})],
    )
    http.get(
        f"{tenant.format('jpm')}/job-cancel-reasons",
        json=page([{"id": 11, "name": "Customer cancelled", "active": True}]),
    )


def run_test_connection(ops_client, companies):
    return ops_client.post(
        reverse("admin:jobs_company_changelist"),
        {"action": "test_connection", "_selected_action": [str(c.id) for c in companies]},
        follow=True,
    )


def shown(response):
    return [(message.level, message.message) for message in response.context["messages"]]


@pytest.mark.django_db
def test_the_report_of_a_servicetitan_company_is_shown_at_its_levels(ops_client, http):
    serve_tenant(http)
    company = servicetitan_company(
        campaign_id=31, business_unit_id=41, job_types_by_category={"plumbing": 62}
    )

    response = run_test_connection(ops_client, [company])

    assert response.status_code == 200
    messages = shown(response)
    assert (
        constants.SUCCESS,
        f"Phoenix Plumbing: Authenticated to ServiceTitan tenant {TENANT}.",
    ) in messages
    assert (
        constants.ERROR,
        "Phoenix Plumbing: campaign_id 31 (Google Ads) is inactive.",
    ) in messages
    assert (
        constants.SUCCESS,
        "Phoenix Plumbing: job_types_by_category[plumbing] 62 is active job type Plumbing Repair.",
    ) in messages
    assert (
        constants.WARNING,
        "Phoenix Plumbing: No cancel_reason_id: cancellations use the first active job cancel "
        "reason, 11 (Customer cancelled).",
    ) in messages
    assert SECRET not in response.text


@pytest.mark.django_db
def test_the_companys_trades_without_a_job_type_are_warned_about(ops_client, http):
    serve_tenant(http)
    company = servicetitan_company(
        campaign_id=31, business_unit_id=41, job_types_by_category={"plumbing": 62}
    )
    CompanySkillFactory(company=company, skill=skill("ac_repair"))

    messages = shown(run_test_connection(ops_client, [company]))

    warnings = [text for level, text in messages if level == constants.WARNING]
    assert any(
        text.startswith("Phoenix Plumbing: No job type for category hvac") for text in warnings
    )
    assert not any("No job type for category plumbing" in text for text in warnings)


@pytest.mark.django_db
def test_a_broken_account_is_an_error_message(ops_client, http):
    http.post(TOKEN_URL, status=401, json={"error": "invalid_client"})
    company = servicetitan_company()

    messages = shown(run_test_connection(ops_client, [company]))

    [(level, text)] = messages
    assert level == constants.ERROR
    assert text.startswith("Phoenix Plumbing: Not authenticated: ")
    assert "invalid_client" in text
    assert SECRET not in text


@pytest.mark.django_db
def test_a_company_of_another_provider_gets_a_warning_and_no_request(ops_client, http):
    mock_company = CompanyFactory(name="Mocked Co", provider_type="mock")
    unconfigured = CompanyFactory(name="Paper Co", provider_type="")

    messages = shown(run_test_connection(ops_client, [mock_company, unconfigured]))

    assert sorted(messages) == [
        (
            constants.WARNING,
            "Mocked Co: Test connection checks ServiceTitan accounts; this company's "
            "field-service system is Mock (in-process).",
        ),
        (
            constants.WARNING,
            "Paper Co: Test connection checks ServiceTitan accounts; this company's "
            "field-service system is none.",
        ),
    ]
    assert len(http.calls) == 0


@pytest.mark.django_db
def test_the_action_tests_each_selected_company(ops_client, http):
    serve_tenant(http)
    first = servicetitan_company(name="First Plumbing", campaign_id=31)
    second = servicetitan_company(name="Second Plumbing", campaign_id=31)

    messages = shown(run_test_connection(ops_client, [first, second]))

    authenticated = [text for _, text in messages if "Authenticated" in text]
    assert sorted(authenticated) == [
        f"First Plumbing: Authenticated to ServiceTitan tenant {TENANT}.",
        f"Second Plumbing: Authenticated to ServiceTitan tenant {TENANT}.",
    ]

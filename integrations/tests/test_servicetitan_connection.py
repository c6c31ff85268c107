"""The Test connection report of a ServiceTitan account, against ServiceTitan's HTTP contract
served by ``responses``."""

import pytest
import responses
from responses import matchers

from integrations.servicetitan import ratelimit
from integrations.servicetitan.connection import (
    ERROR,
    SUCCESS,
    WARNING,
    servicetitan_connection_test,
)

AUTH_URL = "https://auth-integration.servicetitan.io"
API_URL = "https://api-integration.servicetitan.io"
TOKEN_URL = f"{AUTH_URL}/connect/token"
TENANT = "1234567"
BOOKINGS_URL = f"{API_URL}/crm/v2/tenant/{TENANT}/booking-provider/89/bookings"
CAMPAIGNS_URL = f"{API_URL}/marketing/v2/tenant/{TENANT}/campaigns"
BUSINESS_UNITS_URL = f"{API_URL}/settings/v2/tenant/{TENANT}/business-units"
JOB_TYPES_URL = f"{API_URL}/jpm/v2/tenant/{TENANT}/job-types"
CANCEL_REASONS_URL = f"{API_URL}/jpm/v2/tenant/{TENANT}/job-cancel-reasons"
SECRET = "cs1.very-secret"
APP_KEY = "ak1.app-key"
OPTIONS = {
    "api_url": API_URL,
    "auth_url": AUTH_URL,
    "client_id": "cid.test-client",
    "client_secret": SECRET,
    "app_key": APP_KEY,
    "tenant_id": TENANT,
    "booking_provider_id": "89",
}
MAPPING = {
    "campaign_id": 31,
    "business_unit_id": 41,
    "business_units_by_trade": {"plumbing": 44},
    "job_types_by_category": {"plumbing": 62},
    "cancel_reason_id": "11",
}
CAMPAIGNS = [
    {"id": 31, "name": "Google Ads", "active": True, "modifiedOn": "2026-01-01T00:00:00Z"},
    {"id": 32, "name": "Yellow Pages", "active": False, "modifiedOn": "2026-01-01T00:00:00Z"},
]
BUSINESS_UNITS = [
    {"id": 41, "name": "Residential Service", "active": True},
    {"id": 44, "name": "Plumbing", "active": True},
]
JOB_TYPES = [{"id": 62, "name": "Plumbing Repair", "modifiedOn": "2026-01-01T00:00:00Z"}]
CANCEL_REASONS = [
    {"id": 8, "name": "Weather", "active": False},
    {"id": 11, "name": "Customer cancelled", "active": True},
]


@pytest.fixture(autouse=True)
def _process_local_rate_limit(settings, monkeypatch):
    settings.REDIS_URL = ""
    monkeypatch.setattr(ratelimit, "_local_buckets", {})


@pytest.fixture
def http():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def page(records, has_more=False, number=1, size=500):
    return {"page": number, "pageSize": size, "hasMore": has_more, "data": records}


def serve_tenant(
    http,
    campaigns=CAMPAIGNS,
    business_units=BUSINESS_UNITS,
    job_types=JOB_TYPES,
    cancel_reasons=CANCEL_REASONS,
):
    http.post(TOKEN_URL, json={"access_token": "token-1", "expires_in": 900})
    http.get(BOOKINGS_URL, json=page([], size=1), match=[params(page="1", pageSize="1")])
    for url, records, active in (
        (CAMPAIGNS_URL, campaigns, {"active": "Any"}),
        (BUSINESS_UNITS_URL, business_units, {"active": "Any"}),
        (JOB_TYPES_URL, job_types, {}),
        (CANCEL_REASONS_URL, cancel_reasons, {"active": "Any"}),
    ):
        http.get(url, json=page(records), match=[params(page="1", pageSize="500", **active)])


def params(**query):
    return matchers.query_param_matcher(query)


def levels(report):
    return {check.message: check.level for check in report.checks}


def messages_of(report, level):
    return [check.message for check in report.checks if check.level == level]


def test_a_good_tenant_reports_every_configured_id_found_and_active(http):
    serve_tenant(http)

    report = servicetitan_connection_test(options={**OPTIONS, **MAPPING}, trades=["plumbing"])

    assert report.authenticated
    assert report.ok
    assert messages_of(report, SUCCESS) == [
        f"Authenticated to ServiceTitan tenant {TENANT}.",
        "Booking provider 89 answers.",
        "campaign_id 31 is campaign Google Ads.",
        "business_unit_id 41 is business unit Residential Service.",
        "business_units_by_trade[plumbing] 44 is business unit Plumbing.",
        "job_types_by_category[plumbing] 62 is active job type Plumbing Repair.",
        "cancel_reason_id 11 is job cancel reason Customer cancelled.",
    ]
    assert messages_of(report, WARNING) == []


def test_every_request_carries_the_token_and_app_key_and_no_secret_is_reported(http):
    serve_tenant(http)

    report = servicetitan_connection_test(options={**OPTIONS, **MAPPING}, trades=["plumbing"])

    api_calls = [call for call in http.calls if call.request.url != TOKEN_URL]
    assert len(api_calls) == 5
    assert all(call.request.method == "GET" for call in api_calls)
    assert all(call.request.headers["ST-App-Key"] == APP_KEY for call in api_calls)
    assert all(call.request.headers["Authorization"] == "Bearer token-1" for call in api_calls)
    text = " ".join(check.message for check in report.checks)
    assert SECRET not in text
    assert APP_KEY not in text


def test_settings_lists_are_read_across_all_their_pages(http):
    serve_tenant(http)
    http.replace(
        responses.GET,
        CAMPAIGNS_URL,
        json=page(CAMPAIGNS[1:], has_more=True),
        match=[params(page="1", pageSize="500", active="Any")],
    )
    http.get(
        CAMPAIGNS_URL,
        json=page(CAMPAIGNS[:1], number=2),
        match=[params(page="2", pageSize="500", active="Any")],
    )

    report = servicetitan_connection_test(options={**OPTIONS, **MAPPING}, trades=["plumbing"])

    assert levels(report)["campaign_id 31 is campaign Google Ads."] == SUCCESS


def test_refused_credentials_are_reported_without_further_requests(http):
    http.post(TOKEN_URL, status=401, json={"error": "invalid_client"})

    report = servicetitan_connection_test(options={**OPTIONS, **MAPPING})

    assert not report.authenticated
    assert not report.ok
    [check] = report.checks
    assert check.level == ERROR
    assert check.message.startswith("Not authenticated: ")
    assert "invalid_client" in check.message
    assert SECRET not in check.message
    assert len(http.calls) == 1


def test_a_token_is_fetched_afresh_rather_than_taken_from_the_cache(http):
    serve_tenant(http)

    servicetitan_connection_test(options={**OPTIONS, **MAPPING})
    servicetitan_connection_test(options={**OPTIONS, **MAPPING})

    assert len([call for call in http.calls if call.request.url == TOKEN_URL]) == 2


def test_missing_credentials_are_reported_without_a_request(http, settings):
    settings.SERVICETITAN = {**settings.SERVICETITAN, "client_secret": "", "app_key": ""}

    report = servicetitan_connection_test(
        options={key: value for key, value in OPTIONS.items() if key != "app_key"}
    )

    assert [(check.level, check.message) for check in report.checks] == [
        (ERROR, "Not authenticated: app_key not configured.")
    ]
    assert len(http.calls) == 0


def test_missing_and_inactive_ids_are_errors(http):
    serve_tenant(http)
    options = {
        **OPTIONS,
        "campaign_id": 32,
        "business_unit_id": 99,
        "job_type_id": 63,
        "cancel_reason_id": "8",
    }

    report = servicetitan_connection_test(options=options, trades=["plumbing"])

    assert report.authenticated
    assert not report.ok
    assert messages_of(report, ERROR) == [
        "campaign_id 32 (Yellow Pages) is inactive.",
        f"business_unit_id 99 is no business unit of tenant {TENANT}.",
        f"job_type_id 63 is no active job type of tenant {TENANT}.",
        "cancel_reason_id 8 is an inactive job cancel reason: cancelling a job would be refused.",
    ]


def test_what_is_unmapped_is_a_warning(http):
    serve_tenant(http)
    options = {**OPTIONS, "business_units_by_trade": {"plumbing": 44}}

    report = servicetitan_connection_test(options=options, trades=["plumbing", "hvac"])

    assert report.ok
    assert messages_of(report, WARNING) == [
        "No campaign_id: bookings are sent without a campaign, for the office to choose one.",
        "No business unit for trade hvac (no business_unit_id default): its bookings have none "
        "unless business_units_by_zip matches their ZIP.",
        "No job type for category plumbing (no job_type_id default): ServiceTitan would land its "
        'bookings as job type "Unknown".',
        "No job type for category hvac (no job_type_id default): ServiceTitan would land its "
        'bookings as job type "Unknown".',
        "No cancel_reason_id: cancellations use the first active job cancel reason, 11 "
        "(Customer cancelled).",
    ]


def test_invalid_mapping_settings_are_errors_and_the_account_is_still_tested(http):
    serve_tenant(http)

    report = servicetitan_connection_test(
        options={**OPTIONS, "campaign_id": "Google Ads", "customer_type": "Business"}
    )

    assert report.authenticated
    assert messages_of(report, ERROR) == [
        "Setting campaign_id must be a ServiceTitan id (a positive whole number), not "
        "'Google Ads'.",
        "Setting customer_type must be Residential or Commercial, not 'Business'.",
    ]
    assert "Booking provider 89 answers." in messages_of(report, SUCCESS)


def test_a_wrong_booking_provider_and_an_unreadable_list_are_errors(http):
    serve_tenant(http)
    http.replace(
        responses.GET, BOOKINGS_URL, status=404, json={"title": "Not Found", "status": 404}
    )
    http.replace(
        responses.GET,
        CAMPAIGNS_URL,
        status=403,
        json={"title": "Forbidden", "status": 403, "errors": {}, "data": {}},
    )

    report = servicetitan_connection_test(options={**OPTIONS, **MAPPING}, trades=["plumbing"])

    errors = messages_of(report, ERROR)
    assert errors[0].startswith("Booking provider 89 does not answer: ")
    assert "HTTP 404" in errors[0]
    assert errors[1].startswith("Could not read the tenant's campaigns: ")
    assert "HTTP 403" in errors[1]
    # Ids of the lists that could be read are still checked.
    assert "business_unit_id 41 is business unit Residential Service." in messages_of(
        report, SUCCESS
    )


def test_an_outage_is_reported_not_raised(http):
    http.post(TOKEN_URL, status=503, body="upstream connect error")

    report = servicetitan_connection_test(options=OPTIONS)

    assert not report.authenticated
    assert "upstream connect error" in report.checks[0].message

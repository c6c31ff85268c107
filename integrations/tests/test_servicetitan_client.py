"""The ServiceTitan API client against ServiceTitan's HTTP contract, served by ``responses``: no
real network, no real sleeping (the rate limiter runs on a fake clock)."""

import json
import logging
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import redis
import requests
import responses
from django.core.cache.backends.locmem import LocMemCache
from responses import matchers

from integrations.providers import (
    PermanentProviderError,
    ProviderAccount,
    ProviderJobStatus,
    RetryableProviderError,
)
from integrations.servicetitan import ratelimit
from integrations.servicetitan.client import ServiceTitanApi
from integrations.servicetitan.provider import ServiceTitanProvider
from integrations.servicetitan.ratelimit import RateLimiter
from integrations.tests.factories import BookingFactory
from integrations.tests.fakes import FakeClock
from tradeengage.logging import correlation_id_as

AUTH_URL = "https://auth-integration.servicetitan.io"
API_URL = "https://api-integration.servicetitan.io"
TOKEN_URL = f"{AUTH_URL}/connect/token"
TENANT = "1234567"
PROVIDER = "89"
BOOKINGS_URL = f"{API_URL}/crm/v2/tenant/{TENANT}/booking-provider/{PROVIDER}/bookings"
JOBS_URL = f"{API_URL}/jpm/v2/tenant/{TENANT}/jobs"
INVOICES_URL = f"{API_URL}/accounting/v2/tenant/{TENANT}/invoices"
CUSTOMERS_URL = f"{API_URL}/crm/v2/tenant/{TENANT}/customers"
JOB_CANCEL_REASONS_URL = f"{API_URL}/jpm/v2/tenant/{TENANT}/jobs/cancel-reasons"
TOKEN = "eyJhbGciOiJSUzI1NiJ9.first-token"
CONFIG = {
    "api_url": API_URL,
    "auth_url": AUTH_URL,
    "client_id": "cid.test-client",
    "client_secret": "cs1.very-secret",
    "app_key": "ak1.app-key",
    "tenant_id": TENANT,
    "booking_provider_id": PROVIDER,
    "webhook_secret": "",
    "requests_per_second": 60,
    "timeout_seconds": 10.0,
    "simulation_failure_rate": 0.0,
    "simulation_delays": False,
    "simulation_seed": "",
}


@pytest.fixture(autouse=True)
def _process_local_rate_limit(settings, monkeypatch):
    """The process-local request budget, empty for each test."""
    settings.REDIS_URL = ""
    monkeypatch.setattr(ratelimit, "_local_buckets", {})


@pytest.fixture
def http():
    with responses.RequestsMock() as mock:
        yield mock


@pytest.fixture
def api():
    return ServiceTitanApi(CONFIG)


def add_token(http, token=TOKEN, expires_in=900):
    return http.post(
        TOKEN_URL,
        json={"access_token": token, "token_type": "Bearer", "expires_in": expires_in},
        match=[
            matchers.urlencoded_params_matcher(
                {
                    "grant_type": "client_credentials",
                    "client_id": "cid.test-client",
                    "client_secret": "cs1.very-secret",
                }
            )
        ],
    )


def token_calls(http):
    return [call for call in http.calls if call.request.url == TOKEN_URL]


def api_calls(http):
    return [call for call in http.calls if call.request.url != TOKEN_URL]


def booking_json(**overrides):
    """A crm v2 ``BookingResponse``."""
    return {
        "id": 5001,
        "source": "TradeEngage",
        "externalId": "routing-42",
        "bookingProviderId": int(PROVIDER),
        "status": "New",
        "jobId": None,
        "dismissingReasonId": None,
        "start": "2026-03-02T14:00:00Z",
        "name": "Jane Smith",
        "summary": "Fix leaky kitchen faucet",
        "address": {"street": "456 Oak Avenue", "city": "Springfield", "state": "IL"},
        "priority": "Normal",
        "createdOn": "2026-03-01T09:30:00.1234567Z",
        "modifiedOn": "2026-03-01T09:30:00Z",
        **overrides,
    }


def job_json(**overrides):
    """A jpm v2 ``JobResponse`` (the fields we read, and the ids it always has)."""
    return {
        "id": 7001,
        "jobNumber": "70012",
        "jobStatus": "Scheduled",
        "bookingId": 5001,
        "jobTypeId": 61,
        "campaignId": 31,
        "completedOn": None,
        "createdOn": "2026-03-01T10:00:00Z",
        "summary": "Fix leaky kitchen faucet",
        "priority": "High",
        "businessUnitId": 12,
        "customerId": 301,
        "locationId": 401,
        **overrides,
    }


def lookup_params(external_id="routing-42"):
    return matchers.query_param_matcher({"externalId": external_id, "page": "1", "pageSize": "50"})


def page_params(page, page_size, **params):
    return matchers.query_param_matcher({**params, "page": str(page), "pageSize": str(page_size)})


def add_customers(http, customers=(), phone="5559876543"):
    """``GET customers?phone=``: one customer is enough to know the phone is known."""
    return http.get(
        CUSTOMERS_URL,
        json={"page": 1, "pageSize": 1, "hasMore": False, "data": list(customers)},
        match=[page_params(1, 1, phone=phone)],
    )


def add_job_cancel_reasons(http, job_ids, records):
    return http.get(
        JOB_CANCEL_REASONS_URL,
        json={"page": 1, "pageSize": 50, "hasMore": False, "data": records},
        match=[matchers.query_param_matcher({"ids": ",".join(map(str, job_ids))})],
    )


# crm v2 ``CreateBookingRequest``: its properties (additionalProperties false) and required ones.
CREATE_BOOKING_FIELDS = {
    "source",
    "name",
    "address",
    "contacts",
    "customerType",
    "start",
    "summary",
    "campaignId",
    "businessUnitId",
    "jobTypeId",
    "priority",
    "isFirstTimeClient",
    "uploadedImages",
    "isSendConfirmationEmail",
    "externalId",
}
CREATE_BOOKING_REQUIRED = {"source", "name", "summary", "isFirstTimeClient", "externalId"}
ADDRESS_FIELDS = {"street", "unit", "city", "state", "zip", "country"}
ADDRESS_REQUIRED = {"street", "city", "state", "zip", "country"}


def assert_is_create_booking_request(body):
    """``body`` is what crm v2's ``CreateBookingRequest`` accepts."""
    assert set(body) <= CREATE_BOOKING_FIELDS, set(body) - CREATE_BOOKING_FIELDS
    assert set(body) >= CREATE_BOOKING_REQUIRED
    assert all(isinstance(body[key], str) and body[key] for key in ("source", "name", "summary"))
    assert isinstance(body["externalId"], str) and body["externalId"]
    assert isinstance(body["isFirstTimeClient"], bool)
    if "address" in body:
        assert ADDRESS_REQUIRED <= set(body["address"]) <= ADDRESS_FIELDS
    for contact in body.get("contacts", []):
        assert set(contact) <= {"type", "value", "memo"}
        assert contact["type"] in {"Phone", "Email", "Fax", "MobilePhone"}
    assert body.get("customerType", "Residential") in {"Residential", "Commercial"}
    assert body.get("priority", "Normal") in {"Low", "Normal", "High", "Urgent"}
    for key in ("campaignId", "businessUnitId", "jobTypeId"):
        if key in body:
            assert type(body[key]) is int and body[key] > 0


# Tokens


def test_token_is_fetched_form_encoded_and_cached_between_calls(http, api):
    add_token(http)
    http.get(f"{JOBS_URL}/7001", json=job_json())

    api.get_job(7001)
    api.get_job(7001)

    assert len(token_calls(http)) == 1
    request = token_calls(http)[0].request
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert len(api_calls(http)) == 2


def test_token_is_shared_through_the_cache_with_another_instance(http):
    add_token(http)
    http.get(f"{JOBS_URL}/7001", json=job_json())

    ServiceTitanApi(CONFIG).get_job(7001)
    ServiceTitanApi(CONFIG).get_job(7001)

    assert len(token_calls(http)) == 1
    assert all(c.request.headers["Authorization"] == f"Bearer {TOKEN}" for c in api_calls(http))


def test_token_is_not_shared_between_clients_of_different_credentials(http):
    add_token(http)
    other_client = "cid.other-client"
    http.post(
        TOKEN_URL,
        json={"access_token": "other-token", "expires_in": 900},
        match=[matchers.urlencoded_params_matcher({"client_id": other_client}, strict_match=False)],
    )
    http.get(f"{JOBS_URL}/7001", json=job_json())

    ServiceTitanApi(CONFIG).get_job(7001)
    ServiceTitanApi({**CONFIG, "client_id": other_client}).get_job(7001)

    assert [c.request.headers["Authorization"] for c in api_calls(http)] == [
        f"Bearer {TOKEN}",
        "Bearer other-token",
    ]


def test_token_expiring_within_the_refresh_margin_is_not_cached(http, api):
    add_token(http, expires_in=60)
    http.get(f"{JOBS_URL}/7001", json=job_json())

    api.get_job(7001)
    api.get_job(7001)

    assert len(token_calls(http)) == 2


def test_401_drops_the_token_and_retries_once_with_a_new_one(http, api):
    add_token(http, token="stale-token")
    add_token(http, token="fresh-token")
    http.get(
        f"{JOBS_URL}/7001",
        status=401,
        match=[matchers.header_matcher({"Authorization": "Bearer stale-token"})],
    )
    http.get(
        f"{JOBS_URL}/7001",
        json=job_json(),
        match=[matchers.header_matcher({"Authorization": "Bearer fresh-token"})],
    )

    job = api.get_job(7001)

    assert job.id == 7001
    assert len(token_calls(http)) == 2
    assert ServiceTitanApi(CONFIG).authenticate()["token"] == "fresh-to…"


def test_second_401_is_authentication_failed(http, api):
    add_token(http, token="stale-token")
    add_token(http, token="fresh-token")
    http.get(f"{JOBS_URL}/7001", status=401, json={"title": "Unauthorized", "status": 401})

    with pytest.raises(PermanentProviderError) as raised:
        api.get_job(7001)

    assert raised.value.code == "Authentication Failed"
    assert "HTTP 401" in str(raised.value)
    assert len(api_calls(http)) == 2


def test_403_is_authentication_failed_without_fetching_another_token(http, api):
    add_token(http)
    http.get(
        f"{JOBS_URL}/7001",
        status=403,
        json={"title": "Forbidden", "status": 403, "detail": "App is not connected to tenant"},
    )

    with pytest.raises(PermanentProviderError) as raised:
        api.get_job(7001)

    assert raised.value.code == "Authentication Failed"
    assert "App is not connected to tenant" in str(raised.value)
    assert len(token_calls(http)) == 1
    assert len(api_calls(http)) == 1


def test_bad_credentials_at_the_token_endpoint_are_authentication_failed(http, api):
    http.post(TOKEN_URL, status=400, json={"error": "invalid_client"})

    with pytest.raises(PermanentProviderError) as raised:
        api.get_job(7001)

    assert raised.value.code == "Authentication Failed"
    assert "invalid_client" in str(raised.value)
    assert "cs1.very-secret" not in str(raised.value)
    assert api_calls(http) == []


def test_token_endpoint_outage_is_retryable(http, api):
    http.post(TOKEN_URL, status=503, body="upstream connect error")

    with pytest.raises(RetryableProviderError) as raised:
        api.authenticate()

    assert raised.value.code == "Service Unavailable"
    assert "upstream connect error" in str(raised.value)


def test_redis_failure_of_the_token_cache_is_retryable(http, api, monkeypatch):
    def unavailable(*args, **kwargs):
        raise redis.ConnectionError("Connection refused")

    monkeypatch.setattr(LocMemCache, "get", unavailable)

    with pytest.raises(RetryableProviderError) as raised:
        api.get_job(7001)

    assert raised.value.code == "Service Unavailable"
    assert len(http.calls) == 0


# Creating bookings


def test_every_api_call_sends_the_bearer_token_and_app_key(http, api):
    add_token(http)
    http.get(BOOKINGS_URL, json={"page": 1, "pageSize": 50, "hasMore": False, "data": []})
    add_customers(http)
    http.post(BOOKINGS_URL, status=201, json=booking_json())
    http.get(f"{BOOKINGS_URL}/5001", json=booking_json(jobId=7001, status="Converted"))
    http.get(f"{JOBS_URL}/7001", json=job_json())

    api.create_job(BookingFactory())
    api.job_for_reference("5001")

    assert len(api_calls(http)) == 5
    for call in api_calls(http):
        assert call.request.headers["Authorization"] == f"Bearer {TOKEN}"
        assert call.request.headers["ST-App-Key"] == "ak1.app-key"
        assert f"/tenant/{TENANT}/" in call.request.url


def test_create_posts_a_booking_when_its_external_id_is_unknown(http, api):
    add_token(http)
    http.get(
        BOOKINGS_URL,
        json={"page": 1, "pageSize": 50, "hasMore": False, "totalCount": 0, "data": []},
        match=[lookup_params()],
    )
    add_customers(http)
    post = http.post(
        BOOKINGS_URL,
        status=201,
        json=booking_json(),
        match=[
            matchers.json_params_matcher(
                {
                    "source": "TradeEngage",
                    "name": "Jane Smith",
                    "summary": "Fix leaky kitchen faucet",
                    "isFirstTimeClient": True,
                    "externalId": "routing-42",
                    "address": {
                        "street": "456 Oak Avenue",
                        "city": "Springfield",
                        "state": "IL",
                        "zip": "62701",
                        "country": "USA",
                    },
                    "contacts": [
                        {"type": "Phone", "value": "5559876543"},
                        {"type": "Email", "value": "jane.smith@email.com"},
                    ],
                    "customerType": "Residential",
                    "priority": "Normal",
                    "start": "2026-03-02T14:00:00Z",
                }
            )
        ],
    )

    job = api.create_job(
        BookingFactory(
            summary="Fix leaky kitchen faucet",
            scheduled_date=datetime(2026, 3, 2, 14, 0, tzinfo=UTC),
        )
    )

    assert job.id == 5001
    assert job.job_number == "BOOKING-5001"
    assert job.status == "scheduled"
    assert job.reference == "5001"
    assert job.booking_id == "routing-42"
    assert job.priority == "medium"
    assert job.created_at == datetime(2026, 3, 1, 9, 30, 0, 123456, tzinfo=UTC)
    assert job.is_booking
    assert_is_create_booking_request(json.loads(post.calls[0].request.body))


def test_create_returns_the_existing_booking_without_posting(http, api):
    add_token(http)
    http.get(
        BOOKINGS_URL,
        json={"page": 1, "pageSize": 50, "hasMore": False, "data": [booking_json()]},
        match=[lookup_params()],
    )

    job = api.create_job(BookingFactory())

    assert job.reference == "5001"
    assert [call.request.method for call in api_calls(http)] == ["GET"]


def test_create_after_a_conflict_returns_the_booking_made_concurrently(http, api):
    add_token(http)
    http.get(BOOKINGS_URL, json={"page": 1, "pageSize": 50, "hasMore": False, "data": []})
    add_customers(http)
    http.post(BOOKINGS_URL, status=409, json={"title": "Conflict", "status": 409})
    http.get(
        BOOKINGS_URL, json={"page": 1, "pageSize": 50, "hasMore": False, "data": [booking_json()]}
    )

    assert api.create_job(BookingFactory()).reference == "5001"


def test_create_refused_for_another_reason_than_a_conflict_raises_without_looking_again(http, api):
    add_token(http)
    http.get(BOOKINGS_URL, json={"page": 1, "pageSize": 50, "hasMore": False, "data": []})
    add_customers(http)
    http.post(
        BOOKINGS_URL,
        status=400,
        json={"title": "One or more validation errors occurred.", "status": 400},
    )

    with pytest.raises(PermanentProviderError) as raised:
        api.create_job(BookingFactory())

    assert raised.value.code == "Validation Error"
    assert [call.request.method for call in api_calls(http)] == ["GET", "GET", "POST"]


def test_create_with_an_unknown_problem_type_is_a_validation_error_without_calls(http, api):
    with pytest.raises(PermanentProviderError) as raised:
        api.create_job(BookingFactory(problem_type="time_travel"))

    assert raised.value.code == "Validation Error"
    assert raised.value.details[0]["field"] == "problem_type"
    assert len(http.calls) == 0


def test_create_without_a_booking_provider_is_a_configuration_error(http):
    api = ServiceTitanApi({**CONFIG, "booking_provider_id": ""})

    with pytest.raises(PermanentProviderError) as raised:
        api.create_job(BookingFactory())

    assert raised.value.code == "Configuration Error"
    assert len(http.calls) == 0


# Following a booking to its job


@pytest.mark.parametrize(
    ("booking_status", "status"),
    [("New", "scheduled"), ("Accepted", "scheduled"), ("Dismissed", "cancelled")],
)
def test_reference_of_an_unconverted_booking_reports_the_booking(http, api, booking_status, status):
    add_token(http)
    http.get(f"{BOOKINGS_URL}/5001", json=booking_json(status=booking_status))

    job = api.job_for_reference("5001")

    assert (job.id, job.job_number, job.status, job.reference) == (
        5001,
        "BOOKING-5001",
        status,
        "5001",
    )
    assert job.completed_at is None
    assert job.invoice_total is None


def test_reference_of_a_converted_booking_reports_its_job_in_progress(http, api):
    add_token(http)
    http.get(f"{BOOKINGS_URL}/5001", json=booking_json(status="Converted", jobId=7001))
    http.get(f"{JOBS_URL}/7001", json=job_json(jobStatus="InProgress"))

    job = api.job_for_reference("5001")

    assert job.id == 7001
    assert job.job_number == "70012"
    assert job.status == "in_progress"
    assert job.reference == "5001"
    assert job.booking_id == "routing-42"
    assert job.business_unit == "12"
    assert job.completed_at is None
    assert job.invoice_total is None


def test_reference_of_a_completed_job_reports_completion_and_revenue_over_invoice_pages(http, api):
    add_token(http)
    http.get(f"{BOOKINGS_URL}/5001", json=booking_json(status="Converted", jobId=7001))
    http.get(
        f"{JOBS_URL}/7001",
        json=job_json(jobStatus="Completed", completedOn="2026-03-03T16:45:00Z"),
    )
    http.get(
        INVOICES_URL,
        json={
            "page": 1,
            "pageSize": 50,
            "hasMore": True,
            "data": [
                {"id": 1, "total": "123.45", "job": {"id": 7001, "number": "70012"}},
                {"id": 2, "total": "10.10", "job": {"id": 7001, "number": "70012"}},
            ],
        },
        match=[page_params(1, 50, jobId="7001")],
    )
    http.get(
        INVOICES_URL,
        json={
            "page": 2,
            "pageSize": 50,
            "hasMore": False,
            "data": [{"id": 3, "total": "0.05", "job": {"id": 7001, "number": "70012"}}],
        },
        match=[page_params(2, 50, jobId="7001")],
    )

    job = api.job_for_reference("5001")

    assert job.status == "completed"
    assert job.completed_at == datetime(2026, 3, 3, 16, 45, tzinfo=UTC)
    assert job.invoice_total == Decimal("133.60")


def test_completed_job_without_invoices_has_no_revenue_yet(http, api):
    add_token(http)
    http.get(f"{JOBS_URL}/7001", json=job_json(jobStatus="Completed", completedOn=None))
    http.get(INVOICES_URL, json={"page": 1, "pageSize": 50, "hasMore": False, "data": []})

    job = api.get_job(7001)

    assert job.status == "completed"
    assert job.invoice_total is None


def test_reference_that_is_not_a_booking_id_is_not_found_without_calls(http, api):
    with pytest.raises(PermanentProviderError) as raised:
        api.job_for_reference("JOB-123")

    assert raised.value.code == "Not Found"
    assert len(http.calls) == 0


def page(records, size=50, number=1, has_more=False):
    return {"page": number, "pageSize": size, "hasMore": has_more, "data": records}


def test_references_are_looked_up_50_ids_a_request_with_their_jobs_and_completed_invoices(
    http, api
):
    """55 bookings: one not converted yet, one whose job is completed, the others working; a
    reference ServiceTitan does not know and one that is no booking id are left out."""
    add_token(http)
    booking_ids = [5001 + n for n in range(55)]

    def booking(booking_id):
        if booking_id == 5001:
            return booking_json(id=booking_id)
        return booking_json(id=booking_id, status="Converted", jobId=booking_id + 2000)

    def job(job_id):
        if job_id == 7002:
            return job_json(id=job_id, jobStatus="Completed", completedOn="2026-03-03T16:45:00Z")
        return job_json(id=job_id, jobStatus="InProgress")

    def ids(values):
        return ",".join(map(str, values))

    for chunk, asked in (
        (booking_ids[:50], booking_ids[:50]),
        (booking_ids[50:], [*booking_ids[50:], 9999]),
    ):
        http.get(
            BOOKINGS_URL,
            json=page([booking(booking_id) for booking_id in chunk]),
            match=[page_params(1, 50, ids=ids(asked))],
        )
    job_ids = [booking_id + 2000 for booking_id in booking_ids[1:]]
    for chunk in (job_ids[:50], job_ids[50:]):
        http.get(
            JOBS_URL,
            json=page([job(job_id) for job_id in chunk]),
            match=[page_params(1, 50, ids=ids(chunk))],
        )
    http.get(
        INVOICES_URL,
        json=page([{"id": 1, "total": "410.00", "job": {"id": 7002, "number": "70022"}}]),
        match=[page_params(1, 50, jobId="7002")],
    )

    found = api.jobs_for_references([*map(str, booking_ids), "9999", "JOB-1"])

    assert list(found) == [str(booking_id) for booking_id in booking_ids]
    assert (found["5001"].status, found["5001"].job_number) == ("scheduled", "BOOKING-5001")
    assert (found["5002"].status, found["5002"].invoice_total) == ("completed", Decimal("410.00"))
    assert found["5002"].completed_at == datetime(2026, 3, 3, 16, 45, tzinfo=UTC)
    assert {found[str(booking_id)].status for booking_id in booking_ids[2:]} == {"in_progress"}
    assert len(api_calls(http)) == 5


def test_the_provider_asks_about_a_batch_through_the_lookups_by_ids(http):
    add_token(http)
    http.get(
        BOOKINGS_URL,
        json=page([booking_json(id=5001, status="Converted", jobId=7001), booking_json(id=5002)]),
        match=[page_params(1, 50, ids="5001,5002,5003")],
    )
    http.get(
        JOBS_URL,
        json=page([job_json(jobStatus="Canceled")]),
        match=[page_params(1, 50, ids="7001")],
    )
    add_job_cancel_reasons(
        http, [7001], [{"jobId": 7001, "reasonId": 11, "name": "Customer cancelled", "text": ""}]
    )
    provider = ServiceTitanProvider(
        ProviderAccount(
            company_id=None, company_name="Acme", provider_type="servicetitan", settings=CONFIG
        )
    )

    statuses = provider.get_job_statuses(external_ids=["5001", "5002", "5003"], timeout=5)

    assert statuses == {
        "5001": ProviderJobStatus(
            external_id="5001",
            status=ProviderJobStatus.CANCELLED,
            reason="Customer cancelled",
            provider_job_id="7001",
            provider_job_number="70012",
        ),
        "5002": ProviderJobStatus(external_id="5002", status=ProviderJobStatus.OPEN),
    }


def test_a_failed_lookup_fails_the_whole_batch(http, api):
    add_token(http)
    http.get(BOOKINGS_URL, status=503, json={"title": "Service Unavailable", "status": 503})

    with pytest.raises(RetryableProviderError):
        api.jobs_for_references(["5001", "5002"])


def test_jobs_by_date_range_follow_pages_until_there_are_no_more(http, api):
    add_token(http)
    dates = {"createdOnOrAfter": "2026-03-01T00:00:00Z", "createdBefore": "2026-03-08T00:00:00Z"}
    http.get(
        JOBS_URL,
        json={
            "page": 1,
            "pageSize": 100,
            "hasMore": True,
            "data": [job_json(id=1), job_json(id=2)],
        },
        match=[page_params(1, 100, **dates)],
    )
    http.get(
        JOBS_URL,
        json={"page": 2, "pageSize": 100, "hasMore": False, "data": [job_json(id=3)]},
        match=[page_params(2, 100, **dates)],
    )

    jobs = api.get_jobs_by_date_range(
        datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 8, tzinfo=UTC)
    )

    assert [job.id for job in jobs] == [1, 2, 3]


def test_a_400_day_range_is_read_in_one_query_across_all_its_pages(http, api):
    # Seed 001's GET /jobs takes any range: the client asks ServiceTitan once for the whole span
    # and follows its pages, 100 jobs at a time.
    add_token(http)
    dates = {"createdOnOrAfter": "2025-01-01T00:00:00Z", "createdBefore": "2026-02-05T00:00:00Z"}
    pages = [list(range(1, 101)), list(range(101, 201)), [201, 202]]
    for page, ids in enumerate(pages, start=1):
        http.get(
            JOBS_URL,
            json={
                "page": page,
                "pageSize": 100,
                "hasMore": page < len(pages),
                "data": [job_json(id=job_id) for job_id in ids],
            },
            match=[page_params(page, 100, **dates)],
        )

    jobs = api.get_jobs_by_date_range(
        datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 2, 5, tzinfo=UTC)
    )

    assert [job.id for job in jobs] == list(range(1, 203))
    assert len(api_calls(http)) == 3


@pytest.mark.parametrize("total_count", [None, 2], ids=["null", "stale"])
def test_pages_are_followed_by_has_more_whatever_the_total_count_says(http, api, total_count):
    add_token(http)
    for page, has_more, ids in ((1, True, [1, 2]), (2, True, [3]), (3, False, [])):
        http.get(
            JOBS_URL,
            json={
                "page": page,
                "pageSize": 100,
                "hasMore": has_more,
                "totalCount": total_count,
                "data": [job_json(id=job_id) for job_id in ids],
            },
            match=[matchers.query_param_matcher({"page": str(page)}, strict_match=False)],
        )

    jobs = api.get_jobs_by_date_range(
        datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 8, tzinfo=UTC)
    )

    assert [job.id for job in jobs] == [1, 2, 3]
    assert all("includeTotal" not in call.request.url for call in api_calls(http))


# Cancelling and status changes


CANCEL_REASONS_URL = f"{API_URL}/jpm/v2/tenant/{TENANT}/job-cancel-reasons"
CANCEL_REASONS = [
    {"id": 8, "name": "Weather", "active": False},
    {"id": 11, "name": "Customer cancelled", "active": True},
    {"id": 12, "name": "Duplicate", "active": True},
]


def add_cancel_reasons(http, reasons=CANCEL_REASONS):
    return http.get(
        CANCEL_REASONS_URL,
        json={"page": 1, "pageSize": 50, "hasMore": False, "data": reasons},
        match=[page_params(1, 50, active="True")],
    )


def test_cancel_puts_the_configured_reason_and_memo_and_returns_the_cancelled_job(http):
    api = ServiceTitanApi({**CONFIG, "cancel_reason_id": "12"})
    add_token(http)
    reasons = add_cancel_reasons(http)
    cancel = http.put(
        f"{JOBS_URL}/7001/cancel",
        match=[matchers.json_params_matcher({"reasonId": 12, "memo": "Homeowner cancelled"})],
    )
    http.get(f"{JOBS_URL}/7001", json=job_json(jobStatus="Canceled"))

    job = api.cancel_job(7001, "Homeowner cancelled")

    assert job.status == "cancelled"
    assert job.cancel_reason == "Homeowner cancelled"
    assert (reasons.call_count, cancel.call_count) == (1, 1)


def test_cancel_without_a_configured_reason_uses_the_first_active_one_looked_up_once(http, api):
    add_token(http)
    reasons = add_cancel_reasons(http)
    cancel = http.put(
        f"{JOBS_URL}/7001/cancel",
        match=[matchers.json_params_matcher({"reasonId": 11, "memo": "Duplicate"})],
    )
    http.get(f"{JOBS_URL}/7001", json=job_json(jobStatus="Canceled"))

    assert api.cancel_job(7001, "Duplicate").status == "cancelled"
    assert api.cancel_job(7001, "Duplicate").status == "cancelled"
    assert (reasons.call_count, cancel.call_count) == (1, 2)


@pytest.mark.parametrize("configured", ["8", "99", "eleven"])
def test_cancel_with_a_configured_reason_that_is_not_active_is_refused_before_the_put(
    http, configured
):
    api = ServiceTitanApi({**CONFIG, "cancel_reason_id": configured})
    add_token(http)
    add_cancel_reasons(http)

    with pytest.raises(PermanentProviderError) as raised:
        api.cancel_job(7001, "Duplicate")

    assert raised.value.code == "Configuration Error"
    assert "cancel_reason_id" in str(raised.value)
    assert [call.request.method for call in api_calls(http)] == ["GET"]


def test_cancel_for_a_tenant_without_an_active_reason_is_refused(http, api):
    add_token(http)
    add_cancel_reasons(http, reasons=[{"id": 8, "name": "Weather", "active": False}])

    with pytest.raises(PermanentProviderError) as raised:
        api.cancel_job(7001, "Duplicate")

    assert raised.value.code == "Configuration Error"
    assert [call.request.method for call in api_calls(http)] == ["GET"]


def test_cancel_with_an_empty_answer_still_returns_the_job(http, api):
    add_token(http)
    add_cancel_reasons(http)
    http.put(f"{JOBS_URL}/7001/cancel", body="")
    http.get(f"{JOBS_URL}/7001", json=job_json(jobStatus="Canceled"))

    assert api.cancel_job(7001, "Duplicate").status == "cancelled"


@pytest.mark.parametrize("status", ["dispatched", "in_progress", "completed"])
def test_update_job_status_is_not_supported(http, api, status):
    with pytest.raises(PermanentProviderError) as raised:
        api.update_job_status(7001, status)

    assert raised.value.code == "Not Supported"
    assert "Only cancelling is supported" in str(raised.value)
    assert len(http.calls) == 0


def test_update_job_status_to_cancelled_cancels_the_job(http, api):
    add_token(http)
    add_cancel_reasons(http)
    http.put(f"{JOBS_URL}/7001/cancel", json={})
    http.get(f"{JOBS_URL}/7001", json=job_json(jobStatus="Canceled"))

    assert api.update_job_status(7001, "cancelled").status == "cancelled"


# Errors


def test_timeout_is_retryable(http, api):
    add_token(http)
    http.get(f"{JOBS_URL}/7001", body=requests.exceptions.ReadTimeout("read timed out"))

    with pytest.raises(RetryableProviderError) as raised:
        api.get_job(7001)

    assert raised.value.code == "Timeout"
    assert "no answer within 10 s" in str(raised.value)


def test_a_connection_that_cannot_be_opened_in_time_names_the_connect_timeout(http, api):
    http.post(TOKEN_URL, body=requests.exceptions.ConnectTimeout("connect timed out"))

    with pytest.raises(RetryableProviderError) as raised:
        api.authenticate()

    assert raised.value.code == "Timeout"
    assert "no answer within 3.05 s" in str(raised.value)


def test_requests_are_sent_with_a_connect_and_a_read_timeout(http, settings):
    add_token(http)
    http.get(f"{JOBS_URL}/7001", json=job_json())
    defaults = {
        key: settings.SERVICETITAN[key] for key in ("connect_timeout_seconds", "timeout_seconds")
    }
    config = {key: value for key, value in CONFIG.items() if key != "timeout_seconds"}

    ServiceTitanApi({**config, **defaults}).get_job(7001)

    assert defaults == {"connect_timeout_seconds": 3.05, "timeout_seconds": 30.0}
    assert [call.request.req_kwargs["timeout"] for call in http.calls] == [(3.05, 30.0)] * 2


def test_connection_error_is_retryable(http, api):
    http.post(TOKEN_URL, body=requests.exceptions.ConnectionError("Connection refused"))

    with pytest.raises(RetryableProviderError) as raised:
        api.get_job(7001)

    assert raised.value.code == "Service Unavailable"
    assert "connection failed" in str(raised.value)


def test_invalid_url_is_a_configuration_error(http):
    api = ServiceTitanApi({**CONFIG, "auth_url": "auth.servicetitan.io"})

    with pytest.raises(PermanentProviderError) as raised:
        api.authenticate()

    assert raised.value.code == "Configuration Error"


def test_non_json_success_body_is_retryable(http, api):
    add_token(http)
    http.get(f"{JOBS_URL}/7001", body="<html>maintenance</html>", content_type="text/html")

    with pytest.raises(RetryableProviderError) as raised:
        api.get_job(7001)

    assert raised.value.code == "Invalid Response"


def servicetitan_error(status, title, errors=None):
    """ServiceTitan's ``ApiErrorResponse``: no ``detail``; ``errors`` and ``data`` always."""
    return {
        "type": f"https://httpstatuses.io/{status}",
        "title": title,
        "status": status,
        "traceId": "0af7651916cd43dd8448eb211c80319c",
        "errors": errors or {},
        "data": {},
    }


def test_servicetitan_validation_error_is_parsed_field_by_field(http, api):
    add_token(http)
    http.get(BOOKINGS_URL, json={"page": 1, "pageSize": 50, "hasMore": False, "data": []})
    add_customers(http)
    errors = {"contacts": ["A phone number is at most 20 characters."], "name": ["Required."]}
    http.post(BOOKINGS_URL, status=400, json=servicetitan_error(400, "Validation Error", errors))

    with pytest.raises(PermanentProviderError) as raised:
        api.create_job(BookingFactory())

    assert raised.value.code == "Validation Error"
    assert raised.value.details == [
        {"field": "contacts", "message": "A phone number is at most 20 characters.", "value": None},
        {"field": "name", "message": "Required.", "value": None},
    ]
    assert str(raised.value) == (
        f"ServiceTitan POST {BOOKINGS_URL.removeprefix(API_URL)}: HTTP 400 Validation Error: "
        "contacts: A phone number is at most 20 characters.; name: Required. "
        "(traceId 0af7651916cd43dd8448eb211c80319c)"
    )


@pytest.mark.parametrize(
    ("status", "title", "error_type", "code"),
    [
        (404, "Not Found", PermanentProviderError, "Not Found"),
        (409, "Conflict", PermanentProviderError, "Conflict"),
        (405, "Method Not Allowed", PermanentProviderError, "Request Rejected"),
        (503, "Service Unavailable", RetryableProviderError, "Service Unavailable"),
    ],
)
def test_servicetitan_error_without_field_errors_is_its_title_and_trace(
    http, api, status, title, error_type, code
):
    add_token(http)
    http.get(f"{JOBS_URL}/7001", status=status, json=servicetitan_error(status, title))

    with pytest.raises(error_type) as raised:
        api.get_job(7001)

    assert raised.value.code == code
    assert str(raised.value) == (
        f"ServiceTitan GET /jpm/v2/tenant/{TENANT}/jobs/7001: HTTP {status} {title} "
        "(traceId 0af7651916cd43dd8448eb211c80319c)"
    )


# The request budget


def test_client_uses_redis_for_its_request_budget_when_configured(settings):
    settings.REDIS_URL = "redis://localhost:6399/0"

    api = ServiceTitanApi(CONFIG)

    assert isinstance(api.limiter.redis, redis.Redis)
    assert api.limiter.limit == 60
    assert api.limiter.key == f"servicetitan:rate:{TENANT}"


def test_the_61st_call_in_one_second_waits_for_a_token(http, api):
    clock = FakeClock(1_000_000.5)
    api.limiter = RateLimiter(f"servicetitan:rate:{TENANT}", 60, clock=clock, sleep=clock.sleep)
    add_token(http)
    http.get(f"{JOBS_URL}/7001", json=job_json())

    for _ in range(61):
        api.get_job(7001)

    assert clock.sleeps == [pytest.approx(1 / 60)]  # the bucket refills 60 tokens a second
    assert len(api_calls(http)) == 61


# Authentication, health and logs


def test_authenticate_shows_only_the_start_of_the_token(http, api):
    add_token(http)

    result = api.authenticate()

    assert result == {
        "success": True,
        "token": "eyJhbGci…",
        "expiresIn": pytest.approx(900, abs=2),
        "authenticated": True,
    }
    assert TOKEN not in str(result)


def test_health_is_healthy_when_a_token_can_be_fetched(http, api):
    add_token(http)
    add_token(http)
    api.authenticate()

    status = api.get_health_status()

    assert status["status"] == "healthy"
    assert status["version"] == "servicetitan-api-v2"
    assert status["authenticated"] is True
    assert isinstance(status["responseTimeMs"], int)
    assert len(token_calls(http)) == 2


@pytest.mark.parametrize(
    "answer",
    [
        {"status": 400, "json": {"error": "invalid_client"}},
        {"status": 503, "body": "Service Unavailable"},
        {"body": requests.exceptions.ConnectionError("Connection refused")},
    ],
)
def test_health_is_unhealthy_without_raising(http, api, answer):
    http.post(TOKEN_URL, **answer)

    status = api.get_health_status()

    assert status["status"] == "unhealthy"
    assert status["authenticated"] is False
    assert status["version"] == "servicetitan-api-v2"
    assert isinstance(status["responseTimeMs"], int)
    assert status["error"]


def test_each_call_is_logged_at_debug_without_secrets(http, api, caplog):
    add_token(http)
    http.get(f"{JOBS_URL}/7001", json=job_json())

    with caplog.at_level(logging.DEBUG, logger="integrations.servicetitan"):
        api.get_job(7001)

    records = [r for r in caplog.records if r.name == "integrations.servicetitan"]
    assert [(r.method, r.path, r.status) for r in records] == [
        ("POST", "/connect/token", 200),
        ("GET", f"/jpm/v2/tenant/{TENANT}/jobs/7001", 200),
    ]
    assert all(isinstance(r.duration_ms, int) for r in records)
    logged = " ".join(str(vars(r)) for r in records)
    assert TOKEN not in logged
    assert "cs1.very-secret" not in logged


def test_calls_carry_the_correlation_id_of_the_work_they_do(http, api):
    """Set by the sync to the id of the request that created the job."""
    add_token(http)
    http.get(f"{JOBS_URL}/7001", json=job_json())

    with correlation_id_as("req-job-7001"):
        api.get_job(7001)
    api.get_job(7001)

    first, second = api_calls(http)
    assert first.request.headers["X-Correlation-ID"] == "req-job-7001"
    assert "X-Correlation-ID" not in second.request.headers


# The company's mapping, the customer lookup and the booking id


MAPPING = {
    "campaign_id": 31,
    "business_unit_id": 41,
    "business_units_by_zip": {"627": 42, "6270": 43},
    "business_units_by_trade": {"plumbing": 44},
    "job_type_id": "61",
    "job_types_by_category": {"plumbing": 62},
    "priority_by_category": {"plumbing": "High"},
    "urgent_keywords": ["flood", "gas leak"],
    "customer_type": "Commercial",
}


def add_booking_lookup(http):
    http.get(
        BOOKINGS_URL,
        json={"page": 1, "pageSize": 50, "hasMore": False, "data": []},
        match=[lookup_params()],
    )


def posted_body(post):
    return json.loads(post.calls[0].request.body)


def test_create_sends_the_companys_ids_as_integers_and_its_customer_type(http):
    api = ServiceTitanApi({**CONFIG, **MAPPING})
    add_token(http)
    add_booking_lookup(http)
    add_customers(http)
    post = http.post(BOOKINGS_URL, status=201, json=booking_json())

    api.create_job(BookingFactory(summary="Basement flooded", category="plumbing"))

    body = posted_body(post)
    assert_is_create_booking_request(body)
    assert {key: body[key] for key in ("campaignId", "businessUnitId", "jobTypeId")} == {
        "campaignId": 31,
        "businessUnitId": 43,
        "jobTypeId": 62,
    }
    assert (body["customerType"], body["priority"]) == ("Commercial", "Urgent")


def test_create_without_mapping_leaves_the_ids_out_and_sends_a_residential_customer(http, api):
    add_token(http)
    add_booking_lookup(http)
    add_customers(http)
    post = http.post(BOOKINGS_URL, status=201, json=booking_json())

    api.create_job(BookingFactory())

    body = posted_body(post)
    assert_is_create_booking_request(body)
    assert not {"campaignId", "businessUnitId", "jobTypeId"} & set(body)
    assert body["customerType"] == "Residential"


def test_create_with_invalid_mapping_settings_is_a_configuration_error_without_calls(http):
    api = ServiceTitanApi({**CONFIG, "campaign_id": "Google Ads", "customer_type": "Business"})

    with pytest.raises(PermanentProviderError) as raised:
        api.create_job(BookingFactory())

    assert raised.value.code == "Configuration Error"
    assert [detail["field"] for detail in raised.value.details] == ["campaign_id", "customer_type"]
    assert len(http.calls) == 0


def test_create_without_a_booking_id_is_refused_before_any_request(http, api):
    with pytest.raises(PermanentProviderError) as raised:
        api.create_job(BookingFactory(booking_id=""))

    assert raised.value.code == "Validation Error"
    assert "externalId" in str(raised.value)
    assert raised.value.details[0]["field"] == "booking_id"
    assert len(http.calls) == 0


def test_a_known_phone_is_no_first_time_client(http, api):
    add_token(http)
    add_booking_lookup(http)
    lookup = add_customers(http, customers=[{"id": 301, "name": "Jane Smith", "active": True}])
    post = http.post(BOOKINGS_URL, status=201, json=booking_json())

    api.create_job(BookingFactory(phone="555-987-6543"))

    assert lookup.call_count == 1
    assert posted_body(post)["isFirstTimeClient"] is False


def test_an_unknown_phone_is_a_first_time_client(http, api):
    add_token(http)
    add_booking_lookup(http)
    add_customers(http, customers=[])
    post = http.post(BOOKINGS_URL, status=201, json=booking_json())

    api.create_job(BookingFactory())

    assert posted_body(post)["isFirstTimeClient"] is True


def test_without_a_phone_there_is_no_lookup_and_the_client_is_first_time(http, api):
    add_token(http)
    add_booking_lookup(http)
    post = http.post(BOOKINGS_URL, status=201, json=booking_json())

    api.create_job(BookingFactory(phone=""))

    body = posted_body(post)
    assert body["isFirstTimeClient"] is True
    assert body["contacts"] == [{"type": "Email", "value": "jane.smith@email.com"}]
    assert not [call for call in http.calls if call.request.url.startswith(CUSTOMERS_URL)]


def test_an_existing_booking_is_returned_without_looking_the_customer_up(http, api):
    add_token(http)
    http.get(
        BOOKINGS_URL,
        json={"page": 1, "pageSize": 50, "hasMore": False, "data": [booking_json()]},
        match=[lookup_params()],
    )

    api.create_job(BookingFactory())

    assert len(api_calls(http)) == 1


def test_a_refused_customer_lookup_sends_a_first_time_client_and_is_logged_once(http, api, caplog):
    add_token(http)
    add_booking_lookup(http)
    http.get(
        CUSTOMERS_URL,
        status=403,
        json=servicetitan_error(403, "Forbidden"),
        match=[page_params(1, 1, phone="5559876543")],
    )
    post = http.post(BOOKINGS_URL, status=201, json=booking_json())

    with caplog.at_level(logging.WARNING, logger="integrations.servicetitan"):
        api.create_job(BookingFactory())
        api.create_job(BookingFactory())

    assert [json.loads(call.request.body)["isFirstTimeClient"] for call in post.calls] == [
        True,
        True,
    ]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "customer lookup refused" in warnings[0].getMessage()
    assert "cs1.very-secret" not in str(vars(warnings[0]))


def test_a_customer_lookup_outage_is_retryable_and_posts_nothing(http, api):
    add_token(http)
    add_booking_lookup(http)
    http.get(CUSTOMERS_URL, status=503, json=servicetitan_error(503, "Service Unavailable"))

    with pytest.raises(RetryableProviderError):
        api.create_job(BookingFactory())

    assert "POST" not in [call.request.method for call in api_calls(http)]


# The back-sync's lifecycle reads


def provider_for_config(config=CONFIG):
    return ServiceTitanProvider(
        ProviderAccount(
            company_id=None, company_name="Acme", provider_type="servicetitan", settings=config
        )
    )


def test_a_new_booking_is_open_and_names_no_job_yet(http):
    add_token(http)
    http.get(f"{BOOKINGS_URL}/5001", json=booking_json(status="New"))

    status = provider_for_config().get_job_status(external_id="5001", timeout=5)

    assert status == ProviderJobStatus(external_id="5001", status=ProviderJobStatus.OPEN)


def test_a_dismissed_booking_is_cancelled_with_its_dismissing_reason(http):
    add_token(http)
    http.get(f"{BOOKINGS_URL}/5001", json=booking_json(status="Dismissed", dismissingReasonId=17))

    status = provider_for_config().get_job_status(external_id="5001", timeout=5)

    assert status.status == ProviderJobStatus.CANCELLED
    assert status.reason == "Booking dismissed in ServiceTitan (dismissing reason 17)"
    assert (status.provider_job_id, status.provider_job_number) == ("", "")


def test_a_converted_booking_reports_its_scheduled_job_by_id_and_number(http):
    add_token(http)
    http.get(f"{BOOKINGS_URL}/5001", json=booking_json(status="Converted", jobId=7001))
    http.get(f"{JOBS_URL}/7001", json=job_json(jobStatus="Scheduled"))

    status = provider_for_config().get_job_status(external_id="5001", timeout=5)

    assert status == ProviderJobStatus(
        external_id="5001",
        status=ProviderJobStatus.OPEN,
        provider_job_id="7001",
        provider_job_number="70012",
    )


def test_a_canceled_job_is_cancelled_with_the_reason_the_office_gave(http):
    add_token(http)
    http.get(f"{BOOKINGS_URL}/5001", json=booking_json(status="Converted", jobId=7001))
    http.get(f"{JOBS_URL}/7001", json=job_json(jobStatus="Canceled"))
    reasons = add_job_cancel_reasons(
        http,
        [7001],
        [{"jobId": 7001, "reasonId": 11, "name": "Customer cancelled", "text": "Fixed it"}],
    )

    status = provider_for_config().get_job_status(external_id="5001", timeout=5)

    assert status.status == ProviderJobStatus.CANCELLED
    assert status.reason == "Customer cancelled: Fixed it"
    assert status.provider_job_id == "7001"
    assert reasons.call_count == 1


def test_a_canceled_job_without_a_recorded_reason_says_it_was_canceled(http, api):
    add_token(http)
    http.get(f"{BOOKINGS_URL}/5001", json=booking_json(status="Converted", jobId=7001))
    http.get(f"{JOBS_URL}/7001", json=job_json(jobStatus="Canceled"))
    add_job_cancel_reasons(http, [7001], [])

    assert api.job_for_reference("5001").cancel_reason == "Job canceled in ServiceTitan"


def test_a_completed_job_reports_completion_revenue_and_its_number(http):
    add_token(http)
    http.get(f"{BOOKINGS_URL}/5001", json=booking_json(status="Converted", jobId=7001))
    http.get(
        f"{JOBS_URL}/7001",
        json=job_json(jobStatus="Completed", completedOn="2026-03-03T16:45:00Z"),
    )
    http.get(
        INVOICES_URL,
        json=page([{"id": 1, "total": "250.00", "job": {"id": 7001, "number": "70012"}}]),
        match=[page_params(1, 50, jobId="7001")],
    )

    status = provider_for_config().get_job_status(external_id="5001", timeout=5)

    assert status == ProviderJobStatus(
        external_id="5001",
        status=ProviderJobStatus.COMPLETED,
        completed_at=datetime(2026, 3, 3, 16, 45, tzinfo=UTC),
        revenue=Decimal("250.00"),
        provider_job_id="7001",
        provider_job_number="70012",
    )


def test_a_completed_job_without_an_invoice_has_no_revenue_yet(http):
    add_token(http)
    http.get(f"{BOOKINGS_URL}/5001", json=booking_json(status="Converted", jobId=7001))
    http.get(
        f"{JOBS_URL}/7001",
        json=job_json(jobStatus="Completed", completedOn="2026-03-03T16:45:00Z"),
    )
    http.get(INVOICES_URL, json=page([]), match=[page_params(1, 50, jobId="7001")])

    status = provider_for_config().get_job_status(external_id="5001", timeout=5)

    assert status.status == ProviderJobStatus.COMPLETED
    assert status.revenue is None


def test_cancel_reasons_of_a_batch_are_read_50_jobs_a_request(http, api):
    add_token(http)
    booking_ids = [5001 + n for n in range(55)]
    job_ids = [booking_id + 2000 for booking_id in booking_ids]
    bookings = [
        booking_json(id=booking_id, status="Converted", jobId=booking_id + 2000)
        for booking_id in booking_ids
    ]
    http.get(
        BOOKINGS_URL,
        json=page(bookings[:50]),
        match=[page_params(1, 50, ids=",".join(map(str, booking_ids[:50])))],
    )
    http.get(
        BOOKINGS_URL,
        json=page(bookings[50:]),
        match=[page_params(1, 50, ids=",".join(map(str, booking_ids[50:])))],
    )
    for chunk in (job_ids[:50], job_ids[50:]):
        http.get(
            JOBS_URL,
            json=page([job_json(id=job_id, jobStatus="Canceled") for job_id in chunk]),
            match=[page_params(1, 50, ids=",".join(map(str, chunk)))],
        )
        add_job_cancel_reasons(
            http,
            chunk,
            [
                {"jobId": job_id, "reasonId": 11, "name": "Duplicate", "text": ""}
                for job_id in chunk
            ],
        )

    found = api.jobs_for_references(list(map(str, booking_ids)))

    assert {job.cancel_reason for job in found.values()} == {"Duplicate"}
    assert len(found) == 55
    assert len(api_calls(http)) == 6


def test_cancelling_a_booking_that_is_no_job_yet_is_not_supported(http):
    add_token(http)
    http.get(f"{BOOKINGS_URL}/5001", json=booking_json(status="New"))

    with pytest.raises(PermanentProviderError) as raised:
        provider_for_config().cancel_job(external_id="5001", reason="Duplicate", timeout=5)

    assert raised.value.code == "Not Supported"


def test_the_provider_lowers_both_timeouts_to_the_calls_bound(http):
    add_token(http)
    http.get(f"{BOOKINGS_URL}/5001", json=booking_json())
    config = {**CONFIG, "connect_timeout_seconds": 3.05, "timeout_seconds": 30.0}

    provider_for_config(config).get_job_status(external_id="5001", timeout=2)

    assert {call.request.req_kwargs["timeout"] for call in http.calls} == {(2, 2)}


def rate_limited(http, url, *, retry_after: str):
    http.get(
        url,
        status=429,
        headers={"Retry-After": retry_after},
        json={"type": "t", "title": "Too Many Requests", "status": 429, "traceId": "a1"},
    )


def test_a_short_429_is_waited_out_within_the_call_with_jitter(http, api, monkeypatch):
    pauses = []
    monkeypatch.setattr("integrations.servicetitan.client.time.sleep", pauses.append)
    add_token(http)
    rate_limited(http, f"{JOBS_URL}/7", retry_after="1")
    rate_limited(http, f"{JOBS_URL}/7", retry_after="2")
    http.get(f"{JOBS_URL}/7", json=job_json(id=7))

    job = api.get_job(7)

    assert job.id == 7
    assert len(api_calls(http)) == 3
    assert 1 <= pauses[0] <= 1.5 and 2 <= pauses[1] <= 3


def test_a_429_still_there_after_three_waits_fails_the_call_as_retryable(http, api, monkeypatch):
    pauses = []
    monkeypatch.setattr("integrations.servicetitan.client.time.sleep", pauses.append)
    add_token(http)
    rate_limited(http, f"{JOBS_URL}/7", retry_after="1")

    with pytest.raises(RetryableProviderError) as error:
        api.get_job(7)

    assert error.value.retry_after == 1
    assert len(pauses) == 3
    assert len(api_calls(http)) == 4


def test_a_429_asking_for_a_long_wait_fails_the_call_at_once(http, api, monkeypatch):
    pauses = []
    monkeypatch.setattr("integrations.servicetitan.client.time.sleep", pauses.append)
    add_token(http)
    rate_limited(http, f"{JOBS_URL}/7", retry_after="30")

    with pytest.raises(RetryableProviderError) as error:
        api.get_job(7)

    assert error.value.retry_after == 30
    assert pauses == []
    assert len(api_calls(http)) == 1

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.test import Client

from integrations.models import SimulatedJob
from integrations.providers import RetryableProviderError
from integrations.servicetitan.client import ServiceTitanApi
from integrations.servicetitan.service import servicetitan_config
from integrations.servicetitan.simulator import api as simulator_api
from integrations.servicetitan.simulator.api import TOKEN_CACHE_PREFIX
from integrations.servicetitan.simulator.simulation import SimulatedServiceTitan
from integrations.tests.factories import BookingFactory, SimulatedJobFactory
from routing.retry import PROVIDER_CALL_RETRY

pytestmark = pytest.mark.django_db

TENANT = "1234"
OTHER_TENANT = "5678"
TOKEN_URL = "/servicetitan-sim/connect/token"


def bookings_url(tenant: str = TENANT) -> str:
    return f"/servicetitan-sim/crm/v2/tenant/{tenant}/booking-provider/77/bookings"


def jobs_url(tenant: str = TENANT) -> str:
    return f"/servicetitan-sim/jpm/v2/tenant/{tenant}/jobs"


def invoices_url(tenant: str = TENANT) -> str:
    return f"/servicetitan-sim/accounting/v2/tenant/{tenant}/invoices"


@pytest.fixture(autouse=True)
def _simulation_without_failures_or_delays(settings):
    settings.SERVICETITAN = {
        **settings.SERVICETITAN,
        "simulation_failure_rate": 0.0,
        "simulation_delays": False,
    }
    settings.SERVICETITAN_SIMULATOR_CLIENTS = {"tradeengage": "s3cret", "partner": "p4ss:word"}


def issue_token(client, **form) -> dict:
    form = {
        "grant_type": "client_credentials",
        "client_id": "tradeengage",
        "client_secret": "s3cret",
        **form,
    }
    return client.post(TOKEN_URL, form)


@pytest.fixture
def headers(client) -> dict:
    access_token = issue_token(client).json()["access_token"]
    return {"Authorization": f"Bearer {access_token}", "ST-App-Key": "ak1.test"}


def booking_request(**overrides) -> dict:
    return {
        "source": "TradeEngage",
        "name": "Mary Ann Smith",
        "summary": "Garage door spring repair/replacement: the left spring snapped",
        "isFirstTimeClient": True,
        "externalId": "routing-1",
        "address": {
            "street": "12 Oak Street",
            "city": "Austin",
            "state": "TX",
            "zip": "78701",
            "country": "USA",
        },
        "contacts": [
            {"type": "Phone", "value": "5125550100"},
            {"type": "Email", "value": "mary@example.com"},
        ],
        "priority": "Urgent",
        "start": "2025-03-04T15:00:00Z",
        **overrides,
    }


def create_booking(client, headers, tenant: str = TENANT, **overrides):
    return client.post(
        bookings_url(tenant),
        booking_request(**overrides),
        content_type="application/json",
        headers=headers,
    )


def assert_problem(response, status: int) -> dict:
    """ServiceTitan's ``ApiErrorResponse``: these six properties, all required, and no other."""
    assert response.status_code == status
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert set(body) == {"type", "title", "status", "traceId", "errors", "data"}
    assert body["type"] == f"https://httpstatuses.io/{status}"
    assert body["status"] == status
    assert body["title"]
    assert re.fullmatch(r"[0-9a-f]{32}", body["traceId"])
    assert isinstance(body["errors"], dict)
    assert body["data"] == {}
    return body


def test_token_is_issued_for_client_credentials(client):
    response = issue_token(client)

    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert len(body["access_token"]) >= 32
    assert cache.get(TOKEN_CACHE_PREFIX + body["access_token"]) == "tradeengage"
    assert issue_token(client).json()["access_token"] != body["access_token"]


def test_token_is_issued_to_each_configured_client(client):
    response = issue_token(client, client_id="partner", client_secret="p4ss:word")

    assert response.status_code == 200
    assert cache.get(TOKEN_CACHE_PREFIX + response.json()["access_token"]) == "partner"


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"client_secret": "wrong"}, "invalid_client"),
        ({"client_secret": "s3cret "}, "invalid_client"),
        ({"client_secret": "p4ss:word"}, "invalid_client"),
        ({"client_id": "stranger"}, "invalid_client"),
        ({"client_id": "partner"}, "invalid_client"),
        ({"client_secret": ""}, "invalid_client"),
        ({"client_id": ""}, "invalid_client"),
        ({"grant_type": "password"}, "unsupported_grant_type"),
        ({"grant_type": ""}, "unsupported_grant_type"),
    ],
)
def test_token_is_refused_for_bad_credentials_or_grant(client, form, error):
    response = issue_token(client, **form)

    assert response.status_code == 400
    assert response.json() == {"error": error}


def test_token_is_refused_to_everyone_when_no_client_is_configured(client, settings):
    settings.SERVICETITAN_SIMULATOR_CLIENTS = {}

    response = issue_token(client)

    assert response.status_code == 400
    assert response.json() == {"error": "invalid_client"}


@pytest.mark.parametrize(
    "request_headers",
    [
        {"ST-App-Key": "ak1.test"},
        {"Authorization": "Bearer not-issued", "ST-App-Key": "ak1.test"},
        {"Authorization": "Bearer ", "ST-App-Key": "ak1.test"},
        {"Authorization": "Basic dHJhZGVlbmdhZ2U6czNjcmV0", "ST-App-Key": "ak1.test"},
    ],
)
def test_calls_without_an_issued_bearer_token_are_unauthorized(client, request_headers):
    response = client.get(jobs_url(), headers=request_headers)

    assert assert_problem(response, 401)["errors"] == {}
    assert response["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("authorization", ["Bearer {}", "bearer {}", "{}", " {} "])
def test_token_is_accepted_with_or_without_the_bearer_prefix(client, authorization):
    access_token = issue_token(client).json()["access_token"]
    request_headers = {"Authorization": authorization.format(access_token), "ST-App-Key": "ak1"}

    response = client.get(jobs_url(), headers=request_headers)

    assert response.status_code == 200


@pytest.mark.parametrize("app_key", [None, "", "  "])
def test_calls_without_an_app_key_are_unauthorized(client, headers, app_key):
    request_headers = {"Authorization": headers["Authorization"]}
    if app_key is not None:
        request_headers["ST-App-Key"] = app_key

    response = create_booking(client, request_headers)

    assert_problem(response, 401)
    assert not SimulatedJob.objects.exists()


def test_booking_is_created_as_a_job_of_the_tenant(client, headers):
    response = create_booking(client, headers)

    assert response.status_code == 200
    job = SimulatedJob.objects.get()
    body = response.json()
    assert body == {
        "id": job.job_id,
        "externalId": "routing-1",
        "status": "Converted",
        "jobId": job.job_id,
        "name": "Mary Ann Smith",
        "summary": "Garage door spring repair/replacement: the left spring snapped",
        "address": {
            "street": "12 Oak Street",
            "city": "Austin",
            "state": "TX",
            "zip": "78701",
            "country": "USA",
        },
        "priority": "Urgent",
        "source": "TradeEngage",
        "isFirstTimeClient": True,
        "createdOn": body["createdOn"],
        "modifiedOn": body["modifiedOn"],
    }
    assert abs(datetime.fromisoformat(body["createdOn"]) - job.created_at) < timedelta(
        milliseconds=1
    )
    assert job.tenant == TENANT
    assert job.booking_id == "routing-1"
    assert (job.first_name, job.last_name) == ("Mary", "Ann Smith")
    assert (job.phone, job.email) == ("5125550100", "mary@example.com")
    assert (job.street, job.city, job.state, job.zip) == ("12 Oak Street", "Austin", "TX", "78701")
    assert job.summary == "Garage door spring repair/replacement: the left spring snapped"
    assert job.problem_type == "broken_spring"
    assert job.door_count == 1
    assert job.scheduled_date == datetime(2025, 3, 4, 15, 0, tzinfo=UTC)
    assert job.status == SimulatedJob.Status.SCHEDULED


def test_booking_with_a_one_word_name_and_a_free_summary_is_an_other_job(client, headers):
    response = create_booking(
        client, headers, name="Cher", summary="Water heater leaking", contacts=[]
    )

    assert response.status_code == 200
    job = SimulatedJob.objects.get()
    assert (job.first_name, job.last_name) == ("Cher", "")
    assert job.problem_type == "other"
    assert (job.phone, job.email) == ("", "")


def test_same_external_id_twice_returns_the_same_booking(client, headers):
    first = create_booking(client, headers)
    second = create_booking(client, headers)

    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    assert SimulatedJob.objects.count() == 1


def test_same_external_id_under_another_tenant_is_another_booking(client, headers):
    first = create_booking(client, headers)
    second = create_booking(client, headers, tenant=OTHER_TENANT)

    assert second.json()["id"] != first.json()["id"]
    assert SimulatedJob.objects.count() == 2


def test_bookings_are_listed_a_page_at_a_time_and_found_by_external_id(client, headers):
    ids = [
        create_booking(client, headers, externalId=f"routing-{n}").json()["id"] for n in (1, 2, 3)
    ]

    first_page = client.get(bookings_url(), {"page": 1, "pageSize": 2}, headers=headers).json()
    last_page = client.get(bookings_url(), {"page": 2, "pageSize": 2}, headers=headers).json()
    found = client.get(bookings_url(), {"externalId": "routing-2"}, headers=headers).json()
    missing = client.get(bookings_url(), {"externalId": "routing-9"}, headers=headers).json()

    assert (first_page["page"], first_page["pageSize"]) == (1, 2)
    assert first_page["hasMore"] is True
    assert first_page["totalCount"] is None
    assert [booking["id"] for booking in first_page["data"]] == ids[:2]
    assert last_page["hasMore"] is False
    assert [booking["id"] for booking in last_page["data"]] == ids[2:]
    assert (found["page"], found["pageSize"], found["hasMore"]) == (1, 50, False)
    assert [booking["externalId"] for booking in found["data"]] == ["routing-2"]
    assert found["data"][0]["status"] == "Converted"
    assert missing["data"] == []


def test_bookings_and_jobs_are_looked_up_by_ids_of_the_tenant_only(client, headers):
    ids = [create_booking(client, headers, externalId=f"routing-{n}").json()["id"] for n in (1, 2)]
    other = create_booking(client, headers, tenant=OTHER_TENANT).json()["id"]
    wanted = ",".join(map(str, [ids[1], other, 999999]))

    for url in (bookings_url(), jobs_url()):
        body = client.get(url, {"ids": wanted}, headers=headers).json()
        assert [record["id"] for record in body["data"]] == [ids[1]]
        assert body["hasMore"] is False


@pytest.mark.parametrize(
    "ids",
    [",".join(str(1001 + n) for n in range(51)), "1001,JOB-1002", "1001,,1002", "-1"],
    ids=["51 ids", "not an id", "empty item", "negative"],
)
def test_a_lookup_by_more_than_50_ids_or_by_what_is_no_id_is_refused(client, headers, ids):
    for url in (bookings_url(), jobs_url()):
        body = assert_problem(client.get(url, {"ids": ids}, headers=headers), 400)
        assert list(body["errors"]) == ["ids"]


def test_a_lookup_by_50_ids_is_answered(client, headers):
    ids = ",".join(str(1001 + n) for n in range(50))

    for url in (bookings_url(), jobs_url()):
        assert client.get(url, {"ids": ids}, headers=headers).status_code == 200


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"page": 0}, "page"),
        ({"page": "first"}, "page"),
        ({"pageSize": 0}, "pageSize"),
        ({"pageSize": 5001}, "pageSize"),
        ({"pageSize": "all"}, "pageSize"),
        ({"includeTotal": "maybe"}, "includeTotal"),
    ],
)
def test_listing_with_a_bad_page_is_refused(client, headers, query, field):
    for url in (bookings_url(), jobs_url(), invoices_url()):
        body = assert_problem(client.get(url, query, headers=headers), 400)
        assert body["title"] == "Validation Error"
        assert list(body["errors"]) == [field]


def test_pages_hold_50_by_default_and_up_to_5000(client, headers):
    SimulatedJobFactory.create_batch(51, tenant=TENANT)

    default = client.get(jobs_url(), headers=headers).json()
    largest = client.get(jobs_url(), {"pageSize": 5000}, headers=headers).json()
    second = client.get(jobs_url(), {"page": 2}, headers=headers).json()

    assert (default["page"], default["pageSize"], default["hasMore"]) == (1, 50, True)
    assert len(default["data"]) == 50
    assert (largest["pageSize"], largest["hasMore"], len(largest["data"])) == (5000, False, 51)
    assert (second["page"], second["hasMore"], len(second["data"])) == (2, False, 1)


@pytest.mark.parametrize(("include_total", "total"), [("true", 3), ("false", None), (None, None)])
def test_total_count_is_sent_only_when_asked_for(client, headers, include_total, total):
    SimulatedJobFactory.create_batch(
        3, tenant=TENANT, status=SimulatedJob.Status.COMPLETED, invoice_total=Decimal("90.00")
    )
    query = {"pageSize": 2}
    if include_total is not None:
        query["includeTotal"] = include_total

    for url in (bookings_url(), jobs_url(), invoices_url()):
        body = client.get(url, query, headers=headers).json()
        assert list(body) == ["page", "pageSize", "hasMore", "totalCount", "data"]
        assert (body["totalCount"], body["hasMore"], len(body["data"])) == (total, True, 2)


@pytest.mark.parametrize("tenant", ["acme42", "12345678901234567890", "9223372036854775808"])
def test_a_tenant_that_is_not_an_integer_id_is_refused(client, headers, tenant):
    for url in (bookings_url(tenant), jobs_url(tenant), invoices_url(tenant)):
        body = assert_problem(client.get(url, headers=headers), 400)
        assert list(body["errors"]) == ["tenant"]
    assert_problem(create_booking(client, headers, tenant=tenant), 400)
    assert not SimulatedJob.objects.exists()


def test_a_booking_provider_that_is_not_an_integer_id_is_refused(client, headers):
    url = bookings_url().replace("/booking-provider/77/", "/booking-provider/tradeengage/")

    body = assert_problem(client.get(url, headers=headers), 400)

    assert list(body["errors"]) == ["provider"]


def test_a_tenant_is_checked_only_once_the_caller_is_authorized(client):
    assert_problem(client.get(jobs_url("acme42")), 401)


def test_booking_is_read_by_id(client, headers):
    booking_id = create_booking(client, headers).json()["id"]

    response = client.get(f"{bookings_url()}/{booking_id}", headers=headers)

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == body["jobId"] == booking_id
    assert body["externalId"] == "routing-1"
    assert body["name"] == "Mary Ann Smith"
    assert body["address"]["zip"] == "78701"
    assert body["priority"] == "High"


@pytest.mark.parametrize("booking_id", [1000, 1001, 99999, 10**30])
def test_unknown_booking_is_not_found(client, headers, booking_id):
    response = client.get(f"{bookings_url()}/{booking_id}", headers=headers)

    assert_problem(response, 404)


def test_booking_without_required_fields_is_refused_field_by_field(client, headers):
    response = client.post(
        bookings_url(),
        {"isFirstTimeClient": "maybe", "address": {"state": "Texas"}, "priority": "Soon"},
        content_type="application/json",
        headers=headers,
    )

    body = assert_problem(response, 400)
    assert set(body["errors"]) == {
        "source",
        "name",
        "summary",
        "isFirstTimeClient",
        "address.state",
        "priority",
    }
    assert body["errors"]["source"] == ["This field is required."]
    assert not SimulatedJob.objects.exists()


@pytest.mark.parametrize("payload", [b"{not json", b"[1, 2]"])
def test_booking_that_is_not_a_json_object_is_refused(client, headers, payload):
    response = client.post(
        bookings_url(), payload, content_type="application/json", headers=headers
    )

    body = assert_problem(response, 400)
    assert list(body["errors"]) == ["body"]


def test_booking_with_an_invalid_email_is_refused(client, headers):
    response = create_booking(client, headers, contacts=[{"type": "Email", "value": "nope"}])

    body = assert_problem(response, 400)
    assert list(body["errors"]) == ["contacts"]


@pytest.mark.parametrize(
    ("overrides", "status", "title", "errors"),
    [
        (
            {"contacts": [{"type": "Email", "value": "error@test.com"}]},
            409,
            "Customer Conflict",
            {},
        ),
        (
            {"address": {"street": "1 Nowhere", "city": "X", "state": "NY", "zip": "00000"}},
            400,
            "Service Area Not Supported",
            {"zip": ["Service area not supported"]},
        ),
        (
            {"contacts": [{"type": "Phone", "value": "0000000000"}]},
            400,
            "Validation Error",
            {"phone": ["Invalid phone number"]},
        ),
    ],
)
def test_seed_error_triggers_answer_as_servicetitan(
    client, headers, overrides, status, title, errors
):
    response = create_booking(client, headers, **overrides)

    body = assert_problem(response, status)
    assert body["title"] == title
    assert body.get("errors") == errors
    assert not SimulatedJob.objects.exists()


def test_simulated_failure_is_a_503_with_retry_after(client, headers, settings):
    settings.SERVICETITAN = {**settings.SERVICETITAN, "simulation_failure_rate": 1.0}

    response = create_booking(client, headers)

    body = assert_problem(response, 503)
    assert body["title"] == "Service Unavailable"
    assert body["errors"] == {}
    assert response["Retry-After"] == "1"
    assert not SimulatedJob.objects.exists()


def test_job_is_read_with_its_number_priority_business_unit_and_booking(client, headers):
    booking_id = create_booking(client, headers).json()["id"]
    same_region = create_booking(client, headers, externalId="routing-2").json()["id"]
    other_region = create_booking(
        client,
        headers,
        externalId="routing-3",
        summary="Garage door tune-up and safety inspection",
        address={"street": "1 Pine", "city": "Seattle", "state": "WA", "zip": "98101"},
    ).json()["id"]

    response = client.get(f"{jobs_url()}/{booking_id}", headers=headers)

    assert response.status_code == 200
    job = SimulatedJob.objects.get(booking_id="routing-1")
    body = response.json()
    assert body["id"] == booking_id == job.job_id
    assert body["jobNumber"] == f"JOB-{booking_id:06d}"
    assert body["jobStatus"] == "Scheduled"
    assert body["completedOn"] is None
    assert body["createdOn"] and body["modifiedOn"]
    assert body["summary"] == job.summary
    assert body["priority"] == "High"
    assert body["customerId"] == job.customer_id
    assert body["externalData"] == [{"key": "bookingId", "value": "routing-1"}]

    def business_unit_id(job_id):
        return client.get(f"{jobs_url()}/{job_id}", headers=headers).json()["businessUnitId"]

    assert isinstance(body["businessUnitId"], int)
    assert business_unit_id(same_region) == body["businessUnitId"]
    assert business_unit_id(other_region) != body["businessUnitId"]
    assert client.get(f"{jobs_url()}/{other_region}", headers=headers).json()["priority"] == "Low"


@pytest.mark.parametrize(
    ("status", "job_status"),
    [
        (SimulatedJob.Status.SCHEDULED, "Scheduled"),
        (SimulatedJob.Status.DISPATCHED, "InProgress"),
        (SimulatedJob.Status.IN_PROGRESS, "InProgress"),
        (SimulatedJob.Status.COMPLETED, "Completed"),
        (SimulatedJob.Status.CANCELLED, "Canceled"),
    ],
)
def test_job_status_is_servicetitans(client, headers, status, job_status):
    job = SimulatedJobFactory(tenant=TENANT, status=status)

    response = client.get(f"{jobs_url()}/{job.job_id}", headers=headers)

    assert response.json()["jobStatus"] == job_status


@pytest.mark.parametrize("job_id", [1000, 1002, 10**30])
def test_unknown_job_is_not_found(client, headers, job_id):
    SimulatedJobFactory(tenant=TENANT)

    assert_problem(client.get(f"{jobs_url()}/{job_id}", headers=headers), 404)


def test_invoice_appears_once_the_job_is_completed(client, headers):
    job_id = create_booking(client, headers).json()["id"]
    other_job_id = create_booking(client, headers, externalId="routing-2").json()["id"]
    simulation = SimulatedServiceTitan(servicetitan_config(), tenant=TENANT)

    def invoices():
        return client.get(invoices_url(), {"jobId": job_id}, headers=headers).json()

    assert invoices()["data"] == []
    for status in ("dispatched", "in_progress"):
        simulation.update_job_status(job_id, status)
        assert invoices()["data"] == []
    simulation.update_job_status(job_id, "completed")

    body = invoices()
    job = SimulatedJob.objects.get(booking_id="routing-1")
    assert (body["page"], body["hasMore"], body["totalCount"]) == (1, False, None)
    [invoice] = body["data"]
    assert isinstance(invoice["id"], int)
    assert re.fullmatch(r"\d+\.\d{2}", invoice["total"])
    # A spring repair is high priority: 325.00 plus the simulation's per-job variation.
    assert Decimal(invoice["total"]) == Decimal("325.00") + (job.pk % 10) * 5
    assert invoice["job"] == {"id": job_id, "number": f"JOB-{job_id:06d}"}
    completed = client.get(f"{jobs_url()}/{job_id}", headers=headers).json()
    assert completed["jobStatus"] == "Completed"
    assert completed["completedOn"] is not None
    other = client.get(invoices_url(), {"jobId": other_job_id}, headers=headers).json()
    assert other["data"] == []
    assert len(client.get(invoices_url(), headers=headers).json()["data"]) == 1


def test_jobs_are_listed_by_created_date_range(client, headers):
    job_ids = [
        create_booking(client, headers, externalId=f"routing-{n}").json()["id"] for n in (1, 2, 3)
    ]
    for job_id, day in zip(job_ids, (1, 2, 3), strict=True):
        SimulatedJob.objects.filter(pk=job_id - SimulatedJob.JOB_ID_OFFSET).update(
            created_at=datetime(2025, 5, day, 12, tzinfo=UTC)
        )

    def listed(**query):
        body = client.get(jobs_url(), query, headers=headers).json()
        return [job["id"] for job in body["data"]]

    assert listed() == job_ids
    assert listed(createdOnOrAfter="2025-05-02T12:00:00Z") == job_ids[1:]
    assert listed(createdBefore="2025-05-02T12:00:00Z") == job_ids[:1]
    assert (
        listed(createdOnOrAfter="2025-05-02T00:00:00Z", createdBefore="2025-05-03T00:00:00Z")
        == job_ids[1:2]
    )
    page = client.get(jobs_url(), {"pageSize": 2, "page": 2}, headers=headers).json()
    assert ([job["id"] for job in page["data"]], page["hasMore"]) == (job_ids[2:], False)
    assert page["data"][0]["jobNumber"] == f"JOB-{job_ids[2]:06d}"


@pytest.mark.parametrize("field", ["createdOnOrAfter", "createdBefore"])
def test_jobs_listed_with_a_bad_date_are_refused(client, headers, field):
    response = client.get(jobs_url(), {field: "last tuesday"}, headers=headers)

    body = assert_problem(response, 400)
    assert list(body["errors"]) == [field]


def test_job_is_cancelled_once(client, headers):
    job_id = create_booking(client, headers).json()["id"]
    cancel_url = f"{jobs_url()}/{job_id}/cancel"
    cancel = {"reasonId": 31, "memo": "Customer cancelled through TradeEngage"}

    response = client.put(cancel_url, cancel, content_type="application/json", headers=headers)

    assert response.status_code == 200
    assert response.json() == {}
    job = SimulatedJob.objects.get()
    assert job.status == SimulatedJob.Status.CANCELLED
    assert job.cancel_reason == "Customer cancelled through TradeEngage"
    assert client.get(f"{jobs_url()}/{job_id}", headers=headers).json()["jobStatus"] == "Canceled"
    booking = client.get(f"{bookings_url()}/{job_id}", headers=headers).json()
    assert (booking["status"], booking["jobId"]) == ("Converted", job_id)
    again = client.put(cancel_url, cancel, content_type="application/json", headers=headers)
    body = assert_problem(again, 400)
    assert body["title"] == "Invalid Status Transition"


def test_cancel_without_a_memo_records_the_reasons_name(client, headers):
    job_id = create_booking(client, headers).json()["id"]

    response = client.put(
        f"{jobs_url()}/{job_id}/cancel",
        {"reasonId": 33, "memo": ""},
        content_type="application/json",
        headers=headers,
    )

    assert response.status_code == 200
    assert SimulatedJob.objects.get().cancel_reason == "Duplicate job"


def test_cancel_without_a_reason_is_refused(client, headers):
    job_id = create_booking(client, headers).json()["id"]

    response = client.put(
        f"{jobs_url()}/{job_id}/cancel", {}, content_type="application/json", headers=headers
    )

    body = assert_problem(response, 400)
    assert set(body["errors"]) == {"reasonId", "memo"}
    assert SimulatedJob.objects.get().status == SimulatedJob.Status.SCHEDULED


@pytest.mark.parametrize("reason_id", [0, 30, 99])
def test_cancel_with_a_reason_that_is_not_an_active_cancel_reason_is_refused(
    client, headers, reason_id
):
    job_id = create_booking(client, headers).json()["id"]

    response = client.put(
        f"{jobs_url()}/{job_id}/cancel",
        {"reasonId": reason_id, "memo": "Homeowner cancelled"},
        content_type="application/json",
        headers=headers,
    )

    body = assert_problem(response, 400)
    assert list(body["errors"]) == ["reasonId"]
    assert SimulatedJob.objects.get().status == SimulatedJob.Status.SCHEDULED


def test_cancel_by_post_is_not_allowed(client, headers):
    job_id = create_booking(client, headers).json()["id"]

    response = client.post(
        f"{jobs_url()}/{job_id}/cancel",
        {"reasonId": 31, "memo": "Homeowner cancelled"},
        content_type="application/json",
        headers=headers,
    )

    assert_problem(response, 405)
    assert response["Allow"] == "PUT"
    assert SimulatedJob.objects.get().status == SimulatedJob.Status.SCHEDULED


@pytest.mark.parametrize(
    ("query", "ids"), [({}, [30, 31, 32, 33]), ({"active": "True"}, [31, 32, 33])]
)
def test_job_cancel_reasons_are_listed_a_page_at_a_time(client, headers, query, ids):
    url = f"/servicetitan-sim/jpm/v2/tenant/{TENANT}/job-cancel-reasons"

    first = client.get(url, {**query, "pageSize": 2}, headers=headers).json()
    second = client.get(url, {**query, "pageSize": 2, "page": 2}, headers=headers).json()

    assert (first["page"], first["pageSize"], first["hasMore"]) == (1, 2, True)
    assert second["hasMore"] is False
    assert [reason["id"] for reason in first["data"] + second["data"]] == ids
    assert set(first["data"][0]) == {"id", "name", "active"}
    refused = client.get(url, {"active": "Maybe"}, headers=headers)
    assert list(assert_problem(refused, 400)["errors"]) == ["active"]


def test_cancel_of_an_unknown_job_is_not_found(client, headers):
    response = client.put(
        f"{jobs_url()}/1001/cancel",
        {"reasonId": 31, "memo": ""},
        content_type="application/json",
        headers=headers,
    )

    assert_problem(response, 404)


def test_tenants_see_only_their_own_jobs(client, headers):
    job_id = SimulatedJobFactory(
        tenant=TENANT, status=SimulatedJob.Status.COMPLETED, invoice_total=Decimal("180.00")
    ).job_id

    assert_problem(client.get(f"{bookings_url(OTHER_TENANT)}/{job_id}", headers=headers), 404)
    assert_problem(client.get(f"{jobs_url(OTHER_TENANT)}/{job_id}", headers=headers), 404)
    for url in (bookings_url(OTHER_TENANT), jobs_url(OTHER_TENANT), invoices_url(OTHER_TENANT)):
        body = client.get(url, headers=headers).json()
        assert (body["hasMore"], body["data"]) == (False, [])
    SimulatedJob.objects.update(status=SimulatedJob.Status.SCHEDULED)
    cancel = client.put(
        f"{jobs_url(OTHER_TENANT)}/{job_id}/cancel",
        {"reasonId": 31, "memo": "not yours"},
        content_type="application/json",
        headers=headers,
    )
    assert_problem(cancel, 404)
    assert SimulatedJob.objects.get().status == SimulatedJob.Status.SCHEDULED
    assert len(client.get(jobs_url(), headers=headers).json()["data"]) == 1


@pytest.mark.parametrize(
    ("method", "url", "allowed"),
    [
        ("delete", bookings_url(), "GET, POST"),
        ("post", f"{bookings_url()}/1001", "GET"),
        ("put", f"{jobs_url()}/1001", "GET"),
        ("get", f"{jobs_url()}/1001/cancel", "PUT"),
        ("post", f"{jobs_url()}/1001/cancel", "PUT"),
        ("post", invoices_url(), "GET"),
        ("get", TOKEN_URL, "POST"),
    ],
)
def test_wrong_method_is_not_allowed(client, headers, method, url, allowed):
    response = getattr(client, method)(url, headers=headers)

    assert assert_problem(response, 405)["errors"] == {}
    assert response["Allow"] == allowed


@pytest.mark.parametrize(
    "url",
    [
        "/servicetitan-sim/",
        "/servicetitan-sim/crm/v2/tenant/1234/customers",
        "/servicetitan-sim/jpm/v2/tenant/1234/jobs/abc",
        "/servicetitan-sim/jpm/v2/tenant/12-34/jobs/1001",
        "/servicetitan-sim/jpm/v2/tenant/1234/jobs/1001/",
    ],
)
def test_unknown_path_is_not_found(client, headers, url):
    assert assert_problem(client.get(url, headers=headers), 404)["errors"] == {}


def test_vendor_calls_need_no_csrf_token(headers):
    response = create_booking(Client(enforce_csrf_checks=True), headers)

    assert response.status_code == 200


def test_simulator_is_not_in_our_openapi_schema(client):
    schema = client.get("/openapi.json").json()

    assert not [path for path in schema["paths"] if "servicetitan-sim" in path]


def test_requests_above_the_limit_per_second_get_429_until_the_next_second(
    client, headers, settings, monkeypatch
):
    settings.SERVICETITAN_SIMULATOR_REQUESTS_PER_SECOND = 60
    monkeypatch.setattr(simulator_api, "clock", lambda: 1_000.0)
    for _ in range(60):
        assert client.get(jobs_url(), headers=headers).status_code == 200

    monkeypatch.setattr(simulator_api, "clock", lambda: 1_000.999)
    refused = client.get(jobs_url(), headers=headers)

    body = assert_problem(refused, 429)
    assert (body["title"], body["errors"], body["data"]) == ("Too Many Requests", {}, {})
    assert refused["Retry-After"] == "1"
    assert create_booking(client, headers).status_code == 429  # every endpoint of the slice
    other_app = {**headers, "ST-App-Key": "ak1.other"}
    assert client.get(jobs_url(), headers=other_app).status_code == 200
    assert client.get(jobs_url(OTHER_TENANT), headers=headers).status_code == 200
    assert issue_token(client).status_code == 200  # the token endpoint has no app key

    monkeypatch.setattr(simulator_api, "clock", lambda: 1_001.0)
    assert client.get(jobs_url(), headers=headers).status_code == 200


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_real_client_gets_429_over_http_and_succeeds_after_retry_after(
    live_server, settings, monkeypatch
):
    # Below the client's own budget (60/s): the client's bucket lets the burst through and the
    # simulator refuses it. A booking takes two requests: the lookup by externalId, the create.
    settings.SERVICETITAN_SIMULATOR_REQUESTS_PER_SECOND = 2
    settings.SYNC_RETRY_BACKOFF_SECONDS = [0.1]
    now = 1_000.0
    monkeypatch.setattr(simulator_api, "clock", lambda: now)
    simulator = f"{live_server.url}/servicetitan-sim"
    client = ServiceTitanApi(
        {
            "api_url": simulator,
            "auth_url": simulator,
            "client_id": "tradeengage",
            "client_secret": "s3cret",
            "app_key": "ak1.test",
            "tenant_id": TENANT,
            "booking_provider_id": "77",
            "requests_per_second": 60,
        }
    )
    client.create_job(BookingFactory(booking_id="routing-1"))
    second = BookingFactory(booking_id="routing-2")

    with pytest.raises(RetryableProviderError) as refused:
        client.create_job(second)
    assert (refused.value.code, refused.value.retry_after) == ("Rate Limited", 1.0)
    assert "HTTP 429 Too Many Requests" in str(refused.value)

    delay = PROVIDER_CALL_RETRY.delay(retries_so_far=0, retry_after=refused.value.retry_after)
    assert delay == 1.0  # Retry-After, longer than the policy's own wait, is honoured
    now += delay
    job = client.create_job(second)

    assert sorted(SimulatedJob.objects.values_list("booking_id", flat=True)) == [
        "routing-1",
        "routing-2",
    ]
    assert SimulatedJob.objects.get(booking_id="routing-2").job_id == job.id

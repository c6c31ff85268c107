import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.test import Client

from integrations.models import SimulatedBooking, SimulatedCustomer, SimulatedJob
from integrations.servicetitan.client import ServiceTitanApi
from integrations.servicetitan.simulator import api as simulator_api
from integrations.servicetitan.simulator import office
from integrations.servicetitan.simulator.api import TOKEN_CACHE_PREFIX
from integrations.tests.factories import (
    BookingFactory,
    SimulatedBookingFactory,
    SimulatedCustomerFactory,
    SimulatedJobFactory,
)

pytestmark = pytest.mark.django_db

TENANT = "1234"
OTHER_TENANT = "5678"
PROVIDER = "77"
TOKEN_URL = "/servicetitan-sim/connect/token"
# The properties of each response model in ServiceTitan's v2 OpenAPI specs (all of them: the
# models are closed), and the required ones.
BOOKING_PROPERTIES = {
    "id",
    "source",
    "createdOn",
    "name",
    "address",
    "customerType",
    "start",
    "summary",
    "campaignId",
    "businessUnitId",
    "isFirstTimeClient",
    "uploadedImages",
    "isSendConfirmationEmail",
    "status",
    "dismissingReasonId",
    "jobId",
    "externalId",
    "priority",
    "jobTypeId",
    "bookingProviderId",
    "modifiedOn",
}
JOB_PROPERTIES = {
    "id",
    "jobNumber",
    "customerId",
    "locationId",
    "jobStatus",
    "completedOn",
    "businessUnitId",
    "jobTypeId",
    "priority",
    "campaignId",
    "summary",
    "customFields",
    "appointmentCount",
    "firstAppointmentId",
    "lastAppointmentId",
    "recallForId",
    "warrantyId",
    "jobGeneratedLeadSource",
    "noCharge",
    "notificationsEnabled",
    "createdOn",
    "createdById",
    "modifiedOn",
    "tagTypeIds",
    "leadCallId",
    "bookingId",
    "soldById",
    "externalData",
}
JOB_REQUIRED = {
    "id",
    "jobNumber",
    "customerId",
    "locationId",
    "jobStatus",
    "businessUnitId",
    "jobTypeId",
    "priority",
    "campaignId",
    "customFields",
    "appointmentCount",
    "firstAppointmentId",
    "lastAppointmentId",
    "noCharge",
    "notificationsEnabled",
    "createdOn",
    "createdById",
    "modifiedOn",
    "tagTypeIds",
    "externalData",
}


def bookings_url(tenant: str = TENANT, provider: str = PROVIDER) -> str:
    return f"/servicetitan-sim/crm/v2/tenant/{tenant}/booking-provider/{provider}/bookings"


def jobs_url(tenant: str = TENANT) -> str:
    return f"/servicetitan-sim/jpm/v2/tenant/{tenant}/jobs"


def invoices_url(tenant: str = TENANT) -> str:
    return f"/servicetitan-sim/accounting/v2/tenant/{tenant}/invoices"


def customers_url(tenant: str = TENANT) -> str:
    return f"/servicetitan-sim/crm/v2/tenant/{tenant}/customers"


def office_url(booking_id: int, act: str, tenant: str = TENANT, provider: str = PROVIDER) -> str:
    return (
        f"/servicetitan-sim/office/tenant/{tenant}/booking-provider/{provider}/bookings/"
        f"{booking_id}/{act}"
    )


@pytest.fixture(autouse=True)
def _simulation_without_failures_or_delays(settings):
    settings.SERVICETITAN = {
        **settings.SERVICETITAN,
        "simulation_failure_rate": 0.0,
        "simulation_delays": False,
    }
    settings.SERVICETITAN_SIMULATOR_CLIENTS = {"tradeengage": "s3cret", "partner": "p4ss:word"}
    settings.SERVICETITAN_SIMULATOR_CONVERT_AFTER_SECONDS = None
    settings.SERVICETITAN_SIMULATOR_COMPLETE_AFTER_SECONDS = None


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
        "customerType": "Residential",
        "priority": "Urgent",
        "start": "2025-03-04T15:00:00Z",
        **overrides,
    }


def create_booking(client, headers, tenant: str = TENANT, provider: str = PROVIDER, **overrides):
    return client.post(
        bookings_url(tenant, provider),
        booking_request(**overrides),
        content_type="application/json",
        headers=headers,
    )


def office_do(client, headers, booking_id: int, act: str, body=None, **url):
    """The office's convert or dismiss, as a JSON POST (an empty body when ``body`` is None)."""
    return client.post(
        office_url(booking_id, act, **url),
        body or {},
        content_type="application/json",
        headers=headers,
    )


def put(client, headers, url: str, body) -> object:
    return client.put(url, body, content_type="application/json", headers=headers)


def converted_job(**booking_fields) -> SimulatedJob:
    """A job the office converted from a booking of the tenant (the booking's fields given)."""
    return office.booking_convert(SimulatedBookingFactory(**booking_fields))


def completed_job(**booking_fields) -> SimulatedJob:
    return office.job_complete(converted_job(**booking_fields))


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


def listed_ids(client, headers, url: str, **query) -> list[int]:
    response = client.get(url, query, headers=headers)
    assert response.status_code == 200, response.json()
    return [record.get("id", record.get("jobId")) for record in response.json()["data"]]


# Tokens and authorization.


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
    assert not SimulatedBooking.objects.exists()


def test_office_endpoints_need_a_token_too(client):
    booking = SimulatedBookingFactory()

    for act in ("convert", "dismiss"):
        assert_problem(client.post(office_url(booking.booking_id, act)), 401)
    booking.refresh_from_db()
    assert booking.status == SimulatedBooking.Status.NEW


# Creating and reading bookings.


def test_booking_is_stored_new_without_a_job_and_echoes_what_was_sent(client, headers):
    response = create_booking(
        client,
        headers,
        campaignId=41,
        businessUnitId=51,
        jobTypeId=60,
        uploadedImages=["https://example.com/spring.jpg"],
        isSendConfirmationEmail=False,
    )

    assert response.status_code == 200
    booking = SimulatedBooking.objects.get()
    body = response.json()
    assert body == {
        "id": 5_000_000 + booking.pk,
        "source": "TradeEngage",
        "createdOn": body["createdOn"],
        "name": "Mary Ann Smith",
        "address": {
            "street": "12 Oak Street",
            "city": "Austin",
            "state": "TX",
            "zip": "78701",
            "country": "USA",
        },
        "customerType": "Residential",
        "start": "2025-03-04T15:00:00Z",
        "summary": "Garage door spring repair/replacement: the left spring snapped",
        "campaignId": 41,
        "businessUnitId": 51,
        "isFirstTimeClient": True,
        "uploadedImages": ["https://example.com/spring.jpg"],
        "isSendConfirmationEmail": False,
        "status": "New",
        "dismissingReasonId": None,
        "jobId": None,
        "externalId": "routing-1",
        "priority": "Urgent",
        "jobTypeId": 60,
        "bookingProviderId": 77,
        "modifiedOn": body["modifiedOn"],
    }
    assert abs(datetime.fromisoformat(body["createdOn"]) - booking.created_at) < timedelta(
        milliseconds=1
    )
    assert (booking.tenant, booking.booking_provider) == (TENANT, 77)
    assert booking.contacts == booking_request()["contacts"]
    assert not SimulatedJob.objects.exists()
    assert not SimulatedCustomer.objects.exists()


def test_booking_read_by_id_is_the_booking_created(client, headers):
    created = create_booking(client, headers, customerType="Commercial", priority="Low").json()

    response = client.get(f"{bookings_url()}/{created['id']}", headers=headers)

    assert response.status_code == 200
    body = response.json()
    assert body == created
    assert set(body) == BOOKING_PROPERTIES
    assert (body["customerType"], body["priority"], body["status"]) == ("Commercial", "Low", "New")


def test_booking_sent_without_a_start_starts_when_it_was_made(client, headers):
    request = booking_request()
    del request["start"], request["priority"], request["customerType"], request["address"]

    response = client.post(
        bookings_url(), request, content_type="application/json", headers=headers
    )

    body = response.json()
    assert response.status_code == 200
    assert body["start"] == body["createdOn"]
    assert (body["priority"], body["customerType"], body["address"]) == (None, None, None)


def test_booking_with_the_same_external_id_twice_is_a_conflict(client, headers):
    first = create_booking(client, headers)

    second = create_booking(client, headers, name="Someone Else")

    assert first.status_code == 200
    body = assert_problem(second, 409)
    assert body["title"] == "Conflict"
    assert SimulatedBooking.objects.get().name == "Mary Ann Smith"


@pytest.mark.parametrize(
    ("tenant", "provider"), [(OTHER_TENANT, PROVIDER), (TENANT, "78")], ids=["tenant", "provider"]
)
def test_same_external_id_under_another_tenant_or_provider_is_another_booking(
    client, headers, tenant, provider
):
    first = create_booking(client, headers).json()

    second = create_booking(client, headers, tenant=tenant, provider=provider)

    assert second.status_code == 200
    assert second.json()["id"] != first["id"]
    assert SimulatedBooking.objects.count() == 2


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"colour": "red"}, "colour"),
        ({"source": None}, "source"),
        ({"source": 7}, "source"),
        ({"name": None}, "name"),
        ({"summary": None}, "summary"),
        ({"isFirstTimeClient": None}, "isFirstTimeClient"),
        ({"isFirstTimeClient": "true"}, "isFirstTimeClient"),
        ({"isFirstTimeClient": 1}, "isFirstTimeClient"),
        ({"isSendConfirmationEmail": "false"}, "isSendConfirmationEmail"),
        ({"externalId": None}, "externalId"),
        ({"externalId": ""}, "externalId"),
        ({"externalId": "   "}, "externalId"),
        ({"externalId": 41}, "externalId"),
        ({"campaignId": "41"}, "campaignId"),
        ({"campaignId": 41.0}, "campaignId"),
        ({"campaignId": True}, "campaignId"),
        ({"campaignId": 40}, "campaignId"),
        ({"campaignId": 99}, "campaignId"),
        ({"businessUnitId": 59}, "businessUnitId"),
        ({"businessUnitId": "51"}, "businessUnitId"),
        ({"jobTypeId": 68}, "jobTypeId"),
        ({"jobTypeId": 999}, "jobTypeId"),
        (
            {"address": {"city": "Austin", "state": "TX", "zip": "78701", "country": "USA"}},
            "address.street",
        ),
        (
            {"address": {"street": "1 Oak", "state": "TX", "zip": "78701", "country": "USA"}},
            "address.city",
        ),
        (
            {"address": {"street": "1 Oak", "city": "Austin", "zip": "78701", "country": "USA"}},
            "address.state",
        ),
        (
            {"address": {"street": "1 Oak", "city": "Austin", "state": "TX", "country": "USA"}},
            "address.zip",
        ),
        (
            {"address": {"street": "1 Oak", "city": "Austin", "state": "TX", "zip": "78701"}},
            "address.country",
        ),
        ({"address": {**booking_request()["address"], "zip": 78701}}, "address.zip"),
        ({"address": {**booking_request()["address"], "county": "Travis"}}, "address.county"),
        ({"contacts": [{"type": "Pager", "value": "5125550100"}]}, "contacts.0.type"),
        ({"contacts": [{"type": "Phone"}]}, "contacts.0.value"),
        ({"contacts": [{"type": "Phone", "value": 5125550100}]}, "contacts.0.value"),
        ({"contacts": [{"type": "Email", "value": "nope"}]}, "contacts.0"),
        ({"contacts": [{"type": "Phone", "value": "5", "kind": "home"}]}, "contacts.0.kind"),
        ({"customerType": "Industrial"}, "customerType"),
        ({"priority": "Soon"}, "priority"),
        ({"priority": "urgent"}, "priority"),
        ({"start": "next tuesday"}, "start"),
        ({"uploadedImages": [1]}, "uploadedImages.0"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_booking_breaking_a_rule_of_create_booking_request_is_refused(
    client, headers, change, field
):
    request = {
        key: value for key, value in {**booking_request(), **change}.items() if value is not None
    }

    response = client.post(
        bookings_url(), request, content_type="application/json", headers=headers
    )

    body = assert_problem(response, 400)
    assert body["title"] == "Validation Error"
    assert list(body["errors"]) == [field]
    assert not SimulatedBooking.objects.exists()


def test_booking_without_required_fields_is_refused_field_by_field(client, headers):
    response = client.post(bookings_url(), {}, content_type="application/json", headers=headers)

    body = assert_problem(response, 400)
    assert set(body["errors"]) == {"source", "name", "summary", "isFirstTimeClient", "externalId"}
    assert body["errors"]["source"] == ["This field is required."]


@pytest.mark.parametrize("payload", [b"{not json", b"[1, 2]", b'"booking"'])
def test_booking_that_is_not_a_json_object_is_refused(client, headers, payload):
    response = client.post(
        bookings_url(), payload, content_type="application/json", headers=headers
    )

    body = assert_problem(response, 400)
    assert list(body["errors"]) == ["body"]


def test_booking_with_the_tenants_active_ids_is_accepted(client, headers):
    response = create_booking(client, headers, campaignId=42, businessUnitId=55, jobTypeId=69)

    assert response.status_code == 200
    booking = SimulatedBooking.objects.get()
    assert (booking.campaign_id, booking.business_unit_id, booking.job_type_id) == (42, 55, 69)


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
            {
                "address": {
                    "street": "1 Nowhere",
                    "city": "X",
                    "state": "NY",
                    "zip": "00000",
                    "country": "USA",
                }
            },
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
        (
            {"contacts": [{"type": "MobilePhone", "value": "(000) 000-0000"}]},
            400,
            "Validation Error",
            {"phone": ["Invalid phone number"]},
        ),
    ],
    ids=["email", "zip", "phone", "formatted mobile phone"],
)
def test_seed_error_triggers_answer_as_servicetitan(
    client, headers, overrides, status, title, errors
):
    response = create_booking(client, headers, **overrides)

    body = assert_problem(response, status)
    assert body["title"] == title
    assert body["errors"] == errors
    assert not SimulatedBooking.objects.exists()


def test_simulated_failure_is_a_503_with_retry_after(client, headers, settings):
    settings.SERVICETITAN = {**settings.SERVICETITAN, "simulation_failure_rate": 1.0}

    response = create_booking(client, headers)

    body = assert_problem(response, 503)
    assert body["title"] == "Service Unavailable"
    assert body["errors"] == {}
    assert response["Retry-After"] == "1"
    assert not SimulatedBooking.objects.exists()


@pytest.mark.parametrize("booking_id", [1000, 5_000_000, 5_000_099, 10**30])
def test_unknown_booking_is_not_found(client, headers, booking_id):
    SimulatedBookingFactory()

    assert_problem(client.get(f"{bookings_url()}/{booking_id}", headers=headers), 404)


def test_a_booking_id_is_never_a_job_id(client, headers):
    job = converted_job()
    booking_id = job.booking.booking_id

    booking = client.get(f"{bookings_url()}/{booking_id}", headers=headers).json()

    assert booking["jobId"] == job.job_id != booking_id
    assert_problem(client.get(f"{jobs_url()}/{booking_id}", headers=headers), 404)
    assert_problem(client.get(f"{bookings_url()}/{job.job_id}", headers=headers), 404)


# Listing bookings.


def test_bookings_are_listed_a_page_at_a_time_and_found_by_external_id(client, headers):
    ids = [
        create_booking(client, headers, externalId=f"routing-{n}").json()["id"] for n in (1, 2, 3)
    ]

    first_page = client.get(bookings_url(), {"page": 1, "pageSize": 2}, headers=headers).json()
    last_page = client.get(bookings_url(), {"page": 2, "pageSize": 2}, headers=headers).json()
    found = client.get(bookings_url(), {"externalId": "routing-2"}, headers=headers).json()

    assert (first_page["page"], first_page["pageSize"]) == (1, 2)
    assert first_page["hasMore"] is True
    assert first_page["totalCount"] is None
    assert [booking["id"] for booking in first_page["data"]] == ids[:2]
    assert last_page["hasMore"] is False
    assert [booking["id"] for booking in last_page["data"]] == ids[2:]
    assert (found["page"], found["pageSize"], found["hasMore"]) == (1, 50, False)
    assert [booking["externalId"] for booking in found["data"]] == ["routing-2"]
    assert found["data"][0]["status"] == "New"
    assert listed_ids(client, headers, bookings_url(), externalId="routing-9") == []


def test_bookings_are_listed_for_the_tenant_and_booking_provider_only(client, headers):
    ours = SimulatedBookingFactory().booking_id
    SimulatedBookingFactory(tenant=OTHER_TENANT)
    other_provider = SimulatedBookingFactory(booking_provider=78).booking_id

    assert listed_ids(client, headers, bookings_url()) == [ours]
    assert listed_ids(client, headers, bookings_url(provider="78")) == [other_provider]
    assert_problem(client.get(f"{bookings_url()}/{other_provider}", headers=headers), 404)
    assert_problem(client.get(f"{bookings_url(OTHER_TENANT)}/{ours}", headers=headers), 404)


def test_bookings_are_listed_by_created_and_modified_ranges(client, headers):
    bookings = SimulatedBookingFactory.create_batch(3)
    for day, booking in enumerate(bookings, start=1):
        SimulatedBooking.objects.filter(pk=booking.pk).update(
            created_at=datetime(2025, 5, day, 12, tzinfo=UTC),
            updated_at=datetime(2025, 6, 4 - day, 12, tzinfo=UTC),
        )
    ids = [booking.booking_id for booking in bookings]

    def listed(**query):
        return listed_ids(client, headers, bookings_url(), **query)

    assert listed(createdOnOrAfter="2025-05-02T12:00:00Z") == ids[1:]
    assert listed(createdBefore="2025-05-02T12:00:00Z") == ids[:1]
    assert listed(modifiedOnOrAfter="2025-06-02T12:00:00Z") == ids[:2]
    assert listed(modifiedBefore="2025-06-02T12:00:00Z") == ids[2:]
    assert (
        listed(createdOnOrAfter="2025-05-02T00:00:00Z", modifiedBefore="2025-06-03T00:00:00Z")
        == ids[1:]
    )


def test_bookings_and_jobs_are_looked_up_by_ids_of_the_tenant_only(client, headers):
    jobs = [converted_job(), converted_job()]
    other = converted_job(tenant=OTHER_TENANT)

    for url, ids in (
        (bookings_url(), [job.booking.booking_id for job in [*jobs, other]]),
        (jobs_url(), [job.job_id for job in [*jobs, other]]),
    ):
        wanted = ",".join(map(str, [ids[1], ids[2], 999999]))
        body = client.get(url, {"ids": wanted}, headers=headers).json()
        assert [record["id"] for record in body["data"]] == [ids[1]]
        assert body["hasMore"] is False


@pytest.mark.parametrize(
    "ids",
    [",".join(str(1001 + n) for n in range(51)), "1001,JOB-1002", "1001,,1002", "-1", "1.5"],
    ids=["51 ids", "not an id", "empty item", "negative", "decimal"],
)
def test_a_lookup_by_more_than_50_ids_or_by_what_is_no_id_is_refused(client, headers, ids):
    for url in (bookings_url(), jobs_url(), invoices_url(), customers_url()):
        body = assert_problem(client.get(url, {"ids": ids}, headers=headers), 400)
        assert list(body["errors"]) == ["ids"]


def test_a_lookup_by_50_ids_is_answered(client, headers):
    ids = ",".join(str(1001 + n) for n in range(50))

    for url in (bookings_url(), jobs_url(), invoices_url(), customers_url()):
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
    for url in (bookings_url(), jobs_url(), invoices_url(), customers_url()):
        body = assert_problem(client.get(url, query, headers=headers), 400)
        assert body["title"] == "Validation Error"
        assert list(body["errors"]) == [field]


def test_pages_hold_50_by_default_and_up_to_5000(client, headers):
    SimulatedBookingFactory.create_batch(51)

    default = client.get(bookings_url(), headers=headers).json()
    largest = client.get(bookings_url(), {"pageSize": 5000}, headers=headers).json()
    second = client.get(bookings_url(), {"page": 2}, headers=headers).json()

    assert (default["page"], default["pageSize"], default["hasMore"]) == (1, 50, True)
    assert len(default["data"]) == 50
    assert (largest["pageSize"], largest["hasMore"], len(largest["data"])) == (5000, False, 51)
    assert (second["page"], second["hasMore"], len(second["data"])) == (2, False, 1)


@pytest.mark.parametrize(("include_total", "total"), [("true", 3), ("false", None), (None, None)])
def test_total_count_is_sent_only_when_asked_for(client, headers, include_total, total):
    for _ in range(3):
        completed_job()
    query = {"pageSize": 2}
    if include_total is not None:
        query["includeTotal"] = include_total

    for url in (bookings_url(), jobs_url(), invoices_url()):
        body = client.get(url, query, headers=headers).json()
        assert list(body) == ["page", "pageSize", "hasMore", "totalCount", "data"]
        assert (body["totalCount"], body["hasMore"], len(body["data"])) == (total, True, 2)


# Path parameters.


@pytest.mark.parametrize("tenant", ["acme42", "12345678901234567890", "9223372036854775808"])
def test_a_tenant_that_is_not_an_integer_id_is_refused(client, headers, tenant):
    for url in (bookings_url(tenant), jobs_url(tenant), invoices_url(tenant)):
        body = assert_problem(client.get(url, headers=headers), 400)
        assert list(body["errors"]) == ["tenant"]
    assert_problem(create_booking(client, headers, tenant=tenant), 400)
    assert not SimulatedBooking.objects.exists()


@pytest.mark.parametrize("provider", ["tradeengage", "-7", "9223372036854775808"])
def test_a_booking_provider_that_is_not_an_integer_id_is_refused(client, headers, provider):
    body = assert_problem(client.get(bookings_url(provider=provider), headers=headers), 400)

    assert list(body["errors"]) == ["provider"]
    assert_problem(create_booking(client, headers, provider=provider), 400)
    assert not SimulatedBooking.objects.exists()


def test_a_tenant_is_checked_only_once_the_caller_is_authorized(client):
    assert_problem(client.get(jobs_url("acme42")), 401)


# The office: converting and dismissing bookings.


def test_office_converts_a_booking_into_a_scheduled_job(client, headers):
    booking_id = create_booking(
        client, headers, campaignId=41, businessUnitId=51, jobTypeId=60
    ).json()["id"]

    response = office_do(client, headers, booking_id, "convert")

    assert response.status_code == 200
    job = SimulatedJob.objects.get()
    customer = SimulatedCustomer.objects.get()
    assert response.json() == {
        "bookingId": booking_id,
        "jobId": job.job_id,
        "jobNumber": f"JOB-{job.job_id:06d}",
    }
    booking = client.get(f"{bookings_url()}/{booking_id}", headers=headers).json()
    assert (booking["status"], booking["jobId"]) == ("Converted", job.job_id)
    body = client.get(f"{jobs_url()}/{job.job_id}", headers=headers).json()
    assert set(body) == JOB_PROPERTIES
    assert all(body[name] is not None for name in JOB_REQUIRED)
    assert body["id"] == job.job_id
    assert body["jobNumber"] == f"JOB-{job.job_id:06d}"
    assert body["jobStatus"] == "Scheduled"
    assert (body["customerId"], body["locationId"]) == (
        customer.customer_id,
        customer.location_id,
    )
    assert (body["campaignId"], body["businessUnitId"], body["jobTypeId"]) == (41, 51, 60)
    assert body["bookingId"] == booking_id
    assert body["priority"] == "Urgent"
    assert body["summary"] == "Garage door spring repair/replacement: the left spring snapped"
    assert body["completedOn"] is None


def test_a_booking_converted_without_ids_lands_on_the_offices_fallbacks(client, headers):
    booking_id = create_booking(client, headers).json()["id"]

    job_id = office_do(client, headers, booking_id, "convert").json()["jobId"]

    body = client.get(f"{jobs_url()}/{job_id}", headers=headers).json()
    assert (body["campaignId"], body["businessUnitId"], body["jobTypeId"]) == (42, 50, 69)


def test_a_booking_is_converted_once(client, headers):
    booking_id = SimulatedBookingFactory().booking_id
    office_do(client, headers, booking_id, "convert")

    again = office_do(client, headers, booking_id, "convert")

    body = assert_problem(again, 409)
    assert body["title"] == "Conflict"
    assert list(body["errors"]) == [""]
    assert SimulatedJob.objects.count() == 1


def test_office_dismisses_a_booking_with_the_default_reason(client, headers):
    booking_id = SimulatedBookingFactory().booking_id

    response = office_do(client, headers, booking_id, "dismiss")

    assert response.status_code == 200
    assert response.json() == {"bookingId": booking_id, "status": "Dismissed"}
    booking = client.get(f"{bookings_url()}/{booking_id}", headers=headers).json()
    assert (booking["status"], booking["dismissingReasonId"], booking["jobId"]) == (
        "Dismissed",
        72,
        None,
    )


def test_office_dismisses_a_booking_with_a_given_reason(client, headers):
    booking_id = SimulatedBookingFactory().booking_id

    response = office_do(client, headers, booking_id, "dismiss", {"dismissingReasonId": 73})

    assert response.status_code == 200
    assert SimulatedBooking.objects.get().dismissing_reason_id == 73


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"dismissingReasonId": 99}, ""),
        ({"dismissingReasonId": "71"}, "dismissingReasonId"),
        ({"reason": "spam"}, "reason"),
    ],
)
def test_office_refuses_to_dismiss_with_a_bad_reason(client, headers, body, field):
    booking_id = SimulatedBookingFactory().booking_id

    response = office_do(client, headers, booking_id, "dismiss", body)

    assert list(assert_problem(response, 400)["errors"]) == [field]
    assert SimulatedBooking.objects.get().status == SimulatedBooking.Status.NEW


@pytest.mark.parametrize(("first", "then"), [("convert", "dismiss"), ("dismiss", "convert")])
def test_office_acts_only_on_a_new_booking(client, headers, first, then):
    booking_id = SimulatedBookingFactory().booking_id
    office_do(client, headers, booking_id, first)

    assert_problem(office_do(client, headers, booking_id, then), 409)
    assert SimulatedJob.objects.count() == (1 if first == "convert" else 0)


@pytest.mark.parametrize("act", ["convert", "dismiss"])
def test_office_finds_only_the_tenants_and_providers_bookings(client, headers, act):
    booking_id = SimulatedBookingFactory().booking_id

    assert_problem(office_do(client, headers, booking_id, act, tenant=OTHER_TENANT), 404)
    assert_problem(office_do(client, headers, booking_id, act, provider="78"), 404)
    assert_problem(office_do(client, headers, booking_id + 1, act), 404)
    assert SimulatedBooking.objects.get().status == SimulatedBooking.Status.NEW


# Jobs.


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
    job = converted_job()
    SimulatedJob.objects.filter(pk=job.pk).update(status=status)

    response = client.get(f"{jobs_url()}/{job.job_id}", headers=headers)

    assert response.json()["jobStatus"] == job_status


@pytest.mark.parametrize("job_id", [1000, 1002, 10**30])
def test_unknown_job_is_not_found(client, headers, job_id):
    converted_job()

    assert_problem(client.get(f"{jobs_url()}/{job_id}", headers=headers), 404)


def test_jobs_of_the_seed_simulation_are_not_in_the_api(client, headers):
    job = SimulatedJobFactory(tenant=TENANT)

    assert_problem(client.get(f"{jobs_url()}/{job.job_id}", headers=headers), 404)
    assert listed_ids(client, headers, jobs_url()) == []


def test_jobs_are_listed_by_created_modified_and_completed_ranges(client, headers):
    jobs = [completed_job(), completed_job(), completed_job()]
    for day, job in enumerate(jobs, start=1):
        SimulatedJob.objects.filter(pk=job.pk).update(
            created_at=datetime(2025, 5, day, 12, tzinfo=UTC),
            updated_at=datetime(2025, 6, 4 - day, 12, tzinfo=UTC),
            completed_at=datetime(2025, 7, day, 12, tzinfo=UTC),
        )
    ids = [job.job_id for job in jobs]

    def listed(**query):
        return listed_ids(client, headers, jobs_url(), **query)

    assert listed() == ids
    assert listed(createdOnOrAfter="2025-05-02T12:00:00Z") == ids[1:]
    assert listed(createdBefore="2025-05-02T12:00:00Z") == ids[:1]
    assert (
        listed(createdOnOrAfter="2025-05-02T00:00:00Z", createdBefore="2025-05-03T00:00:00Z")
        == ids[1:2]
    )
    assert listed(modifiedOnOrAfter="2025-06-02T12:00:00Z") == ids[:2]
    assert listed(modifiedBefore="2025-06-02T12:00:00Z") == ids[2:]
    assert listed(completedOnOrAfter="2025-07-03T00:00:00Z") == ids[2:]
    assert listed(completedBefore="2025-07-02T00:00:00Z") == ids[:1]
    page = client.get(jobs_url(), {"pageSize": 2, "page": 2}, headers=headers).json()
    assert ([job["id"] for job in page["data"]], page["hasMore"]) == (ids[2:], False)


def test_jobs_are_found_by_number_booking_and_customer(client, headers):
    first = converted_job()
    second = converted_job(contacts=[{"type": "Phone", "value": "2065550199"}])

    def listed(**query):
        return listed_ids(client, headers, jobs_url(), **query)

    assert listed(number=second.job_number) == [second.job_id]
    assert listed(number=str(second.job_id)) == [second.job_id]
    assert listed(number="JOB-ABC") == []
    assert listed(bookingId=first.booking.booking_id) == [first.job_id]
    assert listed(bookingId=first.job_id) == []
    assert listed(customerId=second.simulated_customer.customer_id) == [second.job_id]
    assert listed(customerId=1) == []


@pytest.mark.parametrize(
    ("job_status", "expected"),
    [
        ("Scheduled", ["scheduled"]),
        ("InProgress", ["dispatched", "in_progress"]),
        ("Completed,Canceled", ["completed", "cancelled"]),
        ("Hold", []),
    ],
)
def test_jobs_are_found_by_one_status_or_several(client, headers, job_status, expected):
    jobs = {}
    for status in SimulatedJob.Status.values:
        job = converted_job()
        SimulatedJob.objects.filter(pk=job.pk).update(status=status)
        jobs[status] = job.job_id

    assert listed_ids(client, headers, jobs_url(), jobStatus=job_status) == [
        jobs[status] for status in expected
    ]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"jobStatus": "Done"}, "jobStatus"),
        ({"jobStatus": "Scheduled,"}, "jobStatus"),
        ({"bookingId": "B-1"}, "bookingId"),
        ({"customerId": "-1"}, "customerId"),
        ({"createdOnOrAfter": "last tuesday"}, "createdOnOrAfter"),
        ({"createdBefore": "last tuesday"}, "createdBefore"),
        ({"modifiedOnOrAfter": "yesterday"}, "modifiedOnOrAfter"),
        ({"completedBefore": "soon"}, "completedBefore"),
    ],
)
def test_jobs_listed_with_a_bad_filter_are_refused(client, headers, query, field):
    body = assert_problem(client.get(jobs_url(), query, headers=headers), 400)

    assert list(body["errors"]) == [field]


# Completing, invoicing and cancelling jobs.


def test_complete_completes_the_job_and_invoices_it(client, headers):
    job = converted_job()
    other = converted_job()

    response = put(
        client,
        headers,
        f"{jobs_url()}/{job.job_id}/complete",
        {"completedOn": "2025-03-05T17:30:00Z"},
    )

    assert response.status_code == 200
    assert response.content == b""  # jpm v2: 200, "The request has succeeded", no content
    body = client.get(f"{jobs_url()}/{job.job_id}", headers=headers).json()
    assert (body["jobStatus"], body["completedOn"]) == ("Completed", "2025-03-05T17:30:00Z")
    invoices = client.get(invoices_url(), {"jobId": job.job_id}, headers=headers).json()
    [invoice] = invoices["data"]
    assert (invoices["page"], invoices["hasMore"], invoices["totalCount"]) == (1, False, None)
    assert isinstance(invoice["id"], int)
    assert re.fullmatch(r"\d+\.\d{2}", invoice["total"])
    job.refresh_from_db()
    # A spring repair is high priority: 325.00 plus the simulation's per-job variation.
    assert Decimal(invoice["total"]) == Decimal("325.00") + (job.pk % 10) * 5
    assert invoice["invoiceDate"] == "2025-03-05T17:30:00Z"
    assert invoice["job"] == {
        "id": job.job_id,
        "number": job.job_number,
        "type": "Unknown",
    }
    assert invoice["customer"]["id"] == job.simulated_customer.customer_id
    assert invoice["businessUnit"] == {"id": 50, "name": "Residential Service"}
    assert client.get(invoices_url(), {"jobId": other.job_id}, headers=headers).json()["data"] == []
    assert listed_ids(client, headers, invoices_url()) == [invoice["id"]]


@pytest.mark.parametrize("outcome", [SimulatedJob.Status.COMPLETED, SimulatedJob.Status.CANCELLED])
def test_completing_a_job_already_completed_or_cancelled_is_a_conflict(client, headers, outcome):
    job = converted_job()
    SimulatedJob.objects.filter(pk=job.pk).update(status=outcome)

    response = put(
        client,
        headers,
        f"{jobs_url()}/{job.job_id}/complete",
        {"completedOn": "2025-03-05T17:30:00Z"},
    )

    assert_problem(response, 409)
    job.refresh_from_db()
    assert (job.status, job.invoice_total) == (outcome, None)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "completedOn"),
        ({"completedOn": "after lunch"}, "completedOn"),
        ({"completedOn": "2025-03-05T17:30:00Z", "invoice": True}, "invoice"),
    ],
)
def test_complete_with_a_bad_body_is_refused(client, headers, body, field):
    job = converted_job()

    response = put(client, headers, f"{jobs_url()}/{job.job_id}/complete", body)

    assert list(assert_problem(response, 400)["errors"]) == [field]
    job.refresh_from_db()
    assert job.status == SimulatedJob.Status.SCHEDULED


def test_complete_of_an_unknown_job_is_not_found(client, headers):
    response = put(
        client, headers, f"{jobs_url()}/1001/complete", {"completedOn": "2025-03-05T17:30:00Z"}
    )

    assert_problem(response, 404)


def test_invoices_are_found_by_ids_job_number_and_customer(client, headers):
    first = completed_job()
    second = completed_job(contacts=[{"type": "Phone", "value": "2065550199"}])
    first_invoice, second_invoice = listed_ids(client, headers, invoices_url())

    def listed(**query):
        return listed_ids(client, headers, invoices_url(), **query)

    assert listed(ids=f"{second_invoice},{first.job_id}") == [second_invoice]
    assert listed(jobNumber=first.job_number) == [first_invoice]
    assert listed(jobNumber="JOB-ABC") == []
    assert listed(customerId=second.simulated_customer.customer_id) == [second_invoice]
    assert listed(jobId=second.job_id) == [second_invoice]


def test_job_is_cancelled_once(client, headers):
    job = converted_job()
    cancel_url = f"{jobs_url()}/{job.job_id}/cancel"
    cancel = {"reasonId": 32, "memo": "Customer cancelled through TradeEngage"}

    response = put(client, headers, cancel_url, cancel)

    assert response.status_code == 200
    assert response.content == b""  # jpm v2: 200, "The request has succeeded", no content
    job.refresh_from_db()
    assert (job.status, job.cancel_reason_id) == (SimulatedJob.Status.CANCELLED, 32)
    assert job.cancel_reason == "Customer cancelled through TradeEngage"
    body = client.get(f"{jobs_url()}/{job.job_id}", headers=headers).json()
    assert body["jobStatus"] == "Canceled"
    booking = client.get(f"{bookings_url()}/{job.booking.booking_id}", headers=headers).json()
    assert (booking["status"], booking["jobId"]) == ("Converted", job.job_id)
    assert_problem(put(client, headers, cancel_url, cancel), 400)


def test_cancelling_a_completed_job_is_refused(client, headers):
    job = completed_job()

    response = put(
        client, headers, f"{jobs_url()}/{job.job_id}/cancel", {"reasonId": 31, "memo": ""}
    )

    assert_problem(response, 400)
    job.refresh_from_db()
    assert job.status == SimulatedJob.Status.COMPLETED


def test_cancel_without_a_memo_records_the_reasons_name(client, headers):
    job = converted_job()

    response = put(
        client, headers, f"{jobs_url()}/{job.job_id}/cancel", {"reasonId": 33, "memo": ""}
    )

    assert response.status_code == 200
    job.refresh_from_db()
    assert job.cancel_reason == "Duplicate job"


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, ["reasonId", "memo"]),
        ({"reasonId": 31}, ["memo"]),
        ({"memo": "Homeowner cancelled"}, ["reasonId"]),
        ({"reasonId": 0, "memo": ""}, ["reasonId"]),
        ({"reasonId": 30, "memo": ""}, ["reasonId"]),
        ({"reasonId": 99, "memo": ""}, ["reasonId"]),
        ({"reasonId": "31", "memo": ""}, ["reasonId"]),
        ({"reasonId": 31, "memo": None}, ["memo"]),
        ({"reasonId": 31, "memo": "", "notify": True}, ["notify"]),
    ],
    ids=["empty", "no reason", "no memo", "zero", "inactive", "unknown", "string", "null", "extra"],
)
def test_cancel_breaking_a_rule_of_cancel_job_request_is_refused(client, headers, body, fields):
    job = converted_job()

    response = put(client, headers, f"{jobs_url()}/{job.job_id}/cancel", body)

    assert sorted(assert_problem(response, 400)["errors"]) == sorted(fields)
    job.refresh_from_db()
    assert job.status == SimulatedJob.Status.SCHEDULED


def test_cancel_of_an_unknown_job_is_not_found(client, headers):
    response = put(client, headers, f"{jobs_url()}/1001/cancel", {"reasonId": 31, "memo": ""})

    assert_problem(response, 404)


def test_cancel_reasons_of_jobs_list_the_cancelled_ones(client, headers):
    cancelled = office.job_cancel(converted_job(), reason_id=32, memo="Went elsewhere")
    open_job = converted_job()
    url = f"{jobs_url()}/cancel-reasons"

    response = client.get(url, {"ids": f"{cancelled.job_id},{open_job.job_id},1"}, headers=headers)

    assert response.status_code == 200
    assert response.json()["data"] == [
        {
            "jobId": cancelled.job_id,
            "reasonId": 32,
            "name": "Booked with another company",
            "text": "Went elsewhere",
        }
    ]
    assert list(assert_problem(client.get(url, headers=headers), 400)["errors"]) == ["ids"]


@pytest.mark.parametrize(
    ("query", "ids"),
    [({}, [30, 31, 32, 33]), ({"active": "True"}, [31, 32, 33]), ({"active": "False"}, [30])],
)
def test_job_cancel_reasons_are_listed_a_page_at_a_time(client, headers, query, ids):
    url = f"/servicetitan-sim/jpm/v2/tenant/{TENANT}/job-cancel-reasons"

    first = client.get(url, {**query, "pageSize": 2}, headers=headers).json()
    second = client.get(url, {**query, "pageSize": 2, "page": 2}, headers=headers).json()

    assert [reason["id"] for reason in first["data"] + second["data"]] == ids
    assert first["hasMore"] is (len(ids) > 2)
    assert set(first["data"][0]) == {"id", "name", "active"}
    refused = client.get(url, {"active": "Maybe"}, headers=headers)
    assert list(assert_problem(refused, 400)["errors"]) == ["active"]


# The tenant's settings.


@pytest.mark.parametrize(
    ("path", "query", "ids"),
    [
        ("marketing/v2/tenant/1234/campaigns", {}, [41, 42]),
        ("marketing/v2/tenant/1234/campaigns", {"active": "Any"}, [40, 41, 42]),
        ("marketing/v2/tenant/1234/campaigns", {"active": "False"}, [40]),
        ("marketing/v2/tenant/1234/campaigns", {"name": "yard"}, [42]),
        ("marketing/v2/tenant/1234/campaigns", {"ids": "40,42"}, [42]),
        ("settings/v2/tenant/1234/business-units", {}, [50, 51, 52, 53, 54, 55]),
        ("settings/v2/tenant/1234/business-units", {"active": "False"}, [59]),
        ("settings/v2/tenant/1234/business-units", {"ids": "51,59", "active": "Any"}, [51, 59]),
        ("jpm/v2/tenant/1234/job-types", {}, [60, 61, 62, 63, 64, 65, 66, 69]),
        ("jpm/v2/tenant/1234/job-types", {"active": "Any", "name": "door"}, [60, 61, 68]),
        ("jpm/v2/tenant/1234/job-types", {"name": "Unknown"}, [69]),
    ],
)
def test_tenant_settings_are_listed_active_ones_by_default(client, headers, path, query, ids):
    assert listed_ids(client, headers, f"/servicetitan-sim/{path}", **query) == ids


@pytest.mark.parametrize(
    ("path", "required"),
    [
        ("marketing/v2/tenant/1234/campaigns", {"id", "name", "modifiedOn", "active"}),
        (
            "settings/v2/tenant/1234/business-units",
            {"id", "active", "name", "createdOn", "modifiedOn", "externalData"},
        ),
        ("jpm/v2/tenant/1234/job-types", {"id", "name", "modifiedOn", "externalData"}),
    ],
)
def test_tenant_settings_have_the_specs_required_properties(client, headers, path, required):
    body = client.get(f"/servicetitan-sim/{path}", headers=headers).json()

    for record in body["data"]:
        assert required <= set(record)
        assert all(record[name] is not None for name in required)
    refused = client.get(f"/servicetitan-sim/{path}", {"active": "yes"}, headers=headers)
    assert list(assert_problem(refused, 400)["errors"]) == ["active"]


# Customers.


def test_customers_are_found_by_ids_phone_name_and_zip(client, headers):
    mary = SimulatedCustomerFactory()
    john = SimulatedCustomerFactory(name="John Doe", phone="2065550199", zip="98101")
    SimulatedCustomerFactory(tenant=OTHER_TENANT)

    def listed(**query):
        return listed_ids(client, headers, customers_url(), **query)

    assert listed() == [mary.customer_id, john.customer_id]
    assert listed(ids=f"{john.customer_id},1") == [john.customer_id]
    assert listed(phone="(512) 555-0100") == [mary.customer_id]
    assert listed(phone="+1 206 555 0199") == []
    assert listed(phone="206.555.0199") == [john.customer_id]
    assert listed(name="doe") == [john.customer_id]
    assert listed(zip="78701") == [mary.customer_id]


def test_customer_has_the_specs_required_properties(client, headers):
    customer = SimulatedCustomerFactory()

    [body] = client.get(customers_url(), headers=headers).json()["data"]

    assert {
        "id",
        "active",
        "name",
        "type",
        "address",
        "customFields",
        "balance",
        "doNotMail",
        "doNotService",
        "createdOn",
        "createdById",
        "modifiedOn",
    } <= set(body)
    assert (body["id"], body["name"]) == (customer.customer_id, "Mary Smith")
    assert body["address"]["zip"] == "78701"


# Isolation, methods, paths.


def test_tenants_see_only_their_own_jobs(client, headers):
    job = completed_job()
    booking_id = job.booking.booking_id

    assert_problem(client.get(f"{bookings_url(OTHER_TENANT)}/{booking_id}", headers=headers), 404)
    assert_problem(client.get(f"{jobs_url(OTHER_TENANT)}/{job.job_id}", headers=headers), 404)
    for url in (
        bookings_url(OTHER_TENANT),
        jobs_url(OTHER_TENANT),
        invoices_url(OTHER_TENANT),
        customers_url(OTHER_TENANT),
    ):
        body = client.get(url, headers=headers).json()
        assert (body["hasMore"], body["data"]) == (False, [])
    SimulatedJob.objects.update(status=SimulatedJob.Status.SCHEDULED)
    cancel = put(
        client,
        headers,
        f"{jobs_url(OTHER_TENANT)}/{job.job_id}/cancel",
        {"reasonId": 31, "memo": "not yours"},
    )
    assert_problem(cancel, 404)
    complete = put(
        client,
        headers,
        f"{jobs_url(OTHER_TENANT)}/{job.job_id}/complete",
        {"completedOn": "2025-03-05T17:30:00Z"},
    )
    assert_problem(complete, 404)
    assert SimulatedJob.objects.get().status == SimulatedJob.Status.SCHEDULED
    assert listed_ids(client, headers, jobs_url()) == [job.job_id]


@pytest.mark.parametrize(
    ("method", "url", "allowed"),
    [
        ("delete", bookings_url(), "GET, POST"),
        ("post", f"{bookings_url()}/5000001", "GET"),
        ("put", f"{jobs_url()}/1001", "GET"),
        ("get", f"{jobs_url()}/1001/cancel", "PUT"),
        ("post", f"{jobs_url()}/1001/cancel", "PUT"),
        ("post", f"{jobs_url()}/1001/complete", "PUT"),
        ("post", f"{jobs_url()}/cancel-reasons", "GET"),
        ("post", invoices_url(), "GET"),
        ("post", customers_url(), "GET"),
        ("get", office_url(5000001, "convert"), "POST"),
        ("put", office_url(5000001, "dismiss"), "POST"),
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
        "/servicetitan-sim/crm/v2/tenant/1234/locations",
        "/servicetitan-sim/jpm/v2/tenant/1234/jobs/abc",
        "/servicetitan-sim/jpm/v2/tenant/12-34/jobs/1001",
        "/servicetitan-sim/jpm/v2/tenant/1234/jobs/1001/",
        "/servicetitan-sim/crm/v2/tenant/1234/booking-provider/77/bookings/abc",
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


# The office's delays.


def test_a_booking_older_than_the_convert_delay_is_converted_on_the_next_read(
    client, headers, settings
):
    settings.SERVICETITAN_SIMULATOR_CONVERT_AFTER_SECONDS = 60
    due = SimulatedBookingFactory()
    fresh = SimulatedBookingFactory()
    SimulatedBooking.objects.filter(pk=due.pk).update(
        created_at=due.created_at - timedelta(seconds=61)
    )

    body = client.get(bookings_url(), headers=headers).json()

    statuses = {booking["id"]: (booking["status"], booking["jobId"]) for booking in body["data"]}
    job = SimulatedJob.objects.get()
    assert statuses == {due.booking_id: ("Converted", job.job_id), fresh.booking_id: ("New", None)}


def test_a_converted_job_older_than_the_complete_delay_is_completed_on_the_next_read(
    client, headers, settings
):
    settings.SERVICETITAN_SIMULATOR_COMPLETE_AFTER_SECONDS = 600
    due, fresh = converted_job(), converted_job()
    SimulatedJob.objects.filter(pk=due.pk).update(created_at=due.created_at - timedelta(hours=1))

    statuses = {
        job["id"]: job["jobStatus"]
        for job in client.get(jobs_url(), headers=headers).json()["data"]
    }

    assert statuses == {due.job_id: "Completed", fresh.job_id: "Scheduled"}
    invoices = client.get(invoices_url(), headers=headers).json()["data"]
    assert [invoice["job"]["id"] for invoice in invoices] == [due.job_id]


def test_without_delays_the_office_does_nothing_on_reads(client, headers):
    booking = SimulatedBookingFactory()
    SimulatedBooking.objects.filter(pk=booking.pk).update(
        created_at=booking.created_at - timedelta(days=30)
    )

    body = client.get(f"{bookings_url()}/{booking.booking_id}", headers=headers).json()

    assert (body["status"], body["jobId"]) == ("New", None)


# Rate limit.


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
def test_the_real_client_gets_429_over_http_and_waits_out_retry_after(
    live_server, settings, monkeypatch
):
    # Below the client's own budget (60/s): the client's bucket lets the burst through and the
    # simulator refuses it. A booking takes three requests: the lookup by externalId, the
    # customer lookup by phone (for isFirstTimeClient), the create.
    settings.SERVICETITAN_SIMULATOR_REQUESTS_PER_SECOND = 3
    now = [1_000.0]
    monkeypatch.setattr(simulator_api, "clock", lambda: now[0])
    pauses = []

    def sleep(seconds):
        # The client's wait moves the simulator's clock on instead of sleeping.
        pauses.append(seconds)
        now[0] += seconds

    monkeypatch.setattr("integrations.servicetitan.client.time.sleep", sleep)
    simulator = f"{live_server.url}/servicetitan-sim"
    client = ServiceTitanApi(
        {
            "api_url": simulator,
            "auth_url": simulator,
            "client_id": "tradeengage",
            "client_secret": "s3cret",
            "app_key": "ak1.test",
            "tenant_id": TENANT,
            "booking_provider_id": PROVIDER,
            "requests_per_second": 60,
        }
    )
    client.create_job(BookingFactory(booking_id="routing-1"))
    assert pauses == []

    job = client.create_job(BookingFactory(booking_id="routing-2"))

    # The fourth request of the second was answered 429 with Retry-After: 1, waited out (with
    # up to half a second of jitter) within the call, and sent again in the next window.
    assert len(pauses) == 1 and 1.0 <= pauses[0] <= 1.5
    bookings = SimulatedBooking.objects.order_by("id")
    assert [booking.external_id for booking in bookings] == ["routing-1", "routing-2"]
    assert [booking.status for booking in bookings] == ["New", "New"]
    assert job.id == bookings[1].booking_id
    assert not SimulatedJob.objects.exists()

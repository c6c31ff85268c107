"""servicepytan, a public ServiceTitan client library, as a witness of the simulator (issue 17):
its own code, over HTTP against the live server, through the slice a booking provider uses. Where
the library is wrong about ServiceTitan, the tests show the simulator refusing it as ServiceTitan's
specs say it would, instead of the simulator bending to it."""

import pytest
import requests
import servicepytan.requests
from servicepytan import DataService, Endpoint
from servicepytan.auth import get_auth_headers, request_auth_token, servicepytan_connect
from servicepytan.utils import endpoint_url, request_json

from integrations.models import SimulatedBooking, SimulatedJob
from integrations.servicetitan.simulator import api as simulator_api
from integrations.servicetitan.simulator import office

# A live server without serialized_rollback leaves later tests with an emptied database.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

TENANT = "1234"
PROVIDER = "77"
BOOKINGS = f"booking-provider/{PROVIDER}/bookings"


@pytest.fixture
def conn(live_server, settings) -> dict:
    """servicepytan's connection, its roots pointed at the simulator instead of ServiceTitan.
    Every credential is given: with one missing, ``servicepytan_connect`` loads the first
    ``.env`` above the installed library (in our venv, the project's) into the environment."""
    settings.SERVICETITAN = {
        **settings.SERVICETITAN,
        "simulation_failure_rate": 0.0,
        "simulation_delays": False,
    }
    settings.SERVICETITAN_SIMULATOR_CLIENTS = {"witness": "w1tness-secret"}
    connection = servicepytan_connect(
        app_key="ak1.witness",
        tenant_id=TENANT,
        client_id="witness",
        client_secret="w1tness-secret",
    )
    simulator = f"{live_server.url}/servicetitan-sim"
    connection["auth_root"] = simulator
    connection["api_root"] = simulator
    return connection


@pytest.fixture
def no_rate_limit(settings):
    # servicepytan asks for a new token before every call and does not wait out a 429
    # (test_a_429_comes_back_as_if_it_were_data): a burst of its calls is kept under the limit.
    settings.SERVICETITAN_SIMULATOR_REQUESTS_PER_SECOND = 100_000


def booking_request(external_id: str, **overrides) -> dict:
    """crm v2 ``CreateBookingRequest``."""
    return {
        "source": "TradeEngage",
        "name": "Mary Ann Smith",
        "summary": "Garage door spring repair/replacement: the left spring snapped",
        "isFirstTimeClient": True,
        "externalId": external_id,
        "address": {
            "street": "12 Oak Street",
            "city": "Austin",
            "state": "TX",
            "zip": "78701",
            "country": "USA",
        },
        "contacts": [{"type": "Phone", "value": "5125550100"}],
        "priority": "High",
        **overrides,
    }


def convert_in_the_office(conn: dict, booking_id: int) -> dict:
    # The office's endpoint is the simulator's, not ServiceTitan's API: no /v2/ in its path, so
    # servicepytan's Endpoint cannot address it. Plain requests, with servicepytan's headers.
    url = (
        f"{conn['api_root']}/office/tenant/{TENANT}/booking-provider/{PROVIDER}"
        f"/bookings/{booking_id}/convert"
    )
    response = requests.post(url, headers=get_auth_headers(conn), timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def complete_with_json(conn: dict, job_id: int, completed_on: str) -> None:
    """``PUT jobs/{id}/complete`` with a JSON body, through servicepytan's lower-level
    ``request_json``: its ``Endpoint.update`` sends a form
    (test_endpoint_update_sends_a_form_that_complete_refuses). The job is completed, but
    ``request_json`` parses every answer as JSON and fails on the specs' 200 with no content."""
    url = endpoint_url("jpm", "jobs", id=job_id, modifier="complete", conn=conn)
    with pytest.raises(requests.JSONDecodeError):
        request_json(
            url,
            payload="",
            json_payload={"completedOn": completed_on},
            conn=conn,
            request_type="PUT",
        )


def test_servicepytan_gets_a_token_and_sends_it_without_bearer(conn, no_rate_limit):
    token = request_auth_token(conn["auth_root"], "witness", "w1tness-secret")
    headers = get_auth_headers(conn)

    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == simulator_api.TOKEN_SECONDS
    # The bare token, not "Bearer <token>", and a new one: servicepytan caches no token.
    assert headers["Authorization"] != token["access_token"]
    assert not headers["Authorization"].startswith("Bearer ")
    assert headers["ST-App-Key"] == "ak1.witness"
    # The simulator takes it so: a bare token is answered, not refused with a 401.
    listed = Endpoint("jpm", "jobs", conn).get_many()
    assert (listed["page"], listed["pageSize"], listed["data"]) == (1, 100, [])


def test_servicepytan_token_request_with_unknown_credentials_is_refused(conn, no_rate_limit):
    with pytest.raises(requests.HTTPError) as refused:
        request_auth_token(conn["auth_root"], "witness", "wrong-secret")

    assert refused.value.response.status_code == 400
    assert refused.value.response.json() == {"error": "invalid_client"}


def test_booking_made_through_servicepytan_is_found_converted_and_completed(conn, no_rate_limit):
    bookings = Endpoint("crm", BOOKINGS, conn)
    jobs = Endpoint("jpm", "jobs", conn)

    created = bookings.create(booking_request("routing-17"))
    booking = SimulatedBooking.objects.get()
    assert created["id"] == booking.booking_id
    assert (created["status"], created["jobId"], created["externalId"]) == (
        "New",
        None,
        "routing-17",
    )
    assert created["bookingProviderId"] == int(PROVIDER)

    found = bookings.get_many(query={"externalId": "routing-17"})
    assert [row["id"] for row in found["data"]] == [created["id"]]
    assert found["hasMore"] is False
    assert bookings.get_many(query={"externalId": "routing-other"})["data"] == []
    # New until the office converts it: no job to read yet.
    assert jobs.get_many(query={"bookingId": created["id"]})["data"] == []

    converted = convert_in_the_office(conn, created["id"])
    job = SimulatedJob.objects.get()
    assert converted == {
        "bookingId": created["id"],
        "jobId": job.job_id,
        "jobNumber": job.job_number,
    }

    found = bookings.get_many(query={"externalId": "routing-17"})["data"]
    assert [(row["status"], row["jobId"]) for row in found] == [("Converted", job.job_id)]
    read = jobs.get_one(found[0]["jobId"])
    assert read["id"] == job.job_id
    assert read["jobNumber"] == job.job_number
    assert read["bookingId"] == created["id"]
    assert read["jobStatus"] == "Scheduled"
    assert read["priority"] == "High"
    assert read["completedOn"] is None
    assert jobs.get_many(query={"bookingId": created["id"]})["data"] == [read]

    complete_with_json(conn, job.job_id, "2026-11-20T15:30:00Z")

    completed = jobs.get_one(job.job_id)
    assert (completed["jobStatus"], completed["completedOn"]) == (
        "Completed",
        "2026-11-20T15:30:00Z",
    )
    job.refresh_from_db()
    invoices = Endpoint("accounting", "invoices", conn).get_many(query={"jobId": job.job_id})
    [invoice] = invoices["data"]
    assert invoice["job"] == {"id": job.job_id, "number": job.job_number, "type": "Unknown"}
    assert invoice["total"] == invoice["balance"] == f"{job.invoice_total:.2f}"
    assert invoice["salesTax"] == "0.00"
    assert invoice["invoiceDate"] == "2026-11-20T15:30:00Z"


def test_endpoint_update_sends_a_form_that_complete_refuses(conn, no_rate_limit):
    # Endpoint.update passes its payload as requests' ``data``: a form, while jpm v2's
    # Jobs_Complete takes application/json only; the simulator answers the spec's 400.
    Endpoint("crm", BOOKINGS, conn).create(booking_request("routing-form"))
    job = office.booking_convert(SimulatedBooking.objects.get())

    with pytest.raises(requests.HTTPError) as refused:
        Endpoint("jpm", "jobs", conn).update(
            job.job_id, {"completedOn": "2026-11-20T15:30:00Z"}, modifier="complete"
        )

    assert refused.value.request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    response = refused.value.response
    assert response.status_code == 400
    assert response.json()["title"] == "Validation Error"
    assert list(response.json()["errors"]) == ["body"]
    job.refresh_from_db()
    assert (job.status, job.invoice_total) == (SimulatedJob.Status.SCHEDULED, None)


def test_get_all_lists_every_job_and_invoice_once_across_pages(conn, no_rate_limit, monkeypatch):
    bookings = Endpoint("crm", BOOKINGS, conn)
    booking_ids = [bookings.create(booking_request(f"routing-{n}"))["id"] for n in range(7)]
    jobs = [office.booking_convert(booking) for booking in SimulatedBooking.objects.all()]
    for job in jobs:
        complete_with_json(conn, job.job_id, "2026-11-20T15:30:00Z")
    pages_asked = []
    real_request_json = servicepytan.requests.request_json

    def request_json_noting_the_page(url, options, **kwargs):
        pages_asked.append((url.rsplit("/", 1)[-1], options.get("page")))
        return real_request_json(url, options, **kwargs)

    monkeypatch.setattr(servicepytan.requests, "request_json", request_json_noting_the_page)

    listed_jobs = Endpoint("jpm", "jobs", conn).get_all({"pageSize": 3, "jobStatus": "Completed"})
    listed_invoices = Endpoint("accounting", "invoices", conn).get_all({"pageSize": 3})

    # Three pages of each (3, 3, 1), the page number sent as a string: one in a query string.
    assert pages_asked == [
        (listed, page) for listed in ("jobs", "invoices") for page in ("1", "2", "3")
    ]
    assert sorted(job["id"] for job in listed_jobs) == sorted(job.job_id for job in jobs)
    assert sorted(job["bookingId"] for job in listed_jobs) == sorted(booking_ids)
    assert {job["jobStatus"] for job in listed_jobs} == {"Completed"}
    totals = {job.job_id: f"{job.invoice_total:.2f}" for job in SimulatedJob.objects.order_by("pk")}
    assert sorted(invoice["job"]["id"] for invoice in listed_invoices) == sorted(totals)
    assert {invoice["job"]["id"]: invoice["total"] for invoice in listed_invoices} == totals


def test_dispatched_job_status_of_servicepytan_defaults_is_refused(conn, no_rate_limit):
    # DataService.get_jobs_completed_between lists jobs of each of Completed, Scheduled,
    # InProgress and Dispatched by default; jpm v2's jobStatus filter supports Scheduled,
    # InProgress, Hold, Completed and Canceled: Dispatched is an appointment's status.
    with pytest.raises(requests.HTTPError) as refused:
        Endpoint("jpm", "jobs", conn).get_all({"jobStatus": "Dispatched"})

    assert refused.value.response.status_code == 400
    assert list(refused.value.response.json()["errors"]) == ["jobStatus"]


def test_data_service_loses_its_connection(conn, no_rate_limit):
    # DataService keeps conn but builds each Endpoint without it, so no call reaches an API.
    with pytest.raises(TypeError):
        DataService(conn).get_jobs_completed_between("2026-11-01", "2026-11-30")


def test_a_429_comes_back_as_if_it_were_data(conn, settings, monkeypatch):
    settings.SERVICETITAN_SIMULATOR_REQUESTS_PER_SECOND = 1
    monkeypatch.setattr(simulator_api, "clock", lambda: 1_000.0)
    jobs = Endpoint("jpm", "jobs", conn)
    assert jobs.get_many()["data"] == []

    # request_json raises for any other error status and returns a 429's problem as the answer.
    limited = jobs.get_many()

    assert (limited["status"], limited["title"], limited["data"]) == (429, "Too Many Requests", {})
    # get_all takes the problem's "data" for a page and fails on its missing "hasMore".
    with pytest.raises(KeyError, match="hasMore"):
        jobs.get_all()

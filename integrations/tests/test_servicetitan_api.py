"""The ServiceTitan module's endpoints (seed 001): its "Testing" and "Test Error Scenarios"
examples, validation, status transitions and batches. (Its signed webhook is applied by routing:
routing/tests/test_servicetitan_webhook_api.py.)"""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from integrations.models import SimulatedJob, WebhookReceipt
from integrations.tests.factories import SimulatedJobFactory

pytestmark = pytest.mark.django_db

BASE = "/api/integrations/servicetitan"
SECRET = "whsec_" + "c2VjcmV0LWZvci10ZXN0cy1vbmx5LTEyMzQ1Njc4OTA="

# seed 001 "Create Job" request.
BOOKING = {
    "bookingId": "booking_123",
    "firstName": "John",
    "lastName": "Doe",
    "phone": "4805551234",
    "email": "john.doe@email.com",
    "address": "123 Main St",
    "city": "Phoenix",
    "state": "AZ",
    "zip": "85001",
    "problemType": "broken_spring",
    "doorCount": 2,
    "doorAge": 5,
    "isRenter": False,
    "scheduledDate": "2025-11-14T09:00:00.000Z",
    "timeSlot": "9:00 AM - 11:00 AM",
    "specialInstructions": "Gate code is 1234",
}


def create(api_client, **changes):
    return api_client.post(f"{BASE}/jobs", {**BOOKING, **changes}, format="json")


def assert_error(response, status: int, error: str):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["success"] is False
    assert body["error"] == error
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["details"], list)
    return body


def test_health(api_client):
    SimulatedJob.objects.all().delete()
    create(api_client)

    response = api_client.get(f"{BASE}/health")

    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    data = body["data"]
    assert (data["status"], data["version"], data["jobsCreated"]) == (
        "healthy",
        "simulation-v1.0.0",
        1,
    )
    assert isinstance(data["uptime"], int)
    assert data["lastJobCreated"] is not None


def test_auth_test(api_client):
    response = api_client.get(f"{BASE}/auth/test")

    data = response.json()["data"]
    assert response.status_code == 200
    assert data["success"] is True and data["authenticated"] is True
    assert data["token"].startswith("sim_token_")
    assert data["expiresIn"] == 3600


def test_create_job_answers_the_seed_example(api_client):
    response = create(api_client)

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["success"] is True
    data = body["data"]
    job = SimulatedJob.objects.get()
    assert data["id"] == 1000 + job.pk
    assert data["jobNumber"] == f"JOB-{1000 + job.pk:06d}"
    assert (data["status"], data["priority"]) == ("scheduled", "high")
    assert data["customer"]["id"].startswith("CUST_")
    assert data["customer"]["name"] == "John Doe"
    assert (data["customer"]["phone"], data["customer"]["email"]) == (
        "4805551234",
        "john.doe@email.com",
    )
    assert data["location"] == {
        "address": {"street": "123 Main St", "city": "Phoenix", "state": "AZ", "zip": "85001"}
    }
    assert data["estimatedDuration"] == 120  # 90 minutes for a spring, 30 more for the 2nd door
    assert data["description"] == "Garage door spring repair/replacement (2 doors)"
    assert data["businessUnit"] == "Mountain West"
    assert job.special_instructions == "Gate code is 1234"


def test_the_minimal_seed_example_is_enough(api_client):
    body = {
        key: BOOKING[key]
        for key in (
            "firstName",
            "lastName",
            "phone",
            "email",
            "address",
            "city",
            "state",
            "zip",
            "problemType",
            "scheduledDate",
        )
    }

    response = api_client.post(f"{BASE}/jobs", body, format="json")

    assert response.status_code == 201
    assert (
        response.json()["data"]["description"] == "Garage door spring repair/replacement (1 door)"
    )


def test_a_booking_id_seen_before_returns_its_job(api_client):
    first = create(api_client).json()["data"]
    second = create(api_client).json()["data"]

    assert first["id"] == second["id"]
    assert SimulatedJob.objects.count() == 1


@pytest.mark.parametrize(
    ("changes", "status", "error", "field"),
    [
        ({"email": "error@test.com"}, 409, "Customer Conflict", "email"),
        ({"zip": "00000"}, 422, "Service Area Not Supported", "zip"),
        ({"phone": "0000000000"}, 400, "Validation Error", "phone"),
    ],
    ids=["customer-conflict", "service-area", "invalid-phone"],
)
def test_the_seed_error_triggers(api_client, changes, status, error, field):
    response = create(api_client, **changes)

    body = assert_error(response, status, error)
    assert body["details"][0]["field"] == field
    assert body["details"][0]["value"] == changes[field]
    assert not SimulatedJob.objects.exists()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"email": "invalid-email"}, "email"),
        ({"firstName": ""}, "firstName"),
        ({"lastName": "Doe123"}, "lastName"),
        ({"phone": "12345"}, "phone"),
        ({"zip": "8500"}, "zip"),
        ({"state": "Arizona"}, "state"),
        ({"address": ""}, "address"),
        ({"problemType": "alien_invasion"}, "problemType"),
        ({"doorCount": 0}, "doorCount"),
        ({"doorCount": 11}, "doorCount"),
        ({"doorAge": -1}, "doorAge"),
        ({"isRenter": "yes"}, "isRenter"),
        ({"scheduledDate": "tomorrow morning"}, "scheduledDate"),
        ({"timeSlot": "whenever"}, "timeSlot"),
    ],
)
def test_invalid_input_is_a_validation_error_with_the_field_and_value(api_client, changes, field):
    response = create(api_client, **changes)

    body = assert_error(response, 400, "Validation Error")
    assert body["message"] == "Invalid input data"
    [detail] = [d for d in body["details"] if d["field"] == field]
    assert detail["message"]
    assert detail["value"] == changes[field]


def test_missing_fields_are_each_reported(api_client):
    body = assert_error(api_client.post(f"{BASE}/jobs", {}, format="json"), 400, "Validation Error")

    fields = {d["field"] for d in body["details"]}
    assert {
        "firstName",
        "lastName",
        "phone",
        "email",
        "address",
        "city",
        "state",
        "zip",
        "problemType",
    } <= fields


def test_malformed_json_is_a_validation_error(api_client):
    response = api_client.post(f"{BASE}/jobs", "{oops", content_type="application/json")

    assert_error(response, 400, "Validation Error")


def test_a_simulated_outage_is_503_with_retry_after(api_client, settings):
    settings.SERVICETITAN = {**settings.SERVICETITAN, "simulation_failure_rate": 1.0}

    response = create(api_client)

    assert_error(response, 503, "Service Unavailable")
    assert response["Retry-After"]


def test_get_job(api_client):
    created = create(api_client).json()["data"]

    response = api_client.get(f"{BASE}/jobs/{created['id']}")

    assert response.status_code == 200
    assert response.json()["data"]["jobNumber"] == created["jobNumber"]
    assert response.json()["data"]["description"] == created["description"]


@pytest.mark.parametrize("job_id", ["999999", "abc", "1001x"])
def test_an_unknown_job_is_404(api_client, job_id):
    assert_error(api_client.get(f"{BASE}/jobs/{job_id}"), 404, "Not Found")


def test_status_moves_through_the_allowed_transitions_and_completion_invoices(api_client):
    job_id = create(api_client).json()["data"]["id"]

    for status in ["dispatched", "in_progress", "completed"]:
        response = api_client.patch(
            f"{BASE}/jobs/{job_id}/status", {"status": status}, format="json"
        )
        assert response.status_code == 200, response.content
        assert response.json()["data"]["status"] == status

    data = response.json()["data"]
    assert data["completedAt"] is not None
    assert Decimal(data["invoiceTotal"]) > 0


@pytest.mark.parametrize(
    ("path", "status"), [(["completed"], "completed"), (["cancelled"], "dispatched")]
)
def test_an_invalid_transition_is_refused_clearly(api_client, path, status):
    job_id = create(api_client).json()["data"]["id"]
    if path == ["cancelled"]:
        api_client.delete(f"{BASE}/jobs/{job_id}", {"reason": "Moved away"}, format="json")

    response = api_client.patch(f"{BASE}/jobs/{job_id}/status", {"status": status}, format="json")

    body = assert_error(response, 400, "Invalid Status Transition")
    assert "Invalid status transition" in body["message"]


def test_an_unknown_status_is_a_validation_error(api_client):
    job_id = create(api_client).json()["data"]["id"]

    response = api_client.patch(f"{BASE}/jobs/{job_id}/status", {"status": "done"}, format="json")

    assert_error(response, 400, "Validation Error")


def test_cancel_needs_a_reason(api_client):
    job_id = create(api_client).json()["data"]["id"]

    assert_error(
        api_client.delete(f"{BASE}/jobs/{job_id}", {}, format="json"), 400, "Validation Error"
    )
    response = api_client.delete(
        f"{BASE}/jobs/{job_id}", {"reason": "Customer cancelled appointment"}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["data"]["status"] == "cancelled"
    assert response.json()["data"]["cancelReason"] == "Customer cancelled appointment"


def test_jobs_by_date_range(api_client):
    create(api_client)
    now = timezone.now()
    query = {
        "startDate": (now - timedelta(hours=1)).isoformat(),
        "endDate": (now + timedelta(hours=1)).isoformat(),
    }

    response = api_client.get(f"{BASE}/jobs", query)

    assert response.status_code == 200
    assert len(response.json()["data"]) == 1
    later = {"startDate": query["endDate"], "endDate": (now + timedelta(days=2)).isoformat()}
    assert api_client.get(f"{BASE}/jobs", later).json()["data"] == []


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"startDate": "2025-11-14T00:00:00Z"},
        {"startDate": "yesterday", "endDate": "2025-11-14T00:00:00Z"},
        {"startDate": "2025-11-14T00:00:00Z", "endDate": "2025-11-13T00:00:00Z"},
    ],
    ids=["none", "no-end", "bad-date", "reversed"],
)
def test_a_bad_date_range_is_refused(api_client, query):
    assert_error(api_client.get(f"{BASE}/jobs", query), 400, "Validation Error")


def test_an_end_date_before_the_start_date_is_refused_with_the_seed_validation_error(api_client):
    query = {"startDate": "2025-11-14T00:00:00.000Z", "endDate": "2025-11-13T23:59:59.000Z"}

    body = assert_error(api_client.get(f"{BASE}/jobs", query), 400, "Validation Error")

    assert body["message"] == "Invalid input data"
    assert body["details"] == [
        {
            "field": "endDate",
            "message": "endDate must not be before startDate.",
            "value": "2025-11-13T23:59:59.000Z",
        }
    ]


def created_on(day: datetime) -> SimulatedJob:
    job = SimulatedJobFactory()
    SimulatedJob.objects.filter(pk=job.pk).update(created_at=day)
    return job


@pytest.mark.parametrize("days", [90, 400])
def test_a_long_date_range_is_answered_with_every_job_in_it(api_client, days):
    # Seed 001 sets no limit on the range (a 31-day cap once refused these).
    start = datetime(2025, 1, 1, tzinfo=UTC)
    end = start + timedelta(days=days)
    inside = [created_on(start + timedelta(days=day, hours=12)) for day in range(0, days, 3)]
    inside.append(created_on(end))
    created_on(start - timedelta(seconds=1))
    created_on(end + timedelta(seconds=1))
    query = {"startDate": start.isoformat(), "endDate": end.isoformat()}

    response = api_client.get(f"{BASE}/jobs", query)

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"success", "data"}
    assert body["success"] is True
    assert sorted(job["id"] for job in body["data"]) == sorted(job.job_id for job in inside)


def test_batch_reports_each_booking(api_client):
    bookings = [
        {**BOOKING, "bookingId": "b1"},
        {**BOOKING, "bookingId": "b2", "email": "error@test.com"},
        {**BOOKING, "bookingId": "b3", "doorCount": 99},
        {**BOOKING, "bookingId": "b4", "firstName": "Jane", "lastName": "Smith"},
    ]

    response = api_client.post(f"{BASE}/jobs/batch", {"bookings": bookings}, format="json")

    assert response.status_code == 200
    data = response.json()["data"]
    assert (data["total"], data["succeeded"], data["failed"]) == (4, 2, 2)
    results = data["results"]
    assert [r["success"] for r in results] == [True, False, False, True]
    assert results[1]["error"] == "Customer Conflict"
    assert results[2]["error"] == "Validation Error"
    assert results[2]["details"][0]["field"] == "doorCount"
    assert SimulatedJob.objects.count() == 2


@pytest.mark.parametrize("bookings", [[], [BOOKING] * 51, "nope"], ids=["empty", "51", "string"])
def test_a_batch_outside_its_bounds_is_refused(api_client, bookings):
    response = api_client.post(f"{BASE}/jobs/batch", {"bookings": bookings}, format="json")

    assert_error(response, 400, "Validation Error")
    assert not SimulatedJob.objects.exists()


def test_the_simulation_and_webhook_receipts_are_in_the_admin(api_client, ops_client):
    created = create(api_client).json()["data"]
    WebhookReceipt.objects.create(provider="servicetitan", event_id="evt_admin")
    job = SimulatedJob.objects.get()

    for url in [
        "/admin/integrations/simulatedjob/",
        f"/admin/integrations/simulatedjob/{job.pk}/change/",
        "/admin/integrations/webhookreceipt/",
    ]:
        response = ops_client.get(url)
        assert response.status_code == 200, url
    assert (
        created["jobNumber"] in ops_client.get("/admin/integrations/simulatedjob/").content.decode()
    )
    assert ops_client.get("/admin/integrations/simulatedjob/add/").status_code == 403

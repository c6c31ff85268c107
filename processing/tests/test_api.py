"""Seed 004's client-processing endpoints: the API key, process-client, job-status,
process-retry-queue and health, with the seed's ``{"detail"}`` errors."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.models import SkillLevel
from jobs.tests.factories import CompanyFactory, JobFactory, JobSkillFactory, skill
from processing.models import ProcessingJob
from processing.tests.factories import ProcessingJobFactory

pytestmark = pytest.mark.django_db

KEY = "test-key"
SEED_CLIENT_ID = "550e8400-e29b-41d4-a716-446655440000"
JOB_STATUS_FIELDS = {
    "job_id",
    "client_id",
    "status",
    "properties_assigned",
    "error_message",
    "created_at",
    "updated_at",
    "attempt_count",
    "next_attempt",
    "trigger",
    "run_date",
}


@pytest.fixture(autouse=True)
def _api_keys(settings):
    settings.PROCESSING_API_KEYS = ["another-key", KEY]


@pytest.fixture
def keyed(anonymous_client):
    anonymous_client.credentials(HTTP_X_API_KEY=KEY)
    return anonymous_client


@pytest.fixture
def client_company():
    return CompanyFactory(
        name="Windy City Plumbing",
        service_areas=["IL"],
        skills={"plumbing": SkillLevel.INTERMEDIATE},
        notification_email="dispatch@windy.example",
        provider_type="mock",
    )


def due_retry(company) -> ProcessingJob:
    """A run that failed once and whose next attempt is due."""
    return ProcessingJobFactory(
        client=company,
        attempt_count=1,
        error_message="ConnectionError: provider down",
        next_attempt=timezone.now() - timedelta(minutes=1),
    )


def assert_detail(response, status_code: int) -> str:
    assert response.status_code == status_code, response.content
    body = response.json()
    assert set(body) == {"detail"}
    return body["detail"]


def start(client, body, **kwargs):
    return client.post("/api/process-client", body, format="json", **kwargs)


# Health and the API key


def test_health_answers_without_a_key(anonymous_client):
    response = anonymous_client.get("/api/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


REQUESTS = [
    ("post", "/api/process-client"),
    ("get", f"/api/job-status/{uuid.uuid4()}"),
    ("post", "/api/process-retry-queue"),
]


@pytest.mark.parametrize(("method", "path"), REQUESTS)
def test_request_without_a_key_is_401(anonymous_client, method, path):
    response = getattr(anonymous_client, method)(path)

    assert assert_detail(response, 401) == "Invalid or missing API key"
    assert response["WWW-Authenticate"] == "API-Key"


@pytest.mark.parametrize(("method", "path"), REQUESTS)
@pytest.mark.parametrize("key", ["wrong-key", "test-key ", "TEST-KEY", "test-keyx", "clé"])
def test_request_with_a_wrong_key_is_401(anonymous_client, method, path, key):
    anonymous_client.credentials(HTTP_X_API_KEY=key)

    response = getattr(anonymous_client, method)(path)

    assert assert_detail(response, 401) == "Invalid or missing API key"
    assert response["WWW-Authenticate"] == "API-Key"


@pytest.mark.parametrize("key", ["test-key", ""])
def test_every_keyed_request_is_401_when_no_keys_are_configured(anonymous_client, settings, key):
    settings.PROCESSING_API_KEYS = []
    anonymous_client.credentials(HTTP_X_API_KEY=key)

    response = anonymous_client.post("/api/process-retry-queue")

    assert assert_detail(response, 401) == "Invalid or missing API key"


def test_unauthenticated_request_does_not_start_processing(anonymous_client, client_company):
    response = start(anonymous_client, {"client_id": str(client_company.id)})

    assert response.status_code == 401
    assert not ProcessingJob.objects.exists()


# Process client


def test_seed_example_process_a_client(anonymous_client, django_capture_on_commit_callbacks):
    company = CompanyFactory(id=uuid.UUID(SEED_CLIENT_ID))

    with django_capture_on_commit_callbacks() as callbacks:
        response = anonymous_client.post(
            "/api/process-client",
            f'{{"client_id": "{SEED_CLIENT_ID}"}}',
            content_type="application/json",
            headers={"X-API-Key": KEY},
        )

    assert response.status_code == 202
    job = ProcessingJob.objects.get()
    assert response.json() == {
        "success": True,
        "job_id": str(job.job_id),
        "client_id": SEED_CLIENT_ID,
        "message": "Processing started",
    }
    assert job.client_id == company.id
    assert job.status == ProcessingJob.Status.PENDING
    assert job.trigger == ProcessingJob.Trigger.API
    assert job.run_date == timezone.localdate()
    assert len(callbacks) == 1


def test_processing_is_enqueued_on_commit_and_runs(
    keyed, client_company, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = start(keyed, {"client_id": str(client_company.id)})

    assert response.status_code == 202
    job = ProcessingJob.objects.get(job_id=response.json()["job_id"])
    assert job.status == ProcessingJob.Status.COMPLETED
    assert job.attempt_count == 1
    assert job.report_sent_to == "dispatch@windy.example"


def test_processing_an_unknown_client_is_404(keyed):
    client_id = uuid.uuid4()

    response = start(keyed, {"client_id": str(client_id)})

    assert assert_detail(response, 404) == f"Client {client_id} not found."
    assert not ProcessingJob.objects.exists()


def test_processing_an_inactive_client_is_400(keyed):
    company = CompanyFactory(is_active=False)

    response = start(keyed, {"client_id": str(company.id)})

    assert assert_detail(response, 400) == f"Client {company.id} is not active."
    assert not ProcessingJob.objects.exists()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "client_id: This field is required."),
        ({"client": "x"}, "client_id: This field is required."),
        ({"client_id": "not-a-uuid"}, "client_id: Must be a valid UUID."),
        ({"client_id": ""}, "client_id: Must be a valid UUID."),
        ({"client_id": None}, "client_id: This field may not be null."),
        ({"client_id": 42}, "client_id: Must be a valid UUID."),
        ({"client_id": True}, "client_id: Must be a valid UUID."),
        ({"client_id": [SEED_CLIENT_ID]}, "client_id: Must be a valid UUID."),
        ([{"client_id": SEED_CLIENT_ID}], "must be a JSON object, not list"),
        (SEED_CLIENT_ID, "must be a JSON object, not str"),
        (7, "must be a JSON object, not int"),
    ],
)
def test_malformed_process_client_body_is_422(keyed, body, message):
    response = start(keyed, body)

    assert message in assert_detail(response, 422)
    assert not ProcessingJob.objects.exists()


def test_null_body_is_422(keyed):
    response = keyed.post("/api/process-client", "null", content_type="application/json")

    assert "must be a JSON object, not null" in assert_detail(response, 422)


def test_empty_body_is_422(keyed):
    response = keyed.post("/api/process-client", "", content_type="application/json")

    assert assert_detail(response, 422) == "client_id: This field is required."


@pytest.mark.parametrize("raw", ['{"client_id": ', "{'client_id': 'x'}", "\x00", "[" * 5000])
def test_malformed_json_is_422(keyed, raw):
    response = keyed.post("/api/process-client", raw, content_type="application/json")

    assert assert_detail(response, 422).startswith("Malformed JSON body")


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_a_content_type_other_than_json_is_422(keyed, client_company, content_type):
    body = f"client_id={client_company.id}"

    response = keyed.post("/api/process-client", body, content_type=content_type)

    assert "Send Content-Type: application/json." in assert_detail(response, 422)
    assert not ProcessingJob.objects.exists()


# Job status


def test_seed_example_job_status(keyed, client_company):
    job = ProcessingJobFactory(
        client=client_company, status=ProcessingJob.Status.COMPLETED, leads_assigned=5
    )

    response = keyed.get(f"/api/job-status/{job.job_id}")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == JOB_STATUS_FIELDS
    assert body["job_id"] == str(job.job_id)
    assert body["client_id"] == str(client_company.id)
    assert body["status"] == "completed"
    assert body["properties_assigned"] == 5
    assert body["error_message"] is None
    assert body["attempt_count"] == 0
    assert body["next_attempt"] is None
    assert body["trigger"] == "api"
    assert body["run_date"] == job.run_date.isoformat()
    assert body["created_at"].endswith("Z")
    assert body["updated_at"].endswith("Z")


def test_job_status_reports_the_leads_a_run_assigned(
    keyed, client_company, django_capture_on_commit_callbacks
):
    for _ in range(2):
        lead = JobFactory(state="IL", zip_code="62701")
        JobSkillFactory(job=lead, skill=skill("plumbing"), level=SkillLevel.BASIC)
    with django_capture_on_commit_callbacks(execute=True):
        job_id = start(keyed, {"client_id": str(client_company.id)}).json()["job_id"]

    body = keyed.get(f"/api/job-status/{job_id}").json()

    assert body["status"] == "completed"
    assert body["properties_assigned"] == 2
    assert body["properties_assigned"] == ProcessingJob.objects.get().leads_assigned


def test_job_status_of_a_run_in_the_retry_queue(keyed, client_company):
    job = due_retry(client_company)

    body = keyed.get(f"/api/job-status/{job.job_id}").json()

    assert body["status"] == "pending"
    assert body["attempt_count"] == 1
    assert body["error_message"] == "ConnectionError: provider down"
    assert body["next_attempt"] is not None


@pytest.mark.parametrize("job_id", [str(uuid.uuid4()), "not-a-uuid", "42", "%20", "é"])
def test_job_status_of_an_unknown_or_malformed_id_is_404(keyed, job_id):
    response = keyed.get(f"/api/job-status/{job_id}")

    assert assert_detail(response, 404).endswith("not found.")


def test_job_status_404_names_the_job(keyed):
    job_id = uuid.uuid4()

    response = keyed.get(f"/api/job-status/{job_id}")

    assert assert_detail(response, 404) == f"Job {job_id} not found."


# Retry queue


def test_seed_example_process_the_retry_queue(anonymous_client):
    response = anonymous_client.post("/api/process-retry-queue", headers={"X-API-Key": KEY})

    assert response.status_code == 200
    assert response.json() == {"success": True, "processed": 0, "failed": 0}


def test_retry_queue_runs_a_due_job(keyed, client_company):
    job = due_retry(client_company)

    response = keyed.post("/api/process-retry-queue")

    assert response.json() == {"success": True, "processed": 1, "failed": 0}
    job.refresh_from_db()
    assert job.status == ProcessingJob.Status.COMPLETED
    assert job.attempt_count == 2


def test_retry_queue_counts_a_run_that_fails_again(keyed, client_company):
    failing = due_retry(CompanyFactory(is_active=False))
    due_retry(client_company)
    not_due = ProcessingJobFactory(
        client=client_company, next_attempt=timezone.now() + timedelta(hours=1)
    )

    response = keyed.post("/api/process-retry-queue")

    assert response.json() == {"success": True, "processed": 1, "failed": 1}
    failing.refresh_from_db()
    assert failing.status == ProcessingJob.Status.PENDING
    assert failing.attempt_count == 2
    assert "not active" in failing.error_message
    not_due.refresh_from_db()
    assert not_due.status == ProcessingJob.Status.PENDING
    assert not_due.attempt_count == 0


@pytest.mark.parametrize(
    ("body", "content_type"),
    [("{not json", "application/json"), ("anything", "text/plain"), ("[1, 2]", None)],
)
def test_retry_queue_ignores_a_body(keyed, body, content_type):
    kwargs = {"content_type": content_type} if content_type else {"format": "json"}

    response = keyed.post("/api/process-retry-queue", body, **kwargs)

    assert response.json() == {"success": True, "processed": 0, "failed": 0}


# Methods and the schema


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/process-client"),
        ("put", "/api/process-client"),
        ("post", f"/api/job-status/{uuid.uuid4()}"),
        ("delete", f"/api/job-status/{uuid.uuid4()}"),
        ("get", "/api/process-retry-queue"),
        ("post", "/api/health"),
    ],
)
def test_wrong_method_is_405(keyed, method, path):
    response = getattr(keyed, method)(path)

    assert "not allowed" in assert_detail(response, 405)


def test_schema_documents_the_processing_endpoints(client):
    schema = client.get("/openapi.json").json()

    operations = {
        "/api/health": ("get", "processing_health"),
        "/api/process-client": ("post", "processing_process_client"),
        "/api/job-status/{job_id}": ("get", "processing_job_status"),
        "/api/process-retry-queue": ("post", "processing_retry_queue"),
    }
    for path, (method, operation_id) in operations.items():
        operation = schema["paths"][path][method]
        assert operation["operationId"] == operation_id
        assert operation["tags"] == ["client processing"]
    scheme = schema["components"]["securitySchemes"]["ProcessingApiKey"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "X-API-Key")
    process_client = schema["paths"]["/api/process-client"]["post"]
    assert process_client["security"] == [{"ProcessingApiKey": []}]
    assert set(process_client["responses"]) == {"202", "400", "401", "403", "404", "422", "429"}
    error = process_client["responses"]["422"]["content"]["application/json"]["schema"]["$ref"]
    properties = schema["components"]["schemas"][error.rsplit("/", 1)[1]]["properties"]
    assert set(properties) == {"detail"}
    assert "security" not in schema["paths"]["/api/health"]["get"]

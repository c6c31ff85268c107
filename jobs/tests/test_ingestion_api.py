"""POST /api/v1/ingestion/jobs and GET /api/v1/ingestion/{id} (seed 003 "Job Ingestion"): its
envelope and error codes, the batch's shape checked first, each job validated alone."""

import uuid

import pytest
from django.db import connection
from rest_framework.test import APIClient

from jobs.models import IngestionBatch, IngestionItem, Job
from jobs.tests.factories import CompanyFactory
from jobs.tests.test_ingestion import ingest

pytestmark = pytest.mark.django_db

URL = "/api/v1/ingestion/jobs"


@pytest.fixture
def integrator(company_key, requesting_company) -> APIClient:
    """The requesting company's integrator, with its company's key."""
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=company_key(requesting_company))
    return client


def job(job_payload, external_id, **changes) -> dict:
    return {**job_payload, "external_id": external_id, **changes}


def test_a_batch_is_accepted_in_seed_003s_envelope(integrator, job_payload):
    body = {"source": "custom", "jobs": [job(job_payload, "custom-123")]}

    response = integrator.post(URL, body, format="json")

    assert response.status_code == 202, response.content
    batch = IngestionBatch.objects.get()
    assert response.json() == {
        "success": True,
        "data": {
            "ingestion_id": str(batch.id),
            "jobs_received": 1,
            "jobs_queued": 1,
            "status": "processing",
        },
    }
    assert batch.source == "custom"
    assert IngestionItem.objects.get().external_id == "custom-123"


def test_a_malformed_job_never_fails_the_batch(integrator, job_payload):
    no_summary = {k: v for k, v in job(job_payload, "b").items() if k != "summary"}
    body = {
        "source": "custom",
        "jobs": [
            job(job_payload, "a"),
            no_summary,
            "not an object",
            job(job_payload, "d", address={**job_payload["address"], "state": "Illinois"}),
            {k: v for k, v in job(job_payload, "e").items() if k != "external_id"},
        ],
    }

    response = integrator.post(URL, body, format="json")

    assert response.status_code == 202, response.content
    assert response.json()["data"]["jobs_received"] == 5
    assert response.json()["data"]["jobs_queued"] == 1
    items = list(IngestionItem.objects.order_by("position"))
    assert [i.status for i in items] == ["queued", "invalid", "invalid", "invalid", "invalid"]
    assert items[1].external_id == "b"
    assert items[1].errors == [{"field": "summary", "message": "This field is required."}]
    assert items[2].errors[0]["field"] is None
    assert items[3].errors[0]["field"] == "address.state"
    assert items[4].errors == [{"field": "external_id", "message": "This field is required."}]


def test_a_companys_key_ingests_only_its_own_companys_jobs(integrator, job_payload):
    other = CompanyFactory()
    body = {
        "source": "custom",
        "jobs": [job(job_payload, "theirs", created_by_company_id=str(other.id))],
    }

    response = integrator.post(URL, body, format="json")

    assert response.status_code == 202
    assert response.json()["data"]["jobs_queued"] == 0
    assert response.json()["data"]["status"] == "completed_with_errors"
    assert IngestionItem.objects.get().errors == [
        {
            "field": "created_by_company_id",
            "message": "A company's key creates jobs only as its own company.",
        }
    ]


def test_an_ops_key_ingests_for_any_company(api_client, job_payload):
    response = api_client.post(
        URL, {"source": "custom", "jobs": [job(job_payload, "a")]}, format="json"
    )

    assert response.status_code == 202
    assert response.json()["data"]["jobs_queued"] == 1
    assert IngestionBatch.objects.get().company_id is None


def test_more_jobs_than_a_batch_holds_is_413(integrator, job_payload, settings):
    settings.INGESTION_MAX_JOBS = 2
    body = {"source": "custom", "jobs": [job(job_payload, f"e{n}") for n in range(3)]}

    response = integrator.post(URL, body, format="json")

    assert response.status_code == 413
    error = response.json()["error"]
    assert response.json()["success"] is False
    assert error["code"] == "VALIDATION_ERROR"
    assert "at most 2 jobs" in error["message"]
    assert not IngestionBatch.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"jobs": [{}]}, "source"),
        ({"source": "custom"}, "jobs"),
        ({"source": "custom", "jobs": []}, "jobs"),
        ({"source": "custom", "jobs": {"a": 1}}, "jobs"),
        ({"source": "has spaces", "jobs": [{}]}, "source"),
        ({"source": 5, "jobs": [{}]}, "source"),
    ],
)
def test_a_batch_of_the_wrong_shape_is_422(integrator, body, field):
    response = integrator.post(URL, body, format="json")

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert field in {detail["field"] for detail in error["details"]}
    assert not IngestionBatch.objects.exists()


def test_a_body_that_is_not_json_is_422(integrator):
    response = integrator.post(URL, "{not json", content_type="application/json")

    assert response.status_code == 422
    assert response.json()["success"] is False


def test_without_a_key_it_is_invalid_api_key(anonymous_client):
    response = anonymous_client.post(URL, {"source": "custom", "jobs": [{}]}, format="json")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "INVALID_API_KEY"


def test_a_key_without_jobs_write_is_permission_denied(company_key, requesting_company):
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=company_key(requesting_company, scopes=["jobs:read"]))

    response = client.post(URL, {"source": "custom", "jobs": [{}]}, format="json")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "PERMISSION_DENIED"


def test_the_batchs_results_name_each_jobs_outcome(integrator, job_payload):
    integrator.post(URL, {"source": "custom", "jobs": [job(job_payload, "a")]}, format="json")
    ingest()
    body = {
        "source": "custom",
        "jobs": [
            job(job_payload, "a"),
            job(job_payload, "b"),
            job(job_payload, "c", summary=""),
        ],
    }
    ingestion_id = integrator.post(URL, body, format="json").json()["data"]["ingestion_id"]
    ingest()

    response = integrator.get(f"/api/v1/ingestion/{ingestion_id}")

    assert response.status_code == 200
    data = response.json()["data"]
    first_job = Job.objects.get(external_id="a")
    new_job = Job.objects.get(external_id="b")
    assert data["status"] == "completed_with_errors"
    assert data["counts"] == {"queued": 0, "created": 1, "duplicate": 1, "invalid": 1}
    assert data["items"] == [
        {
            "index": 0,
            "external_id": "a",
            "status": "duplicate",
            "job_id": None,
            "duplicate_of": str(first_job.id),
            "errors": [],
        },
        {
            "index": 1,
            "external_id": "b",
            "status": "created",
            "job_id": str(new_job.id),
            "duplicate_of": None,
            "errors": [],
        },
        {
            "index": 2,
            "external_id": "c",
            "status": "invalid",
            "job_id": None,
            "duplicate_of": None,
            "errors": [{"field": "summary", "message": "This field may not be blank."}],
        },
    ]
    assert data["completed_at"] is not None


def test_a_batch_in_progress_shows_its_queued_jobs(integrator, job_payload):
    body = {"source": "custom", "jobs": [job(job_payload, "a")]}
    ingestion_id = integrator.post(URL, body, format="json").json()["data"]["ingestion_id"]

    data = integrator.get(f"/api/v1/ingestion/{ingestion_id}").json()["data"]

    assert data["status"] == "processing"
    assert data["counts"]["queued"] == 1
    assert data["items"][0]["status"] == "queued"
    assert data["completed_at"] is None


@pytest.mark.parametrize("ingestion_id", [str(uuid.uuid4()), "not-a-uuid"])
def test_an_unknown_batch_is_not_found(integrator, ingestion_id):
    response = integrator.get(f"/api/v1/ingestion/{ingestion_id}")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"


def test_another_companys_batch_is_not_found_and_ops_sees_it(
    integrator, api_client, company_key, job_payload
):
    ingestion_id = integrator.post(
        URL, {"source": "custom", "jobs": [job(job_payload, "a")]}, format="json"
    ).json()["data"]["ingestion_id"]
    stranger = APIClient()
    stranger.credentials(HTTP_X_API_KEY=company_key(CompanyFactory()))

    assert stranger.get(f"/api/v1/ingestion/{ingestion_id}").status_code == 404
    assert api_client.get(f"/api/v1/ingestion/{ingestion_id}").status_code == 200


def test_reading_a_batch_of_500_costs_a_few_queries(
    integrator, job_payload, django_assert_max_num_queries
):
    body = {"source": "custom", "jobs": [job(job_payload, f"e{n}") for n in range(500)]}
    ingestion_id = integrator.post(URL, body, format="json").json()["data"]["ingestion_id"]

    with django_assert_max_num_queries(4):
        response = integrator.get(f"/api/v1/ingestion/{ingestion_id}")

    assert len(response.json()["data"]["items"]) == 500


def test_accepting_a_batch_of_500_costs_a_few_queries(
    integrator, job_payload, django_assert_max_num_queries
):
    body = {"source": "custom", "jobs": [job(job_payload, f"e{n}") for n in range(500)]}

    # The key, its last use, the batch, its items and its chunks' events (and the test's
    # savepoint): one insert of the items on PostgreSQL, five on SQLite (999 parameters each).
    with django_assert_max_num_queries(7 if connection.vendor == "postgresql" else 11):
        response = integrator.post(URL, body, format="json")

    assert response.status_code == 202
    assert response.json()["data"]["jobs_queued"] == 500

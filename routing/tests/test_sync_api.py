"""POST /api/v1/jobs/{id}/sync (seed 000 "Manual Sync")."""

import uuid

import pytest

from integrations.models import MockJob
from jobs.models import Company, JobStatus, SkillLevel
from jobs.tests.factories import CompanyFactory, JobFactory, JobSkillFactory, skill
from routing.models import JobRouting, OutboxEvent, OutboxStatus, SyncStatus
from routing.tests.factories import JobRoutingFactory, routing_with_event

pytestmark = pytest.mark.django_db

SEED_FIELDS = {
    "id",
    "job_id",
    "company_id_received",
    "external_id",
    "sync_status",
    "retry_count",
    "last_sync_attempt",
    "last_synced_at",
    "error_message",
    "created_at",
    "updated_at",
}


def sync(api_client, job_id, body, **kwargs):
    return api_client.post(f"/api/v1/jobs/{job_id}/sync", body, format="json", **kwargs)


def test_sync_pushes_a_pending_routing_and_returns_it(api_client):
    routing, event = routing_with_event()

    response = sync(api_client, routing.job_id, {"company_id": str(routing.company_id)})

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) >= SEED_FIELDS
    assert body["id"] == str(routing.id)
    assert body["job_id"] == str(routing.job_id)
    assert body["company_id_received"] == str(routing.company_id)
    assert body["sync_status"] == "synced"
    assert body["external_id"] == MockJob.objects.get().external_id
    assert body["error_message"] is None
    assert body["last_synced_at"] is not None
    event.refresh_from_db()
    assert event.status == OutboxStatus.DONE


def test_an_already_synced_routing_is_returned_unchanged(api_client):
    routing, _ = routing_with_event(sync_status=SyncStatus.SYNCED, external_id="st-12345")

    response = sync(api_client, routing.job_id, {"company_id": str(routing.company_id)})

    assert response.status_code == 200
    assert response.json()["external_id"] == "st-12345"
    assert response.json()["updated_at"] == routing.updated_at.isoformat().replace("+00:00", "Z")
    assert not MockJob.objects.exists()


def test_a_failing_provider_answers_200_with_the_retry_scheduled(api_client):
    routing, _ = routing_with_event(company__provider_settings={"fail_first": 1})

    response = sync(api_client, routing.job_id, {"company_id": str(routing.company_id)})

    assert response.status_code == 200
    body = response.json()
    assert (body["sync_status"], body["retry_count"]) == ("pending", 1)
    assert body["error_message"] == "Mock provider: HTTP 503 Service Unavailable"
    assert body["next_retry_at"] is not None


def test_the_provider_call_is_bounded_by_the_request_timeout(api_client, settings):
    settings.SYNC_REQUEST_TIMEOUT_SECONDS = 0.01
    routing, _ = routing_with_event(company__provider_settings={"latency_ms": 2000})

    response = sync(api_client, routing.job_id, {"company_id": str(routing.company_id)})

    assert response.status_code == 200
    assert response.json()["error_message"] == "Mock provider: no answer within 0.01 s"


def test_a_company_without_a_routing_gets_a_manual_route(api_client):
    """An ops key routes the job to a company lacking one of its skills by overriding."""
    job = JobFactory()
    JobSkillFactory(job=job, skill=skill("plumbing"), level=SkillLevel.INTERMEDIATE)
    JobSkillFactory(job=job, skill=skill("electrical"), level=SkillLevel.EXPERT)
    company = CompanyFactory(
        provider_type="mock",
        skills={"plumbing": SkillLevel.EXPERT, "electrical": SkillLevel.BASIC},
    )

    response = sync(api_client, job.id, {"company_id": str(company.id), "override": True})

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["sync_status"] == "synced"
    routing = JobRouting.objects.get(job=job, company=company)
    assert body["id"] == str(routing.id)
    # Scored as matching scores: half the skill coverage (1.0), plumbing held one level above
    # the required one averaged over two skills (0.125), no category, outside its area.
    assert body["match"] == {
        "score": 1.12,
        "matched_skills": ["plumbing"],
        "missing_skills": ["electrical"],
        "reason": "Manual route through POST /jobs/{id}/sync; Skills match: plumbing expert "
        "(needs intermediate); missing: electrical basic (needs expert); outside its service area",
    }
    assert body["routed_by"] == "ops key tests (ops)"
    event = OutboxEvent.objects.get(aggregate_id=routing.id)
    assert event.status == OutboxStatus.DONE
    assert event.event_data["company_id"] == str(company.id)
    assert Company.objects.get(id=company.id).open_routing_count == 1


def test_a_second_manual_sync_reuses_the_route(api_client):
    job = JobFactory()
    company = CompanyFactory(provider_type="mock")

    first = sync(api_client, job.id, {"company_id": str(company.id)}).json()
    second = sync(api_client, job.id, {"company_id": str(company.id)}).json()

    assert first["id"] == second["id"]
    assert JobRouting.objects.filter(job=job).count() == 1
    assert MockJob.objects.get().create_calls == 1


@pytest.mark.parametrize(
    ("company_kwargs", "message"),
    [
        ({"is_active": False}, "is not active or does not accept jobs"),
        ({"accepts_jobs": False}, "is not active or does not accept jobs"),
    ],
)
def test_a_company_that_may_not_receive_the_job_is_refused(api_client, company_kwargs, message):
    job = JobFactory()
    company = CompanyFactory(**company_kwargs)

    response = sync(api_client, job.id, {"company_id": str(company.id)})

    assert response.status_code == 400
    body = response.json()
    assert body["error_code"] == "VALIDATION_ERROR"  # seed 000's code for its 400s
    assert message in body["detail"]
    assert not JobRouting.objects.exists()


def test_the_requesting_company_is_refused(api_client):
    job = JobFactory()

    response = sync(api_client, job.id, {"company_id": str(job.created_by_company_id)})

    assert response.status_code == 400
    assert "never routed to the company that requested it" in response.json()["detail"]


def test_an_unknown_company_is_refused(api_client):
    job = JobFactory()

    response = sync(api_client, job.id, {"company_id": str(uuid.uuid4())})

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "company_id"


def test_a_completed_job_takes_no_new_routing(api_client):
    job = JobFactory(status=JobStatus.COMPLETED)
    company = CompanyFactory()

    response = sync(api_client, job.id, {"company_id": str(company.id)})

    assert response.status_code == 400
    assert "takes no new routings" in response.json()["detail"]


@pytest.mark.parametrize("job_id", ["not-a-uuid", str(uuid.uuid4())])
def test_an_unknown_job_is_404(api_client, job_id):
    response = sync(api_client, job_id, {"company_id": str(uuid.uuid4())})

    assert response.status_code == 404
    assert response.json()["error_code"] == "NOT_FOUND"


@pytest.mark.parametrize(
    "body",
    [{}, {"company_id": "nope"}, {"company_id": 5}, {"company_id": None}, [], "x"],
    ids=["missing", "malformed", "number", "null", "list", "string"],
)
def test_a_malformed_body_is_422(api_client, body):
    routing = JobRoutingFactory()

    response = sync(api_client, routing.job_id, body)

    assert response.status_code == 422
    payload = response.json()
    assert payload["error_code"] == "VALIDATION_ERROR"
    assert payload["errors"]


def test_a_body_that_is_not_json_is_422(api_client):
    routing = JobRoutingFactory()

    response = api_client.post(
        f"/api/v1/jobs/{routing.job_id}/sync", "{oops", content_type="application/json"
    )

    assert response.status_code == 422


def test_get_is_not_allowed(api_client):
    routing = JobRoutingFactory()

    response = api_client.get(f"/api/v1/jobs/{routing.job_id}/sync")

    assert response.status_code == 405
    assert response.json()["error_code"] == "METHOD_NOT_ALLOWED"

import uuid
from datetime import datetime

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from jobs.models import SkillLevel
from jobs.tests.factories import CompanyFactory, JobFactory
from routing.models import JobRouting, SyncStatus
from routing.tests.factories import JobRoutingFactory

ROUTING_FIELDS = {
    "id",
    "job_id",
    "company_id_received",
    "company_name_received",
    "routed_by",
    "external_id",
    "sync_status",
    "retry_count",
    "last_sync_attempt",
    "last_synced_at",
    "next_retry_at",
    "error_message",
    "claimed_at",
    "created_at",
    "updated_at",
    "match",
    "provider_job_id",
    "provider_job_number",
    "provider_status",
    "declined_at",
    "decline_reason",
}


def routings_url(job_id) -> str:
    return f"/api/v1/jobs/{job_id}/routings"


@pytest.fixture
def created_job(api_client, job_payload, plumbing_company, electrical_company):
    """A job posted through the API that plumbing_company and a second plumber can take."""
    CompanyFactory(
        name="Second plumber", service_areas=["IL"], skills={"plumbing": SkillLevel.EXPERT}
    )
    response = api_client.post("/api/v1/jobs/", job_payload, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_routings_of_a_new_job_are_listed_with_their_match(
    api_client, created_job, plumbing_company
):
    response = api_client.get(routings_url(created_job["id"]))

    assert response.status_code == 200
    body = response.json()
    assert isinstance(body, list)
    assert len(body) == 2
    for routing in body:
        assert set(routing) == ROUTING_FIELDS
        assert set(routing["match"]) == {"score", "matched_skills", "missing_skills", "reason"}
        assert routing["job_id"] == created_job["id"]
        assert routing["sync_status"] == "pending"
        assert routing["retry_count"] == 0
        for unset in ("external_id", "last_sync_attempt", "last_synced_at", "error_message"):
            assert routing[unset] is None
        assert routing["claimed_at"] is None
        assert (routing["declined_at"], routing["decline_reason"]) == (None, "")
        assert (routing["provider_job_id"], routing["provider_job_number"]) == ("", "")
        assert routing["match"]["matched_skills"] == ["plumbing"]
        assert routing["match"]["missing_skills"] == []
        assert "plumbing expert (needs expert)" in routing["match"]["reason"]
        datetime.fromisoformat(routing["created_at"])
    scores = [routing["match"]["score"] for routing in body]
    assert scores == sorted(scores, reverse=True)
    # Both serve IL and are expert plumbers; plumbing is only the first one's primary category.
    assert body[0]["company_id_received"] == str(plumbing_company.id)
    assert body[0]["company_name_received"] == plumbing_company.name
    assert scores[0] > scores[1]


def test_requesting_company_never_appears_among_the_routings(
    api_client, created_job, requesting_company
):
    body = api_client.get(routings_url(created_job["id"])).json()

    assert str(requesting_company.id) not in {r["company_id_received"] for r in body}
    assert not JobRouting.objects.filter(company=requesting_company).exists()


def test_routing_sync_state_is_served_as_stored(api_client, db):
    synced_at = timezone.now()
    routing = JobRoutingFactory(
        sync_status=SyncStatus.SYNCED,
        external_id="st-12345",
        last_sync_attempt=synced_at,
        last_synced_at=synced_at,
        matching_score=4.5,
        matched_skills=["plumbing", "electrical"],
        match_reason="Skills match",
    )
    JobRoutingFactory(
        job=routing.job,
        sync_status=SyncStatus.FAILED,
        retry_count=3,
        error_message="ServiceTitan answered 503",
        matching_score=2.0,
    )

    body = api_client.get(routings_url(routing.job_id)).json()

    synced, failed = body
    assert synced["id"] == str(routing.id)
    assert synced["company_id_received"] == str(routing.company_id)
    assert synced["external_id"] == "st-12345"
    assert synced["sync_status"] == "synced"
    assert datetime.fromisoformat(synced["last_synced_at"]) == synced_at
    assert synced["match"] == {
        "score": 4.5,
        "matched_skills": ["plumbing", "electrical"],
        "missing_skills": [],
        "reason": "Skills match",
    }
    assert failed["sync_status"] == "failed"
    assert failed["retry_count"] == 3
    assert failed["error_message"] == "ServiceTitan answered 503"


def test_job_without_routings_lists_none(api_client, db):
    job = JobFactory()

    response = api_client.get(routings_url(job.id))

    assert response.status_code == 200
    assert response.json() == []


def test_routings_of_other_jobs_are_not_listed(api_client, db):
    routing = JobRoutingFactory()
    JobRoutingFactory(company=routing.company)

    body = api_client.get(routings_url(routing.job_id)).json()

    assert [r["id"] for r in body] == [str(routing.id)]


@pytest.mark.parametrize(
    "job_id", [pytest.param(uuid.uuid4(), id="unknown-uuid"), pytest.param("abc", id="malformed")]
)
def test_routings_of_an_unknown_job_answer_404(api_client, db, job_id):
    response = api_client.get(routings_url(job_id))

    assert response.status_code == 404
    body = response.json()
    assert set(body) == {"detail", "error_code", "timestamp"}
    assert body["error_code"] == "NOT_FOUND"


def test_routings_query_count_does_not_grow_with_the_routings(
    api_client, db, django_assert_max_num_queries
):
    job = JobFactory()
    for _ in range(10):
        JobRoutingFactory(job=job)
    api_client.get(routings_url(job.id))  # the key's last use is recorded once a minute

    # The API key, the job, its routings with their companies.
    with django_assert_max_num_queries(3):
        response = api_client.get(routings_url(job.id))

    assert len(response.json()) == 10


def test_a_declined_routing_shows_its_decline_and_the_providers_job(
    company_key, requesting_company, db
):
    declined_at = timezone.now()
    job = JobFactory(created_by_company=requesting_company)
    routing = JobRoutingFactory(
        job=job,
        declined=True,
        declined_at=declined_at,
        provider_job_id="81234",
        provider_job_number="JOB-81234",
    )
    other = JobRoutingFactory(job=job, sync_status=SyncStatus.SYNCED, matching_score=1.0)
    requester, receiver = APIClient(), APIClient()
    requester.credentials(HTTP_X_API_KEY=company_key(requesting_company))
    receiver.credentials(HTTP_X_API_KEY=company_key(routing.company))

    seen_by_requester = requester.get(routings_url(job.id)).json()
    seen_by_receiver = receiver.get(routings_url(job.id)).json()

    declined, open_one = seen_by_requester
    assert (declined["id"], open_one["id"]) == (str(routing.id), str(other.id))
    assert declined["sync_status"] == "synced"
    assert datetime.fromisoformat(declined["declined_at"]) == declined_at
    assert declined["decline_reason"] == "Customer went with another plumber"
    assert (declined["provider_job_id"], declined["provider_job_number"]) == ("81234", "JOB-81234")
    assert (open_one["declined_at"], open_one["decline_reason"]) == (None, "")
    # The receiving company sees its own routing only, as before.
    assert seen_by_receiver == [declined]

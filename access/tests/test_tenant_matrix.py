"""Every endpoint with four callers: the company that requested a job, a company that received
it, a stranger, an ops key, and nobody (DESIGN.md "Security and tenancy"; OWASP API1 and API3).
A company sees what it created or received and acts only as itself; anything else is as unknown
as a missing id (404) or, where the company names itself, forbidden (403)."""

import uuid

import pytest
from rest_framework.test import APIClient

from jobs.models import CompanySkill, Job, SkillLevel
from jobs.tests.factories import CompanyFactory, JobFactory, JobSkillFactory, skill
from processing.tests.factories import ProcessingJobFactory
from routing.models import SyncStatus, WebhookEndpoint
from routing.tests.factories import JobRoutingFactory, WebhookEndpointFactory

pytestmark = pytest.mark.django_db

CALLERS = ["requester", "receiver", "stranger", "ops", "nobody"]


@pytest.fixture
def world(company_key, ops_key, requesting_company, requesting_technician, settings):
    """A job of the requester's routed to the receiver, a stranger in the same trade, each
    with a key, and the receiver's client-processing run."""
    settings.SYNC_UNCONFIGURED_WITH_MOCK = True
    receiver = CompanyFactory(name="Receiver Plumbing", skills={"plumbing": SkillLevel.EXPERT})
    stranger = CompanyFactory(name="Stranger Plumbing", skills={"plumbing": SkillLevel.EXPERT})
    job = JobFactory(
        created_by_company=requesting_company, created_by_technician=requesting_technician
    )
    JobSkillFactory(job=job, skill=skill("plumbing"), level=SkillLevel.BASIC)
    requester_routing = JobRoutingFactory(
        job=job, company=requesting_company, sync_status=SyncStatus.SYNCED
    )
    receiver_routing = JobRoutingFactory(job=job, company=receiver, sync_status=SyncStatus.SYNCED)
    keys = {
        "requester": company_key(requesting_company),
        "receiver": company_key(receiver),
        "stranger": company_key(stranger),
        "ops": ops_key,
        "nobody": None,
    }
    return {
        "job": job,
        "requester": requesting_company,
        "technician": requesting_technician,
        "receiver": receiver,
        "stranger": stranger,
        "routings": {"requester": requester_routing, "receiver": receiver_routing},
        "run": ProcessingJobFactory(client=receiver),
        "keys": keys,
    }


def client_of(world, caller: str) -> APIClient:
    client = APIClient()
    if world["keys"][caller]:
        client.credentials(HTTP_X_API_KEY=world["keys"][caller])
    return client


def job_body(world, company) -> dict:
    return {
        "summary": "Fix leaky kitchen faucet",
        "address": {
            "street": "1 Main St",
            "city": "Springfield",
            "state": "IL",
            "zip_code": "62701",
        },
        "homeowner": {"name": "Jane Smith"},
        "created_by_company_id": str(company.id),
        "created_by_technician_id": str(world["technician"].id),
        "required_skills": ["plumbing"],
        "skill_levels": {"plumbing": "basic"},
    }


@pytest.mark.parametrize(
    ("caller", "status", "sees_the_job"),
    [
        ("requester", 200, True),
        ("receiver", 200, True),
        ("stranger", 200, False),
        ("ops", 200, True),
        ("nobody", 401, False),
    ],
)
def test_listing_jobs(world, caller, status, sees_the_job):
    response = client_of(world, caller).get("/api/v1/jobs/")

    assert response.status_code == status
    if status == 200:
        listed = {job["id"] for job in response.json()}
        assert (str(world["job"].id) in listed) is sees_the_job


@pytest.mark.parametrize(
    ("caller", "as_company", "status"),
    [
        ("requester", "requester", 201),
        ("stranger", "requester", 403),
        ("receiver", "requester", 403),
        ("ops", "requester", 201),
        ("nobody", "requester", 401),
    ],
)
def test_creating_a_job_as_a_company(world, caller, as_company, status):
    before = Job.objects.count()

    response = client_of(world, caller).post(
        "/api/v1/jobs/", job_body(world, world[as_company]), format="json"
    )

    assert response.status_code == status, response.content
    assert Job.objects.count() == before + (1 if status == 201 else 0)


@pytest.mark.parametrize(
    ("caller", "status"),
    [("requester", 200), ("receiver", 200), ("stranger", 404), ("ops", 200), ("nobody", 401)],
)
def test_reading_a_job(world, caller, status):
    response = client_of(world, caller).get(f"/api/v1/jobs/{world['job'].id}")

    assert response.status_code == status


@pytest.mark.parametrize(
    ("caller", "status", "visible"),
    [
        ("requester", 200, {"requester", "receiver"}),
        ("receiver", 200, {"receiver"}),
        ("stranger", 404, None),
        ("ops", 200, {"requester", "receiver"}),
        ("nobody", 401, None),
    ],
)
def test_listing_a_jobs_routings(world, caller, status, visible):
    response = client_of(world, caller).get(f"/api/v1/jobs/{world['job'].id}/routings")

    assert response.status_code == status
    if visible is not None:
        expected = {str(world["routings"][who].id) for who in visible}
        assert {routing["id"] for routing in response.json()} == expected


@pytest.mark.parametrize(
    ("caller", "status"),
    [("requester", 200), ("receiver", 403), ("stranger", 404), ("ops", 200), ("nobody", 401)],
)
def test_syncing_a_job_by_hand(world, caller, status):
    response = client_of(world, caller).post(
        f"/api/v1/jobs/{world['job'].id}/sync",
        {"company_id": str(world["stranger"].id)},
        format="json",
    )

    assert response.status_code == status, response.content
    if status == 200:
        assert response.json()["company_id_received"] == str(world["stranger"].id)


@pytest.mark.parametrize(
    ("caller", "status"),
    [("requester", 403), ("receiver", 403), ("stranger", 403), ("ops", 200), ("nobody", 401)],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/integrations/servicetitan/health"),
        ("get", "/api/integrations/servicetitan/auth/test"),
        ("get", "/api/integrations/servicetitan/jobs?startDate=2026-01-01&endDate=2026-01-02"),
    ],
)
def test_the_servicetitan_module_is_for_ops(world, caller, status, method, path):
    response = getattr(client_of(world, caller), method)(path)

    assert response.status_code == status, response.content


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/api/integrations/servicetitan/jobs"),
        ("post", "/api/integrations/servicetitan/jobs/batch"),
        ("get", "/api/integrations/servicetitan/jobs/1001"),
        ("delete", "/api/integrations/servicetitan/jobs/1001"),
        ("patch", "/api/integrations/servicetitan/jobs/1001/status"),
    ],
)
@pytest.mark.parametrize(("caller", "status"), [("requester", 403), ("nobody", 401)])
def test_the_servicetitan_module_refuses_companies_before_reading_anything(
    world, caller, status, method, path
):
    response = getattr(client_of(world, caller), method)(path, {}, format="json")

    assert response.status_code == status, response.content
    assert response.json()["success"] is False


@pytest.mark.parametrize(
    ("caller", "client", "status"),
    [
        ("receiver", "receiver", 202),
        ("requester", "receiver", 403),
        ("stranger", "receiver", 403),
        ("ops", "receiver", 202),
        ("nobody", "receiver", 401),
    ],
)
def test_starting_a_clients_processing(world, caller, client, status):
    response = client_of(world, caller).post(
        "/api/process-client", {"client_id": str(world[client].id)}, format="json"
    )

    assert response.status_code == status, response.content


@pytest.mark.parametrize(
    ("caller", "status"),
    [("receiver", 200), ("requester", 404), ("stranger", 404), ("ops", 200), ("nobody", 401)],
)
def test_reading_a_processing_run(world, caller, status):
    response = client_of(world, caller).get(f"/api/job-status/{world['run'].job_id}")

    assert response.status_code == status, response.content


@pytest.mark.parametrize(
    ("caller", "status"),
    [("receiver", 403), ("requester", 403), ("stranger", 403), ("ops", 200), ("nobody", 401)],
)
def test_running_the_retry_queue_is_for_ops(world, caller, status):
    response = client_of(world, caller).post("/api/process-retry-queue")

    assert response.status_code == status, response.content


@pytest.mark.parametrize(
    ("caller", "status"),
    [("receiver", 403), ("requester", 403), ("stranger", 403), ("ops", 200), ("nobody", 401)],
)
def test_the_analytics_dashboard_is_for_ops(world, caller, status):
    """Every company's figures in one answer (names of companies with failed syncs included)."""
    response = client_of(world, caller).get("/api/v1/analytics/dashboard")

    assert response.status_code == status, response.content
    if status == 403:
        assert response.json()["error_code"] == "FORBIDDEN"
        assert world["stranger"].name not in response.content.decode()


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/health",
        "/api/v1/health/detailed",
        "/api/v1/health/ready",
        "/api/v1/health/live",
        "/api/health",
        "/openapi.json",
    ],
)
def test_health_probes_and_the_schema_need_no_key(world, caller, path, background_alive):
    assert client_of(world, caller).get(path).status_code == 200


@pytest.mark.parametrize("caller", ["requester", "ops"])
def test_an_unknown_job_is_404_for_everyone(world, caller):
    response = client_of(world, caller).get(f"/api/v1/jobs/{uuid.uuid4()}")

    assert response.status_code == 404


@pytest.mark.parametrize("caller", CALLERS)
def test_metrics_are_for_the_scraper_not_for_any_api_key(world, caller, settings):
    """/metrics holds counts across every tenant (labelled by provider, route and status, never
    an id): no API key opens it, ops' included; only the scrape token or an allowed network."""
    settings.METRICS_ALLOWED_NETWORKS = []
    settings.METRICS_TOKEN = "scrape-token-1"

    assert client_of(world, caller).get("/metrics").status_code == 404
    scraper = client_of(world, caller)
    assert scraper.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-token-1").status_code == 200


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(
    ("path", "error_key"),
    [
        ("/api/integrations/servicetitan/webhook", "error"),
        ("/api/integrations/crm/webhook?account={receiver}", "error"),
    ],
)
def test_provider_webhooks_take_a_signature_not_an_api_key(world, caller, path, error_key):
    """A provider's webhook is signed with the account's secret: no API key, ops' included,
    stands in for the signature, and nothing is applied."""
    response = client_of(world, caller).post(
        path.format(receiver=world["receiver"].id),
        {"event": "work_order.completed", "data": {"work_order_id": "1"}},
        format="json",
    )

    assert response.status_code == 401
    assert error_key in response.json()
    assert (
        world["routings"]["receiver"]
        .__class__.objects.get(id=world["routings"]["receiver"].id)
        .sync_status
        == SyncStatus.SYNCED
    )


@pytest.mark.parametrize(
    ("caller", "status"),
    [("requester", 200), ("receiver", 403), ("stranger", 404), ("ops", 200), ("nobody", 401)],
)
def test_a_jobs_match_explanations(world, caller, status):
    """The other candidates are the requester's business: a receiver sees the job, not them."""
    response = client_of(world, caller).get(f"/api/v1/jobs/{world['job'].id}/matches")

    assert response.status_code == status, response.content
    if status == 200:
        routed = {routing["company_id"] for routing in response.json()["routings"]}
        assert routed == {str(world["requester"].id), str(world["receiver"].id)}


@pytest.mark.parametrize(
    ("caller", "status", "matched"),
    [
        ("requester", 200, True),
        ("receiver", 200, True),
        ("stranger", 200, False),
        ("ops", 403, None),
        ("nobody", 401, None),
    ],
)
def test_matching_the_callers_company_to_jobs(world, caller, status, matched):
    """A job the caller may not see is as unknown as a missing one."""
    job_id = str(world["job"].id)
    missing = str(uuid.uuid4())

    response = client_of(world, caller).post(
        "/api/v1/matching/jobs", {"job_ids": [job_id, missing]}, format="json"
    )

    assert response.status_code == status, response.content
    body = response.json()
    assert body["success"] is (status == 200)
    if matched is not None:
        data = body["data"]
        assert [match["job_id"] for match in data["matches"]] == ([job_id] if matched else [])
        assert data["not_found"] == ([missing] if matched else [job_id, missing])


@pytest.mark.parametrize(
    ("caller", "status"),
    [("requester", 200), ("receiver", 200), ("stranger", 200), ("ops", 403), ("nobody", 401)],
)
def test_a_company_reads_and_replaces_only_its_own_matching_profile(world, caller, status):
    client = client_of(world, caller)
    profile = {
        "skills": [{"skill": "roofing", "level": "expert"}],
        "service_areas": [{"kind": "state", "code": "WI"}],
        "primary_category": "roofing",
    }

    read = client.get("/api/v1/matching/profile")
    replaced = client.put("/api/v1/matching/profile", profile, format="json")

    assert (read.status_code, replaced.status_code) == (status, status), replaced.content
    if status == 200:
        assert read.json()["data"]["company_id"] == str(world[caller].id)
        assert replaced.json()["data"]["company_id"] == str(world[caller].id)
    roofers = CompanySkill.objects.filter(skill__slug="roofing")
    assert set(roofers.values_list("company_id", flat=True)) == (
        {world[caller].id} if status == 200 else set()
    )


@pytest.mark.parametrize(
    ("caller", "as_company", "status", "queued"),
    [
        ("requester", "requester", 202, 1),
        ("receiver", "requester", 202, 0),  # its own batch, with the job refused
        ("stranger", "requester", 202, 0),
        ("ops", "requester", 202, 1),
        ("nobody", "requester", 401, None),
    ],
)
def test_ingesting_jobs_as_a_company(world, caller, as_company, status, queued):
    body = {
        "source": "matrix",
        "jobs": [{**job_body(world, world[as_company]), "external_id": "matrix-1"}],
    }

    response = client_of(world, caller).post("/api/v1/ingestion/jobs", body, format="json")

    assert response.status_code == status, response.content
    if queued is not None:
        assert response.json()["data"]["jobs_queued"] == queued


@pytest.mark.parametrize(
    ("caller", "status"),
    [("requester", 200), ("receiver", 404), ("stranger", 404), ("ops", 200), ("nobody", 401)],
)
def test_reading_an_ingestion_batch(world, caller, status):
    body = {
        "source": "matrix",
        "jobs": [{**job_body(world, world["requester"]), "external_id": "matrix-1"}],
    }
    ingestion_id = (
        client_of(world, "requester")
        .post("/api/v1/ingestion/jobs", body, format="json")
        .json()["data"]["ingestion_id"]
    )

    response = client_of(world, caller).get(f"/api/v1/ingestion/{ingestion_id}")

    assert response.status_code == status
    if status != 200:
        assert response.json()["success"] is False


@pytest.mark.parametrize(
    ("caller", "as_company", "status"),
    [
        ("receiver", "receiver", 201),
        ("receiver", None, 201),
        ("requester", "receiver", 403),
        ("stranger", "receiver", 403),
        ("ops", "receiver", 201),
        ("ops", None, 422),
        ("nobody", "receiver", 401),
    ],
)
def test_registering_a_webhook_endpoint(world, caller, as_company, status):
    body = {"url": "https://hooks.example.com/in", "events": ["job.created"]}
    if as_company:
        body["company_id"] = str(world[as_company].id)

    response = client_of(world, caller).post("/api/v1/webhooks", body, format="json")

    assert response.status_code == status, response.content
    if status == 201:
        assert response.json()["company_id"] == str(world["receiver"].id)


@pytest.mark.parametrize(
    ("caller", "status", "sees_it"),
    [
        ("receiver", 200, True),
        ("requester", 200, False),
        ("stranger", 200, False),
        ("ops", 200, True),
        ("nobody", 401, False),
    ],
)
def test_listing_webhook_endpoints(world, caller, status, sees_it):
    endpoint = WebhookEndpointFactory(company=world["receiver"])

    response = client_of(world, caller).get("/api/v1/webhooks")

    assert response.status_code == status
    if status == 200:
        assert (str(endpoint.id) in {e["id"] for e in response.json()}) is sees_it


@pytest.mark.parametrize(
    ("caller", "status"),
    [("receiver", "ok"), ("requester", 404), ("stranger", 404), ("ops", "ok"), ("nobody", 401)],
)
@pytest.mark.parametrize(
    ("method", "path", "ok", "body"),
    [
        ("get", "/api/v1/webhooks/{id}", 200, None),
        ("patch", "/api/v1/webhooks/{id}", 200, {"description": "changed"}),
        ("post", "/api/v1/webhooks/{id}/rotate-secret", 200, None),
        ("post", "/api/v1/webhooks/{id}/test", 202, None),
        ("get", "/api/v1/webhooks/{id}/deliveries", 200, None),
        ("delete", "/api/v1/webhooks/{id}", 204, None),
    ],
)
def test_a_webhook_endpoint_is_its_companys_and_ops(world, caller, status, method, path, ok, body):
    endpoint = WebhookEndpointFactory(company=world["receiver"])
    secret = endpoint.secrets["secret"]

    response = getattr(client_of(world, caller), method)(
        path.format(id=endpoint.id), body, format="json"
    )

    assert response.status_code == (ok if status == "ok" else status), response.content
    assert secret not in response.content.decode()
    if status != "ok":
        assert WebhookEndpoint.objects.get(id=endpoint.id).secrets["secret"] == secret

import copy
import json
import re
import uuid
from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from jobs.coverage import coverage_rebuild
from jobs.matching import network_size
from jobs.models import (
    Category,
    Company,
    CompanySkill,
    Job,
    JobSkill,
    ServiceArea,
    Skill,
    SkillLevel,
    Technician,
)
from jobs.selectors import managed_lists
from jobs.tests.factories import (
    CompanyFactory,
    JobFactory,
    JobSkillFactory,
    TechnicianFactory,
    service_area,
)
from jobs.tests.factories import skill as seeded_skill
from routing.models import JobRouting, OutboxEvent
from routing.services.webhooks import companies_with_endpoints

JOBS_URL = "/api/v1/jobs/"
JOB_FIELDS = {
    "id",
    "summary",
    "address",
    "homeowner",
    "created_by_company_id",
    "created_by_technician_id",
    "required_skills",
    "skill_levels",
    "category",
    "status",
    "revenue",
    "completed_at",
    "created_at",
    "updated_at",
}
ERROR_FIELDS = {"detail", "error_code", "timestamp"}
VALIDATION_ERROR_FIELDS = ERROR_FIELDS | {"errors"}
MISSING = object()


def job_url(job_id) -> str:
    return f"{JOBS_URL}{job_id}"


def post_job(client, body):
    return client.post(JOBS_URL, body, format="json")


def with_change(payload: dict, path: str, value) -> dict:
    """A deep copy of ``payload`` with the dotted ``path`` set to ``value`` (or removed)."""
    body = copy.deepcopy(payload)
    *parents, leaf = path.split(".")
    target = body
    for key in parents:
        target = target[key]
    if value is MISSING:
        del target[leaf]
    else:
        target[leaf] = value
    return body


def assert_error_shape(body: dict, error_code: str) -> None:
    assert body["error_code"] == error_code
    assert isinstance(body["detail"], str) and body["detail"]
    datetime.fromisoformat(body["timestamp"])


def assert_validation_error(response, status: int, field: str | None) -> list[str]:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == VALIDATION_ERROR_FIELDS
    assert_error_shape(body, "VALIDATION_ERROR")
    assert body["errors"], "a validation error lists what was wrong"
    for error in body["errors"]:
        assert set(error) == {"field", "message"}
    assert field in [error["field"] for error in body["errors"]], body["errors"]
    return [error["message"] for error in body["errors"] if error["field"] == field]


def assert_job_shape(body: dict) -> None:
    assert set(body) == JOB_FIELDS
    assert set(body["address"]) == {"street", "city", "state", "zip_code"}
    assert set(body["homeowner"]) == {"name", "phone", "email"}
    uuid.UUID(body["id"])
    datetime.fromisoformat(body["created_at"])
    datetime.fromisoformat(body["updated_at"])


def add_candidates(count: int, levels: dict[str, SkillLevel], area: str = "IL") -> list[Company]:
    companies = Company.objects.bulk_create(Company(name=f"Candidate {n}") for n in range(count))
    ServiceArea.objects.bulk_create(service_area(company, area) for company in companies)
    skills = {slug: seeded_skill(slug) for slug in levels}
    CompanySkill.objects.bulk_create(
        CompanySkill(company=company, skill=skills[slug], level=level)
        for company in companies
        for slug, level in levels.items()
    )
    coverage_rebuild(company_ids=[company.id for company in companies])
    return companies


# POST /api/v1/jobs/


def test_create_job_answers_201_with_the_documented_job(
    api_client, job_payload, requesting_company, requesting_technician, plumbing_company
):
    response = post_job(api_client, job_payload)

    assert response.status_code == 201, response.content
    body = response.json()
    assert_job_shape(body)
    assert body["summary"] == "Fix leaky kitchen faucet"
    assert body["address"] == job_payload["address"]
    assert body["homeowner"] == job_payload["homeowner"]
    assert body["created_by_company_id"] == str(requesting_company.id)
    assert body["created_by_technician_id"] == str(requesting_technician.id)
    assert body["required_skills"] == ["plumbing"]
    assert body["skill_levels"] == {"plumbing": "expert"}
    assert body["category"] == "plumbing"
    assert body["status"] == "pending"
    assert body["revenue"] is None
    assert body["completed_at"] is None


def test_create_job_stores_job_skills_routings_and_one_outbox_event_per_routing(
    api_client, job_payload, requesting_company, plumbing_company, electrical_company
):
    # Lists no service area: a candidate wherever the job is, ranked below the job's area.
    nationwide_plumber = CompanyFactory(
        service_areas=[], provider_type="mock", skills={"plumbing": SkillLevel.EXPERT}
    )
    job_payload["required_skills"] = ["plumbing", "electrical"]
    job_payload["skill_levels"] = {"plumbing": "expert"}
    electrical_company.skills.create(skill=seeded_skill("plumbing"), level=SkillLevel.EXPERT)
    plumbing_company.skills.create(skill=seeded_skill("electrical"), level=SkillLevel.BASIC)
    nationwide_plumber.skills.create(skill=seeded_skill("electrical"), level=SkillLevel.EXPERT)

    response = post_job(api_client, job_payload)

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["required_skills"] == ["plumbing", "electrical"]
    assert body["skill_levels"] == {"plumbing": "expert", "electrical": "basic"}
    job = Job.objects.get(id=body["id"])
    assert (job.street, job.city, job.state, job.zip_code) == (
        "456 Oak Avenue",
        "Springfield",
        "IL",
        "62701",
    )
    assert (job.homeowner_name, job.homeowner_phone, job.homeowner_email) == (
        "Jane Smith",
        "(555) 987-6543",
        "jane.smith@email.com",
    )
    assert job.created_by_company_id == requesting_company.id
    assert job.category.slug == "plumbing"
    assert [(js.skill.slug, js.level) for js in JobSkill.objects.filter(job=job)] == [
        ("plumbing", SkillLevel.EXPERT),
        ("electrical", SkillLevel.BASIC),
    ]
    routings = list(JobRouting.objects.filter(job=job))
    assert {r.company_id for r in routings} == {
        plumbing_company.id,
        electrical_company.id,
        nationwide_plumber.id,
    }
    events = {e.aggregate_id: e for e in OutboxEvent.objects.all()}
    assert set(events) == {r.id for r in routings}
    for routing in routings:
        event = events[routing.id]
        assert event.event_type == "job_sync"
        assert event.status == "pending"
        assert event.event_data == {
            "routing_id": str(routing.id),
            "job_id": str(job.id),
            "company_id": str(routing.company_id),
            "matching_score": routing.matching_score,
            "matched_skills": ["plumbing", "electrical"],
            "provider_type": routing.company.provider_type,
            "correlation_id": job.correlation_id,
        }
    nationwide_routing = next(r for r in routings if r.company_id == nationwide_plumber.id)
    assert events[nationwide_routing.id].event_data["provider_type"] == "mock"
    assert nationwide_routing.matching_score < min(
        r.matching_score for r in routings if r.company_id != nationwide_plumber.id
    )
    assert nationwide_routing.match_reason.endswith("; outside its service area")


def test_create_job_without_optional_fields_defaults_them(api_client, job_payload):
    for key in ("required_skills", "skill_levels", "category"):
        del job_payload[key]
    del job_payload["homeowner"]["phone"]
    del job_payload["homeowner"]["email"]

    response = post_job(api_client, job_payload)

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["required_skills"] == []
    assert body["skill_levels"] == {}
    assert body["category"] is None
    assert body["homeowner"] == {"name": "Jane Smith", "phone": None, "email": None}
    assert not JobRouting.objects.exists()
    assert not OutboxEvent.objects.exists()


def test_job_is_not_routed_to_requesting_company(api_client, job_payload, requesting_company):
    response = post_job(api_client, job_payload)

    assert response.status_code == 201, response.content
    assert not JobRouting.objects.filter(company=requesting_company).exists()


def email_of_length(length: int) -> str:
    domain = "b" * 60 + "." + "c" * 60 + ".com"
    return "a" * (length - len(domain) - 1) + "@" + domain


def json_change(path, value):
    return lambda payload: {
        "data": json.dumps(with_change(payload, path, value)),
        "content_type": "application/json",
    }


def raw_body(data, content_type):
    return lambda payload: {"data": data, "content_type": content_type}


MALFORMED_REQUESTS = [
    pytest.param(raw_body('{"summary": "x",', "application/json"), None, None, id="invalid-json"),
    pytest.param(raw_body("[" * 100_000, "application/json"), None, "deep", id="json-too-deep"),
    pytest.param(raw_body(b'{"summary": "\xff"}', "application/json"), None, None, id="not-utf8"),
    pytest.param(raw_body('{"summary": NaN}', "application/json"), None, None, id="json-nan"),
    pytest.param(json_change("summary", "a\u0000b"), "summary", "Null", id="summary-nul-char"),
    pytest.param(
        raw_body("summary=Fix+faucet", "application/x-www-form-urlencoded"),
        None,
        "application/json",
        id="form-encoded",
    ),
    pytest.param(
        lambda payload: {"data": json.dumps([payload]), "content_type": "application/json"},
        None,
        None,
        id="body-is-a-list",
    ),
    pytest.param(json_change("summary", MISSING), "summary", "required", id="summary-missing"),
    pytest.param(json_change("summary", "x" * 1001), "summary", "1000", id="summary-1001-chars"),
    pytest.param(json_change("summary", 42), "summary", None, id="summary-is-a-number"),
    pytest.param(json_change("address", MISSING), "address", "required", id="address-missing"),
    pytest.param(
        json_change("address.street", "x" * 256), "address.street", "255", id="street-256-chars"
    ),
    pytest.param(json_change("address.city", "x" * 101), "address.city", "100", id="city-101"),
    pytest.param(json_change("address.state", "ca"), "address.state", None, id="state-lowercase"),
    pytest.param(json_change("address.state", "CAL"), "address.state", None, id="state-3-chars"),
    pytest.param(json_change("address.zip_code", "1234"), "address.zip_code", "5", id="zip-short"),
    pytest.param(
        json_change("address.zip_code", "62701-12345"), "address.zip_code", "10", id="zip-11-chars"
    ),
    pytest.param(
        json_change("homeowner.name", MISSING), "homeowner.name", "required", id="name-missing"
    ),
    pytest.param(
        json_change("homeowner.phone", "5" * 21), "homeowner.phone", "20", id="phone-21-chars"
    ),
    pytest.param(
        json_change("homeowner.email", "jane.at.example"),
        "homeowner.email",
        "email",
        id="email-invalid",
    ),
    pytest.param(
        json_change("homeowner.email", email_of_length(256)),
        "homeowner.email",
        "255",
        id="email-256-chars",
    ),
    pytest.param(
        json_change("created_by_company_id", "not-a-uuid"),
        "created_by_company_id",
        "UUID",
        id="company-id-not-a-uuid",
    ),
    pytest.param(
        json_change("created_by_company_id", 5),
        "created_by_company_id",
        "UUID",
        id="company-id-integer",
    ),
    pytest.param(
        json_change("required_skills", "plumbing"), "required_skills", "list", id="skills-not-list"
    ),
    pytest.param(json_change("required_skills", []), "required_skills", None, id="skills-empty"),
    pytest.param(
        json_change("required_skills", ["plumbing", "plumbing"]),
        "required_skills",
        "Duplicate skill(s): plumbing",
        id="skills-duplicated",
    ),
    pytest.param(json_change("required_skills", [""]), "required_skills.0", None, id="skill-blank"),
    pytest.param(
        json_change("skill_levels", {"plumbing": "master"}),
        "skill_levels.plumbing",
        "master",
        id="skill-level-unknown",
    ),
    pytest.param(
        json_change("skill_levels", {"plumbing": "expert", "hvac": "basic"}),
        "skill_levels.hvac",
        "required_skills",
        id="skill-level-for-unlisted-skill",
    ),
    pytest.param(
        json_change("required_skills", ["plumbing", "underwater_welding"]),
        "required_skills",
        "plumbing",
        id="skill-not-managed",
    ),
    pytest.param(
        json_change("category", "landscaping"), "category", "electrical", id="category-unknown"
    ),
    pytest.param(json_change("category", "x" * 101), "category", "100", id="category-101-chars"),
]


@pytest.mark.parametrize(("build_request", "field", "message_part"), MALFORMED_REQUESTS)
def test_malformed_job_is_rejected_with_422_naming_the_field(
    api_client, job_payload, build_request, field, message_part
):
    response = api_client.post(JOBS_URL, **build_request(job_payload))

    messages = assert_validation_error(response, 422, field)
    if message_part is not None:
        assert any(message_part in message for message in messages), messages
    assert not Job.objects.exists()


def test_body_over_the_upload_limit_is_rejected_with_413(api_client, job_payload, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    job_payload["summary"] = "x" * 20_000

    response = api_client.post(JOBS_URL, job_payload, format="json")

    assert response.status_code == 413
    assert response.json()["error_code"] == "VALIDATION_ERROR"
    assert set(response.json()) >= {"detail", "error_code", "timestamp"}
    assert not Job.objects.exists()


def test_unknown_skill_error_names_the_unknown_and_the_known_skills(api_client, job_payload):
    job_payload["required_skills"] = ["underwater_welding"]
    job_payload["skill_levels"] = {}

    response = post_job(api_client, job_payload)

    (message,) = assert_validation_error(response, 422, "required_skills")
    assert "underwater_welding" in message
    assert all(slug in message for slug in ("plumbing", "electrical", "hvac", "roofing"))


def test_unknown_category_error_names_the_known_categories(api_client, job_payload):
    job_payload["category"] = "landscaping"

    response = post_job(api_client, job_payload)

    (message,) = assert_validation_error(response, 422, "category")
    assert "landscaping" in message
    assert all(slug in message for slug in ("plumbing", "electrical", "hvac", "general"))


def test_several_malformed_fields_are_all_reported(api_client, job_payload):
    job_payload["address"]["state"] = "ca"
    job_payload["homeowner"]["email"] = "nope"

    response = post_job(api_client, job_payload)

    assert response.status_code == 422
    body = response.json()
    assert {e["field"] for e in body["errors"]} == {"address.state", "homeowner.email"}
    assert body["detail"] == "Request validation failed (2 errors)"


def make_company_unknown(payload, company, technician):
    payload["created_by_company_id"] = str(uuid.uuid4())


def make_company_inactive(payload, company, technician):
    Company.objects.filter(id=company.id).update(is_active=False)


def make_technician_unknown(payload, company, technician):
    payload["created_by_technician_id"] = str(uuid.uuid4())


def make_technician_of_another_company(payload, company, technician):
    payload["created_by_technician_id"] = str(TechnicianFactory().id)


def make_technician_inactive(payload, company, technician):
    Technician.objects.filter(id=technician.id).update(is_active=False)


@pytest.mark.parametrize(
    ("break_rule", "field", "message_part"),
    [
        pytest.param(make_company_unknown, "created_by_company_id", "does not exist", id="co-gone"),
        pytest.param(make_company_inactive, "created_by_company_id", "not active", id="co-off"),
        pytest.param(
            make_technician_unknown, "created_by_technician_id", "does not exist", id="tech-gone"
        ),
        pytest.param(
            make_technician_of_another_company,
            "created_by_technician_id",
            "does not belong",
            id="tech-of-another-company",
        ),
        pytest.param(
            make_technician_inactive, "created_by_technician_id", "not active", id="tech-off"
        ),
    ],
)
def test_job_breaking_a_requester_rule_is_rejected_with_400(
    api_client,
    job_payload,
    requesting_company,
    requesting_technician,
    plumbing_company,
    break_rule,
    field,
    message_part,
):
    break_rule(job_payload, requesting_company, requesting_technician)

    response = post_job(api_client, job_payload)

    (message,) = assert_validation_error(response, 400, field)
    assert message_part in message
    assert response.json()["detail"] == message
    assert not Job.objects.exists()
    assert not JobRouting.objects.exists()
    assert not OutboxEvent.objects.exists()


# GET /api/v1/jobs/{id}


def test_get_job_answers_the_job_as_created(api_client, job_payload, plumbing_company):
    created = post_job(api_client, job_payload).json()

    response = api_client.get(job_url(created["id"]))

    assert response.status_code == 200
    body = response.json()
    assert_job_shape(body)
    assert body == created


def test_get_job_shows_revenue_and_completion(api_client, db):
    completed_at = timezone.now()
    job = JobFactory(status="completed", revenue="450.00", completed_at=completed_at)

    body = api_client.get(job_url(job.id)).json()

    assert body["status"] == "completed"
    assert body["revenue"] == 450.0
    assert datetime.fromisoformat(body["completed_at"]) == completed_at


@pytest.mark.parametrize(
    "job_id", [pytest.param(uuid.uuid4(), id="unknown-uuid"), pytest.param("abc", id="malformed")]
)
def test_get_unknown_job_answers_404(api_client, db, job_id):
    response = api_client.get(job_url(job_id))

    assert response.status_code == 404
    body = response.json()
    assert set(body) == ERROR_FIELDS
    assert_error_shape(body, "NOT_FOUND")
    assert str(job_id) in body["detail"]


# GET /api/v1/jobs/


@pytest.fixture
def three_jobs(db):
    """Three jobs, created an hour apart, returned newest first."""
    now = timezone.now()
    jobs = [JobFactory(summary=f"Job {n}") for n in range(3)]
    for hours_ago, job in zip((2, 1, 0), jobs, strict=True):
        Job.objects.filter(id=job.id).update(created_at=now - timedelta(hours=hours_ago))
    JobSkillFactory(job=jobs[2], skill=seeded_skill("hvac"), level=SkillLevel.EXPERT)
    return [str(job.id) for job in reversed(jobs)]


def test_list_jobs_answers_a_plain_list_newest_first(api_client, three_jobs):
    response = api_client.get(JOBS_URL, {"skip": 0, "limit": 100})

    assert response.status_code == 200
    body = response.json()
    assert isinstance(body, list)
    assert [job["id"] for job in body] == three_jobs
    for job in body:
        assert_job_shape(job)
    assert body[0]["skill_levels"] == {"hvac": "expert"}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param({}, [0, 1, 2], id="defaults"),
        pytest.param({"limit": 2}, [0, 1], id="limit"),
        pytest.param({"skip": 1}, [1, 2], id="skip"),
        pytest.param({"skip": 1, "limit": 1}, [1], id="skip-and-limit"),
        pytest.param({"skip": 3}, [], id="skip-past-the-end"),
    ],
)
def test_list_jobs_pages_with_skip_and_limit(api_client, three_jobs, query, expected):
    response = api_client.get(JOBS_URL, query)

    assert response.status_code == 200
    assert [job["id"] for job in response.json()] == [three_jobs[i] for i in expected]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        pytest.param("limit=1001", "limit", id="limit-over-1000"),
        pytest.param("limit=0", "limit", id="limit-zero"),
        pytest.param("skip=-1", "skip", id="skip-negative"),
        pytest.param("limit=abc", "limit", id="limit-not-a-number"),
        pytest.param("skip=99999999999999999999999", "skip", id="skip-beyond-any-offset"),
    ],
)
def test_list_jobs_with_bad_paging_is_rejected_with_422(api_client, db, query, field):
    response = api_client.get(f"{JOBS_URL}?{query}")

    assert_validation_error(response, 422, field)


def test_list_jobs_query_count_does_not_grow_with_the_page(
    api_client, db, django_assert_max_num_queries
):
    for _ in range(20):
        JobSkillFactory(job=JobFactory(category=None))
    api_client.get(f"{JOBS_URL}?limit=1")  # the key's last use is recorded once a minute

    # The API key, the page of jobs, their skills.
    with django_assert_max_num_queries(3):
        response = api_client.get(JOBS_URL)

    assert len(response.json()) == 20


def test_managed_lists_are_cached_and_a_new_skill_is_accepted_at_once(
    api_client, job_payload, django_assert_num_queries
):
    managed_lists()
    with django_assert_num_queries(0):
        managed_lists()

    Skill.objects.create(slug="solar_panels", name="Solar panels")
    job_payload["required_skills"] = ["solar_panels"]
    job_payload["skill_levels"] = {"solar_panels": "basic"}

    response = post_job(api_client, job_payload)

    assert response.status_code == 201, response.content
    assert response.json()["required_skills"] == ["solar_panels"]


def test_a_deleted_category_is_refused_at_once(api_client, job_payload):
    managed_lists()
    Category.objects.create(slug="pools", name="Pools").delete()
    job_payload["category"] = "pools"

    response = post_job(api_client, job_payload)

    assert_validation_error(response, 422, "category")


# Errors outside the views


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("delete", JOBS_URL, id="delete-jobs"),
        pytest.param("put", job_url(uuid.uuid4()), id="put-job"),
        pytest.param("post", job_url(uuid.uuid4()), id="post-job"),
    ],
)
def test_wrong_method_answers_405(api_client, db, method, path):
    response = getattr(api_client, method)(path, {}, format="json")

    assert response.status_code == 405
    body = response.json()
    assert set(body) == ERROR_FIELDS
    assert_error_shape(body, "METHOD_NOT_ALLOWED")


@pytest.mark.parametrize("path", ["/api/v1/nope", "/api/v1/jobs/x/y/z"])
def test_unknown_api_path_answers_404_json(api_client, db, path):
    response = api_client.get(path)

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == ERROR_FIELDS
    assert_error_shape(body, "NOT_FOUND")


def test_unexpected_error_answers_500_in_the_error_shape(job_payload, ops_key):
    """An error no layer expects, raised where the job is stored: at the database driver."""

    def bug(execute, sql, params, many, context):
        if re.search(r'\bINSERT INTO "?jobs_job"?\s', sql):
            raise RuntimeError("a bug")
        return execute(sql, params, many, context)

    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_X_API_KEY=ops_key)

    with connection.execute_wrapper(bug):
        response = post_job(client, job_payload)

    assert response.status_code == 500
    body = response.json()
    assert set(body) == ERROR_FIELDS
    assert_error_shape(body, "INTERNAL_ERROR")
    assert "a bug" not in body["detail"]
    assert not Job.objects.exists()


# Query count

# 11 on SQLite (9 on PostgreSQL, where BEGIN and COMMIT are not statements): the API key,
# requester, at most two matching queries (the whole of a small network in one; in a large one
# the ZIP and state tiers when they fill the limit), BEGIN, job, job skills, routings, outbox
# events, company load, COMMIT. The managed skills and categories come from the cache, the
# network size matching reads at most once a minute and the companies with webhook endpoints
# (none here: no lookup of endpoints, no delivery) are read beforehand.
CREATE_QUERY_BOUND = 11

FIVE_SKILLS = ["plumbing", "water_heater", "drain_cleaning", "electrical", "hvac"]


@pytest.mark.parametrize("skill_count", [1, 5])
@pytest.mark.parametrize("candidate_count", [3, 50])
@pytest.mark.parametrize(
    "small_network_companies",
    [pytest.param(10**9, id="whole-network"), pytest.param(0, id="area-tiers")],
)
def test_create_job_query_count_is_bounded(
    api_client,
    job_payload,
    django_assert_max_num_queries,
    settings,
    skill_count,
    candidate_count,
    small_network_companies,
):
    settings.MATCH_SMALL_NETWORK_COMPANIES = small_network_companies
    skills = FIVE_SKILLS[:skill_count]
    add_candidates(candidate_count, dict.fromkeys(skills, SkillLevel.EXPERT))
    job_payload["required_skills"] = skills
    job_payload["skill_levels"] = dict.fromkeys(skills, "expert")
    managed_lists()
    network_size()
    companies_with_endpoints()
    api_client.get(f"{JOBS_URL}?limit=1")  # the key's last use is recorded once a minute

    with django_assert_max_num_queries(CREATE_QUERY_BOUND):
        response = post_job(api_client, job_payload)

    assert response.status_code == 201, response.content
    assert JobRouting.objects.count() == 3
    assert OutboxEvent.objects.count() == 3
    assert JobSkill.objects.count() == skill_count


def test_a_job_keeps_the_correlation_id_of_the_request_that_created_it(api_client, job_payload):
    given = api_client.post(
        "/api/v1/jobs/", job_payload, format="json", headers={"X-Correlation-ID": "req-abc-1"}
    )
    generated = api_client.post("/api/v1/jobs/", job_payload, format="json")

    assert Job.objects.get(id=given.json()["id"]).correlation_id == "req-abc-1"
    job = Job.objects.get(id=generated.json()["id"])
    assert job.correlation_id == generated["X-Correlation-ID"]
    assert job.correlation_id.startswith("req-")

"""Matching explanations (issue 19; seed 003 "Matching Service"): a job's candidates ranked
again now beside its routings' stored explanations, a company's fit for jobs it may see, and
its matching profile."""

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from access.models import Scope
from jobs.matching import match_company
from jobs.models import CompanySkill, Job, ServiceArea, SkillLevel
from jobs.serializers import MAX_MATCHING_JOB_IDS
from jobs.services import job_create
from jobs.tests.factories import (
    CompanyFactory,
    JobFactory,
    JobSkillFactory,
    TechnicianFactory,
    category,
    skill,
)
from routing.models import JobRouting
from routing.tests.factories import JobRoutingFactory

pytestmark = pytest.mark.django_db

MATCHING_JOBS = "/api/v1/matching/jobs"
PROFILE = "/api/v1/matching/profile"
EXPLANATION = ("score", "matched_skills", "missing_skills", "reason")


def matches_url(job_id) -> str:
    return f"/api/v1/jobs/{job_id}/matches"


def keyed(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=key)
    return client


def created_job(company, technician, *, zip_code="62701", skill_levels=None, category_slug=None):
    return job_create(
        summary="Fix leaky kitchen faucet",
        address={"street": "1 Main St", "city": "Springfield", "state": "IL", "zip_code": zip_code},
        homeowner={"name": "Jane Smith"},
        created_by_company_id=company.id,
        created_by_technician_id=technician.id,
        skill_levels=skill_levels or {"plumbing": "intermediate"},
        category=category_slug,
    )


@pytest.fixture
def network(plumbing_company, electrical_company):
    """Six plumbers of different fit around Springfield, IL (one below the job's level), and an
    electrician: the job below routes to the best three of them."""
    return {
        "near": CompanyFactory(
            name="Near Plumbing",
            service_areas=["627"],
            skills={"plumbing": SkillLevel.EXPERT, "water_heater": SkillLevel.BASIC},
        ),
        "state": plumbing_company,
        "middling": CompanyFactory(
            name="Middling Plumbing",
            service_areas=["IL"],
            skills={"plumbing": SkillLevel.INTERMEDIATE},
        ),
        "basic": CompanyFactory(
            name="Basic Plumbing", service_areas=["IL"], skills={"plumbing": SkillLevel.BASIC}
        ),
        "far": CompanyFactory(
            name="Far Plumbing", service_areas=["CA"], skills={"plumbing": SkillLevel.EXPERT}
        ),
        "farther": CompanyFactory(
            name="Farther Plumbing",
            service_areas=["NY"],
            skills={"plumbing": SkillLevel.INTERMEDIATE},
        ),
        "electrical": electrical_company,
    }


@pytest.fixture
def routed_job(network, requesting_company, requesting_technician):
    return created_job(
        requesting_company,
        requesting_technician,
        skill_levels={"plumbing": "intermediate"},
        category_slug="plumbing",
    )


# GET /api/v1/jobs/{id}/matches


def test_the_recomputed_explanations_equal_the_stored_ones_on_an_unchanged_network(
    routed_job, requesting_company, company_key
):
    response = keyed(company_key(requesting_company)).get(matches_url(routed_job.id))

    assert response.status_code == 200, response.content
    body = response.json()
    routings = {routing["company_id"]: routing for routing in body["routings"]}
    routed = [candidate for candidate in body["candidates"] if candidate["routed"]]
    assert len(routings) == 3
    assert {candidate["company_id"] for candidate in routed} == set(routings)
    for candidate in routed:
        stored = routings[candidate["company_id"]]
        assert {field: candidate[field] for field in EXPLANATION} == {
            field: stored[field] for field in EXPLANATION
        }
        assert candidate["routing_id"] == stored["routing_id"]
        assert stored["routed_by"] == ""


def test_candidates_are_ranked_best_first_with_names_and_whether_they_were_routed(
    routed_job, network, requesting_company, company_key
):
    body = keyed(company_key(requesting_company)).get(matches_url(routed_job.id)).json()

    candidates = body["candidates"]
    assert [candidate["rank"] for candidate in candidates] == list(range(1, len(candidates) + 1))
    assert [candidate["score"] for candidate in candidates] == sorted(
        (candidate["score"] for candidate in candidates), reverse=True
    )
    assert candidates[0]["company_name"] == "Near Plumbing"
    assert [candidate["routed"] for candidate in candidates] == [True, True, True, False, False]
    assert candidates[3]["routing_id"] is None
    names = {candidate["company_name"] for candidate in candidates}
    assert not names & {"Lincoln Electric", "Basic Plumbing"}
    assert requesting_company.name not in names
    assert body["job_id"] == str(routed_job.id)
    assert body["note"].startswith("candidates are ranked now from the current network")
    assert body["recomputed_at"]


def test_candidates_are_paged_with_skip_and_limit(routed_job, requesting_company, company_key):
    client = keyed(company_key(requesting_company))
    everyone = client.get(matches_url(routed_job.id)).json()["candidates"]

    page = client.get(matches_url(routed_job.id), {"skip": 2, "limit": 2}).json()

    assert (page["skip"], page["limit"]) == (2, 2)
    assert page["candidates"] == everyone[2:4]
    assert [candidate["rank"] for candidate in page["candidates"]] == [3, 4]


@pytest.mark.parametrize("query", [{"skip": -1}, {"limit": 0}, {"skip": "x"}, {"skip": 10_001}])
def test_a_malformed_page_is_422_in_seed_000s_shape(routed_job, api_client, query):
    response = api_client.get(matches_url(routed_job.id), query)

    assert response.status_code == 422
    assert response.json()["error_code"] == "VALIDATION_ERROR"


def test_a_routed_company_the_ranking_no_longer_lists_keeps_its_stored_explanation(
    routed_job, network, api_client
):
    network["near"].is_active = False
    network["near"].save()

    body = api_client.get(matches_url(routed_job.id)).json()

    assert str(network["near"].id) not in {c["company_id"] for c in body["candidates"]}
    stored = next(r for r in body["routings"] if r["company_id"] == str(network["near"].id))
    assert stored["company_name"] == "Near Plumbing"
    assert stored["matched_skills"] == ["plumbing"]
    assert stored["reason"].startswith("Skills match: plumbing expert (needs intermediate)")


def test_a_manual_route_shows_who_routed_it(routed_job, network, api_client):
    JobRoutingFactory(
        job=routed_job,
        company=network["electrical"],
        routed_by="ops key tests",
        match_reason="Manual route",
    )

    body = api_client.get(matches_url(routed_job.id)).json()

    stored = next(r for r in body["routings"] if r["company_id"] == str(network["electrical"].id))
    assert (stored["routed_by"], stored["reason"]) == ("ops key tests", "Manual route")


def test_an_unknown_or_malformed_job_is_404(api_client):
    assert api_client.get(matches_url(uuid.uuid4())).status_code == 404
    assert api_client.get(matches_url("nope")).status_code == 404


# POST /api/v1/matching/jobs


@pytest.fixture
def plumber(company_key):
    company = CompanyFactory(
        name="Caller Plumbing",
        primary_category=category("plumbing"),
        service_areas=["IL"],
        skills={"plumbing": SkillLevel.EXPERT},
    )
    return company, keyed(company_key(company))


def received_job(company, *, skills=None, **fields) -> Job:
    """A job of another company, routed to ``company``."""
    job = JobFactory(**fields)
    for slug, level in (skills or {"plumbing": SkillLevel.BASIC}).items():
        JobSkillFactory(job=job, skill=skill(slug), level=level)
    JobRoutingFactory(job=job, company=company)
    return job


def test_a_company_sees_how_well_it_matches_each_job_it_may_see(plumber):
    company, client = plumber
    fits = received_job(company, category=category("plumbing"))
    lacks = received_job(
        company, skills={"plumbing": SkillLevel.BASIC, "electrical": SkillLevel.BASIC}
    )
    own = JobFactory(created_by_technician=TechnicianFactory(company=company), zip_code="90210")

    response = client.post(
        MATCHING_JOBS, {"job_ids": [str(fits.id), str(lacks.id), str(own.id)]}, format="json"
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["success"] is True
    assert body["data"]["not_found"] == []
    matches = body["data"]["matches"]
    assert [m["job_id"] for m in matches] == [str(fits.id), str(lacks.id), str(own.id)]
    for match, job in zip(matches, [fits, lacks, own], strict=True):
        expected = match_company(job=job, company=company)
        assert match == {
            "job_id": str(job.id),
            "score": expected.score,
            "reason": expected.reason,
            "matched_skills": expected.matched_skills,
            "missing_skills": expected.missing_skills,
        }
    assert matches[0]["reason"] == (
        "Skills match: plumbing expert (needs basic); category match; serves IL"
    )
    assert (matches[1]["matched_skills"], matches[1]["missing_skills"]) == (
        ["plumbing"],
        ["electrical"],
    )


def test_jobs_it_may_not_see_are_as_unknown_as_missing_and_malformed_ids(plumber):
    company, client = plumber
    visible = received_job(company)
    strangers = JobFactory()
    missing = str(uuid.uuid4())

    response = client.post(
        MATCHING_JOBS,
        {"job_ids": [missing, str(strangers.id), str(visible.id), "not-a-uuid", ""]},
        format="json",
    )

    assert response.status_code == 200
    data = response.json()["data"]
    assert [m["job_id"] for m in data["matches"]] == [str(visible.id)]
    assert data["not_found"] == [missing, str(strangers.id), "not-a-uuid", ""]


def test_a_job_named_twice_is_answered_once(plumber):
    company, client = plumber
    job = received_job(company)

    data = client.post(MATCHING_JOBS, {"job_ids": [str(job.id)] * 3}, format="json").json()["data"]

    assert [m["job_id"] for m in data["matches"]] == [str(job.id)]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"job_ids": []},
        {"job_ids": "a-job"},
        {"job_ids": [7]},
        {"job_ids": [None]},
        {"job_ids": ["x" * 101]},
        {"job_ids": [str(uuid.uuid4()) for _ in range(MAX_MATCHING_JOB_IDS + 1)]},
        ["not", "an", "object"],
    ],
    ids=["missing", "empty", "string", "number", "null", "too-long", "too-many", "array"],
)
def test_malformed_job_ids_are_422_in_seed_003s_shape(plumber, body):
    _, client = plumber

    response = client.post(MATCHING_JOBS, body, format="json")

    assert response.status_code == 422, response.content
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert error["details"]


def test_the_most_ids_allowed_are_answered(plumber):
    _, client = plumber
    ids = [str(uuid.uuid4()) for _ in range(MAX_MATCHING_JOB_IDS)]

    response = client.post(MATCHING_JOBS, {"job_ids": ids}, format="json")

    assert response.status_code == 200
    assert response.json()["data"]["not_found"] == ids


def test_an_ops_key_has_no_company_to_match(api_client):
    response = api_client.post(MATCHING_JOBS, {"job_ids": [str(uuid.uuid4())]}, format="json")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "PERMISSION_DENIED"


def test_matching_many_jobs_costs_no_more_queries_than_one(plumber, django_assert_max_num_queries):
    company, client = plumber
    one = [str(received_job(company).id)]
    many = [str(received_job(company).id) for _ in range(30)]

    with CaptureQueriesContext(connection) as single:
        assert client.post(MATCHING_JOBS, {"job_ids": one}, format="json").status_code == 200
    with django_assert_max_num_queries(len(single)):
        response = client.post(MATCHING_JOBS, {"job_ids": many}, format="json")

    assert len(response.json()["data"]["matches"]) == 30
    assert len(single) <= 10


# GET and PUT /api/v1/matching/profile


@pytest.fixture
def profile_owner(requesting_company, company_key):
    return requesting_company, keyed(company_key(requesting_company))


def test_a_company_reads_its_profile(profile_owner):
    company, client = profile_owner

    response = client.get(PROFILE)

    assert response.status_code == 200
    assert response.json() == {
        "success": True,
        "data": {
            "company_id": str(company.id),
            "company_name": company.name,
            "skills": [{"skill": "plumbing", "level": "expert"}],
            "service_areas": [
                {"kind": "state", "code": "IL"},
                {"kind": "zip_prefix", "code": "627"},
            ],
            "primary_category": "plumbing",
            "updated_at": response.json()["data"]["updated_at"],
        },
    }


def test_an_update_replaces_skills_areas_and_category_and_answers_the_stored_profile(
    profile_owner,
):
    company, client = profile_owner
    body = {
        "skills": [
            {"skill": "hvac", "level": "expert"},
            {"skill": "ac_repair", "level": "intermediate"},
            "furnace_repair",
        ],
        "service_areas": [{"kind": "state", "code": "wi"}, {"kind": "zip_prefix", "code": "532"}],
        "primary_category": "hvac",
    }

    response = client.put(PROFILE, body, format="json")

    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert data["skills"] == [
        {"skill": "ac_repair", "level": "intermediate"},
        {"skill": "furnace_repair", "level": "basic"},
        {"skill": "hvac", "level": "expert"},
    ]
    assert data["service_areas"] == [
        {"kind": "state", "code": "WI"},
        {"kind": "zip_prefix", "code": "532"},
    ]
    assert data["primary_category"] == "hvac"
    assert client.get(PROFILE).json()["data"] == data
    held = CompanySkill.objects.filter(company=company).values_list("skill__slug", flat=True)
    assert set(held) == {"hvac", "ac_repair", "furnace_repair"}
    assert not ServiceArea.objects.filter(company=company, code="IL").exists()


def test_an_empty_profile_takes_the_company_out_of_matching(profile_owner):
    company, client = profile_owner

    response = client.put(
        PROFILE, {"skills": [], "service_areas": [], "primary_category": None}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["data"] | {"updated_at": None} == {
        "company_id": str(company.id),
        "company_name": company.name,
        "skills": [],
        "service_areas": [],
        "primary_category": None,
        "updated_at": None,
    }


def test_after_an_update_a_new_job_in_the_new_area_with_the_new_skills_is_routed_to_it(
    requesting_company, requesting_technician, company_key
):
    receiver = CompanyFactory(name="Will Learn HVAC", service_areas=["CA"])
    receiver_client = keyed(company_key(receiver))
    response = receiver_client.put(
        PROFILE,
        {
            "skills": [{"skill": "hvac", "level": "expert"}],
            "service_areas": [{"kind": "zip_prefix", "code": "537"}],
            "primary_category": "hvac",
        },
        format="json",
    )
    assert response.status_code == 200, response.content

    job = created_job(
        requesting_company,
        requesting_technician,
        zip_code="53703",
        skill_levels={"hvac": "intermediate"},
        category_slug="hvac",
    )

    routing = JobRouting.objects.get(job=job)
    assert routing.company_id == receiver.id
    assert routing.match_reason == (
        "Skills match: hvac expert (needs intermediate); category match; serves the job's ZIP area"
    )


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (
            {"skills": ["plumbing", "welding"]},
            "skills",
            "Unknown skill(s): welding. Known skills: ac_repair, carpentry,",
        ),
        ({"primary_category": "welding"}, "primary_category", "Unknown category 'welding'."),
        ({"skills": [{"skill": "plumbing", "level": "guru"}]}, "skills.0.level", '"guru"'),
        ({"skills": ["plumbing", {"skill": "plumbing"}]}, "skills", "Duplicate skill(s)"),
        ({"skills": [7]}, "skills.0", "A skill is a slug or"),
        ({"service_areas": [{"kind": "state", "code": "Illinois"}]}, "service_areas.0.code", ""),
        ({"service_areas": [{"kind": "zip_prefix", "code": "62a"}]}, "service_areas.0.code", ""),
        ({"service_areas": [{"kind": "city", "code": "X"}]}, "service_areas.0.kind", ""),
        (
            {"service_areas": [{"kind": "state", "code": "IL"}, {"kind": "state", "code": "il"}]},
            "service_areas",
            "Duplicate area(s): state IL.",
        ),
        ({"primary_category": 5}, "primary_category", ""),
    ],
)
def test_an_invalid_profile_is_422_naming_the_field_and_changes_nothing(
    profile_owner, body, field, message
):
    _, client = profile_owner
    before = client.get(PROFILE).json()["data"]
    complete = {"skills": ["plumbing"], "service_areas": [], "primary_category": None, **body}

    response = client.put(PROFILE, complete, format="json")

    assert response.status_code == 422, response.content
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    detail = next(d for d in error["details"] if d["field"] == field)
    assert message in detail["message"]
    assert client.get(PROFILE).json()["data"] == before


def test_a_profile_must_name_all_three_parts(profile_owner):
    _, client = profile_owner

    response = client.put(PROFILE, {"skills": ["plumbing"]}, format="json")

    assert response.status_code == 422
    fields = {d["field"] for d in response.json()["error"]["details"]}
    assert fields == {"service_areas", "primary_category"}


@pytest.mark.parametrize("method", ["get", "put"])
def test_an_ops_key_has_no_profile(api_client, method):
    response = getattr(api_client, method)(PROFILE, {}, format="json")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "PERMISSION_DENIED"


def test_updating_needs_the_profile_scope_and_reading_does_not(requesting_company, company_key):
    client = keyed(company_key(requesting_company, scopes=[Scope.JOBS_READ]))

    assert client.get(PROFILE).status_code == 200
    response = client.put(
        PROFILE, {"skills": [], "service_areas": [], "primary_category": None}, format="json"
    )
    assert response.status_code == 403

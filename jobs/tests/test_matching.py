import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs import services
from jobs.matching import (
    ANYWHERE_WEIGHT,
    CATEGORY_WEIGHT,
    LEVEL_MARGIN_WEIGHT,
    SKILL_COVERAGE_WEIGHT,
    STATE_WEIGHT,
    ZIP_PREFIX_WEIGHT,
    Requirement,
    match_companies,
)
from jobs.models import Company, CompanySkill, ServiceArea, SkillLevel
from jobs.tests.factories import CompanyFactory, TechnicianFactory, category, service_area, skill
from routing.models import JobRouting

BASIC, INTERMEDIATE, EXPERT = SkillLevel.BASIC, SkillLevel.INTERMEDIATE, SkillLevel.EXPERT

pytestmark = pytest.mark.django_db


def requirement(slug: str, level: SkillLevel = BASIC) -> Requirement:
    return Requirement(skill_id=skill(slug).id, slug=slug, level=level)


def match(*requirements: Requirement, **overrides):
    """Match a job in Springfield, IL 62701 with no category, requested by nobody in particular."""
    arguments = {
        "requirements": list(requirements),
        "category_id": None,
        "state": "IL",
        "zip_code": "62701",
        "exclude_company_id": None,
        "limit": 10,
    }
    arguments.update(overrides)
    return match_companies(**arguments)


def matched_ids(*requirements: Requirement, **overrides) -> list[uuid.UUID]:
    return [m.company_id for m in match(*requirements, **overrides)]


def create_job(*, technician, skill_levels: dict[str, str], category_slug=None, zip_code="62701"):
    return services.job_create(
        summary="Fix leaky kitchen faucet",
        address={
            "street": "456 Oak Avenue",
            "city": "Springfield",
            "state": "IL",
            "zip_code": zip_code,
        },
        homeowner={"name": "Jane Smith", "phone": "", "email": ""},
        created_by_company_id=technician.company_id,
        created_by_technician_id=technician.id,
        skill_levels=skill_levels,
        category=category_slug,
    )


def add_network(count: int, *, area: str, slug: str = "plumbing", level=EXPERT) -> list[Company]:
    """``count`` companies serving ``area`` with one skill, written in three statements."""
    companies = Company.objects.bulk_create(
        Company(name=f"Network company {n}") for n in range(count)
    )
    plumbing = skill(slug)
    CompanySkill.objects.bulk_create(
        CompanySkill(company=company, skill=plumbing, level=level) for company in companies
    )
    ServiceArea.objects.bulk_create(service_area(company, area) for company in companies)
    return companies


# Who is a candidate


def test_active_company_with_every_required_skill_in_the_area_is_a_candidate():
    company = CompanyFactory(
        service_areas=["IL"], skills={"plumbing": EXPERT, "electrical": INTERMEDIATE}
    )

    assert matched_ids(requirement("plumbing", EXPERT), requirement("electrical", BASIC)) == [
        company.id
    ]


@pytest.mark.parametrize(
    "company_kwargs",
    [
        pytest.param({"is_active": False}, id="inactive"),
        pytest.param({"accepts_jobs": False}, id="not-accepting-jobs"),
        pytest.param(
            {"skills": {"plumbing": INTERMEDIATE, "electrical": EXPERT}}, id="lower-level"
        ),
        pytest.param({"skills": {"plumbing": EXPERT}}, id="missing-one-skill"),
        pytest.param({"skills": {"electrical": EXPERT, "hvac": EXPERT}}, id="other-skills"),
        pytest.param({"service_areas": ["WI", "53"]}, id="outside-its-area"),
        pytest.param({"service_areas": []}, id="no-service-area"),
    ],
)
def test_company_is_not_a_candidate(company_kwargs):
    kwargs = {"service_areas": ["IL"], "skills": {"plumbing": EXPERT, "electrical": EXPERT}}
    kwargs.update(company_kwargs)
    CompanyFactory(**kwargs)

    assert match(requirement("plumbing", EXPERT), requirement("electrical", BASIC)) == []


def test_job_is_not_routed_to_requesting_company(requesting_company, plumbing_company):
    ids = matched_ids(requirement("plumbing", EXPERT), exclude_company_id=requesting_company.id)

    assert ids == [plumbing_company.id]


@pytest.mark.parametrize(
    ("held", "required", "candidate"),
    [
        (BASIC, BASIC, True),
        (INTERMEDIATE, BASIC, True),
        (EXPERT, BASIC, True),
        (BASIC, INTERMEDIATE, False),
        (INTERMEDIATE, INTERMEDIATE, True),
        (EXPERT, INTERMEDIATE, True),
        (BASIC, EXPERT, False),
        (INTERMEDIATE, EXPERT, False),
        (EXPERT, EXPERT, True),
    ],
)
def test_a_level_satisfies_itself_and_every_level_below(held, required, candidate):
    CompanyFactory(service_areas=["IL"], skills={"plumbing": held})

    assert len(match(requirement("plumbing", required))) == int(candidate)


@pytest.mark.parametrize(
    ("areas", "zip_code"),
    [
        pytest.param(["627"], "62701", id="zip-prefix"),
        pytest.param(["62701"], "62701", id="whole-zip"),
        pytest.param(["6"], "62701", id="one-digit-prefix"),
        pytest.param(["627"], "62701-1234", id="zip-plus-four"),
        pytest.param(["IL"], "62701", id="state"),
        pytest.param(["*"], "62701", id="anywhere"),
    ],
)
def test_company_serving_the_job_area_is_a_candidate(areas, zip_code):
    company = CompanyFactory(service_areas=areas, skills={"plumbing": BASIC})

    assert matched_ids(requirement("plumbing"), zip_code=zip_code) == [company.id]


def test_zip_prefix_of_another_area_does_not_match():
    CompanyFactory(service_areas=["628", "62702"], skills={"plumbing": BASIC})

    assert match(requirement("plumbing")) == []


# Score


@pytest.mark.parametrize(
    ("company_kwargs", "requirements", "expected_score"),
    [
        pytest.param(
            {},
            [("plumbing", EXPERT)],
            SKILL_COVERAGE_WEIGHT + STATE_WEIGHT,
            id="coverage-and-state",
        ),
        pytest.param(
            {"service_areas": ["627"]},
            [("plumbing", EXPERT)],
            SKILL_COVERAGE_WEIGHT + ZIP_PREFIX_WEIGHT,
            id="zip-prefix",
        ),
        pytest.param(
            {"service_areas": ["627", "IL", "*"]},
            [("plumbing", EXPERT)],
            SKILL_COVERAGE_WEIGHT + ZIP_PREFIX_WEIGHT,
            id="zip-prefix-wins-over-state",
        ),
        pytest.param(
            {"service_areas": ["IL", "*"]},
            [("plumbing", EXPERT)],
            SKILL_COVERAGE_WEIGHT + STATE_WEIGHT,
            id="state-wins-over-anywhere",
        ),
        pytest.param(
            {"service_areas": ["*"]},
            [("plumbing", EXPERT)],
            SKILL_COVERAGE_WEIGHT + ANYWHERE_WEIGHT,
            id="anywhere",
        ),
        pytest.param(
            {"primary_category": "plumbing"},
            [("plumbing", EXPERT)],
            SKILL_COVERAGE_WEIGHT + STATE_WEIGHT + CATEGORY_WEIGHT,
            id="category",
        ),
        pytest.param(
            {"primary_category": "electrical"},
            [("plumbing", EXPERT)],
            SKILL_COVERAGE_WEIGHT + STATE_WEIGHT,
            id="other-category",
        ),
        pytest.param(
            {},
            [("plumbing", INTERMEDIATE)],
            SKILL_COVERAGE_WEIGHT + STATE_WEIGHT + LEVEL_MARGIN_WEIGHT,
            id="one-level-above",
        ),
        pytest.param(
            {},
            [("plumbing", BASIC)],
            SKILL_COVERAGE_WEIGHT + STATE_WEIGHT + 2 * LEVEL_MARGIN_WEIGHT,
            id="two-levels-above",
        ),
        pytest.param(
            {},
            [("plumbing", BASIC), ("electrical", EXPERT)],
            SKILL_COVERAGE_WEIGHT + STATE_WEIGHT + (2 + 0) / 2 * LEVEL_MARGIN_WEIGHT,
            id="margin-averaged-over-skills",
        ),
        pytest.param(
            {"service_areas": ["62"], "primary_category": "plumbing"},
            [("plumbing", BASIC), ("electrical", BASIC)],
            SKILL_COVERAGE_WEIGHT + ZIP_PREFIX_WEIGHT + CATEGORY_WEIGHT + 2 * LEVEL_MARGIN_WEIGHT,
            id="everything",
        ),
    ],
)
def test_score_adds_coverage_margin_category_and_area(company_kwargs, requirements, expected_score):
    kwargs = {"service_areas": ["IL"], "skills": {"plumbing": EXPERT, "electrical": EXPERT}}
    kwargs.update(company_kwargs)
    if "primary_category" in kwargs:
        kwargs["primary_category"] = category(kwargs["primary_category"])
    CompanyFactory(**kwargs)

    (result,) = match(
        *(requirement(slug, level) for slug, level in requirements),
        category_id=category("plumbing").id,
    )

    assert result.score == pytest.approx(expected_score)


def test_margin_and_category_never_outweigh_a_closer_area():
    near = CompanyFactory(service_areas=["627"], skills={"plumbing": BASIC})
    in_state = CompanyFactory(
        service_areas=["IL"],
        primary_category=category("plumbing"),
        skills={"plumbing": EXPERT},
    )
    anywhere = CompanyFactory(
        service_areas=["*"],
        primary_category=category("plumbing"),
        skills={"plumbing": EXPERT},
    )

    ids = matched_ids(requirement("plumbing", BASIC), category_id=category("plumbing").id)

    assert ids == [near.id, in_state.id, anywhere.id]


def test_match_explains_itself():
    company = CompanyFactory(
        service_areas=["IL"],
        primary_category=category("plumbing"),
        provider_type="servicetitan",
        skills={"plumbing": EXPERT, "electrical": INTERMEDIATE},
    )

    (result,) = match(
        requirement("plumbing", INTERMEDIATE),
        requirement("electrical", INTERMEDIATE),
        category_id=category("plumbing").id,
    )

    assert result.company_id == company.id
    assert result.provider_type == "servicetitan"
    assert result.matched_skills == ["plumbing", "electrical"]
    assert result.missing_skills == []
    assert result.reason == (
        "Skills match: plumbing expert (needs intermediate), "
        "electrical intermediate (needs intermediate); category match; serves IL"
    )


@pytest.mark.parametrize(
    ("areas", "area_reason"),
    [(["627"], "serves the job's ZIP area"), (["IL"], "serves IL"), (["*"], "works anywhere")],
)
def test_match_reason_names_the_area(areas, area_reason):
    CompanyFactory(service_areas=areas, skills={"plumbing": BASIC})

    (result,) = match(requirement("plumbing"))

    assert result.reason == f"Skills match: plumbing basic (needs basic); {area_reason}"


# Ranking


def test_equal_scores_go_to_the_lower_load_then_the_lower_id():
    busy_first_id = CompanyFactory(
        id=uuid.UUID(int=1), service_areas=["IL"], skills={"plumbing": BASIC}
    )
    idle_third_id = CompanyFactory(
        id=uuid.UUID(int=3), service_areas=["IL"], skills={"plumbing": BASIC}
    )
    idle_second_id = CompanyFactory(
        id=uuid.UUID(int=2), service_areas=["IL"], skills={"plumbing": BASIC}
    )
    Company.objects.filter(id=busy_first_id.id).update(open_routing_count=5)

    results = match(requirement("plumbing"))

    assert len({r.score for r in results}) == 1
    assert [r.company_id for r in results] == [
        idle_second_id.id,
        idle_third_id.id,
        busy_first_id.id,
    ]


def test_higher_score_beats_lower_load():
    better = CompanyFactory(service_areas=["IL"], skills={"plumbing": EXPERT})
    idle = CompanyFactory(service_areas=["IL"], skills={"plumbing": BASIC})
    Company.objects.filter(id=better.id).update(open_routing_count=100)

    assert matched_ids(requirement("plumbing")) == [better.id, idle.id]


def test_only_the_best_limit_candidates_are_returned():
    CompanyFactory(service_areas=["*"], skills={"plumbing": EXPERT})
    in_state = CompanyFactory(service_areas=["IL"], skills={"plumbing": BASIC})
    near = CompanyFactory(service_areas=["627"], skills={"plumbing": BASIC})

    assert matched_ids(requirement("plumbing"), limit=2) == [near.id, in_state.id]


def test_company_serving_the_zip_and_the_state_is_matched_once():
    company = CompanyFactory(service_areas=["627", "62", "IL", "*"], skills={"plumbing": BASIC})

    results = match(requirement("plumbing"))

    assert [r.company_id for r in results] == [company.id]
    assert results[0].score == pytest.approx(SKILL_COVERAGE_WEIGHT + ZIP_PREFIX_WEIGHT)


def test_job_create_routes_to_match_limit_companies(settings, requesting_technician):
    settings.MATCH_LIMIT = 2
    companies = [
        CompanyFactory(service_areas=["IL"], skills={"plumbing": level})
        for level in (BASIC, EXPERT, INTERMEDIATE)
    ]

    job = create_job(technician=requesting_technician, skill_levels={"plumbing": "basic"})

    routed = list(JobRouting.objects.filter(job=job).order_by("-matching_score"))
    assert [r.company_id for r in routed] == [companies[1].id, companies[2].id]


def test_job_create_stores_the_match_on_each_routing(requesting_technician, plumbing_company):
    job = create_job(
        technician=requesting_technician,
        skill_levels={"plumbing": "expert"},
        category_slug="plumbing",
    )

    routing = JobRouting.objects.get(job=job)
    assert routing.company_id == plumbing_company.id
    assert routing.matching_score == pytest.approx(
        SKILL_COVERAGE_WEIGHT + STATE_WEIGHT + CATEGORY_WEIGHT
    )
    assert routing.matched_skills == ["plumbing"]
    assert routing.missing_skills == []
    assert (
        routing.match_reason
        == "Skills match: plumbing expert (needs expert); category match; serves IL"
    )


# Jobs without skills


def test_job_without_skills_matches_on_category_alone(requesting_technician, requesting_company):
    hvac = category("hvac")
    hvac_company = CompanyFactory(service_areas=["IL"], primary_category=hvac)
    CompanyFactory(service_areas=["IL"], skills={"hvac": EXPERT})  # skilled, other category
    CompanyFactory(service_areas=["WI"], primary_category=hvac)  # right category, elsewhere
    CompanyFactory(service_areas=["IL"], primary_category=hvac, is_active=False)
    requesting_company.primary_category = hvac
    requesting_company.save()

    results = match(category_id=hvac.id, exclude_company_id=requesting_company.id)

    assert [r.company_id for r in results] == [hvac_company.id]
    assert results[0].score == pytest.approx(SKILL_COVERAGE_WEIGHT + CATEGORY_WEIGHT + STATE_WEIGHT)
    assert results[0].matched_skills == []
    assert results[0].reason == "Category match; serves IL"

    job = create_job(technician=requesting_technician, skill_levels={}, category_slug="hvac")
    assert [r.company_id for r in JobRouting.objects.filter(job=job)] == [hvac_company.id]


def test_job_with_neither_skills_nor_category_matches_nobody(
    requesting_technician, plumbing_company, django_assert_max_num_queries
):
    CompanyFactory(service_areas=["*"], primary_category=None)

    with django_assert_max_num_queries(0):
        assert match() == []

    job = create_job(technician=requesting_technician, skill_levels={})
    assert not JobRouting.objects.filter(job=job).exists()


# Cost


def test_match_is_one_query_when_the_zip_area_fills_the_limit(django_assert_num_queries):
    add_network(10, area="627")
    plumbing = requirement("plumbing")

    with django_assert_num_queries(1):
        assert len(match(plumbing, limit=3)) == 3


@pytest.mark.slow
def test_match_is_one_query_at_2000_companies_too(django_assert_num_queries):
    add_network(2000, area="627")
    add_network(500, area="IL")
    plumbing = requirement("plumbing")

    with django_assert_num_queries(1):
        assert len(match(plumbing, limit=3)) == 3


def test_match_is_two_queries_when_it_must_look_past_the_zip_area(django_assert_num_queries):
    add_network(10, area="IL")
    plumbing, electrical = requirement("plumbing"), requirement("electrical")

    with django_assert_num_queries(2):
        assert len(match(plumbing, electrical, limit=3)) == 0
    with django_assert_num_queries(2):
        assert len(match(plumbing, limit=3)) == 3


@pytest.mark.slow
def test_match_is_two_queries_past_the_zip_area_at_2000_companies_too(django_assert_num_queries):
    add_network(2000, area="IL")
    plumbing = requirement("plumbing")

    with django_assert_num_queries(2):
        assert len(match(plumbing, limit=3)) == 3


STATES = ["AL", "AZ", "CA", "CO", "FL", "GA", "IL", "IN", "MA", "MI", "NY", "OH", "TX", "WA"]


@pytest.mark.postgres
@pytest.mark.slow
def test_match_starts_from_the_service_area_index_on_postgresql():
    companies = Company.objects.bulk_create(Company(name=f"Company {n}") for n in range(4000))
    plumbing = skill("plumbing")
    CompanySkill.objects.bulk_create(
        CompanySkill(company=company, skill=plumbing, level=EXPERT) for company in companies
    )
    ServiceArea.objects.bulk_create(
        area
        for n, company in enumerate(companies)
        for area in (
            service_area(company, str(100 + n % 900)),
            service_area(company, STATES[n % len(STATES)]),
        )
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE jobs_servicearea, jobs_companyskill, jobs_company")
    plumbing_job = requirement("plumbing")
    with CaptureQueriesContext(connection) as queries:
        match(plumbing_job, limit=3)

    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + queries[0]["sql"])
        plan = "\n".join(row[0] for row in cursor.fetchall())

    assert "service_area_lookup_idx" in plan, plan
    assert "Seq Scan on jobs_company " not in plan, plan
    assert "Seq Scan on jobs_servicearea" not in plan, plan


# Load


def test_job_create_adds_one_open_routing_to_each_routed_company(requesting_technician):
    routed = CompanyFactory(service_areas=["IL"], skills={"plumbing": EXPERT})
    busy = CompanyFactory(service_areas=["IL"], skills={"plumbing": EXPERT})
    Company.objects.filter(id=busy.id).update(open_routing_count=4)
    unrouted = CompanyFactory(service_areas=["IL"], skills={"electrical": EXPERT})

    create_job(technician=requesting_technician, skill_levels={"plumbing": "expert"})
    create_job(technician=requesting_technician, skill_levels={"plumbing": "expert"})

    loads = dict(Company.objects.values_list("id", "open_routing_count"))
    assert loads[routed.id] == 2
    assert loads[busy.id] == 6
    assert loads[unrouted.id] == 0
    assert loads[requesting_technician.company_id] == 0


def test_requesting_company_receives_jobs_other_companies_request(
    requesting_technician,
):
    other = TechnicianFactory(
        company=CompanyFactory(service_areas=["IL"], skills={"plumbing": EXPERT})
    )

    job = create_job(technician=other, skill_levels={"plumbing": "expert"})

    assert [r.company_id for r in JobRouting.objects.filter(job=job)] == [
        requesting_technician.company_id
    ]

import random
import uuid
from collections import defaultdict
from fractions import Fraction

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs import matching, services
from jobs.coverage import coverage_rebuild
from jobs.matching import (
    CATEGORY_WEIGHT,
    LEVEL_MARGIN_WEIGHT,
    OUTSIDE_AREA_WEIGHT,
    SKILL_COVERAGE_WEIGHT,
    STATE_WEIGHT,
    ZIP_PREFIX_WEIGHT,
    Requirement,
    match_companies,
    match_company,
)
from jobs.models import Category, Company, CompanySkill, ServiceArea, SkillLevel
from jobs.tests.factories import (
    CompanyFactory,
    JobFactory,
    JobSkillFactory,
    TechnicianFactory,
    category,
    service_area,
    skill,
)
from routing.models import JobRouting

BASIC, INTERMEDIATE, EXPERT = SkillLevel.BASIC, SkillLevel.INTERMEDIATE, SkillLevel.EXPERT
OUTSIDE_REASON = "outside its service area"

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


def add_network(
    count: int, *, area: str | None, slug: str = "plumbing", level=EXPERT, primary_category=None
) -> list[Company]:
    """``count`` companies serving ``area`` (none when None) with one skill, in three statements."""
    companies = Company.objects.bulk_create(
        Company(name=f"Network company {n}", primary_category=primary_category)
        for n in range(count)
    )
    held = skill(slug)
    CompanySkill.objects.bulk_create(
        CompanySkill(company=company, skill=held, level=level) for company in companies
    )
    if area is not None:
        ServiceArea.objects.bulk_create(service_area(company, area) for company in companies)
    coverage_rebuild(company_ids=[company.id for company in companies])
    return companies


# Matching ranks a small network in one query and a large one by area tiers; both must give the
# documented ranking. Tests taking ``strategy`` run under each.
STRATEGIES = {"whole-network": 10**9, "area-tiers": 0}


def use_strategy(settings, name: str) -> None:
    settings.MATCH_SMALL_NETWORK_COMPANIES = STRATEGIES[name]
    matching._network_size.clear()


@pytest.fixture(params=list(STRATEGIES))
def strategy(request, settings):
    use_strategy(settings, request.param)
    return request.param


def counted_network(settings, *, small_network_companies: int) -> None:
    """Set the strategy threshold and count the network now, so the count (made at most once a
    minute) is not among the queries a test then asserts on."""
    settings.MATCH_SMALL_NETWORK_COMPANIES = small_network_companies
    matching._network_size.clear()
    matching.network_size()


def documented_ranking(
    requirements, *, category_id=None, state="IL", zip_code="62701", exclude_company_id=None, limit
) -> list[tuple[uuid.UUID, Fraction, str]]:
    """The ranking the module docstring documents, computed by brute force in Python over every
    company in the database, with exact arithmetic: (company id, score, area reason), best first.
    """
    if not requirements and category_id is None:
        return []
    zip_digits = "".join(ch for ch in zip_code if ch.isdigit())
    areas = defaultdict(set)
    for company_id, kind, code in ServiceArea.objects.values_list("company_id", "kind", "code"):
        areas[company_id].add((kind, code))
    held = defaultdict(dict)
    for company_id, skill_id, level in CompanySkill.objects.values_list(
        "company_id", "skill_id", "level"
    ):
        held[company_id][skill_id] = level
    ranked = []
    for company in Company.objects.all():
        if not (company.is_active and company.accepts_jobs) or company.id == exclude_company_id:
            continue
        levels = [held[company.id].get(r.skill_id, 0) for r in requirements]
        if any(level < r.level for level, r in zip(levels, requirements, strict=True)):
            continue
        if not requirements and company.primary_category_id != category_id:
            continue
        score = Fraction(SKILL_COVERAGE_WEIGHT)
        if requirements:
            above = sum(level - r.level for level, r in zip(levels, requirements, strict=True))
            score += Fraction(LEVEL_MARGIN_WEIGHT) * Fraction(above, len(requirements))
        if category_id is not None and company.primary_category_id == category_id:
            score += Fraction(CATEGORY_WEIGHT)
        codes = areas[company.id]
        if zip_digits and any(
            kind == ServiceArea.Kind.ZIP_PREFIX and zip_digits.startswith(code)
            for kind, code in codes
        ):
            score, reason = score + Fraction(ZIP_PREFIX_WEIGHT), "serves the job's ZIP area"
        elif (ServiceArea.Kind.STATE, state) in codes:
            score, reason = score + Fraction(STATE_WEIGHT), f"serves {state}"
        else:
            score, reason = score + Fraction(OUTSIDE_AREA_WEIGHT), OUTSIDE_REASON
        ranked.append((score, company.open_routing_count, company.id, reason))
    ranked.sort(key=lambda entry: (-entry[0], entry[1], entry[2]))
    return [(company_id, score, reason) for score, _, company_id, reason in ranked[:limit]]


def assert_documented_ranking(requirements, **job):
    expected = documented_ranking(requirements, **job)
    results = match_companies(
        requirements=requirements,
        category_id=job.get("category_id"),
        state=job.get("state", "IL"),
        zip_code=job.get("zip_code", "62701"),
        exclude_company_id=job.get("exclude_company_id"),
        limit=job["limit"],
    )
    assert [r.company_id for r in results] == [company_id for company_id, _, _ in expected], job
    for result, (_, score, reason) in zip(results, expected, strict=True):
        assert result.score == pytest.approx(float(score), abs=0.006), job
        assert result.reason.endswith("; " + reason), job


# Who is a candidate


def test_active_company_with_every_required_skill_in_the_area_is_a_candidate():
    company = CompanyFactory(
        service_areas=["IL"], skills={"plumbing": EXPERT, "electrical": INTERMEDIATE}
    )

    assert matched_ids(requirement("plumbing", EXPERT), requirement("electrical", BASIC)) == [
        company.id
    ]


WHEREVER_IT_WORKS = [
    pytest.param(["627"], id="in-zip"),
    pytest.param(["IL"], id="in-state"),
    pytest.param(["WI", "53"], id="outside"),
    pytest.param([], id="no-area"),
]


@pytest.mark.parametrize("areas", WHEREVER_IT_WORKS)
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
        pytest.param({"skills": {}}, id="no-skills"),
    ],
)
def test_company_is_not_a_candidate(company_kwargs, areas, strategy):
    kwargs = {"service_areas": areas, "skills": {"plumbing": EXPERT, "electrical": EXPERT}}
    kwargs.update(company_kwargs)
    CompanyFactory(**kwargs)

    assert match(requirement("plumbing", EXPERT), requirement("electrical", BASIC)) == []


def test_job_is_not_routed_to_requesting_company(requesting_company, plumbing_company):
    ids = matched_ids(requirement("plumbing", EXPERT), exclude_company_id=requesting_company.id)

    assert ids == [plumbing_company.id]


@pytest.mark.parametrize("areas", WHEREVER_IT_WORKS)
def test_requesting_company_is_never_a_candidate_wherever_it_works(areas, strategy):
    requester = CompanyFactory(
        service_areas=areas, primary_category=category("plumbing"), skills={"plumbing": EXPERT}
    )
    other = CompanyFactory(service_areas=["WI"], skills={"plumbing": BASIC})

    assert matched_ids(requirement("plumbing"), exclude_company_id=requester.id) == [other.id]
    assert matched_ids(category_id=category("plumbing").id, exclude_company_id=requester.id) == []


@pytest.mark.parametrize("areas", [["IL"], []])
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
def test_a_level_satisfies_itself_and_every_level_below(held, required, candidate, areas, strategy):
    CompanyFactory(service_areas=areas, skills={"plumbing": held})

    assert len(match(requirement("plumbing", required))) == int(candidate)


@pytest.mark.parametrize(
    ("areas", "zip_code", "area_weight"),
    [
        pytest.param(["627"], "62701", ZIP_PREFIX_WEIGHT, id="zip-prefix"),
        pytest.param(["62701"], "62701", ZIP_PREFIX_WEIGHT, id="whole-zip"),
        pytest.param(["6"], "62701", ZIP_PREFIX_WEIGHT, id="one-digit-prefix"),
        pytest.param(["627"], "62701-1234", ZIP_PREFIX_WEIGHT, id="zip-plus-four"),
        pytest.param(["IL"], "62701", STATE_WEIGHT, id="state"),
        pytest.param(["WI", "53"], "62701", OUTSIDE_AREA_WEIGHT, id="outside"),
        pytest.param(["628", "62702"], "62701", OUTSIDE_AREA_WEIGHT, id="other-zip-areas"),
        pytest.param([], "62701", OUTSIDE_AREA_WEIGHT, id="no-area"),
    ],
)
def test_company_is_a_candidate_wherever_it_works_and_its_area_adds_to_the_score(
    areas, zip_code, area_weight, strategy
):
    company = CompanyFactory(service_areas=areas, skills={"plumbing": BASIC})

    (result,) = match(requirement("plumbing"), zip_code=zip_code)

    assert result.company_id == company.id
    assert result.score == pytest.approx(SKILL_COVERAGE_WEIGHT + area_weight)


@pytest.mark.parametrize(
    "outside_areas",
    [
        pytest.param(["WI", "53"], id="other-state-and-zip"),
        pytest.param(["628"], id="other-zip-of-the-state"),
        pytest.param([], id="no-service-area"),
    ],
)
def test_companies_outside_the_area_are_candidates_ranked_below_every_zip_and_state_one(
    outside_areas, strategy
):
    plumbing = category("plumbing")

    def company(number, areas, level=BASIC, load=0, primary_category=None):
        return CompanyFactory(
            id=uuid.UUID(int=number),
            service_areas=areas,
            skills={"plumbing": level},
            open_routing_count=load,
            primary_category=primary_category,
        )

    # Created out of order so that neither creation order nor id alone gives the ranking. The
    # best outside company (expert, primary category) still trails the weakest in-state one.
    outside_best = company(20, outside_areas, EXPERT, load=5, primary_category=plumbing)
    outside_busy = company(22, outside_areas, load=1)
    outside_idle_high_id = company(23, outside_areas)
    outside_idle_low_id = company(21, outside_areas)
    state_busy = company(12, ["IL"], load=3)
    state_idle_high_id = company(13, ["IL"])
    state_idle_low_id = company(11, ["IL"])
    state_best = company(10, ["IL"], EXPERT, load=9, primary_category=plumbing)
    zip_busy = company(1, ["627"], load=2)
    zip_idle_high_id = company(3, ["627", "IL"])
    zip_idle_low_id = company(2, ["627"])

    results = match(requirement("plumbing", BASIC), category_id=plumbing.id, limit=20)

    assert [r.company_id for r in results] == [
        zip_idle_low_id.id,
        zip_idle_high_id.id,
        zip_busy.id,
        state_best.id,
        state_idle_low_id.id,
        state_idle_high_id.id,
        state_busy.id,
        outside_best.id,
        outside_idle_low_id.id,
        outside_idle_high_id.id,
        outside_busy.id,
    ]
    outside_base = SKILL_COVERAGE_WEIGHT + OUTSIDE_AREA_WEIGHT
    assert [r.score for r in results] == pytest.approx(
        [SKILL_COVERAGE_WEIGHT + ZIP_PREFIX_WEIGHT] * 3
        + [SKILL_COVERAGE_WEIGHT + STATE_WEIGHT + 2 * LEVEL_MARGIN_WEIGHT + CATEGORY_WEIGHT]
        + [SKILL_COVERAGE_WEIGHT + STATE_WEIGHT] * 3
        + [outside_base + 2 * LEVEL_MARGIN_WEIGHT + CATEGORY_WEIGHT]
        + [outside_base] * 3
    )
    assert max(r.score for r in results[7:]) < min(r.score for r in results[:7])
    for result in results[7:]:
        assert result.reason.endswith("; " + OUTSIDE_REASON), result.reason
    assert results[7].reason == (
        f"Skills match: plumbing expert (needs basic); category match; {OUTSIDE_REASON}"
    )


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
            {"service_areas": ["627", "IL", "WI"]},
            [("plumbing", EXPERT)],
            SKILL_COVERAGE_WEIGHT + ZIP_PREFIX_WEIGHT,
            id="zip-prefix-wins-over-state",
        ),
        pytest.param(
            {"service_areas": ["IL", "53", "628"]},
            [("plumbing", EXPERT)],
            SKILL_COVERAGE_WEIGHT + STATE_WEIGHT,
            id="state-wins-over-other-zip-areas",
        ),
        pytest.param(
            {"service_areas": ["WI"]},
            [("plumbing", EXPERT)],
            SKILL_COVERAGE_WEIGHT + OUTSIDE_AREA_WEIGHT,
            id="outside",
        ),
        pytest.param(
            {"service_areas": []},
            [("plumbing", EXPERT)],
            SKILL_COVERAGE_WEIGHT + OUTSIDE_AREA_WEIGHT,
            id="no-area",
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
        pytest.param(
            {"service_areas": [], "primary_category": "plumbing"},
            [("plumbing", BASIC), ("electrical", BASIC)],
            SKILL_COVERAGE_WEIGHT + OUTSIDE_AREA_WEIGHT + CATEGORY_WEIGHT + 2 * LEVEL_MARGIN_WEIGHT,
            id="everything-but-the-area",
        ),
    ],
)
def test_score_adds_coverage_margin_category_and_area(
    company_kwargs, requirements, expected_score, strategy
):
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


def test_margin_and_category_never_outweigh_a_closer_area(strategy):
    near = CompanyFactory(service_areas=["627"], skills={"plumbing": BASIC})
    in_state = CompanyFactory(
        service_areas=["IL"],
        primary_category=category("plumbing"),
        skills={"plumbing": EXPERT},
    )
    elsewhere = CompanyFactory(
        service_areas=["WI"],
        primary_category=category("plumbing"),
        skills={"plumbing": EXPERT},
    )
    nowhere = CompanyFactory(
        service_areas=[],
        primary_category=category("plumbing"),
        skills={"plumbing": INTERMEDIATE},
    )

    ids = matched_ids(requirement("plumbing", BASIC), category_id=category("plumbing").id)

    assert ids == [near.id, in_state.id, elsewhere.id, nowhere.id]


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
    [
        (["627"], "serves the job's ZIP area"),
        (["IL"], "serves IL"),
        (["WI", "53"], OUTSIDE_REASON),
        ([], OUTSIDE_REASON),
    ],
)
def test_match_reason_names_the_area(areas, area_reason, strategy):
    CompanyFactory(service_areas=areas, skills={"plumbing": BASIC})

    (result,) = match(requirement("plumbing"))

    assert result.reason == f"Skills match: plumbing basic (needs basic); {area_reason}"


@pytest.mark.parametrize("zip_code", ["ABCDE", "", "IL-XX"])
def test_job_whose_zip_has_no_digits_still_matches_by_state(
    zip_code, settings, django_assert_num_queries
):
    in_state = CompanyFactory(service_areas=["IL"], skills={"plumbing": BASIC})
    zip_only = CompanyFactory(service_areas=["627", "6"], skills={"plumbing": EXPERT})
    plumbing = requirement("plumbing")

    for name in STRATEGIES:
        use_strategy(settings, name)
        results = match(plumbing, zip_code=zip_code)

        assert [r.company_id for r in results] == [in_state.id, zip_only.id]
        assert [r.score for r in results] == pytest.approx(
            [
                SKILL_COVERAGE_WEIGHT + STATE_WEIGHT,
                SKILL_COVERAGE_WEIGHT + OUTSIDE_AREA_WEIGHT + 2 * LEVEL_MARGIN_WEIGHT,
            ]
        )
        assert [r.reason.rsplit("; ", 1)[1] for r in results] == ["serves IL", OUTSIDE_REASON]

    # By area tiers the ZIP tier is skipped: the state tier is the first and only query.
    counted_network(settings, small_network_companies=0)
    with django_assert_num_queries(1):
        assert matched_ids(plumbing, zip_code=zip_code, limit=1) == [in_state.id]


# Ranking


def test_equal_scores_go_to_the_lower_load_then_the_lower_id(strategy):
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


SKILLS_TO_SPARE = ["plumbing", "electrical", "hvac", "roofing", "carpentry", "drywall", "painting"]


@pytest.mark.parametrize("skill_count", range(1, len(SKILLS_TO_SPARE) + 1))
@pytest.mark.parametrize("areas", [["627"], ["IL"], []])
def test_a_full_margin_ties_with_the_category_and_the_tie_goes_to_the_lower_load(
    skill_count, areas, strategy
):
    """Every skill two levels above the required one adds exactly what the primary category
    adds (0.5), whatever the number of required skills, so the idle company must come first."""
    slugs = SKILLS_TO_SPARE[:skill_count]
    overqualified_idle = CompanyFactory(
        id=uuid.UUID(int=2), service_areas=areas, skills=dict.fromkeys(slugs, EXPERT)
    )
    in_category_busy = CompanyFactory(
        id=uuid.UUID(int=1),
        service_areas=areas,
        primary_category=category("plumbing"),
        skills=dict.fromkeys(slugs, BASIC),
        open_routing_count=1,
    )

    results = match(
        *(requirement(slug, BASIC) for slug in slugs), category_id=category("plumbing").id
    )

    assert results[0].score == pytest.approx(results[1].score)
    assert [r.company_id for r in results] == [overqualified_idle.id, in_category_busy.id], [
        (r.company_id.int, r.score, r.reason) for r in results
    ]


def test_higher_score_beats_lower_load(strategy):
    better = CompanyFactory(service_areas=["IL"], skills={"plumbing": EXPERT})
    idle = CompanyFactory(service_areas=["IL"], skills={"plumbing": BASIC})
    Company.objects.filter(id=better.id).update(open_routing_count=100)

    assert matched_ids(requirement("plumbing")) == [better.id, idle.id]


def test_only_the_best_limit_candidates_are_returned(strategy):
    CompanyFactory(service_areas=[], skills={"plumbing": EXPERT})
    in_state = CompanyFactory(service_areas=["IL"], skills={"plumbing": BASIC})
    near = CompanyFactory(service_areas=["627"], skills={"plumbing": BASIC})

    assert matched_ids(requirement("plumbing"), limit=2) == [near.id, in_state.id]


def test_company_serving_the_zip_and_the_state_is_matched_once(strategy):
    company = CompanyFactory(service_areas=["627", "62", "IL", "WI"], skills={"plumbing": BASIC})

    results = match(requirement("plumbing"))

    assert [r.company_id for r in results] == [company.id]
    assert results[0].score == pytest.approx(SKILL_COVERAGE_WEIGHT + ZIP_PREFIX_WEIGHT)


@pytest.mark.parametrize("limit", [1, 2, 3, 4, 20])
def test_ranking_equals_the_documented_ranking_computed_by_brute_force(limit, strategy):
    """One ZIP candidate, one state candidate, several outside ones with different margins,
    categories and loads, and non-candidates of every kind; with limit 3 the third place is
    decided among the outside companies by score, then load, then id."""
    plumbing = category("plumbing")
    full = {"plumbing": EXPERT, "electrical": EXPERT}

    def company(number, areas, skills, *, load=0, primary_category=None, **kwargs):
        return CompanyFactory(
            id=uuid.UUID(int=number),
            service_areas=areas,
            skills=skills,
            open_routing_count=load,
            primary_category=primary_category,
            **kwargs,
        )

    company(90, ["627"], {"plumbing": INTERMEDIATE, "electrical": BASIC}, load=7)
    company(80, ["IL"], {"plumbing": INTERMEDIATE, "electrical": BASIC}, load=7)
    company(11, ["WI"], full, load=3, primary_category=plumbing)
    company(13, [], full, load=1, primary_category=plumbing)
    company(12, ["53"], full, load=1, primary_category=plumbing)
    company(
        14,
        ["TX", "733"],
        {"plumbing": INTERMEDIATE, "electrical": BASIC},
        primary_category=plumbing,
    )
    company(15, [], full)
    company(16, ["WI"], {"plumbing": EXPERT, "electrical": INTERMEDIATE}, load=2)
    company(17, ["628"], {"plumbing": INTERMEDIATE, "electrical": INTERMEDIATE})
    company(18, [], {"plumbing": EXPERT, "electrical": BASIC}, primary_category=category("hvac"))
    # Not candidates.
    company(1, [], full, primary_category=plumbing, is_active=False)
    company(2, ["WI"], full, primary_category=plumbing, accepts_jobs=False)
    company(3, [], {"plumbing": BASIC, "electrical": EXPERT}, primary_category=plumbing)
    company(4, ["IL"], {"plumbing": EXPERT}, primary_category=plumbing)
    company(5, [], {"electrical": EXPERT, "hvac": EXPERT}, primary_category=plumbing)
    requester = company(6, [], full, primary_category=plumbing)
    job = {
        "category_id": plumbing.id,
        "exclude_company_id": requester.id,
        "limit": limit,
    }
    requirements = [requirement("plumbing", INTERMEDIATE), requirement("electrical", BASIC)]

    expected = documented_ranking(requirements, **job)
    assert_documented_ranking(requirements, **job)

    if limit == 3:
        assert [company_id for company_id, _, _ in expected] == [
            uuid.UUID(int=90),
            uuid.UUID(int=80),
            uuid.UUID(int=12),
        ]


TRADES = ["plumbing", "electrical", "hvac", "roofing"]
AREAS = [
    ["627"],
    ["62"],
    ["62701"],
    ["IL"],
    ["IL", "627"],
    ["IL", "628"],
    ["628"],
    ["WI"],
    ["WI", "53"],
    ["TX", "733"],
    [],
    [],
]
PLACES = [("IL", "62701"), ("IL", "62899"), ("WI", "53001"), ("TX", "73301"), ("IL", "ABCDE")]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_networks_are_ranked_as_documented(seed, strategy):
    rng = random.Random(seed)
    categories = list(Category.objects.filter(slug__in=TRADES))
    companies = []
    for index in range(50):
        companies.append(
            CompanyFactory(
                id=uuid.UUID(int=rng.getrandbits(64)),
                primary_category=rng.choice([*categories, None]),
                service_areas=rng.choice(AREAS),
                skills={
                    slug: SkillLevel(rng.randint(1, 3))
                    for slug in rng.sample(TRADES, rng.randint(0, 4))
                },
                open_routing_count=rng.choice([0, 0, 1, 2]),
                is_active=index % 11 != 0,
                accepts_jobs=index % 13 != 0,
            )
        )
    category_ids = [c.id for c in categories]
    for _ in range(40):
        state, zip_code = rng.choice(PLACES)
        requirements = [
            requirement(slug, SkillLevel(rng.randint(1, 3)))
            for slug in rng.sample(TRADES, rng.randint(0, 3))
        ]
        assert_documented_ranking(
            requirements,
            category_id=rng.choice([*category_ids, None]),
            state=state,
            zip_code=zip_code,
            exclude_company_id=rng.choice([None, rng.choice(companies).id]),
            limit=rng.choice([1, 3, 5, 50]),
        )


def test_job_create_routes_to_match_limit_companies(settings, requesting_technician, strategy):
    settings.MATCH_LIMIT = 2
    companies = [
        CompanyFactory(service_areas=["IL"], skills={"plumbing": level})
        for level in (BASIC, EXPERT, INTERMEDIATE)
    ]

    job = create_job(technician=requesting_technician, skill_levels={"plumbing": "basic"})

    routed = list(JobRouting.objects.filter(job=job).order_by("-matching_score"))
    assert [r.company_id for r in routed] == [companies[1].id, companies[2].id]


def test_job_create_routes_to_companies_outside_the_area_when_the_area_is_short(
    settings, requesting_technician, strategy
):
    settings.MATCH_LIMIT = 3
    in_state = CompanyFactory(service_areas=["IL"], skills={"plumbing": BASIC})
    elsewhere = CompanyFactory(service_areas=["WI"], skills={"plumbing": EXPERT})
    nowhere = CompanyFactory(service_areas=[], skills={"plumbing": INTERMEDIATE})
    CompanyFactory(service_areas=[], skills={"plumbing": BASIC})  # fourth: over MATCH_LIMIT

    job = create_job(technician=requesting_technician, skill_levels={"plumbing": "basic"})

    routed = list(JobRouting.objects.filter(job=job).order_by("-matching_score"))
    assert [r.company_id for r in routed] == [in_state.id, elsewhere.id, nowhere.id]
    assert routed[1].matching_score == pytest.approx(
        SKILL_COVERAGE_WEIGHT + OUTSIDE_AREA_WEIGHT + 2 * LEVEL_MARGIN_WEIGHT
    )
    assert (
        routed[1].match_reason == f"Skills match: plumbing expert (needs basic); {OUTSIDE_REASON}"
    )


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


def test_job_without_skills_matches_on_category_alone_wherever_the_company_works(
    settings, requesting_technician, requesting_company, strategy
):
    settings.MATCH_LIMIT = 3
    hvac = category("hvac")
    elsewhere = CompanyFactory(service_areas=["WI"], primary_category=hvac, open_routing_count=1)
    nowhere = CompanyFactory(service_areas=[], primary_category=hvac)
    in_state = CompanyFactory(service_areas=["IL"], primary_category=hvac, open_routing_count=4)
    near = CompanyFactory(service_areas=["627"], primary_category=hvac, open_routing_count=9)
    CompanyFactory(service_areas=["IL"], skills={"hvac": EXPERT})  # skilled, other category
    CompanyFactory(service_areas=[], skills={"hvac": EXPERT})  # skilled, no category, anywhere
    CompanyFactory(service_areas=["627"], primary_category=category("plumbing"))
    CompanyFactory(service_areas=["IL"], primary_category=hvac, is_active=False)
    CompanyFactory(service_areas=[], primary_category=hvac, accepts_jobs=False)
    requesting_company.primary_category = hvac
    requesting_company.save()

    results = match(category_id=hvac.id, exclude_company_id=requesting_company.id)

    assert [r.company_id for r in results] == [near.id, in_state.id, nowhere.id, elsewhere.id]
    base = SKILL_COVERAGE_WEIGHT + CATEGORY_WEIGHT
    assert [r.score for r in results] == pytest.approx(
        [
            base + ZIP_PREFIX_WEIGHT,
            base + STATE_WEIGHT,
            base + OUTSIDE_AREA_WEIGHT,
            base + OUTSIDE_AREA_WEIGHT,
        ]
    )
    assert [r.matched_skills for r in results] == [[]] * 4
    assert [r.reason for r in results] == [
        "Category match; serves the job's ZIP area",
        "Category match; serves IL",
        f"Category match; {OUTSIDE_REASON}",
        f"Category match; {OUTSIDE_REASON}",
    ]

    job = create_job(technician=requesting_technician, skill_levels={}, category_slug="hvac")
    routed = JobRouting.objects.filter(job=job).order_by("-matching_score")
    assert [r.company_id for r in routed] == [near.id, in_state.id, nowhere.id]


def test_job_with_neither_skills_nor_category_matches_nobody(
    requesting_technician, plumbing_company, django_assert_max_num_queries
):
    CompanyFactory(service_areas=[], primary_category=None)

    with django_assert_max_num_queries(0):
        assert match() == []

    job = create_job(technician=requesting_technician, skill_levels={})
    assert not JobRouting.objects.filter(job=job).exists()


# Cost in a large network: a job with skills reads its ZIP area and state together from the
# coverage index, then the rest of the network only when they hold fewer than ``limit``
# candidates; a category-only job reads its ZIP area, then its state, then the rest, stopping
# once ``limit`` are found. A small network is ranked in one query.

TIER_CASES = [
    # (ZIP candidates, state candidates, queries with skills, queries by category only)
    pytest.param(3, 0, 1, 1, id="zip-fills"),
    pytest.param(3, 3, 1, 1, id="zip-fills-state-unread"),
    pytest.param(1, 2, 1, 2, id="zip-and-state-fill"),
    pytest.param(0, 3, 1, 2, id="state-fills"),
    pytest.param(2, 0, 2, 3, id="outside-needed"),
    pytest.param(1, 1, 2, 3, id="zip-state-and-outside"),
    pytest.param(0, 0, 2, 3, id="outside-only"),
]
NETWORK_SIZES = [pytest.param(10, id="10"), pytest.param(2000, marks=pytest.mark.slow, id="2000")]


def tiered_network(size: int, zip_count: int, state_count: int, *, primary_category):
    """``zip_count`` candidates serving ZIP 627, ``state_count`` serving IL and the rest of
    ``size`` elsewhere (half in WI, half with no area), all equal but for their ids. Returns the
    expected ranking of the best three: the tiers in turn, each by id."""
    tiers = [
        add_network(zip_count, area="627", primary_category=primary_category),
        add_network(state_count, area="IL", primary_category=primary_category),
    ]
    rest = size - zip_count - state_count
    tiers.append(
        add_network(rest // 2, area="WI", primary_category=primary_category)
        + add_network(rest - rest // 2, area=None, primary_category=primary_category)
    )
    return [company.id for tier in tiers for company in sorted(tier, key=lambda c: c.id)][:3]


@pytest.mark.parametrize("size", NETWORK_SIZES)
@pytest.mark.parametrize(("zip_count", "state_count", "with_skills", "by_category"), TIER_CASES)
@pytest.mark.parametrize("job", ["skills", "category-only"])
def test_area_tiers_read_the_rest_of_the_network_only_when_the_area_holds_fewer_than_limit(
    size, zip_count, state_count, with_skills, by_category, job, settings, django_assert_num_queries
):
    queries = with_skills if job == "skills" else by_category
    plumbing = category("plumbing")
    expected = tiered_network(size, zip_count, state_count, primary_category=plumbing)
    if job == "skills":
        requirements, category_id = [requirement("plumbing")], None
    else:
        requirements, category_id = [], plumbing.id
    counted_network(settings, small_network_companies=size - 1)

    with django_assert_num_queries(queries):
        results = match(*requirements, category_id=category_id, limit=3)

    assert [r.company_id for r in results] == expected


@pytest.mark.parametrize("size", NETWORK_SIZES)
@pytest.mark.parametrize(("zip_count", "state_count", "with_skills", "by_category"), TIER_CASES)
def test_a_small_network_is_ranked_in_one_query_whatever_its_area_holds(
    size, zip_count, state_count, with_skills, by_category, settings, django_assert_num_queries
):
    expected = tiered_network(size, zip_count, state_count, primary_category=None)
    plumbing = requirement("plumbing")
    counted_network(settings, small_network_companies=size)

    with django_assert_num_queries(1):
        assert matched_ids(plumbing, limit=3) == expected


@pytest.mark.parametrize(("size", "queries"), [(10, 1), (11, 2)])
def test_the_network_size_setting_chooses_the_strategy(
    size, queries, settings, django_assert_num_queries
):
    expected = tiered_network(size, 1, 1, primary_category=None)
    plumbing = requirement("plumbing")
    counted_network(settings, small_network_companies=10)

    with django_assert_num_queries(queries):
        assert matched_ids(plumbing, limit=3) == expected


def test_the_network_is_counted_at_most_once_a_minute(settings, django_assert_num_queries):
    settings.MATCH_SMALL_NETWORK_COMPANIES = 10
    add_network(3, area="627")
    matching._network_size.clear()
    plumbing = requirement("plumbing")

    with django_assert_num_queries(2):  # the count, then the whole network in one query
        assert len(match(plumbing, limit=3)) == 3
    with django_assert_num_queries(1):
        assert len(match(plumbing, limit=3)) == 3


@pytest.mark.slow
def test_area_tiers_are_one_query_at_2500_companies(settings, django_assert_num_queries):
    add_network(2000, area="627")
    add_network(500, area="IL")
    add_network(10, area=None)
    plumbing = requirement("plumbing")
    counted_network(settings, small_network_companies=2000)

    with django_assert_num_queries(1):
        assert len(match(plumbing, limit=3)) == 3


@pytest.mark.slow
def test_the_state_is_read_in_the_same_query_as_the_zip_area_at_2500_companies(
    settings, django_assert_num_queries
):
    add_network(2500, area="IL")
    add_network(10, area=None)
    plumbing = requirement("plumbing")
    counted_network(settings, small_network_companies=2000)

    with django_assert_num_queries(1):
        assert len(match(plumbing, limit=3)) == 3


@pytest.mark.slow
def test_the_rest_of_the_network_is_a_second_query_at_2500_companies(
    settings, django_assert_num_queries
):
    add_network(2, area="IL")
    add_network(2500, area="WI")
    plumbing = requirement("plumbing")
    counted_network(settings, small_network_companies=2000)

    with django_assert_num_queries(2):
        assert len(match(plumbing, limit=3)) == 3


STATES = ["AL", "AZ", "CA", "CO", "FL", "GA", "IL", "IN", "MA", "MI", "NY", "OH", "TX", "WA"]
SIX_TRADES = ["plumbing", "electrical", "hvac", "roofing", "general", "garage_doors"]


def explain(sql: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.postgres
@pytest.mark.slow
def test_match_plans_use_the_area_and_skill_indexes_on_postgresql(settings):
    """4,000 companies, each in one 3-digit ZIP area (100-999) and one of 14 states, holding two
    of six trades; plumbing is held by a third of them, a third of those at each level.

    The ZIP and state tiers start from service_area_lookup_idx and probe each company found
    there for the skill through unique_company_skill. The ZIP tier, with a few companies, reads
    each of them by primary key; a state tier holding 7% of the network (IL here) may instead
    hash the whole company table, which the planner judges cheaper at that share, so that is not
    asserted. The rest of the network reads the holders of each skill from jobs_companyskill
    (through companyskill_match_idx on fresh tables; a plain scan of it is chosen once earlier
    tests' rolled-back rows have bloated it, so the index is not asserted) and service areas
    not at all; its candidates' companies are read by primary key or, when they are many (here
    444 of 4,000), by hashing the company table, as the planner judges cheaper.
    """
    companies = Company.objects.bulk_create(Company(name=f"Company {n}") for n in range(4000))
    trades = [skill(slug) for slug in SIX_TRADES]
    CompanySkill.objects.bulk_create(
        CompanySkill(company=company, skill=trades[(n + k) % 6], level=1 + (n // 6) % 3)
        for n, company in enumerate(companies)
        for k in range(2)
    )
    ServiceArea.objects.bulk_create(
        area
        for n, company in enumerate(companies)
        for area in (
            service_area(company, str(100 + n % 900)),
            service_area(company, STATES[n % len(STATES)]),
        )
    )
    coverage_rebuild()
    with connection.cursor() as cursor:
        cursor.execute(
            "ANALYZE jobs_servicearea, jobs_companyskill, jobs_company, jobs_skillcoverage"
        )
    counted_network(settings, small_network_companies=2000)
    plans = {}
    for name, level, state, zip_code, tiers in [
        ("zip", BASIC, "IL", "62701", 1),  # the four 627 companies all hold plumbing (basic)
        ("state", EXPERT, "IL", "62701", 1),  # none of them expert: IL fills the limit
        ("network", EXPERT, "VT", "05401", 2),  # nobody serves VT or any 0 ZIP
    ]:
        plumbing = requirement("plumbing", level)
        with CaptureQueriesContext(connection) as queries:
            results = match(plumbing, state=state, zip_code=zip_code, limit=3)
        assert len(results) == 3
        assert len(queries) == tiers, [q["sql"] for q in queries]
        plans[name] = [explain(query["sql"]) for query in queries]

    nearby_plans = [plans["zip"][0], plans["state"][0], plans["network"][0]]
    network = plans["network"][1]
    for plan in nearby_plans:
        assert "coverage_match_idx" in plan, plan
        assert "Seq Scan on jobs_skillcoverage" not in plan, plan
        assert "jobs_servicearea" not in plan, plan
        assert "jobs_companyskill" not in plan, plan
        assert "Seq Scan on jobs_company " not in plan, plan
    assert "jobs_companyskill" in network, network
    assert "jobs_servicearea" not in network, network


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


# One company: match_company scores any company as matching ranks its candidates


def job_requiring(*requirements: Requirement, category_slug=None, state="IL", zip_code="62701"):
    """A job (in Springfield, IL unless told) requiring ``requirements``, its skills stored in
    the order listed, as matching and ``match_company`` read them."""
    job = JobFactory(
        state=state,
        zip_code=zip_code,
        category=category(category_slug) if category_slug else None,
    )
    for r in requirements:
        JobSkillFactory(job=job, skill=skill(r.slug), level=r.level)
    return job


@pytest.mark.parametrize(
    ("requirements", "category_slug"),
    [
        pytest.param([("plumbing", BASIC), ("electrical", INTERMEDIATE)], "plumbing", id="skills"),
        pytest.param([("electrical", EXPERT)], None, id="one-skill-no-category"),
        pytest.param([], "plumbing", id="category-only"),
    ],
)
def test_one_company_gets_the_score_and_skills_matching_gives_it(
    requirements, category_slug, strategy
):
    companies = [
        CompanyFactory(
            primary_category=category("plumbing"),
            service_areas=["627"],
            skills={"plumbing": EXPERT, "electrical": EXPERT},
            provider_type="servicetitan",
        ),
        CompanyFactory(
            primary_category=category("electrical"),
            service_areas=["IL"],
            skills={"plumbing": INTERMEDIATE, "electrical": INTERMEDIATE},
            provider_type="mock",
        ),
        CompanyFactory(
            primary_category=category("plumbing"),
            service_areas=["WI", "IL", "62"],
            skills={"plumbing": BASIC, "electrical": EXPERT},
        ),
        CompanyFactory(
            primary_category=category("plumbing"),
            service_areas=["TX"],
            skills={"plumbing": EXPERT, "electrical": INTERMEDIATE},
        ),
        CompanyFactory(service_areas=[], skills={"plumbing": INTERMEDIATE, "electrical": EXPERT}),
    ]
    required = [requirement(slug, level) for slug, level in requirements]
    job = job_requiring(*required, category_slug=category_slug)
    ranked = match(
        *required,
        category_id=job.category_id,
        exclude_company_id=job.created_by_company_id,
    )
    assert len(ranked) >= 3
    by_id = {company.id: company for company in companies}

    for candidate in ranked:
        alone = match_company(job=job, company=by_id[candidate.company_id])

        assert alone.company_id == candidate.company_id
        assert alone.provider_type == candidate.provider_type
        assert alone.score == candidate.score, candidate.reason
        assert alone.matched_skills == candidate.matched_skills
        assert alone.missing_skills == [] == candidate.missing_skills
        assert alone.reason == candidate.reason


@pytest.mark.parametrize("seed", [4, 5])
def test_one_company_is_scored_as_matching_scores_it_in_random_networks(seed, strategy):
    rng = random.Random(seed)
    categories = list(Category.objects.filter(slug__in=TRADES))
    companies = {}
    for _ in range(30):
        company = CompanyFactory(
            primary_category=rng.choice([*categories, None]),
            service_areas=rng.choice(AREAS),
            skills={
                slug: SkillLevel(rng.randint(1, 3))
                for slug in rng.sample(TRADES, rng.randint(0, 4))
            },
        )
        companies[company.id] = company
    for _ in range(15):
        state, zip_code = rng.choice(PLACES)
        required = [
            requirement(slug, SkillLevel(rng.randint(1, 3)))
            for slug in rng.sample(TRADES, rng.randint(0, 3))
        ]
        category_slug = rng.choice([*TRADES, None])
        job = job_requiring(*required, category_slug=category_slug, state=state, zip_code=zip_code)

        for candidate in match(
            *required, category_id=job.category_id, state=state, zip_code=zip_code
        ):
            alone = match_company(job=job, company=companies[candidate.company_id])
            assert (alone.score, alone.matched_skills, alone.missing_skills) == (
                candidate.score,
                candidate.matched_skills,
                [],
            ), candidate.reason


@pytest.mark.parametrize(
    ("skills", "matched", "missing", "expected_score", "reason"),
    [
        pytest.param(
            {"plumbing": BASIC, "electrical": INTERMEDIATE},
            ["plumbing", "electrical"],
            [],
            SKILL_COVERAGE_WEIGHT + STATE_WEIGHT,
            "Skills match: plumbing basic (needs basic), electrical intermediate (needs "
            "intermediate); serves IL",
            id="qualified",
        ),
        pytest.param(
            {"plumbing": BASIC},
            ["plumbing"],
            ["electrical"],
            SKILL_COVERAGE_WEIGHT / 2 + STATE_WEIGHT,
            "Skills match: plumbing basic (needs basic); missing: electrical not held (needs "
            "intermediate); serves IL",
            id="lacking-a-skill",
        ),
        pytest.param(
            {"plumbing": BASIC, "electrical": BASIC},
            ["plumbing"],
            ["electrical"],
            SKILL_COVERAGE_WEIGHT / 2 + STATE_WEIGHT,
            "Skills match: plumbing basic (needs basic); missing: electrical basic (needs "
            "intermediate); serves IL",
            id="below-the-level",
        ),
        pytest.param(
            {"plumbing": EXPERT},
            ["plumbing"],
            ["electrical"],
            SKILL_COVERAGE_WEIGHT / 2 + STATE_WEIGHT + 2 * LEVEL_MARGIN_WEIGHT / 2,
            "Skills match: plumbing expert (needs basic); missing: electrical not held (needs "
            "intermediate); serves IL",
            id="lacking-a-skill-with-a-margin-on-another",
        ),
        pytest.param(
            {},
            [],
            ["plumbing", "electrical"],
            STATE_WEIGHT,
            "missing: plumbing not held (needs basic), electrical not held (needs "
            "intermediate); serves IL",
            id="lacking-every-skill",
        ),
    ],
)
def test_a_company_lacking_a_skill_has_it_missing_and_less_coverage(
    skills, matched, missing, expected_score, reason
):
    job = job_requiring(requirement("plumbing", BASIC), requirement("electrical", INTERMEDIATE))
    company = CompanyFactory(service_areas=["IL"], skills=skills)

    alone = match_company(job=job, company=company)

    assert (alone.matched_skills, alone.missing_skills) == (matched, missing)
    assert alone.score == round(expected_score, 2)
    assert alone.reason == reason
    candidates = matched_ids(
        requirement("plumbing", BASIC), requirement("electrical", INTERMEDIATE)
    )
    assert (company.id in candidates) is (not missing)


def test_a_company_lacking_a_skill_scores_below_an_otherwise_equal_qualified_one():
    job = job_requiring(requirement("plumbing", BASIC), requirement("electrical", BASIC))
    qualified = CompanyFactory(
        service_areas=["627"], skills={"plumbing": BASIC, "electrical": BASIC}
    )
    lacking = CompanyFactory(service_areas=["627"], skills={"plumbing": BASIC})

    full = match_company(job=job, company=qualified)
    partial = match_company(job=job, company=lacking)

    assert full.score - partial.score == SKILL_COVERAGE_WEIGHT / 2
    assert (partial.missing_skills, full.missing_skills) == (["electrical"], [])

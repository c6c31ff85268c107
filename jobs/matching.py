"""Matching a job to the companies that should receive it (DESIGN.md "Matching").

A company is a candidate when it is active, accepts jobs, is not the requester, and holds every
required skill at or above the required level (basic < intermediate < expert). Score:

* skill coverage: ``2.0 x matched / required`` (2.0 for every candidate);
* level margin: ``+0.25`` per level held above the required one, averaged over the required
  skills (0 to 0.5);
* category: ``+0.5`` when the job's category is the company's primary category;
* service area: ``+3.0`` when one of the company's ZIP prefixes covers the job's ZIP, else
  ``+1.5`` when it serves the job's state.

Ties go to the company with fewer open routings, then to the lower id; the top ``limit`` win.

Margin and category add at most 1.0, less than the gap between area tiers, so a company serving
the job's ZIP always outranks one serving only its state, which always outranks the rest. That
lets the network be read nearest first, stopping as soon as ``limit`` companies are found, and
still give the exact ranking:

1. the job's ZIP area and state together, from the coverage index (``SkillCoverage``: one row
   per company, area served and skill held): one range scan per area and skill finds exactly
   the companies nearby that hold the required skills at their levels, however many companies
   the network or the state holds;
2. the rest of the network, read only when the job's area holds fewer than ``limit``
   candidates: one query joining the holders of each required skill, read from the
   (skill, level, company) index.

A job near enough companies costs one query whatever the size of the network, two otherwise.
A job with no required skills is matched on its category (companies whose primary category it
is), reading its ZIP area, then its state (from the ``ServiceArea`` index), then the rest; a
job with neither matches nobody. In a small network (the setting
``MATCH_SMALL_NETWORK_COMPANIES``) the job's area rarely holds enough candidates, so one query
ranks the whole network at once instead, with the same score.
"""

import time
from dataclasses import dataclass, field
from uuid import UUID

from django.conf import settings
from django.db import connection

from jobs.coverage import coverage_area
from jobs.models import Company, CompanySkill, Job, JobSkill, ServiceArea, SkillCoverage, SkillLevel

SKILL_COVERAGE_WEIGHT = 2.0
LEVEL_MARGIN_WEIGHT = 0.25
CATEGORY_WEIGHT = 0.5
ZIP_PREFIX_WEIGHT = 3.0
STATE_WEIGHT = 1.5
OUTSIDE_AREA_WEIGHT = 0.0

NETWORK_SIZE_TTL_SECONDS = 60.0

AREA_REASONS = {
    ZIP_PREFIX_WEIGHT: "serves the job's ZIP area",
    STATE_WEIGHT: "serves {state}",
    OUTSIDE_AREA_WEIGHT: "outside its service area",
}


@dataclass(frozen=True)
class Requirement:
    skill_id: int
    slug: str
    level: int


@dataclass
class Match:
    company_id: UUID
    provider_type: str
    score: float
    matched_skills: list[str] = field(default_factory=list)
    missing_skills: list[str] = field(default_factory=list)
    reason: str = ""


def zip_prefixes(zip_code: str) -> list[str]:
    """Every prefix of the ZIP's digits: the codes a covering ``ServiceArea`` could hold."""
    digits = "".join(ch for ch in zip_code if ch.isdigit())
    return [digits[:n] for n in range(1, len(digits) + 1)]


def match_companies(
    *,
    requirements: list[Requirement],
    category_id: int | None,
    state: str,
    zip_code: str,
    exclude_company_id: UUID | None,
    limit: int,
) -> list[Match]:
    """The best ``limit`` candidates, best first (see the module docstring)."""
    if limit <= 0 or (not requirements and category_id is None):
        return []
    zip_tier = (ServiceArea.Kind.ZIP_PREFIX, zip_prefixes(zip_code), ZIP_PREFIX_WEIGHT)
    state_tier = (ServiceArea.Kind.STATE, [state], STATE_WEIGHT)
    near = tuple(area for area in (zip_tier, state_tier) if area[1])
    if network_size() <= settings.MATCH_SMALL_NETWORK_COMPANIES:
        tiers = [WholeNetwork(areas=near)]
    elif requirements:
        tiers = [Nearby(areas=near), WholeNetwork()]
    else:
        tiers = [zip_tier, state_tier, WholeNetwork()]
    excluded = [exclude_company_id] if exclude_company_id else []
    matches: list[Match] = []
    for area in tiers:
        if (isinstance(area, tuple) and not area[1]) or area == Nearby(areas=()):
            continue
        query = _ranking_query(requirements, category_id, area, excluded, limit - len(matches))
        with connection.cursor() as cursor:
            cursor.execute(*query)
            rows = cursor.fetchall()
        for row in rows:
            match = _explain(row, requirements, state)
            matches.append(match)
            excluded.append(match.company_id)
        if len(matches) >= limit:
            break
    return matches


@dataclass(frozen=True)
class WholeNetwork:
    """The tier of every candidate not found yet. With ``areas`` (kind, codes, bonus) each
    company gets the best bonus of the areas it serves; without, no area bonus at all."""

    areas: tuple = ()


@dataclass(frozen=True)
class Nearby:
    """The tiers of ``areas`` (kind, codes, bonus) read at once from the coverage index, each
    company with the best bonus of the areas it serves."""

    areas: tuple = ()


_network_size: dict = {}


def network_size() -> int:
    """The number of companies, counted at most once a minute per process."""
    now = time.monotonic()
    if _network_size.get("expires", 0.0) <= now:
        _network_size.update(count=Company.objects.count(), expires=now + NETWORK_SIZE_TTL_SECONDS)
    return _network_size["count"]


def _ranking_query(requirements, category_id, area, excluded, limit) -> tuple[str, list]:
    """One statement ranking the candidates of one tier: those serving ``area`` (a kind, its
    codes and its bonus), or with a ``WholeNetwork`` every candidate not ``excluded``.

    Both shapes select ``company_id, provider_type, bonus, category_match, level_0..n, score``.
    """
    skill_table = CompanySkill._meta.db_table
    company_table = Company._meta.db_table
    levels = [f"level_{index}" for index in range(len(requirements))]
    company_filters, company_params = "", []
    if excluded:
        company_filters += f" AND c.id NOT IN ({', '.join(['%s'] * len(excluded))})"
        pk = Company._meta.pk
        company_params += [pk.get_db_prep_value(cid, connection) for cid in excluded]
    if not requirements:
        company_filters += " AND c.primary_category_id = %s"
        company_params.append(category_id)
    # The margin is averaged by dividing last: PostgreSQL computes in exact decimals, and a
    # pre-divided weight such as 0.25 / 3 would make equal scores differ in the last digit.
    score = (
        f"candidate.bonus + %s + %s * ({' + '.join(levels) or '0'} - %s) / %s"
        " + CASE WHEN c.primary_category_id = %s THEN %s ELSE 0.0 END"
    )
    score_params = [
        SKILL_COVERAGE_WEIGHT,
        LEVEL_MARGIN_WEIGHT,
        sum(r.level for r in requirements),
        max(len(requirements), 1),
        category_id,
        CATEGORY_WEIGHT,
    ]
    if isinstance(area, Nearby):
        inner, inner_params = _covered_nearby(requirements, area)
        level_filters, level_params = "", []
    elif isinstance(area, WholeNetwork) and requirements:
        inner, inner_params = _everyone_with_the_skills(requirements, area, skill_table)
        level_filters, level_params = "", []
    else:
        inner, inner_params = _companies_in_area(requirements, area, skill_table)
        level_filters = "".join(f" AND {level} >= %s" for level in levels)
        level_params = [r.level for r in requirements]
    sql = f"""
        SELECT candidate.company_id, c.provider_type, candidate.bonus,
               CASE WHEN c.primary_category_id = %s THEN 1 ELSE 0 END AS category_match
               {"".join(f", {level}" for level in levels)}, {score} AS score
        FROM ({inner}) candidate
        JOIN {company_table} c ON c.id = candidate.company_id
        WHERE c.is_active AND c.accepts_jobs{level_filters}{company_filters}
        ORDER BY score DESC, c.open_routing_count, candidate.company_id
        LIMIT %s"""
    params = [
        category_id,
        *score_params,
        *inner_params,
        *level_params,
        *company_params,
        limit,
    ]
    return sql, params


def _companies_in_area(requirements, area, skill_table) -> tuple[str, list]:
    """Companies serving the area, each with its level in every required skill (NULL when it
    lacks one). A company listed under several matching codes appears once. OFFSET 0 keeps the
    planner from flattening this query, so each skill probe runs once per company."""
    area_table = ServiceArea._meta.db_table
    probes = "".join(
        f", (SELECT s.level FROM {skill_table} s"
        f" WHERE s.company_id = a.company_id AND s.skill_id = %s) AS level_{index}"
        for index in range(len(requirements))
    )
    if isinstance(area, WholeNetwork):  # a category-only job: every company
        bonus, bonus_params = _best_area_bonus(area, "c0.id")
        source = f"SELECT c0.id AS company_id, {bonus} AS bonus FROM {Company._meta.db_table} c0"
        source_params = bonus_params
    else:
        kind, codes, bonus = area
        source = (
            f"SELECT DISTINCT company_id, %s AS bonus FROM {area_table}"
            f" WHERE kind = %s AND code IN ({', '.join(['%s'] * len(codes))})"
        )
        source_params = [bonus, kind, *codes]
    sql = f"SELECT a.company_id, a.bonus{probes} FROM ({source}) a {_no_flatten()}"
    return sql, [*[r.skill_id for r in requirements], *source_params]


def _no_flatten() -> str:
    """A clause that keeps the planner from merging a subquery into the query around it."""
    return "OFFSET 0" if connection.vendor == "postgresql" else "LIMIT -1 OFFSET 0"


def _best_area_bonus(network: WholeNetwork, company_column: str) -> tuple[str, list]:
    """SQL for the best bonus among ``network.areas`` that the company serves, else none."""
    if not network.areas:
        return "%s", [OUTSIDE_AREA_WEIGHT]
    cases = " ".join("WHEN %s THEN %s" for _ in network.areas)
    conditions = " OR ".join(
        f"(sa.kind = %s AND sa.code IN ({', '.join(['%s'] * len(codes))}))"
        for _, codes, _ in network.areas
    )
    sql = (
        f"COALESCE((SELECT MAX(CASE sa.kind {cases} ELSE %s END)"
        f" FROM {ServiceArea._meta.db_table} sa"
        f" WHERE sa.company_id = {company_column} AND ({conditions})), %s)"
    )
    params = [
        *[value for kind, _, bonus in network.areas for value in (kind, bonus)],
        OUTSIDE_AREA_WEIGHT,
        *[value for kind, codes, _ in network.areas for value in (kind, *codes)],
        OUTSIDE_AREA_WEIGHT,
    ]
    return sql, params


def _everyone_with_the_skills(requirements, network, skill_table) -> tuple[str, list]:
    """Every company holding all the required skills at their levels: the holders of the first
    skill joined to the holders of each other one, each read from the (skill, level, company)
    index. Cheaper than grouping the holders of all the skills at once, which aggregates every
    holder of any of them rather than only the companies holding them all (at 10,000 companies
    1.7 ms against 2.7 ms per query)."""
    holders = [f"s{index}" for index in range(len(requirements))]
    joins = "".join(
        f" JOIN {skill_table} {alias} ON {alias}.company_id = s0.company_id"
        f" AND {alias}.skill_id = %s AND {alias}.level >= %s"
        for alias in holders[1:]
    )
    bonus, bonus_params = _best_area_bonus(network, "s0.company_id")
    levels = "".join(f", {alias}.level AS level_{index}" for index, alias in enumerate(holders))
    sql = (
        f"SELECT s0.company_id, {bonus} AS bonus{levels} FROM {skill_table} s0{joins}"
        f" WHERE s0.skill_id = %s AND s0.level >= %s {_no_flatten()}"
    )
    first, *others = requirements
    params = [
        *bonus_params,
        *[value for r in others for value in (r.skill_id, r.level)],
        first.skill_id,
        first.level,
    ]
    return sql, params


def _covered_nearby(requirements, nearby: Nearby) -> tuple[str, list]:
    """Companies serving any of the nearby areas with every required skill at its level: one
    range scan of the coverage index per area and skill, grouped per company."""
    keys = [
        (coverage_area(kind, code), bonus) for kind, codes, bonus in nearby.areas for code in codes
    ]
    bonus_cases = " ".join("WHEN area = %s THEN %s" for _ in keys)
    per_skill = "".join(
        f", MAX(CASE WHEN skill_id = %s THEN level END) AS level_{index}"
        for index in range(len(requirements))
    )
    satisfies = " OR ".join("(skill_id = %s AND level >= %s)" for _ in requirements)
    sql = (
        f"SELECT company_id, MAX(CASE {bonus_cases} END) AS bonus{per_skill}"
        f" FROM {SkillCoverage._meta.db_table}"
        f" WHERE area IN ({', '.join(['%s'] * len(keys))})"
        f" AND skill_id IN ({', '.join(['%s'] * len(requirements))}) AND ({satisfies})"
        " GROUP BY company_id HAVING COUNT(DISTINCT skill_id) = %s"
    )
    params = [
        *[value for key in keys for value in key],
        *[r.skill_id for r in requirements],
        *[key for key, _ in keys],
        *[r.skill_id for r in requirements],
        *[value for r in requirements for value in (r.skill_id, r.level)],
        len(requirements),
    ]
    return sql, params


def _explain(row, requirements: list[Requirement], state: str) -> Match:
    company_id, provider_type, bonus, category_match, *levels, score = row
    parts = [
        f"{r.slug} {SkillLevel(held).label} (needs {SkillLevel(r.level).label})"
        for r, held in zip(requirements, levels, strict=True)
    ]
    reason = "Skills match: " + ", ".join(parts) if parts else "Category match"
    if requirements and category_match:
        reason += "; category match"
    reason += "; " + AREA_REASONS[float(bonus)].format(state=state)
    return Match(
        company_id=Company._meta.pk.to_python(company_id),
        provider_type=provider_type or "",
        score=round(float(score), 2),
        matched_skills=[r.slug for r in requirements],
        missing_skills=[],
        reason=reason,
    )


def match_company(*, job: Job, company: Company) -> Match:
    """One company's fit for a job, scored and explained as ``match_companies`` ranks its
    candidates, but for any company: a required skill it lacks, or holds below the required
    level, is listed as missing and adds nothing to its skill coverage. Explains a manual
    route."""
    return match_company_jobs(company=company, jobs=[job])[0]


def match_company_jobs(*, company: Company, jobs: list[Job]) -> list[Match]:
    """``match_company`` for each of ``jobs``, in their order, in three queries whatever their
    number: the jobs' required skills, the company's levels in them, and its service areas."""
    requirements: dict = {job.id: [] for job in jobs}
    rows = (
        JobSkill.objects.filter(job_id__in=list(requirements))
        .order_by("id")
        .values_list("job_id", "skill_id", "skill__slug", "level")
    )
    for job_id, skill_id, slug, level in rows:
        requirements[job_id].append((skill_id, slug, level))
    skill_ids = {skill_id for required in requirements.values() for skill_id, _, _ in required}
    held = dict(
        CompanySkill.objects.filter(company=company, skill_id__in=skill_ids).values_list(
            "skill_id", "level"
        )
    )
    areas = set(ServiceArea.objects.filter(company=company).values_list("kind", "code"))
    return [
        _company_fit(
            job=job, company=company, requirements=requirements[job.id], held=held, areas=areas
        )
        for job in jobs
    ]


def _company_fit(
    *, job: Job, company: Company, requirements: list[tuple], held: dict, areas: set
) -> Match:
    """The score and explanation of a company holding ``held`` ({skill id: level}) and serving
    ``areas`` ({(kind, code)}) for a job requiring ``requirements`` ([(skill id, slug, level)])."""
    matched = [
        (slug, level, held[skill_id])
        for skill_id, slug, level in requirements
        if held.get(skill_id, 0) >= level
    ]
    missing = [
        (slug, level, held.get(skill_id))
        for skill_id, slug, level in requirements
        if held.get(skill_id, 0) < level
    ]
    required = max(len(requirements), 1)
    coverage = SKILL_COVERAGE_WEIGHT * (len(matched) / required if requirements else 1.0)
    margin = LEVEL_MARGIN_WEIGHT * sum(has - needs for _, needs, has in matched) / required
    category_match = job.category_id is not None and job.category_id == company.primary_category_id
    bonus = _area_bonus(areas=areas, state=job.state, zip_code=job.zip_code)
    score = bonus + coverage + margin + (CATEGORY_WEIGHT if category_match else 0.0)

    def described(slug, needs, has):
        holds = SkillLevel(has).label if has else "not held"
        return f"{slug} {holds} (needs {SkillLevel(needs).label})"

    parts = []
    if matched:
        parts.append("Skills match: " + ", ".join(described(*skill) for skill in matched))
    if missing:
        parts.append("missing: " + ", ".join(described(*skill) for skill in missing))
    if not requirements:
        parts.append("Category match" if category_match else "No skills required")
    elif category_match:
        parts.append("category match")
    parts.append(AREA_REASONS[bonus].format(state=job.state))
    return Match(
        company_id=company.id,
        provider_type=company.provider_type or "",
        score=round(score, 2),
        matched_skills=[slug for slug, _, _ in matched],
        missing_skills=[slug for slug, _, _ in missing],
        reason="; ".join(parts),
    )


def _area_bonus(*, areas: set, state: str, zip_code: str) -> float:
    if any((ServiceArea.Kind.ZIP_PREFIX, prefix) in areas for prefix in zip_prefixes(zip_code)):
        return ZIP_PREFIX_WEIGHT
    if (ServiceArea.Kind.STATE, state) in areas:
        return STATE_WEIGHT
    return OUTSIDE_AREA_WEIGHT


def job_candidates(*, job: Job, limit: int) -> list[Match]:
    """The best ``limit`` candidates for an existing job, ranked now from the current network
    by the computation that routed it (``match_companies`` with the job's requirements in the
    order they were stored, its category and area, its requester excluded)."""
    requirements = [
        Requirement(skill_id=skill_id, slug=slug, level=level)
        for skill_id, slug, level in JobSkill.objects.filter(job=job)
        .order_by("id")
        .values_list("skill_id", "skill__slug", "level")
    ]
    return match_companies(
        requirements=requirements,
        category_id=job.category_id,
        state=job.state,
        zip_code=job.zip_code,
        exclude_company_id=job.created_by_company_id,
        limit=limit,
    )

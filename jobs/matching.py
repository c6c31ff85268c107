"""Matching a job to the companies that should receive it (DESIGN.md "Matching").

A company is a candidate when it is active, accepts jobs, is not the requester, holds every
required skill at or above the required level (basic < intermediate < expert), and works where
the job is: one of its ZIP prefixes covers the job's ZIP, it serves the job's state, or it has
declared that it works anywhere. Score:

* skill coverage: ``2.0 x matched / required`` (2.0 for every candidate);
* level margin: ``+0.25`` per level held above the required one, averaged over the required
  skills (0 to 0.5);
* category: ``+0.5`` when the job's category is the company's primary category;
* service area: ``+3.0`` for a ZIP prefix match, else ``+1.5`` for a state match, else 0 for a
  company that works anywhere.

Ties go to the company with fewer open routings, then to the lower id; the top ``limit`` win.
Margin and category add at most 1.0, less than the gap between area tiers, so a company that
serves the job's ZIP always outranks one that serves only its state, which always outranks one
that works anywhere.

The candidates are found in one statement that starts from the ``ServiceArea`` (kind, code)
index, so its cost follows the number of companies serving the job's area (plus those that
work anywhere), not the size of the network; each candidate's required skills are then probed
through the unique (company, skill) index. A job with no required skills is matched on its
category: companies whose primary category it is. A job with neither matches nobody.
"""

from dataclasses import dataclass, field
from uuid import UUID

from django.db import connection

from jobs.models import Company, CompanySkill, ServiceArea, SkillLevel

SKILL_COVERAGE_WEIGHT = 2.0
LEVEL_MARGIN_WEIGHT = 0.25
CATEGORY_WEIGHT = 0.5
ZIP_PREFIX_WEIGHT = 3.0
STATE_WEIGHT = 1.5
ANYWHERE_WEIGHT = 0.0

AREA_REASONS = {
    ZIP_PREFIX_WEIGHT: "serves the job's ZIP area",
    STATE_WEIGHT: "serves {state}",
    ANYWHERE_WEIGHT: "works anywhere",
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
    """The best ``limit`` candidates, best first.

    The ZIP tier is read first; the state and anywhere tiers only when it holds fewer than
    ``limit`` candidates. Tiers dominate each other, so this is exact, and a job near many
    companies needs one query, elsewhere two.
    """
    if limit <= 0 or (not requirements and category_id is None):
        return []
    zip_tier = [(ServiceArea.Kind.ZIP_PREFIX, zip_prefixes(zip_code), ZIP_PREFIX_WEIGHT)]
    wider_tier = [
        (ServiceArea.Kind.STATE, [state], STATE_WEIGHT),
        (ServiceArea.Kind.ANYWHERE, [ServiceArea.ANYWHERE_CODE], ANYWHERE_WEIGHT),
    ]
    excluded = [exclude_company_id] if exclude_company_id else []
    matches: list[Match] = []
    for areas in (zip_tier, wider_tier):
        sql, params = _candidate_query(
            requirements, category_id, areas, excluded, limit - len(matches)
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        for row in rows:
            match = _explain(row, requirements, state)
            matches.append(match)
            excluded.append(match.company_id)
        if len(matches) >= limit:
            break
    return matches


def _candidate_query(requirements, category_id, areas, excluded, limit):
    """One statement ranking the candidates that serve any of ``areas``.

    It starts from the ServiceArea (kind, code) index, probes each area candidate's required
    skills through the unique (company, skill) index, and only then joins the company row, so
    the planner reads company rows by primary key for the few survivors. OFFSET 0 keeps the
    inner query from being flattened, so each probe runs once per candidate.
    """
    area_table = ServiceArea._meta.db_table
    skill_table = CompanySkill._meta.db_table
    company_table = Company._meta.db_table
    pk = Company._meta.pk

    bonus_cases = " ".join("WHEN %s THEN %s" for _ in areas)
    bonus_params = [value for kind, _, bonus in areas for value in (kind, bonus)]
    area_conditions = " OR ".join(
        f"(kind = %s AND code IN ({', '.join(['%s'] * len(codes))}))" for _, codes, _ in areas
    )
    area_params = [value for kind, codes, _ in areas for value in (kind, *codes)]

    levels = [f"level_{index}" for index in range(len(requirements))]
    level_probes = "".join(
        f", (SELECT s.level FROM {skill_table} s"
        f" WHERE s.company_id = a.company_id AND s.skill_id = %s) AS {level}"
        for level in levels
    )
    level_filters = "".join(f" AND {level} >= %s" for level in levels)
    company_filters = ""
    if excluded:
        company_filters += f" AND c.id NOT IN ({', '.join(['%s'] * len(excluded))})"
    if not requirements:
        company_filters += " AND c.primary_category_id = %s"
    margin_weight = LEVEL_MARGIN_WEIGHT / len(requirements) if requirements else 0.0
    no_flatten = "OFFSET 0" if connection.vendor == "postgresql" else "LIMIT -1 OFFSET 0"

    sql = f"""
        SELECT candidate.company_id, c.provider_type, candidate.bonus,
               CASE WHEN c.primary_category_id = %s THEN 1 ELSE 0 END AS category_match
               {"".join(f", {level}" for level in levels)},
               candidate.bonus + %s + %s * ({" + ".join(levels) or "0"} - %s)
                 + CASE WHEN c.primary_category_id = %s THEN %s ELSE 0.0 END AS score
        FROM (
            SELECT a.company_id, a.bonus{level_probes}
            FROM (
                SELECT company_id, MAX(CASE kind {bonus_cases} ELSE 0.0 END) AS bonus
                FROM {area_table}
                WHERE {area_conditions}
                GROUP BY company_id
            ) a
            {no_flatten}
        ) candidate
        JOIN {company_table} c ON c.id = candidate.company_id
        WHERE c.is_active AND c.accepts_jobs{level_filters}{company_filters}
        ORDER BY score DESC, c.open_routing_count, candidate.company_id
        LIMIT %s"""
    params = [
        category_id,
        SKILL_COVERAGE_WEIGHT,
        margin_weight,
        sum(r.level for r in requirements),
        category_id,
        CATEGORY_WEIGHT,
        *[r.skill_id for r in requirements],
        *bonus_params,
        *area_params,
        *[r.level for r in requirements],
        *[pk.get_db_prep_value(company_id, connection) for company_id in excluded],
        *([category_id] if not requirements else []),
        limit,
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

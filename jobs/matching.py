"""Matching a job to the companies that should receive it (DESIGN.md "Matching").

A company is a candidate when it is active, accepts jobs, is not the requester, and holds every
required skill at or above the required level. Candidates are ranked by score, then by lower
current load, then by id, and the top ``limit`` are returned.

Score, the same for every job so figures compare across jobs:

* skill coverage: ``2.0 x matched / required`` (always 2.0 for a candidate);
* level margin: ``+0.5`` per level held above the required one, per skill;
* category: ``+1.0`` when the company's primary category is the job's category;
* service area: ``+1.0`` when a ZIP prefix of the company matches the job's ZIP, else ``+0.5``
  when the job's state is one of the company's states.

Everything is computed in one grouped query over ``CompanySkill`` rows whose (skill, level)
satisfy a requirement, read through the ``(skill, level, company)`` index, so the number of queries
never depends on the size of the network. A job with no required skills is matched on its
category alone (companies whose primary category it is); a job with neither matches nobody.
"""

from dataclasses import dataclass, field
from functools import reduce
from operator import or_
from uuid import UUID

from django.db.models import (
    Case,
    Count,
    F,
    FloatField,
    IntegerField,
    Max,
    Q,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Concat

from jobs.models import Company, CompanySkill, SkillLevel

SKILL_COVERAGE_WEIGHT = 2.0
LEVEL_MARGIN_WEIGHT = 0.5
CATEGORY_WEIGHT = 1.0
ZIP_PREFIX_WEIGHT = 1.0
STATE_WEIGHT = 0.5


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


def match_companies(
    *,
    requirements: list[Requirement],
    category_id: int | None,
    state: str,
    zip_code: str,
    exclude_company_id: UUID | None,
    limit: int,
) -> list[Match]:
    if limit <= 0 or (not requirements and category_id is None):
        return []
    if requirements:
        rows = _candidates_by_skills(
            requirements, category_id, state, zip_code, exclude_company_id, limit
        )
    else:
        rows = _candidates_by_category(category_id, state, zip_code, exclude_company_id, limit)
    return [_explain(row, requirements, state) for row in rows]


def _area_bonus(state: str, zip_code: str, prefix: str = "") -> Case:
    """Service-area part of the score, as SQL portable to SQLite and PostgreSQL.

    Areas are stored comma-separated; padding both sides with commas turns "has item X" into
    ``LIKE '%,X,%'``, and "a prefix of the job's ZIP is listed" into one such test per prefix.
    """
    states = Concat(Value(","), F(f"{prefix}service_states"), Value(","))
    zips = Concat(Value(","), F(f"{prefix}service_zip_prefixes"), Value(","))
    zip_digits = zip_code.replace(" ", "").replace("-", "")
    zip_tests = [
        Q(padded_zips__contains=f",{zip_digits[:n]},") for n in range(1, len(zip_digits) + 1)
    ]
    whens = []
    if zip_tests:
        whens.append(When(reduce(or_, zip_tests), then=Value(ZIP_PREFIX_WEIGHT)))
    whens.append(When(padded_states__contains=f",{state},", then=Value(STATE_WEIGHT)))
    return states, zips, Case(*whens, default=Value(0.0), output_field=FloatField())


def _category_bonus(category_id: int | None, prefix: str = "") -> Case:
    if category_id is None:
        return Value(0.0, output_field=FloatField())
    return Case(
        When(**{f"{prefix}primary_category_id": category_id}, then=Value(CATEGORY_WEIGHT)),
        default=Value(0.0),
        output_field=FloatField(),
    )


def _candidates_by_skills(requirements, category_id, state, zip_code, exclude_company_id, limit):
    required_level_total = sum(r.level for r in requirements)
    satisfies_a_requirement = reduce(
        or_, (Q(skill_id=r.skill_id, level__gte=r.level) for r in requirements)
    )
    padded_states, padded_zips, area_bonus = _area_bonus(state, zip_code, prefix="company__")
    per_skill_level = {
        f"level_{r.skill_id}": Max(
            Case(When(skill_id=r.skill_id, then=F("level")), output_field=IntegerField())
        )
        for r in requirements
    }
    queryset = (
        CompanySkill.objects.filter(
            satisfies_a_requirement, company__is_active=True, company__accepts_jobs=True
        )
        .alias(padded_states=padded_states, padded_zips=padded_zips)
        .values("company_id", "company__open_routing_count", "company__provider_type")
        .annotate(
            matched=Count("skill_id"),
            level_total=Sum("level"),
            category_bonus=Max(_category_bonus(category_id, prefix="company__")),
            area_bonus=Max(area_bonus),
            **per_skill_level,
        )
        .filter(matched=len(requirements))
        .annotate(
            score=Value(SKILL_COVERAGE_WEIGHT)
            + Value(LEVEL_MARGIN_WEIGHT) * (F("level_total") - Value(required_level_total))
            + F("category_bonus")
            + F("area_bonus")
        )
        .order_by("-score", "company__open_routing_count", "company_id")
    )
    if exclude_company_id is not None:
        queryset = queryset.exclude(company_id=exclude_company_id)
    return list(queryset[:limit])


def _candidates_by_category(category_id, state, zip_code, exclude_company_id, limit):
    padded_states, padded_zips, area_bonus = _area_bonus(state, zip_code)
    queryset = (
        Company.objects.filter(is_active=True, accepts_jobs=True, primary_category_id=category_id)
        .alias(padded_states=padded_states, padded_zips=padded_zips)
        .annotate(
            company_id=F("id"),
            company__provider_type=F("provider_type"),
            category_bonus=Value(CATEGORY_WEIGHT),
            area_bonus=area_bonus,
        )
        .annotate(score=Value(SKILL_COVERAGE_WEIGHT) + F("category_bonus") + F("area_bonus"))
        .order_by("-score", "open_routing_count", "id")
        .values(
            "company_id",
            "company__provider_type",
            "category_bonus",
            "area_bonus",
            "score",
        )
    )
    if exclude_company_id is not None:
        queryset = queryset.exclude(id=exclude_company_id)
    return list(queryset[:limit])


def _explain(row: dict, requirements: list[Requirement], state: str) -> Match:
    parts = []
    for requirement in requirements:
        held = row[f"level_{requirement.skill_id}"]
        needed = SkillLevel(requirement.level).label
        parts.append(f"{requirement.slug} {SkillLevel(held).label} (needs {needed})")
    reason = "Skills match: " + ", ".join(parts) if parts else "Category match"
    if requirements and row["category_bonus"]:
        reason += "; category match"
    if row["area_bonus"] == ZIP_PREFIX_WEIGHT:
        reason += "; serves the job's ZIP area"
    elif row["area_bonus"] == STATE_WEIGHT:
        reason += f"; serves {state}"
    return Match(
        company_id=row["company_id"],
        provider_type=row["company__provider_type"] or "",
        score=round(float(row["score"]), 2),
        matched_skills=[r.slug for r in requirements],
        missing_skills=[],
        reason=reason,
    )

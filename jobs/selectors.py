import time
import uuid

from django.db.models import Prefetch, QuerySet

from jobs.models import Category, Company, CompanySkill, Job, JobSkill, Skill
from tradeengage.exceptions import NotFoundError

MANAGED_LISTS_TTL_SECONDS = 5.0

_managed_lists: dict = {}


def managed_lists() -> dict[str, dict[str, int]]:
    """The managed skills and categories as ``{"skills": {slug: id}, "categories": {...}}``.

    Read on every job creation, so each process keeps them for a few seconds. Saving or
    deleting a skill or category drops them at once in the process that did it (see
    ``JobsConfig.ready``); other processes see the change within ``MANAGED_LISTS_TTL_SECONDS``.
    """
    now = time.monotonic()
    if _managed_lists.get("expires", 0.0) <= now:
        _managed_lists.update(
            lists={
                "skills": dict(Skill.objects.values_list("slug", "id")),
                "categories": dict(Category.objects.values_list("slug", "id")),
            },
            expires=now + MANAGED_LISTS_TTL_SECONDS,
        )
    return _managed_lists["lists"]


def managed_lists_forget(**kwargs) -> None:
    _managed_lists.clear()


def jobs_with_skills() -> QuerySet[Job]:
    return Job.objects.select_related("category").prefetch_related(
        Prefetch("required_skills", queryset=JobSkill.objects.select_related("skill"))
    )


def job_with_external_id(*, company_id, source: str, external_id: str) -> uuid.UUID | None:
    """The id of the company's job with this source and external id, if there is one."""
    return (
        Job.objects.filter(created_by_company_id=company_id, source=source, external_id=external_id)
        .values_list("id", flat=True)
        .first()
    )


def jobs_with_external_ids(*, source: str, keys: list[tuple[str, str]]) -> dict:
    """The jobs of ``source`` made for ``(company id, external id)`` pairs, by pair (the
    company id as a string, as the pairs name it); pairs without a job are left out."""
    if not keys:
        return {}
    rows = Job.objects.filter(
        source=source,
        created_by_company_id__in={company_id for company_id, _ in keys},
        external_id__in={external_id for _, external_id in keys},
    ).values_list("created_by_company_id", "external_id", "id")
    wanted = set(keys)
    found = {(str(company_id), external_id): job_id for company_id, external_id, job_id in rows}
    return {key: job_id for key, job_id in found.items() if key in wanted}


def job_get(*, job_id: str, queryset: QuerySet[Job] | None = None) -> Job:
    """The job with this id; a malformed id is as unknown as a missing one."""
    try:
        parsed = uuid.UUID(str(job_id))
    except ValueError:
        parsed = None
    job = (
        (queryset if queryset is not None else Job.objects.all()).filter(id=parsed).first()
        if parsed
        else None
    )
    if job is None:
        raise NotFoundError(f"Job {job_id} not found.")
    return job


def company_profile_get(*, company_id) -> Company:
    """A company with what matching reads of it: its skills, service areas, primary category."""
    company = (
        Company.objects.select_related("primary_category")
        .prefetch_related(
            Prefetch("skills", queryset=CompanySkill.objects.select_related("skill")),
            "service_areas",
        )
        .filter(id=company_id)
        .first()
    )
    if company is None:
        raise NotFoundError(f"Company {company_id} not found.")
    return company

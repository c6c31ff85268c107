import uuid

from django.core.cache import cache
from django.db import connection
from django.db.models import Prefetch, QuerySet

from jobs.models import Category, Job, JobSkill, Skill
from tradeengage.exceptions import NotFoundError

MANAGED_LISTS_TIMEOUT = 3600


def _managed_lists_key() -> str:
    # Keyed by database so a development and a test database never share an entry.
    return f"jobs:managed-lists:{connection.settings_dict['NAME']}"


def managed_lists() -> dict[str, dict[str, int]]:
    """The managed skills and categories as ``{"skills": {slug: id}, "categories": {...}}``.

    Read on every job creation, so they are kept in the shared cache; saving or deleting a skill
    or category drops the entry (see ``JobsConfig.ready``).
    """
    lists = cache.get(_managed_lists_key())
    if lists is None:
        lists = {
            "skills": dict(Skill.objects.values_list("slug", "id")),
            "categories": dict(Category.objects.values_list("slug", "id")),
        }
        cache.set(_managed_lists_key(), lists, MANAGED_LISTS_TIMEOUT)
    return lists


def managed_lists_forget(**kwargs) -> None:
    cache.delete(_managed_lists_key())


def jobs_with_skills() -> QuerySet[Job]:
    return Job.objects.select_related("category").prefetch_related(
        Prefetch("required_skills", queryset=JobSkill.objects.select_related("skill"))
    )


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

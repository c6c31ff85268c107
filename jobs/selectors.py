import uuid

from django.db.models import Prefetch, QuerySet

from jobs.models import Job, JobSkill
from tradeengage.exceptions import NotFoundError


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

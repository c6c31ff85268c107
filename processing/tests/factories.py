from datetime import UTC, datetime, timedelta

import factory
from django.utils import timezone

from jobs.models import Job, SkillLevel
from jobs.tests.factories import CompanyFactory, JobFactory, JobSkillFactory, skill
from processing.models import ProcessingJob
from processing.services.runs import processing_job_create, processing_job_run


class ProcessingJobFactory(factory.django.DjangoModelFactory):
    """A client's processing run: pending and never tried unless told. Its client's fields go in
    as ``client__...``."""

    class Meta:
        model = ProcessingJob

    client = factory.SubFactory(CompanyFactory)
    trigger = ProcessingJob.Trigger.API
    run_date = factory.LazyFunction(timezone.localdate)


# The night the pipeline's tests run a client's processing.
NOW = datetime(2026, 11, 24, 0, 0, tzinfo=UTC)


def lead(*, days_ago: float = 10, state="IL", zip_code="62701", level=SkillLevel.BASIC, **job):
    """An open plumbing job posted ``days_ago`` days before NOW."""
    created = JobFactory(state=state, zip_code=zip_code, **job)
    JobSkillFactory(job=created, skill=skill("plumbing"), level=level)
    Job.objects.filter(id=created.id).update(created_at=NOW - timedelta(days=days_ago))
    created.refresh_from_db()
    return created


def run(company, *, now=NOW, seed="pinned"):
    """A run of the company's processing made as the API makes it and run at once; the run as
    it ended."""
    job, _ = processing_job_create(client_id=company.id, trigger=ProcessingJob.Trigger.API)
    return processing_job_run(job_id=job.job_id, now=now, seed=seed)

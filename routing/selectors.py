"""What a caller may see (DESIGN.md "Security and tenancy"): a company sees the jobs it created
or received a routing for, and of others' jobs only its own routings; ops see everything.
Anything else is as unknown as a missing id (404), so ids cannot be probed."""

from django.db.models import Exists, OuterRef, Q, QuerySet

from access.callers import Caller
from jobs.models import Job
from routing.models import JobRouting


def jobs_visible_to(caller: Caller, jobs: QuerySet[Job] | None = None) -> QuerySet[Job]:
    jobs = Job.objects.all() if jobs is None else jobs
    if caller.is_ops:
        return jobs
    received = JobRouting.objects.filter(job=OuterRef("pk"), company_id=caller.company_id)
    return jobs.filter(Q(created_by_company_id=caller.company_id) | Exists(received))


def routings_visible_to(caller: Caller, job: Job) -> QuerySet[JobRouting]:
    routings = job.routings.select_related("company")
    if caller.is_ops or job.created_by_company_id == caller.company_id:
        return routings
    return routings.filter(company_id=caller.company_id)

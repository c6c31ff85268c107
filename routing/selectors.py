"""What a caller may see (DESIGN.md "Security and tenancy"): a company sees the jobs it created
or received a routing for, and of others' jobs only its own routings; ops see everything.
Anything else is as unknown as a missing id (404), so ids cannot be probed."""

import uuid

from django.db.models import Exists, OuterRef, Q, QuerySet

from access.callers import Caller
from jobs.models import Job
from routing.models import JobRouting, WebhookDelivery, WebhookEndpoint
from tradeengage.exceptions import NotFoundError


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


def webhook_endpoints_visible_to(caller: Caller) -> QuerySet[WebhookEndpoint]:
    """Ops see every company's endpoints; a company its own."""
    endpoints = WebhookEndpoint.objects.all()
    return endpoints if caller.is_ops else endpoints.filter(company_id=caller.company_id)


def webhook_endpoint_get(*, endpoint_id: str, caller: Caller) -> WebhookEndpoint:
    """The caller's endpoint with this id; another company's, or a malformed id, is as unknown
    as a missing one."""
    try:
        parsed = uuid.UUID(str(endpoint_id))
    except ValueError:
        parsed = None
    endpoint = webhook_endpoints_visible_to(caller).filter(id=parsed).first() if parsed else None
    if endpoint is None:
        raise NotFoundError(f"Webhook endpoint {endpoint_id} not found.")
    return endpoint


def webhook_deliveries_of(endpoint: WebhookEndpoint) -> QuerySet[WebhookDelivery]:
    """An endpoint's deliveries, newest first, with their attempts."""
    return endpoint.deliveries.order_by("-created_at", "-id").prefetch_related("attempts")

"""The back-sync (DESIGN.md "The core flow", step 4): providers' news about the jobs they hold,
polled or pushed by webhook, moving routings to completed and rolling them up into their jobs.

Every provider's webhook takes one path, verify → record → apply: the provider verifies its
vendor's signature and parses the payload into a provider-neutral ``StatusUpdate``
(``Provider.webhook_status_update``), the event id is recorded so a replay changes nothing, and
the update is applied here.
"""

import logging
import uuid
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Max, Q, Sum
from django.utils import timezone

from integrations.models import WebhookReceipt
from integrations.providers import (
    ProviderAccount,
    ProviderError,
    ProviderJobStatus,
    ProviderNotConfigured,
    StatusUpdate,
    WebhookRejected,
)
from integrations.registry import provider_class, provider_for
from jobs.models import Company, Job, JobStatus
from routing.models import JobRouting, SyncStatus
from routing.services.load import company_loads_change

logger = logging.getLogger("routing")


def routings_backsync(*, now: datetime | None = None, batch_size: int | None = None) -> dict:
    """Ask providers about synced routings, least recently checked first, and complete those
    their provider reports completed. Returns counts: checked, completed, errors."""
    now = now or timezone.now()
    recheck_before = now - timedelta(seconds=settings.BACKSYNC_RECHECK_SECONDS)
    with transaction.atomic():
        due = JobRouting.objects.filter(
            Q(status_checked_at__isnull=True) | Q(status_checked_at__lt=recheck_before),
            sync_status=SyncStatus.SYNCED,
            external_id__isnull=False,
        ).order_by(F("status_checked_at").asc(nulls_first=True), "id")
        if connection.vendor == "postgresql":
            due = due.select_for_update(skip_locked=True, of=("self",))
        routings = list(due.select_related("company")[: batch_size or settings.BACKSYNC_BATCH_SIZE])
        JobRouting.objects.filter(id__in=[r.id for r in routings]).update(status_checked_at=now)
    return routings_poll(routings=routings, now=now)


def routings_poll(*, routings, now: datetime | None = None) -> dict:
    """Ask each routing's provider about it and complete those reported completed. Returns
    counts: checked, completed, errors (a provider error is logged and the routing left)."""
    now = now or timezone.now()
    counts = {"checked": 0, "completed": 0, "errors": 0}
    for routing in routings:
        counts["checked"] += 1
        try:
            status = provider_for(routing.company.provider_account()).get_job_status(
                external_id=routing.external_id, timeout=settings.SYNC_PROVIDER_TIMEOUT_SECONDS
            )
        except (ProviderError, ProviderNotConfigured) as exc:
            counts["errors"] += 1
            logger.warning(
                "Status back-sync failed", extra={"routing_id": str(routing.id), "error": str(exc)}
            )
            continue
        if status.status == ProviderJobStatus.COMPLETED:
            routing_complete(
                routing=routing,
                completed_at=status.completed_at or now,
                revenue=status.revenue,
            )
            counts["completed"] += 1
    return counts


def routing_complete(
    *, routing: JobRouting, completed_at: datetime, revenue: Decimal | None
) -> bool:
    """Record the provider's completion of a routing and roll it up into its job: the job is
    completed, at its latest routing completion, with the revenue of all its completed
    routings. Returns False when the routing was already completed (a repeated report)."""
    with transaction.atomic():
        if not JobRouting.mark_completed(
            routing.id, completed_at=completed_at, revenue=revenue, now=timezone.now()
        ):
            return False
        company_loads_change([(routing.company_id, -1)])
        totals = JobRouting.objects.filter(
            job_id=routing.job_id, sync_status=SyncStatus.COMPLETED
        ).aggregate(revenue=Sum("revenue"), completed_at=Max("completed_at"))
        Job.objects.filter(id=routing.job_id).update(
            status=JobStatus.COMPLETED,
            completed_at=totals["completed_at"],
            revenue=totals["revenue"],
            updated_at=timezone.now(),
        )
    logger.info(
        "Routing completed",
        extra={"routing_id": str(routing.id), "job_id": str(routing.job_id), "revenue": revenue},
    )
    return True


def provider_webhook_receive(
    *, provider_type: str, body: bytes, headers, company_id: str | None
) -> dict:
    """Verify a provider's webhook, record its event once, and apply its status update.
    ``company_id`` names the provider account whose secret signs it; without one, the global
    configuration's. Returns ``{"eventId", "applied", "routingId"}``; a replayed event id is
    ``applied: "duplicate"`` and changes nothing."""
    provider = provider_class(provider_type)
    if provider is None:
        raise WebhookRejected(f"Unknown provider {provider_type!r}.")
    account = _webhook_account(provider_type, company_id)
    update = provider(account).webhook_status_update(body=body, headers=headers)
    with transaction.atomic():
        if not WebhookReceipt.record(provider=provider_type, event_id=update.event_id):
            return {"eventId": update.event_id, "applied": "duplicate"}
        result = status_update_apply(update, company_id=account.company_id)
    logger.info(
        "Provider webhook applied",
        extra={"provider": provider_type, "event_id": update.event_id, **result},
    )
    return {"eventId": update.event_id, **result}


def _webhook_account(provider_type: str, company_id: str | None) -> ProviderAccount:
    if not company_id:
        return ProviderAccount(company_id=None, company_name="", provider_type=provider_type)
    try:
        company = Company.objects.filter(
            id=uuid.UUID(company_id), provider_type=provider_type
        ).first()
    except ValueError:
        company = None
    if company is None:
        raise WebhookRejected("Unknown provider account.")
    return company.provider_account()


def status_update_apply(update: StatusUpdate, *, company_id=None) -> dict:
    """A job's new status at its provider, for the routing it came from: a completion
    completes the routing (and rolls up into the job); any other status is recorded only.
    With ``company_id`` (the account whose secret signed the webhook), only that company's
    routings are considered: one company's system cannot complete another's routing."""
    routing = routing_for_update(update, company_id=company_id)
    if routing is None:
        return {"applied": "unknown job", "routingId": None}
    if update.status != ProviderJobStatus.COMPLETED:
        return {"applied": "recorded", "routingId": str(routing.id)}
    completed = routing_complete(
        routing=routing,
        completed_at=update.completed_at or timezone.now(),
        revenue=update.revenue,
    )
    return {
        "applied": "completed" if completed else "already completed",
        "routingId": str(routing.id),
    }


def routing_for_update(update: StatusUpdate, *, company_id=None) -> JobRouting | None:
    """Our routing for a provider's job: by our routing id echoed back, else by the provider's
    ids for the job among routings synced to that provider (to ``company_id`` when given)."""
    routings = JobRouting.objects.filter(company__provider_type=update.provider_type)
    if company_id is not None:
        routings = routings.filter(company_id=company_id)
    for reference in update.routing_ids:
        try:
            routing_id = uuid.UUID(reference)
        except ValueError:
            continue
        routing = routings.filter(id=routing_id).first()
        if routing is not None:
            return routing
    if not update.external_ids:
        return None
    return routings.filter(external_id__in=list(update.external_ids)).order_by("created_at").first()

"""The back-sync (DESIGN.md "The core flow", step 4): providers' news about the jobs they hold,
polled or pushed by webhook, moving routings to completed and rolling them up into their jobs.

A routing's life at its provider (issue 17): it is pushed (ServiceTitan: a booking), the
provider may name the job the company works from (the booking's job once the office converts
it: ``provider_job_id`` and ``provider_job_number``, recorded whenever a report carries new
ones), and it ends completed, with its revenue, or cancelled: the company turned the work down.
A declined routing stays ``synced`` (seed 000 fixes the statuses, and its push did succeed),
with ``declined_at`` and ``decline_reason``; it leaves the back-sync, its company's load no
longer counts it, and its job is left as it is, since the job's other routings may still take
it.

Webhooks are the fast path. Every provider's takes one path, verify → record → apply: the
provider verifies its vendor's signature and parses the payload into a provider-neutral
``StatusUpdate`` (``Provider.webhook_status_update``), the event id is recorded so a replay
changes nothing, and the update is applied here.

Polling finds what no webhook brought, and its work grows with the open routings, not with a
fixed batch: beat's ``poll_provider_statuses`` claims the routings due for a question
(``routings_backsync_dispatch``), oldest due first, and enqueues one poll task per chunk of one
company's routings, since a provider answers for one account at a time; the workers share the
chunks. Each chunk is one batch call (``Provider.get_job_statuses``: one query for the mock,
lookups of 50 ids per request for ServiceTitan) and one transaction for its completions. A
routing is asked about again after a wait that grows with its age (``recheck_seconds``): a
routing synced a minute ago is asked every ``BACKSYNC_RECHECK_MIN_SECONDS``, a week-old one every
``BACKSYNC_RECHECK_MAX_SECONDS``.
"""

import logging
import math
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max, OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce
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
from routing.models import IN_BACKSYNC, JobRouting, SyncStatus, WebhookEvent
from routing.services.load import company_loads_change
from routing.services.webhooks import (
    Notification,
    job_completed_notifications,
    routing_notifications,
    webhooks_notify,
)

logger = logging.getLogger("routing")

# When a synced routing is due for a question to its provider: at its next check, or, never
# asked, once it is synced. The index routing_backsync_due_idx is on this expression.
BACKSYNC_DUE_AT = Coalesce("status_check_due_at", "last_synced_at", "created_at")
# A routing is asked about again after this share of its age: a job open for an hour is
# unlikely to complete within the next minute, and webhooks bring the news sooner anyway.
RECHECK_AGE_SHARE = 0.25
# The reason of a decline whose provider told none.
DECLINED_WITHOUT_REASON = "Declined by the company in its field-service system"
PROVIDER_JOB_FIELDS = ["provider_job_id", "provider_job_number", "provider_status", "updated_at"]


def recheck_seconds(age_seconds: float) -> float:
    """The wait before a routing synced ``age_seconds`` ago is asked about again: a quarter of
    its age, within ``BACKSYNC_RECHECK_MIN_SECONDS`` and ``BACKSYNC_RECHECK_MAX_SECONDS``, rounded
    down to the minimum times a power of two, so that one claim writes a handful of due times."""
    low, high = settings.BACKSYNC_RECHECK_MIN_SECONDS, settings.BACKSYNC_RECHECK_MAX_SECONDS
    wanted = age_seconds * RECHECK_AGE_SHARE
    if wanted >= high:
        return high
    if low <= 0 or wanted <= low:
        return max(low, 0)
    return low * 2 ** int(math.log2(wanted / low))


def routings_backsync_dispatch(
    *, dispatch, now: datetime | None = None, limit: int | None = None
) -> tuple[int, bool]:
    """Claim the synced routings due for a question to their provider, oldest due first, at most
    ``limit`` (``BACKSYNC_CLAIM_LIMIT``), and pass them to ``dispatch(routing_ids, claimed_at)``
    in chunks of one company's, at most ``BACKSYNC_BATCH_SIZE`` each. Returns (routings claimed,
    whether the claim was full: more may be due).

    The claim is its own lease: it moves each routing's next check on by its recheck wait, so
    a chunk whose task is lost is asked about at that next check, and a task that arrives after
    a newer claim of its routings finds them claimed at another time and leaves them."""
    now = now or timezone.now()
    limit = limit or settings.BACKSYNC_CLAIM_LIMIT
    claimed = routings_claim_due(now=now, limit=limit)
    by_company = defaultdict(list)
    for routing_id, company_id in claimed:
        by_company[company_id].append(routing_id)
    size = settings.BACKSYNC_BATCH_SIZE
    for routing_ids in by_company.values():
        for start in range(0, len(routing_ids), size):
            dispatch(routing_ids[start : start + size], now)
    return len(claimed), len(claimed) >= limit


def routings_claim_due(*, now: datetime, limit: int) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Claim up to ``limit`` routings due at ``now``: ``status_checked_at`` becomes ``now`` (the
    claim's token) and the next check is set by each one's age. Returns (routing id, company id)
    pairs. On PostgreSQL the rows are read with SKIP LOCKED, so two claims never share one.
    Declined routings are out of the pipeline: the filter is the condition of the partial index
    ``routing_backsync_due_idx``, so the scan reads that index."""
    due = (
        JobRouting.objects.filter(IN_BACKSYNC, external_id__isnull=False)
        .annotate(due_at=BACKSYNC_DUE_AT)
        .filter(due_at__lte=now)
        .order_by("due_at")
    )
    with transaction.atomic():
        if connection.vendor == "postgresql":
            due = due.select_for_update(skip_locked=True, of=("self",))
        rows = list(
            due.values_list("id", "company_id", Coalesce("last_synced_at", "created_at"))[:limit]
        )
        by_wait = defaultdict(list)
        for routing_id, _, synced_at in rows:
            by_wait[recheck_seconds((now - synced_at).total_seconds())].append(routing_id)
        for wait, routing_ids in sorted(by_wait.items()):
            JobRouting.objects.filter(id__in=routing_ids).update(
                status_checked_at=now, status_check_due_at=now + timedelta(seconds=wait)
            )
    return [(routing_id, company_id) for routing_id, company_id, _ in rows]


def routings_poll_claimed(*, routing_ids: Sequence, claimed_at: datetime) -> dict:
    """Poll the routings of one claimed chunk (the poll task's work): those still synced, not
    declined and still held by the claim made at ``claimed_at``; the others were completed or
    declined meanwhile or claimed again, and are left. Returns the counts of ``routings_poll``."""
    # Read by primary key alone and checked here, as a sync claims: with sync_status in the
    # statement, PostgreSQL planned on statistics that a burst had made stale (100,000 routings
    # synced by a nightly run, the last analyze seeing none) and scanned every synced routing
    # for each chunk, 120 ms a chunk instead of 0.1 ms.
    routings = [
        routing
        for routing in JobRouting.objects.filter(id__in=list(routing_ids)).select_related("company")
        if routing.is_in_backsync and routing.status_checked_at == claimed_at
    ]
    return routings_poll(routings=routings)


def routings_backsync(*, now: datetime | None = None, limit: int | None = None) -> dict:
    """The polling back-sync in this process (tests, a shell): claim the due routings and poll
    every chunk here instead of enqueueing it. Returns the summed counts of ``routings_poll``."""
    counts = Counter(checked=0, completed=0, declined=0, errors=0)

    def poll(routing_ids, claimed_at):
        counts.update(routings_poll_claimed(routing_ids=routing_ids, claimed_at=claimed_at))

    routings_backsync_dispatch(dispatch=poll, now=now, limit=limit)
    return dict(counts)


def routings_poll(*, routings: Sequence[JobRouting], now: datetime | None = None) -> dict:
    """Ask the routings' providers about them, in one batch call per company and chunk of
    ``BACKSYNC_BATCH_SIZE``: complete those reported completed (a completion without a time is
    taken as ``now``), decline those reported cancelled, and record the provider's job id and
    number where a report brings new ones. Declined routings given here are left out. Returns
    counts: checked, completed, declined, errors (routings whose provider call failed or whose
    job the provider did not report: logged, and asked about again at their next check). The
    routings' companies should be loaded with them."""
    now = now or timezone.now()
    counts = Counter(checked=0, completed=0, declined=0, errors=0)
    by_company = defaultdict(list)
    for routing in routings:
        if routing.declined_at is None:
            by_company[routing.company_id].append(routing)
    size = settings.BACKSYNC_BATCH_SIZE
    for company_routings in by_company.values():
        for start in range(0, len(company_routings), size):
            counts.update(_poll_batch(company_routings[start : start + size], now=now))
    return dict(counts)


def _poll_batch(routings: list[JobRouting], *, now: datetime) -> dict:
    """One company's routings: one batch call, and one transaction for what it reported: the
    provider's job ids and numbers in one statement, a conditional update per completion and
    per decline, the company's load once."""
    company = routings[0].company
    try:
        statuses = provider_for(company.provider_account()).get_job_statuses(
            external_ids=[routing.external_id for routing in routings],
            timeout=settings.SYNC_PROVIDER_TIMEOUT_SECONDS,
        )
    except (ProviderError, ProviderNotConfigured) as exc:
        logger.warning(
            "Status back-sync failed",
            extra={"company_id": str(company.id), "routings": len(routings), "error": str(exc)},
        )
        return {"checked": len(routings), "completed": 0, "declined": 0, "errors": len(routings)}
    completions, declines, renamed, unreported = [], [], [], 0
    for routing in routings:
        status = statuses.get(routing.external_id)
        if status is None:
            unreported += 1
            logger.warning(
                "Status back-sync failed",
                extra={
                    "routing_id": str(routing.id),
                    "error": f"The provider did not report on its job {routing.external_id}",
                },
            )
            continue
        if routing.provider_job_record(
            provider_job_id=status.provider_job_id,
            provider_job_number=status.provider_job_number,
            provider_status=status.provider_status,
            now=now,
        ):
            renamed.append(routing)
        if status.status == ProviderJobStatus.COMPLETED:
            completions.append((routing, status.completed_at or now, status.revenue))
        elif status.status == ProviderJobStatus.CANCELLED:
            declines.append((routing, status.reason or DECLINED_WITHOUT_REASON, now))
    completed, declined = [], []
    if renamed or completions or declines:
        with transaction.atomic():
            if renamed:
                JobRouting.objects.bulk_update(renamed, PROVIDER_JOB_FIELDS)
            completed, declined = _routings_finish(completions=completions, declines=declines)
        _finished_log(completed, declined)
    return {
        "checked": len(routings),
        "completed": len(completed),
        "declined": len(declined),
        "errors": unreported,
    }


def routing_complete(
    *, routing: JobRouting, completed_at: datetime, revenue: Decimal | None
) -> bool:
    """Record the provider's completion of a routing and roll it up into its job (see
    ``routings_complete``). Returns False when the routing was already completed (a repeated
    report)."""
    return bool(routings_complete(completions=[(routing, completed_at, revenue)]))


def routings_complete(
    *, completions: Sequence[tuple[JobRouting, datetime, Decimal | None]]
) -> list[JobRouting]:
    """Record providers' completions, ``(routing, completed_at, revenue)``, and roll them up
    into their jobs, in one transaction: each job is completed, at its latest routing
    completion, with the revenue of all its completed routings. Returns the routings completed
    here; one already completed (a repeated report) or never synced changes nothing."""
    if not completions:
        return []
    with transaction.atomic():
        completed, _ = _routings_finish(completions=completions, declines=())
    _finished_log(completed, [])
    return [routing for routing, _ in completed]


def routing_decline(*, routing: JobRouting, reason: str, declined_at: datetime) -> bool:
    """Record that the routing's company turned the work down (see ``routings_decline``).
    Returns False when it was already declined, completed, or never synced."""
    return bool(routings_decline(declines=[(routing, reason, declined_at)]))


def routings_decline(*, declines: Sequence[tuple[JobRouting, str, datetime]]) -> list[JobRouting]:
    """Record companies' declines, ``(routing, reason, declined_at)``, in one transaction: each
    routing keeps its status, gets its ``declined_at`` and ``decline_reason``, leaves the
    back-sync, and its company's load is released, once, as a completion releases it. Its job
    is left as it is. Returns the routings declined here; one already declined or completed, or
    never synced, changes nothing."""
    if not declines:
        return []
    with transaction.atomic():
        _, declined = _routings_finish(completions=(), declines=declines)
    _finished_log([], declined)
    return [routing for routing, _ in declined]


def _routings_finish(*, completions, declines) -> tuple[list, list]:
    """Complete and decline routings, release their companies' load in one change, and roll
    the completions up into their jobs. Must run inside a transaction. Returns the pairs
    (routing, revenue) completed and (routing, reason) declined here."""
    now = timezone.now()
    completed = [
        (routing, revenue)
        for routing, completed_at, revenue in completions
        if JobRouting.mark_completed(
            routing.id, completed_at=completed_at, revenue=revenue, now=now
        )
    ]
    declined = [
        (routing, reason)
        for routing, reason, declined_at in declines
        if JobRouting.mark_declined(routing.id, reason=reason, declined_at=declined_at, now=now)
    ]
    finished = [routing for routing, _ in completed + declined]
    if finished:
        company_loads_change((routing.company_id, -1) for routing in finished)
    if completed:
        jobs_roll_up(job_ids={routing.job_id for routing, _ in completed}, now=now)
    if finished:
        webhooks_notify(_finished_notifications(completed, declined, completions, declines))
    return completed, declined


def _finished_notifications(completed, declined, completions, declines) -> list[Notification]:
    """``routing.completed`` and ``routing.declined`` to the routing's company and its job's
    requester, and ``job.completed`` for each job completed (``job_completed_notifications``),
    from the jobs as the roll-up left them: one query."""
    completed_at = {routing.id: at for routing, at, _ in completions}
    declined_at = {routing.id: at for routing, _, at in declines}
    jobs = {
        job_id: (requester_id, job_completed_at, revenue)
        for job_id, requester_id, job_completed_at, revenue in Job.objects.filter(
            id__in={routing.job_id for routing, _ in completed + declined}
        ).values_list("id", "created_by_company_id", "completed_at", "revenue")
    }
    notifications = []
    for routing, revenue in completed:
        notifications += routing_notifications(
            WebhookEvent.ROUTING_COMPLETED,
            routing=routing,
            requester_id=jobs[routing.job_id][0],
            data={
                "status": SyncStatus.COMPLETED,
                "completed_at": completed_at[routing.id],
                "revenue": revenue,
            },
        )
    for routing, reason in declined:
        notifications += routing_notifications(
            WebhookEvent.ROUTING_DECLINED,
            routing=routing,
            requester_id=jobs[routing.job_id][0],
            data={"declined_at": declined_at[routing.id], "reason": reason},
        )
    by_job = defaultdict(list)
    for routing, revenue in completed:
        by_job[routing.job_id].append((routing.id, routing.company_id, revenue))
    for job_id, routings in by_job.items():
        requester_id, job_completed_at, job_revenue = jobs[job_id]
        notifications += job_completed_notifications(
            job_id=job_id,
            requester_id=requester_id,
            completed_at=job_completed_at,
            revenue=job_revenue,
            routings=routings,
        )
    return notifications


def _finished_log(completed: list, declined: list) -> None:
    for routing, revenue in completed:
        logger.info(
            "Routing completed",
            extra={
                "routing_id": str(routing.id),
                "job_id": str(routing.job_id),
                "revenue": revenue,
            },
        )
    for routing, reason in declined:
        logger.info(
            "Routing declined",
            extra={"routing_id": str(routing.id), "job_id": str(routing.job_id), "reason": reason},
        )


def jobs_roll_up(*, job_ids, now: datetime) -> None:
    """Each job completed at its latest routing completion, with the revenue summed over its
    completed routings. Must run inside the transaction that completed the routings.

    The jobs are locked first, in id order, by a statement of their own. Routings of one job go
    to different companies, so different chunks complete them at once: the lock makes the
    second wait for the first's commit, and its roll-up, a later statement, then reads the
    first's completions too (under READ COMMITTED, an UPDATE that waited for a row still sums
    with the snapshot it started with, and would drop them). The order keeps two batches of
    the same jobs from deadlocking."""
    job_ids = sorted(job_ids)
    if connection.features.has_select_for_update:
        jobs = Job.objects.filter(id__in=job_ids).order_by("id")
        list(jobs.select_for_update(no_key=True).values_list("id", flat=True))
    completed = (
        JobRouting.objects.filter(job_id=OuterRef("id"), sync_status=SyncStatus.COMPLETED)
        .order_by()
        .values("job_id")
    )
    Job.objects.filter(id__in=job_ids).update(
        status=JobStatus.COMPLETED,
        completed_at=Subquery(completed.annotate(latest=Max("completed_at")).values("latest")),
        revenue=Subquery(completed.annotate(total=Sum("revenue")).values("total")),
        updated_at=now,
    )


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
    completes the routing (and rolls up into the job), a cancellation declines it; any other
    status is recorded only. The provider's job id and number are stored when the update
    brings new ones. With ``company_id`` (the account whose secret signed the webhook), only
    that company's routings are considered: one company's system cannot complete another's
    routing.

    ``applied`` is "completed", "declined" or "recorded"; a completion bringing the revenue of
    a routing completed without one is "revenue recorded"; any other completion or
    cancellation of a routing that has already ended answers how it ended ("already
    completed", "already declined") and changes nothing; "unknown job" names no routing of
    ours."""
    routing = routing_for_update(update, company_id=company_id)
    if routing is None:
        return {"applied": "unknown job", "routingId": None}
    now = timezone.now()
    final = update.status in (ProviderJobStatus.COMPLETED, ProviderJobStatus.CANCELLED)
    if routing.provider_job_record(
        provider_job_id=update.provider_job_id,
        provider_job_number=update.provider_job_number,
        provider_status=update.provider_status,
        now=now,
    ):
        # Webhooks arrive in any order: an earlier step (work started) delivered after the
        # routing was completed or declined must not write its status over the final one.
        rows = JobRouting.objects.filter(id=routing.id)
        if not final:
            rows = rows.filter(sync_status__in=JobRouting.COMPLETABLE_STATUSES, declined_at=None)
        rows.update(**{name: getattr(routing, name) for name in PROVIDER_JOB_FIELDS})
    if update.status == ProviderJobStatus.COMPLETED:
        applied = routing_complete(
            routing=routing, completed_at=update.completed_at or now, revenue=update.revenue
        )
        outcome = "completed"
    elif update.status == ProviderJobStatus.CANCELLED:
        applied = routing_decline(
            routing=routing, reason=update.reason or DECLINED_WITHOUT_REASON, declined_at=now
        )
        outcome = "declined"
    else:
        return {"applied": "recorded", "routingId": str(routing.id)}
    revenue_late = not applied and outcome == "completed" and update.revenue is not None
    if revenue_late and routing_revenue_record(routing=routing, revenue=update.revenue):
        return {"applied": "revenue recorded", "routingId": str(routing.id)}
    if not applied:
        outcome = _ended_as(routing)
    return {"applied": outcome, "routingId": str(routing.id)}


def routing_revenue_record(*, routing: JobRouting, revenue: Decimal) -> bool:
    """A completed routing's revenue, reported after its completion, rolled up into its job.
    False when the routing is not completed or already has a revenue."""
    now = timezone.now()
    with transaction.atomic():
        if not JobRouting.mark_revenue(routing.id, revenue=revenue, now=now):
            return False
        jobs_roll_up(job_ids={routing.job_id}, now=now)
    logger.info(
        "Routing revenue recorded",
        extra={"routing_id": str(routing.id), "job_id": str(routing.job_id), "revenue": revenue},
    )
    return True


def _ended_as(routing: JobRouting) -> str:
    """How a routing that a completion or a cancellation left unchanged stands now."""
    routing.refresh_from_db(fields=["sync_status", "declined_at"])
    if routing.is_declined:
        return "already declined"
    if routing.sync_status == SyncStatus.COMPLETED:
        return "already completed"
    return "recorded"  # never synced: nothing to end


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

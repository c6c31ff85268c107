"""Pushing routings into the receiving companies' field-service systems (DESIGN.md "The core
flow", steps 3 and 4): the sync, its retry policy and dead-letter queue, requeueing, and the
back-sync of completions.

A sync never holds a database transaction across a provider call. It claims its routings
(``processing``, ``claimed_at``) in one short transaction, calls the providers, then records
every outcome in a second one, only for routings it still holds. If the process dies or loses
the database in between, the routings and their events stay claimed until the lease expires and
a relay hands them out again; the provider sees the same idempotency key (the routing id) and
creates nothing twice.
"""

import logging
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, close_old_connections, connection, transaction
from django.db.models import F, Max, Q, Sum
from django.utils import timezone

from integrations.providers import (
    ProviderError,
    ProviderJobStatus,
    ProviderNotConfigured,
    provider_for,
    provider_type_for,
)
from jobs.models import Company, CompanySkill, Job, JobSkill, JobStatus, SkillLevel
from routing.models import JobRouting, OutboxEvent, OutboxStatus, SyncAttempt, SyncStatus
from tradeengage.exceptions import BusinessRuleError

logger = logging.getLogger("routing")

OPEN_EVENT = Q(status__in=[OutboxStatus.PENDING, OutboxStatus.PROCESSING])


@dataclass
class Attempt:
    """What one provider call for a claimed routing came to."""

    routing: JobRouting
    provider: str
    outcome: str
    started_at: datetime
    duration_ms: int
    external_id: str | None = None
    error: str = ""
    retry_after: float | None = None


def retry_delay(*, retries_so_far: int, retry_after: float | None = None) -> float | None:
    """Seconds until the next attempt after a retryable failure, or None when the retries are
    used up. The schedule is ``SYNC_RETRY_BACKOFF_SECONDS``; a provider's Retry-After is honoured
    when longer, up to ``SYNC_MAX_RETRY_AFTER_SECONDS``."""
    schedule = settings.SYNC_RETRY_BACKOFF_SECONDS
    if retries_so_far >= len(schedule):
        return None
    delay = schedule[retries_so_far]
    if retry_after:
        delay = max(delay, min(retry_after, settings.SYNC_MAX_RETRY_AFTER_SECONDS))
    return delay


def outbox_events_sync(
    *, event_ids: list[int], claimed_at: datetime, now: datetime | None = None
) -> dict[str, int]:
    """Sync the routings of the ``job_sync`` events a relay claimed at ``claimed_at``.

    Events no longer claimed at that instant (finished, or taken again after their lease
    expired) are left alone. Returns the number of routings per outcome.
    """
    now = now or timezone.now()
    events = list(
        OutboxEvent.objects.filter(
            id__in=event_ids, status=OutboxStatus.PROCESSING, claimed_at=claimed_at
        )
    )
    unknown = [e.id for e in events if e.event_type != OutboxEvent.JOB_SYNC]
    if unknown:
        OutboxEvent.objects.filter(id__in=unknown).update(
            status=OutboxStatus.DEAD, processed_at=now, last_error="No handler for this event type."
        )
    events = {e.aggregate_id: e for e in events if e.event_type == OutboxEvent.JOB_SYNC}
    claimed, settled = routings_claim(routing_ids=list(events), now=now)
    _events_settle(settled, events, now=now)
    attempts = _providers_call(claimed, timeout=settings.SYNC_PROVIDER_TIMEOUT_SECONDS)
    _attempts_record(attempts, events, claimed_at=now, now=timezone.now())
    counts = {"skipped": len(events) - len(claimed)}
    for attempt in attempts:
        counts[attempt.outcome] = counts.get(attempt.outcome, 0) + 1
    return counts


def routing_sync_now(*, routing: JobRouting) -> JobRouting:
    """Sync one routing within the caller's time (POST /jobs/{id}/sync, the admin's "Retry now").

    A routing already synced or completed is returned unchanged, and so is one another worker
    is syncing right now. A failed one (in the dead-letter queue) is tried again, its dead event
    reopened. The provider call is bounded by ``SYNC_REQUEST_TIMEOUT_SECONDS``; a retryable
    failure schedules the next attempt as the worker would.
    """
    now = timezone.now()
    if routing.sync_status == SyncStatus.FAILED and _routings_revive([routing.id]):
        OutboxEvent.objects.filter(id=_latest_dead_event_ids([routing.id]).get(routing.id)).update(
            status=OutboxStatus.PROCESSING, claimed_at=now, processed_at=None
        )
    event = OutboxEvent.objects.filter(OPEN_EVENT, aggregate_id=routing.id).order_by("id").first()
    events = {routing.id: event} if event else {}
    claimed, settled = routings_claim(routing_ids=[routing.id], now=now)
    _events_settle(settled, events, now=now)
    if claimed:
        attempts = _providers_call(claimed, timeout=settings.SYNC_REQUEST_TIMEOUT_SECONDS)
        _attempts_record(attempts, events, claimed_at=now, now=timezone.now(), event_for_each=True)
    routing.refresh_from_db()
    return routing


def _routings_revive(routing_ids: list) -> list:
    """Failed routings back to pending for a fresh round of attempts, their companies' load
    counting them again. Returns the ids that were failed."""
    with transaction.atomic():
        failed = JobRouting.objects.filter(id__in=routing_ids, sync_status=SyncStatus.FAILED)
        if connection.vendor == "postgresql":
            failed = failed.select_for_update(of=("self",))
        revived = list(failed.values_list("id", "company_id"))
        if not revived:
            return []
        JobRouting.objects.filter(id__in=[r for r, _ in revived]).update(
            sync_status=SyncStatus.PENDING,
            retry_count=0,
            next_retry_at=None,
            updated_at=timezone.now(),
        )
        per_company = Counter(company_id for _, company_id in revived)
        for company_id in sorted(per_company):
            Company.objects.filter(id=company_id).update(
                open_routing_count=F("open_routing_count") + per_company[company_id]
            )
    return [r for r, _ in revived]


def _latest_dead_event_ids(routing_ids: list) -> dict:
    rows = (
        OutboxEvent.objects.filter(
            aggregate_id__in=routing_ids,
            event_type=OutboxEvent.JOB_SYNC,
            status=OutboxStatus.DEAD,
        )
        .values("aggregate_id")
        .annotate(latest=Max("id"))
    )
    return {row["aggregate_id"]: row["latest"] for row in rows}


def routing_manual_sync(*, job: Job, company_id) -> JobRouting:
    """POST /jobs/{id}/sync: sync the job's routing to a company now, routing the job to it
    first (a manual route) when it has none and the company may receive it: active, accepting
    jobs, not the requester. Anything else is a business-rule error."""
    routing = (
        JobRouting.objects.select_related("job", "company")
        .filter(job=job, company_id=company_id)
        .first()
    )
    if routing is None:
        routing = _manual_route(job=job, company_id=company_id)
    return routing_sync_now(routing=routing)


def _manual_route(*, job: Job, company_id) -> JobRouting:
    company = Company.objects.filter(id=company_id).first()
    if company is None:
        raise BusinessRuleError(f"Company {company_id} does not exist.", field="company_id")
    if company.id == job.created_by_company_id:
        raise BusinessRuleError(
            "A job is never routed to the company that requested it.", field="company_id"
        )
    if not (company.is_active and company.accepts_jobs):
        raise BusinessRuleError(
            f"Company {company_id} is not active or does not accept jobs.", field="company_id"
        )
    if job.status in (JobStatus.COMPLETED, JobStatus.CANCELLED):
        raise BusinessRuleError(f"Job {job.id} is {job.status}; it takes no new routings.")
    required = dict(JobSkill.objects.filter(job=job).values_list("skill__slug", "level"))
    held = dict(
        CompanySkill.objects.filter(company=company, skill__slug__in=required).values_list(
            "skill__slug", "level"
        )
    )
    matched = [slug for slug, level in required.items() if held.get(slug, 0) >= level]
    missing = [slug for slug in required if slug not in matched]
    reason = "Manual route through POST /jobs/{id}/sync"
    if required:
        reason += f"; holds {len(matched)} of {len(required)} required skills"
        reason += "".join(
            f"; {slug} {SkillLevel(held[slug]).label if slug in held else 'not held'}"
            f" (needs {SkillLevel(required[slug]).label})"
            for slug in missing
        )
    try:
        with transaction.atomic():
            routing = JobRouting.objects.create(
                job=job,
                company=company,
                matching_score=round(2.0 * len(matched) / len(required), 2) if required else 0.0,
                matched_skills=matched,
                missing_skills=missing,
                match_reason=reason,
            )
            OutboxEvent.objects.create(**job_sync_event(routing))
            Company.objects.filter(id=company.id).update(
                open_routing_count=F("open_routing_count") + 1
            )
    except IntegrityError:
        # Routed to the same company by a concurrent request a moment ago.
        routing = JobRouting.objects.get(job=job, company=company)
    logger.info(
        "Manual route created",
        extra={"routing_id": str(routing.id), "job_id": str(job.id), "company_id": str(company.id)},
    )
    return routing


def routings_claim(*, routing_ids: list, now: datetime):
    """Take the routings that need a sync: pending ones, and ones whose sync died (claimed
    longer ago than the lease). Returns (claimed routings with job and company, {routing id:
    status} for the others: already synced, completed, failed, or busy with another worker)."""
    if not routing_ids:
        return [], {}
    lease_cutoff = now - timedelta(seconds=settings.OUTBOX_LEASE_SECONDS)
    with transaction.atomic():
        routings = JobRouting.objects.filter(id__in=routing_ids).select_related("job", "company")
        if connection.vendor == "postgresql":
            routings = routings.select_for_update(skip_locked=True, of=("self",))
        claimed, settled = [], {}
        for routing in routings:
            takeable = routing.sync_status == SyncStatus.PENDING or (
                routing.sync_status == SyncStatus.PROCESSING
                and (routing.claimed_at is None or routing.claimed_at < lease_cutoff)
            )
            if takeable:
                claimed.append(routing)
            else:
                settled[routing.id] = routing.sync_status
        if claimed:
            JobRouting.objects.filter(id__in=[r.id for r in claimed]).update(
                sync_status=SyncStatus.PROCESSING, last_sync_attempt=now, claimed_at=now
            )
    for routing_id in routing_ids:
        if routing_id not in settled and all(r.id != routing_id for r in claimed):
            settled[routing_id] = "busy"  # locked by another sync right now, or deleted
    return claimed, settled


def _events_settle(settled: dict, events: dict, *, now: datetime) -> None:
    """Close the events of routings that needed no sync: done when already synced, dead when
    the routing failed meanwhile, due again after the lease when another sync holds it."""
    done = [events[r].id for r, s in settled.items() if r in events and s in _FINISHED]
    dead = [events[r].id for r, s in settled.items() if r in events and s == SyncStatus.FAILED]
    busy = [events[r].id for r, s in settled.items() if r in events and s not in _SETTLED]
    if done:
        OutboxEvent.objects.filter(id__in=done).update(status=OutboxStatus.DONE, processed_at=now)
    if dead:
        OutboxEvent.objects.filter(id__in=dead).update(status=OutboxStatus.DEAD, processed_at=now)
    if busy:
        OutboxEvent.objects.filter(id__in=busy).update(
            status=OutboxStatus.PENDING,
            claimed_at=None,
            available_at=now + timedelta(seconds=settings.OUTBOX_LEASE_SECONDS),
        )


_FINISHED = {SyncStatus.SYNCED, SyncStatus.COMPLETED}
_SETTLED = {*_FINISHED, SyncStatus.FAILED}

_executor: ThreadPoolExecutor | None = None


def _providers_call(routings: list[JobRouting], *, timeout: float) -> list[Attempt]:
    """Call each routing's provider; with more than one, side by side in a thread pool of
    ``SYNC_CALL_CONCURRENCY`` so a slow provider's waits overlap."""
    global _executor
    concurrency = settings.SYNC_CALL_CONCURRENCY
    if concurrency <= 1 or len(routings) <= 1:
        return [_provider_call(routing, timeout=timeout) for routing in routings]
    if _executor is None or _executor._max_workers != concurrency:
        _executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="sync-call")
    return list(_executor.map(lambda routing: _pooled_provider_call(routing, timeout), routings))


def _pooled_provider_call(routing: JobRouting, timeout: float) -> Attempt:
    """A provider call on one of the pool's threads, which live as long as the worker: their
    database connections (the mock provider's, a token cache's) are recycled as a task's are,
    so one the server dropped is not kept failing every call after it."""
    close_old_connections()
    return _provider_call(routing, timeout=timeout)


def _provider_call(routing: JobRouting, *, timeout: float) -> Attempt:
    started_at = timezone.now()
    clock = time.monotonic()
    provider_type = provider_type_for(routing.company)
    try:
        provider = provider_for(routing.company)
        external_id = provider.create_job(
            routing=routing, idempotency_key=str(routing.id), timeout=timeout
        )
        outcome = dict(outcome=SyncAttempt.Outcome.SYNCED, external_id=external_id)
    except ProviderNotConfigured as exc:
        outcome = dict(outcome=SyncAttempt.Outcome.WAITING, error=str(exc))
    except ProviderError as exc:
        outcome = dict(
            outcome=SyncAttempt.Outcome.RETRY if exc.retryable else SyncAttempt.Outcome.FAILED,
            error=str(exc) or exc.__class__.__name__,
            retry_after=exc.retry_after,
        )
    except Exception as exc:
        # A bug or an unexpected answer in a provider: retried like a transient failure, and
        # logged with its traceback.
        logger.exception("Provider call raised", extra={"routing_id": str(routing.id)})
        outcome = dict(outcome=SyncAttempt.Outcome.RETRY, error=f"{exc.__class__.__name__}: {exc}")
    return Attempt(
        routing=routing,
        provider=provider_type,
        started_at=started_at,
        duration_ms=round((time.monotonic() - clock) * 1000),
        **outcome,
    )


def _attempts_record(
    attempts: list[Attempt],
    events: dict,
    *,
    claimed_at: datetime,
    now: datetime,
    event_for_each: bool = False,
) -> None:
    """Store what the provider calls came to, for the routings this sync still holds, with
    their events: synced → event done; retry → routing pending and event due at the next
    attempt; failed → routing failed and event dead (the dead-letter queue); waiting → both
    pending until the next look. ``event_for_each`` adds an event where a routing has none (a
    manual sync of a routing created without one), so its retry is not lost."""
    if not attempts:
        return
    with transaction.atomic():
        still_ours = JobRouting.objects.filter(
            id__in=[a.routing.id for a in attempts],
            sync_status=SyncStatus.PROCESSING,
            claimed_at=claimed_at,
        )
        if connection.vendor == "postgresql":
            still_ours = still_ours.select_for_update(of=("self",))
        ours = set(still_ours.values_list("id", flat=True))
        attempts = [a for a in attempts if a.routing.id in ours]
        if event_for_each:
            for attempt in attempts:
                if attempt.routing.id not in events:
                    events[attempt.routing.id] = OutboxEvent.objects.create(
                        **job_sync_event(attempt.routing), status=OutboxStatus.PROCESSING
                    )
        routings, closed_events, history = [], [], []
        freed_companies = []
        for attempt in attempts:
            routing, event = attempt.routing, events.get(attempt.routing.id)
            number = routing.retry_count + 1
            outcome = _apply(attempt, routing, event, now=now)
            history.append(
                SyncAttempt(
                    routing=routing,
                    number=number,
                    provider=attempt.provider,
                    outcome=outcome,
                    error=attempt.error,
                    started_at=attempt.started_at,
                    duration_ms=attempt.duration_ms,
                )
            )
            if outcome == SyncAttempt.Outcome.FAILED:
                freed_companies.append(routing.company_id)
            routings.append(routing)
            if event is not None:
                closed_events.append(event)
            _log(attempt, outcome, number=number)
        _routings_store(routings, now=now)
        _events_store(closed_events, now=now)
        SyncAttempt.objects.bulk_create(history)
        for company_id in sorted(freed_companies):
            Company.objects.filter(id=company_id, open_routing_count__gt=0).update(
                open_routing_count=F("open_routing_count") - 1
            )


def _routings_store(routings: list[JobRouting], *, now: datetime) -> None:
    """Write the routings' new sync state: the synced ones (nearly all of a batch) with one
    update of their shared values and one of their external ids, the others field by field."""
    synced = [r for r in routings if r.sync_status == SyncStatus.SYNCED]
    if synced:
        JobRouting.objects.filter(id__in=[r.id for r in synced]).update(
            sync_status=SyncStatus.SYNCED,
            last_synced_at=now,
            next_retry_at=None,
            error_message=None,
            claimed_at=None,
            updated_at=now,
        )
        JobRouting.objects.bulk_update(synced, ["external_id"])
    others = [r for r in routings if r.sync_status != SyncStatus.SYNCED]
    if others:
        JobRouting.objects.bulk_update(others, ROUTING_SYNC_FIELDS)


def _events_store(events: list[OutboxEvent], *, now: datetime) -> None:
    done = [e for e in events if e.status == OutboxStatus.DONE]
    if done:
        OutboxEvent.objects.filter(id__in=[e.id for e in done]).update(
            status=OutboxStatus.DONE, processed_at=now, claimed_at=None
        )
    others = [e for e in events if e.status != OutboxStatus.DONE]
    if others:
        OutboxEvent.objects.bulk_update(others, EVENT_SYNC_FIELDS)


ROUTING_SYNC_FIELDS = [
    "sync_status",
    "external_id",
    "last_synced_at",
    "retry_count",
    "next_retry_at",
    "error_message",
    "claimed_at",
    "updated_at",
]
EVENT_SYNC_FIELDS = ["status", "available_at", "claimed_at", "processed_at", "last_error"]


def _apply(attempt: Attempt, routing: JobRouting, event: OutboxEvent | None, *, now) -> str:
    """Set the routing's and its event's fields for the attempt's outcome; returns the outcome,
    which turns from retry to failed when the retries are used up."""
    routing.claimed_at = None
    routing.updated_at = now
    outcome = attempt.outcome
    if outcome == SyncAttempt.Outcome.SYNCED:
        routing.sync_status = SyncStatus.SYNCED
        routing.external_id = attempt.external_id
        routing.last_synced_at = now
        routing.next_retry_at = None
        routing.error_message = None
        _event_close(event, OutboxStatus.DONE, now=now)
        return outcome
    if outcome == SyncAttempt.Outcome.WAITING:
        wait = settings.SYNC_UNCONFIGURED_RECHECK_SECONDS
        _routing_wait(routing, event, attempt.error, seconds=wait, now=now)
        return outcome
    if outcome == SyncAttempt.Outcome.RETRY:
        delay = retry_delay(retries_so_far=routing.retry_count, retry_after=attempt.retry_after)
        if delay is not None:
            routing.retry_count += 1
            _routing_wait(routing, event, attempt.error, seconds=delay, now=now)
            return outcome
        outcome = attempt.outcome = SyncAttempt.Outcome.FAILED
    routing.sync_status = SyncStatus.FAILED
    routing.next_retry_at = None
    routing.error_message = attempt.error
    _event_close(event, OutboxStatus.DEAD, now=now, error=attempt.error)
    return outcome


def _routing_wait(routing, event, error: str, *, seconds: float, now: datetime) -> None:
    routing.sync_status = SyncStatus.PENDING
    routing.next_retry_at = now + timedelta(seconds=seconds)
    routing.error_message = error
    if event is not None:
        event.status = OutboxStatus.PENDING
        event.available_at = routing.next_retry_at
        event.claimed_at = None
        event.last_error = error


def _event_close(event, status: str, *, now: datetime, error: str = "") -> None:
    if event is not None:
        event.status = status
        event.processed_at = now
        event.claimed_at = None
        if error:
            event.last_error = error


def _log(attempt: Attempt, outcome: str, *, number: int) -> None:
    routing = attempt.routing
    logger.log(
        logging.INFO if outcome == SyncAttempt.Outcome.SYNCED else logging.WARNING,
        "Sync attempt",
        extra={
            "routing_id": str(routing.id),
            "job_id": str(routing.job_id),
            "company_id": str(routing.company_id),
            "provider": attempt.provider,
            "attempt": number,
            "outcome": outcome,
            "duration_ms": attempt.duration_ms,
            "error": attempt.error or None,
        },
    )


def job_sync_event(routing: JobRouting) -> dict:
    """The fields of a routing's ``job_sync`` outbox event (seed 000 "Outbox Events")."""
    return {
        "event_type": OutboxEvent.JOB_SYNC,
        "aggregate_id": routing.id,
        "event_data": {
            "routing_id": str(routing.id),
            "job_id": str(routing.job_id),
            "company_id": str(routing.company_id),
            "matching_score": routing.matching_score,
            "matched_skills": routing.matched_skills,
            "provider_type": provider_type_for(routing.company),
        },
    }


def routings_requeue(*, routing_ids: list) -> list:
    """Send routings back to the outbox for a fresh round of attempts: failed ones (the
    dead-letter queue) and pending ones waiting for a retry. Their latest dead or waiting event
    is made due now (a routing without one gets a new one). Synced, completed and in-flight
    routings are left alone. A few statements per call, whatever the number of routings;
    returns the ids requeued."""
    now = timezone.now()
    with transaction.atomic():
        revived = _routings_revive(routing_ids)
        waiting = JobRouting.objects.filter(id__in=routing_ids, sync_status=SyncStatus.PENDING)
        if connection.vendor == "postgresql":
            waiting = waiting.select_for_update(of=("self",))
        requeued = list(waiting.values_list("id", flat=True))
        if not requeued:
            return []
        JobRouting.objects.filter(id__in=requeued).update(
            retry_count=0, next_retry_at=None, updated_at=now
        )
        OutboxEvent.objects.filter(
            aggregate_id__in=requeued, event_type=OutboxEvent.JOB_SYNC, status=OutboxStatus.PENDING
        ).update(available_at=now)
        OutboxEvent.objects.filter(id__in=list(_latest_dead_event_ids(revived).values())).update(
            status=OutboxStatus.PENDING, available_at=now, claimed_at=None, processed_at=None
        )
        with_event = set(
            OutboxEvent.objects.filter(OPEN_EVENT, aggregate_id__in=requeued).values_list(
                "aggregate_id", flat=True
            )
        )
        without = JobRouting.objects.filter(
            id__in=[r for r in requeued if r not in with_event]
        ).select_related("company")
        OutboxEvent.objects.bulk_create(OutboxEvent(**job_sync_event(r)) for r in without)
    from routing.outbox import outbox_relay_kick

    transaction.on_commit(outbox_relay_kick, robust=True)
    logger.info("Routings requeued", extra={"routings": len(requeued)})
    return requeued


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
            status = provider_for(routing.company).get_job_status(
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
        changed = JobRouting.objects.filter(
            id=routing.id, sync_status__in=[SyncStatus.SYNCED, SyncStatus.PROCESSING]
        ).update(
            sync_status=SyncStatus.COMPLETED,
            completed_at=completed_at,
            revenue=revenue,
            updated_at=timezone.now(),
        )
        if not changed:
            return False
        Company.objects.filter(id=routing.company_id, open_routing_count__gt=0).update(
            open_routing_count=F("open_routing_count") - 1
        )
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

"""Pushing routings into the receiving companies' field-service systems (DESIGN.md "The core
flow", step 3), with retries by ``routing.retry`` and the dead-letter queue.

A sync never holds a database transaction across a provider call. It claims its routings
(``processing``, ``claimed_at``) in one short transaction, hands the calls to its process's call
pool (``routing.services.calls``: many in flight, each company bounded; a busy company's
routings are handed back untried), and records the outcomes in groups as they come, each group
in a transaction of its own, only for routings it still holds. Its events and routings share
one lease, renewed while its worker lives (``routing.leases``): if the process dies, they are
free one lease later and a relay hands them out again; if the task fails on an error it
survives (the database went away), it gives them back at once. The provider sees the same
idempotency key (the routing id) and creates nothing twice.
"""

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from jobs.models import Job
from routing.leases import Lease, lease_end, lease_held
from routing.models import (
    JobRouting,
    OutboxEvent,
    OutboxStatus,
    SyncAttempt,
    SyncStatus,
    WebhookEvent,
)
from routing.outbox import outbox_relay_later
from routing.retry import PROVIDER_CALL_RETRY
from routing.services.calls import Attempt, call_pool, provider_call, works_for
from routing.services.create import routing_route_manually
from routing.services.load import company_loads_change
from routing.services.requeue import OPEN_EVENT, dead_events_reopen, routings_revive
from routing.services.webhooks import Notification, routing_notifications, webhooks_notify
from tradeengage import metrics

logger = logging.getLogger("routing")


@dataclass
class Claim:
    """What a sync took, and what it found for the routings it could not take: already synced
    or completed, failed meanwhile, or busy (another sync holds its row right now, or it was
    deleted), by routing id."""

    claimed: list[JobRouting]
    finished: set = field(default_factory=set)
    failed: set = field(default_factory=set)
    busy: set = field(default_factory=set)


def outbox_events_sync(
    *, event_ids: list[int], claimed_at: datetime, now: datetime | None = None
) -> dict[str, int]:
    """Sync the routings of the ``job_sync`` events a relay claimed at ``claimed_at``.

    Events no longer claimed at that instant (finished, or taken again after their lease
    expired) are left alone. The events and the routings taken are leased to this task while it
    runs. Returns the number of routings per outcome.
    """
    now = now or timezone.now()
    with lease_held(Lease(event_ids=event_ids, event_token=claimed_at)) as lease:
        lease.renew(now=now)  # from the relay's claim to this task's start
        return _events_sync(lease, now=now)


def _events_sync(lease: Lease, *, now: datetime) -> dict[str, int]:
    events = list(
        OutboxEvent.objects.filter(
            id__in=lease.event_ids, status=OutboxStatus.PROCESSING, claimed_at=lease.event_token
        )
    )
    unknown = [e.id for e in events if e.event_type != OutboxEvent.JOB_SYNC]
    if unknown:
        OutboxEvent.objects.filter(id__in=unknown).update(
            status=OutboxStatus.DEAD, processed_at=now, last_error="No handler for this event type."
        )
    events = {e.aggregate_id: e for e in events if e.event_type == OutboxEvent.JOB_SYNC}
    claim = routings_claim(routing_ids=list(events), now=now)
    lease.routing_ids, lease.routing_token = [r.id for r in claim.claimed], now
    _events_settle(claim, events, now=now)
    calling, busy = call_pool.reserve(claim.claimed)
    counts = {"skipped": len(events) - len(claim.claimed)}
    if busy:
        routings_defer(busy, events, claimed_at=now, event_token=lease.event_token, now=now)
        counts["deferred"] = len(busy)
    calls = call_pool.start(
        calling, works_for(calling), timeout=settings.SYNC_PROVIDER_TIMEOUT_SECONDS
    )

    def record(attempts):
        _attempts_record(attempts, events, claimed_at=now, now=timezone.now())

    # Each group of outcomes is stored as it ends: a slow call holds back only its own routing.
    # Calls still running after SYNC_TASK_WAIT_SECONDS finish on a thread of their own with the
    # lease, so a hanging provider does not hold this task's worker slot for its timeout.
    until = time.monotonic() + settings.SYNC_TASK_WAIT_SECONDS
    for attempts in calls.groups(until=until):
        record(attempts)
        for attempt in attempts:
            counts[attempt.outcome] = counts.get(attempt.outcome, 0) + 1
    if calls.left:
        counts["handed_off"] = calls.left
        lease.handed_off = True
        call_pool.finish_later(calls, record=record, lease=lease)
    return counts


def routings_defer(
    routings: list[JobRouting], events: dict, *, claimed_at: datetime, event_token, now: datetime
) -> int:
    """Give back claimed routings whose company has no free call slot in this process, with
    their events, due again in ``SYNC_COMPANY_BUSY_DEFER_SECONDS``: not an attempt, so neither
    a retry counted nor an error recorded."""
    due = now + timedelta(seconds=settings.SYNC_COMPANY_BUSY_DEFER_SECONDS)
    routing_ids = [routing.id for routing in routings]
    with transaction.atomic():
        deferred = JobRouting.objects.filter(
            id__in=routing_ids, sync_status=SyncStatus.PROCESSING, claimed_at=claimed_at
        ).update(
            sync_status=SyncStatus.PENDING,
            claimed_at=None,
            lease_expires_at=None,
            next_retry_at=due,
            updated_at=now,
        )
        OutboxEvent.objects.filter(
            id__in=[events[r].id for r in routing_ids if r in events],
            status=OutboxStatus.PROCESSING,
            claimed_at=event_token,
        ).update(
            status=OutboxStatus.PENDING, claimed_at=None, lease_expires_at=None, available_at=due
        )
        if deferred:
            seconds = settings.SYNC_COMPANY_BUSY_DEFER_SECONDS
            transaction.on_commit(lambda: outbox_relay_later(seconds))
    metrics.sync_deferrals.inc(deferred)
    return deferred


def routing_sync_now(*, routing: JobRouting) -> JobRouting:
    """Sync one routing within the caller's time (POST /jobs/{id}/sync, the admin's "Retry now").

    A routing already synced or completed is returned unchanged, and so is one another worker
    is syncing right now. A failed one (in the dead-letter queue) is tried again, its dead event
    reopened. The provider call is bounded by ``SYNC_REQUEST_TIMEOUT_SECONDS``; a retryable
    failure schedules the next attempt as the worker would.
    """
    now = timezone.now()
    if routing.sync_status == SyncStatus.FAILED and routings_revive([routing.id]):
        dead_events_reopen(routing_ids=[routing.id], status=OutboxStatus.PROCESSING, now=now)
    event = OutboxEvent.objects.filter(OPEN_EVENT, aggregate_id=routing.id).order_by("id").first()
    events = {routing.id: event} if event else {}
    with lease_held(Lease()) as lease:
        claim = routings_claim(routing_ids=[routing.id], now=now)
        lease.routing_ids, lease.routing_token = [r.id for r in claim.claimed], now
        _events_settle(claim, events, now=now)
        if claim.claimed:
            works = works_for(claim.claimed)
            attempts = [
                provider_call(r, works[r.id], timeout=settings.SYNC_REQUEST_TIMEOUT_SECONDS)
                for r in claim.claimed
            ]
            _attempts_record(
                attempts, events, claimed_at=now, now=timezone.now(), event_for_each=True
            )
    routing.refresh_from_db()
    return routing


def routing_manual_sync(
    *, job: Job, company_id, routed_by: str, require_skills: bool = True
) -> JobRouting:
    """POST /jobs/{id}/sync: sync the job's routing to a company now, routing the job to it
    first (``routing_route_manually``, by ``routed_by``) when it has none."""
    routing = (
        JobRouting.objects.select_related("job", "company")
        .filter(job=job, company_id=company_id)
        .first()
    )
    if routing is None:
        routing = routing_route_manually(
            job=job, company_id=company_id, routed_by=routed_by, require_skills=require_skills
        )
    return routing_sync_now(routing=routing)


def routings_claim(*, routing_ids: list, now: datetime) -> Claim:
    """Take the routings that need a sync (``JobRouting.is_takeable``), with their job and
    company, as ``processing`` claimed at ``now`` and leased for one lease."""
    claim = Claim(claimed=[])
    if not routing_ids:
        return claim
    with transaction.atomic():
        routings = JobRouting.objects.filter(id__in=routing_ids).select_related(
            "job__category", "company"
        )
        if connection.vendor == "postgresql":
            routings = routings.select_for_update(skip_locked=True, of=("self",))
        for routing in routings:
            if routing.is_takeable(now=now):
                claim.claimed.append(routing)
            elif routing.is_finished:
                claim.finished.add(routing.id)
            elif routing.sync_status == SyncStatus.FAILED:
                claim.failed.add(routing.id)
            else:
                claim.busy.add(routing.id)
        if claim.claimed:
            JobRouting.objects.filter(id__in=[r.id for r in claim.claimed]).update(
                sync_status=SyncStatus.PROCESSING,
                last_sync_attempt=now,
                claimed_at=now,
                lease_expires_at=lease_end(now),
            )
    seen = {r.id for r in claim.claimed} | claim.finished | claim.failed | claim.busy
    claim.busy.update(routing_id for routing_id in routing_ids if routing_id not in seen)
    return claim


def _events_settle(claim: Claim, events: dict, *, now: datetime) -> None:
    """Close the events of routings that needed no sync: done when already synced, dead when
    the routing failed meanwhile, due again after the lease when another sync holds it."""
    done = [events[r].id for r in claim.finished if r in events]
    dead = [events[r].id for r in claim.failed if r in events]
    busy = [events[r].id for r in claim.busy if r in events]
    if done:
        OutboxEvent.objects.filter(id__in=done).update(status=OutboxStatus.DONE, processed_at=now)
    if dead:
        OutboxEvent.objects.filter(id__in=dead).update(status=OutboxStatus.DEAD, processed_at=now)
    if busy:
        OutboxEvent.objects.filter(id__in=busy).update(
            status=OutboxStatus.PENDING,
            claimed_at=None,
            lease_expires_at=None,
            available_at=lease_end(now),
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
                    event = OutboxEvent.for_routing(attempt.routing, status=OutboxStatus.PROCESSING)
                    event.save()
                    events[attempt.routing.id] = event
        routings, closed_events, history, freed, counted = [], [], [], [], []
        notifications = []
        for attempt in attempts:
            routing, event = attempt.routing, events.get(attempt.routing.id)
            number = routing.retry_count + 1
            outcome = _apply(attempt, routing, event, now=now)
            notifications += _notifications(routing, outcome, attempt=number)
            counted.append((attempt.provider, outcome, now - routing.created_at))
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
                freed.append((routing.company_id, -1))
            routings.append(routing)
            if event is not None:
                closed_events.append(event)
            _log(attempt, outcome, number=number)
        transaction.on_commit(lambda: _count(counted))
        waiting = [r.next_retry_at for r in routings if r.sync_status == SyncStatus.PENDING]
        if waiting:
            # A relay run when the first of them is due, whatever task or thread recorded them
            # (beat's relay entry stays the safety net).
            seconds = max(0.0, (min(waiting) - now).total_seconds())
            transaction.on_commit(lambda: outbox_relay_later(seconds))
        _routings_store(routings, now=now)
        _events_store(closed_events, now=now)
        SyncAttempt.objects.bulk_create(history)
        company_loads_change(freed)
        webhooks_notify(notifications, now=now)


def _notifications(routing: JobRouting, outcome: str, *, attempt: int) -> list[Notification]:
    """``routing.synced`` or ``routing.failed`` (for good) to the routing's company and its
    job's requester; nothing for an attempt that will be retried."""
    if outcome == SyncAttempt.Outcome.SYNCED:
        event, data = WebhookEvent.ROUTING_SYNCED, {"external_id": routing.external_id}
    elif outcome == SyncAttempt.Outcome.FAILED:
        event, data = WebhookEvent.ROUTING_FAILED, {"error": routing.error_message}
    else:
        return []
    return routing_notifications(
        event,
        routing=routing,
        requester_id=routing.job.created_by_company_id,
        data={"status": routing.sync_status, "attempt": attempt, **data},
    )


def _count(outcomes: list[tuple[str, str, timedelta]]) -> None:
    """The metrics of stored attempts: ``(provider, outcome, routing's age)`` each."""
    for provider, outcome, age in outcomes:
        if outcome == SyncAttempt.Outcome.SYNCED:
            metrics.sync_success.labels(provider).inc()
            metrics.sync_latency.labels(provider).observe(age.total_seconds())
        else:
            metrics.sync_failure.labels(provider, outcome).inc()


def _apply(attempt: Attempt, routing: JobRouting, event: OutboxEvent | None, *, now) -> str:
    """Move the routing and its event by the attempt's outcome; returns the outcome, which
    turns from retry to failed when the retries are used up."""
    outcome = attempt.outcome
    if outcome == SyncAttempt.Outcome.SYNCED:
        routing.mark_synced(external_id=attempt.external_id, now=now)
        if event is not None:
            event.close(OutboxStatus.DONE, now=now)
        return outcome
    if outcome == SyncAttempt.Outcome.RETRY:
        delay = PROVIDER_CALL_RETRY.delay(
            retries_so_far=routing.retry_count, retry_after=attempt.retry_after
        )
        if delay is None:
            outcome = attempt.outcome = SyncAttempt.Outcome.FAILED
        else:
            routing.retry_count += 1
    if outcome == SyncAttempt.Outcome.FAILED:
        routing.mark_failed(error=attempt.error, now=now)
        if event is not None:
            event.close(OutboxStatus.DEAD, now=now, error=attempt.error)
        return outcome
    if outcome == SyncAttempt.Outcome.WAITING:
        delay = settings.SYNC_UNCONFIGURED_RECHECK_SECONDS
    routing.mark_waiting(error=attempt.error, seconds=delay, now=now)
    if event is not None:
        event.wait_until(routing.next_retry_at, error=attempt.error)
    return outcome


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
            lease_expires_at=None,
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
            status=OutboxStatus.DONE, processed_at=now, claimed_at=None, lease_expires_at=None
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
    "lease_expires_at",
    "updated_at",
]
EVENT_SYNC_FIELDS = [
    "status",
    "available_at",
    "claimed_at",
    "lease_expires_at",
    "processed_at",
    "last_error",
]


def _log(attempt: Attempt, outcome: str, *, number: int) -> None:
    routing = attempt.routing
    logger.log(
        logging.INFO if outcome == SyncAttempt.Outcome.SYNCED else logging.WARNING,
        "Sync attempt",
        extra={
            "correlation_id": routing.job.correlation_id or None,
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

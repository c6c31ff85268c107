"""The transactional outbox, shared by every kind of deferred work: the relay that claims due
events in batches and hands each batch to the task of its event type, the kick that starts a
relay run soon after a commit, and dead letters recorded by work that failed outside a relay
(vendor queue tasks).

An event is claimed by setting ``status=processing``, ``claimed_at`` and ``lease_expires_at``
(see ``routing.leases``) in one short transaction; on PostgreSQL the rows are read with
``FOR UPDATE SKIP LOCKED`` so concurrent relays take disjoint batches, and on SQLite the
transaction holds the database's write lock from its first statement
(``transaction_mode=IMMEDIATE``), so the claim's conditional update is never interleaved.
``claimed_at`` is also the batch's token: the sync task only works on events still claimed at
that instant, so a batch whose lease expired and was claimed again is done once. The relay
keeps at most ``OUTBOX_MAX_IN_FLIGHT`` events claimed; the rest wait in the outbox, not in the
broker, so a claimed batch starts well within its lease.

Event types and their tasks are ``settings.OUTBOX_EVENT_TASKS`` (``job_sync``: the sync,
``webhook_delivery``: outbound webhooks). Another type is one line there, naming a Celery task
that takes ``(event_ids, claimed_at)`` (an ISO 8601 string), holds the events under a
``routing.leases.Lease`` while it works, and closes each event (``OutboxEvent.close`` or
``wait_until``); its writer creates the events in the transaction of the change that causes
them and kicks the relay on commit (``outbox_relay_kick``).
"""

import logging
import time
import uuid
from datetime import datetime

from celery import current_app
from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from routing.leases import lease_end
from routing.models import OutboxEvent, OutboxStatus
from tradeengage.logging import Throttled

logger = logging.getLogger("routing")

RELAY_KICK_KEY = "routing:outbox-relay-kick"
# Enqueued by name: routing.tasks imports the services that kick the relay. So are the tasks of
# each event type (settings.OUTBOX_EVENT_TASKS).
RELAY_TASK = "routing.tasks.relay_outbox"
# Another process's window may end a little earlier by our clock; stop trusting it this early.
CLOCK_SKEW_SECONDS = 0.05

_kick_window_end = 0.0
_lost_kick_log = Throttled(logger, seconds=60)


def outbox_relay_kick() -> None:
    """Make sure a relay run starts after this moment, so events just committed are relayed
    within ``OUTBOX_KICK_WINDOW_SECONDS``.

    Kicks are batched in windows shared by all processes through the cache: the first kick of a
    window schedules one relay run at the window's end, and every later kick in that window is
    covered by that run. A process remembers the current window's end and skips even the cache
    until then, so a burst of jobs costs one message and about one cache call per process per
    window. A kick lost to a cache or broker outage is caught by the relay's beat entry, and
    logged as one warning a minute, not a traceback per job.
    """
    global _kick_window_end
    now = time.time()
    if now < _kick_window_end - CLOCK_SKEW_SECONDS:
        return
    try:
        _kick(now)
    except Exception as exc:
        _kick_window_end = 0.0  # nothing was scheduled: the next kick tries again
        _lost_kick_log.warning(
            "Outbox relay kick lost (%s: %s); the relay's beat entry relays the events",
            type(exc).__name__,
            exc,
        )


def _kick(now: float) -> None:
    global _kick_window_end
    window = settings.OUTBOX_KICK_WINDOW_SECONDS
    proposal = f"{now + window:.6f}:{uuid.uuid4().hex}"
    current = cache.get_or_set(RELAY_KICK_KEY, proposal, timeout=window)
    _kick_window_end = float(str(current).split(":", 1)[0])
    if current == proposal:
        try:
            current_app.tasks[RELAY_TASK].apply_async(countdown=window)
        except Exception:
            cache.delete(RELAY_KICK_KEY)  # let the next kick, in any process, try again
            raise


def outbox_relay_later(seconds: float) -> None:
    """Schedule a relay run ``seconds`` from now, for events made due then (handed back to wait
    for a busy company); one lost to a broker outage is caught by the relay's beat entry."""
    try:
        current_app.tasks[RELAY_TASK].apply_async(countdown=seconds)
    except Exception as exc:
        _lost_kick_log.warning(
            "Outbox relay run lost (%s: %s); the relay's beat entry relays the events",
            type(exc).__name__,
            exc,
        )


def outbox_relay_kick_forget() -> None:
    """Forget this process's window (tests, or after the cache was flushed)."""
    global _kick_window_end
    _kick_window_end = 0.0
    _lost_kick_log.reset()


def outbox_claim_batch(*, now: datetime, batch_size: int) -> list[int]:
    """Claim up to ``batch_size`` events: first those whose lease ran out (their worker died),
    then due pending ones, oldest first. Returns their ids, claimed at ``now``."""
    return [event_id for event_id, _ in _claim_batch(now=now, batch_size=batch_size)]


def _claim_batch(*, now: datetime, batch_size: int) -> list[tuple[int, str]]:
    """``outbox_claim_batch``, with each event's type."""
    expired = OutboxEvent.objects.filter(
        status=OutboxStatus.PROCESSING, lease_expires_at__lt=now
    ).order_by("lease_expires_at", "id")
    due = OutboxEvent.objects.filter(status=OutboxStatus.PENDING, available_at__lte=now).order_by(
        "available_at", "id"
    )
    with transaction.atomic():
        if connection.vendor == "postgresql":
            expired = expired.select_for_update(skip_locked=True)
            due = due.select_for_update(skip_locked=True)
        rows = list(expired.values_list("id", "event_type")[:batch_size])
        if len(rows) < batch_size:
            rows += due.values_list("id", "event_type")[: batch_size - len(rows)]
        if rows:
            OutboxEvent.objects.filter(
                Q(status=OutboxStatus.PENDING)
                | Q(status=OutboxStatus.PROCESSING, lease_expires_at__lt=now),
                id__in=[event_id for event_id, _ in rows],
            ).update(
                status=OutboxStatus.PROCESSING,
                claimed_at=now,
                lease_expires_at=lease_end(now),
                attempts=F("attempts") + 1,
            )
    return rows


def outbox_in_flight(*, now: datetime) -> int:
    """Events claimed under a lease that still runs: queued for a sync task or held by one."""
    return OutboxEvent.objects.filter(
        status=OutboxStatus.PROCESSING, lease_expires_at__gte=now
    ).count()


def outbox_release(*, event_ids: list[int], claimed_at: datetime) -> int:
    """Give claimed events back (their sync task could not be enqueued), due at once."""
    return OutboxEvent.objects.filter(
        id__in=event_ids, status=OutboxStatus.PROCESSING, claimed_at=claimed_at
    ).update(
        status=OutboxStatus.PENDING,
        claimed_at=None,
        lease_expires_at=None,
        available_at=claimed_at,
    )


def outbox_batch_enqueue(event_type: str, event_ids: list[int], claimed_at: datetime) -> None:
    """Hand one claimed batch of one type to its task (``OUTBOX_EVENT_TASKS``), by name: the
    tasks live in layers above this one."""
    task = current_app.tasks[settings.OUTBOX_EVENT_TASKS[event_type]]
    task.apply_async(args=[event_ids, claimed_at.isoformat()])


def outbox_relay(
    *,
    dispatch=None,
    enqueue=outbox_batch_enqueue,
    now: datetime | None = None,
    max_batches: int | None = None,
):
    """Claim due events batch by batch and hand each batch, split by event type (and into
    groups of ``OUTBOX_EVENTS_PER_TASK`` for the types it names), to ``enqueue(event_type,
    event_ids, claimed_at)`` (its type's task, by default), or to ``dispatch(event_ids,
    claimed_at)`` when given (one call per group). Events of a type no task handles
    (``OUTBOX_EVENT_TASKS``) go to the dead letters at once.

    Returns (events claimed, whether the last batch was full: more may be due). Claims stop
    at ``OUTBOX_MAX_IN_FLIGHT`` events in flight; a task that finishes kicks the relay for
    the next ones. A batch that cannot be dispatched is released and the error raised; the
    events are due again at once.
    """
    now = now or timezone.now()
    room = settings.OUTBOX_MAX_IN_FLIGHT - outbox_in_flight(now=now)
    claimed, full = 0, False
    for _ in range(max_batches or settings.OUTBOX_RELAY_MAX_BATCHES):
        batch_size = min(settings.OUTBOX_RELAY_BATCH_SIZE, room - claimed)
        if batch_size <= 0:
            break
        rows = _claim_batch(now=now, batch_size=batch_size)
        if not rows:
            full = False
            break
        by_type: dict[str, list[int]] = {}
        for event_id, event_type in rows:
            by_type.setdefault(event_type, []).append(event_id)
        unhandled = [t for t in by_type if t not in settings.OUTBOX_EVENT_TASKS]
        if unhandled:
            _dead_letter_unhandled(
                [event_id for t in unhandled for event_id in by_type.pop(t)], now=now
            )
        dispatched: list[int] = []
        try:
            for event_type, event_ids in by_type.items():
                per_task = settings.OUTBOX_EVENTS_PER_TASK.get(event_type) or len(event_ids)
                for start in range(0, len(event_ids), per_task):
                    group = event_ids[start : start + per_task]
                    if dispatch is not None:
                        dispatch(group, now)
                    else:
                        enqueue(event_type, group, now)
                    dispatched += group
        except Exception:
            outbox_release(
                event_ids=[event_id for event_id, _ in rows if event_id not in dispatched],
                claimed_at=now,
            )
            raise
        claimed += len(rows)
        full = len(rows) == batch_size and claimed < room
    if claimed:
        logger.info("Outbox relayed", extra={"events": claimed, "more_due": full})
    return claimed, full


def _dead_letter_unhandled(event_ids: list[int], *, now: datetime) -> None:
    OutboxEvent.objects.filter(id__in=event_ids).update(
        status=OutboxStatus.DEAD,
        processed_at=now,
        claimed_at=None,
        lease_expires_at=None,
        last_error="No handler for this event type.",
    )
    logger.error("Outbox events of an unknown type dead-lettered", extra={"events": len(event_ids)})


def outbox_dead_letter_record(
    *, event_type: str, reference: str, data: dict, attempts: int, error: str
) -> OutboxEvent:
    """Record work that failed for good outside a relay (a vendor queue task) as a dead letter,
    so ops see it beside the sync's in the admin."""
    return OutboxEvent.objects.create(
        event_type=event_type,
        aggregate_id=uuid.uuid5(uuid.NAMESPACE_URL, f"{event_type}:{reference}:{time.time()}"),
        event_data=data,
        status=OutboxStatus.DEAD,
        attempts=attempts,
        processed_at=timezone.now(),
        last_error=error,
    )

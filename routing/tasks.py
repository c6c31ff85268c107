"""Routing's Celery tasks: thin wrappers that take ids and call services.

The outbox relay and the sync of its batches (queue ``critical``), outbound webhook deliveries
(``webhooks``), the back-sync's claims and
polls (``low``), and seed 001's ServiceTitan queue tasks ("Queue Processing": creation
critical, cancellation high, status update default), whose retries follow
``routing.retry.PROVIDER_CALL_RETRY`` and whose permanent failures become dead letters in the
outbox, visible in the admin.
"""

import logging

from celery import shared_task
from django.utils.dateparse import parse_datetime

from integrations.providers import ProviderError
from integrations.servicetitan.service import servicetitan_service
from integrations.servicetitan.types import booking_from_json
from routing.outbox import outbox_dead_letter_record, outbox_relay, outbox_relay_kick
from routing.retry import PROVIDER_CALL_RETRY
from routing.services.backsync import routings_backsync_dispatch, routings_poll_claimed
from routing.services.retention import history_purge
from routing.services.sync import outbox_events_sync
from routing.services.webhook_delivery import webhook_deliveries_send

logger = logging.getLogger("routing")


@shared_task(ignore_result=True)
def relay_outbox() -> int:
    """Claim due outbox events in batches and enqueue one task per batch and event type
    (``settings.OUTBOX_EVENT_TASKS``). Kicked after
    routings are created and run by beat every few seconds; a run that filled every batch
    enqueues the next run at once, so a backlog drains without waiting for beat."""
    claimed, more_due = outbox_relay()
    if more_due:
        relay_outbox.apply_async()
    return claimed


@shared_task(ignore_result=True)
def sync_outbox_events(event_ids: list[int], claimed_at: str) -> dict:
    """Sync the routings of one claimed batch of ``job_sync`` events (see
    ``routing.services.sync.outbox_events_sync``). A redelivered message finds its events
    finished or claimed again under another lease, and does nothing. Done, it kicks the relay:
    events held back by ``OUTBOX_MAX_IN_FLIGHT`` go out as soon as there is room."""
    counts = outbox_events_sync(event_ids=event_ids, claimed_at=parse_datetime(claimed_at))
    outbox_relay_kick()
    return counts


@shared_task(ignore_result=True)
def deliver_webhooks(event_ids: list[int], claimed_at: str) -> dict:
    """Send the deliveries of one claimed batch of ``webhook_delivery`` events (see
    ``routing.services.webhooks.webhook_deliveries_send``); like the sync's, a redelivered
    message finds its events finished or claimed again, and does nothing."""
    counts = webhook_deliveries_send(event_ids=event_ids, claimed_at=parse_datetime(claimed_at))
    outbox_relay_kick()
    return counts


@shared_task(ignore_result=True)
def poll_provider_statuses() -> int:
    """Back-sync (beat): claim the synced routings due for a question to their provider and
    enqueue one ``poll_routing_statuses`` per chunk of one company's (see
    ``routing.services.backsync.routings_backsync_dispatch``). A run that filled its claim
    enqueues the next run at once, so a backlog is shared out without waiting for beat."""
    claimed, more_due = routings_backsync_dispatch(dispatch=dispatch_status_poll)
    if more_due:
        poll_provider_statuses.apply_async()
    return claimed


def dispatch_status_poll(routing_ids: list, claimed_at) -> None:
    poll_routing_statuses.apply_async(
        args=[[str(routing_id) for routing_id in routing_ids], claimed_at.isoformat()]
    )


@shared_task(ignore_result=True)
def poll_routing_statuses(routing_ids: list[str], claimed_at: str) -> dict:
    """Ask one company's provider about a claimed chunk of its routings, in one batch call, and
    complete those it reports completed. A late message whose routings were claimed again, or
    completed meanwhile, leaves them."""
    return routings_poll_claimed(routing_ids=routing_ids, claimed_at=parse_datetime(claimed_at))


@shared_task(ignore_result=True)
def purge_history() -> dict:
    """Beat every night: the pipeline's finished work older than its retention
    (``routing.services.retention.history_purge``)."""
    deleted = history_purge()
    logger.info("History purged", extra={"deleted": deleted})
    return deleted


@shared_task(bind=True, ignore_result=True)
def servicetitan_create_job(self, booking: dict, options: dict | None = None) -> None:
    try:
        job = servicetitan_service(options).create_job(booking_from_json(booking))
    except ProviderError as exc:
        _retry_or_dead_letter(
            self, exc, "job creation", booking.get("booking_id"), {"booking": booking}
        )
        return
    logger.info(
        "ServiceTitan job created successfully",
        extra={
            "servicetitan_job_id": job.id,
            "job_number": job.job_number,
            "booking_id": booking.get("booking_id") or None,
            "status": job.status,
        },
    )


@shared_task(bind=True, ignore_result=True)
def servicetitan_update_status(self, job_id: int, status: str, options: dict | None = None):
    try:
        servicetitan_service(options).update_job_status(job_id, status)
    except ProviderError as exc:
        data = {"job_id": job_id, "status": status}
        _retry_or_dead_letter(self, exc, "status update", str(job_id), data)


@shared_task(bind=True, ignore_result=True)
def servicetitan_cancel_job(self, job_id: int, reason: str, options: dict | None = None):
    try:
        servicetitan_service(options).cancel_job(job_id, reason)
    except ProviderError as exc:
        data = {"job_id": job_id, "reason": reason}
        _retry_or_dead_letter(self, exc, "job cancellation", str(job_id), data)


def _retry_or_dead_letter(task, exc: ProviderError, action: str, reference, data: dict) -> None:
    delay = PROVIDER_CALL_RETRY.delay(
        retries_so_far=task.request.retries, retry_after=exc.retry_after
    )
    if exc.retryable and delay is not None:
        raise task.retry(exc=exc, countdown=delay, max_retries=PROVIDER_CALL_RETRY.retries)
    attempts = task.request.retries + 1
    logger.error(
        f"ServiceTitan {action} failed permanently",
        extra={"error": str(exc), "booking_id": reference, "attempts": attempts},
    )
    outbox_dead_letter_record(
        event_type=f"servicetitan_{action.replace(' ', '_')}",
        reference=str(reference),
        data={**data, "error_code": exc.code},
        attempts=attempts,
        error=str(exc),
    )

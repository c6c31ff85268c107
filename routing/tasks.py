import logging

from celery import shared_task
from django.utils.dateparse import parse_datetime

from routing.outbox import outbox_relay
from routing.services import outbox_events_sync, routings_backsync

logger = logging.getLogger("routing")


@shared_task(ignore_result=True)
def relay_outbox() -> int:
    """Claim due outbox events in batches and enqueue one sync task per batch. Kicked after
    job creation commits and run by beat every few seconds; a run that filled every batch
    enqueues the next run at once, so a backlog drains without waiting for beat."""
    claimed, more_due = outbox_relay(dispatch=dispatch_sync_batch)
    if more_due:
        relay_outbox.apply_async()
    return claimed


def dispatch_sync_batch(event_ids: list[int], claimed_at) -> None:
    sync_outbox_events.apply_async(args=[event_ids, claimed_at.isoformat()])


@shared_task(ignore_result=True)
def sync_outbox_events(event_ids: list[int], claimed_at: str) -> dict:
    """Sync the routings of one claimed batch of ``job_sync`` events (see
    ``routing.services.outbox_events_sync``). A redelivered message finds its events finished
    or claimed again under another lease, and does nothing."""
    return outbox_events_sync(event_ids=event_ids, claimed_at=parse_datetime(claimed_at))


@shared_task(ignore_result=True)
def poll_provider_statuses() -> dict:
    """Back-sync: ask providers about synced routings and complete the completed ones."""
    return routings_backsync()

"""The intake's Celery tasks: thin wrappers that take ids and call services."""

from celery import shared_task
from django.utils.dateparse import parse_datetime

from jobs.ingestion import ingestion_events_process
from routing.outbox import outbox_relay_kick


@shared_task(ignore_result=True)
def ingest_items(event_ids: list[int], claimed_at: str) -> dict:
    """Create the jobs of one claimed batch of ``ingestion_chunk`` events (see
    ``jobs.ingestion.ingestion_events_process``). A redelivered message finds its events done
    or claimed again under another lease, and does nothing. Done, it kicks the relay: events
    held back by ``OUTBOX_MAX_IN_FLIGHT`` go out as soon as there is room."""
    counts = ingestion_events_process(event_ids=event_ids, claimed_at=parse_datetime(claimed_at))
    outbox_relay_kick()
    return counts

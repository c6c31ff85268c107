"""The sync engine driven in the test's thread: the relay with each claimed batch synced at once
instead of enqueued, and rows read again after it."""

from routing.outbox import outbox_relay
from routing.services.sync import outbox_events_sync


def relay(**kwargs) -> list[dict]:
    """Run the relay and sync every claimed batch in-process; returns each batch's counts."""
    results = []

    def dispatch(event_ids, claimed_at):
        results.append(outbox_events_sync(event_ids=event_ids, claimed_at=claimed_at))

    outbox_relay(dispatch=dispatch, **kwargs)
    return results


def fresh(instance):
    instance.refresh_from_db()
    return instance

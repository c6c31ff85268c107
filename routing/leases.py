"""Heartbeat leases: how long claimed work stays with the worker that took it.

An outbox event and the routing it syncs share one lease, ``lease_expires_at``: the relay sets
it when it claims the event (``OUTBOX_LEASE_SECONDS`` to wait in the broker), the sync task sets
it again when it starts and when it claims the routing, and while the task runs, a thread of its
worker renews it every ``OUTBOX_LEASE_RENEW_SECONDS``. A worker that dies stops renewing, so
its work is free again one lease later and the relay hands it out (the provider sees the same
idempotency key, the routing id, and creates nothing twice). A task that fails on an error it
survives gives its work back at once.

``claimed_at`` stays the claim's token: a lease is renewed or given back only for rows still
claimed under it, so work taken again by someone else is never touched.
"""

import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from routing.models import JobRouting, OutboxEvent, OutboxStatus, SyncStatus
from tradeengage.logging import Throttled

logger = logging.getLogger("routing")

_renewal_failed_log = Throttled(logger, seconds=60)
_release_failed_log = Throttled(logger, seconds=60)


def lease_end(now: datetime) -> datetime:
    return now + timedelta(seconds=settings.OUTBOX_LEASE_SECONDS)


@dataclass(eq=False)
class Lease:
    """What one sync task holds: its events, claimed by the relay under ``event_token``, and the
    routings it took, claimed under ``routing_token``."""

    event_ids: list[int] = field(default_factory=list)
    event_token: datetime | None = None
    routing_ids: list = field(default_factory=list)
    routing_token: datetime | None = None
    # Its task handed the work still running to another holder (routing.services.calls), who
    # keeps it renewed and drops it when done.
    handed_off: bool = False

    def renew(self, *, now: datetime) -> int:
        """Extend the lease of what is still held to one lease from ``now``; returns the number
        of events and routings renewed."""
        until = lease_end(now)
        with transaction.atomic():
            renewed = (
                _unlocked(self._events()).update(lease_expires_at=until) if self.event_ids else 0
            )
            if self.routing_ids:
                renewed += _unlocked(self._routings()).update(lease_expires_at=until)
        return renewed

    def release(self, *, now: datetime) -> int:
        """Give back what is still held, due at once; returns the number of rows given back."""
        released = 0
        with transaction.atomic():
            if self.event_ids:
                released += self._events().update(
                    status=OutboxStatus.PENDING,
                    claimed_at=None,
                    lease_expires_at=None,
                    available_at=now,
                )
            if self.routing_ids:
                released += self._routings().update(
                    sync_status=SyncStatus.PENDING,
                    claimed_at=None,
                    lease_expires_at=None,
                    updated_at=now,
                )
        return released

    def _events(self):
        return OutboxEvent.objects.filter(
            id__in=self.event_ids, status=OutboxStatus.PROCESSING, claimed_at=self.event_token
        )

    def _routings(self):
        return JobRouting.objects.filter(
            id__in=self.routing_ids,
            sync_status=SyncStatus.PROCESSING,
            claimed_at=self.routing_token,
        )


def _unlocked(rows):
    """The rows no other transaction holds right now (PostgreSQL; SQLite has one writer at a
    time). A renewal skips the rows its own task is storing rather than wait for them: it would
    take their locks in the other order (events, then routings) and could deadlock with the
    store. Those rows leave the lease as they are stored; a row skipped for another reason is
    renewed on the next beat of the heartbeat, long before its lease runs out."""
    if connection.vendor != "postgresql":
        return rows
    ids = list(rows.select_for_update(skip_locked=True).order_by("pk").values_list("pk", flat=True))
    return rows.model.objects.filter(pk__in=ids)


class LeaseKeeper:
    """Renews the leases this process holds, on a daemon thread that lives as long as the
    process: the worker's heartbeat for the work it holds. A renewal that fails (the database
    is down) is logged as one warning a minute; the leases then run out, as a dead worker's
    would, and the work is taken again once the database is back."""

    def __init__(self):
        self._held: set[Lease] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def hold(self, lease: Lease) -> None:
        with self._lock:
            self._held.add(lease)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)
                self._thread.start()

    def drop(self, lease: Lease) -> None:
        with self._lock:
            self._held.discard(lease)

    def held(self) -> list[Lease]:
        with self._lock:
            return list(self._held)

    def renew_all(self) -> int:
        """Renew every held lease now; returns the number of rows renewed."""
        renewed = 0
        for lease in self.held():
            renewed += lease.renew(now=timezone.now())
        return renewed

    def _run(self) -> None:
        while not self._wake.wait(settings.OUTBOX_LEASE_RENEW_SECONDS):
            if not self.held():
                continue
            try:
                close_old_connections()
                self.renew_all()
            except Exception as exc:
                _renewal_failed_log.warning(
                    "Lease renewal failed (%s: %s); the held work is taken again when its "
                    "lease runs out",
                    type(exc).__name__,
                    exc,
                )


keeper = LeaseKeeper()


@contextmanager
def lease_held(lease: Lease):
    """Keep ``lease`` renewed while the block runs; when the block raises, give the work back
    at once (or, when even that fails, let the lease run out) and re-raise."""
    keeper.hold(lease)
    try:
        yield lease
    except BaseException as exc:
        keeper.drop(lease)
        try:
            if not connection.in_atomic_block:
                connection.close_if_unusable_or_obsolete()  # a connection the error broke
            lease.release(now=timezone.now())
        except Exception as release_exc:
            _release_failed_log.warning(
                "Could not give claimed work back (%s: %s) after %s; it is taken again when "
                "its lease runs out",
                type(release_exc).__name__,
                release_exc,
                type(exc).__name__,
            )
        raise
    finally:
        if not lease.handed_off:
            keeper.drop(lease)

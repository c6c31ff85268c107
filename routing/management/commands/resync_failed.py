"""Resync the failed routings (the dead-letter queue), all of them or those matching filters:
requeued through the outbox for the workers by default, or synced one by one in this process
with ``--inline``. ``--dry-run`` shows what would be resynced and changes nothing."""

import sys
import uuid
from collections import Counter
from datetime import datetime

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q
from django.template.defaultfilters import pluralize
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from tqdm import tqdm

from integrations.providers import ProviderType
from jobs.models import Company
from routing.models import JobRouting, SyncStatus
from routing.services.requeue import routings_requeue
from routing.services.sync import routing_sync_now

DRY_RUN_SHOWN = 20
# What an inline sync came to, by the routing's status after it.
OUTCOMES = {
    SyncStatus.SYNCED: "synced",
    SyncStatus.COMPLETED: "synced",
    SyncStatus.FAILED: "failed again",
    SyncStatus.PENDING: "retry scheduled",
    SyncStatus.PROCESSING: "skipped",
}


def moment(value: str) -> datetime:
    """A date (midnight) or an ISO datetime; without an offset, in the current time zone."""
    try:
        parsed = parse_datetime(value)
    except ValueError:
        parsed = None
    if parsed is None:
        raise CommandError(f"--since: {value!r} is not a date (YYYY-MM-DD) or an ISO datetime")
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed)


class Command(BaseCommand):
    help = (
        "Resync failed routings: requeue them through the outbox in chunks (or sync them here "
        "with --inline), with a progress bar and a summary."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--since",
            metavar="DATE",
            help="Only routings last attempted (or updated) at or after DATE: YYYY-MM-DD or an "
            "ISO datetime, in the current time zone unless it has an offset.",
        )
        parser.add_argument("--company", metavar="ID", help="Only this company's routings.")
        parser.add_argument(
            "--provider",
            metavar="TYPE",
            help=f"Only companies on this provider: {', '.join(ProviderType.values)}.",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Show what would be resynced; change nothing."
        )
        parser.add_argument(
            "--inline",
            action="store_true",
            help="Sync each routing in this process instead of requeueing it for the workers.",
        )
        parser.add_argument(
            "--chunk-size",
            type=int,
            default=500,
            metavar="N",
            help="Routings read, and requeued in one transaction, at a time (default 500).",
        )

    def handle(self, *args, since, company, provider, dry_run, inline, chunk_size, **options):
        if chunk_size < 1:
            raise CommandError("--chunk-size must be at least 1")
        selection = JobRouting.objects.filter(sync_status=SyncStatus.FAILED)
        if since is not None:
            since = moment(since)
            selection = selection.filter(
                Q(last_sync_attempt__gte=since)
                | Q(last_sync_attempt__isnull=True, updated_at__gte=since)
            )
        if company is not None:
            selection = selection.filter(company=self._company(company))
        if provider is not None:
            if provider not in ProviderType.values:
                raise CommandError(
                    f"Unknown provider {provider!r}; choose one of {', '.join(ProviderType.values)}"
                )
            selection = selection.filter(company__provider_type=provider)

        selected = selection.count()
        if dry_run:
            self._show(selection, selected)
            return
        progress = tqdm(
            total=selected,
            unit="routing",
            desc="Syncing" if inline else "Requeueing",
            file=options.get("stderr") or sys.stderr,
            disable=None,
        )
        with progress:
            if inline:
                counts = self._sync(selection, chunk_size, progress)
            else:
                counts = self._requeue(selection, chunk_size, progress)
        self.stdout.write(
            f"Selected {selected} failed routing{pluralize(selected)}: "
            + ", ".join(f"{label} {count}" for label, count in counts.items())
            + "."
        )

    def _company(self, value: str) -> Company:
        try:
            return Company.objects.get(id=uuid.UUID(value))
        except ValueError:
            raise CommandError(f"--company: {value!r} is not a company id (a UUID)") from None
        except Company.DoesNotExist:
            raise CommandError(f"--company: no company with id {value}") from None

    def _show(self, selection, selected: int) -> None:
        self.stdout.write(f"Would resync {selected} failed routing{pluralize(selected)}.")
        if not selected:
            return
        self.stdout.write(
            f"{'routing':36}  {'company':24}  {'provider':12}  {'last attempt':16}  error"
        )
        for routing in selection.select_related("company").order_by("id")[:DRY_RUN_SHOWN]:
            attempted = routing.last_sync_attempt or routing.updated_at
            self.stdout.write(
                f"{routing.id!s:36}  {routing.company.name[:24]:24}  "
                f"{routing.company.provider_type or '-':12}  "
                f"{timezone.localtime(attempted):%Y-%m-%d %H:%M}  "
                f"{(routing.error_message or '')[:60]}"
            )
        if selected > DRY_RUN_SHOWN:
            self.stdout.write(f"... and {selected - DRY_RUN_SHOWN} more.")

    def _requeue(self, selection, chunk_size: int, progress) -> Counter:
        counts = Counter(requeued=0, skipped=0)
        for chunk in id_chunks(selection, chunk_size):
            requeued = len(routings_requeue(routing_ids=list(chunk)))
            counts["requeued"] += requeued
            counts["skipped"] += len(chunk) - requeued
            progress.update(len(chunk))
        return counts

    def _sync(self, selection, chunk_size: int, progress) -> Counter:
        counts = Counter({"synced": 0, "failed again": 0, "retry scheduled": 0, "skipped": 0})
        for chunk in id_chunks(selection, chunk_size):
            for routing_id in chunk:
                # Read again just before its sync: the chunk may be minutes old by now.
                routing = JobRouting.objects.filter(
                    id=routing_id, sync_status=SyncStatus.FAILED
                ).first()
                if routing is None:
                    counts["skipped"] += 1
                else:
                    counts[OUTCOMES[routing_sync_now(routing=routing).sync_status]] += 1
                progress.update()
        return counts


def id_chunks(selection, chunk_size: int):
    """The selection's ids, ``chunk_size`` at a time, by keyset (``id > last``): no cursor is
    held open while the chunks are worked on (SQLite's cursors would see those writes), and a
    routing that fails again meanwhile is not taken twice."""
    last = None
    while True:
        page = selection.order_by("id")
        if last is not None:
            page = page.filter(id__gt=last)
        chunk = list(page.values_list("id", flat=True)[:chunk_size])
        if not chunk:
            return
        yield chunk
        last = chunk[-1]

"""Sync routings by id, now, in this process (or send them back through the outbox with
``--queue``): the command-line twin of the admin's "Retry now" and "Requeue" actions."""

import uuid

from django.core.management.base import BaseCommand, CommandError
from django.template.defaultfilters import pluralize
from django.utils import timezone

from routing.models import JobRouting, SyncStatus
from routing.services.requeue import routings_requeue
from routing.services.sync import routing_sync_now

REQUEUEABLE = {SyncStatus.FAILED, SyncStatus.PENDING}


class Command(BaseCommand):
    help = (
        "Sync the given routings now and print how each one ended; with --queue, requeue them "
        "through the outbox for the workers instead."
    )

    def add_arguments(self, parser):
        parser.add_argument("routing_ids", nargs="+", metavar="ROUTING_ID")
        parser.add_argument(
            "--queue",
            action="store_true",
            help="Requeue failed or waiting routings through the outbox instead of syncing here.",
        )

    def handle(self, *args, routing_ids: list[str], queue: bool, **options):
        ids, malformed = [], []
        for value in routing_ids:
            try:
                routing_id = uuid.UUID(value)
            except ValueError:
                malformed.append(value)
                continue
            if routing_id not in ids:
                ids.append(routing_id)
        if malformed:
            raise CommandError(f"Not routing ids (UUIDs expected): {', '.join(malformed)}")

        routings = JobRouting.objects.in_bulk(ids)
        unknown = [routing_id for routing_id in ids if routing_id not in routings]
        if queue:
            requeued = len(routings_requeue(routing_ids=list(routings)))
        for routing_id in ids:
            routing = routings.get(routing_id)
            if routing is None:
                self.stdout.write(f"{routing_id}  {self.style.ERROR('not found')}")
            elif queue:
                self._report_requeue(routing)
            else:
                self._report(routing_sync_now(routing=routing))
        if queue:
            self.stdout.write(
                f"Requeued {requeued} of {len(routings)} routing{pluralize(len(routings))}."
            )
        if unknown:
            raise CommandError(
                f"No routing with id {', '.join(str(routing_id) for routing_id in unknown)}"
            )

    def _report_requeue(self, routing: JobRouting) -> None:
        """``routing`` as it was before the requeue, which took it when failed or waiting."""
        if routing.sync_status in REQUEUEABLE:
            line = f"{self.style.SUCCESS('requeued')}  due now"
        else:
            line = (
                f"{self.style.WARNING('left alone')}  it is {routing.sync_status}; "
                "only failed or waiting routings are requeued"
            )
        self.stdout.write(f"{routing.id}  {line}")

    def _report(self, routing: JobRouting) -> None:
        status = routing.sync_status
        if status in (SyncStatus.SYNCED, SyncStatus.COMPLETED):
            line = f"{self.style.SUCCESS(status)}  external id {routing.external_id}"
        elif status == SyncStatus.FAILED:
            line = f"{self.style.ERROR(status)}  {routing.error_message}"
        elif status == SyncStatus.PROCESSING:
            line = f"{self.style.WARNING(status)}  another worker is syncing it"
        else:
            line = self.style.WARNING(status)
            if routing.next_retry_at:
                line += f"  retry at {timezone.localtime(routing.next_retry_at):%H:%M:%S}"
            if routing.error_message:
                line += f": {routing.error_message}"
        self.stdout.write(f"{routing.id}  {line}")

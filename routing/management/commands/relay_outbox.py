"""Run the outbox relay in this process, for debugging: claim due events in batches and hand each
batch to the workers, or with ``--inline`` sync it (or send its webhooks) right here. Beat runs
the same relay every few seconds in production; this command shows what one run does."""

import time
from collections import Counter

from django.core.management.base import BaseCommand, CommandError
from django.template.defaultfilters import pluralize
from django.utils import timezone

from routing.models import OutboxEvent
from routing.outbox import outbox_batch_enqueue, outbox_relay
from routing.services.sync import outbox_events_sync
from routing.services.webhook_delivery import webhook_deliveries_send

DEFAULT_INTERVAL_SECONDS = 5.0


class Command(BaseCommand):
    help = (
        "Relay due outbox events: claim them in batches and dispatch each batch to the workers "
        "(or sync it here with --inline); once, or every --interval seconds until Ctrl-C."
    )

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="One relay run, then exit.")
        parser.add_argument(
            "--inline",
            action="store_true",
            help="Sync each claimed batch here instead of dispatching it to the workers.",
        )
        parser.add_argument(
            "--interval",
            type=float,
            default=DEFAULT_INTERVAL_SECONDS,
            metavar="SECONDS",
            help=f"Seconds between runs without --once (default {DEFAULT_INTERVAL_SECONDS:g}).",
        )

    def handle(self, *args, once: bool, inline: bool, interval: float, **options):
        if interval <= 0:
            raise CommandError("--interval must be more than 0 seconds")
        if once:
            self._run(inline=inline, quiet_when_idle=False)
            return
        self.stdout.write(f"Relaying every {interval:g} s; Ctrl-C to stop.")
        try:
            while True:
                more_due = self._run(inline=inline, quiet_when_idle=options["verbosity"] < 2)
                if not more_due:
                    time.sleep(interval)
        except KeyboardInterrupt:
            # Events of a batch cut short stay claimed until their lease expires; the next
            # relay takes them again then.
            self.stdout.write("Stopped.")

    def _run(self, *, inline: bool, quiet_when_idle: bool) -> bool:
        """One relay run; reports it and returns whether more events may be due."""
        batches, outcomes = 0, Counter()

        def enqueue(event_type, event_ids, claimed_at):
            nonlocal batches
            if not inline:
                outbox_batch_enqueue(event_type, event_ids, claimed_at)
            elif event_type == OutboxEvent.WEBHOOK_DELIVERY:
                outcomes.update(webhook_deliveries_send(event_ids=event_ids, claimed_at=claimed_at))
            else:
                outcomes.update(outbox_events_sync(event_ids=event_ids, claimed_at=claimed_at))
            batches += 1

        try:
            claimed, more_due = outbox_relay(enqueue=enqueue)
        except Exception as exc:
            raise CommandError(
                f"A batch could not be dispatched ({exc.__class__.__name__}: {exc}); its events "
                "were released, due again at once."
            ) from exc
        if claimed or not quiet_when_idle:
            line = (
                f"{timezone.localtime():%H:%M:%S} claimed {claimed} event{pluralize(claimed)} "
                f"in {batches} batch{pluralize(batches, 'es')}"
            )
            counted = [f"{outcome} {count}" for outcome, count in sorted(outcomes.items()) if count]
            if counted:
                line += ": " + ", ".join(counted)
            elif claimed and not inline:
                line += ", dispatched to the workers"
            if more_due:
                line += "; more are due"
            self.stdout.write(line + ".")
        return more_due

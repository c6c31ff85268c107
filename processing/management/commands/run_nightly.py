"""The nightly run by hand (seed 004 "Cron Job Process"): a run enqueued for each client due on
a date by its ``send_day`` (month-end included), then the retry queue. Repeating it for the same
date enqueues nothing twice. ``--dry-run`` lists the clients due and changes nothing."""

import sys
from datetime import date

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Exists, OuterRef
from django.template.defaultfilters import pluralize
from django.utils import timezone
from django.utils.dateparse import parse_date
from tqdm import tqdm

from processing.models import ProcessingJob
from processing.services.runs import clients_due, nightly_run
from processing.tasks import process_client

DRY_RUN_SHOWN = 50


def run_date(value: str | None) -> date:
    if value is None:
        return timezone.localdate()
    try:
        parsed = parse_date(value)
    except ValueError:
        parsed = None
    if parsed is None:
        raise CommandError(f"--date: {value!r} is not a date (YYYY-MM-DD)")
    return parsed


def already_run(day: date) -> Exists:
    """The client has its nightly run for ``day`` already."""
    return Exists(
        ProcessingJob.objects.filter(
            client=OuterRef("pk"), run_date=day, trigger=ProcessingJob.Trigger.NIGHTLY
        )
    )


class Command(BaseCommand):
    help = (
        "Enqueue a processing run for each client due on a date (today by default) by its "
        "send_day, then run the retry queue; print a summary."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--date", metavar="YYYY-MM-DD", help="The night to run for (default: today)."
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="List the clients due; change nothing."
        )

    def handle(self, *args, dry_run: bool, **options):
        day = run_date(options["date"])
        due = clients_due(day=day)
        if dry_run:
            self._show(due, day)
            return

        progress = tqdm(
            total=due.exclude(already_run(day)).count(),
            unit="client",
            desc="Enqueueing",
            file=options.get("stderr") or sys.stderr,
            disable=None,
        )

        def enqueue(job_id) -> None:
            process_client.delay(str(job_id))
            progress.update()

        with progress:
            counts = nightly_run(day=day, enqueue=enqueue)
        retries = counts["retries"]
        self.stdout.write(
            f"Nightly run for {day.isoformat()}: {counts['due']} client{pluralize(counts['due'])} "
            f"due, {counts['enqueued']} enqueued, {counts['already_run']} already run that "
            f"night. Retry queue: {retries['processed']} processed, {retries['failed']} failed."
        )

    def _show(self, due, day: date) -> None:
        count = due.count()
        done = due.filter(already_run(day)).count() if count else 0
        self.stdout.write(
            f"{count} client{pluralize(count)} due on {day.isoformat()}"
            + (f", {done} already run that night." if done else ".")
        )
        if not count:
            return
        self.stdout.write(f"{'client':36}  {'name':24}  {'send day':8}  last processed")
        for client in due[:DRY_RUN_SHOWN]:
            processed = (
                f"{timezone.localtime(client.last_processed_at):%Y-%m-%d %H:%M}"
                if client.last_processed_at
                else "never"
            )
            self.stdout.write(
                f"{client.id!s:36}  {client.name[:24]:24}  {client.send_day:<8}  {processed}"
            )
        if count > DRY_RUN_SHOWN:
            self.stdout.write(f"... and {count - DRY_RUN_SHOWN} more.")

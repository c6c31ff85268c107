"""Start a processing run for one client (seed 004 "Process Client"): enqueued for the workers,
or with ``--now`` run in this process and its result printed."""

import uuid

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from processing.models import ProcessingJob
from processing.services.runs import processing_job_create, processing_job_run
from processing.tasks import process_client
from tradeengage.exceptions import BusinessRuleError, NotFoundError


class Command(BaseCommand):
    help = (
        "Create a processing run for a client and enqueue it for the workers; with --now, run "
        "it here and print how it ended (exits non-zero when it failed)."
    )

    def add_arguments(self, parser):
        parser.add_argument("client_id", metavar="CLIENT_ID", help="The company's id (a UUID).")
        parser.add_argument(
            "--now", action="store_true", help="Run it in this process instead of enqueueing it."
        )

    def handle(self, *args, client_id: str, now: bool, **options):
        try:
            client_id = uuid.UUID(client_id)
        except ValueError:
            raise CommandError(f"{client_id!r} is not a client id (a UUID)") from None
        try:
            job, _ = processing_job_create(
                client_id=client_id, trigger=ProcessingJob.Trigger.COMMAND
            )
        except (NotFoundError, BusinessRuleError) as exc:
            raise CommandError(str(exc)) from None

        if not now:
            process_client.delay(str(job.job_id))
            self.stdout.write(f"Enqueued processing job {job.job_id} for {job.client.name}.")
            return

        ran = processing_job_run(job_id=job.job_id)
        if ran is None:
            raise CommandError(f"Processing job {job.job_id} was taken by a worker first.")
        self._report(ran)
        if ran.status != ProcessingJob.Status.COMPLETED:
            raise CommandError(f"Processing job {ran.job_id} ended {ran.status}.")

    def _report(self, job: ProcessingJob) -> None:
        status = job.status
        if status == ProcessingJob.Status.COMPLETED:
            status = self.style.SUCCESS(status)
        elif status == ProcessingJob.Status.PENDING:
            status = self.style.WARNING(status)
            if job.next_attempt:
                status += (
                    f" (in the retry queue, next attempt "
                    f"{timezone.localtime(job.next_attempt):%Y-%m-%d %H:%M})"
                )
        else:
            status = self.style.ERROR(status)
        rows = [
            ("job", str(job.job_id)),
            ("client", f"{job.client.name} ({job.client_id})"),
            ("status", status),
            ("leads assigned", job.leads_assigned),
            ("jobs completed", job.jobs_completed),
            ("revenue", job.revenue if job.revenue is not None else "-"),
            ("report sent to", job.report_sent_to or "-"),
        ]
        if job.status == ProcessingJob.Status.COMPLETED and not job.report_sent_to:
            rows[-1] = ("report sent to", "- (the client has no notification email)")
        if job.error_message:
            rows.append(("error", job.error_message))
        for label, value in rows:
            self.stdout.write(f"{label:15} {value}")

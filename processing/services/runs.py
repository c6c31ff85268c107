"""A client's processing runs: starting one, running it step by step, the retry queue, and the
nightly schedule."""

import calendar
import logging
from datetime import date, datetime, timedelta
from itertools import islice

from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from jobs.models import Company
from processing.models import LOOKBACK, ProcessingJob
from processing.services.leads import leads_assign, leads_collect
from processing.services.reports import (
    Report,
    client_report,
    client_report_send,
    ops_alert_send,
)
from routing.models import IN_BACKSYNC, JobRouting
from routing.retry import CLIENT_PROCESSING_RETRY
from routing.services.backsync import routings_poll
from tradeengage import metrics
from tradeengage.exceptions import BusinessRuleError, NotFoundError

logger = logging.getLogger("processing")

DISPATCH_GRACE = timedelta(minutes=10)


class ClientNotActive(Exception):
    """The client was deactivated after its run was queued."""


# Starting a run


def processing_job_create(
    *, client_id, trigger: str, run_date: date | None = None
) -> tuple[ProcessingJob, bool]:
    """A new run for a client, which must exist (404) and be active (400). Nightly runs are one
    per client and night: a second trigger gets the existing run and ``created`` False."""
    client = Company.objects.filter(id=client_id).only("id", "is_active").first()
    if client is None:
        raise NotFoundError(f"Client {client_id} not found.")
    if not client.is_active:
        raise BusinessRuleError(f"Client {client_id} is not active.", field="client_id")
    run_date = run_date or timezone.localdate()
    # The run's task normally takes it at once; if that task is lost (the broker was down), the
    # retry queue finds the run due after this grace period.
    fields = {
        "client": client,
        "trigger": trigger,
        "run_date": run_date,
        "next_attempt": timezone.now() + DISPATCH_GRACE,
    }
    if trigger != ProcessingJob.Trigger.NIGHTLY:
        return ProcessingJob.objects.create(**fields), True
    try:
        with transaction.atomic():
            return ProcessingJob.objects.create(**fields), True
    except IntegrityError:
        existing = ProcessingJob.objects.get(
            client=client, run_date=run_date, trigger=ProcessingJob.Trigger.NIGHTLY
        )
        return existing, False


def processing_job_claim(*, job_id, now: datetime | None = None) -> ProcessingJob | None:
    """Take a pending run for processing (a conditional update: one taker only): a first attempt
    at any time, a retry once it is due. None when it is not pending or not due."""
    now = now or timezone.now()
    taken = ProcessingJob.objects.filter(
        Q(attempt_count=0) | Q(next_attempt__isnull=True) | Q(next_attempt__lte=now),
        job_id=job_id,
        status=ProcessingJob.Status.PENDING,
    ).update(status=ProcessingJob.Status.PROCESSING, last_attempt=now, updated_at=now)
    return ProcessingJob.objects.select_related("client").get(job_id=job_id) if taken else None


# The run


def processing_job_run(*, job_id, now: datetime | None = None, seed=None) -> ProcessingJob | None:
    """Run a pending processing job through every step. Returns the job as it ends (completed,
    or back in the retry queue, or failed), or None when someone else holds it."""
    now = now or timezone.now()
    job = processing_job_claim(job_id=job_id, now=now)
    if job is None:
        return None
    return processing_job_execute(job=job, now=now, seed=seed)


def processing_job_execute(*, job: ProcessingJob, now: datetime, seed=None) -> ProcessingJob:
    """The steps of a claimed run; see ``processing_job_run``."""
    try:
        client = client_load(client_id=job.client_id)
        client_data_refresh(client=client, now=now)
        leads = leads_collect(client=client, now=now)
        assigned = leads_assign(client=client, leads=leads, seed=seed or str(job.job_id), job=job)
        report = client_report(client=client, leads=assigned, now=now)
        sent_to = client_report_send(client=client, report=report)
        return processing_job_complete(job=job, report=report, sent_to=sent_to, now=now)
    except Exception as exc:
        logger.warning(
            "Client processing failed",
            extra={"job_id": str(job.job_id), "client_id": str(job.client_id), "error": str(exc)},
            exc_info=not isinstance(exc, ClientNotActive),
        )
        return processing_job_fail(job=job, error=f"{exc.__class__.__name__}: {exc}", now=now)


def client_load(*, client_id) -> Company:
    client = Company.objects.get(id=client_id)
    if not client.is_active:
        raise ClientNotActive(f"Client {client.name} is not active.")
    return client


def client_data_refresh(*, client: Company, now: datetime) -> dict | None:
    """When the client's data is older than 3 months or missing, ask its provider about its
    synced routings of the last 3 months (status, completion, revenue) through the sync
    engine's back-sync. Returns the back-sync's counts, or None when the data was fresh."""
    if client.last_processed_at and client.last_processed_at > now - LOOKBACK:
        return None
    routings = JobRouting.objects.filter(
        IN_BACKSYNC,
        company=client,
        external_id__isnull=False,
        created_at__gte=now - LOOKBACK,
    ).select_related("company")
    return routings_poll(routings=routings, now=now)


def processing_job_complete(
    *, job: ProcessingJob, report: Report, sent_to: str, now: datetime
) -> ProcessingJob:
    with transaction.atomic():
        Company.objects.filter(id=job.client_id).update(last_processed_at=now)
        job.status = ProcessingJob.Status.COMPLETED
        job.leads_assigned = len(report.leads)
        job.jobs_completed = report.jobs_completed
        job.revenue = report.revenue
        job.report_sent_to = sent_to
        job.error_message = None
        job.next_attempt = None
        job.attempt_count += 1
        job.save()
    metrics.client_processing_runs.labels(job.trigger, "completed").inc()
    logger.info(
        "Client processed",
        extra={
            "job_id": str(job.job_id),
            "client_id": str(job.client_id),
            "leads_assigned": job.leads_assigned,
        },
    )
    return job


# The retry queue


def processing_job_retry_now(*, job_id, now: datetime | None = None) -> ProcessingJob | None:
    """Run a pending or failed run now (the admin's "Retry now"). None when it is neither: a
    completed run, or one a worker holds right now, is left alone."""
    now = now or timezone.now()
    made_due = ProcessingJob.objects.filter(
        job_id=job_id, status__in=[ProcessingJob.Status.PENDING, ProcessingJob.Status.FAILED]
    ).update(status=ProcessingJob.Status.PENDING, next_attempt=now, updated_at=now)
    if not made_due:
        return None
    return processing_job_run(job_id=job_id, now=now)


def processing_job_fail(*, job: ProcessingJob, error: str, now: datetime) -> ProcessingJob:
    """A failed attempt: back to the retry queue (pending, due after the backoff), or, with
    the retries used up, failed for good and an alert to the operations addresses."""
    job.attempt_count += 1
    job.error_message = error
    delay = CLIENT_PROCESSING_RETRY.delay(retries_so_far=job.attempt_count - 1)
    if delay is not None:
        job.status = ProcessingJob.Status.PENDING
        job.next_attempt = now + timedelta(seconds=delay)
        job.save()
        metrics.client_processing_runs.labels(job.trigger, "retry").inc()
        return job
    job.status = ProcessingJob.Status.FAILED
    job.next_attempt = None
    job.save()
    metrics.client_processing_runs.labels(job.trigger, "failed").inc()
    ops_alert_send(job=job)
    return job


def retry_queue_claim(*, now: datetime, limit: int) -> list:
    """Due pending runs, oldest due first, claimed (``processing``) so no one else runs them:
    SKIP LOCKED on PostgreSQL; on SQLite the claim's transaction holds the write lock."""
    with transaction.atomic():
        due = ProcessingJob.objects.filter(
            status=ProcessingJob.Status.PENDING, next_attempt__lte=now
        ).order_by("next_attempt")
        if connection.vendor == "postgresql":
            due = due.select_for_update(skip_locked=True)
        ids = list(due.values_list("job_id", flat=True)[:limit])
        ProcessingJob.objects.filter(job_id__in=ids).update(
            status=ProcessingJob.Status.PROCESSING, last_attempt=now, updated_at=now
        )
    return ids


def retry_queue_process(*, now: datetime | None = None, limit: int = 100) -> dict:
    """Run the due retries now. Returns ``{"processed", "failed"}``: runs that completed, and
    runs that failed again (back in the queue, or failed for good)."""
    now = now or timezone.now()
    counts = {"processed": 0, "failed": 0}
    for job_id in retry_queue_claim(now=now, limit=limit):
        job = ProcessingJob.objects.select_related("client").get(job_id=job_id)
        job = processing_job_execute(job=job, now=now)
        if job.status == ProcessingJob.Status.COMPLETED:
            counts["processed"] += 1
        else:
            counts["failed"] += 1
    metrics.retry_queue_runs.labels("completed").inc(counts["processed"])
    metrics.retry_queue_runs.labels("failed").inc(counts["failed"])
    return counts


# The nightly run


def clients_due(*, day: date):
    """Active clients whose report is due on ``day`` by ``send_day``; on a month's last day,
    also those whose ``send_day`` is beyond that month's length (seed 004 "month-end")."""
    last_day = calendar.monthrange(day.year, day.month)[1]
    due = Q(send_day=day.day)
    if day.day == last_day:
        due |= Q(send_day__gt=last_day)
    return Company.objects.filter(due, is_active=True).order_by("id")


def nightly_run(*, day: date | None = None, enqueue, chunk_size: int = 500) -> dict:
    """The midnight run: a nightly run for each client due ``day``, made in bulk a chunk of
    clients at a time, each new one handed to ``enqueue(job_id)``; then the retry queue. A run
    is unique per client and night, so a repeated trigger makes and enqueues nothing again.
    Returns counts: due, enqueued, already_run, retries."""
    day = day or timezone.localdate()
    counts = {"due": 0, "enqueued": 0, "already_run": 0}
    due = clients_due(day=day).values_list("id", flat=True).iterator(chunk_size=chunk_size)
    while chunk := list(islice(due, chunk_size)):
        runs = [
            ProcessingJob(
                client_id=client_id,
                trigger=ProcessingJob.Trigger.NIGHTLY,
                run_date=day,
                next_attempt=timezone.now() + DISPATCH_GRACE,
            )
            for client_id in chunk
        ]
        ProcessingJob.objects.bulk_create(runs, ignore_conflicts=True)
        created = set(
            ProcessingJob.objects.filter(job_id__in=[run.job_id for run in runs]).values_list(
                "job_id", flat=True
            )
        )
        for run in runs:
            if run.job_id in created:
                enqueue(run.job_id)
        counts["due"] += len(chunk)
        counts["enqueued"] += len(created)
        counts["already_run"] += len(chunk) - len(created)
    metrics.nightly_run_clients.labels("enqueued").inc(counts["enqueued"])
    metrics.nightly_run_clients.labels("already_run").inc(counts["already_run"])
    counts["retries"] = retry_queue_process()
    logger.info("Nightly run", extra={"day": day.isoformat(), **counts})
    return counts

"""Client processing (seed 004 "Processing Logic"), read through seeds/README.md: a client is a
subscribing company, its cities are its service area, and the properties it is assigned are
leads (open jobs) in that area.

A run goes step by step, each step a service of its own in its own transaction: load the client,
refresh its data from its provider, collect leads, assign them, email the report, mark it done.
A step that fails rolls back and sends the run to the retry queue (``processing_job_fail``).
"""

import calendar
import logging
import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from itertools import islice

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, send_mail
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Q, Sum
from django.template.loader import render_to_string
from django.utils import timezone

from jobs.matching import Match
from jobs.models import Company, CompanySkill, Job, JobSkill, JobStatus, ServiceArea
from jobs.services import routings_store
from processing.models import ProcessingJob
from routing.models import JobRouting, SyncStatus
from routing.outbox import outbox_relay_kick
from routing.services import routings_poll
from tradeengage.exceptions import BusinessRuleError, NotFoundError

logger = logging.getLogger("processing")

LOOKBACK = timedelta(days=90)  # seed 004: "last 3 months"
OPEN_JOB_STATUSES = [JobStatus.PENDING, JobStatus.IN_PROGRESS]
LEAD_SCORE = 2.0
DISPATCH_GRACE = timedelta(minutes=10)


class ClientNotActive(Exception):
    """The client was deactivated after its run was queued."""


@dataclass(frozen=True)
class LeadRef:
    id: object
    created_at: datetime


@dataclass
class Report:
    leads: list
    jobs_completed: int
    revenue: Decimal
    period_start: datetime
    period_end: datetime


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
        company=client,
        sync_status=SyncStatus.SYNCED,
        external_id__isnull=False,
        created_at__gte=now - LOOKBACK,
    ).select_related("company")
    return routings_poll(routings=routings, now=now)


def leads_collect(*, client: Company, now: datetime) -> list["LeadRef"]:
    """Open jobs of the last 3 months in the client's service area whose required skills it
    holds at their levels, not requested by it and not already routed to it.

    Three indexed reads (the jobs in its area, their skills, its routings among them) and the
    skill check in Python: cheaper than one statement whose planner hashes every job skill."""
    areas = list(ServiceArea.objects.filter(company=client).values_list("kind", "code"))
    in_area = Q(pk__in=[])
    for kind, code in areas:
        in_area |= Q(state=code) if kind == ServiceArea.Kind.STATE else Q(zip_code__startswith=code)
    in_reach = Job.objects.filter(
        in_area, status__in=OPEN_JOB_STATUSES, created_at__gte=now - LOOKBACK
    ).exclude(created_by_company=client)
    candidates = list(in_reach.values_list("id", "created_at"))
    held = dict(CompanySkill.objects.filter(company=client).values_list("skill_id", "level"))
    lacking = {
        job_id
        for job_id, skill_id, level in JobSkill.objects.filter(
            job__in=in_reach.values("id")
        ).values_list("job_id", "skill_id", "level")
        if held.get(skill_id, 0) < level
    }
    routed = set(
        JobRouting.objects.filter(company=client, job__in=in_reach.values("id")).values_list(
            "job_id", flat=True
        )
    )
    return [
        LeadRef(id=job_id, created_at=created_at)
        for job_id, created_at in candidates
        if job_id not in lacking and job_id not in routed
    ]


def leads_order(leads: list[Job], *, seed) -> list[Job]:
    """Oldest months first, shuffled within each month (seeded: the same seed, the same order)."""
    rng = random.Random(str(seed))
    by_month: dict = {}
    for lead in sorted(leads, key=lambda job: (job.created_at, str(job.id))):
        by_month.setdefault(_month(lead), []).append(lead)
    ordered = []
    for month in sorted(by_month):
        batch = by_month[month]
        rng.shuffle(batch)
        ordered += batch
    return ordered


def _month(lead) -> tuple[int, int]:
    return lead.created_at.year, lead.created_at.month


def leads_assign(
    *, client: Company, leads: list["LeadRef"], seed, job: ProcessingJob | None = None
) -> list[Job]:
    """Route up to the client's ``leads_per_report`` leads to it, as job creation routes a job:
    a routing and its ``job_sync`` outbox event each, so they sync to the client's provider.

    With ``job``, the leads an earlier attempt of the run assigned count towards the quota and
    are returned first, and the new ones are recorded on it in the same transaction."""
    already = list(Job.objects.filter(id__in=job.assigned_job_ids)) if job else []
    quota = client.leads_per_report - len(already)
    if quota <= 0:
        return already
    # Whole months, oldest first, until the quota is filled, so the shuffle within the last
    # month taken is fair.
    candidates: list[LeadRef] = []
    for lead in sorted(leads, key=lambda ref: (ref.created_at, str(ref.id))):
        if len(candidates) >= quota and _month(lead) != _month(candidates[-1]):
            break
        candidates.append(lead)
    chosen_ids = [lead.id for lead in leads_order(candidates, seed=seed)[:quota]]
    by_id = Job.objects.in_bulk(chosen_ids)
    chosen = [by_id[lead_id] for lead_id in chosen_ids]
    required: dict = {}
    for job_id, slug in JobSkill.objects.filter(job__in=chosen).values_list(
        "job_id", "skill__slug"
    ):
        required.setdefault(job_id, []).append(slug)
    with transaction.atomic():
        routings_store(
            pairs=[
                (
                    lead,
                    Match(
                        company_id=client.id,
                        provider_type=client.provider_type,
                        score=LEAD_SCORE,
                        matched_skills=required.get(lead.id, []),
                        reason="Assigned as a lead in the client's report",
                    ),
                )
                for lead in chosen
            ]
        )
        if chosen:
            transaction.on_commit(outbox_relay_kick, robust=True)
        if job is not None and chosen:
            job.assigned_job_ids = [str(lead.id) for lead in [*already, *chosen]]
            ProcessingJob.objects.filter(job_id=job.job_id).update(
                assigned_job_ids=job.assigned_job_ids
            )
    return [*already, *chosen]


def client_report(*, client: Company, leads: list[Job], now: datetime) -> Report:
    """What the report says: the leads assigned, and the client's jobs completed with their
    revenue since its last report (at most the last 3 months)."""
    period_start = max(client.last_processed_at or now - LOOKBACK, now - LOOKBACK)
    completed = JobRouting.objects.filter(
        company=client,
        sync_status=SyncStatus.COMPLETED,
        completed_at__gte=period_start,  # including what the refresh just brought back
    ).aggregate(count=Count("id"), revenue=Sum("revenue"))
    return Report(
        leads=leads,
        jobs_completed=completed["count"],
        revenue=completed["revenue"] or Decimal("0.00"),
        period_start=period_start,
        period_end=now,
    )


def client_report_send(*, client: Company, report: Report) -> str:
    """Email the report (text and HTML) to the client's notification address. Returns the
    address, or "" when the client has none (the run still completes)."""
    if not client.notification_email:
        return ""
    context = {"client": client, "report": report}
    subject = f"Your TradeEngage report: {len(report.leads)} new lead" + (
        "" if len(report.leads) == 1 else "s"
    )
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string("processing/client_report.txt", context),
        to=[client.notification_email],
    )
    message.attach_alternative(
        render_to_string("processing/client_report.html", context), "text/html"
    )
    message.send()
    return client.notification_email


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


def retry_delay(*, failed_attempts: int) -> timedelta | None:
    """The wait before the next attempt after ``failed_attempts`` failures, or None when the
    retries (``PROCESSING_RETRY_BACKOFF_HOURS``: 1 h, 2 h, 4 h) are used up."""
    schedule = settings.PROCESSING_RETRY_BACKOFF_HOURS
    if failed_attempts > len(schedule):
        return None
    return timedelta(hours=schedule[failed_attempts - 1])


def processing_job_fail(*, job: ProcessingJob, error: str, now: datetime) -> ProcessingJob:
    """A failed attempt: back to the retry queue (pending, due after the backoff), or, with
    the retries used up, failed for good and an alert to the operations addresses."""
    job.attempt_count += 1
    job.error_message = error
    delay = retry_delay(failed_attempts=job.attempt_count)
    if delay is not None:
        job.status = ProcessingJob.Status.PENDING
        job.next_attempt = now + delay
        job.save()
        return job
    job.status = ProcessingJob.Status.FAILED
    job.next_attempt = None
    job.save()
    ops_alert_send(job=job)
    return job


def ops_alert_send(*, job: ProcessingJob) -> None:
    """seed 004: "After 3 failed attempts, send an error notification to the CTO"."""
    if not settings.OPS_ALERT_EMAILS:
        logger.error(
            "Client processing failed for good; no OPS_ALERT_EMAILS to tell",
            extra={"job_id": str(job.job_id)},
        )
        return
    client = Company.objects.get(id=job.client_id)
    send_mail(
        subject=f"[TradeEngage] Client processing failed: {client.name}",
        message=render_to_string("processing/ops_alert.txt", {"job": job, "client": client}),
        from_email=None,
        recipient_list=settings.OPS_ALERT_EMAILS,
    )


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
    counts["retries"] = retry_queue_process()
    logger.info("Nightly run", extra={"day": day.isoformat(), **counts})
    return counts

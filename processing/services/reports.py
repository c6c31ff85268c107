"""What a client is told (its report: leads assigned, jobs completed, revenue) and what ops are
told when a client's run fails for good."""

import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, send_mail
from django.db.models import Count, Sum
from django.template.loader import render_to_string

from jobs.models import Company, Job
from processing.models import LOOKBACK, ProcessingJob
from routing.models import JobRouting, SyncStatus

logger = logging.getLogger("processing")


@dataclass
class Report:
    leads: list
    jobs_completed: int
    revenue: Decimal
    period_start: datetime
    period_end: datetime


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

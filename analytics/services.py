"""The dashboard's figures over a window of time, and the daily roll-up that keeps closed days'
figures in one row each. Every query reads a time range through an index (jobs by creation;
routings by sync and completion; failed calls by start), so its cost follows the window's
volume, not the table's size."""

import logging
import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.db import connection
from django.db.models import Count, Min, Q, Sum
from django.utils import timezone

from analytics.models import DailyFigures
from jobs.models import Job
from routing.models import JobRouting, SyncAttempt

logger = logging.getLogger(__name__)

FIGURE_FIELDS = [
    "jobs_created",
    "routings_created",
    "routings_synced",
    "sync_retries",
    "sync_failures",
    "routings_completed",
    "revenue",
    "latency_p50_seconds",
    "latency_p95_seconds",
]


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    @classmethod
    def of_day(cls, day: date) -> "Window":
        tz = timezone.get_current_timezone()
        start = timezone.make_aware(datetime.combine(day, time.min), tz)
        return cls(
            start, timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min), tz)
        )


def window_figures(window: Window) -> dict:
    """Counts, revenue and job-to-synced latency percentiles of what happened in ``window``."""
    created = Job.objects.filter(created_at__gte=window.start, created_at__lt=window.end)
    jobs = created.count()
    routings_created = JobRouting.objects.filter(job__in=created.values("id")).count()
    synced = JobRouting.objects.filter(
        last_synced_at__gte=window.start, last_synced_at__lt=window.end
    ).count()
    failed_calls = (
        SyncAttempt.objects.order_by()
        .filter(
            outcome__in=[SyncAttempt.Outcome.RETRY, SyncAttempt.Outcome.FAILED],
            started_at__gte=window.start,
            started_at__lt=window.end,
        )
        .aggregate(
            retries=Count("outcome", filter=Q(outcome=SyncAttempt.Outcome.RETRY)),
            failures=Count("outcome", filter=Q(outcome=SyncAttempt.Outcome.FAILED)),
        )
    )
    completed = JobRouting.objects.filter(
        completed_at__gte=window.start, completed_at__lt=window.end
    ).aggregate(count=Count("id"), revenue=Sum("revenue"))
    latency = sync_latency(window)
    return {
        "jobs_created": jobs,
        "routings_created": routings_created,
        "routings_synced": synced,
        "sync_retries": failed_calls["retries"],
        "sync_failures": failed_calls["failures"],
        "routings_completed": completed["count"],
        "revenue": completed["revenue"] or Decimal("0.00"),
        "latency_p50_seconds": latency["p50"],
        "latency_p95_seconds": latency["p95"],
    }


_LATENCY_SQL = """
    SELECT AVG(seconds),
           percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds),
           percentile_cont(0.95) WITHIN GROUP (ORDER BY seconds)
    FROM (
        SELECT EXTRACT(EPOCH FROM last_synced_at - created_at) AS seconds
        FROM routing_jobrouting
        WHERE last_synced_at >= %s AND last_synced_at < %s
    ) AS synced
"""


def sync_latency(window: Window) -> dict:
    """Average, p50 and p95 seconds of routing created → synced, over the routings synced in
    ``window`` (None each without any)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_LATENCY_SQL, [window.start, window.end])
            figures = [None if value is None else float(value) for value in cursor.fetchone()]
        return dict(zip(("average", "p50", "p95"), figures, strict=True))
    pairs = JobRouting.objects.filter(
        last_synced_at__gte=window.start, last_synced_at__lt=window.end
    ).values_list("created_at", "last_synced_at")
    seconds = sorted((synced - created).total_seconds() for created, synced in pairs)
    return {
        "average": sum(seconds) / len(seconds) if seconds else None,
        "p50": _percentile(seconds, 0.5),
        "p95": _percentile(seconds, 0.95),
    }


def _percentile(ordered: list[float], fraction: float) -> float | None:
    """Linear interpolation between closest ranks, as PostgreSQL's percentile_cont."""
    if not ordered:
        return None
    rank = fraction * (len(ordered) - 1)
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def daily_figures_roll_up(*, today: date | None = None) -> int:
    """Roll up every closed day since the first job that has no row yet, and yesterday again
    (a transaction that committed just after midnight may have counted in it). Returns how many
    days were computed."""
    today = today or timezone.localdate()
    first = Job.objects.aggregate(first=Min("created_at"))["first"]
    if first is None:
        return 0
    first_day = timezone.localtime(first).date()
    done = set(
        DailyFigures.objects.filter(day__gte=first_day, day__lt=today).values_list("day", flat=True)
    )
    yesterday = today - timedelta(days=1)
    days = [
        first_day + timedelta(days=n)
        for n in range((today - first_day).days)
        if first_day + timedelta(days=n) not in done or first_day + timedelta(days=n) == yesterday
    ]
    for day in days:
        DailyFigures.objects.update_or_create(day=day, defaults=window_figures(Window.of_day(day)))
    if days:
        logger.info(
            "Daily figures rolled up", extra={"days": len(days), "last": days[-1].isoformat()}
        )
    return len(days)

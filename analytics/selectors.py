"""The ops dashboard (admin page and ``GET /api/v1/analytics/dashboard``): what the network did
and what the sync engine has yet to do. Closed days come from their roll-up rows; today and the
last 24 hours are read live through time indexes; the engine's state through the partial
indexes its own scans use. Nothing here reads a whole table."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.db.models import Count, Min, Q, Sum
from django.db.models.functions import TruncHour
from django.utils import timezone

from analytics.models import DailyFigures
from analytics.services import FIGURE_FIELDS, Window, sync_latency, window_figures
from jobs.models import Company, Job
from processing.models import ProcessingJob
from routing.models import JobRouting, OutboxEvent, OutboxStatus, SyncAttempt, SyncStatus

CHART_DAYS = 30
TOP_FAILING_COMPANIES = 10
_COUNTED = [f for f in FIGURE_FIELDS if not f.startswith("latency")]


def dashboard(*, now: datetime | None = None) -> dict:
    now = now or timezone.now()
    today = timezone.localtime(now).date()
    today_figures = window_figures(Window(Window.of_day(today).start, now))
    days = _daily_series(today, today_figures)
    last_24h = Window(now - timedelta(hours=24), now)
    totals = _totals(today_figures)
    hourly = _hourly_series(now)
    synced_24h = sum(hour["routings_synced"] for hour in hourly)
    failed_24h = sum(hour["sync_failures"] + hour["sync_retries"] for hour in hourly)
    latency = sync_latency(last_24h)
    state = _routing_state()
    return {
        "generated_at": now,
        "total_jobs": totals["jobs_created"],
        "total_routings": totals["routings_created"],
        "jobs_created_24h": sum(hour["jobs_created"] for hour in hourly),
        "routings_synced_24h": synced_24h,
        "sync_failures_24h": failed_24h,
        "sync_success_rate": (
            round(synced_24h / (synced_24h + failed_24h), 4) if synced_24h + failed_24h else None
        ),
        "average_sync_latency_seconds": latency["average"],
        "sync_latency_p50_seconds": latency["p50"],
        "sync_latency_p95_seconds": latency["p95"],
        **state,
        "backlog": _backlog(now),
        "revenue_mtd": _revenue_month_to_date(today, days),
        "last_nightly_run": _last_nightly_run(),
        "top_failing_companies": _top_failing_companies(),
        "hourly": hourly,
        "daily": days,
    }


def _daily_series(today: date, today_figures: dict) -> list[dict]:
    """The last 30 days, today included (live); a closed day not rolled up yet shows zeros."""
    first = today - timedelta(days=CHART_DAYS - 1)
    rows = {
        row["day"]: row
        for row in DailyFigures.objects.filter(day__gte=first, day__lt=today).values(
            "day", *FIGURE_FIELDS
        )
    }
    series = []
    for n in range(CHART_DAYS - 1):
        day = first + timedelta(days=n)
        row = rows.get(day) or {"day": day, **_zeros()}
        row["rolled_up"] = day in rows
        series.append(row)
    series.append({"day": today, **today_figures, "rolled_up": False})
    return series


def _zeros() -> dict:
    return {
        **{field: 0 for field in _COUNTED},
        "revenue": Decimal("0.00"),
        "latency_p50_seconds": None,
        "latency_p95_seconds": None,
    }


def _totals(today_figures: dict) -> dict:
    closed = DailyFigures.objects.aggregate(
        jobs_created=Sum("jobs_created"), routings_created=Sum("routings_created")
    )
    return {
        field: (closed[field] or 0) + today_figures[field]
        for field in ("jobs_created", "routings_created")
    }


def _hourly_series(now: datetime) -> list[dict]:
    """The last 24 hours, by hour: jobs created, routings synced, failed provider calls. Hours
    are cut in UTC, so a daylight-saving change cannot make two of them one."""
    tz = UTC
    first = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=23)
    jobs = (
        Job.objects.filter(created_at__gte=first, created_at__lte=now)
        .annotate(hour=TruncHour("created_at", tzinfo=tz))
        .values("hour")
        .annotate(n=Count("id"))
    )
    synced = (
        JobRouting.objects.filter(last_synced_at__gte=first, last_synced_at__lte=now)
        .annotate(hour=TruncHour("last_synced_at", tzinfo=tz))
        .values("hour")
        .annotate(n=Count("id"))
    )
    failed = (
        SyncAttempt.objects.filter(
            outcome__in=[SyncAttempt.Outcome.RETRY, SyncAttempt.Outcome.FAILED],
            started_at__gte=first,
            started_at__lte=now,
        )
        .annotate(hour=TruncHour("started_at", tzinfo=tz))
        .values("hour")
        .annotate(
            retries=Count("id", filter=Q(outcome=SyncAttempt.Outcome.RETRY)),
            failures=Count("id", filter=Q(outcome=SyncAttempt.Outcome.FAILED)),
        )
    )
    by_hour = {first + timedelta(hours=n): _hour(first + timedelta(hours=n)) for n in range(24)}
    for row in jobs:
        by_hour[row["hour"]]["jobs_created"] = row["n"]
    for row in synced:
        by_hour[row["hour"]]["routings_synced"] = row["n"]
    for row in failed:
        by_hour[row["hour"]].update(sync_retries=row["retries"], sync_failures=row["failures"])
    return list(by_hour.values())


def _hour(start: datetime) -> dict:
    return {
        "hour": start,
        "jobs_created": 0,
        "routings_synced": 0,
        "sync_retries": 0,
        "sync_failures": 0,
    }


def _routing_state() -> dict:
    """Routings by where they stand now. Pending, in progress and failed are the sync scan's
    small sets; synced-but-not-completed is the back-sync's partial index."""
    unfinished = JobRouting.objects.filter(
        sync_status__in=[SyncStatus.PENDING, SyncStatus.PROCESSING, SyncStatus.FAILED]
    ).aggregate(
        waiting=Count("id", filter=Q(sync_status=SyncStatus.PENDING)),
        in_progress=Count("id", filter=Q(sync_status=SyncStatus.PROCESSING)),
        failed=Count("id", filter=Q(sync_status=SyncStatus.FAILED)),
    )
    synced_open = JobRouting.objects.filter(sync_status=SyncStatus.SYNCED).count()
    return {
        "active_routings": unfinished["waiting"] + unfinished["in_progress"] + synced_open,
        "routings_waiting": unfinished["waiting"],
        "routings_in_progress": unfinished["in_progress"],
        "routings_synced_open": synced_open,
        "routings_failed": unfinished["failed"],
    }


def _backlog(now: datetime) -> dict:
    events = OutboxEvent.objects.filter(
        status__in=[OutboxStatus.PENDING, OutboxStatus.PROCESSING, OutboxStatus.DEAD]
    ).aggregate(
        pending=Count("id", filter=Q(status=OutboxStatus.PENDING)),
        in_flight=Count("id", filter=Q(status=OutboxStatus.PROCESSING)),
        dead=Count("id", filter=Q(status=OutboxStatus.DEAD)),
        oldest=Min("created_at", filter=Q(status=OutboxStatus.PENDING)),
    )
    oldest = events.pop("oldest")
    return {
        **events,
        "oldest_pending_age_seconds": (
            round((now - oldest).total_seconds(), 1) if oldest is not None else None
        ),
    }


def _revenue_month_to_date(today: date, days: list[dict]) -> Decimal:
    """This month's completions' revenue: its closed days from the roll-ups, today live."""
    month_start = today.replace(day=1)
    closed = DailyFigures.objects.filter(day__gte=month_start, day__lt=today).aggregate(
        revenue=Sum("revenue")
    )["revenue"] or Decimal("0.00")
    return closed + days[-1]["revenue"]


def _last_nightly_run() -> dict | None:
    nightly = ProcessingJob.objects.filter(trigger=ProcessingJob.Trigger.NIGHTLY)
    last_day = nightly.order_by("-run_date").values_list("run_date", flat=True).first()
    if last_day is None:
        return None
    figures = nightly.filter(run_date=last_day).aggregate(
        clients=Count("job_id"),
        completed=Count("job_id", filter=Q(status=ProcessingJob.Status.COMPLETED)),
        pending=Count(
            "job_id",
            filter=Q(status__in=[ProcessingJob.Status.PENDING, ProcessingJob.Status.PROCESSING]),
        ),
        failed=Count("job_id", filter=Q(status=ProcessingJob.Status.FAILED)),
        leads_assigned=Sum("leads_assigned"),
        revenue=Sum("revenue"),
    )
    return {
        "run_date": last_day,
        **figures,
        "leads_assigned": figures["leads_assigned"] or 0,
        "revenue": figures["revenue"] or Decimal("0.00"),
    }


def _top_failing_companies() -> list[dict]:
    rows = (
        JobRouting.objects.filter(sync_status=SyncStatus.FAILED)
        .values("company_id")
        .annotate(failed=Count("id"))
        .order_by("-failed", "company_id")[:TOP_FAILING_COMPANIES]
    )
    names = dict(
        Company.objects.filter(id__in=[row["company_id"] for row in rows]).values_list("id", "name")
    )
    return [
        {
            "company_id": row["company_id"],
            "name": names.get(row["company_id"], ""),
            "failed": row["failed"],
        }
        for row in rows
    ]

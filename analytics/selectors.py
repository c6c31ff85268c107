"""The ops dashboard (admin page and ``GET /api/v1/analytics/dashboard``): what the network did
and what the sync engine has yet to do. Closed days come from their roll-up rows; today and the
last 24 hours are read live through time indexes; the engine's state through the partial
indexes its own scans use. Nothing here reads a whole table."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.db.models import Count, Max, Min, Q, Sum
from django.db.models.functions import TruncHour
from django.utils import timezone

from analytics.models import DailyFigures
from analytics.services import FIGURE_FIELDS, Window, sync_latency, window_figures
from jobs.models import Company, Job
from processing.models import ProcessingJob
from routing.models import (
    IN_BACKSYNC,
    JobRouting,
    OutboxEvent,
    OutboxStatus,
    SyncAttempt,
    SyncStatus,
)

CHART_DAYS = 30
TOP_FAILING_COMPANIES = 10
_COUNTED = [f for f in FIGURE_FIELDS if not f.startswith("latency")]


def dashboard(*, now: datetime | None = None) -> dict:
    now = now or timezone.now()
    today = timezone.localtime(now).date()
    last_rolled_up = DailyFigures.objects.aggregate(last=Max("day"))["last"]
    days = _daily_series(today, now, last_rolled_up)
    live_days = [day for day in days if not day["rolled_up"]]
    totals = _totals(live_days)
    hourly = _hourly_series(now)
    synced_24h = sum(hour["routings_synced"] for hour in hourly)
    failed_24h = sum(hour["sync_failures"] + hour["sync_retries"] for hour in hourly)
    latency = sync_latency(Window(now - timedelta(hours=24), now))
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
        **_routing_state(),
        "backlog": _backlog(now),
        "revenue_mtd": _revenue_month_to_date(today, live_days),
        "last_nightly_run": _last_nightly_run(),
        "top_failing_companies": _top_failing_companies(),
        "hourly": hourly,
        "daily": days,
    }


def _daily_series(today: date, now: datetime, last_rolled_up: date | None) -> list[dict]:
    """The last 30 days. Closed days from their roll-up; today, and any day after the last one
    rolled up (the roll-up runs at :05, and may have failed), read live. Before any roll-up,
    the whole 30 days are read live."""
    first = today - timedelta(days=CHART_DAYS - 1)
    live_from = first if last_rolled_up is None else max(first, last_rolled_up + timedelta(days=1))
    rows = {
        row["day"]: row
        for row in DailyFigures.objects.filter(day__gte=first, day__lt=live_from).values(
            "day", *FIGURE_FIELDS
        )
    }
    series = []
    for n in range(CHART_DAYS):
        day = first + timedelta(days=n)
        if day >= live_from:
            window = Window.of_day(day)
            row = {"day": day, **window_figures(Window(window.start, min(window.end, now)))}
        else:
            row = rows.get(day) or {"day": day, **_zeros()}  # a day before the first job
        row["rolled_up"] = day < live_from
        series.append(row)
    return series


def _zeros() -> dict:
    return {
        **{field: 0 for field in _COUNTED},
        "revenue": Decimal("0.00"),
        "latency_p50_seconds": None,
        "latency_p95_seconds": None,
    }


def _totals(live_days: list[dict]) -> dict:
    """Every rolled-up day's counts and the live days'."""
    closed = DailyFigures.objects.aggregate(
        jobs_created=Sum("jobs_created"), routings_created=Sum("routings_created")
    )
    return {
        field: (closed[field] or 0) + sum(day[field] for day in live_days)
        for field in ("jobs_created", "routings_created")
    }


def _hourly_series(now: datetime) -> list[dict]:
    """The last 24 hours by hour (UTC hours, so a daylight-saving change cannot merge two):
    jobs created, routings synced, failed provider calls. The first and last hours are partial,
    so the hours add up to exactly the last 24 hours."""
    since = now - timedelta(hours=24)
    first = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    hours = int((now - first).total_seconds() // 3600) + 1
    jobs = (
        Job.objects.filter(created_at__gt=since, created_at__lte=now)
        .order_by()
        .annotate(hour=TruncHour("created_at", tzinfo=UTC))
        .values("hour")
        .annotate(n=Count("*"))
    )
    synced = (
        JobRouting.objects.filter(last_synced_at__gt=since, last_synced_at__lte=now)
        .order_by()
        .annotate(hour=TruncHour("last_synced_at", tzinfo=UTC))
        .values("hour")
        .annotate(n=Count("*"))
    )
    failed = (
        SyncAttempt.objects.filter(
            outcome__in=[SyncAttempt.Outcome.RETRY, SyncAttempt.Outcome.FAILED],
            started_at__gt=since,
            started_at__lte=now,
        )
        .order_by()
        .annotate(hour=TruncHour("started_at", tzinfo=UTC))
        .values("hour")
        .annotate(
            retries=Count("outcome", filter=Q(outcome=SyncAttempt.Outcome.RETRY)),
            failures=Count("outcome", filter=Q(outcome=SyncAttempt.Outcome.FAILED)),
        )
    )
    by_hour = {first + timedelta(hours=n): _hour(first + timedelta(hours=n)) for n in range(hours)}
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
    """Routings by where they stand now, each set counted from an index alone: pending, in
    progress and failed through the sync scan's index, synced-but-not-completed (nor declined)
    through the back-sync's."""
    unfinished = JobRouting.objects.filter(
        sync_status__in=[SyncStatus.PENDING, SyncStatus.PROCESSING, SyncStatus.FAILED]
    ).aggregate(
        waiting=Count("sync_status", filter=Q(sync_status=SyncStatus.PENDING)),
        in_progress=Count("sync_status", filter=Q(sync_status=SyncStatus.PROCESSING)),
        failed=Count("sync_status", filter=Q(sync_status=SyncStatus.FAILED)),
    )
    # A routing its company declined stays synced but is no longer open: the back-sync's set.
    synced_open = JobRouting.objects.filter(IN_BACKSYNC).count()
    return {
        "active_routings": unfinished["waiting"] + unfinished["in_progress"] + synced_open,
        "routings_waiting": unfinished["waiting"],
        "routings_in_progress": unfinished["in_progress"],
        "routings_synced_open": synced_open,
        "routings_failed": unfinished["failed"],
    }


def _backlog(now: datetime) -> dict:
    """One count per status, so each reads its own partial index (one query over the three
    statuses reads the whole outbox)."""
    events = OutboxEvent.objects.order_by()
    pending = events.filter(status=OutboxStatus.PENDING).aggregate(
        n=Count("*"), oldest=Min("created_at")
    )
    return {
        "pending": pending["n"],
        "in_flight": events.filter(status=OutboxStatus.PROCESSING).count(),
        "dead": events.filter(status=OutboxStatus.DEAD).count(),
        "oldest_pending_age_seconds": (
            round((now - pending["oldest"]).total_seconds(), 1)
            if pending["oldest"] is not None
            else None
        ),
    }


def _revenue_month_to_date(today: date, live_days: list[dict]) -> Decimal:
    """This month's completions' revenue: its rolled-up days and its live days."""
    month_start = today.replace(day=1)
    live = [day for day in live_days if day["day"] >= month_start]
    closed = DailyFigures.objects.filter(
        day__gte=month_start, day__lt=min(day["day"] for day in live_days)
    ).aggregate(revenue=Sum("revenue"))["revenue"] or Decimal("0.00")
    return closed + sum((day["revenue"] for day in live), Decimal("0.00"))


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
        .order_by()
        .values("company_id")
        .annotate(failed=Count("*"))
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

"""The ops dashboard in the admin (``/admin/dashboard/``, linked from the admin index): the
figures of ``analytics.selectors.dashboard`` with charts, each figure a link to the filtered
admin list behind it."""

from datetime import timedelta
from urllib.parse import urlencode

from django.contrib import admin
from django.contrib.auth.decorators import permission_required
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from analytics.models import DailyFigures
from analytics.selectors import dashboard
from analytics.services import FIGURE_FIELDS
from tradeengage.admin import ViewOnlyAdminMixin


@admin.register(DailyFigures)
class DailyFiguresAdmin(ViewOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["day", *FIGURE_FIELDS, "computed_at"]
    date_hierarchy = "day"


def _changelist(name: str, **filters) -> str:
    url = reverse(f"admin:{name}_changelist")
    return f"{url}?{urlencode(filters)}" if filters else url


def dashboard_links(figures: dict) -> dict:
    # Aware moments, written as the admin's own date filters write them.
    now = timezone.localtime(figures["generated_at"]).replace(microsecond=0)
    since = str(now - timedelta(hours=24))
    month_start = str(now.replace(day=1, hour=0, minute=0, second=0))
    routings = "routing_jobrouting"
    links = {
        "jobs": _changelist("jobs_job"),
        "jobs_24h": _changelist("jobs_job", created_at__gte=since),
        "synced_24h": _changelist(routings, last_synced_at__gte=since),
        "waiting": _changelist(routings, sync_status__exact="pending"),
        "in_progress": _changelist(routings, sync_status__exact="processing"),
        "synced_open": _changelist(routings, sync_status__exact="synced", declined="no"),
        "failed": _changelist(routings, sync_status__exact="failed"),
        "revenue_mtd": _changelist(routings, completed_at__gte=month_start),
        "events_pending": _changelist("routing_outboxevent", status="pending"),
        "events_in_flight": _changelist("routing_outboxevent", status="processing"),
        "dead": _changelist("routing_outboxevent", status="dead"),
        "daily_figures": _changelist("analytics_dailyfigures"),
    }
    nightly = figures["last_nightly_run"]
    if nightly:
        day = nightly["run_date"]
        links["nightly"] = _changelist(
            "processing_processingjob",
            trigger__exact="nightly",
            run_date__gte=day.isoformat(),
            run_date__lt=(day + timedelta(days=1)).isoformat(),
        )
    return links


def _chart_data(figures: dict) -> dict:
    return {
        "hourly": {
            "labels": [timezone.localtime(h["hour"]).strftime("%H:00") for h in figures["hourly"]],
            "jobs_created": [h["jobs_created"] for h in figures["hourly"]],
            "routings_synced": [h["routings_synced"] for h in figures["hourly"]],
            "failed_calls": [h["sync_retries"] + h["sync_failures"] for h in figures["hourly"]],
        },
        "daily": {
            "labels": [d["day"].strftime("%b %d") for d in figures["daily"]],
            "jobs_created": [d["jobs_created"] for d in figures["daily"]],
            "routings_synced": [d["routings_synced"] for d in figures["daily"]],
            "failed_calls": [d["sync_retries"] + d["sync_failures"] for d in figures["daily"]],
            "latency_p50": [d["latency_p50_seconds"] for d in figures["daily"]],
            "latency_p95": [d["latency_p95_seconds"] for d in figures["daily"]],
            "revenue": [float(d["revenue"]) for d in figures["daily"]],
        },
    }


@permission_required("routing.view_jobrouting", raise_exception=True)
def dashboard_view(request):
    figures = dashboard()
    context = {
        **admin.site.each_context(request),
        "title": "Dashboard",
        "figures": figures,
        "links": dashboard_links(figures),
        "charts": _chart_data(figures),
    }
    return TemplateResponse(request, "admin/analytics/dashboard.html", context)

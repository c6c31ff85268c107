"""The ops admin of client processing (seed 004's ``processing_jobs``): every run with its
attempts and error, read-only, and "Retry now" to run a pending or failed one at once.

A run changes only through the services, as the sync engine's rows do in ``routing.admin``.
"""

from collections import Counter

from django.contrib import admin
from django.utils.html import format_html

from processing.models import ProcessingJob
from processing.services.runs import processing_job_retry_now
from tradeengage.admin import (
    ReadOnlyAdminMixin,
    action_result_level,
    action_result_message,
    error_in_full,
    error_preview,
)

# "Retry now" runs each job inside the request (provider back-sync, lead assignment, the
# report email): at most this many per click, so a batch cannot hold a web worker for long.
RETRY_NOW_LIMIT = 20


@admin.register(ProcessingJob)
class ProcessingJobAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "short_id",
        "client",
        "status",
        "trigger",
        "run_date",
        "attempt_count",
        "last_attempt",
        "next_attempt",
        "leads_assigned",
        "error",
    ]
    list_display_links = ["short_id"]
    list_filter = ["status", "trigger", "run_date", "created_at"]
    search_fields = ["=job_id", "client__name"]
    list_select_related = ["client"]
    # The full count scans the whole table on every page; the filtered count is enough.
    show_full_result_count = False
    ordering = ["-created_at"]
    fieldsets = [
        (None, {"fields": ["job_id", "client", "status", "trigger", "run_date", "error_text"]}),
        ("Attempts", {"fields": ["attempt_count", "last_attempt", "next_attempt"]}),
        (
            "Report",
            {
                "fields": [
                    "leads_assigned",
                    "assigned_job_ids",
                    "jobs_completed",
                    "revenue",
                    "report_sent_to",
                ]
            },
        ),
        (None, {"fields": ["created_at", "updated_at"]}),
    ]
    readonly_fields = [field for _, options in fieldsets for field in options["fields"]]
    actions = ["retry_now"]

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser

    @admin.display(description="job", ordering="job_id")
    def short_id(self, job):
        return format_html('<span title="{}">{}</span>', job.job_id, str(job.job_id)[:8])

    @admin.display(description="error")
    def error(self, job):
        return error_preview(job.error_message)

    @admin.display(description="error")
    def error_text(self, job):
        return error_in_full(job.error_message)

    @admin.action(
        description=f"Retry now (run here, up to {RETRY_NOW_LIMIT})", permissions=["change"]
    )
    def retry_now(self, request, queryset):
        selected = queryset.count()
        tally = Counter()
        for job in queryset[:RETRY_NOW_LIMIT]:
            tally[retry_now_one(job)] += 1
        tally["not tried"] += max(selected - RETRY_NOW_LIMIT, 0)
        self.message_user(request, retry_now_message(tally), retry_now_level(tally))


def retry_now_one(job: ProcessingJob) -> str:
    """Run a pending or failed run now; how it ended, for the tally."""
    job = processing_job_retry_now(job_id=job.job_id)
    if job is None:
        return "left alone"
    return "completed" if job.status == ProcessingJob.Status.COMPLETED else "failed again"


def retry_now_message(tally: Counter) -> str:
    not_tried = ""
    if tally["not tried"]:
        not_tried = (
            f"{tally['not tried']} not tried: Retry now runs at most {RETRY_NOW_LIMIT} "
            "jobs per click."
        )
    return action_result_message(
        "Retry now",
        [
            (tally["completed"], "completed"),
            (tally["failed again"], "failed again"),
            (tally["left alone"], "left alone (only pending or failed runs are retried)"),
        ],
        nothing="nothing run",
        not_tried_note=not_tried,
    )


def retry_now_level(tally: Counter) -> int:
    return action_result_level(
        succeeded=tally["completed"], failed=tally["failed again"], not_tried=tally["not tried"]
    )

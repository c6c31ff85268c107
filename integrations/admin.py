from django.contrib import admin

from integrations.models import MockJob, SimulatedJob, WebhookReceipt
from tradeengage.admin import ViewOnlyAdminMixin


@admin.register(MockJob)
class MockJobAdmin(ViewOnlyAdminMixin, admin.ModelAdmin):
    """What the mock field-service system holds: read-only, like someone else's system."""

    list_display = [
        "external_id",
        "idempotency_key",
        "company_id",
        "status",
        "create_calls",
        "revenue",
        "created_at",
        "completed_at",
    ]
    list_filter = ["status", "created_at"]
    search_fields = ["=external_id", "=idempotency_key", "summary"]
    show_full_result_count = False


@admin.register(SimulatedJob)
class SimulatedJobAdmin(ViewOnlyAdminMixin, admin.ModelAdmin):
    """The ServiceTitan simulation's jobs. Read-only: they change through its API (status moves,
    cancellations) as they would at ServiceTitan."""

    list_display = [
        "job_number",
        "tenant",
        "booking_id",
        "first_name",
        "last_name",
        "city",
        "problem_type",
        "status",
        "priority",
        "business_unit",
        "invoice_total",
        "created_at",
    ]
    list_filter = ["status", "priority", "problem_type", "business_unit", "created_at"]
    search_fields = ["=booking_id", "last_name", "email", "phone", "zip"]
    show_full_result_count = False


@admin.register(WebhookReceipt)
class WebhookReceiptAdmin(ViewOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["provider", "event_id", "received_at"]
    list_filter = ["provider", "received_at"]
    search_fields = ["=event_id"]

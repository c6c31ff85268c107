from django.contrib import admin

from integrations.models import MockJob, SimulatedJob, WebhookReceipt


@admin.register(MockJob)
class MockJobAdmin(admin.ModelAdmin):
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

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(SimulatedJob)
class SimulatedJobAdmin(admin.ModelAdmin):
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

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(WebhookReceipt)
class WebhookReceiptAdmin(admin.ModelAdmin):
    list_display = ["provider", "event_id", "received_at"]
    list_filter = ["provider", "received_at"]
    search_fields = ["=event_id"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

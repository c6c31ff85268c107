from django.contrib import admin

from integrations.models import MockJob


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

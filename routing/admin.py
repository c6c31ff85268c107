from django.contrib import admin

from routing.models import JobRouting, OutboxEvent


@admin.register(JobRouting)
class JobRoutingAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "job",
        "company",
        "sync_status",
        "matching_score",
        "retry_count",
        "next_retry_at",
        "last_sync_attempt",
        "error_message",
    ]
    list_filter = ["sync_status", "company__provider_type", "created_at"]
    search_fields = ["=id", "=job__id", "company__name", "external_id", "error_message"]
    list_select_related = ["job", "company"]
    autocomplete_fields = ["job", "company"]
    readonly_fields = ["id", "created_at", "updated_at", "claimed_at"]
    date_hierarchy = "created_at"


@admin.register(OutboxEvent)
class OutboxEventAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "event_type",
        "aggregate_id",
        "status",
        "attempts",
        "available_at",
        "processed_at",
    ]
    list_filter = ["status", "event_type"]
    search_fields = ["=aggregate_id", "last_error"]
    readonly_fields = ["created_at", "claimed_at", "processed_at"]
    date_hierarchy = "created_at"

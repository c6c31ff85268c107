"""The ops admin of the sync engine (DESIGN.md "The core flow", step 3): failed syncs with their
errors and attempt history, dead letters, the backlog, and the actions that send work back; and
outbound webhooks' endpoints and deliveries with their attempts ("Disable", "Redeliver").

Everything the engine writes is read-only here: a routing or an event changes only through the
actions, which call the services, so a hand edit can never race a sync in flight.
"""

import time
from collections import Counter

from django.contrib import admin, messages
from django.db.models import Exists, OuterRef, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from routing.models import (
    JobRouting,
    OutboxEvent,
    OutboxStatus,
    SyncAttempt,
    SyncStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookDeliveryStatus,
    WebhookEndpoint,
)
from routing.services.requeue import routings_requeue
from routing.services.sync import routing_sync_now
from routing.services.webhooks import webhook_delivery_redeliver, webhook_endpoint_disable
from tradeengage.admin import (
    ReadOnlyAdminMixin,
    action_result_level,
    action_result_message,
    error_in_full,
    error_preview,
)

# "Retry now" calls providers inside the request: at most this many routings, and no new call
# once this many seconds have passed, so a provider that is down cannot hold a web worker past
# its timeout. Requeue hands any number to the workers instead.
RETRY_NOW_LIMIT = 50
RETRY_NOW_SECONDS = 15

# A pending routing with a next attempt scheduled: it failed and will be retried, or its company
# has no provider yet. A routing never tried, or just requeued, has none.
WAITING_FOR_RETRY = Q(sync_status=SyncStatus.PENDING, next_retry_at__isnull=False)


def sync_backlog() -> dict[str, int]:
    """What the engine has yet to do: outbox events due now, in flight and dead, and routings
    failed or waiting for a retry. A count each, each answered from the partial or status index
    its set has, so the box costs the same with a million rows behind it."""
    events = OutboxEvent.objects.order_by()
    routings = JobRouting.objects.order_by()
    return {
        "events_due": events.filter(
            status=OutboxStatus.PENDING, available_at__lte=timezone.now()
        ).count(),
        "events_in_flight": events.filter(status=OutboxStatus.PROCESSING).count(),
        "dead_letters": events.filter(status=OutboxStatus.DEAD).count(),
        "routings_failed": routings.filter(sync_status=SyncStatus.FAILED).count(),
        "routings_waiting": routings.filter(WAITING_FOR_RETRY).count(),
    }


class HasErrorFilter(admin.SimpleListFilter):
    title = "error"
    parameter_name = "has_error"

    def lookups(self, request, model_admin):
        return [("yes", "Has an error"), ("no", "No error")]

    def queryset(self, request, queryset):
        has_error = Q(error_message__isnull=False) & ~Q(error_message="")
        if self.value() == "yes":
            return queryset.filter(has_error)
        if self.value() == "no":
            return queryset.exclude(has_error)
        return queryset


class WaitingForRetryFilter(admin.SimpleListFilter):
    title = "waiting for a retry"
    parameter_name = "waiting"

    def lookups(self, request, model_admin):
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(WAITING_FOR_RETRY)
        if self.value() == "no":
            return queryset.exclude(WAITING_FOR_RETRY)
        return queryset


class DeclinedFilter(admin.SimpleListFilter):
    title = "declined"
    parameter_name = "declined"

    def lookups(self, request, model_admin):
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(declined_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(declined_at__isnull=True)
        return queryset


class AttemptHistoryInline(admin.TabularInline):
    """Attempts are part of what they were made for (a routing, a delivery): read only, and
    seen by whoever may see their parent, without a permission of their own on a model the
    admin does not list."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        parent = self.parent_model._meta
        return request.user.has_perm(
            f"{parent.app_label}.view_{parent.model_name}"
        ) or request.user.has_perm(f"{parent.app_label}.change_{parent.model_name}")

    @admin.display(description="error")
    def attempt_error(self, attempt):
        return error_in_full(attempt.error)


class SyncAttemptInline(AttemptHistoryInline):
    model = SyncAttempt
    verbose_name_plural = "attempt history (newest first)"
    fields = ["number", "started_at", "provider", "outcome", "duration_ms", "attempt_error"]
    readonly_fields = fields
    ordering = ["-started_at", "-id"]


@admin.register(JobRouting)
class JobRoutingAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "short_id",
        "job",
        "company",
        "provider",
        "sync_status",
        "retry_count",
        "last_sync_attempt",
        "next_retry_at",
        "external_id",
        "error",
        "declined",
    ]
    list_display_links = ["short_id"]
    list_filter = [
        "sync_status",
        DeclinedFilter,
        WaitingForRetryFilter,
        HasErrorFilter,
        "company__provider_type",
        ("company", admin.RelatedOnlyFieldListFilter),
        "created_at",
        "last_sync_attempt",
        "last_synced_at",
        "completed_at",
    ]
    search_fields = [
        "=id",
        "=job__id",
        "company__name",
        "=external_id",
        "=provider_job_id",
        "=provider_job_number",
        "error_message",
    ]
    list_select_related = ["job", "company"]
    # The full count scans the whole table on every page; the filtered count is enough.
    show_full_result_count = False
    ordering = ["-created_at"]
    fieldsets = [
        (None, {"fields": ["id", "job", "company", "sync_status", "external_id", "error_text"]}),
        (
            "Sync",
            {
                "fields": [
                    "retry_count",
                    "last_sync_attempt",
                    "next_retry_at",
                    "last_synced_at",
                    "claimed_at",
                    "lease_expires_at",
                ]
            },
        ),
        (
            "At the provider",
            {
                "fields": [
                    "provider_job_id",
                    "provider_job_number",
                    "provider_status",
                    "status_checked_at",
                    "status_check_due_at",
                    "completed_at",
                    "revenue",
                    "declined_at",
                    "decline_reason",
                ]
            },
        ),
        (
            "Match",
            {"fields": ["matching_score", "matched_skills", "missing_skills", "match_reason"]},
        ),
        (None, {"fields": ["created_at", "updated_at"]}),
    ]
    readonly_fields = [field for _, options in fieldsets for field in options["fields"]]
    inlines = [SyncAttemptInline]
    actions = ["retry_now", "requeue"]

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "backlog": sync_backlog()}
        if request.GET.get("sync_status__exact") == SyncStatus.FAILED:
            extra_context["title"] = "Failed syncs"
        return super().changelist_view(request, extra_context)

    @admin.display(description="routing", ordering="id")
    def short_id(self, routing):
        return format_html('<span title="{}">{}</span>', routing.id, str(routing.id)[:8])

    @admin.display(description="provider", ordering="company__provider_type")
    def provider(self, routing):
        return routing.company.get_provider_type_display()

    @admin.display(description="error")
    def error(self, routing):
        return error_preview(routing.error_message)

    @admin.display(description="declined", ordering="declined_at")
    def declined(self, routing):
        """The company's reason where it turned the work down; empty otherwise."""
        if routing.declined_at is None:
            return ""
        return error_preview(routing.decline_reason or "Declined")

    @admin.display(description="error")
    def error_text(self, routing):
        return error_in_full(routing.error_message)

    @admin.action(
        description=f"Retry now (sync here, up to {RETRY_NOW_LIMIT})", permissions=["change"]
    )
    def retry_now(self, request, queryset):
        selected = queryset.count()
        deadline = time.monotonic() + RETRY_NOW_SECONDS
        tally = Counter()
        for routing in queryset[:RETRY_NOW_LIMIT]:
            if routing.is_finished:
                tally["skipped"] += 1
            elif time.monotonic() > deadline:
                tally["not tried"] += 1
            else:
                routing = routing_sync_now(routing=routing)
                tally[RETRY_NOW_RESULTS[routing.sync_status]] += 1
        tally["not tried"] += max(selected - RETRY_NOW_LIMIT, 0)
        self.message_user(request, retry_now_message(tally), retry_now_level(tally))

    @admin.action(description="Requeue (send back to the outbox)", permissions=["change"])
    def requeue(self, request, queryset):
        routing_ids = list(queryset.values_list("id", flat=True))
        requeued = len(routings_requeue(routing_ids=routing_ids))
        self.message_user(
            request,
            requeue_message(requeued=requeued, left_alone=len(routing_ids) - requeued),
            messages.SUCCESS if requeued else messages.WARNING,
        )


# How "Retry now" reports each routing, by its status after the sync.
RETRY_NOW_RESULTS = {
    SyncStatus.SYNCED: "synced",
    SyncStatus.COMPLETED: "synced",
    SyncStatus.FAILED: "failed again",
    SyncStatus.PENDING: "will retry",
    SyncStatus.PROCESSING: "skipped",
}


def retry_now_message(tally: Counter) -> str:
    not_tried = ""
    if tally["not tried"]:
        not_tried = (
            f"{tally['not tried']} not tried: Retry now syncs at most {RETRY_NOW_LIMIT} "
            f"routings for {RETRY_NOW_SECONDS} seconds per click; use Requeue to hand any "
            "number to the workers."
        )
    return action_result_message(
        "Retry now",
        [
            (tally["synced"], "synced"),
            (tally["failed again"], "failed again (see Failed syncs)"),
            (tally["will retry"], "not synced, next attempt scheduled"),
            (tally["skipped"], "skipped (already synced or being synced)"),
        ],
        nothing="nothing synced",
        not_tried_note=not_tried,
    )


def retry_now_level(tally: Counter) -> int:
    return action_result_level(
        succeeded=tally["synced"],
        failed=tally["failed again"] + tally["will retry"],
        not_tried=tally["not tried"],
    )


def requeue_message(*, requeued: int, left_alone: int, skipped_events: int = 0) -> str:
    message = (
        f"Requeued {requeued} routing{'s' if requeued != 1 else ''}; "
        "the workers take them within seconds."
    )
    if skipped_events:
        message += (
            f" {skipped_events} event{'s were' if skipped_events != 1 else ' was'} left alone: "
            "only dead or pending job sync events are requeued."
        )
    if left_alone:
        message += (
            f" {left_alone} routing{'s were' if left_alone != 1 else ' was'} left alone: "
            "only failed routings and routings waiting for a retry are requeued, not synced, "
            "completed, in-flight or deleted ones."
        )
    return message


class OutboxStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [
            ("due", "Pending, due now"),
            (OutboxStatus.PENDING, "Pending"),
            (OutboxStatus.PROCESSING, "In flight"),
            (OutboxStatus.DONE, "Done"),
            (OutboxStatus.DEAD, "Dead letters"),
        ]

    def queryset(self, request, queryset):
        if self.value() == "due":
            return queryset.filter(status=OutboxStatus.PENDING, available_at__lte=timezone.now())
        if self.value() in OutboxStatus.values:
            return queryset.filter(status=self.value())
        return queryset


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "event_type",
        "routing",
        "status",
        "attempts",
        "available_at",
        "processed_at",
        "error",
    ]
    # No filter on event_type: its choices would be a DISTINCT over the whole table.
    list_filter = [OutboxStatusFilter, "created_at"]
    search_fields = ["=aggregate_id", "last_error"]
    show_full_result_count = False
    ordering = ["-id"]
    fields = [
        "id",
        "event_type",
        "routing",
        "status",
        "attempts",
        "available_at",
        "claimed_at",
        "lease_expires_at",
        "processed_at",
        "created_at",
        "error_text",
        "event_data",
    ]
    readonly_fields = fields
    actions = ["requeue"]

    def get_queryset(self, request):
        routing = JobRouting.objects.filter(id=OuterRef("aggregate_id"))
        return super().get_queryset(request).annotate(routing_exists=Exists(routing))

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "backlog": sync_backlog()}
        if request.GET.get("status") == OutboxStatus.DEAD:
            extra_context["title"] = "Dead letters"
        return super().changelist_view(request, extra_context)

    @admin.display(description="routing", ordering="aggregate_id")
    def routing(self, event):
        if not event.routing_exists:
            return str(event.aggregate_id)
        url = reverse("admin:routing_jobrouting_change", args=[event.aggregate_id])
        return format_html('<a href="{}">{}</a>', url, event.aggregate_id)

    @admin.display(description="last error")
    def error(self, event):
        return error_preview(event.last_error)

    @admin.display(description="last error")
    def error_text(self, event):
        return error_in_full(event.last_error)

    @admin.action(
        description="Requeue the routings of the selected dead or pending events",
        permissions=["change"],
    )
    def requeue(self, request, queryset):
        selected = queryset.count()
        requeueable = queryset.filter(
            event_type=OutboxEvent.JOB_SYNC, status__in=[OutboxStatus.DEAD, OutboxStatus.PENDING]
        )
        aggregate_ids = list(requeueable.values_list("aggregate_id", flat=True))
        routing_ids = set(aggregate_ids)
        requeued = len(routings_requeue(routing_ids=list(routing_ids)))
        self.message_user(
            request,
            requeue_message(
                requeued=requeued,
                left_alone=len(routing_ids) - requeued,
                skipped_events=selected - len(aggregate_ids),
            ),
            messages.SUCCESS if requeued else messages.WARNING,
        )


class WebhookAttemptInline(AttemptHistoryInline):
    model = WebhookAttempt
    verbose_name_plural = "attempts (newest first)"
    fields = [
        "number",
        "attempted_at",
        "response_status",
        "duration_ms",
        "succeeded",
        "response_start",
        "attempt_error",
    ]
    readonly_fields = fields
    ordering = ["-number"]


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Companies' endpoints; the secrets (encrypted at rest) are never shown."""

    list_display = ["url", "company", "enabled", "event_list", "failing_since", "disabled_reason"]
    list_filter = ["enabled", ("company", admin.RelatedOnlyFieldListFilter), "created_at"]
    search_fields = ["=id", "url", "company__name"]
    list_select_related = ["company"]
    ordering = ["-created_at"]
    fields = [
        "id",
        "company",
        "url",
        "description",
        "events",
        "enabled",
        "disabled_at",
        "disabled_reason",
        "failing_since",
        "previous_secret_expires_at",
        "created_at",
        "updated_at",
    ]
    readonly_fields = fields
    actions = ["disable"]

    @admin.display(description="events")
    def event_list(self, endpoint):
        return ", ".join(endpoint.events)

    @admin.action(
        description="Disable (no more deliveries; pending ones end)", permissions=["change"]
    )
    def disable(self, request, queryset):
        now = timezone.now()
        disabled = sum(
            webhook_endpoint_disable(
                endpoint=endpoint, reason=f"Disabled by {request.user}.", now=now
            )
            for endpoint in queryset
        )
        self.message_user(
            request,
            f"Disabled {disabled} endpoint{'s' if disabled != 1 else ''}.",
            messages.SUCCESS if disabled else messages.WARNING,
        )


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "short_id",
        "event",
        "endpoint",
        "status",
        "attempt_count",
        "last_response_status",
        "next_attempt_at",
        "created_at",
        "error",
    ]
    list_display_links = ["short_id"]
    list_filter = ["status", "event", "created_at"]
    search_fields = ["=id", "endpoint__url", "endpoint__company__name"]
    list_select_related = ["endpoint"]
    show_full_result_count = False
    ordering = ["-created_at"]
    fields = [
        "id",
        "endpoint",
        "event",
        "status",
        "attempt_count",
        "retry_count",
        "next_attempt_at",
        "last_attempt_at",
        "last_response_status",
        "delivered_at",
        "created_at",
        "error_text",
        "body",
    ]
    readonly_fields = fields
    inlines = [WebhookAttemptInline]
    actions = ["redeliver"]

    def changelist_view(self, request, extra_context=None):
        if request.GET.get("status__exact") == WebhookDeliveryStatus.FAILED:
            extra_context = {**(extra_context or {}), "title": "Dead webhook deliveries"}
        return super().changelist_view(request, extra_context)

    @admin.display(description="delivery", ordering="id")
    def short_id(self, delivery):
        return format_html('<span title="{}">{}</span>', delivery.id, str(delivery.id)[:8])

    @admin.display(description="last error")
    def error(self, delivery):
        return error_preview(delivery.last_error)

    @admin.display(description="last error")
    def error_text(self, delivery):
        return error_in_full(delivery.last_error)

    @admin.action(description="Redeliver (a new round of attempts)", permissions=["change"])
    def redeliver(self, request, queryset):
        selected = queryset.count()
        redelivered = sum(
            webhook_delivery_redeliver(delivery=delivery)
            for delivery in queryset.select_related("endpoint")
        )
        message = f"Redelivering {redelivered} deliver{'ies' if redelivered != 1 else 'y'}."
        if selected > redelivered:
            message += (
                f" {selected - redelivered} left alone: still pending, or their endpoint is "
                "disabled."
            )
        self.message_user(request, message, messages.SUCCESS if redelivered else messages.WARNING)

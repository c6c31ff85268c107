from django.contrib import admin, messages

from integrations.models import MockJob, SimulatedBooking, SimulatedJob, WebhookReceipt
from integrations.servicetitan.simulator import office
from tradeengage.admin import ViewOnlyAdminMixin


class SimulatedOfficeMixin:
    """The receiving company's office at work in the simulated ServiceTitan: the rows stay
    read-only (they are ServiceTitan's), but staff who may change them act as the office."""

    def has_office_permission(self, request):
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")

    def _office_do(self, request, queryset, act, done: str):
        acted, refused = 0, []
        for row in queryset:
            try:
                act(row)
                acted += 1
            except office.OfficeRefused as exc:
                refused.append(str(exc))
        if acted:
            self.message_user(request, f"{acted} {done}.", messages.SUCCESS)
        for reason in refused[:10]:
            self.message_user(request, reason, messages.WARNING)


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


@admin.register(SimulatedBooking)
class SimulatedBookingAdmin(SimulatedOfficeMixin, ViewOnlyAdminMixin, admin.ModelAdmin):
    """Bookings made through the simulated ServiceTitan's booking-provider API. They stay New
    until the office converts them into jobs or dismisses them: the two actions here."""

    list_display = [
        "booking_id",
        "tenant",
        "booking_provider",
        "external_id",
        "status",
        "name",
        "priority",
        "job",
        "created_at",
    ]
    list_filter = ["status", "priority", "created_at"]
    search_fields = ["=external_id", "name"]
    list_select_related = ["job"]
    show_full_result_count = False
    actions = ["convert", "dismiss"]

    @admin.action(description="Convert into jobs (as the office does)", permissions=["office"])
    def convert(self, request, queryset):
        self._office_do(request, queryset, office.booking_convert, "converted into jobs")

    @admin.action(
        description="Dismiss (the company does not take the work)", permissions=["office"]
    )
    def dismiss(self, request, queryset):
        self._office_do(request, queryset, office.booking_dismiss, "dismissed")


@admin.register(SimulatedJob)
class SimulatedJobAdmin(SimulatedOfficeMixin, ViewOnlyAdminMixin, admin.ModelAdmin):
    """The ServiceTitan simulation's jobs. Read-only: they change through its API (status moves,
    cancellations) as they would at ServiceTitan, or by the office: completing a job invoices
    it."""

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
    actions = ["complete", "cancel"]

    @admin.action(description="Complete and invoice (as the office does)", permissions=["office"])
    def complete(self, request, queryset):
        self._office_do(request, queryset, office.job_complete, "completed and invoiced")

    @admin.action(description="Cancel (customer cancelled)", permissions=["office"])
    def cancel(self, request, queryset):
        def cancel(job):
            office.job_cancel(job, reason_id=office.CUSTOMER_CANCELLED_REASON_ID, memo="")

        self._office_do(request, queryset, cancel, "cancelled")


@admin.register(WebhookReceipt)
class WebhookReceiptAdmin(ViewOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["provider", "event_id", "received_at"]
    list_filter = ["provider", "received_at"]
    search_fields = ["=event_id"]

from django.contrib import admin, messages

from integrations.crm.simulator import office as crm_office
from integrations.models import (
    CrmSimCustomer,
    CrmSimInvoice,
    CrmSimPayment,
    CrmSimTechnician,
    CrmSimWebhook,
    CrmSimWebhookDelivery,
    CrmSimWorkOrder,
    MockJob,
    SimulatedBooking,
    SimulatedJob,
    WebhookReceipt,
)
from integrations.servicetitan.simulator import office
from tradeengage.admin import ViewOnlyAdminMixin


class SimulatedOfficeMixin:
    """The receiving company's office at work in the simulated ServiceTitan: the rows stay
    read-only (they are ServiceTitan's), but staff who may change them act as the office."""

    # What the simulator's office refuses to do to a row in its state (reported, not raised).
    office_refused: type[Exception] = office.OfficeRefused

    def has_office_permission(self, request):
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")

    def _office_do(self, request, queryset, act, done: str):
        acted, refused = 0, []
        for row in queryset:
            try:
                act(row)
                acted += 1
            except self.office_refused as exc:
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


class CrmSimulatorAdmin(SimulatedOfficeMixin, ViewOnlyAdminMixin, admin.ModelAdmin):
    """The CRM simulator's records: read-only (they are the CRM's, changed through its API),
    but staff who may change them act as the company's office, so the demo can be driven by
    hand; each office action emits the webhooks the API's own change would."""

    office_refused = crm_office.OfficeRefused
    show_full_result_count = False


@admin.register(CrmSimCustomer)
class CrmSimCustomerAdmin(CrmSimulatorAdmin):
    list_display = ["id", "client_id", "first_name", "last_name", "email", "phone", "status"]
    list_filter = ["status", "client_id"]
    search_fields = ["last_name", "email", "phone_digits"]


@admin.register(CrmSimTechnician)
class CrmSimTechnicianAdmin(CrmSimulatorAdmin):
    list_display = ["api_id", "client_id", "first_name", "last_name", "is_active", "hourly_rate"]
    list_filter = ["is_active", "client_id"]


@admin.register(CrmSimWorkOrder)
class CrmSimWorkOrderAdmin(CrmSimulatorAdmin):
    list_display = [
        "id",
        "client_id",
        "customer",
        "service_type",
        "status",
        "priority",
        "scheduled_date",
        "technician",
        "created_at",
        "completed_at",
    ]
    list_filter = ["status", "priority", "client_id", "created_at"]
    search_fields = ["=id", "service_type", "customer__last_name"]
    list_select_related = ["customer", "technician"]
    actions = ["schedule", "start", "complete", "cancel", "issue_invoice"]

    @admin.action(description="Schedule (tomorrow, morning window)", permissions=["office"])
    def schedule(self, request, queryset):
        self._office_do(request, queryset, crm_office.work_order_schedule, "scheduled")

    @admin.action(description="Start (technician on site)", permissions=["office"])
    def start(self, request, queryset):
        self._office_do(request, queryset, crm_office.work_order_start, "started")

    @admin.action(description="Complete", permissions=["office"])
    def complete(self, request, queryset):
        self._office_do(request, queryset, crm_office.work_order_complete, "completed")

    @admin.action(description="Cancel", permissions=["office"])
    def cancel(self, request, queryset):
        self._office_do(request, queryset, crm_office.work_order_cancel, "cancelled")

    @admin.action(description="Create and send an invoice (completed ones)", permissions=["office"])
    def issue_invoice(self, request, queryset):
        self._office_do(request, queryset, crm_office.invoice_issue, "invoiced and sent")


@admin.register(CrmSimInvoice)
class CrmSimInvoiceAdmin(CrmSimulatorAdmin):
    list_display = [
        "api_id",
        "client_id",
        "work_order",
        "status",
        "total",
        "due_date",
        "paid_at",
        "created_at",
    ]
    list_filter = ["status", "client_id", "created_at"]
    list_select_related = ["work_order"]
    actions = ["send", "mark_paid"]

    @admin.action(description="Send (draft ones)", permissions=["office"])
    def send(self, request, queryset):
        self._office_do(request, queryset, crm_office.invoice_send, "sent")

    @admin.action(description="Mark paid", permissions=["office"])
    def mark_paid(self, request, queryset):
        self._office_do(request, queryset, crm_office.invoice_mark_paid, "marked paid")


@admin.register(CrmSimPayment)
class CrmSimPaymentAdmin(CrmSimulatorAdmin):
    list_display = ["api_id", "client_id", "invoice", "amount", "method", "reference"]
    list_filter = ["method", "client_id"]


@admin.register(CrmSimWebhook)
class CrmSimWebhookAdmin(CrmSimulatorAdmin):
    list_display = ["api_id", "client_id", "url", "events", "created_at"]
    list_filter = ["client_id"]
    exclude = ["secret"]


@admin.register(CrmSimWebhookDelivery)
class CrmSimWebhookDeliveryAdmin(CrmSimulatorAdmin):
    list_display = [
        "delivery_id",
        "webhook",
        "event",
        "status",
        "attempts",
        "last_status_code",
        "last_attempt_at",
        "delivered_at",
    ]
    list_filter = ["status", "event", "created_at"]
    search_fields = ["=delivery_id"]
    list_select_related = ["webhook"]

from django.urls import path, re_path, register_converter

from integrations.servicetitan.simulator import api


class TenantConverter:
    """A tenant, matched loosely (letters and digits, as long as ``SimulatedJob.tenant`` allows)
    so that the endpoint refuses one that is not an integer, the specs' type, with a 400."""

    regex = "[0-9A-Za-z]{1,50}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(TenantConverter, "servicetitan_tenant")

tenant = "tenant/<servicetitan_tenant:tenant>"
bookings = f"crm/v2/{tenant}/booking-provider/<str:provider>/bookings"
jobs = f"jpm/v2/{tenant}/jobs"
office_bookings = f"office/{tenant}/booking-provider/<str:provider>/bookings/<int:booking_id>"

urlpatterns = [
    path("connect/token", api.token),
    path(bookings, api.bookings),
    path(f"{bookings}/<int:booking_id>", api.booking_detail),
    path(f"crm/v2/{tenant}/customers", api.customers),
    path(jobs, api.jobs),
    path(f"{jobs}/cancel-reasons", api.jobs_cancel_reasons),
    path(f"{jobs}/<int:job_id>", api.job_detail),
    path(f"{jobs}/<int:job_id>/cancel", api.job_cancel),
    path(f"{jobs}/<int:job_id>/complete", api.job_complete),
    path(f"jpm/v2/{tenant}/job-cancel-reasons", api.job_cancel_reasons),
    path(f"jpm/v2/{tenant}/job-types", api.job_types),
    path(f"marketing/v2/{tenant}/campaigns", api.campaigns),
    path(f"settings/v2/{tenant}/business-units", api.business_units),
    path(f"accounting/v2/{tenant}/invoices", api.invoices),
    # The office: the receiving company's own work in ServiceTitan (not ServiceTitan's API).
    path(f"{office_bookings}/convert", api.office_booking_convert),
    path(f"{office_bookings}/dismiss", api.office_booking_dismiss),
    # ServiceTitan's problem shape for any other path, instead of our API's 404.
    re_path(r"^(?P<path>.*)$", api.not_found),
]

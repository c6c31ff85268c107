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

bookings = "crm/v2/tenant/<servicetitan_tenant:tenant>/booking-provider/<str:provider>/bookings"
jobs = "jpm/v2/tenant/<servicetitan_tenant:tenant>/jobs"

urlpatterns = [
    path("connect/token", api.token),
    path(bookings, api.bookings),
    path(f"{bookings}/<int:booking_id>", api.booking_detail),
    path(jobs, api.jobs),
    path(f"{jobs}/<int:job_id>", api.job_detail),
    path(f"{jobs}/<int:job_id>/cancel", api.job_cancel),
    path("jpm/v2/tenant/<servicetitan_tenant:tenant>/job-cancel-reasons", api.job_cancel_reasons),
    path("accounting/v2/tenant/<servicetitan_tenant:tenant>/invoices", api.invoices),
    # ServiceTitan's problem shape for any other path, instead of our API's 404.
    re_path(r"^(?P<path>.*)$", api.not_found),
]

from django.urls import path, re_path

from integrations.crm.simulator import api

# Seed 002's paths exactly, trailing slashes as it writes them ("customers/", "work-orders").
urlpatterns = [
    path("oauth/token", api.token),
    path("customers/", api.customers),
    path("customers/<str:customer_id>", api.customer_detail),
    path("work-orders", api.work_orders),
    path("work-orders/<str:work_order_id>", api.work_order_detail),
    path("technicians/", api.technicians),
    path("invoices/", api.invoices),
    path("invoices/<str:invoice_id>/send", api.invoice_send),
    path("invoices/<str:invoice_id>/mark-paid", api.invoice_mark_paid),
    path("payments/", api.payments),
    path("webhooks", api.webhooks),
    # The seed's error shape for any other path, instead of our API's 404.
    re_path(r"^(?P<path>.*)$", api.not_found),
]

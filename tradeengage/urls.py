from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import (
    SpectacularJSONAPIView,
    SpectacularRedocView,
    SpectacularSwaggerView,
)

from analytics.admin import dashboard_view
from analytics.api import DashboardApi
from jobs.api.ingestion import IngestionDetailApi, IngestionJobsApi
from jobs.api.jobs import JobDetailApi, JobListCreateApi
from jobs.api.matching import JobMatchesApi, MatchingJobsApi, MatchingProfileApi
from routing.api.provider_webhooks import CrmWebhookApi, ServiceTitanWebhookApi
from routing.api.routings import JobRoutingListApi, JobSyncApi
from routing.api.webhooks import (
    WebhookDeliveryListApi,
    WebhookEndpointDetailApi,
    WebhookEndpointListCreateApi,
    WebhookSecretRotateApi,
    WebhookTestApi,
)
from tradeengage import health, monitoring
from tradeengage.exceptions import json_not_found

api_v1 = [
    path("jobs/", JobListCreateApi.as_view(), name="jobs"),
    path("jobs/<str:job_id>", JobDetailApi.as_view(), name="job-detail"),
    path("jobs/<str:job_id>/routings", JobRoutingListApi.as_view(), name="job-routings"),
    path("jobs/<str:job_id>/sync", JobSyncApi.as_view(), name="job-sync"),
    path("jobs/<str:job_id>/matches", JobMatchesApi.as_view(), name="job-matches"),
    path("ingestion/jobs", IngestionJobsApi.as_view(), name="ingestion-jobs"),
    path("ingestion/<str:ingestion_id>", IngestionDetailApi.as_view(), name="ingestion-detail"),
    path("matching/jobs", MatchingJobsApi.as_view(), name="matching-jobs"),
    path("matching/profile", MatchingProfileApi.as_view(), name="matching-profile"),
    path("analytics/dashboard", DashboardApi.as_view(), name="analytics-dashboard"),
    path("webhooks", WebhookEndpointListCreateApi.as_view(), name="webhooks"),
    path("webhooks/<str:endpoint_id>", WebhookEndpointDetailApi.as_view(), name="webhook-detail"),
    path(
        "webhooks/<str:endpoint_id>/rotate-secret",
        WebhookSecretRotateApi.as_view(),
        name="webhook-rotate-secret",
    ),
    path("webhooks/<str:endpoint_id>/test", WebhookTestApi.as_view(), name="webhook-test"),
    path(
        "webhooks/<str:endpoint_id>/deliveries",
        WebhookDeliveryListApi.as_view(),
        name="webhook-deliveries",
    ),
    path("health", health.health, name="health"),
    path("health/detailed", health.health_detailed, name="health-detailed"),
    path("health/ready", health.health_ready, name="health-ready"),
    path("health/live", health.health_live, name="health-live"),
]

urlpatterns = [
    path("api/v1/", include(api_v1)),
    path(
        "api/integrations/servicetitan/webhook",
        ServiceTitanWebhookApi.as_view(),
        name="servicetitan-webhook",
    ),
    path("api/integrations/servicetitan/", include("integrations.servicetitan.urls")),
    path("api/integrations/crm/webhook", CrmWebhookApi.as_view(), name="crm-webhook"),
    path("admin/dashboard/", admin.site.admin_view(dashboard_view), name="admin-dashboard"),
    path("admin/", admin.site.urls),
    path("metrics", monitoring.metrics_view, name="metrics"),
    path("openapi.json", SpectacularJSONAPIView.as_view(), name="openapi"),
    path("docs", SpectacularSwaggerView.as_view(url_name="openapi"), name="docs"),
    path("redoc", SpectacularRedocView.as_view(url_name="openapi"), name="redoc"),
    path("api/", include("processing.urls")),
    # Unknown API paths answer 404 in their prefix's contract, for every method and in DEBUG
    # too; exempt from CSRF, or a POST would get the CSRF failure page instead.
    re_path(r"^api/", csrf_exempt(json_not_found)),
]
# A test double of ServiceTitan's API for the demo and tests: where it is off, its paths are a
# plain 404 like any unknown path.
if settings.SERVICETITAN_SIMULATOR_ENABLED:
    urlpatterns.append(
        path("servicetitan-sim/", include("integrations.servicetitan.simulator.urls"))
    )
    urlpatterns.append(path("crm-sim/api/v2/", include("integrations.crm.simulator.urls")))

handler400 = "tradeengage.exceptions.json_bad_request"
handler404 = "tradeengage.exceptions.json_not_found"
handler500 = "tradeengage.exceptions.json_server_error"

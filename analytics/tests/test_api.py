"""``GET /api/v1/analytics/dashboard``: the dashboard's figures as JSON, in the documented shape."""

from datetime import timedelta

import pytest
from django.utils import timezone

from analytics.tests.factories import job_at, routing_of

pytestmark = pytest.mark.django_db


def test_the_figures_in_the_documented_shape(api_client):
    job = job_at(timezone.now() - timedelta(hours=2))
    routing_of(job, synced_after=timedelta(seconds=3))

    response = api_client.get("/api/v1/analytics/dashboard")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["total_jobs"] == 1
    assert body["jobs_created_24h"] == 1
    assert body["routings_synced_24h"] == 1
    assert body["sync_success_rate"] == 1.0
    assert body["sync_latency_p50_seconds"] == pytest.approx(3.0)
    assert body["revenue_mtd"] == 0
    assert body["backlog"] == {
        "pending": 0,
        "in_flight": 0,
        "dead": 0,
        "oldest_pending_age_seconds": None,
    }
    assert len(body["hourly"]) == 25
    assert len(body["daily"]) == 30
    assert body["daily"][-1]["jobs_created"] == 1
    assert body["last_nightly_run"] is None


def test_the_schema_documents_the_endpoint(api_client):
    schema = api_client.get("/openapi.json").json()

    operation = schema["paths"]["/api/v1/analytics/dashboard"]["get"]
    assert operation["operationId"] == "analytics_dashboard"
    assert {"200", "401", "403"} <= set(operation["responses"])
    dashboard = schema["components"]["schemas"]["Dashboard"]
    assert {"total_jobs", "active_routings", "revenue_mtd", "sync_success_rate"} <= set(
        dashboard["properties"]
    )

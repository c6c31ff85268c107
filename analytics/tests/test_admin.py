"""The admin's dashboard page: linked from the index, its figures linked to the filtered lists
behind them, and each link a list the admin accepts."""

from datetime import timedelta

import pytest
from django.utils import timezone

from analytics.tests.factories import job_at, routing_of
from processing.tests.factories import ProcessingJobFactory
from routing.models import SyncStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def network():
    job = job_at(timezone.now() - timedelta(hours=1))
    routing_of(job, synced_after=timedelta(seconds=2))
    failed = routing_of(job_at(timezone.now()), status=SyncStatus.FAILED)
    ProcessingJobFactory(trigger="nightly", status="completed", leads_assigned=3)
    return {"failed": failed}


def test_the_admin_index_links_to_the_dashboard(ops_client):
    response = ops_client.get("/admin/")

    assert 'href="/admin/dashboard/"' in response.text


def test_the_dashboard_shows_the_figures_and_the_chart_data(ops_client, network):
    response = ops_client.get("/admin/dashboard/")

    assert response.status_code == 200
    assert "Dashboard" in response.text
    assert response.context["figures"]["jobs_created_24h"] == 2
    assert 'id="dashboard-charts"' in response.text
    assert "analytics/vendor/chart-4.6.1.umd.min.js" in response.text
    assert network["failed"].company.name in response.text


def test_every_figure_links_to_a_list_the_admin_accepts(ops_client, network):
    response = ops_client.get("/admin/dashboard/")
    links = response.context["links"]

    assert set(links) >= {"jobs_24h", "synced_24h", "failed", "dead", "revenue_mtd", "nightly"}
    for name, url in links.items():
        # A lookup the admin does not allow would redirect to ?e=1.
        assert ops_client.get(url).status_code == 200, (name, url)
    failed = ops_client.get(links["failed"])
    assert list(failed.context["cl"].result_list) == [network["failed"]]


def test_staff_without_the_view_permission_is_refused(client, django_user_model):
    clerk = django_user_model.objects.create_user(
        "clerk", password="a-long-password", is_staff=True
    )
    client.force_login(clerk)

    assert client.get("/admin/dashboard/").status_code == 403


def test_anonymous_is_sent_to_the_login(client):
    response = client.get("/admin/dashboard/")

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")

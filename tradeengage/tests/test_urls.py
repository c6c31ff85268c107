"""The ServiceTitan simulator is mounted only where SERVICETITAN_SIMULATOR_ENABLED is on: the
URLconf decides when it loads, so each test loads it again under the setting it needs."""

import importlib

import pytest
from django.test import override_settings
from django.urls import clear_url_caches

import tradeengage.urls

pytestmark = pytest.mark.django_db

TOKEN_URL = "/servicetitan-sim/connect/token"
CREDENTIALS = {
    "grant_type": "client_credentials",
    "client_id": "tradeengage",
    "client_secret": "s3cret",
}


@pytest.fixture
def load_urls(settings):
    """``load_urls(simulator_enabled=...)``: the URLconf as a process started with that setting
    has it; the URLconf of the settings in force again afterwards."""
    settings.SERVICETITAN_SIMULATOR_CLIENTS = {"tradeengage": "s3cret"}

    def load(*, simulator_enabled: bool) -> None:
        with override_settings(SERVICETITAN_SIMULATOR_ENABLED=simulator_enabled):
            importlib.reload(tradeengage.urls)
        clear_url_caches()

    yield load
    importlib.reload(tradeengage.urls)
    clear_url_caches()


def test_simulator_is_mounted_when_enabled(client, load_urls):
    load_urls(simulator_enabled=True)

    response = client.post(TOKEN_URL, CREDENTIALS)

    assert response.status_code == 200
    assert response.json()["token_type"] == "Bearer"


@pytest.mark.parametrize(
    "path",
    [
        TOKEN_URL,
        "/servicetitan-sim/",
        "/servicetitan-sim/crm/v2/tenant/1234/booking-provider/7/bookings",
        "/servicetitan-sim/jpm/v2/tenant/1234/jobs/1001",
    ],
)
def test_simulator_paths_are_a_plain_not_found_when_disabled(client, load_urls, path):
    load_urls(simulator_enabled=False)

    for response in [client.get(path), client.post(path, CREDENTIALS)]:
        assert response.status_code == 404
        # The site's own 404, not the simulator's ServiceTitan-shaped problem.
        assert response["Content-Type"] == "application/json"
        assert response.json()["detail"] == f"No route for {path}"


def test_rest_of_the_site_is_served_when_the_simulator_is_disabled(client, load_urls):
    load_urls(simulator_enabled=False)

    assert client.get("/api/v1/health/live").status_code == 200

"""Which ServiceTitan service a company's configuration gives."""

import pytest

from integrations.servicetitan.client import ServiceTitanApi
from integrations.servicetitan.service import servicetitan_config, servicetitan_service
from integrations.servicetitan.simulator.simulation import SimulatedServiceTitan

CREDENTIALS = {
    "client_id": "cid.test-client",
    "client_secret": "cs1.very-secret",
    "app_key": "ak1.app-key",
    "tenant_id": "1234567",
    "booking_provider_id": "89",
}


@pytest.fixture(autouse=True)
def _global_settings_without_credentials(settings):
    settings.REDIS_URL = ""
    settings.SERVICETITAN = {
        **settings.SERVICETITAN,
        "api_url": "https://api-integration.servicetitan.io",
        "auth_url": "https://auth-integration.servicetitan.io",
        "timeout_seconds": 10.0,
        **dict.fromkeys(CREDENTIALS, ""),
    }


def test_service_is_the_api_client_when_credentials_are_configured(settings):
    settings.SERVICETITAN = {**settings.SERVICETITAN, **CREDENTIALS, "client_secret": ""}

    api = servicetitan_service({"client_secret": "cs1.very-secret"})

    assert isinstance(api, ServiceTitanApi)
    assert (api.connect_timeout, api.read_timeout) == (3.05, 10.0)
    assert api.booking_provider == "89"


def test_company_mapping_settings_reach_the_client(settings):
    settings.SERVICETITAN = {**settings.SERVICETITAN, **CREDENTIALS}

    api = servicetitan_service({"campaign_id": 31, "business_units_by_trade": {"plumbing": 44}})

    assert api.config["campaign_id"] == 31
    assert api.config["business_units_by_trade"] == {"plumbing": 44}


@pytest.mark.parametrize("missing", list(CREDENTIALS))
def test_service_is_the_simulation_while_a_credential_is_missing(missing):
    service = servicetitan_service({**CREDENTIALS, missing: ""})

    assert isinstance(service, SimulatedServiceTitan)
    assert service.config["tenant_id"] == ("" if missing == "tenant_id" else "1234567")


def test_company_settings_override_the_global_ones_but_blank_ones_do_not(settings):
    settings.SERVICETITAN = {**settings.SERVICETITAN, "app_key": "ak1.global"}

    config = servicetitan_config({"tenant_id": "42", "app_key": "", "timeout_seconds": None})

    assert config["tenant_id"] == "42"
    assert config["app_key"] == "ak1.global"
    assert config["timeout_seconds"] == 10.0
    assert config["api_url"] == "https://api-integration.servicetitan.io"

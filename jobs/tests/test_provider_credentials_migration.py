"""Migration 0006: the secrets leave ``provider_settings`` for the encrypted
``provider_credentials``, and come back on the way down."""

import importlib

import pytest
from django.apps import apps

from jobs.models import Company
from jobs.tests.factories import CompanyFactory

pytestmark = pytest.mark.django_db

migration = importlib.import_module("jobs.migrations.0006_company_provider_credentials")

PHOENIX_SETTINGS = {
    "api_url": "http://127.0.0.1:8000/servicetitan-sim",
    "auth_url": "http://127.0.0.1:8000/servicetitan-sim",
    "client_id": "demo-phoenix",
    "client_secret": "demo-secret",
    "app_key": "demo-app-key",
    "tenant_id": "1001",
    "booking_provider_id": "7",
    "webhook_secret": "whsec_c2VjcmV0",
}
SECRETS = {
    "client_id": "demo-phoenix",
    "client_secret": "demo-secret",
    "app_key": "demo-app-key",
    "tenant_id": "1001",
    "booking_provider_id": "7",
    "webhook_secret": "whsec_c2VjcmV0",
}


def test_the_secrets_move_out_of_the_plain_settings_and_the_options_stay():
    phoenix = CompanyFactory(provider_type="servicetitan", provider_settings=PHOENIX_SETTINGS)
    mock = CompanyFactory(provider_type="mock", provider_settings={"fail_first": 1})

    migration.secrets_to_credentials(apps, None)

    phoenix = Company.objects.get(id=phoenix.id)
    assert phoenix.provider_settings == {
        "api_url": "http://127.0.0.1:8000/servicetitan-sim",
        "auth_url": "http://127.0.0.1:8000/servicetitan-sim",
    }
    assert phoenix.provider_credentials == SECRETS
    mock = Company.objects.get(id=mock.id)
    assert (mock.provider_settings, mock.provider_credentials) == ({"fail_first": 1}, {})


def test_moving_keeps_credentials_already_stored():
    company = CompanyFactory(
        provider_settings={"webhook_secret": "whsec_new"},
        provider_credentials={"client_id": "acme"},
    )

    migration.secrets_to_credentials(apps, None)

    company = Company.objects.get(id=company.id)
    assert company.provider_credentials == {"client_id": "acme", "webhook_secret": "whsec_new"}
    assert company.provider_settings == {}


def test_the_reverse_puts_the_credentials_back_into_the_settings():
    company = CompanyFactory(provider_type="servicetitan", provider_settings=PHOENIX_SETTINGS)
    migration.secrets_to_credentials(apps, None)

    migration.credentials_to_settings(apps, None)

    company = Company.objects.get(id=company.id)
    assert company.provider_settings == PHOENIX_SETTINGS
    assert company.provider_credentials == {}

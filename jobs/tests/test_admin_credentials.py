"""The company admin's provider credentials: write-only, masked, and never in the plain
provider settings."""

import pytest
from django.urls import reverse

from jobs.models import Company
from jobs.tests.factories import CompanyFactory

SECRET = "cs1.very-secret"
CREDENTIALS = {"client_id": "acme", "client_secret": SECRET, "webhook_secret": "whsec_c2VjcmV0"}


@pytest.fixture
def company(db):
    return CompanyFactory(
        name="Phoenix Overhead Door",
        provider_type="servicetitan",
        provider_settings={"api_url": "https://api.example"},
        provider_credentials=CREDENTIALS,
    )


def change_url(company) -> str:
    return reverse("admin:jobs_company_change", args=[company.id])


def form_data(company, **fields) -> dict:
    data = {
        "name": company.name,
        "is_active": "on",
        "accepts_jobs": "on",
        "plan": company.plan,
        "leads_per_report": str(company.leads_per_report),
        "send_day": str(company.send_day),
        "provider_type": company.provider_type,
        "provider_settings": '{"api_url": "https://api.example"}',
    }
    for prefix in ("service_areas", "skills", "technicians"):
        data[f"{prefix}-TOTAL_FORMS"] = "0"
        data[f"{prefix}-INITIAL_FORMS"] = "0"
    return {**data, **fields}


def stored(company) -> dict:
    return Company.objects.get(id=company.id).provider_credentials


def test_the_change_page_shows_which_credentials_are_set_never_their_values(ops_client, company):
    page = ops_client.get(change_url(company)).text

    assert "client_secret: set" in page
    assert "app_key: not set" in page
    for value in CREDENTIALS.values():
        assert value not in page


def test_a_blank_credential_field_keeps_the_stored_value(ops_client, company):
    response = ops_client.post(change_url(company), form_data(company, name="Renamed"))

    assert response.status_code == 302, response.content[:2000]
    assert Company.objects.get(id=company.id).name == "Renamed"
    assert stored(company) == CREDENTIALS


def test_a_new_value_replaces_the_stored_one_and_the_others_stay(ops_client, company):
    response = ops_client.post(
        change_url(company),
        form_data(company, credential_client_secret="cs2.rotated", credential_app_key="key-1"),
    )

    assert response.status_code == 302, response.content[:2000]
    assert stored(company) == {**CREDENTIALS, "client_secret": "cs2.rotated", "app_key": "key-1"}


def test_a_ticked_credential_is_removed(ops_client, company):
    response = ops_client.post(
        change_url(company), form_data(company, credentials_clear=["webhook_secret"])
    )

    assert response.status_code == 302, response.content[:2000]
    assert stored(company) == {"client_id": "acme", "client_secret": SECRET}


def test_secrets_in_the_provider_settings_are_refused_with_where_to_put_them(ops_client, company):
    response = ops_client.post(
        change_url(company),
        form_data(
            company,
            provider_settings='{"api_url": "https://api.example", "client_secret": "typed-here"}',
            credential_app_key="typed-key",
        ),
    )

    assert response.status_code == 200
    assert "Secrets do not belong in the provider settings" in response.text
    assert "remove client_secret here" in response.text
    assert "credential fields below" in response.text
    # The form comes back without the secret typed into a credential field.
    assert "typed-key" not in response.text
    company = Company.objects.get(id=company.id)
    assert company.provider_settings == {"api_url": "https://api.example"}
    assert company.provider_credentials == CREDENTIALS


def test_credentials_can_be_entered_when_adding_a_company(ops_client, db):
    company = Company(name="Tucson Overhead Door", provider_type="servicetitan")

    response = ops_client.post(
        reverse("admin:jobs_company_add"),
        form_data(company, credential_client_id="tucson", credential_client_secret=SECRET),
    )

    assert response.status_code == 302, response.content[:2000]
    company = Company.objects.get(name="Tucson Overhead Door")
    assert company.provider_credentials == {"client_id": "tucson", "client_secret": SECRET}
    assert company.provider_settings == {"api_url": "https://api.example"}

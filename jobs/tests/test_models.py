import pytest

from jobs.tests.factories import CompanyFactory


@pytest.mark.django_db
def test_the_provider_account_merges_the_credentials_over_the_settings():
    company = CompanyFactory(
        provider_type="servicetitan",
        provider_settings={"api_url": "https://api.example", "client_id": "stale"},
        provider_credentials={"client_id": "acme", "client_secret": "cs1.very-secret"},
    )

    account = company.provider_account()

    assert account.settings == {
        "api_url": "https://api.example",
        "client_id": "acme",
        "client_secret": "cs1.very-secret",
    }
    assert "very-secret" not in repr(account)

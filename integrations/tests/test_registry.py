"""From a company's provider account to its provider."""

import pytest

from integrations.crm.provider import CrmProvider
from integrations.mock import MockProvider
from integrations.providers import ProviderAccount, ProviderNotConfigured, ProviderType
from integrations.registry import provider_class, provider_for
from integrations.servicetitan.provider import ServiceTitanProvider


def account(provider_type: str, **settings) -> ProviderAccount:
    return ProviderAccount(
        company_id="c1",
        company_name="Acme Plumbing",
        provider_type=provider_type,
        settings=settings,
    )


@pytest.mark.parametrize(
    ("provider_type", "implementation"),
    [
        (ProviderType.MOCK, MockProvider),
        (ProviderType.SERVICETITAN, ServiceTitanProvider),
        (ProviderType.CRM, CrmProvider),
    ],
)
def test_each_provider_type_has_its_implementation(provider_type, implementation):
    provider = provider_for(account(provider_type, latency_ms=5))

    assert isinstance(provider, implementation)
    assert provider.company_id == "c1"
    assert provider.options["latency_ms"] == 5


def test_a_company_without_a_provider_is_not_configured_and_says_how_to_fix_it(settings):
    settings.SYNC_UNCONFIGURED_WITH_MOCK = False

    with pytest.raises(ProviderNotConfigured, match="Acme Plumbing has no field-service provider"):
        provider_for(account(""))


def test_a_company_without_a_provider_goes_to_the_mock_when_settings_say_so(settings):
    settings.SYNC_UNCONFIGURED_WITH_MOCK = True

    assert isinstance(provider_for(account("")), MockProvider)


def test_a_provider_type_not_built_yet_is_not_configured():
    assert provider_class("fieldpulse") is None
    with pytest.raises(ProviderNotConfigured, match="not available in this version"):
        provider_for(account("fieldpulse"))

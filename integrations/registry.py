"""Which implementation serves each provider type."""

from integrations.crm.provider import CrmProvider
from integrations.mock import MockProvider
from integrations.providers import (
    Provider,
    ProviderAccount,
    ProviderNotConfigured,
    ProviderType,
)
from integrations.servicetitan.provider import ServiceTitanProvider

PROVIDER_CLASSES: dict[str, type[Provider]] = {
    ProviderType.MOCK: MockProvider,
    ProviderType.SERVICETITAN: ServiceTitanProvider,
    ProviderType.CRM: CrmProvider,
}


def provider_class(provider_type: str) -> type[Provider] | None:
    return PROVIDER_CLASSES.get(provider_type)


def credential_keys() -> tuple[str, ...]:
    """Every provider's secret settings, in order: what a company keeps in its encrypted provider
    credentials, whichever provider it uses."""
    keys = {}
    for implementation in PROVIDER_CLASSES.values():
        keys.update(dict.fromkeys(implementation.credential_keys))
    return tuple(keys)


def provider_for(account: ProviderAccount) -> Provider:
    """The provider instance for an account, or ``ProviderNotConfigured`` saying why not."""
    provider_type = account.resolved_provider_type
    if not provider_type:
        raise ProviderNotConfigured(
            f"{account.company_name} has no field-service provider configured. Choose one on "
            "the company in the admin (or set SYNC_UNCONFIGURED_WITH_MOCK=true to sync such "
            "companies through the mock provider); the routing is synced once it has one."
        )
    implementation = provider_class(provider_type)
    if implementation is None:
        label = dict(ProviderType.choices).get(provider_type, provider_type)
        raise ProviderNotConfigured(
            f"The {label} provider is not available in this version; the routing waits until "
            "it is, or until the company's provider is changed in the admin."
        )
    return implementation(account)

"""The field-service systems routings are pushed into: a small base class, typed errors, and the
registry from a company's provider type to its implementation.

Errors decide what the sync engine does next (DESIGN.md "The core flow", step 3):
``RetryableProviderError`` (timeouts, connection errors, 429, 5xx) schedules another attempt by the
backoff schedule, honouring ``retry_after``; ``PermanentProviderError`` (auth, validation,
conflict, unsupported service area) sends the routing to the dead-letter queue at once.
``ProviderNotConfigured`` is not an attempt at all: the routing waits, with the reason shown.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils.module_loading import import_string


class ProviderType(models.TextChoices):
    """The field-service systems a company's routings can be pushed into."""

    MOCK = "mock", "Mock (in-process)"
    SERVICETITAN = "servicetitan", "ServiceTitan"
    CRM = "crm", "Field-service CRM (API v2)"


# Implementations by provider type; the CRM joins when its client exists.
PROVIDER_CLASSES = {
    ProviderType.MOCK: "integrations.mock.MockProvider",
    ProviderType.SERVICETITAN: "integrations.servicetitan.provider.ServiceTitanProvider",
}


class ProviderError(Exception):
    """``code`` names the kind of error ("Customer Conflict", "Validation Error", ...) and
    ``details`` lists field errors as ``{field, message, value}``, for APIs that report them."""

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        code: str = "",
        details: list[dict] | None = None,
    ):
        super().__init__(message)
        self.retry_after = retry_after
        self.code = code
        self.details = details or []


class RetryableProviderError(ProviderError):
    """A failure worth another attempt: timeout, connection error, 429 (``retry_after`` seconds
    from its Retry-After header) or a 5xx."""

    retryable = True


class PermanentProviderError(ProviderError):
    """A failure that another attempt would repeat: auth, validation, conflict, service area."""


class ProviderNotConfigured(Exception):
    """The company has no provider the engine can push to; its routings wait until it has."""


@dataclass(frozen=True)
class ProviderJobStatus:
    """A job as its provider sees it, for the back-sync."""

    external_id: str
    status: str  # "open", "completed" or "cancelled"
    completed_at: datetime | None = None
    revenue: Decimal | None = None

    OPEN = "open"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class Provider(ABC):
    """One company's field-service system. ``options`` are the company's provider settings.

    Every call takes a ``timeout`` in seconds and must return or raise a ``ProviderError`` within
    it. ``create_job`` must be idempotent on ``idempotency_key`` (the routing id): a second call
    with the same key returns the first call's external id and creates nothing.
    """

    provider_type = ""

    def __init__(self, *, company_id, options: dict | None = None):
        self.company_id = company_id
        self.options = options or {}

    @abstractmethod
    def create_job(self, *, routing, idempotency_key: str, timeout: float) -> str: ...

    @abstractmethod
    def get_job_status(self, *, external_id: str, timeout: float) -> ProviderJobStatus: ...

    @abstractmethod
    def cancel_job(self, *, external_id: str, reason: str, timeout: float) -> None: ...

    @abstractmethod
    def health(self) -> dict: ...


def provider_type_for(company) -> str:
    """The provider a company's routings go to: its own, or the mock when it has none and
    ``SYNC_UNCONFIGURED_WITH_MOCK`` is on; "" when there is none."""
    if company.provider_type:
        return company.provider_type
    return ProviderType.MOCK if settings.SYNC_UNCONFIGURED_WITH_MOCK else ""


def provider_for(company) -> Provider:
    """The provider instance for a company, or ``ProviderNotConfigured`` saying why not."""
    provider_type = provider_type_for(company)
    if not provider_type:
        raise ProviderNotConfigured(
            f"{company.name} has no field-service provider configured. Choose one on the "
            "company in the admin (or set SYNC_UNCONFIGURED_WITH_MOCK=true to sync such "
            "companies through the mock provider); the routing is synced once it has one."
        )
    path = PROVIDER_CLASSES.get(provider_type)
    if path is None:
        label = dict(ProviderType.choices).get(provider_type, provider_type)
        raise ProviderNotConfigured(
            f"The {label} provider is not available in this version; the routing waits until "
            "it is, or until the company's provider is changed in the admin."
        )
    return import_string(path)(company_id=company.id, options=company.provider_settings)

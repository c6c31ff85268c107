"""The field-service systems routings are pushed into: a small base class, typed errors, and the
provider-neutral shapes that go in and out of a provider (``integrations.registry`` maps a
provider type to its implementation).

Errors decide what the sync engine does next (DESIGN.md "The core flow", step 3):
``RetryableProviderError`` (timeouts, connection errors, 429, 5xx) schedules another attempt by the
backoff schedule, honouring ``retry_after``; ``PermanentProviderError`` (auth, validation,
conflict, unsupported service area) sends the routing to the dead-letter queue at once.
``ProviderNotConfigured`` is not an attempt at all: the routing waits, with the reason shown.
"""

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db import models

from tradeengage.exceptions import Problem, ProblemError, code_for_status


class ProviderType(models.TextChoices):
    """The field-service systems a company's routings can be pushed into."""

    MOCK = "mock", "Mock (in-process)"
    SERVICETITAN = "servicetitan", "ServiceTitan"
    CRM = "crm", "Field-service CRM (API v2)"


class ProviderError(ProblemError):
    """``code`` names the kind of error ("Customer Conflict", "Validation Error", ...) and
    ``details`` lists field errors as ``{field, message, value}``, for APIs that report them.

    Answered to an API client as seed 001 "Error Handling" does: a retryable error is a 503 with
    ``Retry-After``, any other the status of its ``code``."""

    retryable = False

    STATUS_BY_CODE = {
        "Validation Error": 400,
        "Invalid Status Transition": 400,
        "Not Supported": 400,
        "Authentication Failed": 401,
        "Forbidden": 403,
        "Not Found": 404,
        "Customer Conflict": 409,
        "Conflict": 409,
        "Service Area Not Supported": 422,
    }

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

    def problem(self) -> Problem:
        if self.retryable:
            return Problem(
                503,
                code_for_status(503),
                str(self),
                self.details,
                headers={"Retry-After": str(int(self.retry_after or 5))},
                title=self.code or "Service Unavailable",
            )
        status = self.STATUS_BY_CODE.get(self.code, 400)
        return Problem(
            status, code_for_status(status), str(self), self.details, title=self.code or "Error"
        )


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
    """A job as its provider sees it, for the back-sync. ``cancelled`` is the company turning
    the work down in its system (a dismissed booking, a cancelled job), with its ``reason``
    when the provider tells one. ``provider_job_id`` and ``provider_job_number`` name the job
    the company works from, when it differs from what was created (ServiceTitan's booking
    becomes a job once the office converts it)."""

    external_id: str
    status: str  # "open", "completed" or "cancelled"
    completed_at: datetime | None = None
    revenue: Decimal | None = None
    reason: str = ""
    provider_job_id: str = ""
    provider_job_number: str = ""
    # The job's own status at the provider, in its words ("scheduled", "in_progress"): how far
    # the company has got with it, shown on the routing.
    provider_status: str = ""

    OPEN = "open"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Address:
    street: str
    city: str
    state: str
    zip_code: str


@dataclass(frozen=True)
class Customer:
    name: str
    phone: str = ""
    email: str = ""


@dataclass(frozen=True)
class Work:
    """What a provider is asked to create, in no vendor's terms: who, where, what, and the
    idempotency key (our routing id) that makes a retried create return the first one's job.
    ``trades`` are the categories of the job's required skills, in the order listed."""

    idempotency_key: str
    summary: str
    customer: Customer
    address: Address
    category: str | None = None
    trades: tuple[str, ...] = ()


@dataclass(frozen=True)
class StatusUpdate:
    """A provider's news about one of its jobs, parsed from its webhook: the event's id (a
    replay is ignored), the job's status in ``ProviderJobStatus`` terms, and the references that
    name the job: ``routing_ids`` may hold our routing id as the provider echoes it back,
    ``external_ids`` the provider's own ids for it."""

    provider_type: str
    event_id: str
    status: str
    routing_ids: tuple[str, ...] = ()
    external_ids: tuple[str, ...] = ()
    completed_at: datetime | None = None
    revenue: Decimal | None = None
    reason: str = ""
    provider_job_id: str = ""
    provider_job_number: str = ""
    # The job's own status at the provider, in its words ("scheduled", "in_progress"): how far
    # the company has got with it, shown on the routing.
    provider_status: str = ""


class WebhookRejected(ProblemError):
    """A request that is not a webhook we can trust: nothing was read or changed."""

    def problem(self) -> Problem:
        return Problem(401, "UNAUTHORIZED", str(self), title="Unauthorized")


@dataclass(frozen=True)
class ProviderAccount:
    """Whose field-service system this is and how to reach it: what a provider is built from.
    ``settings`` are the company's provider settings (URLs, options) with its credentials merged
    over them; left out of the repr so that no log line or traceback shows a secret."""

    company_id: object
    company_name: str
    provider_type: str
    settings: dict = field(default_factory=dict, repr=False)

    @property
    def resolved_provider_type(self) -> str:
        return provider_type_resolved(self.provider_type)


class Provider(ABC):
    """One company's field-service system, built from its ``ProviderAccount``.

    Every call takes a ``timeout`` in seconds and must return or raise a ``ProviderError`` within
    it. ``create_job`` must be idempotent on ``work.idempotency_key``: a second call with the
    same key returns the first call's external id and creates nothing.
    """

    provider_type = ""
    # The settings that are secrets: a company's encrypted provider credentials, never its plain
    # provider settings.
    credential_keys: tuple[str, ...] = ()

    def __init__(self, account: ProviderAccount):
        self.account = account
        self.company_id = account.company_id
        self.options = dict(account.settings or {})

    @abstractmethod
    def create_job(self, *, work: Work, timeout: float) -> str:
        """The provider's id for the job made for ``work`` (its external id)."""

    @abstractmethod
    def get_job_status(self, *, external_id: str, timeout: float) -> ProviderJobStatus: ...

    def get_job_statuses(
        self, *, external_ids: Sequence[str], timeout: float
    ) -> dict[str, ProviderJobStatus]:
        """The jobs' statuses by external id, in as few calls as the provider allows (the
        back-sync asks about one account's routings in batches; ``timeout`` bounds each call).
        A job the provider does not know is left out; an error of the exchange itself (timeout,
        5xx, credentials refused) raises its ``ProviderError``.

        This default asks about each job in turn, leaving out a job whose question failed
        permanently and raising a retryable error; a provider whose API reads many jobs at once
        overrides it."""
        statuses = {}
        for external_id in dict.fromkeys(external_ids):
            try:
                statuses[external_id] = self.get_job_status(
                    external_id=external_id, timeout=timeout
                )
            except PermanentProviderError:
                continue
        return statuses

    @abstractmethod
    def cancel_job(self, *, external_id: str, reason: str, timeout: float) -> None: ...

    @abstractmethod
    def health(self) -> dict: ...

    def webhook_status_update(self, *, body: bytes, headers) -> StatusUpdate:
        """Verify a webhook from this provider and parse it; ``WebhookRejected`` when it cannot
        be trusted, a DRF ``ValidationError`` when its payload is malformed."""
        raise WebhookRejected(f"{self.provider_type or 'This provider'} sends no webhooks.")


def provider_type_resolved(provider_type: str) -> str:
    """The provider a company's routings go to: its own, or the mock when it has none and
    ``SYNC_UNCONFIGURED_WITH_MOCK`` is on; "" when there is none."""
    if provider_type:
        return provider_type
    return ProviderType.MOCK if settings.SYNC_UNCONFIGURED_WITH_MOCK else ""

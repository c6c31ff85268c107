"""ServiceTitan as a provider: a piece of work becomes a booking (seed 001's job-creation data),
created through the ServiceTitan service the company is configured for (the simulation, or the
real API); its signed webhooks become status updates."""

import re
import threading
from collections.abc import Sequence

from integrations.providers import (
    PermanentProviderError,
    Provider,
    ProviderJobStatus,
    ProviderType,
    StatusUpdate,
    WebhookRejected,
    Work,
)
from integrations.servicetitan.client import (
    CONNECT_TIMEOUT_SECONDS,
    READ_TIMEOUT_SECONDS,
    ServiceTitanApi,
)
from integrations.servicetitan.service import (
    CREDENTIAL_KEYS,
    servicetitan_config,
    servicetitan_service,
)
from integrations.servicetitan.types import PROBLEM_TYPES, Booking, ServiceTitanJob
from integrations.servicetitan.webhooks import servicetitan_webhook_parse

_services = threading.local()

# Garage-door problems recognised in a job's summary, first match wins.
GARAGE_DOOR_PROBLEMS = [
    ("spring", "broken_spring"),
    ("off track", "door_off_track"),
    ("off-track", "door_off_track"),
    ("cable", "broken_cable"),
    ("opener", "opener_repair"),
    ("remote", "opener_repair"),
    ("panel", "panel_replacement"),
    ("new door", "new_door_installation"),
    ("install", "new_door_installation"),
    ("nois", "noisy_door"),
    ("squeak", "noisy_door"),
]


def problem_type_for(*, summary: str, category: str | None, skill_categories: list[str]) -> str:
    """seed 001's problem type for a job: a garage-door problem named in its summary, else its
    trade (the job's category, else its first skill's), else "other"."""
    trade = category or next(iter(skill_categories), None)
    if trade == "garage_doors":
        text = summary.lower()
        return next((kind for word, kind in GARAGE_DOOR_PROBLEMS if word in text), "maintenance")
    return trade if trade in PROBLEM_TYPES else "other"


def booking_for(work: Work) -> Booking:
    """The booking for a piece of work: the homeowner's name split in two, the address and
    contacts, the summary and problem type, the job's category and trades (what the company's
    mapping is keyed by), and the idempotency key as the booking id (ServiceTitan's
    externalId), which makes a retried create find the first one."""
    first, _, last = work.customer.name.strip().partition(" ")
    digits = re.sub(r"\D", "", work.customer.phone or "")
    return Booking(
        booking_id=work.idempotency_key,
        first_name=first,
        last_name=last.strip(),
        phone=digits[-10:] if len(digits) >= 10 else "",
        email=work.customer.email or "",
        address=work.address.street,
        city=work.address.city,
        state=work.address.state,
        zip=work.address.zip_code[:5],
        problem_type=problem_type_for(
            summary=work.summary, category=work.category, skill_categories=list(work.trades)
        ),
        summary=work.summary,
        category=work.category or "",
        trades=tuple(work.trades),
    )


def job_status(external_id: str, job: ServiceTitanJob) -> ProviderJobStatus:
    """The back-sync's view of a ServiceTitan job or booking: a booking names no job yet, so
    ``provider_job_id`` and ``provider_job_number`` stay empty until the office converts it."""
    status = {
        "completed": ProviderJobStatus.COMPLETED,
        "cancelled": ProviderJobStatus.CANCELLED,
    }.get(job.status, ProviderJobStatus.OPEN)
    return ProviderJobStatus(
        external_id=external_id,
        status=status,
        completed_at=job.completed_at,
        revenue=job.invoice_total,
        reason=job.cancel_reason if status == ProviderJobStatus.CANCELLED else "",
        provider_job_id="" if job.is_booking else str(job.id),
        provider_job_number="" if job.is_booking else job.job_number,
    )


class ServiceTitanProvider(Provider):
    provider_type = ProviderType.SERVICETITAN
    credential_keys = (*CREDENTIAL_KEYS, "webhook_secret")

    def _service(self, timeout: float):
        """One service per configuration and thread, so the real client's HTTP session (and
        its pooled connections) is reused from call to call."""
        config = servicetitan_config(self.options)
        for key, default in (
            ("connect_timeout_seconds", CONNECT_TIMEOUT_SECONDS),
            ("timeout_seconds", READ_TIMEOUT_SECONDS),
        ):
            config[key] = min(float(config.get(key) or default), timeout)
        key = tuple(sorted((name, str(value)) for name, value in config.items()))
        services = _services.__dict__.setdefault("by_config", {})
        if key not in services:
            services[key] = servicetitan_service(config)
        return services[key]

    def create_job(self, *, work: Work, timeout: float) -> str:
        return self._service(timeout).create_job(booking_for(work)).reference

    def get_job_status(self, *, external_id: str, timeout: float) -> ProviderJobStatus:
        return job_status(external_id, self._service(timeout).job_for_reference(external_id))

    def get_job_statuses(
        self, *, external_ids: Sequence[str], timeout: float
    ) -> dict[str, ProviderJobStatus]:
        service = self._service(timeout)
        if not isinstance(service, ServiceTitanApi):
            # The simulation reads its database one job at a time.
            return super().get_job_statuses(external_ids=external_ids, timeout=timeout)
        return {
            reference: job_status(reference, job)
            for reference, job in service.jobs_for_references(external_ids).items()
        }

    def cancel_job(self, *, external_id: str, reason: str, timeout: float) -> None:
        service = self._service(timeout)
        job = service.job_for_reference(external_id)
        if job.is_booking:
            raise PermanentProviderError(
                f"Booking {external_id} is not a job yet; dismiss it in ServiceTitan.",
                code="Not Supported",
            )
        service.cancel_job(job.id, reason)

    def health(self) -> dict:
        return self._service(10.0).get_health_status()

    def webhook_status_update(self, *, body: bytes, headers) -> StatusUpdate:
        secret = servicetitan_config(self.options).get("webhook_secret")
        if not secret:
            raise WebhookRejected("No webhook secret is configured for this provider account.")
        return servicetitan_webhook_parse(body=body, headers=headers, secret=secret)

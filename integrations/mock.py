"""The mock field-service system: in-process, stored in the database, with configurable latency
and failures for the demo, the tests and the benchmarks.

Options come from the company's ``provider_settings`` over the ``MOCK_PROVIDER`` setting:

* ``latency_ms``: how long each create takes (beyond the call's timeout it times out);
* ``failure_rate``: the share of create calls that fail with ``failure``;
* ``fail_first``: the first N create calls for each routing fail with ``failure``;
* ``failure``: one of ``FAILURES`` (default ``server_error``);
* ``retry_after``: the Retry-After seconds of a ``rate_limited`` failure (default 30);
* ``complete_after_seconds``: jobs are completed this long after their creation and report it
  from then on, with that completion time and a revenue derived from their id (off when unset).
"""

import hashlib
import random
import time
import uuid
from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection
from django.db.models import Case, F, Value, When
from django.utils import timezone

from integrations.models import MockJob
from integrations.providers import (
    PermanentProviderError,
    Provider,
    ProviderAccount,
    ProviderJobStatus,
    ProviderType,
    RetryableProviderError,
    Work,
)

# failure: (error class, message, code), the codes ServiceTitan's client gives the same errors.
FAILURES = {
    "timeout": (RetryableProviderError, "Mock provider: no answer within {timeout:g} s", "Timeout"),
    "connection": (
        RetryableProviderError,
        "Mock provider: connection refused",
        "Service Unavailable",
    ),
    "server_error": (
        RetryableProviderError,
        "Mock provider: HTTP 503 Service Unavailable",
        "Service Unavailable",
    ),
    "rate_limited": (
        RetryableProviderError,
        "Mock provider: HTTP 429 Too Many Requests",
        "Rate Limited",
    ),
    "validation": (
        PermanentProviderError,
        "Mock provider: HTTP 400 invalid customer phone",
        "Validation Error",
    ),
    "auth": (
        PermanentProviderError,
        "Mock provider: HTTP 401 invalid credentials",
        "Authentication Failed",
    ),
    "conflict": (
        PermanentProviderError,
        "Mock provider: HTTP 409 customer already exists",
        "Customer Conflict",
    ),
    "service_area": (
        PermanentProviderError,
        "Mock provider: service area not supported",
        "Service Area Not Supported",
    ),
}

_random = random.Random()


class MockProvider(Provider):
    provider_type = ProviderType.MOCK

    def __init__(self, account: ProviderAccount):
        super().__init__(account)
        self.options = {**settings.MOCK_PROVIDER, **self.options}

    def create_job(self, *, work: Work, timeout: float) -> str:
        options = self.options
        latency = float(options.get("latency_ms") or 0) / 1000
        if latency > timeout:
            time.sleep(timeout)
            self._fail("timeout", timeout)
        if latency:
            time.sleep(latency)
        fail_first = int(options.get("fail_first") or 0)
        unlucky = _random.random() < float(options.get("failure_rate") or 0)
        refuse = unlucky or fail_first > 0
        key = work.idempotency_key
        calls, external_id = self._record_call(
            key, summary=work.summary, external_id=None if refuse else _new_id()
        )
        if unlucky or calls <= fail_first:
            self._fail(options.get("failure") or "server_error", timeout)
        if external_id is None:
            external_id = self._assign_id(key)
        return external_id

    def get_job_status(self, *, external_id: str, timeout: float) -> ProviderJobStatus:
        statuses = self.get_job_statuses(external_ids=[external_id], timeout=timeout)
        if external_id not in statuses:
            raise PermanentProviderError(f"Mock provider: HTTP 404 no job {external_id}")
        return statuses[external_id]

    def get_job_statuses(
        self, *, external_ids: Sequence[str], timeout: float
    ) -> dict[str, ProviderJobStatus]:
        """One query for the whole batch. With ``complete_after_seconds``, a job completed at its
        creation plus that delay, whenever it is asked: the first answer after that records it
        (one conditional update for the batch, so a job cancelled meanwhile stays cancelled)."""
        jobs = list(MockJob.objects.filter(external_id__in=list(external_ids)))
        complete_after = self.options.get("complete_after_seconds")
        if complete_after is not None:
            delay = timedelta(seconds=float(complete_after))
            now = timezone.now()
            due = [
                job
                for job in jobs
                if job.status == MockJob.Status.OPEN and job.created_at + delay <= now
            ]
            for job in due:
                job.status = MockJob.Status.COMPLETED
                job.completed_at = job.created_at + delay
                job.revenue = _revenue_for(job.external_id)
            if due:
                MockJob.objects.filter(
                    id__in=[job.id for job in due], status=MockJob.Status.OPEN
                ).update(
                    status=MockJob.Status.COMPLETED,
                    completed_at=F("created_at") + delay,
                    revenue=Case(*(When(id=job.id, then=Value(job.revenue)) for job in due)),
                )
        return {
            job.external_id: ProviderJobStatus(
                external_id=job.external_id,
                status=job.status,
                completed_at=job.completed_at,
                revenue=job.revenue,
                reason=job.cancel_reason if job.status == MockJob.Status.CANCELLED else "",
            )
            for job in jobs
        }

    def cancel_job(self, *, external_id: str, reason: str, timeout: float) -> None:
        changed = MockJob.objects.filter(
            external_id=external_id, status=MockJob.Status.OPEN
        ).update(status=MockJob.Status.CANCELLED, cancel_reason=reason)
        if not changed and not MockJob.objects.filter(external_id=external_id).exists():
            raise PermanentProviderError(f"Mock provider: HTTP 404 no job {external_id}")

    def health(self) -> dict:
        return {"status": "healthy", "version": "mock-1", "jobs": MockJob.objects.count()}

    def _record_call(self, key: str, *, summary: str, external_id: str | None):
        """Count a create call in one statement: insert the job, or bump the existing one's
        call count, keeping the first external id. Returns (calls so far, external id)."""
        table = MockJob._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f"""INSERT INTO {table} (idempotency_key, external_id, company_id, summary,
                        create_calls, status, cancel_reason, created_at)
                    VALUES (%s, %s, %s, %s, 1, %s, '', %s)
                    ON CONFLICT (idempotency_key) DO UPDATE
                    SET create_calls = {table}.create_calls + 1,
                        external_id = COALESCE({table}.external_id, EXCLUDED.external_id)
                    RETURNING create_calls, external_id""",
                [
                    key,
                    external_id,
                    MockJob._meta.get_field("company_id").get_db_prep_value(
                        self.company_id, connection
                    ),
                    summary,
                    MockJob.Status.OPEN,
                    MockJob._meta.get_field("created_at").get_db_prep_value(
                        timezone.now(), connection
                    ),
                ],
            )
            return cursor.fetchone()

    def _assign_id(self, key: str) -> str:
        MockJob.objects.filter(idempotency_key=key, external_id__isnull=True).update(
            external_id=_new_id()
        )
        return MockJob.objects.values_list("external_id", flat=True).get(idempotency_key=key)

    def _fail(self, failure: str, timeout: float):
        error_class, message, code = FAILURES.get(failure, FAILURES["server_error"])
        retry_after = (
            float(self.options.get("retry_after", 30)) if failure == "rate_limited" else None
        )
        raise error_class(message.format(timeout=timeout), retry_after=retry_after, code=code)


def _new_id() -> str:
    return f"MOCK-{uuid.uuid4().hex[:12].upper()}"


def _revenue_for(external_id: str) -> Decimal:
    """A stable, plausible invoice total for a completed mock job: $150 to $2,500."""
    digest = int(hashlib.sha256(external_id.encode()).hexdigest()[:8], 16)
    return Decimal(150 + digest % 2351)

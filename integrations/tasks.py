"""seed 001 "Queue Processing": the ServiceTitan module's four job types as Celery tasks on
queues by priority (creation critical, cancellation high, status update default, health check
low). Creation and status updates retry retryable errors at most 3 times at 5 s, 10 s and 20 s
(``SYNC_RETRY_BACKOFF_SECONDS``); a non-retryable error, or the last retry, fails the task
permanently: one structured log line and a dead letter in the outbox, visible in the admin."""

import logging
import time
import uuid

from celery import shared_task
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from integrations.providers import ProviderError
from integrations.servicetitan.service import booking_from_json, servicetitan_service

logger = logging.getLogger("integrations")

HEALTH_CACHE_KEY = "health:servicetitan"
HEALTH_CACHE_SECONDS = 600


@shared_task(bind=True, ignore_result=True)
def servicetitan_create_job(self, booking: dict, options: dict | None = None) -> None:
    try:
        job = servicetitan_service(options).create_job(booking_from_json(booking))
    except ProviderError as exc:
        _retry_or_fail(self, exc, "job creation", booking.get("booking_id"), {"booking": booking})
        return
    logger.info(
        "ServiceTitan job created successfully",
        extra={
            "servicetitan_job_id": job.id,
            "job_number": job.job_number,
            "booking_id": booking.get("booking_id") or None,
            "status": job.status,
        },
    )


@shared_task(bind=True, ignore_result=True)
def servicetitan_update_status(self, job_id: int, status: str, options: dict | None = None):
    try:
        servicetitan_service(options).update_job_status(job_id, status)
    except ProviderError as exc:
        data = {"job_id": job_id, "status": status}
        _retry_or_fail(self, exc, "status update", str(job_id), data)


@shared_task(bind=True, ignore_result=True)
def servicetitan_cancel_job(self, job_id: int, reason: str, options: dict | None = None):
    try:
        servicetitan_service(options).cancel_job(job_id, reason)
    except ProviderError as exc:
        data = {"job_id": job_id, "reason": reason}
        _retry_or_fail(self, exc, "job cancellation", str(job_id), data)


@shared_task(ignore_result=True)
def servicetitan_health_check() -> dict:
    """Ask the configured ServiceTitan service how it is; /api/v1/health/detailed reads the
    answer from the cache. No retries: the next beat asks again."""
    started = time.monotonic()
    try:
        health = servicetitan_service().get_health_status()
    except Exception as exc:
        health = {"status": "unhealthy", "error": str(exc)}
    health = {
        "status": health.get("status", "unhealthy"),
        "version": health.get("version"),
        "response_time_ms": round((time.monotonic() - started) * 1000, 1),
        "checked_at": timezone.now().isoformat(),
    }
    cache.set(HEALTH_CACHE_KEY, health, HEALTH_CACHE_SECONDS)
    return health


def _retry_or_fail(task, exc: ProviderError, action: str, reference, data: dict) -> None:
    attempts = task.request.retries + 1
    schedule = settings.SYNC_RETRY_BACKOFF_SECONDS
    if exc.retryable and task.request.retries < len(schedule):
        delay = max(schedule[task.request.retries], min(exc.retry_after or 0, 3600))
        raise task.retry(exc=exc, countdown=delay, max_retries=len(schedule))
    logger.error(
        f"ServiceTitan {action} failed permanently",
        extra={"error": str(exc), "booking_id": reference, "attempts": attempts},
    )
    from routing.models import OutboxEvent, OutboxStatus

    OutboxEvent.objects.create(
        event_type=f"servicetitan_{action.replace(' ', '_')}",
        aggregate_id=uuid.uuid5(uuid.NAMESPACE_URL, f"servicetitan:{reference}:{time.time()}"),
        event_data={**data, "error_code": exc.code},
        status=OutboxStatus.DEAD,
        attempts=attempts,
        processed_at=timezone.now(),
        last_error=str(exc),
    )

"""The ServiceTitan health check of seed 001's queue ("health check low"). The module's other
queue tasks (creation, cancellation, status update) record their dead letters in the outbox and
so live with it, in ``routing.tasks``."""

import time

from celery import shared_task
from django.core.cache import cache
from django.utils import timezone

from integrations.crm.simulator.deliveries import delivery_attempt
from integrations.servicetitan.service import servicetitan_service

HEALTH_CACHE_KEY = "health:servicetitan"
HEALTH_CACHE_SECONDS = 600


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


@shared_task(ignore_result=True)
def crm_simulator_deliver_webhook(delivery_id: int) -> None:
    """Send one CRM simulator webhook delivery; after a failed attempt, enqueue the next one as
    late as ``CRM_SIMULATOR_WEBHOOK_RETRY_SECONDS`` says, until it gives up."""
    retry_in = delivery_attempt(delivery_id=delivery_id)
    if retry_in is not None:
        crm_simulator_deliver_webhook.apply_async((delivery_id,), countdown=retry_in)

"""Health probes (seed 000 "Health Checks"): open to anyone, no API key, for load balancers and
orchestrators."""

import time

import redis
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view, authentication_classes, permission_classes
from rest_framework.response import Response

from integrations.providers import ProviderType
from integrations.tasks import HEALTH_CACHE_KEY
from routing.models import OutboxEvent, OutboxStatus
from tradeengage import heartbeats
from tradeengage.celery import app as celery_app

HEALTHY, UNHEALTHY = "healthy", "unhealthy"


def _timed(check) -> dict:
    started = time.perf_counter()
    try:
        detail = check() or {}
        status = HEALTHY
    except Exception as exc:  # a probe reports any failure instead of raising it
        detail = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        status = UNHEALTHY
    elapsed_ms = (time.perf_counter() - started) * 1000
    return {"status": status, "response_time": f"{elapsed_ms:.0f}ms", **detail}


def check_database() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {}


def check_redis() -> dict:
    """Redis when REDIS_URL is set; on the embedded default, the file-based cache and broker."""
    if settings.REDIS_URL:
        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2
        )
        try:
            client.ping()
        finally:
            client.close()
        return {}
    key = "health:probe"
    cache.set(key, "ok", 10)
    if cache.get(key) != "ok":
        raise RuntimeError("cache did not return the value just written")
    return {"backend": "filesystem"}


def check_broker() -> dict:
    """The Celery broker accepts a connection (Redis, or the embedded filesystem broker)."""
    with celery_app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1, timeout=2)
        return {"transport": connection.transport_cls}


def provider_statuses() -> dict:
    """The mock provider runs in-process. ServiceTitan's status is its latest beat health
    check (``integrations.tasks.servicetitan_health_check``), "not_checked" before the first."""
    try:
        servicetitan = (cache.get(HEALTH_CACHE_KEY) or {}).get("status", "not_checked")
    except Exception:
        servicetitan = "unknown"  # the cache is down: reported under "cache"
    return {
        ProviderType.MOCK.value: HEALTHY,
        ProviderType.SERVICETITAN.value: servicetitan,
        ProviderType.CRM.value: "not_configured",
    }


def check_workers() -> dict:
    """Live workers by the queues they consume, from their heartbeats; unhealthy when none
    consumes ``critical`` (the relay and the syncs), unless HEALTH_WORKERS_REQUIRED is off."""
    consumers = heartbeats.queue_consumers()
    missing = settings.HEALTH_WORKERS_REQUIRED and not consumers.get("critical")
    return {
        "status": UNHEALTHY if missing else HEALTHY,
        "consumers": {queue: consumers.get(queue, 0) for queue in celery_app.amqp.queues},
        **({"error": "no live worker consumes the critical queue"} if missing else {}),
    }


def check_beat() -> dict:
    age = heartbeats.beat_last_tick_age()
    limit = settings.HEALTH_BEAT_MAX_AGE_SECONDS
    stale = settings.HEALTH_WORKERS_REQUIRED and (age is None or age > limit)
    return {
        "status": UNHEALTHY if stale else HEALTHY,
        "last_tick_age_seconds": None if age is None else round(age, 1),
        **({"error": f"beat has not ticked for {limit} s"} if stale else {}),
    }


def check_outbox() -> dict:
    """The oldest event due for relaying: unhealthy when it has waited longer than
    HEALTH_OUTBOX_MAX_DUE_AGE_SECONDS (read from the relay's own partial index)."""
    now = timezone.now()
    oldest = (
        OutboxEvent.objects.filter(status=OutboxStatus.PENDING, available_at__lte=now)
        .order_by("available_at")
        .values_list("available_at", flat=True)
        .first()
    )
    age = None if oldest is None else (now - oldest).total_seconds()
    limit = settings.HEALTH_OUTBOX_MAX_DUE_AGE_SECONDS
    late = age is not None and age > limit
    return {
        "status": UNHEALTHY if late else HEALTHY,
        "oldest_due_age_seconds": None if age is None else round(age, 1),
        **({"error": f"an event has been due for over {limit} s"} if late else {}),
    }


def _background(check) -> dict:
    try:
        return check()
    except Exception as exc:  # the cache or the database is down: reported as such above
        return {"status": "unknown", "error": f"{type(exc).__name__}: {exc}"[:300]}


def detailed_components() -> dict:
    """Each component's health as ``/api/v1/health/detailed`` reports it, and ``/metrics`` as
    series. Never raises: each check's failure is its component's status."""
    providers = provider_statuses()
    return {
        "database": _timed(check_database),
        "redis": _timed(check_redis),
        "broker": _timed(check_broker),
        "workers": _background(check_workers),
        "beat": _background(check_beat),
        "outbox": _background(check_outbox),
        "external_apis": {
            "status": UNHEALTHY if UNHEALTHY in providers.values() else HEALTHY,
            "providers": providers,
        },
    }


def _now() -> str:
    return timezone.now().isoformat()


BasicHealth = inline_serializer(
    "BasicHealth",
    {
        "status": serializers.CharField(),
        "timestamp": serializers.DateTimeField(),
        "version": serializers.CharField(),
    },
)
ComponentHealth = inline_serializer(
    "ComponentHealth",
    {"status": serializers.CharField(), "response_time": serializers.CharField()},
)
DetailedHealth = inline_serializer(
    "DetailedHealth",
    {
        "status": serializers.ChoiceField(choices=[HEALTHY, UNHEALTHY]),
        "timestamp": serializers.DateTimeField(),
        "version": serializers.CharField(),
        "components": inline_serializer(
            "HealthComponents",
            {
                "database": ComponentHealth,
                "redis": ComponentHealth,
                "broker": ComponentHealth,
                "workers": inline_serializer(
                    "WorkersHealth",
                    {
                        "status": serializers.CharField(),
                        "consumers": serializers.DictField(child=serializers.IntegerField()),
                    },
                ),
                "beat": inline_serializer(
                    "BeatHealth",
                    {
                        "status": serializers.CharField(),
                        "last_tick_age_seconds": serializers.FloatField(allow_null=True),
                    },
                ),
                "outbox": inline_serializer(
                    "OutboxHealth",
                    {
                        "status": serializers.CharField(),
                        "oldest_due_age_seconds": serializers.FloatField(allow_null=True),
                    },
                ),
                "external_apis": inline_serializer(
                    "ExternalApisHealth",
                    {
                        "status": serializers.CharField(),
                        "providers": serializers.DictField(child=serializers.CharField()),
                    },
                ),
            },
        ),
    },
)
ProbeStatus = inline_serializer(
    "ProbeStatus",
    {"status": serializers.CharField(), "timestamp": serializers.DateTimeField()},
)


@extend_schema(operation_id="health", summary="Basic health check", responses={200: BasicHealth})
@api_view(["GET"])
@authentication_classes([])
@permission_classes([])
def health(request):
    return Response({"status": HEALTHY, "timestamp": _now(), "version": settings.APP_VERSION})


@extend_schema(
    operation_id="health_detailed",
    summary="Database, Redis, broker, workers, beat, outbox and provider health",
    responses={200: DetailedHealth, 503: DetailedHealth},
)
@api_view(["GET"])
@authentication_classes([])
@permission_classes([])
def health_detailed(request):
    components = detailed_components()
    overall = UNHEALTHY if any(c["status"] == UNHEALTHY for c in components.values()) else HEALTHY
    body = {
        "status": overall,
        "timestamp": _now(),
        "version": settings.APP_VERSION,
        "components": components,
    }
    return Response(body, status=200 if overall == HEALTHY else 503)


# What the web process cannot serve without: a probe answers 503 while any is down.
REQUIRED = {"database": check_database, "redis": check_redis, "broker": check_broker}


@extend_schema(
    operation_id="health_ready",
    summary="Readiness probe: 503 while the database, Redis (or the cache) or the broker is down",
    responses={200: ProbeStatus, 503: ProbeStatus},
)
@api_view(["GET"])
@authentication_classes([])
@permission_classes([])
def health_ready(request):
    down = [name for name, check in REQUIRED.items() if _timed(check)["status"] != HEALTHY]
    if down:
        return Response(
            {
                "status": "not_ready",
                "timestamp": _now(),
                "reason": ", ".join(f"{name} unreachable" for name in down),
            },
            status=503,
        )
    return Response({"status": "ready", "timestamp": _now()})


@extend_schema(operation_id="health_live", summary="Liveness probe", responses={200: ProbeStatus})
@api_view(["GET"])
@authentication_classes([])
@permission_classes([])
def health_live(request):
    return Response({"status": "alive", "timestamp": _now()})

import re
import time
from datetime import datetime, timedelta

import pytest
from django.db import OperationalError, connection
from django.utils import timezone
from kombu import Connection

from routing.tests.factories import OutboxEventFactory
from tradeengage import heartbeats
from tradeengage.celery import app as celery_app
from tradeengage.heartbeats import WorkerHeartbeat

HEALTH_URL = "/api/v1/health"
DETAILED_URL = "/api/v1/health/detailed"
READY_URL = "/api/v1/health/ready"
LIVE_URL = "/api/v1/health/live"
RESPONSE_TIME = re.compile(r"^\d+ms$")

pytestmark = pytest.mark.django_db


@pytest.fixture
def broker_down(monkeypatch):
    """The broker refuses connections: nothing listens on port 1."""
    monkeypatch.setattr(
        celery_app, "connection_for_write", lambda: Connection("redis://127.0.0.1:1/0")
    )


@pytest.fixture
def database_down():
    """Every statement fails at the driver, as when PostgreSQL is gone."""

    def refuse(execute, sql, params, many, context):
        raise OperationalError("could not connect to server")

    with connection.execute_wrapper(refuse):
        yield


def test_health_reports_healthy_with_version(client):
    response = client.get(HEALTH_URL)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"status", "timestamp", "version"}
    assert body["status"] == "healthy"
    assert body["version"] == "1.0.0"
    datetime.fromisoformat(body["timestamp"])


def test_detailed_health_reports_each_component_with_response_time(client, background_alive):
    response = client.get(DETAILED_URL)

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"status", "timestamp", "version", "components"}
    assert body["status"] == "healthy"
    components = body["components"]
    assert set(components) == {
        "database",
        "redis",
        "broker",
        "workers",
        "beat",
        "outbox",
        "external_apis",
    }
    assert components["workers"]["consumers"] == {
        "critical": 1,
        "high": 1,
        "default": 1,
        "low": 1,
        "webhooks": 1,
    }
    assert components["beat"]["last_tick_age_seconds"] < 5
    assert components["outbox"] == {"status": "healthy", "oldest_due_age_seconds": None}
    for name in ("database", "redis"):
        assert components[name]["status"] == "healthy"
        assert RESPONSE_TIME.match(components[name]["response_time"])
    assert components["external_apis"]["status"] == "healthy"
    providers = components["external_apis"]["providers"]
    assert providers["mock"] == "healthy"
    assert "servicetitan" in providers


def test_detailed_health_is_unhealthy_with_503_when_the_database_is_down(client, database_down):
    response = client.get(DETAILED_URL)

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    database = body["components"]["database"]
    assert database["status"] == "unhealthy"
    assert RESPONSE_TIME.match(database["response_time"])
    assert "could not connect" in database["error"]
    assert body["components"]["redis"]["status"] == "healthy"


def test_detailed_health_is_unhealthy_with_503_when_redis_is_down(client, settings):
    # Nothing listens on port 1: the real Redis check fails with a refused connection.
    settings.REDIS_URL = "redis://127.0.0.1:1/0"

    response = client.get(DETAILED_URL)

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["components"]["redis"]["status"] == "unhealthy"
    assert body["components"]["redis"]["error"]
    assert body["components"]["database"]["status"] == "healthy"


def test_detailed_health_is_unhealthy_when_the_cache_is_down(client, settings):
    # Without REDIS_URL the check writes to the cache and reads it back; a cache that keeps
    # nothing fails it as a broken one would.
    settings.REDIS_URL = ""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}

    response = client.get(DETAILED_URL)

    assert response.status_code == 503
    redis = response.json()["components"]["redis"]
    assert redis["status"] == "unhealthy"
    assert "did not return the value just written" in redis["error"]


def test_ready_while_the_database_answers(client):
    response = client.get(READY_URL)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"status", "timestamp"}
    assert body["status"] == "ready"


def test_not_ready_with_503_when_the_database_is_down(client, database_down):
    response = client.get(READY_URL)

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready"
    assert body["reason"] == "database unreachable"
    datetime.fromisoformat(body["timestamp"])


def test_live_answers_alive_even_when_the_database_is_down(client, database_down):
    response = client.get(LIVE_URL)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"status", "timestamp"}
    assert body["status"] == "alive"


def test_detailed_health_checks_the_broker(client):
    broker = client.get(DETAILED_URL).json()["components"]["broker"]

    assert broker["status"] == "healthy"
    assert RESPONSE_TIME.match(broker["response_time"])
    assert broker["transport"] in {"redis", "filesystem"}


def test_detailed_health_is_unhealthy_with_503_when_the_broker_is_down(client, broker_down):
    response = client.get(DETAILED_URL)

    assert response.status_code == 503
    broker = response.json()["components"]["broker"]
    assert broker["status"] == "unhealthy"
    assert "Connection refused" in broker["error"]


def test_not_ready_with_503_when_the_broker_is_down(client, broker_down):
    response = client.get(READY_URL)

    assert response.status_code == 503
    assert response.json()["reason"] == "broker unreachable"


def test_not_ready_with_503_when_redis_is_down(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"

    response = client.get(READY_URL)

    assert response.status_code == 503
    assert response.json()["reason"] == "redis unreachable"


def test_live_answers_alive_even_when_the_broker_and_redis_are_down(client, broker_down, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"

    assert client.get(LIVE_URL).status_code == 200


# The background: workers, beat and the outbox


def components_of(client) -> tuple[int, dict]:
    response = client.get(DETAILED_URL)
    return response.status_code, response.json()["components"]


def test_no_worker_on_the_critical_queue_is_unhealthy(client):
    heartbeats.beat_tick()
    heartbeats.worker_heartbeat("celery@low-only", ["low"])

    status, components = components_of(client)

    assert status == 503
    assert components["workers"]["status"] == "unhealthy"
    assert components["workers"]["consumers"]["critical"] == 0
    assert components["workers"]["consumers"]["low"] == 1
    assert "critical" in components["workers"]["error"]


def test_a_worker_that_stopped_beating_is_gone_within_a_minute(client, background_alive):
    heartbeats.worker_heartbeat("celery@tests", ["critical"], now=time.time() - 61)

    status, components = components_of(client)

    assert status == 503
    assert components["workers"]["consumers"]["critical"] == 0


def test_a_beat_that_stopped_ticking_is_unhealthy_after_a_minute(client, background_alive):
    heartbeats.beat_tick(now=time.time() - 61)

    status, components = components_of(client)

    assert status == 503
    assert components["beat"]["status"] == "unhealthy"
    assert components["beat"]["last_tick_age_seconds"] >= 61


def test_an_event_due_for_too_long_is_unhealthy(client, background_alive, settings):
    settings.HEALTH_OUTBOX_MAX_DUE_AGE_SECONDS = 300
    OutboxEventFactory(available_at=timezone.now() - timedelta(seconds=400))

    status, components = components_of(client)

    assert status == 503
    assert components["outbox"]["status"] == "unhealthy"
    assert components["outbox"]["oldest_due_age_seconds"] >= 400


def test_without_required_workers_their_absence_is_reported_but_healthy(client, settings):
    settings.HEALTH_WORKERS_REQUIRED = False

    status, components = components_of(client)

    assert status == 200
    assert components["workers"]["consumers"]["critical"] == 0
    assert components["beat"]["last_tick_age_seconds"] is None


def test_a_worker_heartbeat_thread_beats_until_stopped():
    beat = WorkerHeartbeat("celery@thread", ["critical", "default"])
    beat.start()
    try:
        for _ in range(50):
            if heartbeats.queue_consumers().get("critical"):
                break
            time.sleep(0.02)
        assert heartbeats.queue_consumers() == {"critical": 1, "default": 1}
    finally:
        beat.stop()

    assert heartbeats.queue_consumers() == {}

"""Metrics at ``/metrics`` (tradeengage.metrics, tradeengage.monitoring): seed 000's series counted
where things happen, queue_depth read at scrape time, who may scrape, and counts made in other
processes (multiprocess mode) added up."""

import ipaddress
import math
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import OperationalError, connection
from django.utils import timezone
from kombu import Connection
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from routing.models import OutboxStatus
from routing.tests.factories import OutboxEventFactory
from tradeengage import heartbeats, monitoring

pytestmark = pytest.mark.django_db

MANAGE_DIR = Path(__file__).resolve().parents[2]


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scraped(client, **headers) -> dict[tuple, float]:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.status_code
    assert response["Content-Type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.content.decode())
        for s in family.samples
    }


def test_a_job_created_counts_the_job_its_routings_and_the_request(
    api_client,
    job_payload,
    plumbing_company,
    electrical_company,
    client,
    django_capture_on_commit_callbacks,
):
    jobs, routings = sample("job_creation_total"), sample("job_routing_total", source="matched")
    vendor = connection.vendor
    queries = sample("django_db_execute_total", alias="default", vendor=vendor)
    requests = sample(
        "api_request_duration_seconds_count", route="api/v1/jobs/", method="POST", status="201"
    )

    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post("/api/v1/jobs/", job_payload, format="json")

    assert response.status_code == 201, response.content
    assert sample("job_creation_total") == jobs + 1
    assert sample("job_routing_total", source="matched") == routings + 1
    assert (
        sample(
            "api_request_duration_seconds_count", route="api/v1/jobs/", method="POST", status="201"
        )
        == requests + 1
    )
    metrics = scraped(client)
    assert metrics[("job_creation_total", ())] == jobs + 1
    # django-prometheus's database series count the request's queries.
    executed = metrics[("django_db_execute_total", (("alias", "default"), ("vendor", vendor)))]
    assert executed > queries
    assert sample("django_db_query_duration_seconds_count", alias="default", vendor=vendor) > 0


def test_a_job_rolled_back_counts_nothing(
    api_client, job_payload, django_capture_on_commit_callbacks
):
    jobs = sample("job_creation_total")

    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post(
            "/api/v1/jobs/", {**job_payload, "required_skills": ["astrology"]}, format="json"
        )

    assert response.status_code == 422
    assert sample("job_creation_total") == jobs


def test_a_429_we_answer_is_counted_by_the_limit_that_refused_it(api_client, settings):
    settings.RATE_LIMIT_OPS_PLAN = "free"
    settings.RATE_LIMIT_PLANS = {
        **settings.RATE_LIMIT_PLANS,
        "free": {**settings.RATE_LIMIT_PLANS["free"], "requests_per_minute": 1},
    }
    refused = sample("rate_limit_rejections_total", policy="requests")

    api_client.get("/api/v1/jobs/")
    assert api_client.get("/api/v1/jobs/").status_code == 429

    assert sample("rate_limit_rejections_total", policy="requests") == refused + 1


def test_queue_depth_has_each_celery_queue_and_the_outbox(client, settings):
    settings.METRICS_QUEUE_DEPTH_CACHE_SECONDS = 0
    OutboxEventFactory.create_batch(2, status=OutboxStatus.PENDING)
    OutboxEventFactory(status=OutboxStatus.DEAD)
    OutboxEventFactory(status=OutboxStatus.DONE)

    metrics = scraped(client)

    depth = {
        dict(labels)["queue"]: value
        for (name, labels), value in metrics.items()
        if name == "queue_depth"
    }
    assert depth["outbox:pending"] == 2
    assert depth["outbox:dead"] == 1
    assert depth["outbox:in_flight"] == 0
    assert {"critical", "high", "default", "low"} <= set(depth)


def test_queue_depth_is_read_again_only_after_its_cache_time(client, settings):
    dead = ("queue_depth", (("queue", "outbox:dead"),))
    settings.METRICS_QUEUE_DEPTH_CACHE_SECONDS = 0
    first = scraped(client)[dead]
    settings.METRICS_QUEUE_DEPTH_CACHE_SECONDS = 3600
    OutboxEventFactory(status=OutboxStatus.DEAD)

    cached = scraped(client)[dead]
    settings.METRICS_QUEUE_DEPTH_CACHE_SECONDS = 0
    read_again = scraped(client)[dead]

    assert (cached, read_again) == (first, first + 1)


@pytest.mark.parametrize(
    ("networks", "token", "headers", "allowed"),
    [
        (["127.0.0.1/32"], "", {}, True),
        (["10.0.0.0/8"], "", {}, False),
        ([], "s3cret-token", {"Authorization": "Bearer s3cret-token"}, True),
        ([], "s3cret-token", {"Authorization": "Bearer wrong"}, False),
        ([], "s3cret-token", {}, False),
        ([], "", {"Authorization": "Bearer "}, False),
    ],
    ids=["loopback-allowed", "other-network", "token", "wrong-token", "no-token", "none-set"],
)
def test_who_may_scrape_is_a_setting(client, settings, networks, token, headers, allowed):
    settings.METRICS_ALLOWED_NETWORKS = [ipaddress.ip_network(n) for n in networks]
    settings.METRICS_TOKEN = token

    response = client.get("/metrics", headers=headers)

    assert response.status_code == (200 if allowed else 404)


CHILD = """
from prometheus_client import Counter
Counter("job_creation", "Jobs created").inc(3)
"""


def test_counts_of_other_processes_are_added_up_in_multiprocess_mode(client, tmp_path, monkeypatch):
    """A worker (here a child process) counts into files in PROMETHEUS_MULTIPROC_DIR; the web
    process's /metrics adds them up."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "-c", CHILD], env=env, check=True, cwd=MANAGE_DIR)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))

    metrics = scraped(client)

    assert metrics[("job_creation_total", ())] == 3


def test_queue_depth_says_minus_one_when_the_broker_cannot_be_read(client, settings, monkeypatch):
    """The scrape still answers; the health probes say what is down."""
    settings.METRICS_QUEUE_DEPTH_CACHE_SECONDS = 0
    monkeypatch.setattr(
        monitoring.celery_app, "connection_for_read", lambda: Connection("redis://127.0.0.1:1/0")
    )

    metrics = scraped(client)

    assert metrics[("queue_depth", (("queue", "default"),))] == -1
    assert ("queue_depth", (("queue", "outbox:pending"),)) in metrics


# /api/v1/health/detailed's facts, read at scrape time from the same checks


HEALTH_SERIES = {
    "health_component_up",
    "queue_consumers",
    "beat_last_tick_age_seconds",
    "outbox_oldest_due_event_age_seconds",
}


def health_series(metrics: dict[tuple, float]) -> dict[str, dict]:
    """The health series of a scrape: each name's samples by their one label's value ("" when
    the series has no label)."""
    series: dict[str, dict] = {}
    for (name, labels), value in metrics.items():
        if name in HEALTH_SERIES:
            series.setdefault(name, {})[dict(labels).popitem()[1] if labels else ""] = value
    return series


@pytest.fixture
def read_at_each_scrape(settings):
    settings.METRICS_QUEUE_DEPTH_CACHE_SECONDS = 0


def test_health_series_say_what_detailed_health_says_with_the_background_alive(
    client, background_alive, read_at_each_scrape
):
    detailed = client.get("/api/v1/health/detailed").json()["components"]

    series = health_series(scraped(client))

    assert series["health_component_up"] == {
        name: float(component["status"] == "healthy") for name, component in detailed.items()
    }
    assert series["health_component_up"] == {
        "database": 1,
        "redis": 1,
        "broker": 1,
        "workers": 1,
        "beat": 1,
        "outbox": 1,
        "external_apis": 1,
    }
    assert series["queue_consumers"] == {
        "critical": 1,
        "high": 1,
        "default": 1,
        "low": 1,
        "webhooks": 1,
    }
    assert 0 <= series["beat_last_tick_age_seconds"][""] < 5
    assert series["outbox_oldest_due_event_age_seconds"] == {"": 0}


def test_workers_are_down_when_none_consumes_the_critical_queue(client, read_at_each_scrape):
    heartbeats.beat_tick()
    heartbeats.worker_heartbeat("celery@low-only", ["low"])
    heartbeats.worker_heartbeat("celery@default-and-low", ["default", "low"])

    series = health_series(scraped(client))

    assert series["health_component_up"]["workers"] == 0
    assert series["queue_consumers"] == {
        "critical": 0,
        "high": 0,
        "default": 1,
        "low": 2,
        "webhooks": 0,
    }


def test_a_beat_that_stopped_ticking_is_down_with_its_age(
    client, background_alive, read_at_each_scrape
):
    heartbeats.beat_tick(now=time.time() - 61)

    series = health_series(scraped(client))

    assert series["health_component_up"]["beat"] == 0
    assert series["health_component_up"]["workers"] == 1
    assert series["beat_last_tick_age_seconds"][""] >= 61


def test_a_beat_that_never_ticked_is_infinitely_old(client, read_at_each_scrape):
    heartbeats.worker_heartbeat("celery@tests", ["critical"])

    series = health_series(scraped(client))

    assert series["health_component_up"]["beat"] == 0
    assert series["beat_last_tick_age_seconds"][""] == math.inf


def test_an_event_due_for_too_long_puts_the_outbox_down_with_its_age(
    client, background_alive, read_at_each_scrape, settings
):
    settings.HEALTH_OUTBOX_MAX_DUE_AGE_SECONDS = 300
    OutboxEventFactory(available_at=timezone.now() - timedelta(seconds=400))
    OutboxEventFactory(available_at=timezone.now() + timedelta(hours=1))  # not due yet

    series = health_series(scraped(client))

    assert series["health_component_up"]["outbox"] == 0
    assert 400 <= series["outbox_oldest_due_event_age_seconds"][""] < 460


def test_health_series_are_read_again_only_after_their_cache_time(
    client, background_alive, settings
):
    settings.METRICS_QUEUE_DEPTH_CACHE_SECONDS = 0
    assert health_series(scraped(client))["health_component_up"]["beat"] == 1
    settings.METRICS_QUEUE_DEPTH_CACHE_SECONDS = 3600
    heartbeats.beat_tick(now=time.time() - 61)

    cached = health_series(scraped(client))["health_component_up"]["beat"]
    settings.METRICS_QUEUE_DEPTH_CACHE_SECONDS = 0
    read_again = health_series(scraped(client))["health_component_up"]["beat"]

    assert (cached, read_again) == (1, 0)


def test_a_scrape_answers_with_the_broker_down_and_says_so(
    client, background_alive, read_at_each_scrape, monkeypatch
):
    def unreachable():
        return Connection("redis://127.0.0.1:1/0")

    monkeypatch.setattr(monitoring.celery_app, "connection_for_read", unreachable)
    monkeypatch.setattr(monitoring.celery_app, "connection_for_write", unreachable)

    series = health_series(scraped(client))

    assert series["health_component_up"]["broker"] == 0
    assert series["health_component_up"]["database"] == 1


def test_a_scrape_answers_with_the_database_down_and_says_so(
    client, background_alive, read_at_each_scrape
):
    def refuse(execute, sql, params, many, context):
        raise OperationalError("could not connect to server")

    with connection.execute_wrapper(refuse):
        metrics = scraped(client)

    assert metrics[("queue_depth", (("queue", "outbox:pending"),))] == -1
    series = health_series(metrics)
    assert series["health_component_up"]["database"] == 0
    assert series["health_component_up"]["outbox"] == 0  # unknown: its query failed
    assert "outbox_oldest_due_event_age_seconds" not in series
    assert series["queue_consumers"]["critical"] == 1

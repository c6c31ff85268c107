"""``/metrics`` for Prometheus: the counts of ``tradeengage.metrics`` (every process's, in
multiprocess mode), django-prometheus's request and database series, and, read at scrape time,
``queue_depth`` from the broker and the outbox and ``/api/v1/health/detailed``'s facts
(``health_component_up``, ``queue_consumers``, ``beat_last_tick_age_seconds``,
``outbox_oldest_due_event_age_seconds``).

Who may scrape is a setting: a request with ``Authorization: Bearer <METRICS_TOKEN>`` (when one
is set) or from an address in ``METRICS_ALLOWED_NETWORKS`` (loopback by default; anywhere with
``DEBUG`` on); anyone else gets 404, as if there were nothing here.
"""

import hmac
import ipaddress
import math
import os
import time

from django.conf import settings
from django.http import Http404, HttpResponse
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector

from routing.models import OutboxEvent, OutboxStatus
from tradeengage import health
from tradeengage.celery import app as celery_app

# The outbox's states that are work not done yet, as queue_depth's "outbox:<status>" queues.
OUTBOX_QUEUES = {
    OutboxStatus.PENDING: "outbox:pending",
    OutboxStatus.PROCESSING: "outbox:in_flight",
    OutboxStatus.DEAD: "outbox:dead",
}


class QueueDepthCollector:
    """``queue_depth{queue}``: messages waiting in each Celery queue of the broker, and outbox
    events pending, in flight and dead; read at most once per ``METRICS_QUEUE_DEPTH_CACHE_SECONDS``
    per process, so frequent scrapes stay cheap."""

    def __init__(self):
        self._depths: dict[str, int] = {}
        self._read_at = float("-inf")

    def describe(self):
        """What ``collect`` yields, without reading anything (registering the collector)."""
        yield self._gauge()

    def collect(self):
        if time.monotonic() - self._read_at > settings.METRICS_QUEUE_DEPTH_CACHE_SECONDS:
            self._depths = {**broker_queue_depths(), **outbox_depths()}
            self._read_at = time.monotonic()
        gauge = self._gauge()
        for queue, depth in sorted(self._depths.items()):
            gauge.add_metric([queue], depth)
        yield gauge

    @staticmethod
    def _gauge() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "queue_depth",
            "Messages waiting in each Celery queue, and outbox events pending, in flight and dead.",
            labels=["queue"],
        )


def broker_queue_depths() -> dict[str, int]:
    """Each Celery queue's waiting messages, from the broker (-1 when it cannot be read)."""
    names = [queue.name for queue in celery_app.conf.task_queues]
    try:
        with celery_app.connection_for_read() as connection:
            channel = connection.default_channel
            return {name: _message_count(channel, name) for name in names}
    except Exception:  # the broker is down: the health probe says so; the scrape goes on
        return dict.fromkeys(names, -1)


def _message_count(channel, name: str) -> int:
    try:
        return channel.queue_declare(queue=name, passive=True).message_count
    except Exception:  # never declared yet: nothing waits in it
        return 0


def outbox_depths() -> dict[str, int]:
    """One count per status (-1 when the database cannot be read): each is answered from that
    status's partial index, where one query over the three statuses reads the whole outbox
    (280 ms at 1,000,000 events)."""
    events = OutboxEvent.objects.order_by()
    try:
        return {
            name: events.filter(status=status).count() for status, name in OUTBOX_QUEUES.items()
        }
    except Exception:  # the database is down: the health series say so; the scrape goes on
        return dict.fromkeys(OUTBOX_QUEUES.values(), -1)


class HealthCollector:
    """What ``/api/v1/health/detailed`` reports, from the same checks: each component up or not,
    the live workers by queue, beat's last tick and the outbox's oldest due event. The checks
    open connections (each bounded by its timeout), so like ``queue_depth`` they run at most once
    per ``METRICS_QUEUE_DEPTH_CACHE_SECONDS`` per process; they never raise."""

    def __init__(self):
        self._components: dict = {}
        self._read_at = float("-inf")

    def describe(self):
        yield from health_families({})

    def collect(self):
        if time.monotonic() - self._read_at > settings.METRICS_QUEUE_DEPTH_CACHE_SECONDS:
            self._components = health.detailed_components()
            self._read_at = time.monotonic()
        yield from health_families(self._components)


def health_families(components: dict) -> list[GaugeMetricFamily]:
    """``/api/v1/health/detailed``'s components as series. A fact its check could not read (the
    cache or the database is down) has no sample; its component is down."""
    up = GaugeMetricFamily(
        "health_component_up",
        "1 when /api/v1/health/detailed reports the component healthy, 0 when unhealthy or "
        "unknown: database, redis, broker, workers, beat, outbox, external_apis.",
        labels=["component"],
    )
    consumers = GaugeMetricFamily(
        "queue_consumers",
        "Live workers consuming each Celery queue, from their heartbeats; no sample when the "
        "cache cannot be read.",
        labels=["queue"],
    )
    beat_age = GaugeMetricFamily(
        "beat_last_tick_age_seconds",
        "Seconds since beat last ticked, from its heartbeat; +Inf when it never has (so an alert "
        "on age > limit fires), no sample when the cache cannot be read.",
    )
    outbox_age = GaugeMetricFamily(
        "outbox_oldest_due_event_age_seconds",
        "Seconds the oldest outbox event due for relaying has waited; 0 when none is due, no "
        "sample when the database cannot be read.",
    )
    for name, component in components.items():
        up.add_metric([name], 1 if component["status"] == health.HEALTHY else 0)
    for queue, count in components.get("workers", {}).get("consumers", {}).items():
        consumers.add_metric([queue], count)
    beat = components.get("beat", {})
    if "last_tick_age_seconds" in beat:
        age = beat["last_tick_age_seconds"]
        beat_age.add_metric([], math.inf if age is None else age)
    outbox = components.get("outbox", {})
    if "oldest_due_age_seconds" in outbox:
        outbox_age.add_metric([], outbox["oldest_due_age_seconds"] or 0)
    return [up, consumers, beat_age, outbox_age]


# Series read at scrape time, added to the counts' registry at each scrape.
_read_at_scrape = CollectorRegistry()
_read_at_scrape.register(QueueDepthCollector())
_read_at_scrape.register(HealthCollector())


def may_scrape(request) -> bool:
    token = settings.METRICS_TOKEN
    if token:
        presented = request.headers.get("Authorization", "")
        if hmac.compare_digest(presented.encode(), f"Bearer {token}".encode()):
            return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in network for network in settings.METRICS_ALLOWED_NETWORKS)


def metrics_view(request):
    if not may_scrape(request):
        raise Http404
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=folder)
    else:
        registry = REGISTRY
    body = generate_latest(registry) + generate_latest(_read_at_scrape)
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)

"""Heartbeats of the background processes, kept in the cache for ``/api/v1/health/detailed``:
each worker says every ``WORKER_INTERVAL_SECONDS`` which queues it consumes, beat says when it
last ticked. A worker or beat that has not said anything for ``STALE_AFTER_SECONDS`` is gone."""

import logging
import threading
import time

from django.core.cache import cache

from tradeengage.logging import Throttled

WORKERS_KEY = "heartbeat:workers"
BEAT_KEY = "heartbeat:beat"
WORKER_INTERVAL_SECONDS = 15
BEAT_INTERVAL_SECONDS = 10
STALE_AFTER_SECONDS = 60

logger = logging.getLogger("tradeengage.heartbeats")
_failure_log = Throttled(logger, seconds=60)


def worker_heartbeat(hostname: str, queues: list[str], *, now: float | None = None) -> None:
    """Record that the worker ``hostname`` is alive and consumes ``queues``. Workers share one
    cache entry; a write lost to a concurrent one is made good by the next beat of its worker."""
    now = time.time() if now is None else now
    workers = _alive(cache.get(WORKERS_KEY) or {}, now)
    workers[hostname] = {"queues": sorted(queues), "at": now}
    cache.set(WORKERS_KEY, workers, timeout=None)


def worker_gone(hostname: str) -> None:
    workers = cache.get(WORKERS_KEY) or {}
    workers.pop(hostname, None)
    cache.set(WORKERS_KEY, workers, timeout=None)


def queue_consumers(*, now: float | None = None) -> dict[str, int]:
    """How many live workers consume each queue."""
    now = time.time() if now is None else now
    consumers: dict[str, int] = {}
    for worker in _alive(cache.get(WORKERS_KEY) or {}, now).values():
        for queue in worker["queues"]:
            consumers[queue] = consumers.get(queue, 0) + 1
    return consumers


def worker_queues(hostname: str, *, now: float | None = None) -> list[str] | None:
    """The queues a live worker consumes; None when ``hostname`` has not beaten lately."""
    now = time.time() if now is None else now
    worker = _alive(cache.get(WORKERS_KEY) or {}, now).get(hostname)
    return None if worker is None else worker["queues"]


def beat_tick(*, now: float | None = None) -> None:
    cache.set(BEAT_KEY, time.time() if now is None else now, timeout=None)


def beat_last_tick_age(*, now: float | None = None) -> float | None:
    """Seconds since beat last ticked; None if it never did."""
    last = cache.get(BEAT_KEY)
    return None if last is None else (time.time() if now is None else now) - last


def _alive(workers: dict, now: float) -> dict:
    return {
        name: worker for name, worker in workers.items() if worker["at"] > now - STALE_AFTER_SECONDS
    }


class WorkerHeartbeat:
    """A daemon thread in a worker process that beats every ``WORKER_INTERVAL_SECONDS`` until
    stopped; a beat that fails (the cache is down) is logged once a minute and tried again."""

    def __init__(self, hostname: str, queues: list[str]):
        self.hostname, self.queues = hostname, queues
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        try:
            worker_gone(self.hostname)
        except Exception as exc:
            _failure_log.warning("Worker heartbeat could not be withdrawn: %s", exc)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                worker_heartbeat(self.hostname, self.queues)
            except Exception as exc:
                _failure_log.warning("Worker heartbeat failed: %s", exc)
            self._stop.wait(WORKER_INTERVAL_SECONDS)

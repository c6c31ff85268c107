"""Calling the providers for claimed routings (issue 20): many calls in flight at once in a
worker process, each company bounded, and each outcome handed back as soon as it is known.

Provider calls wait on the network, from a few milliseconds to the provider timeout, so a
process keeps up to ``SYNC_CALL_CONCURRENCY`` of them in flight on a pool of threads. Threads,
not gevent or asyncio: the vendor clients are synchronous (``requests``), a thread waiting on a
socket or a sleep releases the GIL, and no thread of the pool holds a database connection while
it waits (the mock provider records its calls through a writer of its own), so the pool's size
is not bounded by PostgreSQL's connections: the sync task's thread claims and records, the pool
only calls.

Each company has at most ``SYNC_COMPANY_MAX_IN_FLIGHT`` calls in flight in a process. A sync
reserves a slot per routing before calling (``CallPool.reserve``); the routings of a company
without a free slot are handed back by the sync, due again a little later, rather than queued
behind the others, so one slow or hanging company can neither take every thread nor hold claims
that the rest of the network waits behind.
"""

import contextlib
import logging
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from integrations.providers import (
    Address,
    Customer,
    ProviderError,
    ProviderNotConfigured,
    Work,
)
from integrations.registry import provider_for
from jobs.models import JobSkill
from routing.leases import Lease, keeper
from routing.models import JobRouting, SyncAttempt
from tradeengage import metrics
from tradeengage.logging import Throttled, correlation_id_as, get_correlation_id

logger = logging.getLogger("routing")
_finish_failed_log = Throttled(logger, seconds=60)


@dataclass
class Attempt:
    """What one provider call for a claimed routing came to."""

    routing: JobRouting
    provider: str
    outcome: str
    started_at: datetime
    duration_ms: int
    external_id: str | None = None
    error: str = ""
    retry_after: float | None = None


def works_for(routings: list[JobRouting]) -> dict:
    """The provider-neutral work of each routing (its job loaded), by routing id: the job's
    trades read for all of them in one query."""
    trades: dict = {}
    for job_id, trade in (
        JobSkill.objects.filter(job_id__in={routing.job_id for routing in routings})
        .order_by("id")
        .values_list("job_id", "skill__category__slug")
    ):
        if trade:
            trades.setdefault(job_id, []).append(trade)
    return {
        routing.id: work_for(routing, trades=tuple(trades.get(routing.job_id, ())))
        for routing in routings
    }


def work_for(routing: JobRouting, *, trades: tuple[str, ...] = ()) -> Work:
    job = routing.job
    return Work(
        idempotency_key=str(routing.id),
        summary=job.summary,
        customer=Customer(
            name=job.homeowner_name, phone=job.homeowner_phone, email=job.homeowner_email
        ),
        address=Address(street=job.street, city=job.city, state=job.state, zip_code=job.zip_code),
        category=job.category.slug if job.category_id else None,
        trades=trades,
    )


class CallPool:
    """A process's provider calls in flight: the threads, and each company's slots."""

    def __init__(self):
        self._lock = threading.Lock()
        self._in_flight: Counter = Counter()
        self._executor: ThreadPoolExecutor | None = None
        self._pid: int | None = None

    def reserve(self, routings: list[JobRouting]) -> tuple[list[JobRouting], list[JobRouting]]:
        """The routings that got a slot of their company's (held until their call ends), and
        those whose company had none free."""
        bound = settings.SYNC_COMPANY_MAX_IN_FLIGHT
        taken, refused = [], []
        with self._lock:
            self._forget_another_process()
            for routing in routings:
                if self._in_flight[routing.company_id] < bound:
                    self._in_flight[routing.company_id] += 1
                    taken.append(routing)
                else:
                    refused.append(routing)
        return taken, refused

    def in_flight(self, company_id) -> int:
        with self._lock:
            return self._in_flight[company_id]

    def start(self, routings: list[JobRouting], works: dict, *, timeout: float) -> "Calls":
        """Call the provider of each routing (slots reserved) side by side; their attempts are
        taken from the ``Calls`` in groups as they end. With ``SYNC_CALL_CONCURRENCY`` 1 the
        calls run one after another in this thread (the tests: their database transaction is
        this thread's)."""
        ended: queue.SimpleQueue = queue.SimpleQueue()
        if settings.SYNC_CALL_CONCURRENCY <= 1:
            for routing in routings:
                ended.put(self._call(routing, works[routing.id], timeout))
        else:
            executor = self._executor_now()
            for routing in routings:
                executor.submit(self._pooled_call, routing, works[routing.id], timeout, ended.put)
        return Calls(ended, left=len(routings), timeout=timeout)

    def finish_later(self, calls: "Calls", *, record: Callable, lease: Lease) -> None:
        """Hand the calls still running to a thread of their own, which records their outcomes
        as they end (``record(attempts)``) and keeps ``lease`` renewed until then, so the sync
        task that started them is free for other work. If recording fails, what is still held
        is given back, due again (the provider sees the same idempotency keys)."""

        def finish():
            try:
                for attempts in calls.groups():
                    record(attempts)
                    # Closed between groups: a thread waiting out a hanging call holds no
                    # database connection, however many of them a hanging provider leaves.
                    connection.close()
            except Exception as exc:
                _finish_failed_log.warning(
                    "Recording handed-off provider calls failed (%s: %s); their routings are "
                    "given back",
                    type(exc).__name__,
                    exc,
                )
                with contextlib.suppress(Exception):  # else the lease runs out instead
                    lease.release(now=timezone.now())
            finally:
                keeper.drop(lease)
                connection.close()

        keeper.hold(lease)
        threading.Thread(target=finish, name="sync-finish", daemon=True).start()

    def _pooled_call(self, routing: JobRouting, work: Work, timeout: float, done: Callable):
        """A call on one of the pool's threads, which live as long as the process: a database
        connection one of them opened anyway (a token cache's) is recycled as a task's is, so
        one the server dropped is not kept failing every call after it."""
        close_old_connections()
        try:
            attempt = self._call(routing, work, timeout)
        except BaseException as exc:  # the sync waiting for it must hear of it whatever happens
            attempt = Attempt(
                routing=routing,
                provider="",
                outcome=SyncAttempt.Outcome.RETRY,
                started_at=timezone.now(),
                duration_ms=0,
                error=f"{exc.__class__.__name__}: {exc}",
            )
        done(attempt)

    def _call(self, routing: JobRouting, work: Work, timeout: float) -> Attempt:
        try:
            return provider_call(routing, work, timeout=timeout)
        finally:
            with self._lock:
                self._in_flight[routing.company_id] -= 1
                if self._in_flight[routing.company_id] <= 0:
                    del self._in_flight[routing.company_id]

    def _executor_now(self) -> ThreadPoolExecutor:
        size = settings.SYNC_CALL_CONCURRENCY
        with self._lock:
            self._forget_another_process()
            if self._executor is None or self._executor._max_workers != size:
                self._executor = ThreadPoolExecutor(
                    max_workers=size, thread_name_prefix="sync-call"
                )
            return self._executor

    def _forget_another_process(self) -> None:
        """A forked child inherits the parent's counts and pool, but none of its threads."""
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._in_flight.clear()
            self._executor = None


class Calls:
    """Provider calls handed to the pool: their attempts, taken in groups as they end."""

    def __init__(self, ended: queue.SimpleQueue, *, left: int, timeout: float):
        self._ended = ended
        self.left = left
        self._timeout = timeout

    def groups(self, *, until: float | None = None) -> Iterator[list[Attempt]]:
        """The attempts in groups as they end: a group holds what ended within
        ``SYNC_RECORD_GROUP_SECONDS`` of its first, at most ``OUTBOX_RELAY_BATCH_SIZE``, so a
        slow call holds back only itself. With ``until`` (a ``time.monotonic()`` instant) it
        stops then, leaving the calls still running in ``left``."""
        while self.left:
            # A call ends by its timeout; the margin covers a queue for the pool's threads.
            wait = self._timeout + CALL_END_MARGIN_SECONDS
            if until is not None:
                wait = min(wait, until - time.monotonic())
                if wait <= 0:
                    return
            try:
                group = [self._ended.get(timeout=wait)]
            except queue.Empty:
                if until is not None and time.monotonic() >= until:
                    return
                raise CallsLost(f"{self.left} provider calls did not end in time") from None
            grouped_until = time.monotonic() + settings.SYNC_RECORD_GROUP_SECONDS
            largest = min(self.left, settings.OUTBOX_RELAY_BATCH_SIZE)
            while len(group) < largest:
                wait = grouped_until - time.monotonic()
                try:
                    group.append(
                        self._ended.get(timeout=wait) if wait > 0 else self._ended.get_nowait()
                    )
                except queue.Empty:
                    break
            self.left -= len(group)
            yield group


class CallsLost(Exception):
    """Calls handed to the pool never ended (its threads are stuck): the sync gives its
    routings back, to be tried again with the same idempotency keys."""


CALL_END_MARGIN_SECONDS = 120.0

call_pool = CallPool()


def provider_call(routing: JobRouting, work: Work, *, timeout: float) -> Attempt:
    """The call under the correlation id of the request that created the job, so its log
    lines and outbound requests carry it. Never raises: a provider's unexpected exception is an
    attempt to retry, logged with its traceback."""
    with correlation_id_as(routing.job.correlation_id or get_correlation_id()):
        return _provider_call_now(routing, work, timeout=timeout)


def _provider_call_now(routing: JobRouting, work: Work, *, timeout: float) -> Attempt:
    started_at = timezone.now()
    clock = time.monotonic()
    account = routing.company.provider_account()
    error_class = None
    try:
        external_id = provider_for(account).create_job(work=work, timeout=timeout)
        outcome = dict(outcome=SyncAttempt.Outcome.SYNCED, external_id=external_id)
    except ProviderNotConfigured as exc:
        outcome = dict(outcome=SyncAttempt.Outcome.WAITING, error=str(exc))
    except ProviderError as exc:
        outcome = dict(
            outcome=SyncAttempt.Outcome.RETRY if exc.retryable else SyncAttempt.Outcome.FAILED,
            error=str(exc) or exc.__class__.__name__,
            retry_after=exc.retry_after,
        )
        error_class = metrics.error_class(exc.code or exc.__class__.__name__)
    except Exception as exc:
        # A bug or an unexpected answer in a provider: retried like a transient failure, and
        # logged with its traceback.
        logger.exception("Provider call raised", extra={"routing_id": str(routing.id)})
        outcome = dict(outcome=SyncAttempt.Outcome.RETRY, error=f"{exc.__class__.__name__}: {exc}")
        error_class = "unexpected"
    elapsed = time.monotonic() - clock
    provider = account.resolved_provider_type
    if error_class:
        metrics.provider_errors.labels(provider, error_class).inc()
    metrics.provider_call_duration.labels(provider, outcome["outcome"]).observe(elapsed)
    return Attempt(
        routing=routing,
        provider=provider,
        started_at=started_at,
        duration_ms=round(elapsed * 1000),
        **outcome,
    )

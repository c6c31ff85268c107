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

Create calls are counted in the database (``MockJob.create_calls``) so every process sees one
remote system. A call sleeps its latency holding no database connection and hands its record to
the process's call recorder, one thread with one connection writing whatever calls have queued in
one transaction: hundreds of calls in flight in a worker cost it one connection, not one each.
A call it cannot record in time fails as a refused connection would (retryable).
"""

import contextlib
import hashlib
import logging
import os
import queue
import random
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import DatabaseError, connection, transaction
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

logger = logging.getLogger(__name__)

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
        call = _CreateCall(
            idempotency_key=work.idempotency_key,
            company_id=self.company_id,
            summary=work.summary,
            external_id=None if unlucky or fail_first > 0 else _new_id(),
            fail_first=fail_first,
            unlucky=unlucky,
            created_at=timezone.now(),
        )
        # Inside a transaction of the calling thread (a test's own, or a caller's), the call is
        # recorded in it, as the one connection there: the recorder's would not see the
        # transaction's rows, could wait on its locks, and would outlive its rollback.
        if connection.in_atomic_block:
            [(calls, external_id)] = _record_calls([call])
        else:
            try:
                calls, external_id = call_recorder.record(call, timeout=timeout)
            except (TimeoutError, DatabaseError):
                self._fail("connection", timeout)
        if call.is_refused(calls):
            self._fail(options.get("failure") or "server_error", timeout)
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

    def _fail(self, failure: str, timeout: float):
        error_class, message, code = FAILURES.get(failure, FAILURES["server_error"])
        retry_after = (
            float(self.options.get("retry_after", 30)) if failure == "rate_limited" else None
        )
        raise error_class(message.format(timeout=timeout), retry_after=retry_after, code=code)


@dataclass(eq=False)
class _CreateCall:
    """A create call on its way to the mock's table. ``external_id`` is the id it offers, none
    while calls to the key may still be refused; ``result`` gets (calls so far, external id)."""

    idempotency_key: str
    company_id: uuid.UUID
    summary: str
    external_id: str | None
    fail_first: int
    unlucky: bool
    created_at: datetime
    result: Future = field(default_factory=Future)

    def is_refused(self, calls: int) -> bool:
        return self.unlucky or calls <= self.fail_first


def _record_calls(calls: list[_CreateCall]) -> list[tuple[int, str | None]]:
    """Count create calls on this thread's connection, one statement for each call to a key
    not yet in it: insert the job, or bump the existing one's call count keeping the first
    external id. A call taking a job that only refused calls reached before gives it its id.
    Returns (calls so far, external id) for each call, in order."""
    table = MockJob._meta.db_table
    company_id = MockJob._meta.get_field("company_id")
    created_at = MockJob._meta.get_field("created_at")
    answers: dict[_CreateCall, tuple[int, str | None]] = {}
    waiting = calls
    with connection.cursor() as cursor:
        while waiting:
            # PostgreSQL refuses a statement that upserts one row twice; sorted, two groups
            # lock their rows in one order.
            statement: dict[str, _CreateCall] = {}
            later = []
            for call in waiting:
                if call.idempotency_key in statement:
                    later.append(call)
                else:
                    statement[call.idempotency_key] = call
            waiting = later
            rows = [statement[key] for key in sorted(statement)]
            cursor.execute(
                f"""INSERT INTO {table} (idempotency_key, external_id, company_id, summary,
                        create_calls, status, cancel_reason, created_at)
                    VALUES {", ".join(["(%s, %s, %s, %s, 1, %s, '', %s)"] * len(rows))}
                    ON CONFLICT (idempotency_key) DO UPDATE
                    SET create_calls = {table}.create_calls + 1,
                        external_id = COALESCE({table}.external_id, EXCLUDED.external_id)
                    RETURNING idempotency_key, create_calls, external_id""",
                [
                    value
                    for call in rows
                    for value in (
                        call.idempotency_key,
                        call.external_id,
                        company_id.get_db_prep_value(call.company_id, connection),
                        call.summary,
                        MockJob.Status.OPEN,
                        created_at.get_db_prep_value(call.created_at, connection),
                    )
                ],
            )
            for key, count, external_id in cursor.fetchall():
                answers[statement[key]] = (count, external_id)
        for call, (count, external_id) in answers.items():
            if external_id is None and not call.is_refused(count):
                cursor.execute(
                    f"""UPDATE {table} SET external_id = COALESCE(external_id, %s)
                        WHERE idempotency_key = %s RETURNING external_id""",
                    [_new_id(), call.idempotency_key],
                )
                answers[call] = (count, cursor.fetchone()[0])
    return [answers[call] for call in calls]


class CallRecorder:
    """The process's writer of create calls: a daemon thread, started by the first call and
    gone after ``IDLE_SECONDS`` without one (closing its connection), that writes whatever calls
    have queued, up to ``GROUP_SIZE``, in one transaction, so a lone call waits for no group to
    fill. A group it fails to write fails each of its calls, and a connection the failure left
    broken is replaced for the next group."""

    GROUP_SIZE = 100
    IDLE_SECONDS = 2.0
    WARN_EVERY_SECONDS = 60.0

    def __init__(self):
        self._quiet_until = 0.0
        self._start_afresh()
        # A forked child (Celery's prefork pool, gunicorn) inherits a copy of the lock, perhaps
        # held, and of calls queued by threads that live only in the parent, but no writer.
        os.register_at_fork(after_in_child=self._start_afresh)

    def _start_afresh(self):
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[_CreateCall | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def record(self, call: _CreateCall, *, timeout: float) -> tuple[int, str | None]:
        """(calls so far, external id) once the call is committed. Raises TimeoutError after
        ``timeout`` seconds, or the error that failed its group."""
        if self._pid != os.getpid():  # forked without the at-fork hook (a C-level fork())
            self._start_afresh()
        with self._lock:
            self._queue.put(call)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="mock-provider-call-recorder", daemon=True
                )
                self._thread.start()
        return call.result.result(timeout)

    def stop(self):
        """Wait until the writer has written what has queued and closed its connection."""
        with self._lock:
            thread = self._thread
            if thread is None:
                return
            self._queue.put(None)
        thread.join()

    def _run(self):
        try:
            while True:
                try:
                    group = [self._queue.get(timeout=self.IDLE_SECONDS)]
                except queue.Empty:
                    group = [None]
                while len(group) < self.GROUP_SIZE:
                    try:
                        group.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                calls = [call for call in group if call is not None]
                if calls:
                    self._write(calls)
                if len(calls) < len(group) and self._leave_if_idle():
                    return
        finally:
            connection.close()

    def _leave_if_idle(self) -> bool:
        """Under the lock a caller queues with, so no call is queued for a writer that left."""
        with self._lock:
            if not self._queue.empty() or self._thread is not threading.current_thread():
                return False
            self._thread = None
            return True

    def _write(self, calls: list[_CreateCall]):
        try:
            with transaction.atomic():
                answers = _record_calls(calls)
        except Exception as error:
            now = time.monotonic()
            if now >= self._quiet_until:
                self._quiet_until = now + self.WARN_EVERY_SECONDS
                logger.warning(
                    "Mock provider: %d create calls not recorded, failed as retryable",
                    len(calls),
                    exc_info=True,
                )
            for call in calls:
                call.result.set_exception(error)
            with contextlib.suppress(DatabaseError):
                connection.close_if_unusable_or_obsolete()
            return
        for call, answer in zip(calls, answers, strict=True):
            call.result.set_result(answer)


call_recorder = CallRecorder()


def _new_id() -> str:
    return f"MOCK-{uuid.uuid4().hex[:12].upper()}"


def _revenue_for(external_id: str) -> Decimal:
    """A stable, plausible invoice total for a completed mock job: $150 to $2,500."""
    digest = int(hashlib.sha256(external_id.encode()).hexdigest()[:8], 16)
    return Decimal(150 + digest % 2351)

"""The mock provider's call recorder: create calls from many threads are recorded by one writer
thread per process, on its one connection, exactly as one call at a time would be."""

import logging
import os
import statistics
import threading
import time
import uuid
from collections.abc import Callable

import pytest
from django.db import connection

from integrations.mock import MockProvider, call_recorder
from integrations.models import MockJob
from integrations.providers import (
    Address,
    Customer,
    ProviderAccount,
    RetryableProviderError,
    Work,
)

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture(autouse=True)
def _no_writer_before_or_after():
    """Each test starts with no writer and leaves none, nor its connection, behind."""
    call_recorder.stop()
    yield
    call_recorder.stop()


def mock(**options) -> MockProvider:
    return MockProvider(
        ProviderAccount(
            company_id=uuid.uuid4(), company_name="Acme", provider_type="mock", settings=options
        )
    )


def work(key: str) -> Work:
    return Work(
        idempotency_key=key,
        summary="Fix leaky kitchen faucet",
        customer=Customer(name="Jane Smith", phone="(555) 987-6543"),
        address=Address(street="456 Oak Avenue", city="Springfield", state="IL", zip_code="62701"),
    )


def database_connections() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        return cursor.fetchone()[0]


class Concurrently:
    """Runs each function on its own thread, all released at once; ``outcomes`` holds each
    one's result or exception and whether its thread had a database connection afterwards."""

    def __init__(self, functions: list[Callable]):
        self.outcomes: list[tuple[object, bool]] = [(None, False)] * len(functions)
        start = threading.Barrier(len(functions))

        def run(index: int, function: Callable):
            start.wait()
            try:
                outcome = function()
            except Exception as error:
                outcome = error
            self.outcomes[index] = (outcome, connection.connection is not None)

        self.threads = [
            threading.Thread(target=run, args=(index, function))
            for index, function in enumerate(functions)
        ]
        for thread in self.threads:
            thread.start()

    def running(self) -> bool:
        return any(thread.is_alive() for thread in self.threads)

    def join(self) -> list[tuple[object, bool]]:
        for thread in self.threads:
            thread.join()
        return self.outcomes


def test_concurrent_calls_are_counted_per_key_through_one_connection():
    provider = mock()
    keys = [f"routing-{number}" for number in range(100)]

    def calls_of_thread(number: int) -> list[str]:
        return [
            provider.create_job(work=work(keys[number]), timeout=10),
            provider.create_job(work=work(keys[(number + 1) % 100]), timeout=10),
        ]

    before = database_connections()
    threads = Concurrently([lambda number=number: calls_of_thread(number) for number in range(100)])
    most = before
    while threads.running():
        most = max(most, database_connections())
    outcomes = threads.join()

    assert [opened for _, opened in outcomes] == [False] * 100
    assert most <= before + 1  # the writer's
    ids: dict[int, list[str]] = {number: [] for number in range(100)}
    for number, (external_ids, _) in enumerate(outcomes):
        assert isinstance(external_ids, list), external_ids
        ids[number].append(external_ids[0])
        ids[(number + 1) % 100].append(external_ids[1])
    jobs = {job.idempotency_key: job for job in MockJob.objects.all()}
    assert len(jobs) == 100
    for number, key in enumerate(keys):
        assert jobs[key].create_calls == 2
        assert ids[number] == [jobs[key].external_id] * 2


def test_a_refused_first_call_then_a_successful_one_keep_one_id():
    provider = mock(fail_first=1)

    with pytest.raises(RetryableProviderError):
        provider.create_job(work=work("routing-1"), timeout=5)
    external_id = provider.create_job(work=work("routing-1"), timeout=5)
    again = provider.create_job(work=work("routing-1"), timeout=5)

    assert external_id.startswith("MOCK-") and again == external_id
    job = MockJob.objects.get()
    assert (job.external_id, job.create_calls) == (external_id, 3)


def test_concurrent_first_calls_of_a_key_are_refused_once_and_taken_once():
    provider = mock(fail_first=1)
    keys = [f"routing-{number}" for number in range(20)]

    outcomes = Concurrently(
        [lambda key=key: provider.create_job(work=work(key), timeout=5) for key in keys * 2]
    ).join()

    jobs = {job.idempotency_key: job for job in MockJob.objects.all()}
    for index, key in enumerate(keys):
        pair = [outcomes[index][0], outcomes[index + len(keys)][0]]
        refused = [outcome for outcome in pair if isinstance(outcome, RetryableProviderError)]
        taken = [outcome for outcome in pair if isinstance(outcome, str)]
        assert (len(refused), taken) == (1, [jobs[key].external_id])
        assert jobs[key].create_calls == 2


def test_a_database_error_fails_its_callers_as_retryable_and_the_next_call_succeeds(caplog):
    provider = mock()
    provider.create_job(work=work("routing-before"), timeout=5)  # the writer is connected
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    deadline = time.monotonic() + 5
    while database_connections() > 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    keys = [f"routing-{number}" for number in range(20)]

    with caplog.at_level(logging.WARNING, logger="integrations.mock"):
        outcomes = Concurrently(
            [lambda key=key: provider.create_job(work=work(key), timeout=5) for key in keys]
        ).join()

    failed = [
        key
        for key, (outcome, _) in zip(keys, outcomes, strict=True)
        if not isinstance(outcome, str)
    ]
    assert failed, "the writer's first group after the server dropped it fails"
    for key, (outcome, opened) in zip(keys, outcomes, strict=True):
        assert not opened
        if key in failed:
            assert isinstance(outcome, RetryableProviderError), outcome
            assert str(outcome) == "Mock provider: connection refused"
    assert [record.levelname for record in caplog.records] == ["WARNING"]
    # A failed group left nothing behind: its calls are recorded when they are tried again.
    assert not MockJob.objects.filter(idempotency_key__in=failed).exists()
    for key in failed:
        provider.create_job(work=work(key), timeout=5)
    calls = dict(MockJob.objects.values_list("idempotency_key", "create_calls"))
    assert {key: calls[key] for key in keys} == dict.fromkeys(keys, 1)


def test_slow_calls_overlap_holding_no_connection_while_they_wait():
    provider = mock(latency_ms=200)
    before = database_connections()

    started = time.monotonic()
    threads = Concurrently(
        [
            lambda number=number: provider.create_job(work=work(f"routing-{number}"), timeout=5)
            for number in range(50)
        ]
    )
    time.sleep(0.1)
    while_waiting = database_connections()
    outcomes = threads.join()
    elapsed = time.monotonic() - started

    assert elapsed < 2  # one after another: 10 s
    assert while_waiting == before
    assert all(isinstance(outcome, str) and not opened for outcome, opened in outcomes)
    assert MockJob.objects.count() == 50


def test_a_lone_call_waits_for_no_group_to_fill():
    provider = mock()
    provider.create_job(work=work("routing-warm"), timeout=5)

    durations = []
    for number in range(20):
        started = time.perf_counter()
        provider.create_job(work=work(f"routing-{number}"), timeout=5)
        durations.append(time.perf_counter() - started)

    assert statistics.median(durations) < 0.02


def test_a_forked_child_records_through_its_own_writer():
    provider = mock()
    provider.create_job(work=work("routing-parent"), timeout=5)  # the parent's writer runs

    child = os.fork()
    if child == 0:
        # Nothing but the call in the child: it shares the parent's connections' sockets.
        try:
            provider.create_job(work=work("routing-child"), timeout=5)
        except BaseException:
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(child, 0)
    provider.create_job(work=work("routing-parent"), timeout=5)

    assert os.waitstatus_to_exitcode(status) == 0
    calls = dict(MockJob.objects.values_list("idempotency_key", "create_calls"))
    assert calls == {"routing-parent": 2, "routing-child": 1}

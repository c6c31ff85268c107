"""Provider calls in a worker process (``routing.services.calls``): each company's slots, calls
side by side on the pool's threads with their outcomes handed back as they end, and the sync
storing each group as it comes and handing back what a busy company has no slot for."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from routing import leases
from routing.models import JobRouting, OutboxStatus, SyncAttempt, SyncStatus
from routing.outbox import outbox_claim_batch
from routing.services import calls
from routing.services.calls import Attempt, CallPool
from routing.services.sync import outbox_events_sync
from routing.tests.factories import routing_with_event
from routing.tests.in_process import fresh

pytestmark = pytest.mark.django_db


def loaded(routing) -> JobRouting:
    return JobRouting.objects.select_related("company", "job__category").get(id=routing.id)


@pytest.fixture
def fake_provider(monkeypatch):
    """Provider calls that touch no database: each routing's call lasts ``delays[routing id]``
    seconds (0 when unnamed) and syncs it; ``ended[routing id]`` is when it ended."""

    class Fake:
        delays: dict = {}
        ended: dict = {}
        running = 0
        most_running = 0
        lock = threading.Lock()

        def __call__(self, routing, work, *, timeout):
            with self.lock:
                self.running += 1
                self.most_running = max(self.most_running, self.running)
            time.sleep(self.delays.get(routing.id, 0.0))
            with self.lock:
                self.running -= 1
                self.ended[routing.id] = timezone.now()
            return Attempt(
                routing=routing,
                provider="mock",
                outcome=SyncAttempt.Outcome.SYNCED,
                started_at=timezone.now(),
                duration_ms=1,
                external_id=f"FAKE-{routing.id.hex[:8]}",
            )

    fake = Fake()
    monkeypatch.setattr(calls, "provider_call", fake)
    return fake


def test_a_company_gets_at_most_its_slots_and_they_free_when_its_calls_end(settings):
    settings.SYNC_COMPANY_MAX_IN_FLIGHT = 2
    routing, _ = routing_with_event()
    same_company = [routing_with_event(company=routing.company)[0] for _ in range(3)]
    other, _ = routing_with_event()
    pool = CallPool()

    taken, refused = pool.reserve([loaded(r) for r in [routing, *same_company, other]])

    assert [r.id for r in taken] == [routing.id, same_company[0].id, other.id]
    assert [r.id for r in refused] == [same_company[1].id, same_company[2].id]
    assert pool.in_flight(routing.company_id) == 2


def test_outcomes_come_back_as_they_end_not_when_the_slowest_does(fake_provider, settings):
    settings.SYNC_CALL_CONCURRENCY = 4
    fast, slow = (loaded(routing_with_event()[0]) for _ in range(2))
    fake_provider.delays = {slow.id: 0.6}
    pool = CallPool()
    taken, _ = pool.reserve([fast, slow])
    started = time.monotonic()
    seen = []

    for group in pool.start(taken, {fast.id: None, slow.id: None}, timeout=5).groups():
        seen.append(([a.routing.id for a in group], time.monotonic() - started))

    assert [ids for ids, _ in seen] == [[fast.id], [slow.id]]
    assert seen[0][1] < 0.3 and seen[1][1] >= 0.6
    assert pool.in_flight(fast.company_id) == pool.in_flight(slow.company_id) == 0


def test_calls_of_a_batch_run_side_by_side(fake_provider, settings):
    settings.SYNC_CALL_CONCURRENCY = 8
    routings = [loaded(routing_with_event()[0]) for _ in range(8)]
    fake_provider.delays = {r.id: 0.3 for r in routings}
    pool = CallPool()
    started = time.monotonic()

    groups = list(
        pool.start(
            pool.reserve(routings)[0], dict.fromkeys(fake_provider.delays), timeout=5
        ).groups()
    )

    assert time.monotonic() - started < 1.2  # not 8 x 0.3 s
    assert fake_provider.most_running == 8
    assert sum(len(group) for group in groups) == 8


def test_a_call_that_blows_up_comes_back_as_an_attempt_to_retry(monkeypatch, settings):
    settings.SYNC_CALL_CONCURRENCY = 2
    routing = loaded(routing_with_event()[0])

    def explode(routing, work, *, timeout):
        raise KeyboardInterrupt

    monkeypatch.setattr(calls, "provider_call", explode)
    pool = CallPool()

    [[attempt]] = list(
        pool.start(pool.reserve([routing])[0], {routing.id: None}, timeout=5).groups()
    )

    assert attempt.outcome == SyncAttempt.Outcome.RETRY
    assert "KeyboardInterrupt" in attempt.error
    assert pool.in_flight(routing.company_id) == 0


def test_a_sync_stores_a_fast_outcome_before_its_slow_sibling_ends(fake_provider, settings):
    settings.SYNC_CALL_CONCURRENCY = 4
    (fast, _), (slow, _) = routing_with_event(), routing_with_event()
    fake_provider.delays = {slow.id: 0.6}
    claimed_at = timezone.now()
    event_ids = outbox_claim_batch(now=claimed_at, batch_size=10)

    counts = outbox_events_sync(event_ids=event_ids, claimed_at=claimed_at)

    assert counts == {"skipped": 0, "synced": 2}
    fast, slow = fresh(fast), fresh(slow)
    assert fast.sync_status == slow.sync_status == SyncStatus.SYNCED
    assert fast.last_synced_at < fake_provider.ended[slow.id]


def test_a_busy_companys_routings_are_handed_back_untried(fake_provider, settings, clock):
    settings.SYNC_COMPANY_MAX_IN_FLIGHT = 1
    settings.SYNC_COMPANY_BUSY_DEFER_SECONDS = 5
    first, first_event = routing_with_event()
    pairs = [(first, first_event), routing_with_event(company=first.company)]
    event_ids = outbox_claim_batch(now=clock.now, batch_size=10)

    counts = outbox_events_sync(event_ids=event_ids, claimed_at=clock.now)

    assert counts == {"skipped": 0, "deferred": 1, "synced": 1}
    by_status = {fresh(r).sync_status: (fresh(r), fresh(e)) for r, e in pairs}
    assert set(by_status) == {SyncStatus.SYNCED, SyncStatus.PENDING}  # one slot: one call
    deferred, deferred_event = by_status[SyncStatus.PENDING]
    assert (deferred.retry_count, deferred.error_message, deferred.claimed_at) == (0, None, None)
    assert deferred.next_retry_at == clock.now + timedelta(seconds=5)
    assert not deferred.attempts.exists()
    assert (deferred_event.status, deferred_event.available_at) == (
        OutboxStatus.PENDING,
        deferred.next_retry_at,
    )
    assert by_status[SyncStatus.SYNCED][1].status == OutboxStatus.DONE


@pytest.mark.postgres  # the finishing thread records on a connection of its own
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_calls_still_running_finish_on_their_own_thread_and_free_the_task(fake_provider, settings):
    settings.SYNC_CALL_CONCURRENCY = 4
    settings.SYNC_TASK_WAIT_SECONDS = 0.2
    (fast, _), (slow, slow_event) = routing_with_event(), routing_with_event()
    fake_provider.delays = {slow.id: 1.0}
    claimed_at = timezone.now()
    event_ids = outbox_claim_batch(now=claimed_at, batch_size=10)
    started = time.monotonic()

    counts = outbox_events_sync(event_ids=event_ids, claimed_at=claimed_at)

    assert time.monotonic() - started < 0.8  # the task did not wait for the slow call
    assert counts == {"skipped": 0, "synced": 1, "handed_off": 1}
    assert fresh(fast).sync_status == SyncStatus.SYNCED
    assert fresh(slow).sync_status == SyncStatus.PROCESSING  # its lease still held
    deadline = time.monotonic() + 5
    while fresh(slow).sync_status != SyncStatus.SYNCED and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fresh(slow).sync_status == SyncStatus.SYNCED
    assert fresh(slow_event).status == OutboxStatus.DONE
    assert leases.keeper.held() == []


@pytest.mark.postgres  # the finishing thread records on a connection of its own
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_thread_finishing_handed_off_calls_holds_no_connection_while_it_waits(
    fake_provider, settings
):
    settings.SYNC_CALL_CONCURRENCY = 4
    first, second = loaded(routing_with_event()[0]), loaded(routing_with_event()[0])
    fake_provider.delays = {first.id: 0.1, second.id: 0.6}
    pool = CallPool()
    pool.reserve([first, second])
    running = pool.start([first, second], {first.id: None, second.id: None}, timeout=5)
    connected_on_entry, recorded = [], threading.Event()

    def record(attempts):
        connected_on_entry.append(connection.connection is not None)
        JobRouting.objects.count()  # a record writes on this thread's connection
        if len(connected_on_entry) == 2:
            recorded.set()

    pool.finish_later(running, record=record, lease=leases.Lease(event_token=timezone.now()))

    assert recorded.wait(5)
    assert connected_on_entry == [False, False]

"""The sync engine in-process (``routing.services.sync``): the sync of a claimed batch, retries
with backoff, the dead-letter queue, leases, companies without a provider, crashes and a lost
database, and the manual sync. Time is a controllable clock (``django.utils.timezone.now``
patched), never a sleep."""

from datetime import timedelta

import pytest
from django.db import OperationalError, connection
from prometheus_client import REGISTRY

from integrations.models import MockJob
from jobs.models import Company
from routing import leases
from routing.leases import Lease
from routing.models import JobRouting, OutboxEvent, OutboxStatus, SyncAttempt, SyncStatus
from routing.outbox import outbox_claim_batch
from routing.services import calls, sync
from routing.services.sync import outbox_events_sync, routing_sync_now
from routing.tests.factories import JobRoutingFactory, OutboxEventFactory, routing_with_event
from routing.tests.in_process import fresh, relay

pytestmark = pytest.mark.django_db


# Sync


def test_sync_pushes_the_routing_to_its_provider_and_closes_the_event(clock):
    routing, event = routing_with_event()

    assert relay() == [{"skipped": 0, "synced": 1}]

    routing, event = fresh(routing), fresh(event)
    assert routing.sync_status == SyncStatus.SYNCED
    assert routing.external_id.startswith("MOCK-")
    assert routing.last_synced_at == clock.now
    assert routing.last_sync_attempt == clock.now
    assert (routing.error_message, routing.claimed_at, routing.retry_count) == (None, None, 0)
    assert (event.status, event.processed_at) == (OutboxStatus.DONE, clock.now)
    remote = MockJob.objects.get(idempotency_key=str(routing.id))
    assert (remote.external_id, remote.create_calls) == (routing.external_id, 1)
    assert remote.summary == routing.job.summary
    attempt = routing.attempts.get()
    assert (attempt.number, attempt.outcome, attempt.provider) == (1, "synced", "mock")


def test_a_batch_syncs_in_a_bounded_number_of_queries(
    clock, settings, django_assert_max_num_queries
):
    settings.OUTBOX_RELAY_BATCH_SIZE = 50
    for _ in range(50):
        routing_with_event()

    # 50 provider calls, about 25 for the batch itself, one for the webhook endpoints that hear
    # of the routings synced (outbound webhooks), and on PostgreSQL one for the lease's renewal
    # to take only the rows nobody else holds (routing.leases).
    with django_assert_max_num_queries(78 if connection.vendor == "postgresql" else 77):
        assert relay() == [{"skipped": 0, "synced": 50}]


def test_sync_logs_one_structured_line_per_attempt(clock, caplog):
    routing, _ = routing_with_event(company__provider_settings={"fail_first": 1})

    relay()

    [line] = [r for r in caplog.records if r.getMessage() == "Sync attempt"]
    assert line.routing_id == str(routing.id)
    assert line.job_id == str(routing.job_id)
    assert line.company_id == str(routing.company_id)
    assert (line.provider, line.attempt, line.outcome) == ("mock", 1, "retry")
    assert line.error == "Mock provider: HTTP 503 Service Unavailable"
    assert isinstance(line.duration_ms, int)


def test_an_already_synced_routing_is_not_pushed_again(clock):
    routing, event = routing_with_event(sync_status=SyncStatus.SYNCED, external_id="MOCK-FIRST")

    assert relay() == [{"skipped": 1}]

    assert fresh(routing).external_id == "MOCK-FIRST"
    assert fresh(event).status == OutboxStatus.DONE
    assert not MockJob.objects.exists()


def test_a_routing_another_sync_holds_is_left_to_it(clock, settings):
    routing, event = routing_with_event()
    JobRouting.objects.filter(id=routing.id).update(
        sync_status=SyncStatus.PROCESSING,
        claimed_at=clock.now,
        lease_expires_at=clock.now + timedelta(seconds=settings.OUTBOX_LEASE_SECONDS),
    )

    assert relay() == [{"skipped": 1}]

    event = fresh(event)
    assert event.status == OutboxStatus.PENDING
    assert event.available_at == clock.now + timedelta(seconds=settings.OUTBOX_LEASE_SECONDS)
    assert not MockJob.objects.exists()


def test_a_stale_batch_does_nothing(clock):
    """A redelivered task message whose events were claimed again under a new lease."""
    routing, event = routing_with_event()
    [event_id] = outbox_claim_batch(now=clock.now, batch_size=10)
    stale = clock.now - timedelta(seconds=1)

    assert outbox_events_sync(event_ids=[event_id], claimed_at=stale) == {"skipped": 0}

    assert fresh(routing).sync_status == SyncStatus.PENDING
    assert fresh(event).status == OutboxStatus.PROCESSING
    assert not MockJob.objects.exists()


def test_an_event_of_an_unknown_type_goes_to_the_dead_letters(clock):
    event = OutboxEventFactory(event_type="job_teleport")

    relay()

    event = fresh(event)
    assert event.status == OutboxStatus.DEAD
    assert event.last_error == "No handler for this event type."


# Retries, backoff and the dead-letter queue


def test_a_provider_failing_twice_is_retried_on_the_backoff_schedule_then_synced(clock):
    routing, event = routing_with_event(company__provider_settings={"fail_first": 2})
    started = clock.now

    relay()
    routing, event = fresh(routing), fresh(event)
    assert (routing.sync_status, routing.retry_count) == (SyncStatus.PENDING, 1)
    assert routing.next_retry_at == started + timedelta(seconds=5)
    assert routing.error_message == "Mock provider: HTTP 503 Service Unavailable"
    assert (event.status, event.available_at) == (OutboxStatus.PENDING, routing.next_retry_at)
    assert event.last_error == routing.error_message

    clock.advance(4.9)
    assert relay() == []  # not due yet
    clock.advance(0.1)
    relay()
    routing = fresh(routing)
    assert routing.retry_count == 2
    assert routing.next_retry_at == started + timedelta(seconds=15)

    clock.advance(10)
    relay()
    routing, event = fresh(routing), fresh(event)
    assert (routing.sync_status, routing.retry_count) == (SyncStatus.SYNCED, 2)
    assert (routing.next_retry_at, routing.error_message) == (None, None)
    assert event.status == OutboxStatus.DONE
    assert [a.outcome for a in routing.attempts.all()] == ["retry", "retry", "synced"]
    assert MockJob.objects.get().create_calls == 3


def test_a_provider_that_always_times_out_ends_in_the_dead_letter_queue(clock):
    routing, event = routing_with_event(
        company__provider_settings={"failure_rate": 1.0, "failure": "timeout"}
    )
    open_before = routing.company.open_routing_count = 1
    Company.objects.filter(id=routing.company_id).update(open_routing_count=open_before)

    for delay in [0, 5, 10, 20]:
        clock.advance(delay)
        assert len(relay()) == 1
    assert relay() == []

    routing, event = fresh(routing), fresh(event)
    assert routing.sync_status == SyncStatus.FAILED
    assert routing.retry_count == 3
    assert routing.error_message.startswith("Mock provider: no answer within")
    assert routing.next_retry_at is None
    assert (event.status, event.processed_at) == (OutboxStatus.DEAD, clock.now)
    assert event.last_error == routing.error_message
    assert event.attempts == 4
    assert [a.outcome for a in routing.attempts.all()] == ["retry", "retry", "retry", "failed"]
    assert fresh(routing.company).open_routing_count == 0


@pytest.mark.parametrize("failure", ["validation", "auth", "conflict", "service_area"])
def test_a_permanent_error_goes_to_the_dead_letter_queue_at_once(clock, failure):
    routing, event = routing_with_event(
        company__provider_settings={"failure_rate": 1.0, "failure": failure}
    )

    relay()

    routing, event = fresh(routing), fresh(event)
    assert (routing.sync_status, routing.retry_count) == (SyncStatus.FAILED, 0)
    assert event.status == OutboxStatus.DEAD
    assert routing.error_message.startswith("Mock provider:")


def test_a_429_waits_for_its_retry_after(clock):
    routing, _ = routing_with_event(
        company__provider_settings={"fail_first": 1, "failure": "rate_limited", "retry_after": 42}
    )

    relay()

    routing = fresh(routing)
    assert routing.next_retry_at == clock.now + timedelta(seconds=42)
    clock.advance(41)
    assert relay() == []
    clock.advance(1)
    relay()
    assert fresh(routing).sync_status == SyncStatus.SYNCED


def test_a_provider_timeout_is_the_call_timeout(clock, settings):
    settings.SYNC_PROVIDER_TIMEOUT_SECONDS = 0.01
    routing, _ = routing_with_event(company__provider_settings={"latency_ms": 500})

    relay()

    routing = fresh(routing)
    assert routing.sync_status == SyncStatus.PENDING
    assert routing.error_message == "Mock provider: no answer within 0.01 s"


def test_a_provider_bug_is_retried_and_logged(clock, monkeypatch, caplog):
    routing, _ = routing_with_event()

    def broken(self, **kwargs):
        raise KeyError("jobId")

    monkeypatch.setattr("integrations.mock.MockProvider.create_job", broken)
    relay()

    routing = fresh(routing)
    assert (routing.sync_status, routing.retry_count) == (SyncStatus.PENDING, 1)
    assert routing.error_message == "KeyError: 'jobId'"
    assert "Provider call raised" in caplog.text


# Companies without a provider


def test_a_company_without_a_provider_waits_visibly(clock, settings):
    routing, event = routing_with_event(company__provider_type="")

    relay()

    routing, event = fresh(routing), fresh(event)
    assert routing.sync_status == SyncStatus.PENDING
    assert "has no field-service provider configured" in routing.error_message
    recheck = clock.now + timedelta(seconds=settings.SYNC_UNCONFIGURED_RECHECK_SECONDS)
    assert routing.next_retry_at == recheck
    assert (event.status, event.available_at) == (OutboxStatus.PENDING, recheck)
    assert routing.retry_count == 0
    assert routing.attempts.get().outcome == SyncAttempt.Outcome.WAITING


def test_a_provider_not_built_yet_waits_visibly(clock):
    # A provider type this version does not know (a value left by another version).
    routing, _ = routing_with_event(company__provider_type="fieldpulse")

    relay()

    routing = fresh(routing)
    assert routing.sync_status == SyncStatus.PENDING
    assert "is not available in this version" in routing.error_message


def test_a_crm_company_without_its_account_waits_visibly(clock):
    routing, _ = routing_with_event(company__provider_type="crm")

    relay()

    routing = fresh(routing)
    assert routing.sync_status == SyncStatus.PENDING
    assert "The CRM account is not configured" in routing.error_message
    assert routing.retry_count == 0


def test_a_company_without_a_provider_syncs_through_the_mock_when_settings_say_so(clock, settings):
    settings.SYNC_UNCONFIGURED_WITH_MOCK = True
    routing, _ = routing_with_event(company__provider_type="")

    relay()

    assert fresh(routing).sync_status == SyncStatus.SYNCED


# Crashes and a lost database


@pytest.mark.parametrize(
    ("target", "write"),
    [
        (JobRouting.objects, "bulk_update"),
        (sync, "_events_store"),
        (SyncAttempt.objects, "bulk_create"),
    ],
    ids=["routings", "events", "attempts"],
)
def test_the_database_lost_while_recording_gives_the_claim_back_and_nothing_twice(
    clock, monkeypatch, target, write
):
    """The outcome is recorded in one transaction: losing the database at any of its writes
    leaves none of them, and the task gives its routing and event back at once."""
    routing, event = routing_with_event()
    original = getattr(target, write)

    def database_gone(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(target, write, database_gone)
    [event_id] = outbox_claim_batch(now=clock.now, batch_size=10)
    with pytest.raises(OperationalError):
        outbox_events_sync(event_ids=[event_id], claimed_at=clock.now)

    routing, event = fresh(routing), fresh(event)
    assert (routing.sync_status, routing.external_id) == (SyncStatus.PENDING, None)
    assert (routing.claimed_at, routing.lease_expires_at) == (None, None)
    assert (event.status, event.available_at, event.processed_at) == (
        OutboxStatus.PENDING,
        clock.now,
        None,
    )
    assert not SyncAttempt.objects.exists()
    assert MockJob.objects.get().create_calls == 1

    monkeypatch.setattr(target, write, original)
    relay()  # at once: no lease to wait for

    routing, remote = fresh(routing), MockJob.objects.get()
    assert routing.sync_status == SyncStatus.SYNCED
    assert routing.external_id == remote.external_id
    assert remote.create_calls == 2  # the same key twice: one job at the provider
    assert fresh(event).status == OutboxStatus.DONE
    assert routing.attempts.count() == 1


def test_the_database_lost_while_claiming_gives_the_event_back(clock, monkeypatch):
    routing, event = routing_with_event()
    [event_id] = outbox_claim_batch(now=clock.now, batch_size=10)

    def database_gone(**kwargs):
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(sync, "routings_claim", database_gone)
    with pytest.raises(OperationalError):
        outbox_events_sync(event_ids=[event_id], claimed_at=clock.now)

    assert fresh(routing).sync_status == SyncStatus.PENDING
    event = fresh(event)
    assert (event.status, event.claimed_at, event.available_at) == (
        OutboxStatus.PENDING,
        None,
        clock.now,
    )
    assert not MockJob.objects.exists()


def test_work_that_cannot_be_given_back_is_taken_again_when_its_lease_runs_out(
    clock, settings, monkeypatch
):
    """The database is still down when the task gives its claim back: the claim stays, its
    lease is no longer renewed, and a relay takes it once it has run out."""
    routing, event = routing_with_event()
    [event_id] = outbox_claim_batch(now=clock.now, batch_size=10)

    def database_gone(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    with monkeypatch.context() as outage, pytest.raises(OperationalError):
        outage.setattr(SyncAttempt.objects, "bulk_create", database_gone)
        outage.setattr(Lease, "release", database_gone)
        outbox_events_sync(event_ids=[event_id], claimed_at=clock.now)

    assert fresh(routing).sync_status == SyncStatus.PROCESSING
    assert fresh(event).status == OutboxStatus.PROCESSING
    assert leases.keeper.held() == []
    assert relay() == []  # its lease still runs

    clock.advance(settings.OUTBOX_LEASE_SECONDS + 1)
    assert relay() == [{"skipped": 0, "synced": 1}]
    assert MockJob.objects.get().create_calls == 2  # the same key twice: one job


@pytest.mark.postgres  # SQLite's in-memory test database is never closed
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_call_thread_replaces_a_connection_the_server_dropped():
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    routing, _ = routing_with_event()
    routing = JobRouting.objects.select_related("company", "job").get(id=routing.id)

    def drop_the_connection():
        connection.ensure_connection()
        connection.connection.close()  # as a server restart would
        connection.errors_occurred = True
        return connection.connection

    with ThreadPoolExecutor(max_workers=1) as call_thread:  # one long-lived thread, as in a worker
        dropped = call_thread.submit(drop_the_connection).result()
        ended = []
        call_thread.submit(
            calls.call_pool._pooled_call, routing, calls.work_for(routing), 5.0, ended.append
        ).result()
        [attempt] = ended
        after = call_thread.submit(lambda: connection.connection).result()
        call_thread.submit(lambda: connection.close()).result()

    assert attempt.outcome == SyncAttempt.Outcome.SYNCED
    assert after is not dropped
    assert MockJob.objects.filter(idempotency_key=str(routing.id)).exists()


# Manual sync


def test_sync_now_syncs_a_pending_routing_and_closes_its_event(clock):
    routing, event = routing_with_event()

    routing = routing_sync_now(routing=routing)

    assert routing.sync_status == SyncStatus.SYNCED
    assert fresh(event).status == OutboxStatus.DONE


def test_sync_now_tries_a_dead_letter_again(clock):
    routing, event = routing_with_event(
        company__provider_settings={"fail_first": 1, "failure": "validation"}
    )
    relay()
    assert fresh(routing).sync_status == SyncStatus.FAILED

    routing = routing_sync_now(routing=fresh(routing))

    assert routing.sync_status == SyncStatus.SYNCED
    assert (routing.retry_count, routing.error_message) == (0, None)
    assert fresh(event).status == OutboxStatus.DONE  # out of the dead letters
    assert OutboxEvent.objects.filter(aggregate_id=routing.id).count() == 1


def test_sync_now_leaves_a_synced_routing_unchanged(clock):
    routing, _ = routing_with_event(sync_status=SyncStatus.SYNCED, external_id="MOCK-1")
    updated_at = routing.updated_at

    routing = routing_sync_now(routing=routing)

    assert (routing.external_id, routing.updated_at) == ("MOCK-1", updated_at)
    assert not MockJob.objects.exists()


def test_sync_now_failing_schedules_a_retry_with_an_event(clock):
    routing = JobRoutingFactory(
        company__provider_type="mock", company__provider_settings={"fail_first": 1}
    )

    routing = routing_sync_now(routing=routing)

    assert (routing.sync_status, routing.retry_count) == (SyncStatus.PENDING, 1)
    event = OutboxEvent.objects.get(aggregate_id=routing.id)
    assert (event.status, event.available_at) == (OutboxStatus.PENDING, routing.next_retry_at)
    clock.advance(5)
    relay()
    assert fresh(routing).sync_status == SyncStatus.SYNCED


# Metrics


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_syncs_count_successes_failures_latency_and_provider_calls(
    clock, django_capture_on_commit_callbacks
):
    synced = sample("sync_success_total", provider="mock")
    latency = sample("sync_latency_seconds_count", provider="mock")
    retried = sample("sync_failure_total", provider="mock", reason="retry")
    calls = sample("provider_call_duration_seconds_count", provider="mock", outcome="synced")
    refused = sample("provider_errors_total", provider="mock", error="rate_limited")
    routing_with_event()
    routing_with_event(company__provider_settings={"fail_first": 1, "failure": "rate_limited"})

    with django_capture_on_commit_callbacks(execute=True):
        relay()

    assert sample("sync_success_total", provider="mock") == synced + 1
    assert sample("sync_latency_seconds_count", provider="mock") == latency + 1
    assert sample("sync_failure_total", provider="mock", reason="retry") == retried + 1
    assert (
        sample("provider_call_duration_seconds_count", provider="mock", outcome="synced")
        == calls + 1
    )
    assert sample("provider_errors_total", provider="mock", error="rate_limited") == refused + 1


def test_a_sync_logs_under_the_correlation_id_of_the_request_that_created_the_job(clock, caplog):
    routing_with_event(job__correlation_id="req-created-it")

    relay()

    [line] = [r for r in caplog.records if r.getMessage() == "Sync attempt"]
    assert line.correlation_id == "req-created-it"

"""The routing commands: resync_routing, resync_failed and relay_outbox, run through
``call_command`` against the real sync engine and the in-process mock provider."""

import time
import uuid
from datetime import datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from integrations.models import MockJob
from jobs.models import Company
from jobs.tests.factories import CompanyFactory
from routing import tasks
from routing.management.commands import relay_outbox, resync_failed
from routing.models import JobRouting, OutboxEvent, OutboxStatus, SyncAttempt, SyncStatus
from routing.tests.factories import JobRoutingFactory, routing_with_event
from tradeengage import heartbeats

pytestmark = pytest.mark.django_db


def run(*args) -> tuple[str, str]:
    """Run a command; returns (stdout, stderr)."""
    stdout, stderr = StringIO(), StringIO()
    call_command(*args, stdout=stdout, stderr=stderr)
    return stdout.getvalue(), stderr.getvalue()


def failed_routing(**kwargs) -> JobRouting:
    """A routing in the dead-letter queue, as the sync leaves it: failed, with its dead event.
    Its company is on the mock provider unless ``company`` or ``company__...`` says otherwise."""
    if "company" not in kwargs:
        kwargs.setdefault("company__provider_type", "mock")
    kwargs.setdefault("last_sync_attempt", timezone.now())
    routing = JobRoutingFactory(
        sync_status=SyncStatus.FAILED,
        retry_count=3,
        error_message="Mock provider: HTTP 401 invalid credentials",
        **kwargs,
    )
    OutboxEvent.for_routing(routing, status=OutboxStatus.DEAD).save()
    return routing


def fresh(instance):
    instance.refresh_from_db()
    return instance


def database_state() -> tuple:
    """Everything a resync could change."""
    return (
        sorted(JobRouting.objects.values_list("id", "sync_status", "retry_count", "updated_at")),
        sorted(OutboxEvent.objects.values_list("id", "status", "available_at")),
        sorted(Company.objects.values_list("id", "open_routing_count")),
        SyncAttempt.objects.count(),
        MockJob.objects.count(),
    )


# resync_routing


def test_resync_routing_syncs_a_failed_routing_to_its_provider():
    routing = failed_routing()

    stdout, _ = run("resync_routing", str(routing.id))

    routing = fresh(routing)
    assert routing.sync_status == SyncStatus.SYNCED
    assert routing.external_id == MockJob.objects.get(idempotency_key=str(routing.id)).external_id
    assert stdout.splitlines() == [f"{routing.id}  synced  external id {routing.external_id}"]


def test_resync_routing_prints_one_line_per_routing_with_its_outcome():
    synced = failed_routing()
    failing = failed_routing(company__provider_settings={"fail_first": 9, "failure": "validation"})

    stdout, _ = run("resync_routing", str(synced.id), str(failing.id))

    assert fresh(failing).sync_status == SyncStatus.FAILED
    assert stdout.splitlines() == [
        f"{synced.id}  synced  external id {fresh(synced).external_id}",
        f"{failing.id}  failed  Mock provider: HTTP 400 invalid customer phone",
    ]


def test_resync_routing_reports_a_retry_it_scheduled():
    routing = failed_routing(company__provider_settings={"fail_first": 1})

    stdout, _ = run("resync_routing", str(routing.id))

    routing = fresh(routing)
    assert routing.sync_status == SyncStatus.PENDING
    retry_at = f"{timezone.localtime(routing.next_retry_at):%H:%M:%S}"
    assert stdout.splitlines() == [
        f"{routing.id}  pending  retry at {retry_at}: Mock provider: HTTP 503 Service Unavailable"
    ]


def test_resync_routing_leaves_a_synced_routing_as_it_is():
    routing = JobRoutingFactory(sync_status=SyncStatus.SYNCED, external_id="MOCK-1")

    stdout, _ = run("resync_routing", str(routing.id))

    assert stdout.splitlines() == [f"{routing.id}  synced  external id MOCK-1"]
    assert not MockJob.objects.exists()


def test_resync_routing_leaves_a_routing_another_worker_is_syncing_to_it():
    routing = JobRoutingFactory(
        sync_status=SyncStatus.PROCESSING,
        claimed_at=timezone.now(),
        lease_expires_at=timezone.now() + timedelta(seconds=30),
    )

    stdout, _ = run("resync_routing", str(routing.id))

    assert stdout.splitlines() == [f"{routing.id}  processing  another worker is syncing it"]
    assert not MockJob.objects.exists()


def test_resync_routing_rejects_malformed_ids_before_syncing_anything():
    routing = failed_routing()
    before = database_state()

    with pytest.raises(CommandError) as error:
        run("resync_routing", str(routing.id), "not-an-id", "12345")

    assert str(error.value) == "Not routing ids (UUIDs expected): not-an-id, 12345"
    assert error.value.returncode == 1  # manage.py's exit status
    assert database_state() == before


def test_resync_routing_skips_unknown_ids_and_fails_at_the_end():
    routing = failed_routing()
    unknown = uuid.uuid4()

    stdout = StringIO()
    with pytest.raises(CommandError) as error:
        call_command("resync_routing", str(unknown), str(routing.id), stdout=stdout)

    assert str(error.value) == f"No routing with id {unknown}"
    assert error.value.returncode == 1
    assert fresh(routing).sync_status == SyncStatus.SYNCED
    assert stdout.getvalue().splitlines() == [
        f"{unknown}  not found",
        f"{routing.id}  synced  external id {routing.external_id}",
    ]


def test_resync_routing_queue_requeues_through_the_outbox(django_capture_on_commit_callbacks):
    failed = failed_routing()
    synced = JobRoutingFactory(sync_status=SyncStatus.SYNCED, external_id="MOCK-1")

    with django_capture_on_commit_callbacks() as kicks:
        stdout, _ = run("resync_routing", "--queue", str(failed.id), str(synced.id))

    failed = fresh(failed)
    assert (failed.sync_status, failed.retry_count) == (SyncStatus.PENDING, 0)
    event = OutboxEvent.objects.get(aggregate_id=failed.id)
    assert event.status == OutboxStatus.PENDING
    assert event.available_at <= timezone.now()
    assert fresh(synced).sync_status == SyncStatus.SYNCED
    assert len(kicks) == 1  # the relay is kicked once the requeue commits
    assert not MockJob.objects.exists()  # nothing synced in this process
    assert stdout.splitlines() == [
        f"{failed.id}  requeued  due now",
        f"{synced.id}  left alone  it is synced; only failed or waiting routings are requeued",
        "Requeued 1 of 2 routings.",
    ]


# resync_failed


def test_resync_failed_requeues_every_failed_routing_in_chunks():
    failed = [failed_routing() for _ in range(5)]
    synced = JobRoutingFactory(sync_status=SyncStatus.SYNCED, external_id="MOCK-1")
    waiting = JobRoutingFactory(sync_status=SyncStatus.PENDING, retry_count=1)

    stdout, stderr = run("resync_failed", "--chunk-size", "2")

    for routing in failed:
        assert fresh(routing).sync_status == SyncStatus.PENDING
        assert OutboxEvent.objects.get(aggregate_id=routing.id).status == OutboxStatus.PENDING
    assert fresh(synced).sync_status == SyncStatus.SYNCED
    assert fresh(waiting).retry_count == 1
    assert not MockJob.objects.exists()
    assert stdout == "Selected 5 failed routings: requeued 5, skipped 0.\n"
    assert stderr == ""  # no progress bar when stderr is not a terminal


def test_resync_failed_reads_the_routings_a_chunk_at_a_time(django_assert_num_queries):
    routings = [failed_routing() for _ in range(5)]
    selection = JobRouting.objects.filter(sync_status=SyncStatus.FAILED)

    with django_assert_num_queries(4):
        chunks = list(resync_failed.id_chunks(selection, 2))

    assert [len(chunk) for chunk in chunks] == [2, 2, 1]
    read = [routing_id for chunk in chunks for routing_id in chunk]
    assert sorted(read) == sorted(routing.id for routing in routings)


def test_resync_failed_inline_syncs_each_routing_here():
    synced = failed_routing()
    failing = failed_routing(company__provider_settings={"fail_first": 9, "failure": "auth"})
    retrying = failed_routing(company__provider_settings={"fail_first": 1})
    other = JobRoutingFactory(sync_status=SyncStatus.PENDING)

    stdout, _ = run("resync_failed", "--inline")

    assert fresh(synced).sync_status == SyncStatus.SYNCED
    assert fresh(synced).external_id
    assert fresh(failing).sync_status == SyncStatus.FAILED
    assert fresh(retrying).sync_status == SyncStatus.PENDING
    assert fresh(other).last_sync_attempt is None
    assert stdout == (
        "Selected 3 failed routings: synced 1, failed again 1, retry scheduled 1, skipped 0.\n"
    )


def test_resync_failed_shows_progress_on_a_terminal():
    class Terminal(StringIO):
        def isatty(self):
            return True

    for _ in range(3):
        failed_routing()
    stderr = Terminal()

    call_command("resync_failed", stdout=StringIO(), stderr=stderr)

    assert "Requeueing" in stderr.getvalue()
    assert "3/3" in stderr.getvalue()


def test_resync_failed_dry_run_changes_nothing(django_capture_on_commit_callbacks):
    routings = [failed_routing(), failed_routing()]
    before = database_state()

    with django_capture_on_commit_callbacks() as kicks:
        stdout, _ = run("resync_failed", "--dry-run")

    assert database_state() == before
    assert not kicks
    lines = stdout.splitlines()
    assert lines[0] == "Would resync 2 failed routings."
    assert lines[1].split() == ["routing", "company", "provider", "last", "attempt", "error"]
    for line, routing in zip(lines[2:], sorted(routings, key=lambda r: r.id), strict=True):
        attempted = f"{timezone.localtime(routing.last_sync_attempt):%Y-%m-%d %H:%M}"
        assert " ".join(line.split()) == (
            f"{routing.id} {routing.company.name} mock {attempted} "
            "Mock provider: HTTP 401 invalid credentials"
        )


def test_resync_failed_dry_run_lists_only_the_first_few(monkeypatch):
    monkeypatch.setattr(resync_failed, "DRY_RUN_SHOWN", 2)
    for _ in range(3):
        failed_routing()

    stdout, _ = run("resync_failed", "--dry-run")

    lines = stdout.splitlines()
    assert len(lines) == 1 + 1 + 2 + 1
    assert lines[-1] == "... and 1 more."


def test_resync_failed_dry_run_with_nothing_failed():
    JobRoutingFactory(sync_status=SyncStatus.SYNCED)

    stdout, _ = run("resync_failed", "--dry-run")

    assert stdout == "Would resync 0 failed routings.\n"


def at(text: str) -> datetime:
    return timezone.make_aware(datetime.fromisoformat(text))


@pytest.mark.parametrize(
    ("since", "expected"),
    [
        ("2024-03-10", {"attempted_recently", "attempted_on_the_day", "updated_recently"}),
        ("2024-03-10T12:00", {"attempted_recently", "updated_recently"}),
        ("2024-03-10T12:00:00+00:00", {"attempted_recently", "updated_recently"}),
        (
            "2024-03-10T12:00:00+05:00",
            {"attempted_recently", "attempted_on_the_day", "updated_recently"},
        ),
    ],
)
def test_resync_failed_since_selects_routings_last_attempted_or_updated_since(
    since, expected, settings
):
    settings.TIME_ZONE = "UTC"
    routings = {
        "attempted_recently": failed_routing(last_sync_attempt=at("2024-03-11T09:00")),
        "attempted_on_the_day": failed_routing(last_sync_attempt=at("2024-03-10T08:00")),
        "attempted_before": failed_routing(last_sync_attempt=at("2024-03-09T23:59")),
        "updated_recently": failed_routing(last_sync_attempt=None),
        "updated_before": failed_routing(last_sync_attempt=None),
    }
    JobRouting.objects.filter(id=routings["updated_recently"].id).update(
        updated_at=at("2024-03-12T00:00")
    )
    JobRouting.objects.filter(id=routings["updated_before"].id).update(
        updated_at=at("2024-03-01T00:00")
    )

    stdout, _ = run("resync_failed", "--since", since)

    requeued = {
        name for name, routing in routings.items() if fresh(routing).sync_status == "pending"
    }
    assert requeued == expected
    assert stdout.startswith(f"Selected {len(expected)} failed routings:")


def test_resync_failed_company_selects_that_company_only():
    company = CompanyFactory(provider_type="mock")
    theirs = failed_routing(company=company)
    others = failed_routing()

    run("resync_failed", "--company", str(company.id))

    assert fresh(theirs).sync_status == SyncStatus.PENDING
    assert fresh(others).sync_status == SyncStatus.FAILED


def test_resync_failed_provider_selects_companies_on_that_provider():
    on_servicetitan = failed_routing(company__provider_type="servicetitan")
    on_mock = failed_routing(company__provider_type="mock")
    without_provider = failed_routing(company__provider_type="")

    run("resync_failed", "--provider", "servicetitan")

    assert fresh(on_servicetitan).sync_status == SyncStatus.PENDING
    assert fresh(on_mock).sync_status == SyncStatus.FAILED
    assert fresh(without_provider).sync_status == SyncStatus.FAILED


def test_resync_failed_filters_combine():
    company = CompanyFactory(provider_type="mock")
    selected = failed_routing(company=company)
    failed_routing(company=company, last_sync_attempt=timezone.now() - timedelta(days=3))
    failed_routing(company__provider_type="mock")

    stdout, _ = run(
        "resync_failed",
        "--company",
        str(company.id),
        "--provider",
        "mock",
        "--since",
        f"{timezone.localdate() - timedelta(days=1)}",
    )

    assert fresh(selected).sync_status == SyncStatus.PENDING
    assert stdout == "Selected 1 failed routing: requeued 1, skipped 0.\n"


@pytest.mark.parametrize("since", ["yesterday", "2024-13-01", "2024-02-30", "10/03/2024", ""])
def test_resync_failed_rejects_a_date_it_cannot_read(since):
    routing = failed_routing()

    with pytest.raises(CommandError) as error:
        run("resync_failed", "--since", since)

    assert "is not a date (YYYY-MM-DD) or an ISO datetime" in str(error.value)
    assert fresh(routing).sync_status == SyncStatus.FAILED


def test_resync_failed_rejects_a_malformed_company_id():
    with pytest.raises(CommandError) as error:
        run("resync_failed", "--company", "acme")

    assert str(error.value) == "--company: 'acme' is not a company id (a UUID)"


def test_resync_failed_rejects_an_unknown_company():
    unknown = uuid.uuid4()
    routing = failed_routing()

    with pytest.raises(CommandError) as error:
        run("resync_failed", "--company", str(unknown))

    assert str(error.value) == f"--company: no company with id {unknown}"
    assert fresh(routing).sync_status == SyncStatus.FAILED


def test_resync_failed_rejects_an_unknown_provider_listing_the_valid_ones():
    with pytest.raises(CommandError) as error:
        run("resync_failed", "--provider", "jobber")

    assert str(error.value) == "Unknown provider 'jobber'; choose one of mock, servicetitan, crm"


def test_resync_failed_rejects_a_chunk_size_below_one():
    with pytest.raises(CommandError, match="--chunk-size must be at least 1"):
        run("resync_failed", "--chunk-size", "0")


# relay_outbox


def test_relay_outbox_once_inline_syncs_the_due_events_here():
    pairs = [routing_with_event() for _ in range(3)]

    stdout, _ = run("relay_outbox", "--once", "--inline")

    for routing, event in pairs:
        assert fresh(routing).sync_status == SyncStatus.SYNCED
        assert fresh(event).status == OutboxStatus.DONE
    assert stdout.endswith(" claimed 3 events in 1 batch: synced 3.\n")


def test_relay_outbox_once_inline_reports_each_outcome():
    routing_with_event()
    routing_with_event(company__provider_settings={"fail_first": 1})
    routing_with_event(company__provider_settings={"fail_first": 1, "failure": "conflict"})

    stdout, _ = run("relay_outbox", "--once", "--inline")

    assert stdout.endswith(" claimed 3 events in 1 batch: failed 1, retry 1, synced 1.\n")


def test_relay_outbox_oncedispatch_sync_batches_to_the_workers():
    pairs = [routing_with_event() for _ in range(2)]

    stdout, _ = run("relay_outbox", "--once")

    # Tasks run eagerly in tests, so the dispatched batch is synced by the time we look.
    for routing, event in pairs:
        assert fresh(routing).sync_status == SyncStatus.SYNCED
        assert fresh(event).status == OutboxStatus.DONE
    assert stdout.endswith(" claimed 2 events in 1 batch, dispatched to the workers.\n")


def test_relay_outbox_claims_in_batches_and_says_when_more_are_due(settings):
    settings.OUTBOX_RELAY_BATCH_SIZE = 2
    settings.OUTBOX_RELAY_MAX_BATCHES = 2
    pairs = [routing_with_event() for _ in range(5)]

    stdout, _ = run("relay_outbox", "--once", "--inline")

    assert stdout.endswith(" claimed 4 events in 2 batches: synced 4; more are due.\n")
    statuses = sorted(fresh(routing).sync_status for routing, _ in pairs)
    assert statuses == ["pending"] + ["synced"] * 4


def test_relay_outbox_once_with_nothing_due():
    routing_with_event(sync_status=SyncStatus.SYNCED)
    OutboxEvent.objects.update(status=OutboxStatus.DONE)

    stdout, _ = run("relay_outbox", "--once")

    assert stdout.endswith(" claimed 0 events in 0 batches.\n")


def test_relay_outbox_leaves_events_not_yet_due():
    routing, event = routing_with_event()
    OutboxEvent.objects.update(available_at=timezone.now() + timedelta(minutes=5))

    stdout, _ = run("relay_outbox", "--once", "--inline")

    assert fresh(event).status == OutboxStatus.PENDING
    assert fresh(routing).sync_status == SyncStatus.PENDING
    assert stdout.endswith(" claimed 0 events in 0 batches.\n")


def test_relay_outbox_releases_a_batch_the_workers_could_not_be_sent(monkeypatch):
    routing, event = routing_with_event()

    def broker_down(*args, **kwargs):
        raise ConnectionRefusedError("broker unreachable")

    monkeypatch.setattr(tasks.sync_outbox_events, "apply_async", broker_down)

    with pytest.raises(CommandError) as error:
        run("relay_outbox", "--once")

    assert "A batch could not be dispatched (ConnectionRefusedError: broker unreachable)" in str(
        error.value
    )
    event = fresh(event)
    assert (event.status, event.claimed_at) == (OutboxStatus.PENDING, None)
    assert fresh(routing).sync_status == SyncStatus.PENDING


class Interrupted:
    """``time`` for the command's loop: the first sleep is the operator pressing Ctrl-C."""

    def __init__(self):
        self.sleeps = []

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        raise KeyboardInterrupt


def test_relay_outbox_loops_every_interval_until_interrupted(monkeypatch):
    sleeper = Interrupted()
    monkeypatch.setattr(relay_outbox, "time", sleeper)
    routing, _ = routing_with_event()

    stdout, _ = run("relay_outbox", "--inline", "--interval", "2.5")

    assert fresh(routing).sync_status == SyncStatus.SYNCED
    assert sleeper.sleeps == [2.5]
    lines = stdout.splitlines()
    assert lines[0] == "Relaying every 2.5 s; Ctrl-C to stop."
    assert lines[1].endswith(" claimed 1 event in 1 batch: synced 1.")
    assert lines[2] == "Stopped."


def test_relay_outbox_loop_runs_again_at_once_while_more_are_due(monkeypatch, settings):
    settings.OUTBOX_RELAY_BATCH_SIZE = 1
    settings.OUTBOX_RELAY_MAX_BATCHES = 1
    sleeper = Interrupted()
    monkeypatch.setattr(relay_outbox, "time", sleeper)
    pairs = [routing_with_event() for _ in range(2)]

    stdout, _ = run("relay_outbox", "--inline")

    assert all(fresh(routing).sync_status == SyncStatus.SYNCED for routing, _ in pairs)
    assert sleeper.sleeps == [5.0]  # the default interval, once the backlog was drained
    assert stdout.splitlines()[-1] == "Stopped."


def test_relay_outbox_loop_is_quiet_while_idle(monkeypatch):
    monkeypatch.setattr(relay_outbox, "time", Interrupted())

    stdout, _ = run("relay_outbox")

    assert stdout.splitlines() == ["Relaying every 5 s; Ctrl-C to stop.", "Stopped."]


@pytest.mark.parametrize("interval", ["0", "-1"])
def test_relay_outbox_rejects_an_interval_that_is_not_positive(interval):
    with pytest.raises(CommandError, match="--interval must be more than 0 seconds"):
        run("relay_outbox", "--interval", interval)


# background_health (docker-compose.yml's healthchecks of worker and beat)


def test_background_health_says_a_beating_worker_is_alive():
    heartbeats.worker_heartbeat("celery@w1", ["critical", "low"])
    out = StringIO()

    call_command("background_health", "--worker", "celery@w1", stdout=out)

    assert out.getvalue().strip() == "celery@w1 is alive, consuming critical, low"


def test_background_health_fails_for_a_silent_worker_or_beat():
    heartbeats.worker_heartbeat("celery@w1", ["critical"], now=time.time() - 61)

    with pytest.raises(CommandError, match="no heartbeat from celery@w1"):
        call_command("background_health", "--worker", "celery@w1")
    with pytest.raises(CommandError, match="beat has not ticked"):
        call_command("background_health", "--beat")


def test_background_health_says_when_beat_ticked():
    heartbeats.beat_tick(now=time.time() - 3)
    out = StringIO()

    call_command("background_health", "--beat", stdout=out)

    assert out.getvalue().strip() == "beat ticked 3 s ago"

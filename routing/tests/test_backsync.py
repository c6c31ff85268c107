"""The back-sync (``routing.services.backsync``): polling providers about synced routings,
completing them and rolling them up into their jobs; provider webhooks (verify, record once,
apply) and the status updates they carry."""

import base64
import threading
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from integrations.mock import MockProvider
from integrations.models import MockJob, WebhookReceipt
from integrations.providers import (
    ProviderJobStatus,
    RetryableProviderError,
    StatusUpdate,
    WebhookRejected,
)
from integrations.servicetitan.webhooks import payload_signed
from jobs.models import Company, Job, JobStatus
from jobs.tests.factories import JobFactory
from routing.models import JobRouting, SyncStatus
from routing.services.backsync import (
    DECLINED_WITHOUT_REASON,
    provider_webhook_receive,
    recheck_seconds,
    routing_complete,
    routing_decline,
    routings_backsync,
    routings_backsync_dispatch,
    routings_complete,
    routings_decline,
    routings_poll,
    routings_poll_claimed,
    status_update_apply,
)
from routing.tasks import poll_provider_statuses, poll_routing_statuses
from routing.tests.factories import JobRoutingFactory, routing_with_event
from routing.tests.in_process import fresh, relay

pytestmark = pytest.mark.django_db


# Back-sync


def test_back_sync_completes_routings_and_rolls_them_up_into_the_job(clock):
    first, _ = routing_with_event(company__provider_settings={"complete_after_seconds": 60})
    second, _ = routing_with_event(
        job=first.job, company__provider_settings={"complete_after_seconds": 600}
    )
    Company.objects.filter(id__in=[first.company_id, second.company_id]).update(
        open_routing_count=1
    )
    relay()
    assert routings_backsync() == {"checked": 2, "completed": 0, "declined": 0, "errors": 0}

    clock.advance(301)
    assert routings_backsync() == {"checked": 2, "completed": 1, "declined": 0, "errors": 0}
    first, job = fresh(first), fresh(first.job)
    assert first.sync_status == SyncStatus.COMPLETED
    assert first.revenue == MockJob.objects.get(external_id=first.external_id).revenue
    assert (job.status, job.revenue, job.completed_at) == (
        JobStatus.COMPLETED,
        first.revenue,
        first.completed_at,
    )
    assert fresh(first.company).open_routing_count == 0
    # Checked recently.
    assert routings_backsync() == {"checked": 0, "completed": 0, "declined": 0, "errors": 0}

    clock.advance(301)
    assert routings_backsync()["completed"] == 1
    second, job = fresh(second), fresh(job)
    assert job.revenue == first.revenue + second.revenue
    assert job.completed_at == second.completed_at


def synced_routings(count: int, *, clock, **kwargs) -> list[JobRouting]:
    """Routings synced now to one new mock-provider company (``company__...`` configures it),
    each with its job at the provider, as a sync leaves them."""
    routings = []
    while len(routings) < count:
        routing, _ = routing_with_event(
            sync_status=SyncStatus.SYNCED,
            external_id=f"MOCK-{uuid.uuid4().hex[:12]}",
            last_synced_at=clock.now,
            **kwargs,
        )
        MockJob.objects.create(
            idempotency_key=str(routing.id),
            external_id=routing.external_id,
            company_id=routing.company_id,
            created_at=clock.now,
        )
        kwargs = {key: value for key, value in kwargs.items() if not key.startswith("company__")}
        kwargs["company"] = routing.company
        routings.append(routing)
    return routings


def test_back_sync_asks_about_the_longest_due_first(clock):
    routings = synced_routings(3, clock=clock)
    JobRouting.objects.filter(id=routings[0].id).update(
        status_check_due_at=clock.now + timedelta(seconds=30)
    )
    JobRouting.objects.filter(id=routings[2].id).update(
        status_check_due_at=clock.now - timedelta(seconds=30)
    )
    clock.advance(60)

    assert routings_backsync(limit=2)["checked"] == 2
    assert fresh(routings[0]).status_checked_at is None
    assert fresh(routings[1]).status_checked_at == fresh(routings[2]).status_checked_at == clock.now


@pytest.mark.parametrize(
    ("age", "wait"),
    [(0, 60), (240, 60), (479, 60), (480, 120), (3600, 480), (30 * 86400, 4 * 3600)],
)
def test_a_routing_is_asked_again_after_a_wait_that_grows_with_its_age(age, wait):
    assert recheck_seconds(age) == wait


def test_a_claim_sets_each_routings_next_check_by_its_age(clock):
    young = synced_routings(1, clock=clock)[0]
    clock.advance(3600)
    old = synced_routings(1, clock=clock)[0]
    JobRouting.objects.filter(id=old.id).update(last_synced_at=clock.now - timedelta(hours=1))
    JobRouting.objects.filter(id=young.id).update(last_synced_at=clock.now)

    assert routings_backsync() == {"checked": 2, "completed": 0, "declined": 0, "errors": 0}

    assert fresh(young).status_check_due_at == clock.now + timedelta(seconds=60)
    assert fresh(old).status_check_due_at == clock.now + timedelta(seconds=480)
    clock.advance(60)
    assert routings_backsync()["checked"] == 1


def test_a_synced_routing_is_due_once_synced_and_a_claimed_one_not_again_until_its_next_check(
    clock,
):
    routing = synced_routings(1, clock=clock)[0]
    chunks = []

    def dispatch(routing_ids, claimed_at):
        chunks.append(routing_ids)

    assert routings_backsync_dispatch(dispatch=dispatch) == (1, False)
    assert routings_backsync_dispatch(dispatch=dispatch) == (0, False)
    clock.advance(59)
    assert routings_backsync_dispatch(dispatch=dispatch) == (0, False)
    clock.advance(1)
    assert routings_backsync_dispatch(dispatch=dispatch) == (1, False)
    assert chunks == [[routing.id], [routing.id]]


def test_a_claim_is_handed_out_in_chunks_of_one_companys_routings(clock, settings):
    settings.BACKSYNC_BATCH_SIZE = 2
    first = synced_routings(3, clock=clock)
    second = synced_routings(1, clock=clock)
    chunks = []

    def dispatch(routing_ids, claimed_at):
        chunks.append((set(routing_ids), claimed_at))

    assert routings_backsync_dispatch(dispatch=dispatch, limit=4) == (4, True)

    assert sorted(len(ids) for ids, _ in chunks) == [1, 1, 2]
    companies = [{fresh(JobRouting(id=id)).company_id for id in ids} for ids, _ in chunks]
    assert all(len(company) == 1 for company in companies)
    assert set().union(*(ids for ids, _ in chunks)) == {r.id for r in first + second}
    assert {claimed_at for _, claimed_at in chunks} == {clock.now}


def test_a_poll_of_routings_claimed_again_since_leaves_them(clock):
    routing = synced_routings(1, clock=clock)[0]
    chunks = []
    routings_backsync_dispatch(dispatch=lambda ids, at: chunks.append((ids, at)))
    clock.advance(60)
    routings_backsync_dispatch(dispatch=lambda ids, at: chunks.append((ids, at)))

    late = routings_poll_claimed(routing_ids=chunks[0][0], claimed_at=chunks[0][1])
    on_time = routings_poll_claimed(routing_ids=chunks[1][0], claimed_at=chunks[1][1])

    assert late == {"checked": 0, "completed": 0, "declined": 0, "errors": 0}
    assert on_time == {"checked": 1, "completed": 0, "declined": 0, "errors": 0}
    assert fresh(routing).status_checked_at == clock.now


@pytest.mark.postgres
def test_a_polled_chunk_is_read_by_primary_key_when_the_statistics_say_nothing_is_synced(
    clock, settings
):
    """A burst outruns PostgreSQL's statistics: here the last ANALYZE saw every routing pending,
    as in a nightly run's first minutes. The chunk's read must still go by primary key, not by
    an index on the status the planner believes rare (a scan of every synced routing)."""
    settings.BACKSYNC_BATCH_SIZE = 10
    synced_routings(300, clock=clock)
    JobRouting.objects.update(sync_status=SyncStatus.PENDING)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE routing_jobrouting")
    JobRouting.objects.update(sync_status=SyncStatus.SYNCED)
    chunks = []
    routings_backsync_dispatch(dispatch=lambda ids, at: chunks.append((ids, at)), limit=10)

    with CaptureQueriesContext(connection) as queries:
        counts = routings_poll_claimed(routing_ids=chunks[0][0], claimed_at=chunks[0][1])

    assert counts["checked"] == 10
    read = next(q["sql"] for q in queries if q["sql"].startswith('SELECT "routing_jobrouting"'))
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a table this small is read whole
        cursor.execute(f"EXPLAIN {read}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "routing_jobrouting_pkey" in plan, plan


def test_the_beat_task_enqueues_one_poll_per_chunk_and_runs_again_when_its_claim_was_full(
    clock, settings, monkeypatch
):
    settings.BACKSYNC_BATCH_SIZE = 2
    settings.BACKSYNC_CLAIM_LIMIT = 3
    routings = synced_routings(3, clock=clock, company__provider_settings={})
    polls, runs = [], []
    monkeypatch.setattr(poll_routing_statuses, "apply_async", lambda args: polls.append(args))
    monkeypatch.setattr(poll_provider_statuses, "apply_async", lambda: runs.append(True))

    assert poll_provider_statuses() == 3

    assert sorted(len(ids) for ids, _ in polls) == [1, 2]
    assert runs == [True]
    assert {id for ids, _ in polls for id in ids} == {str(r.id) for r in routings}
    counts = [poll_routing_statuses(*args) for args in polls]
    assert sum(count["checked"] for count in counts) == 3


def test_a_chunk_is_asked_about_in_one_provider_call_and_completed_in_one_transaction(
    clock, django_assert_max_num_queries
):
    routings = synced_routings(
        20, clock=clock, company__provider_settings={"complete_after_seconds": 60}
    )
    Company.objects.filter(id=routings[0].company_id).update(open_routing_count=20)
    clock.advance(60)
    chunks = []
    routings_backsync_dispatch(dispatch=lambda ids, at: chunks.append((ids, at)))

    # One query each: the chunk re-read, the provider's read and its write, the jobs locked (on
    # PostgreSQL) and rolled up, the company's load, the savepoint and its release, the jobs'
    # requesters and the webhook endpoints that hear (outbound webhooks); and one per completion.
    with django_assert_max_num_queries(10 + 20):
        counts = routings_poll_claimed(routing_ids=chunks[0][0], claimed_at=chunks[0][1])

    assert counts == {"checked": 20, "completed": 20, "declined": 0, "errors": 0}
    assert fresh(routings[0].company).open_routing_count == 0
    for routing in routings:
        routing, job = fresh(routing), fresh(routing.job)
        mock_job = MockJob.objects.get(external_id=routing.external_id)
        assert (
            routing.completed_at
            == mock_job.completed_at
            == mock_job.created_at + timedelta(seconds=60)
        )
        assert (job.status, job.completed_at, job.revenue) == (
            JobStatus.COMPLETED,
            routing.completed_at,
            routing.revenue,
        )


def test_completions_of_one_batch_roll_up_into_each_job_once_with_the_summed_revenue(clock):
    first = synced_routings(1, clock=clock)[0]
    second = synced_routings(1, clock=clock, job=first.job)[0]
    other = synced_routings(1, clock=clock)[0]
    earlier, later = clock.now - timedelta(minutes=5), clock.now - timedelta(minutes=1)

    completed = routings_complete(
        completions=[
            (first, earlier, Decimal("100.50")),
            (second, later, Decimal("20.25")),
            (other, earlier, None),
        ]
    )

    assert {routing.id for routing in completed} == {first.id, second.id, other.id}
    job = fresh(first.job)
    assert (job.status, job.completed_at, job.revenue) == (
        JobStatus.COMPLETED,
        later,
        Decimal("120.75"),
    )
    assert (fresh(other.job).completed_at, fresh(other.job).revenue) == (earlier, None)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_routings_of_one_job_completed_at_once_both_count_in_its_revenue():
    """Routings of one job belong to different companies, so different poll tasks complete
    them at the same time. The second roll-up waits for the first's job row; it must then sum
    the first's completion too, not only what it saw when its statement began."""
    job = JobFactory()
    first, second = (
        JobRoutingFactory(job=job, sync_status=SyncStatus.SYNCED, external_id=f"MOCK-{n}")
        for n in (1, 2)
    )
    earlier = timezone.now() - timedelta(minutes=2)
    first_done, release = threading.Event(), threading.Event()
    outcome = {}

    def complete_first_and_hold():
        try:
            with transaction.atomic():
                routings_complete(completions=[(first, earlier, Decimal("100.00"))])
                first_done.set()
                release.wait(10)
        finally:
            connection.close()

    def complete_second():
        try:
            outcome["completed"] = routings_complete(
                completions=[(second, earlier + timedelta(minutes=1), Decimal("20.00"))]
            )
        finally:
            connection.close()

    holder = threading.Thread(target=complete_first_and_hold)
    holder.start()
    assert first_done.wait(10)
    completer = threading.Thread(target=complete_second)
    completer.start()
    try:
        deadline = time.monotonic() + 10
        with connection.cursor() as cursor:
            while time.monotonic() < deadline:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
                if cursor.fetchone()[0]:
                    break
                time.sleep(0.02)
    finally:
        release.set()
        holder.join(10)
        completer.join(10)

    assert [routing.id for routing in outcome["completed"]] == [second.id]
    job.refresh_from_db()
    assert (job.status, job.revenue, job.completed_at) == (
        JobStatus.COMPLETED,
        Decimal("120.00"),
        earlier + timedelta(minutes=1),
    )


def test_back_sync_survives_a_provider_error(clock, caplog):
    routing, _ = routing_with_event(sync_status=SyncStatus.SYNCED, external_id="MOCK-GONE")

    assert routings_backsync() == {"checked": 1, "completed": 0, "declined": 0, "errors": 1}
    assert fresh(routing).sync_status == SyncStatus.SYNCED
    assert "Status back-sync failed" in caplog.text


def test_a_failed_batch_call_counts_each_of_its_routings_as_an_error(clock, caplog, monkeypatch):
    routings = synced_routings(3, clock=clock)

    def refuse(self, *, external_ids, timeout):
        raise RetryableProviderError("Mock provider: HTTP 503 Service Unavailable")

    monkeypatch.setattr(MockProvider, "get_job_statuses", refuse)

    assert routings_backsync() == {"checked": 3, "completed": 0, "declined": 0, "errors": 3}
    assert all(fresh(routing).sync_status == SyncStatus.SYNCED for routing in routings)
    assert [record.error for record in caplog.records] == [
        "Mock provider: HTTP 503 Service Unavailable"
    ]


def test_a_repeated_completion_report_changes_nothing(clock):
    routing, _ = routing_with_event(sync_status=SyncStatus.SYNCED, external_id="MOCK-1")

    assert routing_complete(routing=routing, completed_at=clock.now, revenue=Decimal(10))
    assert not routing_complete(routing=routing, completed_at=clock.now, revenue=Decimal(99))
    assert fresh(routing.job).revenue == Decimal(10)
    assert Job.objects.get(id=routing.job_id).status == JobStatus.COMPLETED


# Declines and the provider's job (issue 17, "the lifecycle")

NOTHING = {"checked": 0, "completed": 0, "declined": 0, "errors": 0}
REASON = "Customer went with another plumber"


@pytest.fixture
def provider_reports(monkeypatch) -> dict:
    """What the mock provider reports, by external id (``ProviderJobStatus`` fields), instead
    of its own jobs' state: a job it holds may be dismissed, cancelled or converted."""
    reports = {}

    def get_job_statuses(self, *, external_ids, timeout):
        return {
            external_id: ProviderJobStatus(external_id=external_id, **reports[external_id])
            for external_id in external_ids
            if external_id in reports
        }

    monkeypatch.setattr(MockProvider, "get_job_statuses", get_job_statuses)
    return reports


def loaded(routings: list[JobRouting], count: int) -> None:
    Company.objects.filter(id=routings[0].company_id).update(open_routing_count=count)


def test_a_cancelled_report_declines_the_routing_and_it_leaves_the_back_sync(
    clock, provider_reports, caplog
):
    routing = synced_routings(1, clock=clock)[0]
    loaded([routing], 1)
    provider_reports[routing.external_id] = {"status": "cancelled", "reason": REASON}

    assert routings_backsync() == {"checked": 1, "completed": 0, "declined": 1, "errors": 0}

    routing = fresh(routing)
    assert (routing.sync_status, routing.declined_at, routing.decline_reason) == (
        SyncStatus.SYNCED,
        clock.now,
        REASON,
    )
    assert routing.completed_at is None
    assert fresh(routing.company).open_routing_count == 0
    job = fresh(routing.job)
    assert (job.status, job.completed_at, job.revenue) == (JobStatus.PENDING, None, None)
    [record] = [r for r in caplog.records if r.getMessage() == "Routing declined"]
    assert (record.routing_id, record.job_id, record.reason) == (
        str(routing.id),
        str(routing.job_id),
        REASON,
    )
    clock.advance(30 * 86400)
    chunks = []
    assert routings_backsync_dispatch(dispatch=lambda ids, at: chunks.append(ids)) == (0, False)
    assert chunks == []
    assert fresh(routing).status_checked_at != clock.now


def test_a_cancellation_without_a_reason_is_declined_with_a_default_one(clock, provider_reports):
    routing = synced_routings(1, clock=clock)[0]
    provider_reports[routing.external_id] = {"status": "cancelled"}

    assert routings_backsync()["declined"] == 1

    assert fresh(routing).decline_reason == DECLINED_WITHOUT_REASON


def test_an_open_report_records_the_providers_job_id_and_number_once(clock, provider_reports):
    routing = synced_routings(1, clock=clock)[0]
    provider_reports[routing.external_id] = {"status": "open"}
    routings_backsync()
    assert (fresh(routing).provider_job_id, fresh(routing).provider_job_number) == ("", "")

    clock.advance(60)
    provider_reports[routing.external_id] = {
        "status": "open",
        "provider_job_id": "81234",
        "provider_job_number": "JOB-81234",
    }
    assert routings_backsync() == {"checked": 1, "completed": 0, "declined": 0, "errors": 0}

    routing = fresh(routing)
    assert (routing.provider_job_id, routing.provider_job_number) == ("81234", "JOB-81234")
    assert (routing.sync_status, routing.declined_at) == (SyncStatus.SYNCED, None)
    recorded_at = routing.updated_at
    assert recorded_at == clock.now
    clock.advance(60)
    routings_backsync()
    assert fresh(routing).updated_at == recorded_at  # the same job: nothing written


def test_a_completed_report_records_the_job_and_completes_the_routing(clock, provider_reports):
    routing = synced_routings(1, clock=clock)[0]
    provider_reports[routing.external_id] = {
        "status": "completed",
        "completed_at": clock.now - timedelta(minutes=5),
        "revenue": Decimal("410.00"),
        "provider_job_id": "81234",
        "provider_job_number": "JOB-81234",
    }

    assert routings_backsync() == {"checked": 1, "completed": 1, "declined": 0, "errors": 0}

    routing = fresh(routing)
    assert (routing.sync_status, routing.revenue, routing.declined_at) == (
        SyncStatus.COMPLETED,
        Decimal("410.00"),
        None,
    )
    assert (routing.provider_job_id, routing.provider_job_number) == ("81234", "JOB-81234")
    assert fresh(routing.job).revenue == Decimal("410.00")


def test_a_completion_after_a_decline_changes_nothing(clock, provider_reports):
    routing = synced_routings(1, clock=clock)[0]
    loaded([routing], 1)
    provider_reports[routing.external_id] = {"status": "cancelled", "reason": REASON}
    routings_backsync()
    provider_reports[routing.external_id] = {"status": "completed", "revenue": Decimal(99)}
    clock.advance(30 * 86400)

    assert routings_backsync() == NOTHING
    # The nightly refresh hands its own selection of synced routings to the poll.
    assert routings_poll(routings=[fresh(routing)]) == NOTHING
    assert not routing_complete(routing=routing, completed_at=clock.now, revenue=Decimal(99))

    routing = fresh(routing)
    assert (routing.sync_status, routing.revenue, routing.decline_reason) == (
        SyncStatus.SYNCED,
        None,
        REASON,
    )
    assert fresh(routing.job).status == JobStatus.PENDING
    assert fresh(routing.company).open_routing_count == 0


def test_two_declines_at_once_decline_once_and_release_the_load_once(clock):
    routing = synced_routings(1, clock=clock)[0]
    loaded([routing], 2)

    assert routings_decline(
        declines=[(routing, REASON, clock.now), (routing, "again", clock.now)]
    ) == [routing]
    assert not routing_decline(routing=routing, reason="once more", declined_at=clock.now)

    assert fresh(routing).decline_reason == REASON
    assert fresh(routing.company).open_routing_count == 1


def test_a_decline_of_a_completed_routing_changes_nothing(clock):
    routing = synced_routings(1, clock=clock)[0]
    routing_complete(routing=routing, completed_at=clock.now, revenue=Decimal(10))

    assert routings_decline(declines=[(routing, REASON, clock.now)]) == []

    routing = fresh(routing)
    assert (routing.sync_status, routing.declined_at) == (SyncStatus.COMPLETED, None)


def test_a_chunk_with_declines_and_job_numbers_is_recorded_in_one_transaction(
    clock, provider_reports, django_assert_max_num_queries
):
    routings = synced_routings(12, clock=clock)
    loaded(routings, 12)
    for n, routing in enumerate(routings):
        report = {"provider_job_id": str(9000 + n), "provider_job_number": f"JOB-{9000 + n}"}
        if n < 4:
            report.update(status="completed", revenue=Decimal(100 + n))
        elif n < 8:
            report.update(status="cancelled", reason=f"Declined {n}")
        else:
            report.update(status="open")
        provider_reports[routing.external_id] = report
    chunks = []
    routings_backsync_dispatch(dispatch=lambda ids, at: chunks.append((ids, at)))

    # One query each: the chunk re-read, the job ids and numbers of the twelve, the jobs locked
    # (on PostgreSQL) and rolled up, the company's load, the savepoint and its release, the jobs'
    # requesters and the webhook endpoints that hear (outbound webhooks); and one per completion
    # and per decline (the fake provider reads nothing).
    with django_assert_max_num_queries(9 + 4 + 4):
        counts = routings_poll_claimed(routing_ids=chunks[0][0], claimed_at=chunks[0][1])

    assert counts == {"checked": 12, "completed": 4, "declined": 4, "errors": 0}
    assert fresh(routings[0].company).open_routing_count == 4
    for n, routing in enumerate(routings):
        routing = fresh(routing)
        assert (routing.provider_job_id, routing.provider_job_number) == (
            str(9000 + n),
            f"JOB-{9000 + n}",
        )
        assert routing.sync_status == (SyncStatus.COMPLETED if n < 4 else SyncStatus.SYNCED)
        assert routing.decline_reason == (f"Declined {n}" if 4 <= n < 8 else "")
        assert (routing.declined_at is not None) is (4 <= n < 8)


# Provider webhooks: verify, record once, apply

SECRET = "whsec_" + base64.b64encode(b"a-secret-for-routing-tests-only").decode()
COMPLETED_ON = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


@pytest.fixture
def servicetitan_routing(settings):
    """A routing synced to a ServiceTitan company that signs its webhooks with its own secret;
    no global secret, so only the company's account can verify them."""
    settings.SERVICETITAN = {**settings.SERVICETITAN, "webhook_secret": ""}
    routing = JobRoutingFactory(
        company__provider_type="servicetitan",
        company__provider_credentials={"webhook_secret": SECRET},
        company__open_routing_count=1,
        sync_status=SyncStatus.SYNCED,
        external_id="JOB-001001",
    )
    return routing


def completion(routing, *, event_id="evt_1", **data) -> dict:
    return {
        "eventId": event_id,
        "eventType": "job.status_changed",
        "data": {
            "jobId": 1001,
            "jobNumber": routing.external_id or "JOB-009999",
            "externalId": str(routing.id),
            "status": "completed",
            "completedOn": "2026-11-24T10:00:00Z",
            "invoiceTotal": "325.00",
            **data,
        },
    }


def receive(payload: dict, *, company_id, secret: str = SECRET, provider_type="servicetitan"):
    body, headers = payload_signed(secret=secret, payload=payload)
    return provider_webhook_receive(
        provider_type=provider_type,
        body=body.encode(),
        headers=headers,
        company_id=str(company_id) if company_id else company_id,
    )


def test_a_webhook_signed_by_the_companys_account_completes_its_routing(servicetitan_routing):
    routing = servicetitan_routing

    result = receive(completion(routing), company_id=routing.company_id)

    assert result == {"eventId": "evt_1", "applied": "completed", "routingId": str(routing.id)}
    routing, job = fresh(routing), fresh(routing.job)
    assert (routing.sync_status, routing.revenue) == (SyncStatus.COMPLETED, Decimal("325.00"))
    assert (job.status, job.revenue, job.completed_at) == (
        JobStatus.COMPLETED,
        Decimal("325.00"),
        COMPLETED_ON,
    )
    assert WebhookReceipt.objects.filter(provider="servicetitan", event_id="evt_1").exists()


@pytest.mark.parametrize(
    "company_id", [str(uuid.UUID(int=7)), "not-a-uuid"], ids=["unknown", "malformed"]
)
def test_a_webhook_for_an_unknown_company_is_rejected_and_changes_nothing(
    servicetitan_routing, company_id
):
    routing = servicetitan_routing

    with pytest.raises(WebhookRejected, match="Unknown provider account"):
        receive(completion(routing), company_id=company_id)

    assert fresh(routing).sync_status == SyncStatus.SYNCED
    assert not WebhookReceipt.objects.exists()


def test_a_webhook_for_a_company_on_another_provider_is_rejected(servicetitan_routing):
    other = JobRoutingFactory(
        company__provider_type="mock", company__provider_credentials={"webhook_secret": SECRET}
    )

    with pytest.raises(WebhookRejected, match="Unknown provider account"):
        receive(completion(servicetitan_routing), company_id=other.company_id)

    assert fresh(servicetitan_routing).sync_status == SyncStatus.SYNCED
    assert not WebhookReceipt.objects.exists()


def test_a_webhook_from_an_unknown_provider_is_rejected(servicetitan_routing):
    with pytest.raises(WebhookRejected, match="Unknown provider 'fieldpulse'"):
        receive(
            completion(servicetitan_routing),
            company_id=servicetitan_routing.company_id,
            provider_type="fieldpulse",
        )

    assert not WebhookReceipt.objects.exists()


def test_a_webhook_signed_with_another_secret_is_rejected_and_records_nothing(
    servicetitan_routing,
):
    other_secret = "whsec_" + base64.b64encode(b"somebody-elses-secret").decode()

    with pytest.raises(WebhookRejected, match="Invalid webhook signature"):
        receive(
            completion(servicetitan_routing),
            company_id=servicetitan_routing.company_id,
            secret=other_secret,
        )

    assert fresh(servicetitan_routing).sync_status == SyncStatus.SYNCED
    assert not WebhookReceipt.objects.exists()


def test_a_webhook_without_a_company_is_verified_with_the_global_secret(
    servicetitan_routing, settings
):
    settings.SERVICETITAN = {**settings.SERVICETITAN, "webhook_secret": SECRET}

    result = receive(completion(servicetitan_routing), company_id=None)

    assert result["applied"] == "completed"


def test_a_webhook_without_a_company_or_a_global_secret_is_rejected(servicetitan_routing):
    with pytest.raises(WebhookRejected, match="No webhook secret"):
        receive(completion(servicetitan_routing), company_id=None)

    assert not WebhookReceipt.objects.exists()


def test_a_replayed_event_id_is_a_duplicate_and_changes_nothing_again(servicetitan_routing):
    """The replay names another routing under the same event id: only the receipt stops it."""
    first = servicetitan_routing
    second = JobRoutingFactory(
        company=first.company, sync_status=SyncStatus.SYNCED, external_id="JOB-002002"
    )
    receive(completion(first), company_id=first.company_id)

    replay = receive(
        completion(second, event_id="evt_1", invoiceTotal="999.00"), company_id=first.company_id
    )

    assert replay == {"eventId": "evt_1", "applied": "duplicate"}
    assert fresh(second).sync_status == SyncStatus.SYNCED
    assert fresh(first).revenue == Decimal("325.00")
    assert fresh(first.job).revenue == Decimal("325.00")
    assert WebhookReceipt.objects.count() == 1


def test_the_same_event_id_from_another_provider_is_not_a_duplicate(servicetitan_routing):
    WebhookReceipt.objects.create(provider="crm", event_id="evt_1")

    result = receive(completion(servicetitan_routing), company_id=servicetitan_routing.company_id)

    assert result["applied"] == "completed"


# Status updates


@pytest.mark.parametrize("named_by", ["routing id", "job number"])
def test_a_companys_webhook_cannot_complete_another_companys_routing(
    servicetitan_routing, named_by
):
    """ServiceTitan job numbers are per tenant, so two companies may both hold JOB-001001; and
    a routing id is no secret to the company it was routed to."""
    other = JobRoutingFactory(
        company__provider_type="servicetitan",
        company__provider_credentials={"webhook_secret": SECRET},
        sync_status=SyncStatus.SYNCED,
        external_id="JOB-001001",
    )
    payload = completion(servicetitan_routing)
    if named_by == "job number":
        payload["data"].pop("externalId")
    else:
        payload["data"]["jobNumber"] = "JOB-000404"

    result = receive(payload, company_id=other.company_id)

    if named_by == "job number":
        assert result["routingId"] == str(other.id)
    else:
        assert result == {"eventId": "evt_1", "applied": "unknown job", "routingId": None}
    assert fresh(servicetitan_routing).sync_status == SyncStatus.SYNCED


def update(**fields) -> StatusUpdate:
    fields.setdefault("provider_type", "servicetitan")
    fields.setdefault("event_id", "evt_1")
    fields.setdefault("status", ProviderJobStatus.COMPLETED)
    return StatusUpdate(**fields)


def test_a_completion_completes_the_routing_and_rolls_it_up_into_the_job(servicetitan_routing):
    routing = servicetitan_routing

    result = status_update_apply(
        update(routing_ids=(str(routing.id),), completed_at=COMPLETED_ON, revenue=Decimal(410))
    )

    assert result == {"applied": "completed", "routingId": str(routing.id)}
    routing, job = fresh(routing), fresh(routing.job)
    assert (routing.sync_status, routing.completed_at, routing.revenue) == (
        SyncStatus.COMPLETED,
        COMPLETED_ON,
        Decimal(410),
    )
    assert (job.status, job.completed_at, job.revenue) == (
        JobStatus.COMPLETED,
        COMPLETED_ON,
        Decimal(410),
    )
    assert fresh(routing.company).open_routing_count == 0


def test_a_completion_without_a_date_completes_now(servicetitan_routing, clock):
    status_update_apply(update(routing_ids=(str(servicetitan_routing.id),)))

    routing = fresh(servicetitan_routing)
    assert (routing.completed_at, routing.revenue) == (clock.now, None)
    assert fresh(routing.job).completed_at == clock.now


def test_a_completion_of_a_completed_routing_is_reported_as_such(servicetitan_routing):
    routing = servicetitan_routing
    status_update_apply(update(routing_ids=(str(routing.id),), revenue=Decimal(10)))

    again = status_update_apply(update(routing_ids=(str(routing.id),), revenue=Decimal(99)))

    assert again == {"applied": "already completed", "routingId": str(routing.id)}
    assert fresh(routing.job).revenue == Decimal(10)
    assert fresh(routing.company).open_routing_count == 0


@pytest.mark.parametrize("status", [ProviderJobStatus.OPEN, "in_progress"])
def test_a_status_other_than_completion_or_cancellation_is_only_recorded(
    servicetitan_routing, status
):
    routing = servicetitan_routing

    result = status_update_apply(update(status=status, routing_ids=(str(routing.id),)))

    assert result == {"applied": "recorded", "routingId": str(routing.id)}
    routing = fresh(routing)
    assert (routing.sync_status, routing.completed_at) == (SyncStatus.SYNCED, None)
    assert fresh(routing.job).status == JobStatus.PENDING
    assert fresh(routing.company).open_routing_count == 1


def test_a_routing_is_found_by_the_providers_id_among_routings_on_that_provider(
    servicetitan_routing,
):
    JobRoutingFactory(
        company__provider_type="mock", sync_status=SyncStatus.SYNCED, external_id="JOB-001001"
    )

    result = status_update_apply(update(routing_ids=("routing-42",), external_ids=("JOB-001001",)))

    assert result == {"applied": "completed", "routingId": str(servicetitan_routing.id)}
    assert JobRouting.objects.filter(sync_status=SyncStatus.COMPLETED).get() == (
        servicetitan_routing
    )


@pytest.mark.parametrize(
    "references",
    [
        {},
        {"routing_ids": ("not-a-routing-id",)},
        {"routing_ids": (str(uuid.UUID(int=42)),)},
        {"external_ids": ("JOB-404404",)},
        {"routing_ids": ("booking-7",), "external_ids": ("booking-7",)},
    ],
    ids=["none", "malformed-id", "unknown-id", "unknown-external-id", "unknown-booking"],
)
def test_an_update_naming_no_routing_of_ours_is_an_unknown_job(servicetitan_routing, references):
    result = status_update_apply(update(**references))

    assert result == {"applied": "unknown job", "routingId": None}
    assert fresh(servicetitan_routing).sync_status == SyncStatus.SYNCED


def test_the_providers_id_on_another_provider_is_an_unknown_job(servicetitan_routing):
    result = status_update_apply(update(provider_type="crm", external_ids=("JOB-001001",)))

    assert result == {"applied": "unknown job", "routingId": None}
    assert fresh(servicetitan_routing).sync_status == SyncStatus.SYNCED


def test_a_cancellation_declines_the_routing_and_a_repeat_changes_nothing(
    servicetitan_routing, clock
):
    routing = servicetitan_routing
    cancelled = update(status=ProviderJobStatus.CANCELLED, routing_ids=(str(routing.id),))

    result = status_update_apply(replace(cancelled, reason=REASON))
    again = status_update_apply(replace(cancelled, event_id="evt_2", reason="Changed our mind"))
    completed = status_update_apply(update(event_id="evt_3", routing_ids=(str(routing.id),)))

    assert result == {"applied": "declined", "routingId": str(routing.id)}
    assert again == {"applied": "already declined", "routingId": str(routing.id)}
    assert completed == {"applied": "already declined", "routingId": str(routing.id)}
    routing = fresh(routing)
    assert (routing.sync_status, routing.declined_at, routing.decline_reason) == (
        SyncStatus.SYNCED,
        clock.now,
        REASON,
    )
    assert fresh(routing.company).open_routing_count == 0
    assert fresh(routing.job).status == JobStatus.PENDING


def test_the_providers_progress_is_recorded_on_the_routing(servicetitan_routing):
    routing = servicetitan_routing

    scheduled = status_update_apply(
        update(routing_ids=(str(routing.id),), status="open", provider_status="scheduled")
    )
    started = status_update_apply(
        update(routing_ids=(str(routing.id),), status="open", provider_status="in_progress")
    )

    assert scheduled == started == {"applied": "recorded", "routingId": str(routing.id)}
    routing = fresh(routing)
    assert (routing.provider_status, routing.sync_status) == ("in_progress", SyncStatus.SYNCED)


def test_revenue_reported_after_the_completion_is_recorded_and_rolled_up_once(
    servicetitan_routing,
):
    # A CRM's invoice.paid after its work_order.completed.
    routing = servicetitan_routing
    status_update_apply(update(routing_ids=(str(routing.id),)))
    assert fresh(routing.job).revenue is None

    late = status_update_apply(update(routing_ids=(str(routing.id),), revenue=Decimal("270.63")))
    again = status_update_apply(update(routing_ids=(str(routing.id),), revenue=Decimal(1)))

    assert late == {"applied": "revenue recorded", "routingId": str(routing.id)}
    assert again == {"applied": "already completed", "routingId": str(routing.id)}
    assert fresh(routing).revenue == Decimal("270.63")
    assert (fresh(routing.job).status, fresh(routing.job).revenue) == (
        JobStatus.COMPLETED,
        Decimal("270.63"),
    )
    assert fresh(routing.company).open_routing_count == 0


def test_revenue_for_a_declined_routing_changes_nothing(servicetitan_routing):
    routing = servicetitan_routing
    status_update_apply(update(status=ProviderJobStatus.CANCELLED, routing_ids=(str(routing.id),)))

    result = status_update_apply(update(routing_ids=(str(routing.id),), revenue=Decimal(5)))

    assert result == {"applied": "already declined", "routingId": str(routing.id)}
    assert fresh(routing).revenue is None


def test_a_cancellation_without_a_reason_takes_the_default_one(servicetitan_routing):
    status_update_apply(
        update(status=ProviderJobStatus.CANCELLED, routing_ids=(str(servicetitan_routing.id),))
    )

    assert fresh(servicetitan_routing).decline_reason == DECLINED_WITHOUT_REASON


def test_a_cancellation_of_a_completed_routing_is_reported_as_such(servicetitan_routing):
    routing = servicetitan_routing
    status_update_apply(update(routing_ids=(str(routing.id),), revenue=Decimal(10)))

    result = status_update_apply(
        update(event_id="evt_2", status=ProviderJobStatus.CANCELLED, routing_ids=(str(routing.id),))
    )

    assert result == {"applied": "already completed", "routingId": str(routing.id)}
    assert fresh(routing).declined_at is None
    assert fresh(routing.company).open_routing_count == 0


@pytest.mark.parametrize(
    "status",
    [ProviderJobStatus.OPEN, ProviderJobStatus.COMPLETED, ProviderJobStatus.CANCELLED],
)
def test_an_update_records_the_providers_job_id_and_number(servicetitan_routing, status):
    routing = servicetitan_routing

    status_update_apply(
        update(
            status=status,
            routing_ids=(str(routing.id),),
            provider_job_id="81234",
            provider_job_number="JOB-81234",
        )
    )

    routing = fresh(routing)
    assert (routing.provider_job_id, routing.provider_job_number) == ("81234", "JOB-81234")


def test_an_update_without_a_job_keeps_the_one_recorded(servicetitan_routing):
    JobRouting.objects.filter(id=servicetitan_routing.id).update(
        provider_job_id="81234", provider_job_number="JOB-81234"
    )

    status_update_apply(
        update(status=ProviderJobStatus.OPEN, routing_ids=(str(servicetitan_routing.id),))
    )

    routing = fresh(servicetitan_routing)
    assert (routing.provider_job_id, routing.provider_job_number) == ("81234", "JOB-81234")

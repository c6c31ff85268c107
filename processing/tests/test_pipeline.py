"""Client processing (seed 004): the pipeline's steps, lead assignment, the report, the retry
queue with its backoff and alert, and who is due on which night."""

import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from integrations.models import MockJob
from jobs.models import Job, JobStatus, SkillLevel
from jobs.tests.factories import CompanyFactory, JobFactory, JobSkillFactory, skill
from processing.models import ProcessingJob
from processing.services import runs
from processing.services.leads import leads_assign, leads_collect, leads_order
from processing.services.runs import (
    clients_due,
    nightly_run,
    processing_job_create,
    processing_job_run,
    retry_queue_process,
)
from routing.models import JobRouting, OutboxEvent, SyncStatus
from routing.retry import CLIENT_PROCESSING_RETRY
from routing.tests.factories import JobRoutingFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 24, 0, 0, tzinfo=UTC)


@pytest.fixture
def client_company():
    """A plumber serving Illinois and ZIP area 606, on the mock provider."""
    return CompanyFactory(
        name="Windy City Plumbing",
        service_areas=["IL", "606"],
        skills={"plumbing": SkillLevel.INTERMEDIATE},
        leads_per_report=5,
        notification_email="dispatch@windy.example",
        provider_type="mock",
    )


def lead(*, days_ago: float = 10, state="IL", zip_code="62701", level=SkillLevel.BASIC, **job):
    """An open plumbing job posted ``days_ago`` days before NOW."""
    created = JobFactory(state=state, zip_code=zip_code, **job)
    JobSkillFactory(job=created, skill=skill("plumbing"), level=level)
    Job.objects.filter(id=created.id).update(created_at=NOW - timedelta(days=days_ago))
    created.refresh_from_db()
    return created


def run(company, *, now=NOW, seed="pinned"):
    job, _ = processing_job_create(client_id=company.id, trigger=ProcessingJob.Trigger.API)
    return processing_job_run(job_id=job.job_id, now=now, seed=seed)


# Leads


def test_leads_are_open_recent_jobs_in_the_area_that_the_client_can_do(client_company):
    wanted = [
        lead(),  # in IL
        lead(state="WI", zip_code="60601"),  # ZIP area 606, another state
        lead(level=SkillLevel.INTERMEDIATE),  # the level it holds
    ]
    lead(state="WI", zip_code="53201")  # outside the area
    lead(level=SkillLevel.EXPERT)  # above its level
    lead(days_ago=91)  # older than 3 months
    lead(status=JobStatus.COMPLETED)
    lead(status=JobStatus.CANCELLED)
    lead(created_by_technician__company=client_company)  # its own request
    JobRoutingFactory(job=lead(), company=client_company)  # already routed to it
    electrical = JobFactory(state="IL")
    JobSkillFactory(job=electrical, skill=skill("electrical"))  # a skill it lacks

    found = {ref.id for ref in leads_collect(client=client_company, now=NOW)}

    assert found == {job.id for job in wanted}


def test_leads_are_ordered_oldest_month_first_shuffled_within_a_month():
    leads = [lead(days_ago=days) for days in (5, 6, 7, 8, 40, 41, 42, 43)]
    october = {lead for lead in leads if lead.created_at.month == 10}

    first = leads_order(leads, seed="a")
    orders = {tuple(job.id for job in leads_order(leads, seed=seed)) for seed in "abcdefgh"}

    assert set(first[:4]) == october  # the older month first
    assert leads_order(leads, seed="a") == first  # seeded: the same seed, the same order
    assert len(orders) > 1  # randomised within the months


def test_assignment_stops_at_the_quota_and_routes_like_job_creation(client_company):
    client_company.leads_per_report = 3
    client_company.save()
    leads = [lead(days_ago=days) for days in (5, 40, 41, 42, 70)]

    assigned = leads_assign(
        client=client_company, leads=leads_collect(client=client_company, now=NOW), seed="x"
    )

    assert len(assigned) == 3
    assert set(assigned) <= set(leads[1:])  # the oldest months first: the 5-day-old one waits
    assert leads[4] in assigned  # August before October
    routings = JobRouting.objects.filter(company=client_company)
    assert {r.job_id for r in routings} == {job.id for job in assigned}
    assert all(r.sync_status == SyncStatus.PENDING for r in routings)
    events = OutboxEvent.objects.filter(aggregate_id__in=[r.id for r in routings])
    assert events.count() == 3
    assert {e.event_data["provider_type"] for e in events} == {"mock"}
    client_company.refresh_from_db()
    assert client_company.open_routing_count == 3


# The run


def test_a_run_assigns_leads_emails_the_report_and_completes(client_company):
    leads = [lead(summary=f"Leaky faucet {n}", street=f"{n} Oak Ave") for n in range(2)]

    job = run(client_company)

    assert job.status == ProcessingJob.Status.COMPLETED
    assert (job.leads_assigned, job.attempt_count) == (2, 1)
    assert job.report_sent_to == "dispatch@windy.example"
    client_company.refresh_from_db()
    assert client_company.last_processed_at == NOW
    [email] = mail.outbox
    assert email.to == ["dispatch@windy.example"]
    assert email.subject == "Your TradeEngage report: 2 new leads"
    html = email.alternatives[0][0]
    for job_lead in leads:
        assert job_lead.summary in email.body and job_lead.summary in html
        assert f"{job_lead.street}, Springfield, IL 62701" in email.body
    assert "Jobs you completed in the period: 0" in email.body


def test_the_report_counts_jobs_completed_and_revenue_since_the_last_report(client_company):
    client_company.last_processed_at = NOW - timedelta(days=30)
    client_company.save()
    for revenue, days_ago in [(Decimal("300.00"), 3), (Decimal("150.50"), 20), (Decimal(999), 45)]:
        JobRoutingFactory(
            company=client_company,
            sync_status=SyncStatus.COMPLETED,
            completed_at=NOW - timedelta(days=days_ago),
            revenue=revenue,
        )

    job = run(client_company)

    assert (job.jobs_completed, job.revenue) == (2, Decimal("450.50"))
    assert "Revenue from them: $450.50" in mail.outbox[0].body


def test_stale_client_data_is_refreshed_from_the_provider_first(client_company):
    client_company.provider_settings = {"complete_after_seconds": 0}
    client_company.save()
    routing = JobRoutingFactory(
        company=client_company, sync_status=SyncStatus.SYNCED, external_id="MOCK-ABC"
    )
    MockJob.objects.create(
        idempotency_key=str(routing.id),
        external_id="MOCK-ABC",
        company_id=client_company.id,
        created_at=timezone.now() - timedelta(days=1),
    )

    job = run(client_company, now=timezone.now())

    routing.refresh_from_db()
    assert routing.sync_status == SyncStatus.COMPLETED
    assert job.jobs_completed == 1
    assert job.revenue == routing.revenue


def test_fresh_client_data_is_not_refreshed(client_company, monkeypatch):
    client_company.last_processed_at = NOW - timedelta(days=10)
    client_company.save()
    monkeypatch.setattr(runs, "routings_poll", lambda **kwargs: pytest.fail("refreshed"))

    assert run(client_company).status == ProcessingJob.Status.COMPLETED


def test_a_client_without_an_email_still_completes(client_company):
    client_company.notification_email = ""
    client_company.save()

    job = run(client_company)

    assert (job.status, job.report_sent_to) == (ProcessingJob.Status.COMPLETED, "")
    assert mail.outbox == []


def test_a_failed_email_retries_the_run_and_the_retry_reports_the_same_leads(
    client_company, monkeypatch
):
    leads = [lead() for _ in range(2)]

    def smtp_down(self, *args, **kwargs):
        raise ConnectionRefusedError("SMTP server unreachable")

    monkeypatch.setattr("django.core.mail.EmailMultiAlternatives.send", smtp_down)
    job = run(client_company)

    assert (job.status, job.attempt_count) == (ProcessingJob.Status.PENDING, 1)
    assert "SMTP server unreachable" in job.error_message
    assert JobRouting.objects.filter(company=client_company).count() == 2  # step 4 stands

    monkeypatch.undo()
    job = processing_job_run(job_id=job.job_id, now=job.next_attempt)

    assert job.status == ProcessingJob.Status.COMPLETED
    assert job.leads_assigned == 2
    assert JobRouting.objects.filter(company=client_company).count() == 2  # none assigned twice
    for job_lead in leads:
        assert job_lead.summary in mail.outbox[0].body


def test_a_step_that_fails_rolls_back_its_writes(client_company):
    lead()

    def database_gone(execute, sql, params, many, context):
        if 'INSERT INTO "routing_outboxevent"' in sql:
            raise ConnectionError("database went away")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(database_gone):
        job = run(client_company)

    assert job.status == ProcessingJob.Status.PENDING
    assert not JobRouting.objects.filter(company=client_company).exists()  # rolled back
    assert job.assigned_job_ids == []


# The retry queue


@pytest.mark.parametrize(
    ("failed", "hours"), [(1, 1), (2, 2), (3, 4), (4, None)], ids=["1st", "2nd", "3rd", "4th"]
)
def test_retry_delays(failed, hours):
    expected = hours * 3600.0 if hours else None
    assert CLIENT_PROCESSING_RETRY.delay(retries_so_far=failed - 1) == expected


def test_a_failing_run_is_retried_after_1_2_and_4_hours_then_fails_with_an_alert(
    client_company, settings
):
    settings.OPS_ALERT_EMAILS = ["cto@tradeengage.example", "ops@tradeengage.example"]
    job, _ = processing_job_create(client_id=client_company.id, trigger="api")
    client_company.is_active = False  # deactivated after the run was queued: every attempt fails
    client_company.save()

    job = processing_job_run(job_id=job.job_id, now=NOW)
    assert (job.status, job.attempt_count) == ("pending", 1)
    assert job.next_attempt == NOW + timedelta(hours=1)

    clock = NOW
    for waited, attempts in [(1, 2), (2, 3), (4, 4)]:
        assert retry_queue_process(now=clock + timedelta(hours=waited, seconds=-1)) == {
            "processed": 0,
            "failed": 0,
        }
        clock += timedelta(hours=waited)
        assert retry_queue_process(now=clock) == {"processed": 0, "failed": 1}
        job.refresh_from_db()
        assert job.attempt_count == attempts

    assert job.status == ProcessingJob.Status.FAILED
    assert job.next_attempt is None
    assert "is not active" in job.error_message
    [alert] = mail.outbox
    assert alert.to == ["cto@tradeengage.example", "ops@tradeengage.example"]
    assert alert.subject == "[TradeEngage] Client processing failed: Windy City Plumbing"
    assert "after 4 attempts" in alert.body
    assert str(client_company.id) in alert.body
    assert job.error_message in alert.body
    assert retry_queue_process(now=clock + timedelta(days=1)) == {"processed": 0, "failed": 0}


def test_the_retry_queue_runs_due_jobs_that_now_succeed(client_company):
    job = ProcessingJob.objects.create(
        client=client_company,
        trigger="nightly",
        run_date=NOW.date(),
        attempt_count=1,
        next_attempt=NOW - timedelta(minutes=1),
        error_message="SMTP down",
    )

    assert retry_queue_process(now=NOW) == {"processed": 1, "failed": 0}

    job.refresh_from_db()
    assert (job.status, job.attempt_count, job.error_message) == ("completed", 2, None)


# Who is due


@pytest.mark.parametrize(
    ("day", "due_send_days"),
    [
        (date(2026, 1, 15), {15}),
        (date(2026, 1, 30), {30}),
        (date(2026, 1, 31), {31}),
        (date(2026, 2, 27), {27}),
        (date(2026, 2, 28), {28, 29, 30, 31}),  # not a leap year
        (date(2028, 2, 28), {28}),  # a leap year: the 29th is still to come
        (date(2028, 2, 29), {29, 30, 31}),
        (date(2026, 4, 30), {30, 31}),
        (date(2026, 12, 31), {31}),
    ],
)
def test_clients_due_by_send_day_with_month_end(day, due_send_days):
    for send_day in range(1, 32):
        CompanyFactory(send_day=send_day)
    CompanyFactory(send_day=day.day, is_active=False)

    assert {c.send_day for c in clients_due(day=day)} == due_send_days
    assert clients_due(day=day).count() == len(due_send_days)


def test_the_nightly_run_enqueues_each_due_client_once_per_night(client_company):
    other = CompanyFactory(send_day=client_company.send_day)
    CompanyFactory(send_day=client_company.send_day % 28 + 1)
    day = date(2026, 11, client_company.send_day)
    enqueued = []

    first = nightly_run(day=day, enqueue=enqueued.append)
    second = nightly_run(day=day, enqueue=enqueued.append)

    assert (first["due"], first["enqueued"], second["enqueued"], second["already_run"]) == (
        2,
        2,
        0,
        2,
    )
    runs = ProcessingJob.objects.filter(trigger="nightly", run_date=day)
    assert {r.client_id for r in runs} == {client_company.id, other.id}
    assert sorted(enqueued) == sorted(r.job_id for r in runs)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_nightly_triggers_at_once_process_each_client_once():
    clients = [CompanyFactory(send_day=7) for _ in range(30)]
    day = date(2026, 12, 7)
    enqueued, errors = [], []
    start = threading.Barrier(2)

    def trigger():
        try:
            start.wait()
            nightly_run(day=day, enqueue=enqueued.append)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=trigger) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(enqueued) == len(set(enqueued)) == len(clients)
    assert ProcessingJob.objects.filter(run_date=day).count() == len(clients)


def test_a_run_whose_task_was_lost_is_picked_up_by_the_retry_queue(client_company):
    job, _ = processing_job_create(client_id=client_company.id, trigger="api")  # never enqueued

    assert retry_queue_process(now=timezone.now()) == {"processed": 0, "failed": 0}
    later = timezone.now() + timedelta(minutes=11)
    assert retry_queue_process(now=later) == {"processed": 1, "failed": 0}
    job.refresh_from_db()
    assert job.status == ProcessingJob.Status.COMPLETED

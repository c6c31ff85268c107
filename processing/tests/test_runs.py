"""A client's processing runs (``processing.services.runs``): a run's steps from refresh to
report, a step that fails, the retry queue with its backoff and alert, and who is due on which
night."""

import threading
from datetime import date, timedelta

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone
from prometheus_client import REGISTRY

from integrations.models import MockJob
from jobs.tests.factories import CompanyFactory
from processing.models import ProcessingJob
from processing.services import runs
from processing.services.runs import (
    clients_due,
    nightly_run,
    processing_job_claim,
    processing_job_create,
    processing_job_run,
    retry_queue_process,
)
from processing.tests.factories import NOW, ProcessingJobFactory, lead, run
from routing.models import JobRouting, SyncStatus
from routing.tests.factories import JobRoutingFactory

pytestmark = pytest.mark.django_db


# Claiming a run


def test_a_run_is_claimed_by_one_taker_only(client_company):
    job = ProcessingJobFactory(client=client_company)

    taken = processing_job_claim(job_id=job.job_id, now=NOW)

    assert (taken.status, taken.last_attempt) == (ProcessingJob.Status.PROCESSING, NOW)
    assert processing_job_claim(job_id=job.job_id, now=NOW) is None


def test_a_first_attempt_is_claimed_before_its_dispatch_grace_ends(client_company):
    job = ProcessingJobFactory(client=client_company, next_attempt=NOW + timedelta(minutes=10))

    assert processing_job_claim(job_id=job.job_id, now=NOW) is not None


def test_a_retry_is_claimed_only_once_it_is_due(client_company):
    job = ProcessingJobFactory(
        client=client_company, attempt_count=1, next_attempt=NOW + timedelta(hours=1)
    )

    assert processing_job_claim(job_id=job.job_id, now=NOW) is None
    assert processing_job_claim(job_id=job.job_id, now=NOW + timedelta(hours=1)) is not None


@pytest.mark.parametrize("status", [ProcessingJob.Status.COMPLETED, ProcessingJob.Status.FAILED])
def test_a_finished_run_is_not_claimed(client_company, status):
    job = ProcessingJobFactory(client=client_company, status=status)

    assert processing_job_claim(job_id=job.job_id, now=NOW) is None
    assert processing_job_run(job_id=job.job_id, now=NOW) is None


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
    job = ProcessingJobFactory(
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


def test_a_run_whose_task_was_lost_is_picked_up_by_the_retry_queue(client_company):
    job, _ = processing_job_create(client_id=client_company.id, trigger="api")  # never enqueued

    assert retry_queue_process(now=timezone.now()) == {"processed": 0, "failed": 0}
    later = timezone.now() + timedelta(minutes=11)
    assert retry_queue_process(now=later) == {"processed": 1, "failed": 0}
    job.refresh_from_db()
    assert job.status == ProcessingJob.Status.COMPLETED


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


# Metrics


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_runs_the_nightly_run_and_the_retry_queue_are_counted(client_company):
    day = date(2026, 11, client_company.send_day)
    enqueued = sample("nightly_run_clients_total", outcome="enqueued")
    already_run = sample("nightly_run_clients_total", outcome="already_run")
    completed = sample("client_processing_runs_total", trigger="nightly", outcome="completed")
    retried = sample("client_processing_runs_total", trigger="api", outcome="retry")
    retry_queue_completed = sample("retry_queue_runs_total", outcome="completed")

    nightly_run(day=day, enqueue=lambda job_id: processing_job_run(job_id=job_id, now=NOW))
    nightly_run(day=day, enqueue=lambda job_id: None)
    inactive = CompanyFactory(is_active=True)
    job, _ = processing_job_create(client_id=inactive.id, trigger="api")
    inactive.is_active = False
    inactive.save()
    processing_job_run(job_id=job.job_id, now=NOW)
    ProcessingJobFactory(
        client=client_company,
        trigger="nightly",
        run_date=NOW.date() - timedelta(days=1),
        attempt_count=1,
        next_attempt=NOW - timedelta(minutes=1),
    )
    retry_queue_process(now=NOW)

    assert sample("nightly_run_clients_total", outcome="enqueued") == enqueued + 1
    assert sample("nightly_run_clients_total", outcome="already_run") == already_run + 1
    assert (
        sample("client_processing_runs_total", trigger="nightly", outcome="completed")
        == completed + 2
    )
    assert sample("client_processing_runs_total", trigger="api", outcome="retry") == retried + 1
    assert sample("retry_queue_runs_total", outcome="completed") == retry_queue_completed + 1

"""The processing commands, process_client and run_nightly, run through ``call_command`` against
the real pipeline (Celery is eager in tests: an enqueued run runs at once)."""

import uuid
from datetime import UTC, date, datetime
from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError

from jobs.models import SkillLevel
from jobs.tests.factories import CompanyFactory, JobFactory, JobSkillFactory, skill
from processing import tasks
from processing.models import ProcessingJob
from processing.tests.factories import ProcessingJobFactory
from routing.models import JobRouting

pytestmark = pytest.mark.django_db

APRIL_30 = date(2026, 4, 30)


def run(*args) -> tuple[str, str]:
    """Run a command; returns (stdout, stderr)."""
    stdout, stderr = StringIO(), StringIO()
    call_command(*args, stdout=stdout, stderr=stderr)
    return stdout.getvalue(), stderr.getvalue()


def output_rows(stdout: str) -> dict[str, str]:
    """process_client's result, one ``label  value`` row a line."""
    return {line[:15].strip(): line[16:] for line in stdout.splitlines()}


def client(**kwargs):
    kwargs.setdefault("notification_email", "dispatch@windy.example")
    return CompanyFactory(**kwargs)


@pytest.fixture
def plumber():
    """A plumber serving Illinois, on the mock provider."""
    return client(
        name="Windy City Plumbing",
        service_areas=["IL"],
        skills={"plumbing": SkillLevel.INTERMEDIATE},
        provider_type="mock",
    )


def lead():
    """An open plumbing job in Illinois, posted now."""
    job = JobFactory(state="IL", zip_code="62701")
    JobSkillFactory(job=job, skill=skill("plumbing"), level=SkillLevel.BASIC)
    return job


# process_client


def test_process_client_now_runs_the_client_and_prints_the_result(plumber):
    wanted = lead()

    stdout, _ = run("process_client", str(plumber.id), "--now")

    job = ProcessingJob.objects.get()
    assert (job.client, job.trigger, job.status) == (
        plumber,
        ProcessingJob.Trigger.COMMAND,
        ProcessingJob.Status.COMPLETED,
    )
    assert output_rows(stdout) == {
        "job": str(job.job_id),
        "client": f"Windy City Plumbing ({plumber.id})",
        "status": "completed",
        "leads assigned": "1",
        "jobs completed": "0",
        "revenue": "0.00",
        "report sent to": "dispatch@windy.example",
    }
    assert JobRouting.objects.get(company=plumber).job == wanted
    [report] = mail.outbox
    assert report.to == ["dispatch@windy.example"]
    assert wanted.summary in report.body


def test_process_client_now_says_when_the_client_has_no_email():
    company = client(notification_email="")

    stdout, _ = run("process_client", str(company.id), "--now")

    rows = output_rows(stdout)
    assert rows["status"] == "completed"
    assert rows["report sent to"] == "- (the client has no notification email)"
    assert mail.outbox == []


def test_process_client_now_exits_non_zero_when_the_run_goes_to_the_retry_queue(
    plumber, monkeypatch
):
    def smtp_down(self, *args, **kwargs):
        raise ConnectionRefusedError("SMTP server unreachable")

    monkeypatch.setattr("django.core.mail.EmailMultiAlternatives.send", smtp_down)
    stdout = StringIO()

    with pytest.raises(CommandError, match="ended pending"):
        call_command("process_client", str(plumber.id), "--now", stdout=stdout)

    job = ProcessingJob.objects.get()
    assert (job.status, job.attempt_count) == (ProcessingJob.Status.PENDING, 1)
    rows = output_rows(stdout.getvalue())
    assert rows["status"].startswith("pending (in the retry queue, next attempt ")
    assert rows["error"] == "ConnectionRefusedError: SMTP server unreachable"


def test_process_client_without_now_enqueues_the_run(plumber, monkeypatch):
    enqueued = []
    delay = tasks.process_client.delay
    monkeypatch.setattr(
        tasks.process_client, "delay", lambda job_id: enqueued.append(job_id) or delay(job_id)
    )

    stdout, _ = run("process_client", str(plumber.id))

    job = ProcessingJob.objects.get()
    assert enqueued == [str(job.job_id)]
    assert stdout == f"Enqueued processing job {job.job_id} for Windy City Plumbing.\n"
    assert job.status == ProcessingJob.Status.COMPLETED  # eager in tests
    assert len(mail.outbox) == 1


@pytest.mark.parametrize(
    ("client_id", "error"),
    [
        ("not-a-uuid", "'not-a-uuid' is not a client id (a UUID)"),
        (str(uuid.UUID(int=7)), f"Client {uuid.UUID(int=7)} not found."),
    ],
)
def test_process_client_refuses_a_malformed_or_unknown_client(client_id, error):
    with pytest.raises(CommandError) as raised:
        run("process_client", client_id, "--now")

    assert str(raised.value) == error
    assert not ProcessingJob.objects.exists()


def test_process_client_refuses_an_inactive_client():
    company = client(is_active=False)

    with pytest.raises(CommandError, match="is not active"):
        run("process_client", str(company.id))

    assert not ProcessingJob.objects.exists()
    assert mail.outbox == []


# run_nightly


@pytest.fixture
def month_end_clients():
    """Clients by send_day around April's end; only the active 30 and 31 are due on April 30."""
    return {
        send_day: client(name=f"Send day {send_day}", send_day=send_day)
        for send_day in (1, 15, 29, 30, 31)
    } | {"inactive": client(name="Inactive 30", send_day=30, is_active=False)}


def test_run_nightly_dry_run_lists_the_clients_due_and_changes_nothing(month_end_clients):
    stdout, _ = run("run_nightly", "--date", "2026-04-30", "--dry-run")

    lines = stdout.splitlines()
    assert lines[0] == "2 clients due on 2026-04-30."
    assert lines[1].split() == ["client", "name", "send", "day", "last", "processed"]
    due = sorted([month_end_clients[30], month_end_clients[31]], key=lambda company: company.id)
    assert [line.split()[0] for line in lines[2:]] == [str(company.id) for company in due]
    assert "Send day 30" in stdout and "never" in stdout
    assert not ProcessingJob.objects.exists()
    assert mail.outbox == []


def test_run_nightly_dry_run_on_a_mid_month_day_takes_only_that_send_day(month_end_clients):
    stdout, _ = run("run_nightly", "--date", "2026-05-15", "--dry-run")

    assert stdout.splitlines()[0] == "1 client due on 2026-05-15."
    assert str(month_end_clients[15].id) in stdout
    assert not ProcessingJob.objects.exists()


def test_run_nightly_on_a_months_last_day_processes_send_days_30_and_31(month_end_clients):
    stdout, _ = run("run_nightly", "--date", "2026-04-30")

    jobs = ProcessingJob.objects.all()
    assert {job.client for job in jobs} == {month_end_clients[30], month_end_clients[31]}
    assert {(job.trigger, job.run_date, job.status) for job in jobs} == {
        (ProcessingJob.Trigger.NIGHTLY, APRIL_30, ProcessingJob.Status.COMPLETED)
    }
    assert len(mail.outbox) == 2
    assert stdout == (
        "Nightly run for 2026-04-30: 2 clients due, 2 enqueued, 0 already run that night. "
        "Retry queue: 0 processed, 0 failed.\n"
    )


def test_run_nightly_twice_for_the_same_date_processes_each_client_once(month_end_clients):
    run("run_nightly", "--date", "2026-04-30")

    stdout, _ = run("run_nightly", "--date", "2026-04-30")

    assert ProcessingJob.objects.count() == 2
    assert len(mail.outbox) == 2
    assert "2 clients due, 0 enqueued, 2 already run that night." in stdout
    dry_run, _ = run("run_nightly", "--date", "2026-04-30", "--dry-run")
    assert dry_run.splitlines()[0] == "2 clients due on 2026-04-30, 2 already run that night."


def test_run_nightly_runs_the_retry_queue_after_the_clients_due(month_end_clients):
    waiting = ProcessingJobFactory(
        client=month_end_clients[15],
        trigger=ProcessingJob.Trigger.API,
        run_date=date(2026, 4, 15),
        attempt_count=1,
        next_attempt=datetime(2026, 4, 15, 1, 0, tzinfo=UTC),
        error_message="ConnectionRefusedError: SMTP server unreachable",
    )

    stdout, _ = run("run_nightly", "--date", "2026-04-30")

    waiting.refresh_from_db()
    assert waiting.status == ProcessingJob.Status.COMPLETED
    assert stdout.endswith("Retry queue: 1 processed, 0 failed.\n")


@pytest.mark.parametrize("value", ["2026-02-30", "tomorrow", "30/04/2026", "2026-4-31"])
def test_run_nightly_refuses_an_invalid_date(month_end_clients, value):
    with pytest.raises(CommandError, match="is not a date"):
        run("run_nightly", "--date", value)

    assert not ProcessingJob.objects.exists()

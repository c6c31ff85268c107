"""The processing jobs admin: the list with its filters and search, the read-only change page
with the full error, and "Retry now" running pending or failed jobs in the request."""

from datetime import date, timedelta

import pytest
from django.contrib import messages
from django.contrib.auth.models import Permission
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from processing import admin as processing_admin
from processing.models import ProcessingJob
from processing.tests.factories import ProcessingJobFactory
from tradeengage.admin import ERROR_PREVIEW_CHARS

pytestmark = pytest.mark.django_db

JOBS_URL = reverse("admin:processing_processingjob_changelist")

LONG_ERROR = (
    "ConnectionRefusedError: SMTP server unreachable while sending the report to "
    "dispatch@windy.example; the relay refused the connection on port 587 (end of error)"
)


def processing_job(**kwargs) -> ProcessingJob:
    """A run as the retry queue leaves it after its retries: failed, with its error. Company
    fields go in as ``client__...``."""
    kwargs.setdefault("status", ProcessingJob.Status.FAILED)
    kwargs.setdefault("trigger", ProcessingJob.Trigger.NIGHTLY)
    kwargs.setdefault("run_date", date(2026, 4, 30))
    kwargs.setdefault("attempt_count", 4)
    kwargs.setdefault("last_attempt", timezone.now() - timedelta(hours=1))
    kwargs.setdefault("error_message", LONG_ERROR)
    return ProcessingJobFactory(**kwargs)


def completed_job(**kwargs) -> ProcessingJob:
    return processing_job(
        status=ProcessingJob.Status.COMPLETED, attempt_count=1, error_message=None, **kwargs
    )


def run_action(client, action, jobs):
    return client.post(
        JOBS_URL,
        {"action": action, "_selected_action": [str(job.pk) for job in jobs]},
        follow=True,
    )


def shown_messages(response) -> list[tuple[int, str]]:
    return [(message.level, message.message) for message in response.context["messages"]]


def fresh(job: ProcessingJob) -> ProcessingJob:
    job.refresh_from_db()
    return job


@pytest.fixture
def jobs():
    return {
        "failed": processing_job(client__name="Windy City Plumbing"),
        "waiting": processing_job(
            client__name="Lincoln Electric",
            status=ProcessingJob.Status.PENDING,
            trigger=ProcessingJob.Trigger.API,
            attempt_count=1,
            next_attempt=timezone.now() + timedelta(hours=1),
            error_message="ConnectionRefusedError: SMTP server unreachable",
        ),
        "completed": completed_job(client__name="Prairie Plumbing", leads_assigned=3),
    }


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?status__exact=failed",
        "?status__exact=pending",
        "?trigger__exact=nightly",
        "?trigger__exact=command",
        "?run_date__gte=2026-04-30&run_date__lt=2026-05-01",
        "?created_at__gte=2020-01-01+00%3A00%3A00%2B00%3A00",
        "?q=Windy",
        "?q=not-a-uuid",
        "?o=5.-8",
    ],
)
def test_job_list_renders_with_each_filter_and_search(ops_client, jobs, query):
    response = ops_client.get(JOBS_URL + query)

    assert response.status_code == 200


def test_job_list_shows_short_ids_clients_and_the_start_of_each_error(ops_client, jobs):
    response = ops_client.get(JOBS_URL)

    failed = jobs["failed"]
    assert str(failed.job_id)[:8] in response.text
    assert "Windy City Plumbing" in response.text
    assert LONG_ERROR[: ERROR_PREVIEW_CHARS - 1] + "…" in response.text
    assert response.context["cl"].show_full_result_count is False


def test_job_list_filters_by_status_and_trigger(ops_client, jobs):
    failed = ops_client.get(JOBS_URL + "?status__exact=failed")
    by_api = ops_client.get(JOBS_URL + "?trigger__exact=api")

    assert list(failed.context["cl"].result_list) == [jobs["failed"]]
    assert list(by_api.context["cl"].result_list) == [jobs["waiting"]]


def test_job_list_finds_a_job_by_its_client_name_and_by_its_id(ops_client, jobs):
    job = jobs["waiting"]

    by_name = ops_client.get(JOBS_URL + "?q=lincoln")
    by_id = ops_client.get(JOBS_URL + f"?q={job.job_id}")

    assert list(by_name.context["cl"].result_list) == [job]
    assert list(by_id.context["cl"].result_list) == [job]


def test_job_list_costs_the_same_queries_for_many_jobs(
    ops_client, jobs, django_assert_max_num_queries
):
    for _ in range(30):
        processing_job()

    # session, user, filtered count, page (clients joined)
    with django_assert_max_num_queries(4):
        response = ops_client.get(JOBS_URL)

    assert len(response.context["cl"].result_list) == 33


def test_job_page_shows_its_full_error(ops_client, jobs):
    job = jobs["failed"]

    response = ops_client.get(reverse("admin:processing_processingjob_change", args=[job.pk]))

    assert response.status_code == 200
    assert LONG_ERROR in response.text
    assert "Windy City Plumbing" in response.text


def test_jobs_cannot_be_edited_by_hand(ops_client, jobs):
    job = jobs["failed"]
    url = reverse("admin:processing_processingjob_change", args=[job.pk])

    page = ops_client.get(url)
    response = ops_client.post(url, {"status": "completed", "attempt_count": 0})

    assert 'name="status"' not in page.text
    assert response.status_code == 403
    job = fresh(job)
    assert (job.status, job.attempt_count) == (ProcessingJob.Status.FAILED, 4)


def test_jobs_cannot_be_added_by_hand(ops_client, db):
    assert ops_client.get(reverse("admin:processing_processingjob_add")).status_code == 403


def test_only_superusers_delete_jobs(client, django_user_model, jobs):
    staff = django_user_model.objects.create_user("staff", password="a-long-password")
    staff.is_staff = True
    staff.save()
    staff.user_permissions.set(Permission.objects.filter(codename__endswith="_processingjob"))
    client.force_login(staff)
    url = reverse("admin:processing_processingjob_delete", args=[jobs["failed"].pk])

    assert client.get(url).status_code == 403
    assert client.get(JOBS_URL).status_code == 200


def test_retry_now_runs_a_failed_job_of_an_active_client_to_completion(ops_client, db):
    job = processing_job(client__notification_email="dispatch@windy.example")

    response = run_action(ops_client, "retry_now", [job])

    job = fresh(job)
    assert job.status == ProcessingJob.Status.COMPLETED
    assert job.attempt_count == 5
    assert job.error_message is None
    assert job.next_attempt is None
    assert job.client.last_processed_at is not None
    assert [message.to for message in mail.outbox] == [["dispatch@windy.example"]]
    assert shown_messages(response) == [(messages.SUCCESS, "Retry now: 1 completed.")]


def test_retry_now_runs_a_job_waiting_in_the_retry_queue_at_once(ops_client, jobs):
    job = jobs["waiting"]

    run_action(ops_client, "retry_now", [job])

    job = fresh(job)
    assert (job.status, job.attempt_count) == (ProcessingJob.Status.COMPLETED, 2)


def test_retry_now_leaves_completed_and_running_jobs_alone_and_counts_them(ops_client, jobs):
    running = processing_job(status=ProcessingJob.Status.PROCESSING, attempt_count=0)
    completed = jobs["completed"]
    before = fresh(completed).updated_at

    response = run_action(ops_client, "retry_now", [jobs["failed"], completed, running])

    assert fresh(jobs["failed"]).status == ProcessingJob.Status.COMPLETED
    assert fresh(completed).updated_at == before
    assert fresh(running).status == ProcessingJob.Status.PROCESSING
    assert shown_messages(response) == [
        (
            messages.SUCCESS,
            "Retry now: 1 completed, 2 left alone (only pending or failed runs are retried).",
        )
    ]


def test_retry_now_on_an_inactive_client_fails_again(ops_client, settings):
    settings.OPS_ALERT_EMAILS = ["ops@tradeengage.example"]
    job = processing_job(client__is_active=False)

    response = run_action(ops_client, "retry_now", [job])

    job = fresh(job)
    assert job.status == ProcessingJob.Status.FAILED
    assert job.attempt_count == 5
    assert "is not active" in job.error_message
    assert [message.to for message in mail.outbox] == [["ops@tradeengage.example"]]
    assert shown_messages(response) == [(messages.ERROR, "Retry now: 1 failed again.")]


def test_retry_now_runs_at_most_its_limit_per_click(ops_client, db, monkeypatch):
    monkeypatch.setattr(processing_admin, "RETRY_NOW_LIMIT", 1)
    first, second = processing_job(), processing_job()

    response = run_action(ops_client, "retry_now", [first, second])

    statuses = sorted(ProcessingJob.objects.values_list("status", flat=True))
    assert statuses == [ProcessingJob.Status.COMPLETED, ProcessingJob.Status.FAILED]
    [(level, message)] = shown_messages(response)
    assert level == messages.WARNING
    assert (
        message == "Retry now: 1 completed. 1 not tried: Retry now runs at most 1 jobs per click."
    )

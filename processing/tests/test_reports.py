"""What a client is told (``processing.services.reports``): its report of leads, jobs completed
and revenue since its last report, emailed when it has an address; and the alert ops get when a
run fails for good."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail

from jobs.tests.factories import CompanyFactory
from processing.models import LOOKBACK, ProcessingJob
from processing.services.reports import client_report, client_report_send, ops_alert_send
from processing.tests.factories import NOW, ProcessingJobFactory, lead, run
from routing.models import SyncStatus
from routing.tests.factories import JobRoutingFactory

pytestmark = pytest.mark.django_db


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


def test_a_client_without_an_email_still_completes(client_company):
    client_company.notification_email = ""
    client_company.save()

    job = run(client_company)

    assert (job.status, job.report_sent_to) == (ProcessingJob.Status.COMPLETED, "")
    assert mail.outbox == []


# The report


def completed_routing(client, *, days_ago: float, revenue, **fields):
    return JobRoutingFactory(
        company=client,
        sync_status=SyncStatus.COMPLETED,
        completed_at=NOW - timedelta(days=days_ago),
        revenue=revenue,
        **fields,
    )


def test_the_report_counts_only_the_clients_completions_since_its_last_report(client_company):
    client_company.last_processed_at = NOW - timedelta(days=10)
    completed_routing(client_company, days_ago=2, revenue=Decimal("120.00"))
    completed_routing(client_company, days_ago=9, revenue=None)
    completed_routing(client_company, days_ago=11, revenue=Decimal("999.00"))  # reported before
    JobRoutingFactory(company=client_company, sync_status=SyncStatus.SYNCED)
    completed_routing(CompanyFactory(), days_ago=1, revenue=Decimal("55.00"))  # someone else's
    leads = [lead(), lead()]

    report = client_report(client=client_company, leads=leads, now=NOW)

    assert (report.leads, report.jobs_completed, report.revenue) == (leads, 2, Decimal("120.00"))
    assert (report.period_start, report.period_end) == (NOW - timedelta(days=10), NOW)


@pytest.mark.parametrize(
    "last_processed_at", [None, NOW - LOOKBACK - timedelta(days=30)], ids=["never", "long-ago"]
)
def test_the_report_looks_back_three_months_at_most(client_company, last_processed_at):
    client_company.last_processed_at = last_processed_at
    completed_routing(client_company, days_ago=89, revenue=Decimal("10.00"))
    completed_routing(client_company, days_ago=91, revenue=Decimal("20.00"))

    report = client_report(client=client_company, leads=[], now=NOW)

    assert report.period_start == NOW - LOOKBACK
    assert (report.jobs_completed, report.revenue) == (1, Decimal("10.00"))


def test_a_report_without_completions_has_no_revenue(client_company):
    report = client_report(client=client_company, leads=[], now=NOW)

    assert (report.jobs_completed, report.revenue) == (0, Decimal("0.00"))


@pytest.mark.parametrize(("count", "subject"), [(1, "1 new lead"), (0, "0 new leads")])
def test_the_report_is_emailed_as_text_and_html_to_the_clients_address(
    client_company, count, subject
):
    leads = [lead(summary=f"Burst pipe {n}") for n in range(count)]
    report = client_report(client=client_company, leads=leads, now=NOW)

    sent_to = client_report_send(client=client_company, report=report)

    assert sent_to == "dispatch@windy.example"
    [email] = mail.outbox
    assert (email.to, email.subject) == (
        ["dispatch@windy.example"],
        f"Your TradeEngage report: {subject}",
    )
    [(html, mimetype)] = email.alternatives
    assert mimetype == "text/html"
    for job in leads:
        assert job.summary in email.body and job.summary in html


def test_a_client_without_an_address_is_sent_no_report(client_company):
    client_company.notification_email = ""
    report = client_report(client=client_company, leads=[lead()], now=NOW)

    assert client_report_send(client=client_company, report=report) == ""
    assert mail.outbox == []


# The ops alert


def failed_for_good(client) -> ProcessingJob:
    return ProcessingJobFactory(
        client=client,
        status=ProcessingJob.Status.FAILED,
        attempt_count=4,
        last_attempt=NOW,
        error_message="ClientNotActive: Client Windy City Plumbing is not active.",
    )


def test_a_run_failed_for_good_alerts_the_ops_addresses(client_company, settings):
    settings.OPS_ALERT_EMAILS = ["cto@tradeengage.example"]
    job = failed_for_good(client_company)

    ops_alert_send(job=job)

    [alert] = mail.outbox
    assert alert.to == ["cto@tradeengage.example"]
    assert alert.subject == "[TradeEngage] Client processing failed: Windy City Plumbing"
    assert "after 4 attempts" in alert.body
    assert str(job.job_id) in alert.body
    assert job.error_message in alert.body


def test_without_ops_addresses_the_alert_is_an_error_in_the_log(client_company, settings, caplog):
    settings.OPS_ALERT_EMAILS = []
    job = failed_for_good(client_company)

    ops_alert_send(job=job)

    assert mail.outbox == []
    [record] = [r for r in caplog.records if r.levelname == "ERROR"]
    assert "no OPS_ALERT_EMAILS" in record.getMessage()
    assert record.job_id == str(job.job_id)

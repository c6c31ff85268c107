"""The dashboard's figures (``analytics.selectors.dashboard``) over a small history whose
answers are known: closed days from roll-ups, today and the last 24 hours live."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from analytics.models import DailyFigures
from analytics.selectors import dashboard
from analytics.services import daily_figures_roll_up
from analytics.tests.factories import failed_call, job_at, routing_of
from jobs.tests.factories import CompanyFactory
from processing.tests.factories import ProcessingJobFactory
from routing.models import SyncStatus
from routing.tests.factories import OutboxEventFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 20, 15, 30, tzinfo=timezone.get_fixed_timezone(0))


@pytest.fixture
def history():
    """Two jobs 3 days ago (one synced in 4 s and completed for $250), three jobs this morning
    (synced in 2, 4 and 6 s; one call retried, one dead-lettered), a failed routing and a
    pending one now."""
    old = job_at(NOW - timedelta(days=3))
    routing_of(
        old, synced_after=timedelta(seconds=4), completed_after=timedelta(days=1), revenue="250.00"
    )
    routing_of(job_at(NOW - timedelta(days=3, hours=1)))
    today = [job_at(NOW - timedelta(hours=h)) for h in (1, 2, 3)]
    synced = [
        routing_of(job, synced_after=timedelta(seconds=s))
        for job, s in zip(today, (2, 4, 6), strict=True)
    ]
    failed_call(synced[0], NOW - timedelta(hours=1))
    failed = routing_of(today[1], status=SyncStatus.FAILED)
    failed_call(failed, NOW - timedelta(hours=2), dead=True)
    return {"failed": failed, "today": today}


def test_the_last_24_hours_are_counted_live(history):
    figures = dashboard(now=NOW)

    assert figures["jobs_created_24h"] == 3
    assert figures["routings_synced_24h"] == 3
    assert figures["sync_failures_24h"] == 2
    assert figures["sync_success_rate"] == pytest.approx(3 / 5)
    assert figures["average_sync_latency_seconds"] == pytest.approx(4.0)
    assert figures["sync_latency_p50_seconds"] == pytest.approx(4.0)
    assert figures["sync_latency_p95_seconds"] == pytest.approx(5.8)
    hours = {timezone.localtime(h["hour"]).hour: h for h in figures["hourly"]}
    assert len(figures["hourly"]) == 25  # 14:00 yesterday (from 14:30) to 14:00 today (to now)
    assert (hours[14]["jobs_created"], hours[14]["sync_retries"]) == (1, 1)
    assert (hours[13]["jobs_created"], hours[13]["sync_failures"]) == (1, 1)


def test_closed_days_come_from_their_roll_up_and_today_is_live(history):
    before = dashboard(now=NOW)
    assert before["total_jobs"] == 5  # nothing rolled up yet: the 30 days are read live
    assert before["daily"][-4]["rolled_up"] is False
    assert before["daily"][-4]["jobs_created"] == 2

    rolled = daily_figures_roll_up(today=NOW.date())
    figures = dashboard(now=NOW)

    assert rolled == 3  # from the first job's day to yesterday
    assert figures["total_jobs"] == 5
    assert figures["total_routings"] == 6
    three_days_ago = figures["daily"][-4]
    assert three_days_ago["day"] == (NOW - timedelta(days=3)).date()
    assert three_days_ago["rolled_up"] is True
    assert (three_days_ago["jobs_created"], three_days_ago["routings_synced"]) == (2, 1)
    assert three_days_ago["latency_p50_seconds"] == pytest.approx(4.0)
    assert figures["daily"][-3]["revenue"] == Decimal("250.00")  # completed a day later
    assert figures["daily"][-1]["jobs_created"] == 3
    assert len(figures["daily"]) == 30
    assert figures["revenue_mtd"] == Decimal("250.00")


def test_a_roll_up_again_computes_only_yesterday_and_changes_nothing(history):
    daily_figures_roll_up(today=NOW.date())
    first = list(DailyFigures.objects.values())

    assert daily_figures_roll_up(today=NOW.date()) == 1
    assert [
        {k: v for k, v in row.items() if k != "computed_at"}
        for row in DailyFigures.objects.values()
    ] == [{k: v for k, v in row.items() if k != "computed_at"} for row in first]


def test_the_engine_state_backlog_and_failing_companies(history):
    OutboxEventFactory()
    OutboxEventFactory(status="dead")

    figures = dashboard(now=NOW)

    assert figures["routings_waiting"] == 1
    assert figures["routings_failed"] == 1
    assert figures["routings_synced_open"] == 3
    assert figures["active_routings"] == 4
    assert figures["backlog"]["pending"] == 1
    assert figures["backlog"]["dead"] == 1
    assert figures["backlog"]["oldest_pending_age_seconds"] is not None
    [company] = figures["top_failing_companies"]
    assert (company["company_id"], company["failed"]) == (history["failed"].company_id, 1)
    assert company["name"] == history["failed"].company.name


def test_a_routing_its_company_declined_is_no_longer_open(history):
    routing_of(
        history["today"][0],
        synced_after=timedelta(seconds=3),
        declined_at=NOW,
        decline_reason="Outside our service area",
    )

    figures = dashboard(now=NOW)

    assert figures["routings_synced_open"] == 3
    assert figures["active_routings"] == 4
    assert figures["routings_synced_24h"] == 4  # its push did succeed


def test_the_last_nightly_run():
    client_company = CompanyFactory()
    ProcessingJobFactory(
        client=client_company, trigger="nightly", run_date=NOW.date() - timedelta(days=1)
    )
    ProcessingJobFactory(
        client=client_company,
        trigger="nightly",
        run_date=NOW.date(),
        status="completed",
        leads_assigned=7,
        revenue=Decimal("1200.00"),
    )

    run = dashboard(now=NOW)["last_nightly_run"]

    assert run["run_date"] == NOW.date()
    assert (run["clients"], run["completed"], run["leads_assigned"]) == (1, 1, 7)
    assert run["revenue"] == Decimal("1200.00")


def test_an_empty_network_has_figures_too():
    figures = dashboard(now=NOW)

    assert figures["total_jobs"] == 0
    assert figures["sync_success_rate"] is None
    assert figures["sync_latency_p50_seconds"] is None
    assert figures["last_nightly_run"] is None
    assert figures["backlog"]["oldest_pending_age_seconds"] is None


def test_the_dashboard_reads_a_bounded_number_of_queries(history, django_assert_max_num_queries):
    daily_figures_roll_up(today=NOW.date())

    with django_assert_max_num_queries(24):
        dashboard(now=NOW)


def test_days_are_the_time_zones_and_hours_survive_a_daylight_saving_change(settings):
    settings.TIME_ZONE = "America/Chicago"
    # 2026-11-01 02:00 CDT became 01:00 CST: the hour 01:00-02:00 came twice.
    now = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    for hours_ago in (1, 5, 6, 7, 30):
        job_at(now - timedelta(hours=hours_ago))

    figures = dashboard(now=now)

    assert len(figures["hourly"]) == 25
    assert figures["jobs_created_24h"] == 4
    assert sum(hour["jobs_created"] for hour in figures["hourly"]) == 4
    # 30 hours before noon UTC is Oct 31 01:00 CDT; the others are Nov 1 in Chicago.
    assert figures["daily"][-1]["day"].isoformat() == "2026-11-01"
    assert figures["daily"][-1]["jobs_created"] == 4


def test_a_day_the_roll_up_missed_is_read_live(history):
    daily_figures_roll_up(today=NOW.date() - timedelta(days=2))  # rolled up to 3 days ago

    figures = dashboard(now=NOW)

    assert [day["rolled_up"] for day in figures["daily"][-3:]] == [False, False, False]
    assert figures["daily"][-3]["revenue"] == Decimal("250.00")
    assert figures["total_jobs"] == 5
    assert figures["revenue_mtd"] == Decimal("250.00")


def test_the_24_hour_figures_cover_exactly_24_hours():
    job_at(NOW - timedelta(hours=24, minutes=-1))  # 23 h 59 min ago, in the partial first hour
    job_at(NOW - timedelta(hours=24, minutes=1))  # 24 h 1 min ago: out

    figures = dashboard(now=NOW)

    assert figures["jobs_created_24h"] == 1
    assert figures["hourly"][0]["jobs_created"] == 1

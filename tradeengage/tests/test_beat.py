"""celery-beat's scheduler through a database outage (tradeengage.beat)."""

import logging

import pytest
from django.db import OperationalError, connection
from django_celery_beat import schedulers
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from tradeengage import beat
from tradeengage.beat import OutageTolerantScheduler
from tradeengage.celery import app as celery_app

pytestmark = pytest.mark.django_db


def database_down(execute, sql, params, many, context):
    raise OperationalError("terminating connection due to administrator command")


@pytest.fixture
def relay_entry():
    every_5s = IntervalSchedule.objects.create(every=5, period=IntervalSchedule.SECONDS)
    return PeriodicTask.objects.create(
        name="relay-outbox", task="routing.tasks.relay_outbox", interval=every_5s
    )


def test_a_schedule_read_that_fails_keeps_the_schedule_and_logs_one_warning(relay_entry, caplog):
    beat._outage_log.reset()
    scheduler = OutageTolerantScheduler(app=celery_app, lazy=True)
    scheduler._schedule = scheduler.all_as_schedule()

    with connection.execute_wrapper(database_down):
        kept = [scheduler.all_as_schedule() for _ in range(3)]

    assert all(schedule is scheduler._schedule for schedule in kept)
    assert "relay-outbox" in scheduler._schedule
    warnings = [r for r in caplog.records if r.name == "tradeengage.beat"]
    assert [(r.levelno, r.exc_info) for r in warnings] == [(logging.WARNING, None)]
    assert "administrator command" in warnings[0].getMessage()


def test_a_first_read_that_fails_is_tried_again_at_the_next_tick(relay_entry):
    scheduler = OutageTolerantScheduler(app=celery_app, lazy=True)
    scheduler._initial_read = False

    with connection.execute_wrapper(database_down):
        assert scheduler.all_as_schedule() == {}

    assert scheduler._initial_read is True
    assert "relay-outbox" in scheduler.all_as_schedule()


def test_the_change_check_and_the_saves_during_an_outage_log_one_warning_not_tracebacks(
    relay_entry, caplog, monkeypatch
):
    """django-celery-beat's own error lines at every tick are folded into the one warning."""
    beat._outage_log.reset()
    scheduler = OutageTolerantScheduler(app=celery_app, lazy=True)
    scheduler._schedule = scheduler.all_as_schedule()
    # The change check and the saves close stale connections first; not the test's own.
    monkeypatch.setattr(schedulers, "close_old_connections", lambda: None)

    with connection.execute_wrapper(database_down):
        for _ in range(3):
            assert scheduler.schedule_changed() is False
            scheduler._dirty.add("relay-outbox")
            scheduler.sync()

    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    warnings = [r for r in caplog.records if r.name == "tradeengage.beat"]
    assert [(r.levelno, r.exc_info) for r in warnings] == [(logging.WARNING, None)]
    assert "Beat could not reach the database" in warnings[0].getMessage()


def test_other_errors_of_the_scheduler_are_still_logged(caplog):
    try:
        raise ValueError("a bug")
    except ValueError:
        logging.getLogger("django_celery_beat.schedulers").exception("Database gave error")

    assert [r.levelno for r in caplog.records] == [logging.ERROR]


def test_beat_runs_this_scheduler(settings):
    assert settings.CELERY_BEAT_SCHEDULER == "tradeengage.beat:OutageTolerantScheduler"

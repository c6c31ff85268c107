"""Worker database connections live from task to task, as they do from request to request."""

import time
from types import SimpleNamespace

import pytest
from celery.fixups.django import DjangoWorkerFixup
from celery.signals import task_postrun, task_prerun
from django.db import connection

from tradeengage import celery as tradeengage_celery
from tradeengage import heartbeats
from tradeengage.celery import app


class Task:
    def __init__(self, *, is_eager: bool):
        self.request = SimpleNamespace(id="task-id", is_eager=is_eager)


def around_a_task(task) -> None:
    """What a worker does around every task: Celery's Django fixup and our signal handlers."""
    fixup = DjangoWorkerFixup(app)
    task_prerun.send(sender=task, task=task, task_id="t", args=(), kwargs={})
    fixup.on_task_prerun(task)
    fixup.on_task_postrun(task)
    task_postrun.send(sender=task, task=task, task_id="t", args=(), kwargs={}, retval=None)


@pytest.mark.postgres  # SQLite's in-memory test database is never closed
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_healthy_connection_is_kept_from_task_to_task():
    connection.ensure_connection()
    before = connection.connection

    for _ in range(3):
        around_a_task(Task(is_eager=False))

    assert connection.connection is before


@pytest.mark.postgres  # SQLite's in-memory test database is never closed
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_connection_past_conn_max_age_is_replaced_before_the_next_task():
    connection.ensure_connection()
    old = connection.connection
    connection.close_at = time.monotonic() - 1

    around_a_task(Task(is_eager=False))
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")

    assert connection.connection is not None
    assert connection.connection is not old


@pytest.mark.postgres  # SQLite's in-memory test database is never closed
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_broken_connection_is_replaced_before_the_next_task():
    connection.ensure_connection()
    old = connection.connection
    connection.errors_occurred = True
    connection.health_check_enabled = True
    old.close()  # the server went away

    around_a_task(Task(is_eager=False))
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")

    assert connection.connection is not old


@pytest.mark.django_db
def test_an_eager_task_inside_a_transaction_leaves_the_connection_alone():
    before = connection.connection

    around_a_task(Task(is_eager=True))

    assert connection.connection is before
    assert connection.in_atomic_block


def test_a_ready_worker_beats_with_the_queues_it_consumes_until_it_shuts_down():
    consume_from = {"critical": object(), "default": object()}
    worker = SimpleNamespace(
        hostname="celery@w1",
        app=SimpleNamespace(
            amqp=SimpleNamespace(queues=SimpleNamespace(consume_from=consume_from))
        ),
    )

    tradeengage_celery.start_heartbeat(sender=worker)
    try:
        for _ in range(100):
            if heartbeats.queue_consumers():
                break
            time.sleep(0.02)
        assert heartbeats.queue_consumers() == {"critical": 1, "default": 1}
    finally:
        tradeengage_celery.stop_heartbeat()

    assert heartbeats.queue_consumers() == {}

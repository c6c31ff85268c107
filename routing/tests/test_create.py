"""Routing jobs to companies (``routing.services.create``): the one writer of routings, their
``job_sync`` events and the companies' load; the one-statement write (PostgreSQL) against the
ORM's, and the order in which company rows are locked."""

import threading
import time
import uuid

import pytest
from django.db import OperationalError, connection, transaction

from jobs.matching import Match
from jobs.models import Company
from jobs.tests.factories import CompanyFactory, JobFactory
from routing.models import JobRouting, OutboxEvent
from routing.services import create


def stored_routing_rows() -> list[tuple]:
    """Every routing with its outbox event and company load, without the ids and clocks that
    differ from one write to the next."""
    routing_columns = [
        field.attname
        for field in JobRouting._meta.concrete_fields
        if field.attname not in {"id", "created_at", "updated_at"}
    ]
    event_columns = [
        field.attname
        for field in OutboxEvent._meta.concrete_fields
        if field.attname not in {"id", "aggregate_id", "available_at", "created_at"}
    ]
    rows = []
    for routing in JobRouting.objects.select_related("company").order_by("job_id", "company_id"):
        event = OutboxEvent.objects.get(aggregate_id=routing.id)
        assert event.event_data.pop("routing_id") == str(routing.id)
        rows.append(
            (
                [getattr(routing, column) for column in routing_columns],
                [getattr(event, column) for column in event_columns],
                routing.company.open_routing_count,
            )
        )
    return rows


@pytest.mark.postgres
def test_the_one_statement_write_of_routings_stores_what_the_orm_stores(db):
    first, second = JobFactory(), JobFactory()
    busy, quiet = CompanyFactory(provider_type="mock"), CompanyFactory(provider_type="crm")
    # busy gains two routings, quiet one: two load increments, the second its own statement.
    pairs = [
        (first, Match(busy.id, "mock", 5.5, ["plumbing"], [], "Skills match: plumbing")),
        (second, Match(busy.id, "mock", 3.0, ["plumbing", "hvac"], [], "Skills match")),
        (second, Match(quiet.id, "crm", 2.25, ["hvac"], ["plumbing"], "Partial match")),
    ]

    create.routing_rows_write_in_one_statement(create.routing_rows(pairs))
    in_one_statement = stored_routing_rows()
    JobRouting.objects.all().delete()
    OutboxEvent.objects.all().delete()
    Company.objects.update(open_routing_count=0)
    create.routing_rows_write_per_table(create.routing_rows(pairs))

    assert in_one_statement == stored_routing_rows()
    assert sorted(load for *_, load in in_one_statement) == [1, 2, 2]


def test_routings_store_returns_the_ids_of_the_routings_it_wrote(db):
    job = JobFactory()
    companies = CompanyFactory.create_batch(2)
    pairs = [(job, Match(company.id, "mock", 2.0)) for company in companies]

    ids = create.routings_create(pairs=pairs)

    assert set(ids) == set(JobRouting.objects.values_list("id", flat=True))
    assert set(ids) == set(OutboxEvent.objects.values_list("aggregate_id", flat=True))
    assert create.routings_create(pairs=[]) == []


def _in_own_connection(work):
    """Run ``work`` in a thread of its own, so on a database connection of its own."""
    outcome = {}

    def run():
        try:
            outcome["result"] = work()
        except Exception as exc:  # handed to the test to assert on
            outcome["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def _wait_until_blocked_on_a_lock(timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.02)
    raise AssertionError("the routing write never waited for the held company row")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_routing_writes_lock_company_rows_in_id_order():
    """Two jobs raising the same companies' load must take their rows in the same order, or
    each can hold the row the other waits for (a deadlock, answered with a 500). The higher id
    is stored first, so a write taking rows in storage order would reach it first."""
    high = CompanyFactory(id=uuid.UUID("ffffffff-ffff-4fff-bfff-ffffffffffff"))
    low = CompanyFactory(id=uuid.UUID("00000000-0000-4000-8000-000000000001"))
    job = JobFactory()
    pairs = [(job, Match(company.id, "mock", 2.0)) for company in (high, low)]
    high_held, release = threading.Event(), threading.Event()

    def hold_the_high_row():
        with transaction.atomic():
            list(Company.objects.select_for_update().filter(id=high.id))
            high_held.set()
            release.wait(10)

    def write_routings():
        with transaction.atomic():
            return create.routings_create(pairs=pairs)

    holder, _ = _in_own_connection(hold_the_high_row)
    assert high_held.wait(10)
    writer, written = _in_own_connection(write_routings)
    try:
        _wait_until_blocked_on_a_lock()
        # The writer waits for the high row, so it must already hold the low one.
        with (
            pytest.raises(OperationalError, match="could not obtain lock"),
            transaction.atomic(),
        ):
            list(Company.objects.select_for_update(nowait=True).filter(id=low.id))
    finally:
        release.set()
        holder.join(10)
        writer.join(10)

    assert "error" not in written
    assert len(written["result"]) == 2
    assert dict(Company.objects.values_list("id", "open_routing_count")) == {
        high.id: 1,
        low.id: 1,
        job.created_by_company_id: 0,
    }

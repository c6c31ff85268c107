"""Routing jobs to companies (``routing.services.create``): the one writer of routings, their
``job_sync`` events and the companies' load; the one-statement write (PostgreSQL) against the
ORM's, and the order in which company rows are locked."""

import re
import threading
import time
import uuid

import pytest
from django.db import OperationalError, connection, transaction

from jobs.matching import Match
from jobs.models import Company, Job, JobSkill, JobStatus, SkillLevel
from jobs.tests.factories import (
    CompanyFactory,
    JobFactory,
    JobSkillFactory,
    TechnicianFactory,
    category,
    skill,
)
from routing.models import JobRouting, OutboxEvent, OutboxStatus, SyncStatus
from routing.services import create
from routing.tasks import relay_outbox
from tradeengage.db import new_objects_insert
from tradeengage.exceptions import BusinessRuleError

pytestmark = pytest.mark.django_db


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


def stored_jobs() -> list[tuple]:
    """Every job and its skills, without the clocks that differ from one write to the next."""
    job_columns = [
        field.attname
        for field in Job._meta.concrete_fields
        if field.attname not in {"id", "created_at", "updated_at"}
    ]
    return [
        (
            [getattr(job, column) for column in job_columns],
            sorted(job.required_skills.values_list("skill_id", "level")),
            job.created_at == job.updated_at,
        )
        for job in Job.objects.order_by("summary")
    ]


def new_job_with_skills(technician, summary: str, levels: list[int], job_id=None) -> list:
    job = JobFactory.build(
        id=job_id or uuid.uuid4(), summary=summary, created_by_technician=technician
    )
    return [
        job,
        *[
            JobSkill(job=job, skill=skill(slug), level=level)
            for slug, level in zip(["plumbing", "hvac"], levels, strict=False)
        ],
    ]


@pytest.mark.postgres
@pytest.mark.parametrize("routed", [True, False], ids=["with-routings", "no-routing"])
def test_a_new_job_and_its_skills_in_the_one_statement_are_stored_as_the_orm_stores_them(
    db, routed
):
    technician = TechnicianFactory()
    company = CompanyFactory()
    job_id = uuid.uuid4()  # the same in both writes, which the routings' rows name

    def write(one_statement: bool) -> None:
        along_with = new_job_with_skills(technician, "Fix a faucet", [1, 3], job_id)
        job = along_with[0]
        pairs = [(job, Match(company.id, "mock", 2.0, ["plumbing"]))] if routed else []
        if one_statement:
            rows = create.routing_rows(pairs) if pairs else None
            create.routing_rows_write_in_one_statement(rows, along_with=along_with)
        else:
            new_objects_insert(along_with)
            if pairs:
                create.routing_rows_write_per_table(create.routing_rows(pairs))
        assert not job._state.adding
        assert job.created_at is not None

    write(one_statement=True)
    in_one_statement = stored_jobs(), stored_routing_rows()
    JobRouting.objects.all().delete()
    OutboxEvent.objects.all().delete()
    Job.objects.all().delete()
    Company.objects.update(open_routing_count=0)
    write(one_statement=False)

    assert in_one_statement == (stored_jobs(), stored_routing_rows())
    assert len(in_one_statement[0]) == 1
    assert len(in_one_statement[1]) == (1 if routed else 0)


def test_routings_create_stores_the_objects_along_with_it_even_without_a_routing(db):
    along_with = new_job_with_skills(TechnicianFactory(), "No partner nearby", [2])

    assert create.routings_create(pairs=[], along_with=along_with) == []
    assert Job.objects.get().summary == "No partner nearby"
    assert JobSkill.objects.get().level == 2
    assert not JobRouting.objects.exists()


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


# The write, whatever the database


class DatabaseFailure(Exception):
    pass


def failing_writes_to(table: str):
    """An execute wrapper that fails any statement writing ``table`` as a lost connection would."""
    writes = re.compile(rf'\b(INSERT INTO|UPDATE) "?{table}"?\s')

    def wrapper(execute, sql, params, many, context):
        if writes.search(sql):
            raise DatabaseFailure("connection lost")
        return execute(sql, params, many, context)

    return wrapper


def test_routings_create_writes_a_routing_an_event_and_the_load_of_each_pair(settings):
    settings.SYNC_UNCONFIGURED_WITH_MOCK = True
    first, second = JobFactory(), JobFactory()
    busy = CompanyFactory(provider_type="servicetitan", open_routing_count=4)
    unconfigured = CompanyFactory(provider_type="")
    pairs = [
        (first, Match(busy.id, "servicetitan", 5.5, ["plumbing"], [], "Skills match: plumbing")),
        (second, Match(busy.id, "servicetitan", 3.0, ["hvac"], ["plumbing"], "Partial match")),
        (second, Match(unconfigured.id, "", 2.25, ["plumbing"], [], "Skills match")),
    ]

    ids = create.routings_create(pairs=pairs)

    routings = [JobRouting.objects.get(id=routing_id) for routing_id in ids]
    assert [
        (r.job_id, r.company_id, r.matching_score, r.matched_skills, r.missing_skills)
        for r in routings
    ] == [
        (first.id, busy.id, 5.5, ["plumbing"], []),
        (second.id, busy.id, 3.0, ["hvac"], ["plumbing"]),
        (second.id, unconfigured.id, 2.25, ["plumbing"], []),
    ]
    assert [r.match_reason for r in routings] == [m.reason for _, m in pairs]
    assert {(r.sync_status, r.retry_count, r.external_id) for r in routings} == {
        (SyncStatus.PENDING, 0, None)
    }
    for routing, (job, match) in zip(routings, pairs, strict=True):
        event = OutboxEvent.objects.get(aggregate_id=routing.id)
        assert (event.event_type, event.status, event.attempts) == ("job_sync", "pending", 0)
        assert event.event_data == OutboxEvent.job_sync_data(
            routing_id=routing.id,
            job_id=job.id,
            company_id=match.company_id,
            matching_score=match.score,
            matched_skills=match.matched_skills,
            provider_type=match.provider_type,
        )
    assert OutboxEvent.objects.get(aggregate_id=ids[2]).event_data["provider_type"] == "mock"
    assert Company.objects.get(id=busy.id).open_routing_count == 6
    assert Company.objects.get(id=unconfigured.id).open_routing_count == 1


def test_routings_create_writes_in_a_fixed_number_of_statements(django_assert_num_queries):
    job = JobFactory()
    companies = CompanyFactory.create_batch(5)
    pairs = [(job, Match(company.id, "mock", 2.0)) for company in companies]
    # PostgreSQL: one statement; elsewhere routings, events and one load update (each company
    # gains one routing, so one distinct change).
    statements = 1 if connection.vendor == "postgresql" else 3

    with django_assert_num_queries(statements):
        create.routings_create(pairs=pairs)

    assert JobRouting.objects.count() == 5


def test_routings_create_without_pairs_writes_nothing_and_kicks_nothing(
    django_assert_num_queries, django_capture_on_commit_callbacks
):
    with (
        django_assert_num_queries(0),
        django_capture_on_commit_callbacks(execute=False) as callbacks,
    ):
        assert create.routings_create(pairs=[]) == []

    assert callbacks == []


def test_routings_create_kicks_the_relay_once_its_transaction_commits(
    monkeypatch, django_capture_on_commit_callbacks
):
    kicks = []
    monkeypatch.setattr(relay_outbox, "apply_async", lambda **kwargs: kicks.append(kwargs))
    job = JobFactory()
    pairs = [(job, Match(company.id, "mock", 2.0)) for company in CompanyFactory.create_batch(3)]

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        create.routings_create(pairs=pairs)

    assert kicks == [], "nothing is enqueued before the transaction commits"
    for callback in callbacks:  # the kick, and the routings' count
        callback()
    assert kicks == [{"countdown": 1.0}]


@pytest.mark.parametrize("table", ["routing_jobrouting", "routing_outboxevent", "jobs_company"])
def test_a_failed_routing_write_leaves_no_routing_event_or_load(
    table, django_capture_on_commit_callbacks
):
    job = JobFactory()
    company = CompanyFactory(open_routing_count=2)

    with (
        connection.execute_wrapper(failing_writes_to(table)),
        django_capture_on_commit_callbacks(execute=False) as callbacks,
        pytest.raises(DatabaseFailure),
        transaction.atomic(),
    ):
        create.routings_create(pairs=[(job, Match(company.id, "mock", 2.0))])

    assert not JobRouting.objects.exists()
    assert not OutboxEvent.objects.exists()
    assert Company.objects.get(id=company.id).open_routing_count == 2
    assert callbacks == [], "the relay is not kicked for a write that rolled back"


# A manual route


def test_a_manual_route_to_a_company_routed_a_moment_ago_returns_that_routing(
    django_capture_on_commit_callbacks,
):
    """The route a concurrent request made between the caller's look and its write: the unique
    (job, company) constraint refuses the second, which writes nothing."""
    job = JobFactory()
    company = CompanyFactory(provider_type="mock")
    with transaction.atomic():
        [routing_id] = create.routings_create(pairs=[(job, Match(company.id, "mock", 2.0))])

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        routing = create.routing_route_manually(
            job=job, company_id=company.id, routed_by="ops key tests"
        )

    assert routing.id == routing_id
    assert JobRouting.objects.count() == OutboxEvent.objects.count() == 1
    assert Company.objects.get(id=company.id).open_routing_count == 1
    assert callbacks == []


def test_a_manual_route_explains_the_match_and_lists_missing_skills():
    job = JobFactory(category=category("plumbing"))
    JobSkillFactory(job=job, skill=skill("plumbing"), level=SkillLevel.BASIC)
    JobSkillFactory(job=job, skill=skill("electrical"), level=SkillLevel.BASIC)
    company = CompanyFactory(
        provider_type="mock",
        primary_category=category("plumbing"),
        service_areas=["IL"],
        skills={"plumbing": SkillLevel.INTERMEDIATE},
    )

    routing = create.routing_route_manually(
        job=job, company_id=company.id, routed_by="ops key tests", require_skills=False
    )

    assert (routing.job_id, routing.company_id) == (job.id, company.id)
    assert routing.routed_by == "ops key tests"
    # Half the coverage (1.0), plumbing a level above over two skills (0.125), the category
    # (0.5), its state (1.5).
    assert routing.matching_score == 3.12
    assert (routing.matched_skills, routing.missing_skills) == (["plumbing"], ["electrical"])
    assert routing.match_reason == (
        "Manual route through POST /jobs/{id}/sync; Skills match: plumbing intermediate (needs "
        "basic); missing: electrical not held (needs basic); category match; serves IL"
    )
    assert OutboxEvent.objects.get(aggregate_id=routing.id).status == OutboxStatus.PENDING
    assert Company.objects.get(id=company.id).open_routing_count == 1


@pytest.mark.parametrize(
    ("company", "message"),
    [
        (lambda job: CompanyFactory(is_active=False), "is not active or does not accept jobs"),
        (lambda job: CompanyFactory(accepts_jobs=False), "is not active or does not accept jobs"),
        (lambda job: job.created_by_company, "never routed to the company that requested it"),
    ],
    ids=["inactive", "not-accepting-jobs", "requester"],
)
def test_a_manual_route_to_a_company_that_may_not_receive_the_job_is_refused(company, message):
    job = JobFactory()

    with pytest.raises(BusinessRuleError, match=message):
        create.routing_route_manually(job=job, company_id=company(job).id, routed_by="ops")

    assert not JobRouting.objects.exists()


@pytest.mark.parametrize("status", [JobStatus.COMPLETED, JobStatus.CANCELLED])
def test_a_closed_job_takes_no_manual_route(status):
    job = JobFactory(status=status)

    with pytest.raises(BusinessRuleError, match="takes no new routings"):
        create.routing_route_manually(job=job, company_id=CompanyFactory().id, routed_by="ops")

    assert not JobRouting.objects.exists()


def test_a_manual_route_to_a_company_lacking_the_skills_is_refused_without_an_override():
    job = JobFactory()
    JobSkillFactory(job=job, skill=skill("plumbing"), level=SkillLevel.EXPERT)
    company = CompanyFactory(provider_type="mock", skills={"plumbing": SkillLevel.BASIC})

    with pytest.raises(BusinessRuleError, match=r"missing: plumbing\); only an ops key"):
        create.routing_route_manually(job=job, company_id=company.id, routed_by="company x")

    assert not JobRouting.objects.exists()

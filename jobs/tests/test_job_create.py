"""Job creation (``jobs.services.job_create``): all or nothing whichever write fails, its
transaction run again after a deadlock, and the relay kicked only once it commits. The routing
write itself is tested with its owner, in ``routing/tests/test_create.py``."""

import re
import uuid

import psycopg
import pytest
from django.db import OperationalError, connection

from jobs import services
from jobs.models import Job, JobSkill
from routing.models import JobRouting, OutboxEvent, OutboxStatus
from routing.tasks import relay_outbox

WRITTEN_MODELS = (Job, JobSkill, JobRouting, OutboxEvent)


class DatabaseFailure(Exception):
    pass


def create_job(payload: dict, **options) -> Job:
    """Call the service with a seed-000 request body, as the view does after validation."""
    return services.job_create(
        **options,
        summary=payload["summary"],
        address=payload["address"],
        homeowner=payload["homeowner"],
        created_by_company_id=payload["created_by_company_id"],
        created_by_technician_id=payload["created_by_technician_id"],
        skill_levels=payload["skill_levels"],
        category=payload["category"],
    )


def row_counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in WRITTEN_MODELS}


@pytest.fixture
def job_request(job_payload, plumbing_company, electrical_company):
    """The seed example as validated service arguments (UUIDs, one skill -> level mapping);
    only the plumbing company can take it."""
    payload = dict(job_payload)
    payload["created_by_company_id"] = uuid.UUID(job_payload["created_by_company_id"])
    payload["created_by_technician_id"] = uuid.UUID(job_payload["created_by_technician_id"])
    return payload


def failing(seen: dict):
    """A write that fails like a lost connection would, noting what the transaction had
    written up to that point so the test can tell the rollback really undid something."""

    def fail(*args, **kwargs):
        seen.update(row_counts())
        raise DatabaseFailure("connection lost")

    return fail


def failing_writes_to(table: str, seen: dict):
    """An execute wrapper that fails the first statement writing ``table`` as a lost connection
    would, whichever code sent it, after noting what the transaction had written so far."""
    writes = re.compile(rf'\b(INSERT INTO|UPDATE) "?{table}"?\s')
    fail = failing(seen)

    def wrapper(execute, sql, params, many, context):
        if writes.search(sql):
            fail()
        return execute(sql, params, many, context)

    return wrapper


# On PostgreSQL the job, its skills, its routings, their outbox events and the companies' load
# are one statement: nothing is written before it.
ONE_STATEMENT_WRITTEN_BEFORE: dict[str, int] = {}


@pytest.mark.parametrize(
    ("table", "written_before"),
    [
        pytest.param("jobs_jobskill", {"Job": 1}, id="job-skills"),
        pytest.param("routing_jobrouting", {"Job": 1, "JobSkill": 1}, id="routings"),
        pytest.param(
            "routing_outboxevent",
            {"Job": 1, "JobSkill": 1, "JobRouting": 1},
            id="outbox-events",
        ),
        pytest.param(
            "jobs_company",
            {"Job": 1, "JobSkill": 1, "JobRouting": 1, "OutboxEvent": 1},
            id="company-load",
        ),
    ],
)
def test_job_create_leaves_nothing_behind_when_a_write_fails(
    job_request, plumbing_company, table, written_before
):
    seen: dict[str, int] = {}

    with (
        connection.execute_wrapper(failing_writes_to(table, seen)),
        pytest.raises(DatabaseFailure),
    ):
        create_job(job_request)

    if connection.vendor == "postgresql":
        written_before = ONE_STATEMENT_WRITTEN_BEFORE
    assert {model: count for model, count in seen.items() if count} == written_before
    assert row_counts() == dict.fromkeys(row_counts(), 0)
    plumbing_company.refresh_from_db()
    assert plumbing_company.open_routing_count == 0


def test_what_on_created_raises_undoes_the_job_it_was_called_with(job_request, plumbing_company):
    """The hook runs last in the job's transaction (an Idempotency-Key's response is stored
    there): everything is written when it fails, and nothing is left after."""
    seen: dict[str, int] = {}
    fail = failing(seen)

    with pytest.raises(DatabaseFailure):
        create_job(job_request, on_created=lambda job: fail())

    assert seen == {"Job": 1, "JobSkill": 1, "JobRouting": 1, "OutboxEvent": 1}
    assert row_counts() == dict.fromkeys(row_counts(), 0)
    plumbing_company.refresh_from_db()
    assert plumbing_company.open_routing_count == 0


def test_job_create_stores_everything_when_nothing_fails(job_request, plumbing_company):
    job = create_job(job_request)

    assert row_counts() == {"Job": 1, "JobSkill": 1, "JobRouting": 1, "OutboxEvent": 1}
    assert JobRouting.objects.get().company_id == plumbing_company.id
    assert Job.objects.get().id == job.id


def clashing_routing_writes(times: int):
    """An execute wrapper that aborts the first ``times`` routing writes as PostgreSQL aborts a
    transaction caught in a deadlock."""
    clashes = {"left": times}

    def wrapper(execute, sql, params, many, context):
        if clashes["left"] and re.search(r'\bINSERT INTO "?routing_jobrouting"?\s', sql):
            clashes["left"] -= 1
            raise OperationalError("deadlock detected") from psycopg.errors.DeadlockDetected()
        return execute(sql, params, many, context)

    return wrapper


def test_job_create_runs_its_transaction_again_after_a_deadlock(
    job_request, plumbing_company, caplog
):
    with connection.execute_wrapper(clashing_routing_writes(times=2)):
        job = create_job(job_request)

    assert row_counts() == {"Job": 1, "JobSkill": 1, "JobRouting": 1, "OutboxEvent": 1}
    assert Job.objects.get().id == job.id
    plumbing_company.refresh_from_db()
    assert plumbing_company.open_routing_count == 1
    assert caplog.text.count("clashed with a concurrent write") == 2


def test_a_job_that_keeps_deadlocking_answers_409_and_stores_nothing(
    api_client, job_payload, plumbing_company
):
    with connection.execute_wrapper(clashing_routing_writes(times=services.JOB_CREATE_ATTEMPTS)):
        response = api_client.post("/api/v1/jobs/", job_payload, format="json")

    assert response.status_code == 409, response.content
    assert set(response.json()) == {"detail", "error_code", "timestamp"}
    assert response.json()["error_code"] == "CONFLICT"
    assert row_counts() == dict.fromkeys(row_counts(), 0)
    plumbing_company.refresh_from_db()
    assert plumbing_company.open_routing_count == 0


def test_job_create_kicks_the_outbox_relay_once_after_commit(
    monkeypatch, job_request, django_capture_on_commit_callbacks
):
    kicks = []
    monkeypatch.setattr(relay_outbox, "apply_async", lambda **kwargs: kicks.append(kwargs))

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        create_job(job_request)

    assert kicks == [], "nothing is enqueued before the transaction commits"
    for callback in callbacks:  # the kick, and the metrics' counts
        callback()
    assert kicks == [{"countdown": 1.0}]


def test_job_create_does_not_kick_the_relay_when_it_fails(
    job_request, django_capture_on_commit_callbacks
):
    with (
        connection.execute_wrapper(failing_writes_to("routing_outboxevent", {})),
        django_capture_on_commit_callbacks(execute=False) as callbacks,
        pytest.raises(DatabaseFailure),
    ):
        create_job(job_request)

    assert callbacks == []


def test_job_is_created_even_when_the_broker_is_down(
    monkeypatch, job_request, django_capture_on_commit_callbacks, caplog
):
    kicks = []

    def broker_down(**kwargs):
        kicks.append(kwargs)
        raise ConnectionRefusedError("broker unreachable")

    monkeypatch.setattr(relay_outbox, "apply_async", broker_down)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        job = create_job(job_request)

    assert callbacks
    assert kicks == [{"countdown": 1.0}], "the relay kick was attempted"
    assert Job.objects.filter(id=job.id).exists()
    assert OutboxEvent.objects.filter(status=OutboxStatus.PENDING).count() == 1
    assert "broker unreachable" in caplog.text


def test_relay_outbox_counts_the_events_of_a_new_job(job_request):
    create_job(job_request)

    assert relay_outbox() == 1


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_skill_removed_behind_the_cache_answers_409_and_stores_nothing(api_client, job_payload):
    """Deleted by plain SQL (no signal reaches the cache): the insert's foreign key catches it."""
    from django.db import connection

    from jobs.models import Skill
    from jobs.selectors import managed_lists

    Skill.objects.create(slug="solar_panels", name="Solar panels")
    managed_lists()
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM jobs_skill WHERE slug = %s", ["solar_panels"])
    job_payload["required_skills"] = ["solar_panels"]
    job_payload["skill_levels"] = {"solar_panels": "basic"}

    response = api_client.post("/api/v1/jobs/", job_payload, format="json")

    assert response.status_code == 409, response.content
    assert response.json()["error_code"] == "CONFLICT"
    assert row_counts() == dict.fromkeys(row_counts(), 0)
    assert "solar_panels" not in managed_lists()["skills"]

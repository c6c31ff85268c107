"""Idempotent job creation: ``Idempotency-Key`` on ``POST /api/v1/jobs/`` (access.idempotency)."""

import json
import threading
from datetime import timedelta
from unittest import mock

import pytest
from django.core.management import call_command
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from access.idempotency import idempotency_keys_purge
from access.models import ApiKey, IdempotencyKey
from access.tasks import purge_idempotency_keys
from jobs.matching import network_size
from jobs.models import Job
from jobs.selectors import managed_lists
from routing.models import JobRouting, OutboxEvent

pytestmark = pytest.mark.django_db

JOBS = "/api/v1/jobs/"
KEY = "4f1c8a52-7d6e-4c1b-9a0e-2b5d3f6e8c71"


def post(client, payload, key: str | None = KEY):
    headers = {} if key is None else {"Idempotency-Key": key}
    return client.post(JOBS, payload, format="json", headers=headers)


def stored_rows() -> dict[str, int]:
    return {
        "jobs": Job.objects.count(),
        "routings": JobRouting.objects.count(),
        "events": OutboxEvent.objects.count(),
    }


def key_id(key_text: str) -> str:
    return ApiKey.objects.get_from_key(key_text).id


def stored_key(api_key: str, key: str, *, created_at) -> IdempotencyKey:
    return IdempotencyKey.objects.create(
        api_key_id=key_id(api_key),
        key=key,
        fingerprint="f",
        created_at=created_at,
        response_status=201,
        response_body="{}",
    )


@pytest.fixture
def job_payload(job_payload, plumbing_company):
    """The seed example, with a company to route it to: a job writes a routing and an event."""
    return job_payload


def test_a_retry_with_the_same_key_and_body_replays_the_first_response_and_creates_nothing(
    api_client, job_payload
):
    first = post(api_client, job_payload)
    stored = stored_rows()

    retry = post(api_client, job_payload)

    assert first.status_code == 201, first.content
    assert "Idempotent-Replayed" not in first
    assert retry.status_code == 201
    assert retry["Idempotent-Replayed"] == "true"
    assert retry.content == first.content
    assert stored == {"jobs": 1, "routings": 1, "events": 1}
    assert stored_rows() == stored


def test_the_same_body_spaced_and_ordered_otherwise_is_the_same_request(api_client, job_payload):
    first = post(api_client, job_payload)
    reordered = json.dumps(dict(reversed(job_payload.items())), indent=2)

    retry = api_client.post(
        JOBS, reordered, content_type="application/json", headers={"Idempotency-Key": KEY}
    )

    assert retry.status_code == 201
    assert retry["Idempotent-Replayed"] == "true"
    assert retry.json() == first.json()
    assert Job.objects.count() == 1


def test_the_key_used_with_another_body_is_refused_with_422(api_client, job_payload):
    post(api_client, job_payload)

    response = post(api_client, {**job_payload, "summary": "Another job"})

    assert response.status_code == 422
    body = response.json()
    assert body["error_code"] == "VALIDATION_ERROR"
    assert "already used with another request" in body["detail"]
    assert body["errors"][0]["field"] == "Idempotency-Key"
    assert Job.objects.count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_request_still_in_progress_with_the_key_answers_409(ops_key, job_payload):
    """The first request is held inside its job transaction while the second arrives."""
    inside, finish = threading.Event(), threading.Event()
    first = []

    def hold_after_the_job_insert(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if 'INSERT INTO "jobs_job" (' in sql:
            inside.set()
            finish.wait(10)
        return result

    def first_request():
        client = APIClient()
        client.credentials(HTTP_X_API_KEY=ops_key)
        try:
            with connection.execute_wrapper(hold_after_the_job_insert):
                first.append(post(client, job_payload))
        finally:
            connection.close()

    thread = threading.Thread(target=first_request)
    thread.start()
    try:
        assert inside.wait(10)
        client = APIClient()
        client.credentials(HTTP_X_API_KEY=ops_key)
        second = post(client, job_payload)
    finally:
        finish.set()
        thread.join(30)

    assert second.status_code == 409
    assert second.json()["error_code"] == "CONFLICT"
    assert "still in progress" in second.json()["detail"]
    assert first[0].status_code == 201, first[0].content
    assert Job.objects.count() == 1
    retry = post(client, job_payload)
    assert retry["Idempotent-Replayed"] == "true"
    assert retry.content == first[0].content


def test_a_key_stored_by_another_request_meanwhile_undoes_this_one_and_replays_it(
    api_client, job_payload, monkeypatch
):
    """Found free, then taken before this request stored its job (another process's request
    committed in between): the unique index refuses the key, this request's job is rolled
    back, and the other's response is the answer."""
    first = post(api_client, job_payload)
    stored = stored_rows()
    real_stored = IdempotencyKey.objects.stored
    lookups = []

    def free_at_first(**kwargs):
        lookups.append(kwargs)
        return None if len(lookups) == 1 else real_stored(**kwargs)

    monkeypatch.setattr(IdempotencyKey.objects, "stored", free_at_first)
    retry = post(api_client, job_payload)

    assert len(lookups) == 2
    assert retry.status_code == 201
    assert retry["Idempotent-Replayed"] == "true"
    assert retry.content == first.content
    assert stored_rows() == stored == {"jobs": 1, "routings": 1, "events": 1}


@pytest.mark.postgres
def test_a_key_is_let_go_when_its_request_fails(api_client, job_payload):
    def failing_job_insert(execute, sql, params, many, context):
        if 'INSERT INTO "jobs_job" (' in sql:
            raise RuntimeError("database went away")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(failing_job_insert):
        assert post(api_client, job_payload).status_code == 500
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")
        assert cursor.fetchone()[0] == 0


@pytest.mark.postgres
def test_a_connection_that_cannot_let_go_of_a_key_is_closed(api_client, job_payload):
    """Else it would keep the key locked, and refuse it, for as long as it lives."""

    def failing_unlock(execute, sql, params, many, context):
        if "pg_advisory_unlock" in sql:
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)

    with (
        mock.patch.object(connection, "close") as close,
        connection.execute_wrapper(failing_unlock),
    ):
        response = post(api_client, job_payload)
    with connection.cursor() as cursor:  # what closing the connection would have done
        cursor.execute("SELECT pg_advisory_unlock_all()")

    assert response.status_code == 201, response.content
    close.assert_called_once()


def test_a_request_refused_as_malformed_stores_nothing_and_the_key_stays_free(
    api_client, job_payload
):
    refused = post(api_client, {**job_payload, "address": {"state": "Illinois"}})
    created = post(api_client, job_payload)

    assert refused.status_code == 422
    assert created.status_code == 201, created.content
    assert "Idempotent-Replayed" not in created


def test_a_request_refused_by_a_business_rule_stores_nothing_and_the_key_stays_free(
    api_client, job_payload, requesting_technician
):
    requesting_technician.is_active = False
    requesting_technician.save()

    refused = post(api_client, job_payload)
    assert IdempotencyKey.objects.count() == 0
    requesting_technician.is_active = True
    requesting_technician.save()
    created = post(api_client, job_payload)

    assert refused.status_code == 400
    assert created.status_code == 201, created.content
    assert "Idempotent-Replayed" not in created
    assert Job.objects.count() == 1


def test_a_request_failing_with_a_500_stores_nothing_and_the_key_stays_free(
    api_client, job_payload
):
    def failing_job_insert(execute, sql, params, many, context):
        if 'INSERT INTO "jobs_job" (' in sql:
            raise RuntimeError("database went away")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(failing_job_insert):
        failed = post(api_client, job_payload)
    assert IdempotencyKey.objects.count() == 0
    created = post(api_client, job_payload)

    assert failed.status_code == 500
    assert created.status_code == 201, created.content
    assert "Idempotent-Replayed" not in created
    assert stored_rows() == {"jobs": 1, "routings": 1, "events": 1}


def test_another_api_key_with_the_same_idempotency_key_creates_its_own_job(
    api_client, company_key, requesting_company, job_payload
):
    company_client = APIClient()
    company_client.credentials(HTTP_X_API_KEY=company_key(requesting_company))

    by_ops = post(api_client, job_payload)
    by_company = post(company_client, job_payload)

    assert by_ops.status_code == by_company.status_code == 201
    assert "Idempotent-Replayed" not in by_company
    assert by_ops.json()["id"] != by_company.json()["id"]
    assert Job.objects.count() == 2


@pytest.mark.parametrize("same_body", [True, False], ids=["same-body", "another-body"])
def test_a_key_older_than_a_day_is_ignored_and_replaced(api_client, job_payload, same_body):
    first = post(api_client, job_payload)
    day_old = timezone.now() - IdempotencyKey.KEPT_FOR
    IdempotencyKey.objects.update(created_at=day_old)
    payload = job_payload if same_body else {**job_payload, "summary": "Another job"}

    again = post(api_client, payload)

    assert again.status_code == 201, again.content
    assert "Idempotent-Replayed" not in again
    assert again.json()["id"] != first.json()["id"]
    assert Job.objects.count() == 2
    record = IdempotencyKey.objects.get()
    assert record.created_at > day_old
    assert json.loads(record.response_body)["id"] == again.json()["id"]


@pytest.mark.parametrize(
    "key",
    ["", "x" * 256, "clé", "tab\tinside", "line\x7f"],
    ids=["empty", "too-long", "non-ascii", "control", "delete"],
)
def test_a_malformed_key_is_refused_with_422_and_nothing_is_stored(api_client, job_payload, key):
    response = post(api_client, job_payload, key=key)

    assert response.status_code == 422
    body = response.json()
    assert body["error_code"] == "VALIDATION_ERROR"
    assert body["errors"] == [
        {"field": "Idempotency-Key", "message": "Must be 1 to 255 printable ASCII characters."}
    ]
    assert stored_rows() == {"jobs": 0, "routings": 0, "events": 0}
    assert IdempotencyKey.objects.count() == 0


@pytest.mark.parametrize("key", ["k", "~" * 255, 'a "quoted" key with spaces'])
def test_a_key_of_1_to_255_printable_ascii_characters_is_accepted(api_client, job_payload, key):
    assert post(api_client, job_payload, key=key).status_code == 201
    assert post(api_client, job_payload, key=key)["Idempotent-Replayed"] == "true"


def test_without_the_header_every_request_creates_a_job_and_keys_are_never_read(
    api_client, job_payload
):
    with CaptureQueriesContext(connection) as queries:
        first = post(api_client, job_payload, key=None)
        second = post(api_client, job_payload, key=None)

    assert first.status_code == second.status_code == 201
    assert Job.objects.count() == 2
    assert not [q for q in queries if "access_idempotencykey" in q["sql"]]


# Without the header job creation runs as before (jobs/tests/test_jobs_api.py bounds it). With
# it, a first request adds the lock and its release (PostgreSQL), the read that finds the key
# free and the insert that stores it in the job's transaction: 4. A replay runs 4: the API key,
# the lock, the read and the release.
FIRST_REQUEST_EXTRA_QUERIES = 4
REPLAY_QUERIES = 4


def test_a_key_adds_a_bounded_few_queries_and_a_replay_runs_only_a_few(
    api_client, job_payload, django_assert_max_num_queries
):
    managed_lists()
    network_size()
    api_client.get(f"{JOBS}?limit=1")  # the key's last use is recorded once a minute
    with CaptureQueriesContext(connection) as without_key:
        post(api_client, job_payload, key=None)

    with django_assert_max_num_queries(len(without_key) + FIRST_REQUEST_EXTRA_QUERIES):
        first = post(api_client, job_payload)
    with django_assert_max_num_queries(REPLAY_QUERIES):
        replay = post(api_client, job_payload)

    assert first.status_code == replay.status_code == 201
    assert replay["Idempotent-Replayed"] == "true"


def test_purge_deletes_only_keys_older_than_a_day(api_client, ops_key):
    now = timezone.now()
    for age, key in [(timedelta(hours=25), "old"), (timedelta(hours=23), "recent")]:
        stored_key(ops_key, key, created_at=now - age)

    assert idempotency_keys_purge(now=now) == 1
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["recent"]


def test_the_purge_task_and_command_delete_expired_keys(ops_key, capsys):
    old = timezone.now() - IdempotencyKey.KEPT_FOR - timedelta(minutes=1)
    for key in ["a", "b"]:
        stored_key(ops_key, key, created_at=old)

    assert purge_idempotency_keys() == 2
    stored_key(ops_key, "c", created_at=old)
    call_command("purge_idempotency_keys")

    assert "Deleted 1 expired idempotency key(s)." in capsys.readouterr().out
    assert IdempotencyKey.objects.count() == 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_requests_with_one_key_create_one_job(ops_key, job_payload):
    """Requests with one key racing on their own connections: the unique insert lets one
    through; each other one is told the key is in progress (409) or gets its response."""
    rounds, racers = 5, 4
    for round_number in range(rounds):
        key = f"race-{round_number}"
        start = threading.Barrier(racers)
        responses = []

        def race(key=key, start=start, responses=responses):
            client = APIClient()
            client.credentials(HTTP_X_API_KEY=ops_key)
            try:
                start.wait(10)
                response = post(client, job_payload, key=key)
                responses.append(
                    (response.status_code, response.get("Idempotent-Replayed"), response.json())
                )
            finally:
                connection.close()

        threads = [threading.Thread(target=race) for _ in range(racers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)

        assert len(responses) == racers
        created = [body for status, replayed, body in responses if status == 201 and not replayed]
        replayed = [body for status, replayed, body in responses if replayed == "true"]
        refused = [body for status, _, body in responses if status == 409]
        assert len(created) == 1, responses
        assert len(created) + len(replayed) + len(refused) == racers, responses
        assert all(body == created[0] for body in replayed)
        assert all(body["error_code"] == "CONFLICT" for body in refused)
        assert Job.objects.count() == round_number + 1
    assert IdempotencyKey.objects.filter(response_status=201).count() == rounds

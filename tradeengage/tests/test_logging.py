import json
import logging
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from routing.models import JobRouting, OutboxEvent
from routing.tests.in_process import relay
from tradeengage.logging import ConsoleFormatter, JsonFormatter, TaskArgumentsFilter, Throttled

pytestmark = pytest.mark.django_db


def request_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "tradeengage.request"]


def test_request_is_logged_as_one_json_line_with_its_correlation_id(client, caplog):
    caplog.set_level(logging.INFO, logger="tradeengage.request")

    client.get("/api/v1/health/live", headers={"X-Correlation-ID": "req-123"})

    (record,) = request_records(caplog)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "request"
    assert entry["level"] == "INFO"
    assert entry["method"] == "GET"
    assert entry["path"] == "/api/v1/health/live"
    assert entry["status_code"] == 200
    assert isinstance(entry["response_time_ms"], (int, float))
    assert entry["response_time_ms"] >= 0
    assert entry["correlation_id"] == "req-123"


def test_client_correlation_id_is_echoed(client):
    response = client.get("/api/v1/health/live", headers={"X-Correlation-ID": "trace-abc.42"})

    assert response["X-Correlation-ID"] == "trace-abc.42"


def test_a_request_id_is_honoured_when_no_correlation_id_is_sent(client):
    response = client.get("/api/v1/health/live", headers={"X-Request-ID": "lb-7f3a"})

    assert (response["X-Correlation-ID"], response["X-Request-ID"]) == ("lb-7f3a", "lb-7f3a")


def test_a_job_created_is_logged_as_seed_000_shows_with_its_job_and_score(
    api_client, job_payload, plumbing_company, caplog
):
    caplog.set_level(logging.INFO, logger="tradeengage.request")

    response = api_client.post(
        "/api/v1/jobs/", job_payload, format="json", headers={"X-Request-ID": "req-123"}
    )

    (record,) = request_records(caplog)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "Job created successfully"
    assert (entry["method"], entry["path"], entry["status_code"]) == ("POST", "/api/v1/jobs/", 201)
    assert entry["job_id"] == response.data["id"]
    routings = JobRouting.objects.filter(job_id=response.data["id"])
    assert entry["matching_score"] == max(r.matching_score for r in routings)
    assert entry["correlation_id"] == "req-123"
    # Stored with the job and its outbox events, for the syncs the request causes.
    events = OutboxEvent.objects.filter(aggregate_id__in=[r.id for r in routings])
    assert [e.event_data["correlation_id"] for e in events] == ["req-123"] * len(routings)


@pytest.mark.parametrize(
    "supplied",
    [pytest.param(None, id="none"), pytest.param("bad id\twith spaces", id="unsafe")],
)
def test_missing_or_unsafe_correlation_id_is_replaced_by_a_fresh_one(client, supplied):
    headers = {"X-Correlation-ID": supplied} if supplied else {}

    first = client.get("/api/v1/health/live", headers=headers)["X-Correlation-ID"]
    second = client.get("/api/v1/health/live", headers=headers)["X-Correlation-ID"]

    assert first.startswith("req-")
    assert first != second


def test_error_responses_are_logged_with_their_status(api_client, caplog):
    caplog.set_level(logging.INFO, logger="tradeengage.request")

    api_client.get("/api/v1/jobs/abc")

    (record,) = request_records(caplog)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["status_code"] == 404
    assert entry["path"] == "/api/v1/jobs/abc"
    assert entry["correlation_id"].startswith("req-")


def test_pages_outside_the_api_are_not_logged(client, caplog):
    caplog.set_level(logging.INFO, logger="tradeengage.request")

    response = client.get("/docs")

    assert response.status_code == 200
    assert response["X-Correlation-ID"]
    assert request_records(caplog) == []


def celery_line(logger: str, data: dict) -> logging.LogRecord:
    record = logging.LogRecord(
        logger, logging.INFO, __file__, 1, "Task %(name)s received", None, None
    )
    record.args = data  # as Celery logs it: the message's arguments and its ``data`` extra
    record.data = dict(data)
    return record


@pytest.mark.parametrize("logger", ["celery.worker.strategy", "celery.app.trace"])
def test_celerys_task_lines_keep_the_task_but_not_its_arguments(logger):
    data = {
        "id": "3b8a0fc9",
        "name": "routing.tasks.sync_outbox_events",
        "args": "[[2, 3, 5], '2026-11-30T01:44:26+00:00']",
        "kwargs": "{'secret': 'x'}",
        "return_value": "{'synced': 3}",
    }
    record = celery_line(logger, data)

    assert TaskArgumentsFilter().filter(record)

    assert record.data == {
        "id": "3b8a0fc9",
        "name": "routing.tasks.sync_outbox_events",
        "return_value": "{'synced': 3}",
    }
    for formatter in (ConsoleFormatter("%(message)s"), JsonFormatter()):
        line = formatter.format(record)
        assert "2026-11-30T01:44:26" not in line and "secret" not in line
        assert "routing.tasks.sync_outbox_events" in line


def test_other_loggers_data_is_left_alone():
    record = celery_line("routing", {"args": "kept"})

    TaskArgumentsFilter().filter(record)

    assert record.data == {"args": "kept"}


def test_a_full_flow_logs_no_contact_details_and_no_secret(
    company_key,
    requesting_company,
    plumbing_company,
    job_payload,
    caplog,
    settings,
    django_capture_on_commit_callbacks,
):
    """A job created with a company's key, routed and synced (one push refused, so errors are
    logged too), then read back: every line, formatted as production writes it, is searched."""
    plumbing_company.provider_settings = {"fail_first": 1}
    plumbing_company.provider_credentials = {"client_secret": "cs-very-secret-4821"}
    plumbing_company.save()
    key = company_key(requesting_company)
    homeowner = {
        "name": "Zebulon Quartermaine",
        "phone": "(555) 864-2097",
        "email": "zq@example.org",
    }
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=key)
    caplog.set_level(logging.DEBUG)

    with django_capture_on_commit_callbacks(execute=True):
        created = client.post(
            "/api/v1/jobs/", {**job_payload, "homeowner": homeowner}, format="json"
        )
    assert created.status_code == 201, created.content
    relay()
    relay(now=timezone.now() + timedelta(hours=1))
    client.get(f"/api/v1/jobs/{created.json()['id']}/routings")
    client.get("/api/v1/jobs/")

    lines = [JsonFormatter().format(record) for record in caplog.records]
    assert any('"Sync attempt"' in line for line in lines)
    secrets = [*homeowner.values(), key, key.partition(".")[2], "cs-very-secret-4821"]
    leaked = [(secret, line) for line in lines for secret in secrets if secret in line]
    assert leaked == []


def test_a_throttled_warning_is_logged_once_an_interval_then_says_how_many_it_held_back(
    caplog, monkeypatch
):
    clock = [100.0]
    monkeypatch.setattr("tradeengage.logging.time.monotonic", lambda: clock[0])
    throttled = Throttled(logging.getLogger("tests.throttled"), seconds=30)

    logged = [throttled.warning("Broker down") for _ in range(4)]
    clock[0] += 31
    logged.append(throttled.warning("Broker down"))

    assert logged == [True, False, False, False, True]
    assert [r.getMessage() for r in caplog.records if r.name == "tests.throttled"] == [
        "Broker down",
        "Broker down (3 more since the last such line)",
    ]

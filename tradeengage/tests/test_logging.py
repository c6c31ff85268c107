import json
import logging

import pytest

from tradeengage.logging import JsonFormatter

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

"""ServiceTitan's error answers and transport failures as typed provider errors. The answers are
real ``requests`` responses, served by ``responses``."""

import time

import pytest
import requests
import responses
from django.utils.http import http_date

from integrations.http import error_from_exception
from integrations.providers import PermanentProviderError, RetryableProviderError
from integrations.servicetitan.errors import (
    error_from_response,
    json_object,
    retry_after_seconds,
)

TENANT = "1234567"
API_URL = "https://api-integration.servicetitan.io"
BOOKINGS_PATH = f"/crm/v2/tenant/{TENANT}/booking-provider/89/bookings"
JOB_PATH = f"/jpm/v2/tenant/{TENANT}/jobs/7001"


@pytest.fixture
def http():
    with responses.RequestsMock() as mock:
        yield mock


def answer(http, path: str = JOB_PATH, **kwargs) -> requests.Response:
    http.get(API_URL + path, **kwargs)
    return requests.get(API_URL + path, timeout=1)


def test_400_problem_details_become_field_details(http):
    response = answer(
        http,
        BOOKINGS_PATH,
        status=400,
        json={
            "type": "https://tools.ietf.org/html/rfc7231#section-6.5.1",
            "title": "One or more validation errors occurred.",
            "status": 400,
            "traceId": "00-abc-def-00",
            "errors": {
                "Address.Zip": ["The Zip field is required."],
                "Contacts[0].Value": ["Invalid phone number.", "Too short."],
            },
        },
    )

    error = error_from_response(response, "POST", BOOKINGS_PATH)

    assert isinstance(error, PermanentProviderError)
    assert error.code == "Validation Error"
    assert error.details == [
        {"field": "Address.Zip", "message": "The Zip field is required.", "value": None},
        {"field": "Contacts[0].Value", "message": "Invalid phone number.", "value": None},
        {"field": "Contacts[0].Value", "message": "Too short.", "value": None},
    ]
    message = str(error)
    assert message.startswith(f"ServiceTitan POST {BOOKINGS_PATH}: ")
    assert "HTTP 400 One or more validation errors occurred." in message
    assert "Address.Zip: The Zip field is required." in message


def test_a_field_error_given_as_one_string_is_one_detail(http):
    response = answer(
        http, status=422, json={"title": "Unprocessable", "errors": {"Name": "Too long."}}
    )

    error = error_from_response(response, "GET", JOB_PATH)

    assert error.code == "Validation Error"
    assert error.details == [{"field": "Name", "message": "Too long.", "value": None}]


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (401, "Authentication Failed"),
        (403, "Authentication Failed"),
        (404, "Not Found"),
        (409, "Conflict"),
        (410, "Request Rejected"),
    ],
)
def test_client_errors_are_permanent_with_their_code(http, status, code):
    problem = {"title": code, "status": status, "detail": "Job 7001 is not there"}
    response = answer(http, status=status, json=problem)

    error = error_from_response(response, "GET", JOB_PATH)

    assert isinstance(error, PermanentProviderError)
    assert error.code == code
    assert f"HTTP {status} {code}: Job 7001 is not there" in str(error)


def test_429_with_retry_after_seconds_is_rate_limited(http):
    response = answer(
        http,
        status=429,
        headers={"Retry-After": "17"},
        json={"title": "Too Many Requests", "status": 429},
    )

    error = error_from_response(response, "GET", JOB_PATH)

    assert isinstance(error, RetryableProviderError)
    assert error.code == "Rate Limited"
    assert error.retry_after == 17.0
    assert "HTTP 429" in str(error)


def test_429_with_retry_after_as_http_date_is_rate_limited(http):
    response = answer(http, status=429, headers={"Retry-After": http_date(time.time() + 120)})

    error = error_from_response(response, "GET", JOB_PATH)

    assert isinstance(error, RetryableProviderError)
    assert error.code == "Rate Limited"
    assert 118 <= error.retry_after <= 120


@pytest.mark.parametrize(
    ("header", "seconds"),
    [(None, None), ("", None), ("-5", 0.0), ("soon", None), (http_date(time.time() - 60), 0.0)],
)
def test_retry_after_that_is_missing_past_or_unreadable(http, header, seconds):
    headers = {} if header is None else {"Retry-After": header}

    assert retry_after_seconds(answer(http, status=429, headers=headers)) == seconds


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retryable(http, status):
    response = answer(http, status=status, json={"title": "Server Error", "status": status})

    error = error_from_response(response, "GET", JOB_PATH)

    assert isinstance(error, RetryableProviderError)
    assert error.code == "Service Unavailable"
    assert f"HTTP {status} Server Error" in str(error)


def test_503_keeps_its_retry_after(http):
    response = answer(http, status=503, headers={"Retry-After": "30"})

    assert error_from_response(response, "GET", JOB_PATH).retry_after == 30.0


def test_408_is_a_retryable_timeout(http):
    error = error_from_response(answer(http, status=408), "GET", JOB_PATH)

    assert isinstance(error, RetryableProviderError)
    assert error.code == "Timeout"


def test_non_json_error_body_still_gives_a_clear_message(http):
    response = answer(
        http,
        status=502,
        body="<html>\n<body><h1>502 Bad Gateway</h1></body>\n</html>",
        content_type="text/html",
    )

    error = error_from_response(response, "GET", JOB_PATH)

    assert isinstance(error, RetryableProviderError)
    assert str(error) == (
        f"ServiceTitan GET {JOB_PATH}: HTTP 502 Bad Gateway: "
        "<html> <body><h1>502 Bad Gateway</h1></body> </html>"
    )


def test_empty_error_body_says_so(http):
    error = error_from_response(answer(http, status=404, body=""), "GET", JOB_PATH)

    assert str(error) == f"ServiceTitan GET {JOB_PATH}: HTTP 404 Not Found: (empty body)"


@pytest.mark.parametrize(
    ("exc", "retryable", "code", "message"),
    [
        (requests.exceptions.ReadTimeout("timed out"), True, "Timeout", "no answer within 10 s"),
        (requests.exceptions.ConnectTimeout("connect timed out"), True, "Timeout", "no answer"),
        (
            requests.exceptions.ConnectionError("Connection refused"),
            True,
            "Service Unavailable",
            "connection failed: Connection refused",
        ),
        (
            requests.exceptions.MissingSchema("No scheme supplied"),
            False,
            "Configuration Error",
            "the configured URL is invalid",
        ),
        (
            requests.exceptions.ChunkedEncodingError("Connection broken"),
            True,
            "Service Unavailable",
            "ChunkedEncodingError: Connection broken",
        ),
    ],
)
def test_transport_failures_are_typed(exc, retryable, code, message):
    error = error_from_exception(
        exc, vendor="ServiceTitan", method="GET", path=JOB_PATH, timeout=10.0
    )

    assert error.retryable is retryable
    assert error.code == code
    assert str(error).startswith(f"ServiceTitan GET {JOB_PATH}: ")
    assert message in str(error)


def test_empty_success_body_is_an_empty_object(http):
    assert json_object(answer(http, body=""), "GET", JOB_PATH) == {}


@pytest.mark.parametrize(
    "answered",
    [
        {"body": "<html>maintenance</html>", "content_type": "text/html"},
        {"json": [{"id": 7001}]},
    ],
)
def test_success_body_that_is_not_a_json_object_is_retryable(http, answered):
    with pytest.raises(RetryableProviderError) as raised:
        json_object(answer(http, **answered), "GET", JOB_PATH)

    assert raised.value.code == "Invalid Response"
    assert f"ServiceTitan GET {JOB_PATH}: HTTP 200" in str(raised.value)

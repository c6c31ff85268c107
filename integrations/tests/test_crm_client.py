"""The CRM API client against seed 002's HTTP contract, served by ``responses``: the OAuth
token (form-encoded, cached and shared between clients, refreshed once on a 401), pagination,
every error class, and the deprecation warning."""

import logging
import time
from email.utils import formatdate
from urllib.parse import parse_qs

import pytest
import requests
import responses
from responses import matchers

from integrations.crm import client as crm_client
from integrations.crm.client import CrmClient, crm_config
from integrations.providers import (
    PermanentProviderError,
    ProviderNotConfigured,
    RetryableProviderError,
)

API_URL = "https://crm.example.com/api/v2"
TOKEN_URL = f"{API_URL}/oauth/token"
CLIENT_SECRET = "crm-client-secret"
OPTIONS = {"api_url": API_URL, "client_id": "te-client", "client_secret": CLIENT_SECRET}


@pytest.fixture(autouse=True)
def _deprecations_forgotten(monkeypatch):
    monkeypatch.setattr(crm_client, "_deprecations_logged", set())


@pytest.fixture
def http():
    with responses.RequestsMock() as mock:
        yield mock


def client() -> CrmClient:
    return CrmClient(crm_config(OPTIONS))


def add_token(http, token="token-1", expires_in=3600):
    return http.post(TOKEN_URL, json={"access_token": token, "expires_in": expires_in})


def test_the_token_is_fetched_form_encoded_and_sent_as_bearer(http):
    token = add_token(http)
    call = http.get(
        f"{API_URL}/work-orders/456",
        json={"id": "456"},
        match=[matchers.header_matcher({"Authorization": "Bearer token-1"})],
    )

    assert client().work_order_get("456") == {"id": "456"}

    request = token.calls[0].request
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(request.body) == {
        "grant_type": ["client_credentials"],
        "client_id": ["te-client"],
        "client_secret": [CLIENT_SECRET],
    }
    assert call.call_count == 1


def test_the_token_is_cached_and_shared_between_clients(http):
    token = add_token(http)
    http.get(f"{API_URL}/work-orders/456", json={"id": "456"})

    client().work_order_get("456")
    client().work_order_get("456")

    assert token.call_count == 1


def test_a_token_near_its_expiry_is_not_cached(http):
    token = add_token(http, expires_in=30)
    http.get(f"{API_URL}/work-orders/456", json={"id": "456"})

    client().work_order_get("456")
    client().work_order_get("456")

    assert token.call_count == 2


def test_a_401_refreshes_the_token_once_and_succeeds(http):
    http.post(TOKEN_URL, json={"access_token": "stale", "expires_in": 3600})
    http.post(TOKEN_URL, json={"access_token": "fresh", "expires_in": 3600})
    http.get(
        f"{API_URL}/work-orders/456",
        status=401,
        json={"error": "unauthorized", "detail": "Token expired", "hint": ""},
        match=[matchers.header_matcher({"Authorization": "Bearer stale"})],
    )
    http.get(
        f"{API_URL}/work-orders/456",
        json={"id": "456"},
        match=[matchers.header_matcher({"Authorization": "Bearer fresh"})],
    )

    assert client().work_order_get("456") == {"id": "456"}


def test_a_second_401_is_permanent(http):
    token = add_token(http)
    http.get(
        f"{API_URL}/work-orders/456",
        status=401,
        json={"error": "unauthorized", "detail": "Invalid token", "hint": "Fetch a new one"},
    )

    with pytest.raises(PermanentProviderError) as raised:
        client().work_order_get("456")

    assert raised.value.code == "Authentication Failed"
    assert "Invalid token" in str(raised.value)
    assert token.call_count == 2


def test_refused_credentials_are_permanent_and_never_echo_the_secret(http):
    http.post(
        TOKEN_URL,
        status=401,
        json={"error": "invalid_client", "detail": "Unknown client", "hint": ""},
    )

    with pytest.raises(PermanentProviderError) as raised:
        client().work_order_get("456")

    assert raised.value.code == "Authentication Failed"
    assert CLIENT_SECRET not in str(raised.value)


def test_missing_credentials_are_not_configured():
    with pytest.raises(ProviderNotConfigured, match="client_secret"):
        CrmClient(crm_config({"api_url": API_URL, "client_id": "te-client"}))


def test_timeouts_are_always_a_connect_and_read_pair(http, monkeypatch):
    add_token(http)
    http.get(f"{API_URL}/work-orders/456", json={"id": "456"})
    seen = []
    original = requests.Session.request

    def request(self, method, url, **kwargs):
        seen.append(kwargs["timeout"])
        return original(self, method, url, **kwargs)

    monkeypatch.setattr(requests.Session, "request", request)

    CrmClient(crm_config({**OPTIONS, "timeout_seconds": 7})).work_order_get("456")

    assert seen == [(3.05, 7.0), (3.05, 7.0)]


def test_a_list_is_followed_to_its_last_page(http):
    add_token(http)
    for page in (1, 2, 3):
        http.get(
            f"{API_URL}/invoices/",
            json={
                "items": [{"id": f"inv-{page}"}],
                "total": 3,
                "page": page,
                "page_size": 1,
                "total_pages": 3,
            },
            match=[
                matchers.query_param_matcher(
                    {"customer_id": "123", "page": str(page), "page_size": "100"}
                )
            ],
        )

    invoices = client().invoices_for_customer("123")

    assert [invoice["id"] for invoice in invoices] == ["inv-1", "inv-2", "inv-3"]


def test_a_list_without_total_pages_is_followed_by_its_total(http):
    add_token(http)
    for page in (1, 2):
        http.get(
            f"{API_URL}/invoices/",
            json={"items": [{"id": f"inv-{page}"}], "total": 2, "page": page, "page_size": 1},
            match=[matchers.query_param_matcher({"page": str(page)}, strict_match=False)],
        )

    assert len(client().invoices_for_customer("123")) == 2


def error_for(http, status, *, body=None, headers=None, method="GET"):
    add_token(http)
    kwargs = {"status": status, "headers": headers or {}}
    if isinstance(body, str):
        kwargs["body"] = body
    else:
        kwargs["json"] = body
    http.add(method, f"{API_URL}/work-orders/456", **kwargs)
    with pytest.raises((PermanentProviderError, RetryableProviderError)) as raised:
        client().work_order_get("456")
    return raised.value


SEED_ERROR = {
    "error": "validation_error",
    "detail": "Invalid email format",
    "hint": "Email must be a valid email address",
}


@pytest.mark.parametrize(
    ("status", "code"),
    [(400, "Validation Error"), (422, "Validation Error"), (404, "Not Found"), (403, "Forbidden")],
)
def test_client_errors_are_permanent_with_detail_and_hint(http, status, code):
    error = error_for(http, status, body=SEED_ERROR)

    assert not error.retryable
    assert error.code == code
    assert "Invalid email format" in str(error)
    assert "hint: Email must be a valid email address" in str(error)


def test_a_429_honours_retry_after_seconds(http):
    error = error_for(http, 429, body={"error": "rate_limited"}, headers={"Retry-After": "17"})

    assert error.retryable
    assert error.code == "Rate Limited"
    assert error.retry_after == 17


def test_a_429_honours_retry_after_as_an_http_date(http):
    when = formatdate(time.time() + 120, usegmt=True)

    error = error_for(http, 429, body={"error": "rate_limited"}, headers={"Retry-After": when})

    assert error.retryable
    assert 110 <= error.retry_after <= 121


def test_a_429_without_retry_after_waits_until_the_rate_limit_reset(http):
    reset = str(int(time.time()) + 42)

    error = error_for(
        http, 429, body={"error": "rate_limited"}, headers={"X-RateLimit-Reset": reset}
    )

    assert error.retryable
    assert 40 <= error.retry_after <= 43


def test_a_500_is_retryable(http):
    error = error_for(http, 500, body={"error": "internal", "detail": "Boom", "hint": ""})

    assert error.retryable
    assert error.code == "Service Unavailable"
    assert "Boom" in str(error)


def test_a_non_json_error_body_is_quoted(http):
    error = error_for(http, 502, body="<html>Bad gateway</html>")

    assert error.retryable
    assert "<html>Bad gateway</html>" in str(error)


def test_a_non_json_success_body_is_retryable(http):
    error = error_for(http, 200, body="<html>Maintenance</html>")

    assert error.retryable
    assert error.code == "Invalid Response"


def test_a_timeout_is_retryable(http):
    add_token(http)
    http.get(f"{API_URL}/work-orders/456", body=requests.ReadTimeout("read timed out"))

    with pytest.raises(RetryableProviderError) as raised:
        client().work_order_get("456")

    assert raised.value.code == "Timeout"


def test_a_connection_error_is_retryable(http):
    http.post(TOKEN_URL, body=requests.ConnectionError("connection refused"))

    with pytest.raises(RetryableProviderError) as raised:
        client().work_order_get("456")

    assert raised.value.code == "Service Unavailable"


def test_a_deprecated_endpoint_is_warned_about_once(http, caplog):
    add_token(http)
    deprecation = {
        "Deprecation": "true",
        "Sunset": "Sat, 01 Mar 2025 00:00:00 GMT",
        "Link": '<https://crm.example.com/api/v3/work-orders>; rel="successor-version"',
    }
    http.get(f"{API_URL}/work-orders/456", json={"id": "456"}, headers=deprecation)
    http.get(f"{API_URL}/work-orders/789", json={"id": "789"}, headers=deprecation)
    http.get(f"{API_URL}/invoices/", json={"items": [], "total": 0}, headers=deprecation)

    with caplog.at_level(logging.WARNING, logger="integrations.crm"):
        crm = client()
        crm.work_order_get("456")
        crm.work_order_get("789")
        client().work_order_get("456")
        crm.invoices_for_customer("123")

    warnings = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert warnings == [
        "CRM endpoint GET /work-orders/{id} is deprecated (sunset Sat, 01 Mar 2025 00:00:00 GMT, "
        'successor <https://crm.example.com/api/v3/work-orders>; rel="successor-version")',
        "CRM endpoint GET /invoices/ is deprecated (sunset Sat, 01 Mar 2025 00:00:00 GMT, "
        'successor <https://crm.example.com/api/v3/work-orders>; rel="successor-version")',
    ]


def test_health_reports_a_fresh_token_and_never_raises(http):
    add_token(http)
    http.post(TOKEN_URL, status=503, body="down")

    crm = client()
    assert crm.get_health_status()["status"] == "healthy"
    unhealthy = crm.get_health_status()

    assert unhealthy["status"] == "unhealthy"
    assert unhealthy["authenticated"] is False
    assert "503" in unhealthy["error"]

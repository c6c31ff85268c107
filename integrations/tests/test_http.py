"""The HTTP pieces every vendor client shares."""

import json
import time

import pytest
import redis
import requests
from django.core.cache import cache
from django.utils.http import http_date

from integrations.http import (
    SharedToken,
    json_object,
    retry_after_header,
    shared_state,
    token_entry,
)
from integrations.providers import PermanentProviderError, RetryableProviderError


def answer(*, status=200, body: bytes = b"", headers=None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body
    response.headers.update(headers or {})
    return response


def test_a_shared_token_is_fetched_once_and_forgotten_only_when_it_is_the_one_that_failed():
    fetched = []

    def fetch():
        fetched.append(f"token-{len(fetched) + 1}")
        return {"access_token": fetched[-1], "expires_at": time.time() + 900}

    token = SharedToken("test:http:token", holds="a test token", fetch=fetch)
    cache.delete("test:http:token")

    assert token.entry()["access_token"] == token.entry()["access_token"] == "token-1"
    token.forget("token-0")  # another process's older token: the cached one stays
    assert token.entry()["access_token"] == "token-1"
    token.forget("token-1")
    assert token.entry()["access_token"] == "token-2"
    assert token.entry(fresh=True)["access_token"] == "token-3"
    assert fetched == ["token-1", "token-2", "token-3"]


def test_a_token_expiring_within_the_margin_is_not_cached():
    fetched = []

    def fetch():
        fetched.append(1)
        return {"access_token": "short", "expires_at": time.time() + 30}

    token = SharedToken("test:http:short", holds="a test token", fetch=fetch)
    cache.delete("test:http:short")
    token.entry()
    token.entry()

    assert len(fetched) == 2


def test_redis_failing_under_the_shared_state_is_a_retryable_provider_error():
    expected = "Redis, which holds the CRM token, failed"
    with pytest.raises(RetryableProviderError, match=expected), shared_state("the CRM token"):
        raise redis.ConnectionError("refused")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("7", 7.0), ("-3", 0.0), ("", None), ("soon", None)],
)
def test_retry_after_is_read_as_seconds(value, expected):
    headers = {"Retry-After": value} if value else {}
    assert retry_after_header(answer(status=429, headers=headers)) == expected


def test_retry_after_is_read_as_an_http_date():
    waited = retry_after_header(
        answer(status=429, headers={"Retry-After": http_date(time.time() + 120)})
    )
    assert 115 <= waited <= 120


@pytest.mark.parametrize("body", [b"<html>proxy error</html>", b"[1, 2]"])
def test_a_success_whose_body_is_no_json_object_is_retryable_naming_the_vendor(body):
    with pytest.raises(RetryableProviderError, match="CRM GET /work-orders/1: HTTP 200"):
        json_object(answer(body=body), vendor="CRM", method="GET", path="/work-orders/1")


def test_an_empty_success_is_an_empty_object():
    assert json_object(answer(body=b""), vendor="CRM", method="PUT", path="/x") == {}


def refused(response, method, path):
    raise AssertionError("not an error answer")


@pytest.mark.parametrize(("expires_in", "lifetime"), [(120, 120), ("soon", 900), (None, 900)])
def test_a_token_answer_takes_its_lifetime_or_the_default(expires_in, lifetime):
    body = b'{"access_token": "t", "expires_in": %s}' % (
        b"null" if expires_in is None else json.dumps(expires_in).encode()
    )
    entry = token_entry(
        answer(body=body),
        vendor="ServiceTitan",
        client_id="c",
        path="/connect/token",
        error_from_response=refused,
        default_lifetime_seconds=900,
    )

    assert entry["access_token"] == "t"
    assert lifetime - 5 <= entry["expires_at"] - time.time() <= lifetime


def test_refused_credentials_are_permanent_with_the_servers_reason():
    with pytest.raises(PermanentProviderError, match="The CRM refused the credentials of client c"):
        token_entry(
            answer(status=401, body=b'{"error": "invalid_client"}'),
            vendor="The CRM",
            client_id="c",
            path="/oauth/token",
            error_from_response=refused,
            default_lifetime_seconds=3600,
        )

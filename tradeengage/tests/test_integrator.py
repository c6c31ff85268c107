"""Seed 003's contract on the endpoints it documents (/api/v1/ingestion/, /api/v1/matching/):
success ``{"success": true, "data"}``, errors ``{"success": false, "error": {"code", "message"}}``
with seed 003's codes for 401, 403, 429 and 503 and seed 000's for the rest, however the error
arises: in a view, in authentication, in the rate limiter, or in Django's own 404 handler."""

import pytest
from django.core.exceptions import RequestDataTooBig
from django.db import OperationalError, connection
from rest_framework import exceptions
from rest_framework.test import APIClient

from access.models import Scope
from access.ratelimit import Policy, RateLimitExceeded, Usage
from jobs.models import Company
from jobs.tests.factories import CompanyFactory
from tradeengage.exceptions import (
    BusinessRuleError,
    ConflictError,
    InvalidInput,
    NotFoundError,
    integrator_body,
    integrator_exception_handler,
    renderer_for_path,
    servicetitan_body,
    v1_body,
)
from tradeengage.integrator import integrator_response
from tradeengage.schema import IntegratorErrorSerializer

MATCHING = "/api/v1/matching/jobs"


def answered(exc) -> tuple[int, dict, object]:
    response = integrator_exception_handler(exc, {})
    return response.status_code, response.data, response


def not_authenticated():
    exc = exceptions.NotAuthenticated("Invalid or missing API key")
    exc.auth_header = 'Api-Key realm="api"'
    return exc


def throttled():
    policy = Policy("requests", 60, 60, "the limit is 60 requests a minute for this API key")
    return RateLimitExceeded(Usage(policy=policy, used=60, reset_at=0, seconds_left=42))


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (not_authenticated(), 401, "INVALID_API_KEY"),
        (exceptions.AuthenticationFailed("Invalid or missing API key"), 401, "INVALID_API_KEY"),
        (
            exceptions.PermissionDenied("This key lacks the profile scope."),
            403,
            "PERMISSION_DENIED",
        ),
        (throttled(), 429, "RATE_LIMIT_EXCEEDED"),
        (OperationalError("server closed the connection"), 503, "SERVICE_UNAVAILABLE"),
        (NotFoundError("Job 7 not found."), 404, "NOT_FOUND"),
        (ConflictError("Sent twice."), 409, "CONFLICT"),
        (exceptions.MethodNotAllowed("DELETE"), 405, "METHOD_NOT_ALLOWED"),
        (RuntimeError("boom"), 500, "INTERNAL_ERROR"),
    ],
    ids=[
        "not-authenticated",
        "bad-key",
        "permission",
        "rate-limit",
        "outage",
        "not-found",
        "conflict",
        "method",
        "unexpected",
    ],
)
def test_every_error_answers_in_seed_003s_envelope_with_its_code(exc, status, code):
    answered_status, body, _ = answered(exc)

    assert answered_status == status
    assert body["success"] is False
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert IntegratorErrorSerializer(data=body).is_valid(), body


def test_a_rate_limit_says_retry_after_in_the_body_and_the_header():
    status, body, response = answered(throttled())

    assert (status, body["error"]["retry_after"], response["Retry-After"]) == (429, 42, "42")
    assert body["error"]["message"].startswith("Too many requests: the limit is 60 requests")


def test_an_outage_says_when_to_send_it_again():
    status, body, response = answered(OperationalError("server closed the connection"))

    assert status == 503
    assert body["error"]["retry_after"] == int(response["Retry-After"])


def test_a_validation_error_is_422_with_each_fields_error_in_details():
    status, body, _ = answered(
        exceptions.ValidationError({"job_ids": ["This list may not be empty."], "x": ["Bad."]})
    )

    assert status == 422
    assert body["error"] == {
        "code": "VALIDATION_ERROR",
        "message": "Request validation failed (2 errors)",
        "details": [
            {"field": "job_ids", "message": "This list may not be empty."},
            {"field": "x", "message": "Bad."},
        ],
    }


def test_one_field_error_is_the_message_itself():
    _, body, _ = answered(InvalidInput({"skip": ["Must be at least 0."]}))

    assert body["error"]["message"] == "skip: Must be at least 0."


def test_a_broken_business_rule_is_400_naming_its_field():
    status, body, _ = answered(BusinessRuleError("No such company.", field="company_id"))

    assert (status, body["error"]["code"], body["error"]["message"]) == (
        400,
        "VALIDATION_ERROR",
        "No such company.",
    )
    assert body["error"]["details"] == [{"field": "company_id", "message": "No such company."}]


def test_a_body_too_large_is_413():
    status, body, _ = answered(RequestDataTooBig("too big"))

    assert (status, body["error"]["code"], body["error"]["details"]) == (
        413,
        "VALIDATION_ERROR",
        [],
    )


def test_errors_without_field_errors_or_a_wait_carry_neither():
    _, body, _ = answered(NotFoundError("Job 7 not found."))

    assert body == {"success": False, "error": {"code": "NOT_FOUND", "message": "Job 7 not found."}}


@pytest.mark.parametrize(
    ("path", "renderer"),
    [
        ("/api/v1/ingestion/jobs", integrator_body),
        ("/api/v1/ingestion/5", integrator_body),
        ("/api/v1/matching/jobs", integrator_body),
        ("/api/v1/matching/nope", integrator_body),
        ("/api/v1/jobs/", v1_body),
        ("/api/v1/jobs/5/matches", v1_body),
        ("/api/v1/matchingx", v1_body),
        ("/api/integrations/servicetitan/jobs", servicetitan_body),
    ],
)
def test_seed_003s_paths_answer_in_its_contract_and_the_rest_of_v1_in_seed_000s(path, renderer):
    assert renderer_for_path(path) is renderer


def test_a_success_is_wrapped_in_the_envelope():
    response = integrator_response({"matches": []}, status=202)

    assert (response.status_code, response.data) == (
        202,
        {"success": True, "data": {"matches": []}},
    )


# Through the stack, on a real seed-003 endpoint


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE"])
@pytest.mark.parametrize("path", ["/api/v1/matching/nope", "/api/v1/ingestion/jobs/nope/more"])
def test_an_unknown_path_under_seed_003s_prefixes_answers_in_its_shape(client, method, path):
    response = client.generic(method, path, "{}", content_type="application/json")

    assert response.status_code == 404
    assert response.json() == {
        "success": False,
        "error": {"code": "NOT_FOUND", "message": f"No route for {path}"},
    }


@pytest.mark.django_db
def test_no_key_is_401_invalid_api_key(anonymous_client):
    response = anonymous_client.post(MATCHING, {"job_ids": ["x"]}, format="json")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "INVALID_API_KEY"
    assert response["WWW-Authenticate"]


@pytest.mark.django_db
def test_an_unknown_key_is_401_invalid_api_key():
    client = APIClient()
    client.credentials(HTTP_X_API_KEY="te_nope.wrong")

    response = client.post(MATCHING, {"job_ids": ["x"]}, format="json")

    assert response.status_code == 401
    assert response.json() == {
        "success": False,
        "error": {"code": "INVALID_API_KEY", "message": "Invalid or missing API key"},
    }


@pytest.mark.django_db
def test_a_key_without_the_scope_is_403_permission_denied(company_key):
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=company_key(CompanyFactory(), scopes=[Scope.JOBS_READ]))

    response = client.put("/api/v1/matching/profile", {}, format="json")

    assert response.status_code == 403
    assert response.json()["error"] == {
        "code": "PERMISSION_DENIED",
        "message": "This key lacks the profile scope.",
    }


@pytest.mark.django_db
def test_a_keys_spent_limit_is_429_with_retry_after(company_key, settings):
    settings.RATE_LIMIT_PLAN_OVERRIDE = "free"
    settings.RATE_LIMIT_PLANS = {
        **settings.RATE_LIMIT_PLANS,
        "free": {**settings.RATE_LIMIT_PLANS["free"], "requests_per_minute": 1},
    }
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=company_key(CompanyFactory()))

    assert client.get("/api/v1/matching/profile").status_code == 200
    response = client.get("/api/v1/matching/profile")

    assert response.status_code == 429
    error = response.json()["error"]
    assert error["code"] == "RATE_LIMIT_EXCEEDED"
    assert error["retry_after"] == int(response["Retry-After"]) > 0
    assert response["X-RateLimit-Limit"] == "1"


@pytest.mark.django_db
def test_guessing_keys_past_the_address_limit_is_429_with_retry_after(settings):
    settings.RATE_LIMIT_ANONYMOUS_PER_MINUTE = 1
    client = APIClient()
    client.credentials(HTTP_X_API_KEY="te_nope.wrong")

    assert client.post(MATCHING, {"job_ids": ["x"]}, format="json").status_code == 401
    response = client.post(MATCHING, {"job_ids": ["x"]}, format="json")

    assert response.status_code == 429
    error = response.json()["error"]
    assert (error["code"], error["retry_after"]) == (
        "RATE_LIMIT_EXCEEDED",
        int(response["Retry-After"]),
    )


@pytest.mark.django_db
def test_malformed_json_is_422_validation_error(company_key):
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=company_key(CompanyFactory()))

    response = client.post(MATCHING, "{not json", content_type="application/json")

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert error["details"][0]["message"].startswith("Malformed JSON body")


@pytest.mark.django_db
def test_a_method_the_endpoint_lacks_is_405(company_key):
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=company_key(CompanyFactory()))

    response = client.delete(MATCHING)

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


@pytest.mark.django_db
def test_a_database_outage_is_503_service_unavailable(company_key):
    """The database goes away after the key was read: reading the company fails at the
    driver."""
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=company_key(CompanyFactory()))
    company_table = Company._meta.db_table

    def refuse_company_reads(execute, sql, params, many, context):
        if f'FROM "{company_table}"' in sql:
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(refuse_company_reads):
        response = client.get("/api/v1/matching/profile")

    assert response.status_code == 503
    error = response.json()["error"]
    assert (error["code"], error["retry_after"]) == (
        "SERVICE_UNAVAILABLE",
        int(response["Retry-After"]),
    )


# What /openapi.json says about it


@pytest.fixture
def schema(client):
    return client.get("/openapi.json").json()


def component(schema: dict, content: dict) -> dict:
    return schema["components"]["schemas"][content["application/json"]["schema"]["$ref"][21:]]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/api/v1/matching/jobs", "post"),
        ("/api/v1/matching/profile", "get"),
        ("/api/v1/matching/profile", "put"),
    ],
)
def test_the_schema_documents_the_envelope_and_every_error_in_seed_003s_shape(schema, path, method):
    responses = schema["paths"][path][method]["responses"]

    success = component(schema, responses["200"]["content"])
    assert set(success["properties"]) == {"success", "data"}
    for status in ("401", "403", "429"):
        error = component(schema, responses[status]["content"])
        assert set(error["properties"]) == {"success", "error"}, status
    detail = schema["components"]["schemas"]["IntegratorErrorDetail"]
    assert {"code", "message", "details", "retry_after"} == set(detail["properties"])
    assert "INVALID_API_KEY" in str(schema["components"]["schemas"])

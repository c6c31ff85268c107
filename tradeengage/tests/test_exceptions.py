"""The error contracts: the classifier from an exception to a ``Problem``, and each contract's
answer to it (seed 000 on /api/v1, seed 001 on /api/integrations/servicetitan, seed 004 on the
rest of /api)."""

import json
import logging
from datetime import datetime

import pytest
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import OperationalError, connection
from django.http import Http404
from django.test import RequestFactory
from rest_framework import exceptions

from integrations.providers import PermanentProviderError, RetryableProviderError
from jobs.models import Job
from tradeengage import exceptions as error_contract
from tradeengage.exceptions import (
    ERROR_CODES,
    BusinessRuleError,
    ConflictError,
    InvalidInput,
    NotFoundError,
    Problem,
    api_exception_handler,
    classify,
    flatten_errors,
    json_bad_request,
    json_server_error,
    processing_exception_handler,
    servicetitan_exception_handler,
)
from tradeengage.schema import ErrorSerializer


class DeadlockCause(Exception):
    sqlstate = "40P01"


def lock_conflict() -> OperationalError:
    error = OperationalError("deadlock detected")
    error.__cause__ = DeadlockCause()
    return error


def v1(exc):
    response = api_exception_handler(exc, {})
    return response.status_code, response.data, response


def servicetitan(exc):
    response = servicetitan_exception_handler(exc, {})
    return response.status_code, response.data, response


def processing(exc):
    response = processing_exception_handler(exc, {})
    return response.status_code, response.data, response


# The one flattener


def test_nested_errors_flatten_to_dotted_paths_with_non_field_errors_on_their_parent():
    detail = {
        "address": {"state": ["Unknown state."], "non_field_errors": ["Address incomplete."]},
        "items": [{}, {"zip": ["Five digits."]}],
        "non_field_errors": ["Start must be before end."],
    }

    assert flatten_errors(detail) == [
        {"field": "address.state", "message": "Unknown state.", "value": None},
        {"field": "address", "message": "Address incomplete.", "value": None},
        {"field": "items.1.zip", "message": "Five digits.", "value": None},
        {"field": None, "message": "Start must be before end.", "value": None},
    ]


def test_flattening_echoes_submitted_top_level_scalar_values_only():
    detail = {"zip": ["Five digits."], "tags": ["Not a list."], "address": {"state": ["Bad."]}}
    data = {"zip": "8500", "tags": {"a": 1}, "address": {"state": "Arizona"}}

    assert [error["value"] for error in flatten_errors(detail, data=data)] == [
        "8500",
        None,
        None,
    ]


# The classifier


def test_a_drf_validation_error_is_malformed_input_summarised_by_each_contract():
    problem = classify(exceptions.ValidationError({"zip": ["Five digits."]}))

    assert problem == Problem(
        422, "VALIDATION_ERROR", None, [{"field": "zip", "message": "Five digits.", "value": None}]
    )


def test_a_django_validation_error_is_malformed_input():
    problem = classify(DjangoValidationError({"email": ["Enter a valid email address."]}))

    assert (problem.status, problem.code) == (422, "VALIDATION_ERROR")
    assert problem.errors == [
        {"field": "email", "message": "Enter a valid email address.", "value": None}
    ]


@pytest.mark.parametrize(
    ("exc", "message"),
    [
        (exceptions.ParseError("Expecting value"), "Malformed JSON body: Expecting value"),
        (
            exceptions.UnsupportedMediaType("text/plain"),
            'Unsupported media type "text/plain" in request. Send Content-Type: application/json.',
        ),
    ],
    ids=["parse-error", "unsupported-media-type"],
)
def test_unreadable_input_is_malformed_input_with_one_error(exc, message):
    problem = classify(exc)

    assert (problem.status, problem.code, problem.message) == (422, "VALIDATION_ERROR", message)
    assert problem.errors == [{"field": None, "message": message, "value": None}]


def test_a_business_rule_error_is_400_naming_its_field():
    problem = classify(BusinessRuleError("No such company.", field="company_id"))

    assert (problem.status, problem.code, problem.message) == (
        400,
        "VALIDATION_ERROR",
        "No such company.",
    )
    assert problem.errors == [{"field": "company_id", "message": "No such company.", "value": None}]


def test_a_conflict_error_is_409():
    assert classify(ConflictError("Sent twice.")) == Problem(409, "CONFLICT", "Sent twice.")


def test_a_transaction_aborted_by_a_concurrent_one_is_409_and_logged(caplog):
    problem = classify(lock_conflict())

    assert (problem.status, problem.code) == (409, "CONFLICT")
    assert "send it again" in problem.message
    assert "Transaction aborted by a concurrent one" in caplog.text


@pytest.mark.parametrize(
    ("exc", "message"),
    [
        (NotFoundError("Job 7 not found."), "Job 7 not found."),
        (exceptions.NotFound(), "Not found."),
        (Http404("No Job matches the given query."), "Not found."),
    ],
    ids=["not-found-error", "drf-not-found", "http404"],
)
def test_not_found_is_404_without_revealing_django_internals(exc, message):
    assert classify(exc) == Problem(404, "NOT_FOUND", message)


def test_a_body_over_the_upload_limit_is_413():
    assert classify(RequestDataTooBig("too big")) == Problem(
        413, "VALIDATION_ERROR", "Request body is too large."
    )


def test_a_suspicious_request_is_400_not_500():
    assert classify(SuspiciousOperation("Too many fields")) == Problem(
        400, "VALIDATION_ERROR", "Bad request."
    )


def test_throttling_is_429_with_retry_after():
    problem = classify(exceptions.Throttled(wait=7))

    assert (problem.status, problem.code) == (429, "RATE_LIMIT_EXCEEDED")
    assert problem.headers == {"Retry-After": "7"}


def test_failed_authentication_is_401_with_the_views_www_authenticate():
    exc = exceptions.AuthenticationFailed("Invalid or missing API key")
    exc.auth_header = "API-Key"

    assert classify(exc) == Problem(
        401, "UNAUTHORIZED", "Invalid or missing API key", headers={"WWW-Authenticate": "API-Key"}
    )


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (exceptions.PermissionDenied(), "FORBIDDEN"),
        (exceptions.MethodNotAllowed("PUT"), "METHOD_NOT_ALLOWED"),
        (exceptions.NotAcceptable(), "NOT_ACCEPTABLE"),
    ],
)
def test_other_api_exceptions_keep_their_status_with_its_code(exc, code):
    problem = classify(exc)

    assert (problem.status, problem.code, problem.message) == (
        exc.status_code,
        code,
        str(exc.detail),
    )


def test_a_permanent_provider_error_answers_with_the_status_of_its_code():
    details = [{"field": "email", "message": "Customer exists.", "value": "error@test.com"}]
    exc = PermanentProviderError(
        "Customer already exists", code="Customer Conflict", details=details
    )

    assert classify(exc) == Problem(
        409, "CONFLICT", "Customer already exists", details, title="Customer Conflict"
    )


def test_a_provider_error_without_a_known_code_is_a_400_error():
    problem = classify(PermanentProviderError("Rejected"))

    assert (problem.status, problem.code, problem.title) == (400, "VALIDATION_ERROR", "Error")


@pytest.mark.parametrize(
    ("retry_after", "header", "code", "title"),
    [(12.7, "12", "Rate Limited", "Rate Limited"), (None, "5", "", "Service Unavailable")],
)
def test_a_retryable_provider_error_is_503_with_retry_after(retry_after, header, code, title):
    problem = classify(RetryableProviderError("Try later", retry_after=retry_after, code=code))

    assert (problem.status, problem.code, problem.title) == (503, "SERVICE_UNAVAILABLE", title)
    assert problem.headers == {"Retry-After": header}


def test_an_unexpected_error_is_500_and_logged_with_its_traceback(caplog):
    try:
        raise KeyError("boom")
    except KeyError as exc:
        problem = classify(exc)

    assert problem == Problem(500, "INTERNAL_ERROR", "An unexpected error occurred.")
    [record] = [r for r in caplog.records if r.name == "tradeengage.api"]
    assert record.levelno == logging.ERROR
    assert record.exc_info[0] is KeyError


def test_every_v1_error_code_is_documented():
    assert set(ERROR_CODES.values()) | {"ERROR"} <= set(
        ErrorSerializer().fields["error_code"].choices
    )


# Seed 000 (/api/v1)


def test_v1_names_the_one_validation_error_in_its_detail():
    status, body, _ = v1(exceptions.ValidationError({"address": {"state": ["Unknown state."]}}))

    assert status == 422
    assert set(body) == {"detail", "error_code", "timestamp", "errors"}
    assert body["detail"] == "address.state: Unknown state."
    assert body["errors"] == [{"field": "address.state", "message": "Unknown state."}]
    datetime.fromisoformat(body["timestamp"])


def test_v1_counts_several_validation_errors():
    status, body, _ = v1(exceptions.ValidationError({"zip": ["Bad."], "state": ["Bad."]}))

    assert (status, body["detail"]) == (422, "Request validation failed (2 errors)")
    assert len(body["errors"]) == 2


def test_v1_malformed_json_is_422_with_the_parser_message():
    status, body, _ = v1(exceptions.ParseError("Expecting value"))

    assert (status, body["detail"]) == (422, "Malformed JSON body: Expecting value")
    assert body["errors"] == [{"field": None, "message": "Malformed JSON body: Expecting value"}]


def test_v1_business_rule_is_400_with_its_field_error():
    status, body, _ = v1(BusinessRuleError("No such company.", field="company_id"))

    assert (status, body["detail"], body["error_code"]) == (
        400,
        "No such company.",
        "VALIDATION_ERROR",
    )
    assert body["errors"] == [{"field": "company_id", "message": "No such company."}]


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (ConflictError("Sent twice."), 409, "CONFLICT"),
        (lock_conflict(), 409, "CONFLICT"),
        (NotFoundError("Job 7 not found."), 404, "NOT_FOUND"),
        (exceptions.MethodNotAllowed("PUT"), 405, "METHOD_NOT_ALLOWED"),
    ],
    ids=["conflict", "lock-conflict", "not-found", "method-not-allowed"],
)
def test_v1_errors_other_than_validation_carry_no_field_errors(exc, status, code):
    answered, body, _ = v1(exc)

    assert (answered, body["error_code"]) == (status, code)
    assert set(body) == {"detail", "error_code", "timestamp"}


def test_v1_too_large_is_413_validation_error():
    status, body, _ = v1(RequestDataTooBig("too big"))

    assert (status, body["error_code"], body["errors"]) == (413, "VALIDATION_ERROR", [])


def test_v1_rate_limit_and_authentication_headers():
    _, body, response = v1(exceptions.Throttled(wait=3))
    assert (body["error_code"], response["Retry-After"]) == ("RATE_LIMIT_EXCEEDED", "3")
    assert body["retry_after"] == 3

    exc = exceptions.NotAuthenticated()
    exc.auth_header = "API-Key"
    status, body, response = v1(exc)
    assert (status, body["error_code"], response["WWW-Authenticate"]) == (
        401,
        "UNAUTHORIZED",
        "API-Key",
    )


def test_v1_unexpected_error_is_500_internal_error():
    status, body, _ = v1(RuntimeError("boom"))

    assert (status, body["error_code"], body["detail"]) == (
        500,
        "INTERNAL_ERROR",
        "An unexpected error occurred.",
    )


# Seed 001 (/api/integrations/servicetitan)


def test_servicetitan_validation_is_400_invalid_input_data_with_values():
    exc = InvalidInput({"zip": ["Five digits."], "state": ["Two letters."]}, data={"zip": "8500"})

    status, body, _ = servicetitan(exc)

    assert status == 400
    assert body == {
        "success": False,
        "error": "Validation Error",
        "message": "Invalid input data",
        "details": [
            {"field": "zip", "message": "Five digits.", "value": "8500"},
            {"field": "state", "message": "Two letters.", "value": None},
        ],
    }


def test_servicetitan_malformed_json_is_a_400_validation_error():
    status, body, _ = servicetitan(exceptions.ParseError("Expecting value"))

    assert (status, body["error"], body["message"]) == (
        400,
        "Validation Error",
        "Malformed JSON body: Expecting value",
    )


def test_servicetitan_unsupported_media_type_is_a_400_validation_error():
    status, body, _ = servicetitan(exceptions.UnsupportedMediaType("text/plain"))

    assert (status, body["error"]) == (400, "Validation Error")
    assert "Send Content-Type: application/json." in body["message"]


def test_servicetitan_provider_error_keeps_its_name_status_and_details():
    details = [{"field": "zip", "message": "Outside the service area.", "value": "00000"}]
    exc = PermanentProviderError(
        "Service area not supported", code="Service Area Not Supported", details=details
    )

    status, body, _ = servicetitan(exc)

    assert status == 422
    assert body == {
        "success": False,
        "error": "Service Area Not Supported",
        "message": "Service area not supported",
        "details": details,
    }


def test_servicetitan_outage_is_503_with_retry_after():
    status, body, response = servicetitan(RetryableProviderError("Down", retry_after=2))

    assert (status, body["error"], response["Retry-After"]) == (503, "Service Unavailable", "2")


@pytest.mark.parametrize(
    ("exc", "status", "error"),
    [
        (NotFoundError("Job 7 not found"), 404, "Not Found"),
        (ConflictError("Sent twice."), 409, "Conflict"),
        (lock_conflict(), 409, "Conflict"),
        (RequestDataTooBig("too big"), 413, "Validation Error"),
        (BusinessRuleError("Not allowed."), 400, "Validation Error"),
        (exceptions.MethodNotAllowed("PUT"), 405, "Method Not Allowed"),
        (RuntimeError("boom"), 500, "Internal Error"),
    ],
    ids=[
        "not-found",
        "conflict",
        "lock-conflict",
        "too-large",
        "business-rule",
        "method-not-allowed",
        "unexpected",
    ],
)
def test_servicetitan_other_errors_are_envelopes_named_by_their_code(exc, status, error):
    answered, body, _ = servicetitan(exc)

    assert (answered, body["success"], body["error"]) == (status, False, error)
    assert body["message"]
    assert isinstance(body["details"], list)


# Seed 004 (/api/health, /api/process-client, /api/job-status, /api/process-retry-queue)


def test_processing_validation_is_422_with_every_field_in_the_detail():
    exc = exceptions.ValidationError({"client_id": ["Required."], "run_date": ["Bad date."]})

    status, body, _ = processing(exc)

    assert (status, body) == (422, {"detail": "client_id: Required.; run_date: Bad date."})


def test_processing_malformed_json_is_422():
    assert processing(exceptions.ParseError("Expecting value"))[:2] == (
        422,
        {"detail": "Malformed JSON body: Expecting value"},
    )


def test_processing_keeps_www_authenticate_on_401():
    exc = exceptions.AuthenticationFailed("Invalid or missing API key")
    exc.auth_header = "API-Key"

    status, body, response = processing(exc)

    assert (status, body) == (401, {"detail": "Invalid or missing API key"})
    assert response["WWW-Authenticate"] == "API-Key"


@pytest.mark.parametrize(
    ("exc", "status", "detail"),
    [
        (BusinessRuleError("Client is not active."), 400, "Client is not active."),
        (NotFoundError("Job 7 not found."), 404, "Job 7 not found."),
        (ConflictError("Sent twice."), 409, "Sent twice."),
        (RequestDataTooBig("too big"), 413, "Request body is too large."),
        (RuntimeError("boom"), 500, "An unexpected error occurred."),
    ],
    ids=["business-rule", "not-found", "conflict", "too-large", "unexpected"],
)
def test_processing_errors_are_a_detail(exc, status, detail):
    assert processing(exc)[:2] == (status, {"detail": detail})


def test_processing_lock_conflict_is_409():
    status, body, _ = processing(lock_conflict())

    assert status == 409
    assert set(body) == {"detail"}


# Django's error handlers choose the contract by path


@pytest.mark.parametrize(
    ("path", "keys"),
    [
        ("/api/v1/jobs/", {"detail", "error_code", "timestamp"}),
        ("/api/integrations/servicetitan/jobs", {"success", "error", "message", "details"}),
        ("/api/process-client", {"detail"}),
        ("/admin/", {"detail", "error_code", "timestamp"}),
    ],
)
def test_a_server_error_answers_500_in_the_paths_contract(path, keys):
    response = json_server_error(RequestFactory().get(path))

    assert response.status_code == 500
    assert set(json.loads(response.content)) == keys


def test_a_request_too_large_for_a_plain_django_view_is_413():
    request = RequestFactory().post("/api/process-client")

    response = json_bad_request(request, RequestDataTooBig("too big"))

    assert (response.status_code, json.loads(response.content)) == (
        413,
        {"detail": "Request body is too large."},
    )


def test_a_bad_request_without_an_exception_is_400():
    response = json_bad_request(RequestFactory().get("/api/v1/jobs/"))

    assert response.status_code == 400
    assert json.loads(response.content)["error_code"] == "VALIDATION_ERROR"


def unavailable_log_reset():
    """The outage warning is throttled per process; each test starts a fresh interval."""
    error_contract._unavailable_log.reset()


def database_down(execute, sql, params, many, context):
    """An execute wrapper answering every statement as a database that went away does."""
    raise OperationalError("server closed the connection unexpectedly")


@pytest.mark.django_db
def test_a_database_outage_answers_503_with_retry_after_and_logs_one_warning(
    api_client, job_payload, caplog
):
    unavailable_log_reset()
    caplog.set_level(logging.INFO, logger="tradeengage.api")

    with connection.execute_wrapper(database_down):
        responses = [
            api_client.post("/api/v1/jobs/", job_payload, format="json") for _ in range(3)
        ] + [api_client.get("/api/v1/jobs/")]

    assert [r.status_code for r in responses] == [503, 503, 503, 503]
    body = responses[0].json()
    assert set(body) == {"detail", "error_code", "timestamp"}
    assert body["error_code"] == "SERVICE_UNAVAILABLE"
    assert responses[0]["Retry-After"] == "5"
    records = [r for r in caplog.records if r.name == "tradeengage.api"]
    assert [(r.levelname, r.exc_info) for r in records] == [("WARNING", None)]
    assert "server closed the connection unexpectedly" in records[0].getMessage()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # nor Django's
    assert Job.objects.count() == 0


def test_a_lock_conflict_is_still_409_not_an_outage():
    assert classify(lock_conflict()).status == 409

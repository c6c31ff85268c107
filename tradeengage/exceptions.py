"""The API's error contracts (DESIGN.md "Contracts"): one classifier from an exception to a
``Problem``, and one renderer per contract that turns a ``Problem`` into that contract's body.

- v1 (seed 000 "Error Handling", ``/api/v1/``): ``{"detail", "error_code", "timestamp"}``, plus
  ``errors: [{"field", "message"}]`` on a ``VALIDATION_ERROR`` and seed 003's ``retry_after``
  (seconds) on a 429 ``RATE_LIMIT_EXCEEDED``.
- ServiceTitan (seed 001, ``/api/integrations/servicetitan/``): ``{"success": false, "error",
  "message", "details": [{"field", "message", "value"}]}``; malformed input is 400.
- integrator (seed 003 "Error Handling", ``/api/v1/ingestion/`` and ``/api/v1/matching/``):
  ``{"success": false, "error": {"code", "message"}}`` with seed 003's codes where it names one
  (``INVALID_API_KEY`` 401, ``PERMISSION_DENIED`` 403, ``RATE_LIMIT_EXCEEDED`` 429,
  ``SERVICE_UNAVAILABLE`` 503) and seed 000's for the rest; ``retry_after`` (seconds) beside a
  ``Retry-After`` header, and ``details: [{"field", "message"}]`` on a ``VALIDATION_ERROR``.
- processing (seed 004, the rest of ``/api/``): ``{"detail"}``.

Malformed input is 422 (400 in seed 001), a broken business rule 400, and nothing a client sends
produces a 500.
"""

import logging
from abc import ABCMeta, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from django.core.exceptions import BadRequest, RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import set_rollback

from tradeengage.db import is_database_unavailable, is_lock_conflict
from tradeengage.logging import Throttled

logger = logging.getLogger("tradeengage.api")

UNEXPECTED_ERROR = "An unexpected error occurred."
# A database outage answers 503 with this Retry-After, and logs one line per interval.
UNAVAILABLE_RETRY_AFTER_SECONDS = 5
_unavailable_log = Throttled(logger, seconds=30)

# Seed 000's error codes by HTTP status, for errors that carry only a status.
ERROR_CODES = {
    400: "VALIDATION_ERROR",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    409: "CONFLICT",
    413: "VALIDATION_ERROR",
    415: "VALIDATION_ERROR",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMIT_EXCEEDED",  # seed 003's name; seed 000 names none
    500: "INTERNAL_ERROR",
    503: "SERVICE_UNAVAILABLE",
}


def code_for_status(status: int) -> str:
    return ERROR_CODES.get(status, "ERROR")


@dataclass(frozen=True)
class Problem:
    """What went wrong, in no contract's shape.

    ``code`` is seed 000's error code. ``errors`` are field errors as ``{field, message,
    value}``. ``message`` is None when a contract should summarise ``errors`` its own way.
    ``title`` is the error's own name in seed 001's envelope ("Customer Conflict"), for errors
    that have one; such a problem keeps its status there too.
    """

    status: int
    code: str
    message: str | None = None
    errors: list[dict] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    title: str | None = None


class ProblemError(Exception, metaclass=ABCMeta):
    """An exception that knows how it is answered: the classifier asks it for its ``problem()``."""

    @abstractmethod
    def problem(self) -> Problem: ...


class BusinessRuleError(ProblemError):
    """A well-formed request that breaks a business rule (unknown company, wrong technician)."""

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field

    def problem(self) -> Problem:
        errors = [{"field": self.field, "message": self.message, "value": None}]
        return Problem(400, "VALIDATION_ERROR", self.message, errors)


class NotFoundError(ProblemError):
    """A resource named by the request does not exist."""

    def problem(self) -> Problem:
        return Problem(404, "NOT_FOUND", str(self) or "Not found.")


class ConflictError(ProblemError):
    """The request clashed with a concurrent change; sending it again may succeed."""

    def problem(self) -> Problem:
        return Problem(409, "CONFLICT", str(self))


class InvalidInput(ProblemError):
    """Field errors of input a view validated itself (a query string, one item of a batch),
    with the offending values echoed as seed 001 does."""

    def __init__(self, detail, *, data=None):
        super().__init__("Invalid input data")
        self.errors = flatten_errors(detail, data=data)

    def problem(self) -> Problem:
        return Problem(422, "VALIDATION_ERROR", None, self.errors)


def flatten_errors(detail, *, data: Mapping | None = None) -> list[dict]:
    """DRF's nested error detail as a flat list of ``{field, message, value}``.

    ``field`` is a dotted path (``address.state``, ``bookings.0.zip``); non-field errors belong
    to the enclosing path (None at the top). ``value`` is the submitted top-level scalar value
    of ``field`` in ``data``, else None.
    """
    return [
        {"field": path, "message": message, "value": _submitted_value(data, path)}
        for path, message in _error_paths(detail, None)
    ]


def _error_paths(detail, path: str | None) -> Iterator[tuple[str | None, str]]:
    if isinstance(detail, dict):
        for key, value in detail.items():
            if key in (api_settings.NON_FIELD_ERRORS_KEY, "__all__"):
                yield from _error_paths(value, path)
            else:
                yield from _error_paths(value, _joined(path, str(key)))
    elif isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            for item in detail:
                yield path, str(item)
        else:
            for index, item in enumerate(detail):
                yield from _error_paths(item, _joined(path, str(index)))
    else:
        yield path, str(detail)


def _joined(path: str | None, key: str) -> str:
    return f"{path}.{key}" if path else key


def _submitted_value(data: Mapping | None, path: str | None):
    if path is None or not isinstance(data, Mapping) or path not in data:
        return None
    value = data[path]
    return value if isinstance(value, (str, int, float, bool)) else None


def classify(exc: BaseException) -> Problem:
    """The ``Problem`` an exception raised while answering a request stands for. Anything not
    recognised is a 500, logged with its traceback."""
    if isinstance(exc, ProblemError):
        return exc.problem()
    if isinstance(exc, exceptions.ValidationError):
        return Problem(422, "VALIDATION_ERROR", None, flatten_errors(exc.detail))
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else exc.messages
        return Problem(422, "VALIDATION_ERROR", None, flatten_errors(detail))
    if isinstance(exc, exceptions.ParseError):
        return _malformed(f"Malformed JSON body: {exc.detail}")
    if isinstance(exc, exceptions.UnsupportedMediaType):
        return _malformed(f"{exc.detail} Send Content-Type: application/json.")
    if is_lock_conflict(exc):
        logger.warning("Transaction aborted by a concurrent one: %s", exc)
        message = "The request clashed with a concurrent change and was undone; send it again."
        return Problem(409, "CONFLICT", message)
    if is_database_unavailable(exc):
        _unavailable_log.warning("Database unavailable, answered 503: %s", str(exc).strip())
        return Problem(
            503,
            "SERVICE_UNAVAILABLE",
            "The database is unavailable; send the request again shortly (with an "
            "Idempotency-Key, a retry never creates a second job).",
            headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER_SECONDS)},
        )
    if isinstance(exc, Http404):
        return Problem(404, "NOT_FOUND", "Not found.")
    if isinstance(exc, RequestDataTooBig):
        return Problem(413, "VALIDATION_ERROR", "Request body is too large.")
    if isinstance(exc, (SuspiciousOperation, BadRequest, MultiPartParserError)):
        logger.warning("Bad request: %s", exc)
        return Problem(400, "VALIDATION_ERROR", "Bad request.")
    if isinstance(exc, exceptions.APIException):
        headers = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
        status = exc.status_code
        return Problem(status, code_for_status(status), str(exc.detail), headers=headers)
    logger.error("Unexpected %s answered with a 500", type(exc).__name__, exc_info=exc)
    return Problem(500, "INTERNAL_ERROR", UNEXPECTED_ERROR)


def _malformed(message: str) -> Problem:
    errors = [{"field": None, "message": message, "value": None}]
    return Problem(422, "VALIDATION_ERROR", message, errors)


Renderer = Callable[[Problem], tuple[int, dict]]


def v1_body(problem: Problem) -> tuple[int, dict]:
    """Seed 000: a validation error's ``detail`` is its one error, or a count of them."""
    detail = problem.message
    if detail is None:
        detail = _validation_summary(problem.errors)
    body = {
        "detail": detail,
        "error_code": problem.code,
        "timestamp": timezone.now().isoformat(),
    }
    if problem.code == "VALIDATION_ERROR":
        body["errors"] = [
            {"field": error["field"], "message": error["message"]} for error in problem.errors
        ]
    if problem.status == 429 and "Retry-After" in problem.headers:
        # Seed 003's retry_after, beside the Retry-After header.
        body["retry_after"] = int(problem.headers["Retry-After"])
    return problem.status, body


def _validation_summary(errors: list[dict]) -> str:
    if len(errors) == 1:
        return _field_message(errors[0])
    return f"Request validation failed ({len(errors)} errors)"


def _field_message(error: dict) -> str:
    return f"{error['field']}: {error['message']}" if error["field"] else error["message"]


# Seed 003 "Common Error Codes", by status; seed 000's codes (Problem.code) for the rest.
INTEGRATOR_CODES = {
    401: "INVALID_API_KEY",
    403: "PERMISSION_DENIED",
    429: "RATE_LIMIT_EXCEEDED",
    503: "SERVICE_UNAVAILABLE",
}
# The endpoints seed 003 documents answer in its contract, below /api/v1/.
INTEGRATOR_PATH_PREFIXES = ("/api/v1/ingestion/", "/api/v1/matching/")


def integrator_body(problem: Problem) -> tuple[int, dict]:
    """Seed 003: ``{"success": false, "error": {"code", "message", ...}}``."""
    error = {
        "code": INTEGRATOR_CODES.get(problem.status, problem.code),
        "message": _validation_summary(problem.errors)
        if problem.message is None
        else problem.message,
    }
    if problem.code == "VALIDATION_ERROR":
        error["details"] = [
            {"field": item["field"], "message": item["message"]} for item in problem.errors
        ]
    if "Retry-After" in problem.headers:
        error["retry_after"] = int(problem.headers["Retry-After"])
    return problem.status, {"success": False, "error": error}


def servicetitan_body(problem: Problem) -> tuple[int, dict]:
    """Seed 001: malformed input is a 400 "Validation Error" (its 422 is a provider's "Service
    Area Not Supported"); the error's name is its title, else its code in words."""
    status = problem.status
    if problem.title is None and status == 422:
        status = 400
    body = {
        "success": False,
        "error": problem.title or problem.code.replace("_", " ").title(),
        "message": "Invalid input data" if problem.message is None else problem.message,
        "details": [
            {"field": error.get("field"), "message": error["message"], "value": error.get("value")}
            for error in problem.errors
        ],
    }
    return status, body


# Seed 002 "Error Handling": every error is {error, detail, hint}; the hint says what to do.
CRM_HINTS = {
    400: "Send a JSON object as the body.",
    401: "Sign the raw body with the account's webhook secret: X-Webhook-Signature: "
    "sha256=<hex HMAC-SHA256>, and send it within 5 minutes of its timestamp.",
    403: "This account may not do that.",
    404: "Check the path and the account id.",
    405: "Use POST.",
    413: "Send a smaller body.",
    422: "Correct the fields named in the detail.",
    429: "Wait for the number of seconds in Retry-After.",
    503: "Send it again after Retry-After; nothing was recorded.",
}


def crm_body(problem: Problem) -> tuple[int, dict]:
    """Seed 002: ``{"error": <snake_case code>, "detail", "hint"}``; field errors in the detail."""
    detail = problem.message
    if detail is None:
        detail = "; ".join(_field_message(error) for error in problem.errors)
    return problem.status, {
        "error": problem.code.lower(),
        "detail": detail,
        "hint": CRM_HINTS.get(problem.status, "Contact TradeEngage operations."),
    }


def processing_body(problem: Problem) -> tuple[int, dict]:
    """Seed 004: every field error in the one ``detail``."""
    detail = problem.message
    if detail is None:
        detail = "; ".join(_field_message(error) for error in problem.errors)
    return problem.status, {"detail": detail}


def problem_response(problem: Problem, render: Renderer) -> Response:
    status, body = render(problem)
    return _outage_logged(Response(body, status=status, headers=problem.headers))


def _outage_logged(response):
    """A 503 is an outage, logged where it is met (one warning per interval): Django's request
    log, which would add an ERROR line per request for it, leaves it alone."""
    if response.status_code == 503:
        response._has_been_logged = True
    return response


def _answered(exc: BaseException, render: Renderer) -> Response:
    set_rollback()
    return problem_response(classify(exc), render)


def api_exception_handler(exc, context):
    return _answered(exc, v1_body)


def servicetitan_exception_handler(exc, context):
    return _answered(exc, servicetitan_body)


def processing_exception_handler(exc, context):
    return _answered(exc, processing_body)


def crm_exception_handler(exc, context):
    return _answered(exc, crm_body)


def integrator_exception_handler(exc, context):
    return _answered(exc, integrator_body)


def renderer_for_path(path: str) -> Renderer:
    """The contract a path answers in. Paths outside the API get the v1 shape."""
    if path.startswith(INTEGRATOR_PATH_PREFIXES):
        return integrator_body
    if path.startswith("/api/v1/"):
        return v1_body
    if path.startswith("/api/integrations/servicetitan/"):
        return servicetitan_body
    if path.startswith("/api/integrations/crm/"):
        return crm_body
    if path.startswith("/api/"):
        return processing_body
    return v1_body


def _json_response(request, problem: Problem) -> JsonResponse:
    status, body = renderer_for_path(request.path)(problem)
    return _outage_logged(JsonResponse(body, status=status, headers=problem.headers))


def json_not_found(request, exception=None):
    """Django's 404 handler and the catch-all of ``/api/``: no API client ever sees HTML."""
    return _json_response(request, Problem(404, "NOT_FOUND", f"No route for {request.path}"))


def json_bad_request(request, exception=None):
    if exception is None:
        return _json_response(request, Problem(400, "VALIDATION_ERROR", "Bad request."))
    return _json_response(request, classify(exception))


def json_server_error(request):
    return _json_response(request, Problem(500, "INTERNAL_ERROR", UNEXPECTED_ERROR))

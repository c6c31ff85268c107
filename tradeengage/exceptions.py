"""The /api/v1 error contract (seed 000 "Error Handling").

Every error answers ``{"detail", "error_code", "timestamp"}``; validation failures add
``errors: [{"field", "message"}]``. Malformed input is 422, a broken business rule 400, and
nothing a client sends produces a 500.
"""

import logging

from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from django.utils import timezone
from rest_framework import exceptions, status
from rest_framework.response import Response

from tradeengage.db import is_lock_conflict

logger = logging.getLogger("tradeengage.api")


class BusinessRuleError(Exception):
    """A well-formed request that breaks a business rule (unknown company, wrong technician)."""

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class NotFoundError(Exception):
    """A resource named by the request does not exist."""


class ConflictError(Exception):
    """The request clashed with a concurrent change; sending it again may succeed."""


def error_body(detail: str, error_code: str, errors: list[dict] | None = None) -> dict:
    body = {
        "detail": detail,
        "error_code": error_code,
        "timestamp": timezone.now().isoformat(),
    }
    if errors is not None:
        body["errors"] = errors
    return body


def flatten_errors(detail, prefix: str = "") -> list[dict]:
    """Turn DRF's nested error detail into a flat list of ``{field, message}``."""
    if isinstance(detail, dict):
        flat = []
        for key, value in detail.items():
            name = prefix if key in ("non_field_errors", "__all__") else _join(prefix, str(key))
            flat.extend(flatten_errors(value, name))
        return flat
    if isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            return [{"field": prefix or None, "message": str(item)} for item in detail]
        flat = []
        for index, item in enumerate(detail):
            flat.extend(flatten_errors(item, _join(prefix, str(index))))
        return flat
    return [{"field": prefix or None, "message": str(detail)}]


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _validation_response(errors: list[dict]) -> Response:
    if len(errors) == 1:
        field, message = errors[0]["field"], errors[0]["message"]
        summary = f"{field}: {message}" if field else message
    else:
        summary = f"Request validation failed ({len(errors)} errors)"
    return Response(
        error_body(summary, "VALIDATION_ERROR", errors),
        status=status.HTTP_422_UNPROCESSABLE_ENTITY,
    )


def api_exception_handler(exc, context):
    if isinstance(exc, exceptions.ValidationError):
        return _validation_response(flatten_errors(exc.detail))
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else exc.messages
        return _validation_response(flatten_errors(detail))
    if isinstance(exc, exceptions.ParseError):
        return _validation_response(
            [{"field": None, "message": f"Malformed JSON body: {exc.detail}"}]
        )
    if isinstance(exc, exceptions.UnsupportedMediaType):
        return _validation_response(
            [
                {
                    "field": None,
                    "message": f"{exc.detail} Send Content-Type: application/json.",
                }
            ]
        )
    if isinstance(exc, BusinessRuleError):
        errors = [{"field": exc.field, "message": exc.message}]
        return Response(
            error_body(exc.message, "VALIDATION_ERROR", errors),
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, ConflictError):
        return Response(error_body(str(exc), "CONFLICT"), status=status.HTTP_409_CONFLICT)
    if is_lock_conflict(exc):
        logger.warning("Transaction aborted by a concurrent one: %s", exc)
        detail = "The request clashed with a concurrent change and was undone; send it again."
        return Response(error_body(detail, "CONFLICT"), status=status.HTTP_409_CONFLICT)
    if isinstance(exc, (Http404, NotFoundError, exceptions.NotFound)):
        detail = str(exc) if isinstance(exc, NotFoundError) else "Not found."
        return Response(error_body(detail, "NOT_FOUND"), status=status.HTTP_404_NOT_FOUND)
    if isinstance(exc, RequestDataTooBig):
        return Response(
            error_body("Request body is too large.", "VALIDATION_ERROR", []),
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, exceptions.APIException):
        code = {
            405: "METHOD_NOT_ALLOWED",
            406: "NOT_ACCEPTABLE",
            429: "RATE_LIMITED",
            401: "UNAUTHORIZED",
            403: "FORBIDDEN",
        }.get(exc.status_code, "ERROR")
        response = Response(error_body(str(exc.detail), code), status=exc.status_code)
        if getattr(exc, "wait", None):
            response["Retry-After"] = str(int(exc.wait))
        return response
    logger.exception("Unhandled error in %s", context.get("view").__class__.__name__)
    return Response(
        error_body("An unexpected error occurred.", "INTERNAL_ERROR"),
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )


def json_not_found(request, exception=None):
    """Django's 404 handler: the v1 shape for unknown URLs, so /api clients never see HTML."""
    return JsonResponse(error_body(f"No route for {request.path}", "NOT_FOUND"), status=404)


def json_server_error(request):
    return JsonResponse(error_body("An unexpected error occurred.", "INTERNAL_ERROR"), status=500)


def json_bad_request(request, exception=None):
    return JsonResponse(error_body("Bad request.", "VALIDATION_ERROR", []), status=400)

"""Every ServiceTitan failure as a typed provider error, retryable or permanent (DESIGN.md "The
core flow", step 3): an error answer, a body that is not the JSON object promised, or a request
that got no answer."""

import requests

from integrations import http
from integrations.http import body_snippet, json_object_or_empty
from integrations.http import retry_after_header as retry_after_seconds
from integrations.providers import PermanentProviderError, ProviderError, RetryableProviderError

PERMANENT_CODES = {
    400: "Validation Error",
    401: "Authentication Failed",
    403: "Authentication Failed",
    404: "Not Found",
    409: "Conflict",
    422: "Validation Error",
}


def error_from_response(response: requests.Response, method: str, path: str) -> ProviderError:
    """An error answer as a provider error. ServiceTitan's bodies are its ``ApiErrorResponse``
    (v2 OpenAPI specs: ``type``, ``title``, ``status``, ``traceId``, ``errors: {field:
    [messages]}``, ``data``; no ``detail``, though a ``detail`` is shown if one comes), and
    anything at all when a proxy in front of it wrote them."""
    status = response.status_code
    problem = json_object_or_empty(response)
    details = [
        {"field": field, "message": message, "value": None}
        for field, messages in (problem.get("errors") or {}).items()
        for message in ([messages] if isinstance(messages, str) else messages)
    ]
    title = problem.get("title") or response.reason or ""
    explanation = problem.get("detail") or "; ".join(
        f"{detail['field']}: {detail['message']}" for detail in details
    )
    if not explanation and not problem.get("title"):
        explanation = body_snippet(response)
    message = f"ServiceTitan {method} {path}: HTTP {status} {title}".rstrip()
    if explanation:
        message += f": {explanation}"
    if problem.get("traceId"):
        # "Internal trace ID for advanced diagnostics" (ApiErrorResponse): worth quoting.
        message += f" (traceId {problem['traceId']})"
    if status == 429:
        return RetryableProviderError(
            message, retry_after=retry_after_seconds(response), code="Rate Limited"
        )
    if status == 408:
        return RetryableProviderError(message, code="Timeout")
    if status >= 500:
        return RetryableProviderError(
            message, retry_after=retry_after_seconds(response), code="Service Unavailable"
        )
    return PermanentProviderError(
        message, code=PERMANENT_CODES.get(status, "Request Rejected"), details=details
    )


def json_object(response: requests.Response, method: str, path: str) -> dict:
    return http.json_object(response, vendor="ServiceTitan", method=method, path=path)

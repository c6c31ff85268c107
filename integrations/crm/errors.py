"""Every CRM failure as a typed provider error (DESIGN.md "The core flow", step 3), from the
CRM's error shape (seed 002 "Error Handling": ``{"error", "detail", "hint"}``), from a body
that is not the JSON promised, or from a request that got no answer."""

import time

import requests

from integrations import http
from integrations.http import body_snippet, json_object_or_empty, retry_after_header
from integrations.providers import PermanentProviderError, ProviderError, RetryableProviderError

# seed 002 "HTTP Status Codes". A 401 reaches here only after the client refreshed its token
# once and was refused again.
PERMANENT_CODES = {
    400: "Validation Error",
    401: "Authentication Failed",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    422: "Validation Error",
}


def error_from_response(response: requests.Response, method: str, path: str) -> ProviderError:
    """An error answer as a provider error, its ``detail`` and ``hint`` in the message: 429, 408
    and 5xx retryable (a 429 after ``retry_after_seconds``), any other permanent."""
    status = response.status_code
    problem = json_object_or_empty(response)
    error = str(problem.get("error") or response.reason or "").strip()
    message = f"CRM {method} {path}: HTTP {status} {error}".rstrip()
    if problem.get("detail"):
        message += f": {problem['detail']}"
    elif not problem:
        message += f": {body_snippet(response)}"
    if problem.get("hint"):
        message += f" (hint: {problem['hint']})"
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
    return PermanentProviderError(message, code=PERMANENT_CODES.get(status, "Request Rejected"))


def retry_after_seconds(response: requests.Response) -> float | None:
    """How long to wait before asking again, in seconds from now: ``Retry-After`` (seconds or
    an HTTP date), else seed 002's ``X-RateLimit-Reset`` (the epoch second the budget resets
    at); None when neither says."""
    retry_after = retry_after_header(response)
    if retry_after is not None:
        return retry_after
    reset = response.headers.get("X-RateLimit-Reset", "").strip()
    try:
        return max(float(reset) - time.time(), 0.0) if reset else None
    except ValueError:
        return None


def json_object(response: requests.Response, method: str, path: str) -> dict:
    return http.json_object(response, vendor="CRM", method=method, path=path)

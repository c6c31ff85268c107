import logging
import re
import time
import uuid

from tradeengage import metrics
from tradeengage.logging import request_outcome_collected, set_correlation_id

logger = logging.getLogger("tradeengage.request")

_SAFE_CORRELATION_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class CorrelationIdMiddleware:
    """Take the caller's X-Correlation-ID or X-Request-ID (or make one), echo it as both, time
    the API's requests and log one line for each, with what the request did where a view says
    (``tradeengage.logging.request_outcome_note``)."""

    headers = ("HTTP_X_CORRELATION_ID", "HTTP_X_REQUEST_ID")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        correlation_id = self._supplied(request) or f"req-{uuid.uuid4()}"
        request.correlation_id = correlation_id
        set_correlation_id(correlation_id)
        started = time.perf_counter()
        try:
            with request_outcome_collected() as outcome:
                response = self.get_response(request)
            response["X-Correlation-ID"] = correlation_id
            response["X-Request-ID"] = correlation_id
            if request.path.startswith("/api/"):
                self._record(request, response, outcome, time.perf_counter() - started)
            return response
        finally:
            set_correlation_id(None)

    def _supplied(self, request) -> str | None:
        for header in self.headers:
            value = request.META.get(header, "")
            if _SAFE_CORRELATION_ID.match(value):
                return value
        return None

    def _record(self, request, response, outcome: dict, elapsed: float) -> None:
        match = request.resolver_match
        metrics.api_request_duration.labels(
            match.route if match else "(unmatched)", request.method, response.status_code
        ).observe(elapsed)
        message = outcome.pop("message", "request")
        logger.info(
            message,
            extra={
                "method": request.method,
                "path": request.path,
                "status_code": response.status_code,
                "response_time_ms": round(elapsed * 1000, 1),
                **outcome,
            },
        )

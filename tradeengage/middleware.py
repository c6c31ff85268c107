import logging
import re
import time
import uuid

from tradeengage import metrics
from tradeengage.logging import set_correlation_id

logger = logging.getLogger("tradeengage.request")

_SAFE_CORRELATION_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class CorrelationIdMiddleware:
    """Take the caller's X-Correlation-ID (or make one), echo it, and log one line per request."""

    header = "HTTP_X_CORRELATION_ID"

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        supplied = request.META.get(self.header, "")
        correlation_id = supplied if _SAFE_CORRELATION_ID.match(supplied) else f"req-{uuid.uuid4()}"
        request.correlation_id = correlation_id
        set_correlation_id(correlation_id)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            response["X-Correlation-ID"] = correlation_id
            if request.path.startswith("/api/"):
                elapsed = time.perf_counter() - started
                match = request.resolver_match
                metrics.api_request_duration.labels(
                    match.route if match else "(unmatched)", request.method, response.status_code
                ).observe(elapsed)
                logger.info(
                    "request",
                    extra={
                        "method": request.method,
                        "path": request.path,
                        "status_code": response.status_code,
                        "response_time_ms": round(elapsed * 1000, 1),
                    },
                )
            return response
        finally:
            set_correlation_id(None)

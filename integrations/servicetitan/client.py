"""The client of ServiceTitan's public API (v2, https://developer.servicetitan.io/): bookings
through the booking-provider API (crm), jobs (jpm) and invoices (accounting).

A routing becomes a booking, never a job directly: ServiceTitan's office converts bookings into
jobs. So a routing's reference is the booking id, and the back-sync follows the booking to its
job once it has one. The booking's ``externalId`` is our booking id, which makes creating
idempotent across retries.

Shared by every worker process: the OAuth token (Django's cache, Redis in production) and the
request budget per tenant (Redis when ``REDIS_URL`` is set). Every failure, HTTP or not, leaves
as a typed provider error; see ``_error`` for the mapping.
"""

import functools
import hashlib
import logging
import threading
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

import redis
import requests
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.http import parse_http_date_safe

from integrations.providers import PermanentProviderError, ProviderError, RetryableProviderError
from integrations.servicetitan.service import (
    PROBLEM_TYPES,
    Booking,
    ServiceTitanJob,
    ServiceTitanService,
)

logger = logging.getLogger("integrations.servicetitan")

VERSION = "servicetitan-api-v2"
# Refresh a token this long before it expires, so that none expires during a call.
TOKEN_REFRESH_MARGIN_SECONDS = 60
PAGE_SIZE = 50
JOBS_PAGE_SIZE = 100
# Our problem-type priorities and ServiceTitan's.
PRIORITIES = {"high": "High", "medium": "Normal", "low": "Low"}
OUR_PRIORITIES = {value: key for key, value in PRIORITIES.items()}
JOB_STATUSES = {
    "Scheduled": "scheduled",
    "Dispatched": "dispatched",
    "Working": "in_progress",
    "Hold": "in_progress",
    "Completed": "completed",
    "Canceled": "cancelled",
}
PERMANENT_CODES = {
    400: "Validation Error",
    401: "Authentication Failed",
    403: "Authentication Failed",
    404: "Not Found",
    409: "Conflict",
    422: "Validation Error",
}
CONFIGURATION_ERRORS = (
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.InvalidURL,
)

# The process-local request budget: key -> (tokens left, when they were counted).
_local_buckets: dict[str, tuple[float, float]] = {}
_local_lock = threading.Lock()


class RateLimiter:
    """A token bucket of ``limit`` requests per second under ``key``: up to ``limit`` at once,
    refilled at ``limit`` per second. Kept in Redis when a client is given (one atomic script,
    so every worker process draws on the same bucket), else in this process. The callers'
    clocks stamp the bucket, so worker hosts should keep their clocks in sync (NTP)."""

    def __init__(
        self,
        key: str,
        limit: int,
        *,
        redis_client: redis.Redis | None = None,
        clock=time.time,
        sleep=time.sleep,
    ):
        self.key = key
        self.limit = limit
        self.redis = redis_client
        self.clock = clock
        self.sleep = sleep

    def acquire(self, timeout: float) -> None:
        """Take one token, sleeping until one is there; ``RetryableProviderError`` ("Rate
        Limited") when that would take longer than ``timeout`` seconds."""
        deadline = self.clock() + timeout
        while True:
            now = self.clock()
            wait = self._take(now)
            if wait <= 0:
                return
            if now + wait > deadline:
                raise RetryableProviderError(
                    f"ServiceTitan request budget of {self.limit}/s for {self.key} is spent; "
                    f"the next request is allowed in {wait:.3f} s, after the call's {timeout:g} s "
                    "timeout",
                    retry_after=wait,
                    code="Rate Limited",
                )
            self.sleep(wait)

    def _take(self, now: float) -> float:
        """Take a token if there is one: 0. Else the seconds until there is one."""
        if self.redis is None:
            with _local_lock:
                tokens, stamped = _local_buckets.get(self.key, (float(self.limit), now))
                tokens, wait = _bucket_take(tokens, stamped, now, self.limit)
                # A caller whose clock reading is older must not move the stamp back, or the
                # next caller would be refilled for the same time twice.
                _local_buckets[self.key] = (tokens, max(now, stamped))
            return wait
        with _shared_state():
            return float(self.redis.eval(TOKEN_BUCKET_SCRIPT, 1, self.key, self.limit, repr(now)))


TOKEN_EPSILON = 1e-9


def _bucket_take(tokens: float, stamped: float, now: float, rate: int) -> tuple[float, float]:
    tokens = min(float(rate), tokens + max(0.0, now - stamped) * rate)
    if tokens >= 1 - TOKEN_EPSILON:  # a refill computed from a float clock may fall just short
        return max(tokens - 1, 0.0), 0.0
    return tokens, (1 - tokens) / rate


# The same arithmetic as _bucket_take, atomically in Redis. KEYS[1]: the bucket; ARGV: the rate
# (= capacity) and the caller's clock. The stamp never moves back (see RateLimiter._take).
TOKEN_BUCKET_SCRIPT = """
local rate = tonumber(ARGV[1])
local now = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'stamped')
local tokens = tonumber(state[1]) or rate
local stamped = tonumber(state[2]) or now
tokens = math.min(rate, tokens + math.max(0, now - stamped) * rate)
local wait = 0
if tokens >= 1 - 1e-9 then tokens = math.max(tokens - 1, 0) else wait = (1 - tokens) / rate end
stamped = math.max(now, stamped)
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamped', tostring(stamped))
redis.call('EXPIRE', KEYS[1], 10)
return tostring(wait)
"""


@functools.cache
def _redis_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


@contextmanager
def _shared_state():
    """Redis holds the token and the request budget; without it no call can be made safely."""
    try:
        yield
    except redis.RedisError as exc:
        raise RetryableProviderError(
            f"Redis, which holds the ServiceTitan token and request budget, failed: {exc}",
            code="Service Unavailable",
        ) from exc


class ServiceTitanApi(ServiceTitanService):
    """One tenant's ServiceTitan, from the merged configuration of ``servicetitan_config``."""

    version = VERSION

    def __init__(self, config: dict):
        self.api_url = config["api_url"].rstrip("/")
        self.auth_url = config["auth_url"].rstrip("/")
        self.client_id = config["client_id"]
        self.client_secret = config["client_secret"]
        self.app_key = config["app_key"]
        self.tenant = str(config["tenant_id"])
        self.booking_provider = str(config.get("booking_provider_id") or "")
        self.timeout = float(config.get("timeout_seconds") or 10.0)
        self.session = requests.Session()
        self.session.headers["Accept"] = "application/json"
        self.limiter = RateLimiter(
            f"servicetitan:rate:{self.tenant}",
            int(config.get("requests_per_second") or 60),
            redis_client=_redis_client(settings.REDIS_URL) if settings.REDIS_URL else None,
        )
        digest = hashlib.sha256(f"{self.auth_url} {self.client_id}".encode()).hexdigest()
        self.token_cache_key = f"servicetitan:token:{digest[:32]}"

    def authenticate(self) -> dict:
        entry = self._token_entry()
        return {
            "success": True,
            "token": entry["access_token"][:8] + "…",
            "expiresIn": max(int(entry["expires_at"] - time.time()), 0),
            "authenticated": True,
        }

    def create_job(self, booking: Booking) -> ServiceTitanJob:
        """The ServiceTitan booking for ``booking``, created at most once: its booking id is the
        booking's ``externalId``, looked up first, so a retry after a lost answer returns the
        booking the first attempt made. Without a booking id there is nothing to look up."""
        payload = _booking_payload(booking)
        path = self._bookings_path()
        existing = self._find_booking(path, booking.booking_id)
        if existing is not None:
            return _booking_job(existing)
        try:
            created = self._request("POST", path, json=payload)
        except PermanentProviderError as exc:
            # A concurrent attempt created it between our lookup and our POST.
            if exc.code != "Conflict":
                raise
            existing = self._find_booking(path, booking.booking_id)
            if existing is None:
                raise
            return _booking_job(existing)
        return _booking_job(created)

    def get_job(self, job_id: int) -> ServiceTitanJob:
        return self._job_with_revenue(job_id)

    def job_for_reference(self, reference: str) -> ServiceTitanJob:
        """``reference`` is the booking id. Until the booking is converted into a job, the
        booking's state ("scheduled", or "cancelled" once dismissed); then the job's, with
        ``completed_at`` and ``invoice_total`` once it is completed."""
        if not str(reference).isdigit():
            raise PermanentProviderError(
                f"ServiceTitan booking {reference!r} not found: a reference is a booking id",
                code="Not Found",
            )
        booking = self._request("GET", f"{self._bookings_path()}/{reference}")
        if not booking.get("jobId"):
            return _booking_job(booking)
        return self._job_with_revenue(booking["jobId"], booking=booking)

    def update_job_status(self, job_id: int, status: str) -> ServiceTitanJob:
        if status == "cancelled":
            return self.cancel_job(job_id, "Cancelled through TradeEngage")
        raise PermanentProviderError(
            f"ServiceTitan's public API cannot set job {job_id} to {status!r}: dispatching, "
            "starting and completing a job happen in ServiceTitan itself. Only cancelling is "
            "supported.",
            code="Not Supported",
            details=[{"field": "status", "message": "Not supported by the API", "value": status}],
        )

    def cancel_job(self, job_id: int, reason: str) -> ServiceTitanJob:
        self._request(
            "POST", f"{self._job_path(job_id)}/cancel", json={"reasonId": 0, "memo": reason}
        )
        job = self.get_job(job_id)
        job.cancel_reason = reason
        return job

    def get_jobs_by_date_range(self, start: datetime, end: datetime) -> list[ServiceTitanJob]:
        params = {"createdOnOrAfter": _iso(start), "createdBefore": _iso(end)}
        path = f"/jpm/v2/tenant/{self.tenant}/jobs"
        return [_job(job) for job in self._pages(path, params, page_size=JOBS_PAGE_SIZE)]

    def get_health_status(self) -> dict:
        """Whether a token can be fetched now, and how long that took; never raises."""
        started = time.monotonic()
        error = ""
        try:
            self._token_entry(fresh=True)
        except Exception as exc:
            # A health check reports every failure, expected or not, instead of raising.
            error = str(exc)
        status = {
            "status": "unhealthy" if error else "healthy",
            "version": VERSION,
            "authenticated": not error,
            "responseTimeMs": int((time.monotonic() - started) * 1000),
        }
        if error:
            status["error"] = error
        return status

    def _bookings_path(self) -> str:
        if not self.booking_provider:
            raise PermanentProviderError(
                "ServiceTitan booking_provider_id is not configured: bookings cannot be read "
                "or created without it",
                code="Configuration Error",
            )
        return f"/crm/v2/tenant/{self.tenant}/booking-provider/{self.booking_provider}/bookings"

    def _job_path(self, job_id) -> str:
        return f"/jpm/v2/tenant/{self.tenant}/jobs/{job_id}"

    def _find_booking(self, path: str, external_id: str) -> dict | None:
        if not external_id:
            return None
        params = {"externalId": external_id, "page": 1, "pageSize": PAGE_SIZE}
        for booking in self._request("GET", path, params=params).get("data") or []:
            if str(booking.get("externalId")) == external_id:
                return booking
        return None

    def _job_with_revenue(self, job_id, booking: dict | None = None) -> ServiceTitanJob:
        job = _job(self._request("GET", self._job_path(job_id)), booking=booking)
        if job.status == "completed":
            job.invoice_total = self._invoice_total(job_id)
        return job

    def _invoice_total(self, job_id) -> Decimal | None:
        """The sum of the job's invoices; None while it has none (not "zero revenue")."""
        path = f"/accounting/v2/tenant/{self.tenant}/invoices"
        totals = [
            _decimal(invoice.get("total"))
            for invoice in self._pages(path, {"jobId": job_id}, page_size=PAGE_SIZE)
        ]
        return sum(totals, Decimal("0")) if totals else None

    def _pages(self, path: str, params: dict, *, page_size: int):
        page = 1
        while True:
            body = self._request(
                "GET", path, params={**params, "page": page, "pageSize": page_size}
            )
            data = body.get("data") or []
            yield from data
            if not body.get("hasMore") or not data:
                return
            page += 1

    def _request(self, method: str, path: str, *, params=None, json=None) -> dict:
        """One API call: within the request budget, with the bearer token (fetched afresh and
        tried once more on a 401); the JSON body, or a typed provider error."""
        for attempt in range(2):
            self.limiter.acquire(self.timeout)
            token = self._token_entry()["access_token"]
            headers = {"Authorization": f"Bearer {token}", "ST-App-Key": self.app_key}
            response = self._send(
                method, self.api_url + path, path=path, params=params, json=json, headers=headers
            )
            if response.status_code != 401 or attempt:
                break
            self._forget_token(token)
        if not response.ok:
            raise _error(response, method, path)
        return _json(response, method, path)

    def _token_entry(self, *, fresh: bool = False) -> dict:
        """``{"access_token", "expires_at"}``, from the cache unless ``fresh``."""
        if not fresh:
            with _shared_state():
                entry = cache.get(self.token_cache_key)
            if entry:
                return entry
        entry = self._fetch_token()
        lifetime = int(entry["expires_at"] - time.time()) - TOKEN_REFRESH_MARGIN_SECONDS
        if lifetime > 0:
            with _shared_state():
                cache.set(self.token_cache_key, entry, timeout=lifetime)
        return entry

    def _forget_token(self, token: str) -> None:
        # Only the token that failed: another process may already have cached a new one.
        with _shared_state():
            entry = cache.get(self.token_cache_key)
            if entry and entry["access_token"] == token:
                cache.delete(self.token_cache_key)

    def _fetch_token(self) -> dict:
        path = "/connect/token"
        response = self._send(
            "POST",
            self.auth_url + path,
            path=path,
            data={
                "grant_type": "client_credentials",
                "client_id": self.client_id,
                "client_secret": self.client_secret,
            },
        )
        if response.status_code in (400, 401, 403):
            body = _body(response)
            reason = body.get("error_description") or body.get("error") or _snippet(response)
            raise PermanentProviderError(
                f"ServiceTitan refused the credentials of client {self.client_id}: "
                f"HTTP {response.status_code} {reason}",
                code="Authentication Failed",
            )
        if not response.ok:
            raise _error(response, "POST", path)
        body = _json(response, "POST", path)
        if not body.get("access_token"):
            raise PermanentProviderError(
                "ServiceTitan's token endpoint answered without an access_token",
                code="Authentication Failed",
            )
        expires_in = int(body.get("expires_in") or 900)
        return {"access_token": body["access_token"], "expires_at": time.time() + expires_in}

    def _send(self, method: str, url: str, *, path: str, **kwargs) -> requests.Response:
        """The HTTP exchange, logged; transport failures as typed provider errors."""
        started = time.monotonic()
        outcome = "error"
        try:
            response = self.session.request(method, url, timeout=self.timeout, **kwargs)
            outcome = response.status_code
            return response
        except requests.Timeout as exc:
            outcome = type(exc).__name__
            raise RetryableProviderError(
                f"ServiceTitan {method} {path}: no answer within {self.timeout:g} s",
                code="Timeout",
            ) from exc
        except requests.ConnectionError as exc:
            outcome = type(exc).__name__
            raise RetryableProviderError(
                f"ServiceTitan {method} {path}: connection failed: {exc}",
                code="Service Unavailable",
            ) from exc
        except CONFIGURATION_ERRORS as exc:
            outcome = type(exc).__name__
            raise PermanentProviderError(
                f"ServiceTitan {method} {path}: the configured URL is invalid: {exc}",
                code="Configuration Error",
            ) from exc
        except requests.RequestException as exc:
            outcome = type(exc).__name__
            raise RetryableProviderError(
                f"ServiceTitan {method} {path}: {type(exc).__name__}: {exc}",
                code="Service Unavailable",
            ) from exc
        finally:
            logger.debug(
                "ServiceTitan call",
                extra={
                    "method": method,
                    "path": path,
                    "status": outcome,
                    "duration_ms": int((time.monotonic() - started) * 1000),
                },
            )


def _error(response: requests.Response, method: str, path: str) -> ProviderError:
    """An error answer as a provider error. Bodies are RFC 7807 problem details
    (``title``, ``detail``, ``errors: {field: [messages]}``) when ServiceTitan wrote them, and
    anything at all when a proxy in front of it did."""
    status = response.status_code
    problem = _body(response)
    details = [
        {"field": field, "message": message, "value": None}
        for field, messages in (problem.get("errors") or {}).items()
        for message in ([messages] if isinstance(messages, str) else messages)
    ]
    title = problem.get("title") or response.reason or ""
    explanation = problem.get("detail") or "; ".join(
        f"{detail['field']}: {detail['message']}" for detail in details
    )
    if not explanation:
        explanation = _snippet(response)
    message = f"ServiceTitan {method} {path}: HTTP {status} {title}".rstrip()
    message += f": {explanation}"
    if status == 429:
        return RetryableProviderError(
            message, retry_after=_retry_after(response), code="Rate Limited"
        )
    if status == 408:
        return RetryableProviderError(message, code="Timeout")
    if status >= 500:
        return RetryableProviderError(
            message, retry_after=_retry_after(response), code="Service Unavailable"
        )
    return PermanentProviderError(
        message, code=PERMANENT_CODES.get(status, "Request Rejected"), details=details
    )


def _retry_after(response: requests.Response) -> float | None:
    """Retry-After as seconds from now: it is either seconds or an HTTP date."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    when = parse_http_date_safe(value)
    return None if when is None else max(when - time.time(), 0.0)


def _body(response: requests.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _json(response: requests.Response, method: str, path: str) -> dict:
    if not response.content:
        return {}
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise RetryableProviderError(
            f"ServiceTitan {method} {path}: HTTP {response.status_code} with a body that is not "
            f"a JSON object: {_snippet(response)}",
            code="Invalid Response",
        )
    return body


def _snippet(response: requests.Response) -> str:
    text = " ".join(response.text.split())
    return text[:200] if text else "(empty body)"


def _booking_payload(booking: Booking) -> dict:
    if booking.problem_type not in PROBLEM_TYPES:
        raise PermanentProviderError(
            f"Unknown problem type {booking.problem_type!r}",
            code="Validation Error",
            details=[
                {
                    "field": "problem_type",
                    "message": "Unknown problem type",
                    "value": booking.problem_type,
                }
            ],
        )
    priority, _, description = PROBLEM_TYPES[booking.problem_type]
    contacts = [
        {"type": kind, "value": value}
        for kind, value in (("Phone", booking.phone), ("Email", booking.email))
        if value
    ]
    payload = {
        "source": "TradeEngage",
        "name": f"{booking.first_name} {booking.last_name}".strip(),
        "summary": booking.summary or description,
        "isFirstTimeClient": True,
        "externalId": booking.booking_id,
        "address": {
            "street": booking.address,
            "city": booking.city,
            "state": booking.state,
            "zip": booking.zip,
            "country": "USA",
        },
        "contacts": contacts,
        "priority": PRIORITIES[priority],
    }
    if booking.scheduled_date:
        payload["start"] = _iso(booking.scheduled_date)
    return payload


def _booking_job(booking: dict) -> ServiceTitanJob:
    booking_id = _id(booking, "booking")
    return ServiceTitanJob(
        id=booking_id,
        job_number=f"BOOKING-{booking_id}",
        status="cancelled" if booking.get("status") == "Dismissed" else "scheduled",
        reference=str(booking_id),
        booking_id=str(booking.get("externalId") or ""),
        priority=OUR_PRIORITIES.get(booking.get("priority"), ""),
        description=booking.get("summary") or "",
        customer={"name": booking.get("name") or ""},
        location={"address": booking.get("address") or {}},
        created_at=_datetime(booking.get("createdOn")),
    )


def _job(job: dict, booking: dict | None = None) -> ServiceTitanJob:
    job_id = _id(job, "job")
    # An unknown status is taken as open: the back-sync only acts on completed or cancelled.
    status = JOB_STATUSES.get(job.get("jobStatus"), "scheduled")
    return ServiceTitanJob(
        id=job_id,
        job_number=str(job.get("jobNumber") or job_id),
        status=status,
        reference=str(booking["id"]) if booking else "",
        booking_id=str((booking or {}).get("externalId") or ""),
        priority=OUR_PRIORITIES.get(job.get("priority"), ""),
        description=job.get("summary") or "",
        customer={"id": job.get("customerId")},
        location={"id": job.get("locationId")},
        business_unit=str(job.get("businessUnitId") or ""),
        created_at=_datetime(job.get("createdOn")),
        completed_at=_datetime(job.get("completedOn")) if status == "completed" else None,
    )


def _id(payload: dict, kind: str) -> int:
    if payload.get("id") is None:
        raise PermanentProviderError(
            f"ServiceTitan answered with a {kind} without an id", code="Invalid Response"
        )
    return payload["id"]


def _decimal(value) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation as exc:
        raise PermanentProviderError(
            f"ServiceTitan answered with an invoice total that is not a number: {value!r}",
            code="Invalid Response",
        ) from exc


def _datetime(value: str | None) -> datetime | None:
    """ServiceTitan's timestamps are UTC, with up to seven fractional digits."""
    if not value:
        return None
    try:
        parsed = parse_datetime(value)
    except ValueError:
        return None
    if parsed is not None and timezone.is_naive(parsed):
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def _iso(value: datetime) -> str:
    if timezone.is_naive(value):
        value = timezone.make_aware(value)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")

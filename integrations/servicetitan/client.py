"""The client of ServiceTitan's public API (v2, https://developer.servicetitan.io/): bookings
through the booking-provider API (crm), jobs (jpm) and invoices (accounting).

A routing becomes a booking, never a job directly: ServiceTitan's office converts bookings into
jobs. So a routing's reference is the booking id, and the back-sync follows the booking to its
job once it has one. The booking's ``externalId`` is our booking id, which makes creating
idempotent across retries.

Shared by every worker process: the OAuth token (Django's cache, Redis in production) and the
request budget per tenant (``ratelimit``, in Redis when ``REDIS_URL`` is set). Every failure,
HTTP or not, leaves as a typed provider error (``errors``).
"""

import hashlib
import logging
import time
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

import requests
from django.conf import settings
from django.core.cache import cache

from integrations.providers import PermanentProviderError
from integrations.servicetitan.errors import (
    body_snippet,
    error_from_exception,
    error_from_response,
    json_object,
    json_object_or_empty,
)
from integrations.servicetitan.mapping import (
    booking_request,
    decimal_amount,
    job_from_booking,
    job_from_job,
    timestamp_text,
)
from integrations.servicetitan.ratelimit import RateLimiter, redis_for, shared_state
from integrations.servicetitan.types import Booking, ServiceTitanJob, ServiceTitanService
from tradeengage.logging import get_correlation_id

logger = logging.getLogger("integrations.servicetitan")

VERSION = "servicetitan-api-v2"
# Refresh a token this long before it expires, so that none expires during a call.
TOKEN_REFRESH_MARGIN_SECONDS = 60
PAGE_SIZE = 50
JOBS_PAGE_SIZE = 100
# List endpoints look up "multiple IDs (maximum 50)" per request (crm and jpm v2 OpenAPI, ids).
IDS_PER_REQUEST = 50


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
        self.cancel_reason_id = str(config.get("cancel_reason_id") or "")
        self._cancel_reason_id_checked: int | None = None
        self.timeout = float(config.get("timeout_seconds") or 10.0)
        self.session = requests.Session()
        self.session.headers["Accept"] = "application/json"
        self.limiter = RateLimiter(
            f"servicetitan:rate:{self.tenant}",
            int(config.get("requests_per_second") or 60),
            redis_client=redis_for(settings.REDIS_URL) if settings.REDIS_URL else None,
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
        payload = booking_request(booking)
        path = self._bookings_path()
        existing = self._find_booking(path, booking.booking_id)
        if existing is not None:
            return job_from_booking(existing)
        try:
            created = self._request("POST", path, json=payload)
        except PermanentProviderError as exc:
            # A concurrent attempt created it between our lookup and our POST.
            if exc.code != "Conflict":
                raise
            existing = self._find_booking(path, booking.booking_id)
            if existing is None:
                raise
            return job_from_booking(existing)
        return job_from_booking(created)

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
            return job_from_booking(booking)
        return self._job_with_revenue(booking["jobId"], booking=booking)

    def jobs_for_references(self, references: Sequence[str]) -> dict[str, ServiceTitanJob]:
        """``job_for_reference`` for many references, by reference, in few requests: the
        bookings by ``ids`` (at most 50 a request, the API's limit), then the jobs of converted
        ones by ``ids``, then the invoices of each completed job. A reference ServiceTitan does
        not know (or that is no booking id) is left out."""
        booking_ids = [ref for ref in dict.fromkeys(map(str, references)) if ref.isdigit()]
        bookings = self._by_ids(self._bookings_path(), booking_ids)
        job_ids = [str(booking["jobId"]) for booking in bookings.values() if booking.get("jobId")]
        jobs = self._by_ids(f"/jpm/v2/tenant/{self.tenant}/jobs", job_ids)
        found = {}
        for reference in booking_ids:
            booking = bookings.get(reference)
            if booking is None:
                continue
            if not booking.get("jobId"):
                found[reference] = job_from_booking(booking)
                continue
            job = jobs.get(str(booking["jobId"]))
            if job is None:
                continue
            found[reference] = job_from_job(job, booking=booking)
            if found[reference].status == "completed":
                found[reference].invoice_total = self._invoice_total(booking["jobId"])
        return found

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
        """``PUT jobs/{id}/cancel`` with both fields jpm v2 requires (``CancelJobRequest``): a
        ``reasonId`` of the tenant's job-cancel-reasons (``_cancel_reason``) and our reason as
        the ``memo``."""
        body = {"reasonId": self._cancel_reason(), "memo": reason}
        self._request("PUT", f"{self._job_path(job_id)}/cancel", json=body)
        job = self.get_job(job_id)
        job.cancel_reason = reason
        return job

    def get_jobs_by_date_range(self, start: datetime, end: datetime) -> list[ServiceTitanJob]:
        params = {"createdOnOrAfter": timestamp_text(start), "createdBefore": timestamp_text(end)}
        path = f"/jpm/v2/tenant/{self.tenant}/jobs"
        return [job_from_job(job) for job in self._pages(path, params, page_size=JOBS_PAGE_SIZE)]

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

    def _cancel_reason(self) -> int:
        """The ``reasonId`` of this client's cancellations, checked once against the tenant's
        active job-cancel-reasons: the configured ``cancel_reason_id``, else the first active one.

        A configured id the tenant does not have (or has deactivated) is refused before any PUT,
        naming the setting to fix. Unset, the first active reason is used rather than refusing:
        a cancellation that never reaches the office leaves a technician driving to work the
        homeowner called off, while the reason's category is bookkeeping the office can correct,
        and ``memo`` carries the actual reason. A tenant without an active reason is refused."""
        if self._cancel_reason_id_checked is not None:
            return self._cancel_reason_id_checked
        path = f"/jpm/v2/tenant/{self.tenant}/job-cancel-reasons"
        active = [
            reason["id"]
            for reason in self._pages(path, {"active": "True"}, page_size=PAGE_SIZE)
            if reason.get("active") and reason.get("id") is not None
        ]
        if self.cancel_reason_id:
            if not any(str(reason_id) == self.cancel_reason_id for reason_id in active):
                raise PermanentProviderError(
                    f"ServiceTitan cancel_reason_id {self.cancel_reason_id!r} is not one of tenant "
                    f"{self.tenant}'s active job cancel reasons ({', '.join(map(str, active))})",
                    code="Configuration Error",
                )
            self._cancel_reason_id_checked = int(self.cancel_reason_id)
        elif active:
            self._cancel_reason_id_checked = active[0]
        else:
            raise PermanentProviderError(
                f"ServiceTitan tenant {self.tenant} has no active job cancel reason: a job cannot "
                "be cancelled without one",
                code="Configuration Error",
            )
        return self._cancel_reason_id_checked

    def _find_booking(self, path: str, external_id: str) -> dict | None:
        if not external_id:
            return None
        params = {"externalId": external_id, "page": 1, "pageSize": PAGE_SIZE}
        for booking in self._request("GET", path, params=params).get("data") or []:
            if str(booking.get("externalId")) == external_id:
                return booking
        return None

    def _by_ids(self, path: str, ids: list[str]) -> dict[str, dict]:
        """A list endpoint's records by id, asked for ``IDS_PER_REQUEST`` ids at a time."""
        records = {}
        for start in range(0, len(ids), IDS_PER_REQUEST):
            chunk = ",".join(ids[start : start + IDS_PER_REQUEST])
            for record in self._pages(path, {"ids": chunk}, page_size=IDS_PER_REQUEST):
                records[str(record.get("id"))] = record
        return records

    def _job_with_revenue(self, job_id, booking: dict | None = None) -> ServiceTitanJob:
        job = job_from_job(self._request("GET", self._job_path(job_id)), booking=booking)
        if job.status == "completed":
            job.invoice_total = self._invoice_total(job_id)
        return job

    def _invoice_total(self, job_id) -> Decimal | None:
        """The sum of the job's invoices; None while it has none (not "zero revenue")."""
        path = f"/accounting/v2/tenant/{self.tenant}/invoices"
        totals = [
            decimal_amount(invoice.get("total"))
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
            correlation_id = get_correlation_id()
            if correlation_id:
                headers["X-Correlation-ID"] = correlation_id
            response = self._send(
                method, self.api_url + path, path=path, params=params, json=json, headers=headers
            )
            if response.status_code != 401 or attempt:
                break
            self._forget_token(token)
        if not response.ok:
            raise error_from_response(response, method, path)
        return json_object(response, method, path)

    def _token_entry(self, *, fresh: bool = False) -> dict:
        """``{"access_token", "expires_at"}``, from the cache unless ``fresh``."""
        if not fresh:
            with shared_state():
                entry = cache.get(self.token_cache_key)
            if entry:
                return entry
        entry = self._fetch_token()
        lifetime = int(entry["expires_at"] - time.time()) - TOKEN_REFRESH_MARGIN_SECONDS
        if lifetime > 0:
            with shared_state():
                cache.set(self.token_cache_key, entry, timeout=lifetime)
        return entry

    def _forget_token(self, token: str) -> None:
        # Only the token that failed: another process may already have cached a new one.
        with shared_state():
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
            body = json_object_or_empty(response)
            reason = body.get("error_description") or body.get("error") or body_snippet(response)
            raise PermanentProviderError(
                f"ServiceTitan refused the credentials of client {self.client_id}: "
                f"HTTP {response.status_code} {reason}",
                code="Authentication Failed",
            )
        if not response.ok:
            raise error_from_response(response, "POST", path)
        body = json_object(response, "POST", path)
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
        except requests.RequestException as exc:
            outcome = type(exc).__name__
            raise error_from_exception(exc, method, path, timeout=self.timeout) from exc
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

"""The client of ServiceTitan's public API (v2, https://developer.servicetitan.io/): bookings
through the booking-provider API (crm), jobs (jpm) and invoices (accounting).

A routing becomes a booking, never a job directly: ServiceTitan's office converts bookings into
jobs. So a routing's reference is the booking id, and the back-sync follows the booking to its
job once it has one. The booking's ``externalId`` is our booking id, which makes creating
idempotent across retries. The company's ids (campaign, business unit, job type) and rules come
from its provider settings (``mapping.booking_mapping``).

Timeouts are a (connect, read) pair. Connecting takes a few round trips, so 3.05 s (just over
TCP's 3 s packet retransmission window, as requests' documentation advises) tells a network
problem from a slow answer early. ServiceTitan's own server gives up on a request after 100 s;
we read for ``timeout_seconds`` (30 s by default), far less: our requests are small (one booking,
pages of at most 50 ids), one that takes longer holds a sync thread for nothing, and a create
whose answer was lost is safe to try again (the retry finds the booking by its externalId). The
provider lowers both to the sync engine's bound for the call.

Shared by every worker process: the OAuth token (Django's cache, Redis in production) and the
request budget per tenant (``ratelimit``, in Redis when ``REDIS_URL`` is set). Every failure,
HTTP or not, leaves as a typed provider error (``errors``).
"""

import hashlib
import logging
import random
import re
import time
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

import requests
from django.conf import settings

from integrations.http import (
    SharedToken,
    exchange,
    retry_after_header,
    token_entry,
)
from integrations.providers import PermanentProviderError
from integrations.servicetitan.errors import error_from_response, json_object
from integrations.servicetitan.mapping import (
    booking_mapping,
    booking_request,
    cancel_reason_text,
    decimal_amount,
    job_from_booking,
    job_from_job,
    timestamp_text,
)
from integrations.servicetitan.ratelimit import RateLimiter, redis_for
from integrations.servicetitan.types import Booking, ServiceTitanJob, ServiceTitanService
from tradeengage.logging import get_correlation_id

logger = logging.getLogger("integrations.servicetitan")

VERSION = "servicetitan-api-v2"
PAGE_SIZE = 50
JOBS_PAGE_SIZE = 100
# A tenant's settings lists are read whole (pageSize may be up to 5000): few pages.
SETTINGS_PAGE_SIZE = 500
# A 429's Retry-After waited out within a call (``_request``): at most this many times, and
# this many seconds in all; a longer one fails the call as retryable, for the sync to retry.
RATE_LIMITED_RETRIES = 3
RATE_LIMITED_WAIT_SECONDS = 5.0
# List endpoints look up "multiple IDs (maximum 50)" per request (crm and jpm v2 OpenAPI, ids).
IDS_PER_REQUEST = 50
CONNECT_TIMEOUT_SECONDS = 3.05
READ_TIMEOUT_SECONDS = 30.0
# The tenant's settings a booking's ids must be among, read for the Test connection report: all
# of them, inactive ones too where the list marks them ("active": "Any"). Job types are listed
# active only, as by default: ``JobTypeResponse`` has no ``active`` to tell them apart.
TENANT_SETTINGS = {
    "campaigns": ("/marketing/v2/tenant/{tenant}/campaigns", {"active": "Any"}),
    "business_units": ("/settings/v2/tenant/{tenant}/business-units", {"active": "Any"}),
    "job_types": ("/jpm/v2/tenant/{tenant}/job-types", {}),
    "job_cancel_reasons": ("/jpm/v2/tenant/{tenant}/job-cancel-reasons", {"active": "Any"}),
}


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
        self.config = config
        self.connect_timeout = float(
            config.get("connect_timeout_seconds") or CONNECT_TIMEOUT_SECONDS
        )
        self.read_timeout = float(config.get("timeout_seconds") or READ_TIMEOUT_SECONDS)
        self._customer_lookup_refused = False
        self.session = requests.Session()
        self.session.headers["Accept"] = "application/json"
        self.limiter = RateLimiter(
            f"servicetitan:rate:{self.tenant}",
            int(config.get("requests_per_second") or 60),
            redis_client=redis_for(settings.REDIS_URL) if settings.REDIS_URL else None,
        )
        digest = hashlib.sha256(f"{self.auth_url} {self.client_id}".encode()).hexdigest()
        self.token = SharedToken(
            f"servicetitan:token:{digest[:32]}",
            holds="the ServiceTitan token",
            fetch=self._fetch_token,
        )

    def authenticate(self, *, fresh: bool = False) -> dict:
        """A token, from the cache unless ``fresh`` (a connection test asks the server)."""
        entry = self.token.entry(fresh=fresh)
        return {
            "success": True,
            "token": entry["access_token"][:8] + "…",
            "expiresIn": max(int(entry["expires_at"] - time.time()), 0),
            "authenticated": True,
        }

    def create_job(self, booking: Booking) -> ServiceTitanJob:
        """The ServiceTitan booking for ``booking``, created at most once: its booking id is the
        booking's ``externalId``, looked up first, so a retry after a lost answer returns the
        booking the first attempt made. A booking without a booking id, or a company whose
        mapping settings are invalid, is refused before any request."""
        payload = booking_request(booking, mapping=booking_mapping(self.config))
        path = self._bookings_path()
        existing = self._find_booking(path, booking.booking_id)
        if existing is not None:
            return job_from_booking(existing)
        # Only worth a request once we know we post.
        payload["isFirstTimeClient"] = self._is_first_time_client(booking.phone)
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
        booking's state ("scheduled", or "cancelled" with the dismissal once dismissed); then the
        job's: with its ``cancel_reason`` once canceled, with ``completed_at`` and
        ``invoice_total`` (None while it has no invoice) once completed."""
        if not str(reference).isdigit():
            raise PermanentProviderError(
                f"ServiceTitan booking {reference!r} not found: a reference is a booking id",
                code="Not Found",
            )
        booking = self._request("GET", f"{self._bookings_path()}/{reference}")
        if not booking.get("jobId"):
            return job_from_booking(booking)
        job = job_from_job(self._request("GET", self._job_path(booking["jobId"])), booking=booking)
        self._add_outcomes([job])
        return job

    def jobs_for_references(self, references: Sequence[str]) -> dict[str, ServiceTitanJob]:
        """``job_for_reference`` for many references, by reference, in few requests: the
        bookings by ``ids`` (at most 50 a request, the API's limit), then the jobs of converted
        ones by ``ids``, then the cancelled jobs' reasons by ``ids`` and the invoices of each
        completed job. A reference ServiceTitan does not know (or that is no booking id) is left
        out."""
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
        self._add_outcomes([job for job in found.values() if not job.is_booking])
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

    def tenant_settings(self, kind: str) -> list[dict]:
        """All of the tenant's ``kind`` (a key of ``TENANT_SETTINGS``), every page."""
        path, params = TENANT_SETTINGS[kind]
        return list(
            self._pages(path.format(tenant=self.tenant), params, page_size=SETTINGS_PAGE_SIZE)
        )

    def bookings_check(self) -> None:
        """One booking of the booking provider's list: raises when the provider id is wrong or
        the app may not read its bookings."""
        self._request("GET", self._bookings_path(), params={"page": 1, "pageSize": 1})

    def get_health_status(self) -> dict:
        """Whether a token can be fetched now, and how long that took; never raises."""
        started = time.monotonic()
        error = ""
        try:
            self.token.entry(fresh=True)
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

    def _job_with_revenue(self, job_id) -> ServiceTitanJob:
        job = job_from_job(self._request("GET", self._job_path(job_id)))
        if job.status == "completed":
            job.invoice_total = self._invoice_total(job_id)
        return job

    def _add_outcomes(self, jobs: list[ServiceTitanJob]) -> None:
        """The cancelled jobs' reasons (``jobs/cancel-reasons``, 50 job ids a request) and the
        completed ones' invoice totals, on the jobs."""
        cancelled = [job for job in jobs if job.status == "cancelled"]
        reasons = {}
        for start in range(0, len(cancelled), IDS_PER_REQUEST):
            chunk = ",".join(str(job.id) for job in cancelled[start : start + IDS_PER_REQUEST])
            path = f"/jpm/v2/tenant/{self.tenant}/jobs/cancel-reasons"
            # Not paged (its only parameter is ids); a job cancelled twice has the last word.
            for record in self._request("GET", path, params={"ids": chunk}).get("data") or []:
                reasons[str(record.get("jobId"))] = record
        for job in cancelled:
            job.cancel_reason = cancel_reason_text(reasons.get(str(job.id)))
        for job in jobs:
            if job.status == "completed":
                job.invoice_total = self._invoice_total(job.id)

    def _is_first_time_client(self, phone: str) -> bool:
        """Whether no ServiceTitan customer has this phone number (``customers?phone=``): the
        booking's required ``isFirstTimeClient``. True without a phone to ask about, and when
        the app may not read customers (a permanent refusal, such as a 403 for a missing scope):
        the office then sees a possible returning customer as new, which costs less than
        refusing the work; that is logged once per client."""
        digits = re.sub(r"\D", "", phone or "")
        if not digits:
            return True
        path = f"/crm/v2/tenant/{self.tenant}/customers"
        try:
            body = self._request("GET", path, params={"phone": digits, "page": 1, "pageSize": 1})
        except PermanentProviderError as exc:
            if not self._customer_lookup_refused:
                self._customer_lookup_refused = True
                logger.warning(
                    "ServiceTitan customer lookup refused; bookings are sent as first-time clients",
                    extra={"tenant": self.tenant, "error": str(exc)},
                )
            return True
        return not body.get("data")

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
        tried once more on a 401), and a 429 with a short Retry-After waited out here, up to
        ``RATE_LIMITED_RETRIES`` times; the JSON body, or a typed provider error.

        Waiting here, not failing the sync, matters under a burst: a sync is three requests
        (two lookups and the create), and a routing sent back to the outbox starts again from
        the first, in step with every other one the same 429 sent back. The wait is jittered
        so that waiters do not come back in step either."""
        refreshed, rate_limited, waited = False, 0, 0.0
        while True:
            self.limiter.acquire(self.read_timeout)
            token = self.token.entry()["access_token"]
            headers = {"Authorization": f"Bearer {token}", "ST-App-Key": self.app_key}
            correlation_id = get_correlation_id()
            if correlation_id:
                headers["X-Correlation-ID"] = correlation_id
            response = self._send(
                method, self.api_url + path, path=path, params=params, json=json, headers=headers
            )
            if response.status_code == 401 and not refreshed:
                refreshed = True
                self.token.forget(token)
                continue
            if response.status_code == 429 and rate_limited < RATE_LIMITED_RETRIES:
                wait = retry_after_header(response)
                if wait is not None and waited + wait <= min(
                    RATE_LIMITED_WAIT_SECONDS, self.read_timeout
                ):
                    rate_limited += 1
                    pause = wait + random.uniform(0, wait / 2)
                    waited += pause
                    time.sleep(pause)
                    continue
            break
        if not response.ok:
            raise error_from_response(response, method, path)
        return json_object(response, method, path)

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
        return token_entry(
            response,
            vendor="ServiceTitan",
            client_id=self.client_id,
            path=path,
            error_from_response=error_from_response,
            # ServiceTitan's tokens live 15 minutes.
            default_lifetime_seconds=900,
        )

    def _send(self, method: str, url: str, *, path: str, **kwargs) -> requests.Response:
        return exchange(
            self.session,
            method,
            url,
            vendor="ServiceTitan",
            path=path,
            timeouts=(self.connect_timeout, self.read_timeout),
            logger=logger,
            **kwargs,
        )

"""The client of a field-service CRM's public API v2 (seed 002): customers, work orders,
invoices and webhook registration, with OAuth 2.0 client credentials.

``api_url`` is the API's base, ``/api/v2`` included (``https://crm.example.com/api/v2``); the
token endpoint is ``{api_url}/oauth/token``. Timeouts are a (connect, read) pair: 3.05 s to
connect (just over TCP's 3 s retransmission window, as requests' documentation advises) and
``timeout_seconds`` to read, both lowered by the provider to the sync engine's bound for the
call. The token is kept in Django's cache (Redis in production), so every worker process shares
one until shortly before it expires. Every failure, HTTP or not, leaves as a typed provider
error (``errors``).
"""

import hashlib
import logging
import threading
import time
from urllib.parse import quote

import requests
from django.conf import settings

from integrations.crm.errors import error_from_response, json_object
from integrations.crm.mapping import customer_matches, has_reference
from integrations.http import SharedToken, exchange, token_entry
from integrations.providers import (
    ProviderNotConfigured,
)
from tradeengage.logging import get_correlation_id

logger = logging.getLogger("integrations.crm")

VERSION = "crm-api-v2"
CONNECT_TIMEOUT_SECONDS = 3.05
READ_TIMEOUT_SECONDS = 30.0
DEFAULT_TOKEN_LIFETIME_SECONDS = 3600
# seed 002 "List Customers": page_size "max: 100".
PAGE_SIZE = 100
# A list followed further than this is a CRM that never says it is done.
MAX_PAGES = 1000
REQUIRED_KEYS = ("api_url", "client_id", "client_secret")

# The endpoints whose deprecation was logged in this process: (method, path template).
_deprecations_logged: set[tuple[str, str]] = set()
_deprecations_lock = threading.Lock()


def crm_config(options: dict | None = None) -> dict:
    """A company's CRM configuration: its provider account's settings (credentials included)
    over the global ``CRM`` settings."""
    merged = dict(settings.CRM)
    merged.update({key: value for key, value in (options or {}).items() if value not in ("", None)})
    return merged


class CrmClient:
    """One CRM account, from the configuration of ``crm_config``. ``ProviderNotConfigured``
    when its URL or credentials are missing: its routings wait until they are set."""

    def __init__(self, config: dict):
        missing = [key for key in REQUIRED_KEYS if not config.get(key)]
        if missing:
            raise ProviderNotConfigured(
                f"The CRM account is not configured: {', '.join(missing)} missing (api_url in "
                "the company's provider settings, client_id and client_secret in its "
                "credentials)."
            )
        self.api_url = str(config["api_url"]).rstrip("/")
        self.client_id = str(config["client_id"])
        self.client_secret = str(config["client_secret"])
        self.connect_timeout = float(
            config.get("connect_timeout_seconds") or CONNECT_TIMEOUT_SECONDS
        )
        self.read_timeout = float(config.get("timeout_seconds") or READ_TIMEOUT_SECONDS)
        self.session = requests.Session()
        self.session.headers["Accept"] = "application/json"
        digest = hashlib.sha256(f"{self.api_url} {self.client_id}".encode()).hexdigest()
        self.token = SharedToken(
            f"crm:token:{digest[:32]}", holds="the CRM token", fetch=self._fetch_token
        )

    # Customers

    def customer_find(self, *, email: str = "", phone: str = "") -> dict | None:
        """The customer with exactly this email (case-insensitive), else with this phone
        number, searched for in every page of ``GET /customers/?search=``; None when none."""
        for field, value in (("email", email), ("phone", phone)):
            if not value.strip():
                continue
            for customer in self._pages("/customers/", {"search": value.strip()}):
                if customer_matches(customer, **{field: value}):
                    return customer
        return None

    def customer_create(self, body: dict) -> dict:
        return self._request("POST", "/customers/", json=body)

    # Work orders

    def work_order_find(self, *, customer_id: str, idempotency_key: str) -> dict | None:
        """The customer's work order whose notes carry our reference line, among all its work
        orders; None when there is none."""
        for work_order in self._pages("/work-orders", {"customer_id": customer_id}):
            if has_reference(work_order, idempotency_key):
                return work_order
        return None

    def work_order_create(self, body: dict) -> dict:
        return self._request("POST", "/work-orders", json=body)

    def work_order_get(self, work_order_id: str) -> dict:
        return self._request("GET", "/work-orders/{id}", path_params={"id": work_order_id})

    def work_order_update(self, work_order_id: str, body: dict) -> dict:
        return self._request(
            "PATCH", "/work-orders/{id}", path_params={"id": work_order_id}, json=body
        )

    # Invoices and webhooks

    def invoices_for_customer(self, customer_id: str) -> list[dict]:
        """Every invoice of the customer, every page (seed 002 filters invoices by customer,
        not by work order)."""
        return list(self._pages("/invoices/", {"customer_id": customer_id}))

    def webhook_register(self, *, url: str, events: list[str], secret: str) -> dict:
        """seed 002 "Register Webhook"."""
        return self._request(
            "POST", "/webhooks", json={"url": url, "events": events, "secret": secret}
        )

    # Authentication and health

    def authenticate(self, *, fresh: bool = False) -> dict:
        """A token, from the cache unless ``fresh``; its first characters only."""
        entry = self.token.entry(fresh=fresh)
        return {
            "authenticated": True,
            "token": entry["access_token"][:8] + "…",
            "expiresIn": max(int(entry["expires_at"] - time.time()), 0),
        }

    def get_health_status(self) -> dict:
        """Whether a token can be fetched now, and how long that took; never raises."""
        started = time.monotonic()
        error = ""
        try:
            self.token.entry(fresh=True)
        except Exception as exc:
            # A health check reports every failure, expected or not, instead of raising.
            error = str(exc) or type(exc).__name__
        status = {
            "status": "unhealthy" if error else "healthy",
            "version": VERSION,
            "authenticated": not error,
            "responseTimeMs": int((time.monotonic() - started) * 1000),
        }
        if error:
            status["error"] = error
        return status

    # The exchange

    def _pages(self, path: str, params: dict):
        """Every item of a list endpoint, following seed 002's pagination envelope (``items``,
        ``total``, ``page``, ``page_size``, ``total_pages``) to its last page."""
        page = 1
        while page <= MAX_PAGES:
            body = self._request(
                "GET", path, params={**params, "page": page, "page_size": PAGE_SIZE}
            )
            items = body.get("items") or []
            yield from items
            if not items or _is_last_page(body, page=page, count=len(items)):
                return
            page += 1

    def _request(
        self, method: str, template: str, *, path_params=None, params=None, json=None
    ) -> dict:
        """One API call with the bearer token, fetched afresh and tried once more on a 401;
        the JSON body, or a typed provider error. ``template`` names the endpoint
        ("/work-orders/{id}") in logs and deprecation warnings; ``path_params`` fill it."""
        path = template.format(
            **{name: quote(str(value), safe="") for name, value in (path_params or {}).items()}
        )
        refreshed = False
        while True:
            token = self.token.entry()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            correlation_id = get_correlation_id()
            if correlation_id:
                headers["X-Correlation-ID"] = correlation_id
            response = self._send(
                method, path, template=template, params=params, json=json, headers=headers
            )
            if response.status_code == 401 and not refreshed:
                refreshed = True
                self.token.forget(token)
                continue
            break
        if not response.ok:
            raise error_from_response(response, method, path)
        return json_object(response, method, path)

    def _fetch_token(self) -> dict:
        """seed 002 "OAuth 2.0 Client Credentials": a form-encoded POST to ``/oauth/token``."""
        template = "/oauth/token"
        response = self._send(
            "POST",
            template,
            template=template,
            data={
                "grant_type": "client_credentials",
                "client_id": self.client_id,
                "client_secret": self.client_secret,
            },
        )
        return token_entry(
            response,
            vendor="The CRM",
            client_id=self.client_id,
            path=template,
            error_from_response=error_from_response,
            default_lifetime_seconds=DEFAULT_TOKEN_LIFETIME_SECONDS,
        )

    def _send(self, method: str, path: str, *, template: str, **kwargs) -> requests.Response:
        """The HTTP exchange (``integrations.http.exchange``), then its deprecation noted."""
        response = exchange(
            self.session,
            method,
            self.api_url + path,
            vendor="CRM",
            path=template,
            timeouts=(self.connect_timeout, self.read_timeout),
            logger=logger,
            **kwargs,
        )
        deprecation_note(response, method=method, template=template)
        return response


def deprecation_note(response: requests.Response, *, method: str, template: str) -> None:
    """seed 002 "Versioning": a deprecated endpoint answers ``Deprecation: true`` with its
    ``Sunset`` date and a ``Link`` to its successor. One WARNING per endpoint and process, so
    that the log says what to migrate before the sunset without repeating it on every call."""
    if response.headers.get("Deprecation", "").strip().lower() in ("", "false"):
        return
    endpoint = (method, template)
    with _deprecations_lock:
        if endpoint in _deprecations_logged:
            return
        _deprecations_logged.add(endpoint)
    logger.warning(
        "CRM endpoint %s %s is deprecated (sunset %s, successor %s)",
        method,
        template,
        response.headers.get("Sunset") or "not announced",
        response.headers.get("Link") or "not named",
        extra={
            "method": method,
            "path": template,
            "sunset": response.headers.get("Sunset", ""),
            "link": response.headers.get("Link", ""),
        },
    )


def _is_last_page(body: dict, *, page: int, count: int) -> bool:
    """``total_pages`` when the CRM sends it, else ``total`` over ``page_size``, else a short
    page."""
    try:
        page_size = int(body.get("page_size") or PAGE_SIZE)
        if body.get("total_pages") is not None:
            return page >= int(body["total_pages"])
        if body.get("total") is not None:
            return page * page_size >= int(body["total"])
    except (TypeError, ValueError):
        page_size = PAGE_SIZE
    return count < page_size

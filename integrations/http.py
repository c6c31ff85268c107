"""What the vendors' HTTP clients share: an OAuth access token kept in Django's cache for every
process, and reading an answer (its JSON body, a snippet of any other, its Retry-After)."""

import logging
import time
from collections.abc import Callable
from contextlib import contextmanager

import redis
import requests
from django.core.cache import cache
from django.utils.http import parse_http_date_safe

from integrations.providers import PermanentProviderError, ProviderError, RetryableProviderError

# Exceptions of a request that could not be sent at all: the configured URL's fault.
CONFIGURATION_ERRORS = (
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.InvalidURL,
)
# Refresh a token this long before it expires, so that none expires during a call.
TOKEN_REFRESH_MARGIN_SECONDS = 60


@contextmanager
def shared_state(holds: str):
    """Redis holds ``holds`` (a token, a request budget) in production; without it no call can
    be made safely, so its failure is a retryable provider error."""
    try:
        yield
    except redis.RedisError as exc:
        raise RetryableProviderError(
            f"Redis, which holds {holds}, failed: {exc}", code="Service Unavailable"
        ) from exc


class SharedToken:
    """An OAuth access token shared by every process through Django's cache (Redis in
    production) until ``TOKEN_REFRESH_MARGIN_SECONDS`` before it expires. An entry is
    ``{"access_token", "expires_at"}``; ``fetch`` gets a new one from the vendor."""

    def __init__(self, cache_key: str, *, holds: str, fetch: Callable[[], dict]):
        self.cache_key = cache_key
        self.holds = holds
        self.fetch = fetch

    def entry(self, *, fresh: bool = False) -> dict:
        """The cached entry, or a new one (always a new one when ``fresh``)."""
        if not fresh:
            with shared_state(self.holds):
                entry = cache.get(self.cache_key)
            if entry:
                return entry
        entry = self.fetch()
        lifetime = int(entry["expires_at"] - time.time()) - TOKEN_REFRESH_MARGIN_SECONDS
        if lifetime > 0:
            with shared_state(self.holds):
                cache.set(self.cache_key, entry, timeout=lifetime)
        return entry

    def forget(self, token: str) -> None:
        # Only the token that failed: another process may already have cached a new one.
        with shared_state(self.holds):
            entry = cache.get(self.cache_key)
            if entry and entry["access_token"] == token:
                cache.delete(self.cache_key)


def retry_after_header(response: requests.Response) -> float | None:
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


def json_object(response: requests.Response, *, vendor: str, method: str, path: str) -> dict:
    """A successful answer's body: ``{}`` when empty, else the JSON object it must be (a proxy's
    HTML page in its place is retryable: the vendor itself did not answer)."""
    if not response.content:
        return {}
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise RetryableProviderError(
            f"{vendor} {method} {path}: HTTP {response.status_code} with a body that is not a "
            f"JSON object: {body_snippet(response)}",
            code="Invalid Response",
        )
    return body


def json_object_or_empty(response: requests.Response) -> dict:
    """An error answer's body when it is a JSON object, else ``{}``."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def body_snippet(response: requests.Response) -> str:
    text = " ".join(response.text.split())
    return text[:200] if text else "(empty body)"


def exchange(
    session: requests.Session,
    method: str,
    url: str,
    *,
    vendor: str,
    path: str,
    timeouts: tuple[float, float],
    logger: logging.Logger,
    **kwargs,
) -> requests.Response:
    """One HTTP exchange with a vendor within its (connect, read) ``timeouts``, logged at debug
    level with its outcome and duration; a request that got no answer leaves as a typed
    provider error (``error_from_exception``)."""
    started = time.monotonic()
    outcome = "error"
    try:
        response = session.request(method, url, timeout=timeouts, **kwargs)
        outcome = response.status_code
        return response
    except requests.RequestException as exc:
        outcome = type(exc).__name__
        timeout = timeouts[0] if isinstance(exc, requests.ConnectTimeout) else timeouts[1]
        raise error_from_exception(
            exc, vendor=vendor, method=method, path=path, timeout=timeout
        ) from exc
    finally:
        logger.debug(
            f"{vendor} call",
            extra={
                "method": method,
                "path": path,
                "status": outcome,
                "duration_ms": int((time.monotonic() - started) * 1000),
            },
        )


def error_from_exception(
    exc: requests.RequestException, *, vendor: str, method: str, path: str, timeout: float
) -> ProviderError:
    """A request that got no answer: a timeout or a connection failure is worth another
    attempt (a create's retry finds what the lost answer created), a URL that cannot be
    requested is the configuration's fault."""
    if isinstance(exc, requests.Timeout):
        return RetryableProviderError(
            f"{vendor} {method} {path}: no answer within {timeout:g} s", code="Timeout"
        )
    if isinstance(exc, requests.ConnectionError):
        return RetryableProviderError(
            f"{vendor} {method} {path}: connection failed: {exc}", code="Service Unavailable"
        )
    if isinstance(exc, CONFIGURATION_ERRORS):
        return PermanentProviderError(
            f"{vendor} {method} {path}: the configured URL is invalid: {exc}",
            code="Configuration Error",
        )
    return RetryableProviderError(
        f"{vendor} {method} {path}: {type(exc).__name__}: {exc}", code="Service Unavailable"
    )


def token_entry(
    response: requests.Response,
    *,
    vendor: str,
    client_id: str,
    path: str,
    error_from_response: Callable[[requests.Response, str, str], ProviderError],
    default_lifetime_seconds: int,
) -> dict:
    """An OAuth 2 client-credentials answer as a ``SharedToken`` entry. Refused credentials
    (400, 401, 403) are permanent, with the server's reason; any other error is the vendor's
    ``error_from_response``; an answer without a token is permanent, and an unreadable
    ``expires_in`` is taken as ``default_lifetime_seconds``."""
    if response.status_code in (400, 401, 403):
        body = json_object_or_empty(response)
        reason = (
            body.get("detail")
            or body.get("error_description")
            or body.get("error")
            or body_snippet(response)
        )
        raise PermanentProviderError(
            f"{vendor} refused the credentials of client {client_id}: "
            f"HTTP {response.status_code} {reason}",
            code="Authentication Failed",
        )
    if not response.ok:
        raise error_from_response(response, "POST", path)
    body = json_object(response, vendor=vendor, method="POST", path=path)
    if not body.get("access_token"):
        raise PermanentProviderError(
            f"{vendor}'s token endpoint answered without an access_token",
            code="Authentication Failed",
        )
    try:
        expires_in = int(body.get("expires_in") or default_lifetime_seconds)
    except (TypeError, ValueError):
        expires_in = default_lifetime_seconds
    return {"access_token": body["access_token"], "expires_at": time.time() + expires_in}

"""What the vendors' HTTP clients share: an OAuth access token kept in Django's cache for every
process, and reading an answer (its JSON body, a snippet of any other, its Retry-After)."""

import time
from collections.abc import Callable
from contextlib import contextmanager

import redis
import requests
from django.core.cache import cache
from django.utils.http import parse_http_date_safe

from integrations.providers import RetryableProviderError

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

"""API key authentication for DRF, and the scope check views declare.

A key is read from ``X-API-Key`` (seeds 003 and 004), ``Authorization: Api-Key <key>`` or
``Authorization: Bearer <key>``. A request without one is anonymous and refused by the default
permission (401); a key that is unknown, revoked or expired fails at once (401), never passing
on as anonymous. Both count against the client address's rate limit (``access.ratelimit``),
so guessing keys is throttled.
"""

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission

from access.callers import Caller
from access.models import KEY_MARK, ApiKey
from access.ratelimit import address_counter, caller_counters, notes_key_uses, rate_limit

INVALID_KEY = "Invalid or missing API key"
# How stale ApiKey.last_used_at may get. On Redis the rate limiter notes each use and beat writes
# them every minute (access.tasks.record_api_key_uses); elsewhere authentication writes a key's
# at most this often, so most requests add no write.
LAST_USED_RESOLUTION = timedelta(minutes=1)
AUTHORIZATION_SCHEMES = ("api-key ", "bearer ")


def presented_key(request) -> str:
    key = request.headers.get("X-API-Key", "")
    if key:
        return key
    authorization = request.headers.get("Authorization", "")
    for scheme in AUTHORIZATION_SCHEMES:
        if authorization[: len(scheme)].lower() == scheme:
            return authorization[len(scheme) :].strip()
    return ""


def caller_for_key(key: str) -> Caller | None:
    """The caller a presented key (``te_`` and all) stands for, or None when it is unknown,
    revoked, expired or wrong (its secret's hash compared in constant time)."""
    if not key.startswith(KEY_MARK):
        return None
    raw = key.removeprefix(KEY_MARK)
    now = timezone.now()
    usable = ApiKey.objects.usable_key(
        prefix=raw.partition(".")[0], now=now, used_since=now - LAST_USED_RESOLUTION
    )
    if usable is None or not ApiKey.objects.key_generator.verify(raw, usable.hashed_key):
        return None
    if usable.last_use_stale and not notes_key_uses():
        ApiKey.objects.filter(id=usable.id).update(last_used_at=now)
    return Caller(
        key_id=usable.id,
        key_name=usable.name,
        company_id=usable.company_id,
        scopes=frozenset(usable.scopes),
        plan=usable.plan,
    )


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request):
        key = presented_key(request)
        caller = caller_for_key(key) if key else None
        if caller is None:
            rate_limit(request, [address_counter(request)])
            if key:
                raise exceptions.AuthenticationFailed(INVALID_KEY)
            return None
        return caller, key

    def authenticate_header(self, request):
        return 'Api-Key realm="api"'


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = ApiKeyAuthentication
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
            "description": "A company's or an ops API key (te_...); also accepted as "
            "`Authorization: Api-Key <key>` or `Authorization: Bearer <key>`.",
        }


class HasApiKey(BasePermission):
    """Any usable key; a view's ``required_scopes`` (by HTTP method) narrows it."""

    message = INVALID_KEY

    def has_permission(self, request, view):
        caller = request.user
        if not isinstance(caller, Caller):
            raise exceptions.NotAuthenticated(INVALID_KEY)
        scope = getattr(view, "required_scopes", {}).get(request.method)
        if scope and not caller.may(scope):
            # Counted like the key's other requests (DRF checks permissions before its
            # throttles), so a key cannot knock on endpoints it may not use without limit.
            rate_limit(
                request, caller_counters(request, caller, refused=True), key_id=caller.key_id
            )
            self.message = f"This key lacks the {scope} scope."
            raise exceptions.PermissionDenied(self.message)
        return True

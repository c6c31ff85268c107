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
from access.ratelimit import address_counter, rate_limit

INVALID_KEY = "Invalid or missing API key"
# How stale ApiKey.last_used_at may get: it is written at most this often per key, so
# authentication adds no write to most requests.
LAST_USED_RESOLUTION = timedelta(minutes=1)
AUTHORIZATION_SCHEMES = ("api-key ", "bearer ")
# A key's own columns and its company's plan (for its rate limits), in the query that finds it.
KEY_WITH_PLAN = [field.name for field in ApiKey._meta.concrete_fields] + ["company__plan"]


def presented_key(request) -> str:
    key = request.headers.get("X-API-Key", "")
    if key:
        return key
    authorization = request.headers.get("Authorization", "")
    for scheme in AUTHORIZATION_SCHEMES:
        if authorization[: len(scheme)].lower() == scheme:
            return authorization[len(scheme) :].strip()
    return ""


def usable_key(key: str) -> ApiKey | None:
    """``ApiKey.objects.get_from_key`` with the company's plan joined in: the unrevoked key for a
    presented one (``te_`` and all) whose secret matches (compared in constant time), else
    None."""
    if not key.startswith(KEY_MARK):
        return None
    raw = key.removeprefix(KEY_MARK)
    keys = ApiKey.objects.get_usable_keys().select_related("company").only(*KEY_WITH_PLAN)
    try:
        api_key = keys.get(prefix=raw.partition(".")[0])
    except ApiKey.DoesNotExist:
        return None
    return api_key if api_key.is_valid(raw) else None


def caller_for_key(key: str) -> Caller | None:
    """The caller a presented key stands for, or None when it is not a usable key."""
    api_key = usable_key(key)
    if api_key is None or api_key.has_expired:
        return None
    now = timezone.now()
    if api_key.last_used_at is None or api_key.last_used_at < now - LAST_USED_RESOLUTION:
        ApiKey.objects.filter(id=api_key.id).update(last_used_at=now)
    return Caller(
        key_id=api_key.id,
        key_name=api_key.name,
        company_id=api_key.company_id,
        scopes=frozenset(api_key.scopes),
        plan=api_key.company.plan if api_key.company_id else None,
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
            self.message = f"This key lacks the {scope} scope."
            raise exceptions.PermissionDenied(self.message)
        return True

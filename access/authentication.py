"""API key authentication for DRF, and the scope check views declare.

A key is read from ``X-API-Key`` (seeds 003 and 004), ``Authorization: Api-Key <key>`` or
``Authorization: Bearer <key>``. A request without one is anonymous and refused by the default
permission (401); a key that is unknown, revoked or expired fails at once (401), never passing
on as anonymous.
"""

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission

from access.callers import Caller
from access.models import ApiKey

INVALID_KEY = "Invalid or missing API key"
# How stale ApiKey.last_used_at may get: it is written at most this often per key, so
# authentication adds no write to most requests.
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
    """The caller a presented key stands for, or None when it is not a usable key."""
    try:
        api_key = ApiKey.objects.get_from_key(key)
    except ApiKey.DoesNotExist:
        return None
    if api_key.has_expired:
        return None
    now = timezone.now()
    if api_key.last_used_at is None or api_key.last_used_at < now - LAST_USED_RESOLUTION:
        ApiKey.objects.filter(id=api_key.id).update(last_used_at=now)
    return Caller(
        key_id=api_key.id,
        key_name=api_key.name,
        company_id=api_key.company_id,
        scopes=frozenset(api_key.scopes),
    )


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request):
        key = presented_key(request)
        if not key:
            return None
        caller = caller_for_key(key)
        if caller is None:
            raise exceptions.AuthenticationFailed(INVALID_KEY)
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

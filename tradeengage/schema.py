"""OpenAPI descriptions of the /api/v1 error shapes, shared by every v1 endpoint, and the 429
every rate-limited endpoint may answer."""

from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers


class FieldErrorSerializer(serializers.Serializer):
    field = serializers.CharField(
        allow_null=True, help_text="Dotted path of the field, e.g. address.state"
    )
    message = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    error_code = serializers.ChoiceField(
        choices=[
            "VALIDATION_ERROR",
            "NOT_FOUND",
            "SYNC_ERROR",
            "INTERNAL_ERROR",
            "METHOD_NOT_ALLOWED",
            "CONFLICT",
            "RATE_LIMIT_EXCEEDED",
            "UNAUTHORIZED",
            "FORBIDDEN",
            "NOT_ACCEPTABLE",
            "SERVICE_UNAVAILABLE",
            "ERROR",
        ],
        help_text="ERROR stands for a status that no other code names.",
    )
    timestamp = serializers.DateTimeField()


class ValidationErrorSerializer(ErrorSerializer):
    errors = FieldErrorSerializer(many=True)


NOT_FOUND = OpenApiResponse(ErrorSerializer, description="Unknown or malformed id (NOT_FOUND).")
MALFORMED = OpenApiResponse(
    ValidationErrorSerializer,
    description=(
        "Malformed input: bad JSON, wrong content type, wrong types or values (VALIDATION_ERROR)."
    ),
)
CONFLICT = OpenApiResponse(
    ErrorSerializer, description="A concurrent change got in the way; send it again (CONFLICT)."
)
BUSINESS_RULE = OpenApiResponse(
    ValidationErrorSerializer,
    description="A business rule was broken (VALIDATION_ERROR).",
)
UNAUTHORIZED = OpenApiResponse(
    ErrorSerializer,
    description="No API key, or one that is unknown, revoked or expired (UNAUTHORIZED).",
)
FORBIDDEN = OpenApiResponse(
    ErrorSerializer,
    description="The key may not do this: a missing scope, or another company's (FORBIDDEN).",
)


RATE_LIMIT_HEADERS = {
    "Retry-After": "Seconds until the limit that refused the request resets.",
    "X-RateLimit-Limit": "The quota of the limit closest to running out (or that refused it).",
    "X-RateLimit-Remaining": "Requests left under that limit in its window.",
    "X-RateLimit-Reset": "When that limit's next window begins, in seconds since the epoch.",
    "RateLimit-Policy": 'Every limit the request counted against: `"name";q=quota;w=window`.',
    "RateLimit": 'Requests left and seconds to the reset, per limit: `"name";r=left;t=seconds`.',
}
RATE_LIMIT_DESCRIPTION = (
    "Too many requests: a limit of the API key (by its plan), of job creation, or of the client "
    "address for requests without a valid key is spent (RATE_LIMIT_EXCEEDED). Every response "
    "of a rate-limited endpoint carries the X-RateLimit-* and RateLimit headers."
)


def document_rate_limits(result, generator, request, public):
    """drf-spectacular postprocessing hook: the 429 of every endpoint that takes an API key (the
    rate-limited ones), in its contract's error shape: seed 000's with ``retry_after`` under
    /api/v1, seed 001's envelope under /api/integrations/servicetitan, ``{"detail"}`` else."""
    schemas = result.get("components", {}).get("schemas", {})
    if "Error" in schemas:
        error = schemas["Error"]
        schemas["RateLimitError"] = {
            **error,
            "properties": {
                **error["properties"],
                "retry_after": {"type": "integer", "description": "Seconds until it resets."},
            },
            "required": [*error["required"], "retry_after"],
        }
    headers = {
        name: {"schema": {"type": "string"}, "description": description}
        for name, description in RATE_LIMIT_HEADERS.items()
    }
    for path, operations in result.get("paths", {}).items():
        for operation in operations.values():
            if not any(operation.get("security") or [{}]):
                continue
            schema = _rate_limit_error_schema(path)
            if schema not in schemas:
                continue
            operation["responses"]["429"] = {
                "description": RATE_LIMIT_DESCRIPTION,
                "headers": headers,
                "content": {
                    "application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}
                },
            }
    return result


def _rate_limit_error_schema(path: str) -> str:
    if path.startswith("/api/v1/"):
        return "RateLimitError"
    if path.startswith("/api/integrations/servicetitan/"):
        return "ServiceTitanError"
    return "DetailError"

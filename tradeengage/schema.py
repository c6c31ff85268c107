"""OpenAPI descriptions of the /api/v1 error shapes, shared by every v1 endpoint, of seed 003's
envelope and errors (``/api/v1/ingestion/``, ``/api/v1/matching/``), and the 429 every
rate-limited endpoint may answer."""

from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

from tradeengage.exceptions import INTEGRATOR_PATH_PREFIXES


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


class IntegratorErrorDetailSerializer(serializers.Serializer):
    code = serializers.ChoiceField(
        choices=[
            "INVALID_API_KEY",
            "PERMISSION_DENIED",
            "RATE_LIMIT_EXCEEDED",
            "SERVICE_UNAVAILABLE",
            "VALIDATION_ERROR",
            "NOT_FOUND",
            "METHOD_NOT_ALLOWED",
            "NOT_ACCEPTABLE",
            "CONFLICT",
            "INTERNAL_ERROR",
            "ERROR",
        ],
        help_text="Seed 003's codes for 401, 403, 429 and 503; seed 000's for the rest. ERROR "
        "stands for a status that no other code names.",
    )
    message = serializers.CharField()
    details = FieldErrorSerializer(
        many=True, required=False, help_text="On VALIDATION_ERROR: each field's error."
    )
    retry_after = serializers.IntegerField(
        required=False,
        help_text="On RATE_LIMIT_EXCEEDED and SERVICE_UNAVAILABLE: seconds to wait before "
        "sending the request again, as in the Retry-After header.",
    )


class IntegratorErrorSerializer(serializers.Serializer):
    success = serializers.BooleanField(help_text="Always false.")
    error = IntegratorErrorDetailSerializer()


def integrator_envelope(data, *, name: str):
    """Seed 003's success shape ``{"success": true, "data": <data>}`` around ``data`` (a
    serializer instance), as the OpenAPI component ``<name>Envelope``. Make it once per name
    (a module constant): two made with one name are two components that clash."""
    return inline_serializer(
        name=f"{name}Envelope",
        fields={"success": serializers.BooleanField(help_text="Always true."), "data": data},
    )


def _integrator_error(description: str) -> OpenApiResponse:
    return OpenApiResponse(IntegratorErrorSerializer, description=description)


INTEGRATOR_UNAUTHORIZED = _integrator_error(
    "No API key, or one that is unknown, revoked or expired (INVALID_API_KEY)."
)
INTEGRATOR_FORBIDDEN = _integrator_error(
    "The key may not do this: a missing scope, or an ops key where a company's is needed "
    "(PERMISSION_DENIED)."
)
INTEGRATOR_NOT_FOUND = _integrator_error("Unknown or malformed id (NOT_FOUND).")
INTEGRATOR_MALFORMED = _integrator_error(
    "Malformed input: bad JSON, wrong content type, wrong types or values (VALIDATION_ERROR, "
    "with details[])."
)
INTEGRATOR_CONFLICT = _integrator_error(
    "A concurrent change got in the way; send it again (CONFLICT)."
)
INTEGRATOR_UNAVAILABLE = _integrator_error(
    "The database is unavailable; send it again after retry_after seconds "
    "(SERVICE_UNAVAILABLE, with a Retry-After header)."
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
    rate-limited ones), in its contract's error shape: seed 003's envelope on its endpoints,
    seed 000's with ``retry_after`` on the rest of /api/v1, seed 001's envelope under
    /api/integrations/servicetitan, ``{"detail"}`` else."""
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
    if path.startswith(INTEGRATOR_PATH_PREFIXES):
        return "IntegratorError"
    if path.startswith("/api/v1/"):
        return "RateLimitError"
    if path.startswith("/api/integrations/servicetitan/"):
        return "ServiceTitanError"
    return "DetailError"

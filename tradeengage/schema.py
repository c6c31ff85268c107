"""OpenAPI descriptions of the /api/v1 error shapes, shared by every v1 endpoint."""

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
            "RATE_LIMITED",
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

import json

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from integrations.webhooks import UnsafeUrl
from routing.models import (
    JobRouting,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from routing.services.webhooks import webhook_url_check
from tradeengage.fields import StrictUUIDField


class MatchExplanationSerializer(serializers.Serializer):
    score = serializers.FloatField(source="matching_score")
    matched_skills = serializers.ListField(child=serializers.CharField())
    missing_skills = serializers.ListField(child=serializers.CharField())
    reason = serializers.CharField(source="match_reason")


class JobRoutingSerializer(serializers.ModelSerializer):
    job_id = serializers.UUIDField(read_only=True)
    company_id_received = serializers.UUIDField(source="company_id", read_only=True)
    company_name_received = serializers.CharField(source="company.name", read_only=True)
    match = MatchExplanationSerializer(source="*", read_only=True)

    class Meta:
        model = JobRouting
        fields = [
            "id",
            "job_id",
            "company_id_received",
            "company_name_received",
            "external_id",
            "sync_status",
            "retry_count",
            "last_sync_attempt",
            "last_synced_at",
            "next_retry_at",
            "error_message",
            "claimed_at",
            "created_at",
            "updated_at",
            "match",
            "routed_by",
            "provider_job_id",
            "provider_job_number",
            "provider_status",
            "declined_at",
            "decline_reason",
        ]
        read_only_fields = fields


class ManualSyncSerializer(serializers.Serializer):
    company_id = StrictUUIDField(help_text="The company to sync the job to (routed to it first)")
    override = serializers.BooleanField(
        default=False,
        help_text="Ops keys only: route to a company that lacks the job's required skills.",
    )


class WebhookEndpointSerializer(serializers.ModelSerializer):
    company_id = serializers.UUIDField(read_only=True)
    events = serializers.ListField(child=serializers.CharField())

    class Meta:
        model = WebhookEndpoint
        fields = [
            "id",
            "company_id",
            "url",
            "description",
            "events",
            "enabled",
            "disabled_at",
            "disabled_reason",
            "failing_since",
            "previous_secret_expires_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class WebhookEndpointWithSecretSerializer(WebhookEndpointSerializer):
    secret = serializers.CharField(
        read_only=True,
        help_text="The signing secret (whsec_ and base64 of 24 random bytes): shown this once, "
        "never again.",
    )

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]
        read_only_fields = fields


def _url_checked(url: str) -> str:
    try:
        webhook_url_check(url)
    except UnsafeUrl as exc:
        raise serializers.ValidationError(str(exc)) from None
    return url


class WebhookEndpointWriteSerializer(serializers.Serializer):
    url = serializers.URLField(
        max_length=2000,
        help_text="https (http only where WEBHOOK_ALLOW_HTTP); its host must resolve to public "
        "addresses only (unless WEBHOOK_ALLOW_PRIVATE_ADDRESSES).",
    )
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=WebhookEvent.subscribable()),
        min_length=1,
        max_length=len(WebhookEvent.subscribable()),
    )
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    enabled = serializers.BooleanField(required=False)

    def validate_url(self, url: str) -> str:
        return _url_checked(url)


class WebhookEndpointCreateSerializer(WebhookEndpointWriteSerializer):
    enabled = None
    company_id = StrictUUIDField(
        required=False,
        help_text="The company the endpoint belongs to: a company key's own (may be omitted); "
        "an ops key must name one.",
    )


class WebhookDeliveryAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookAttempt
        fields = [
            "number",
            "attempted_at",
            "response_status",
            "duration_ms",
            "response_start",
            "error",
            "succeeded",
        ]
        read_only_fields = fields


class WebhookDeliverySerializer(serializers.ModelSerializer):
    endpoint_id = serializers.UUIDField(read_only=True)
    payload = serializers.SerializerMethodField()
    attempts = WebhookDeliveryAttemptSerializer(many=True, read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "endpoint_id",
            "event",
            "status",
            "attempt_count",
            "next_attempt_at",
            "last_attempt_at",
            "last_response_status",
            "last_error",
            "delivered_at",
            "created_at",
            "payload",
            "attempts",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.DictField())
    def get_payload(self, delivery) -> dict:
        return json.loads(delivery.body)


class WebhookSecretSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    secret = serializers.CharField(help_text="The new secret: shown this once.")
    previous_secret_expires_at = serializers.DateTimeField(
        help_text="Until then the previous secret signs too, beside the new one."
    )


class WebhookDeliveryListQuerySerializer(serializers.Serializer):
    skip = serializers.IntegerField(min_value=0, max_value=1_000_000_000, default=0)
    limit = serializers.IntegerField(min_value=1, max_value=200, default=50)

from rest_framework import serializers

from routing.models import JobRouting
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

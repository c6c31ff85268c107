"""The shapes of seed 004's client-processing endpoints (/api/process-client, /api/job-status,
/api/process-retry-queue, /api/health)."""

from rest_framework import serializers
from rest_framework.settings import api_settings

from processing.models import ProcessingJob


class UUIDStringField(serializers.UUIDField):
    """A UUID sent as a JSON string only: DRF's field would also turn an integer (or true) into
    one."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid", value=data)
        return super().to_internal_value(data)


class ProcessClientSerializer(serializers.Serializer):
    default_error_messages = {"invalid": "The request body must be a JSON object, not {datatype}."}

    client_id = UUIDStringField(help_text="The id of the client (a subscribing company).")

    def validate_empty_values(self, data):
        # A JSON null body would otherwise be reported as "No data provided".
        if data is None:
            message = self.error_messages["invalid"].format(datatype="null")
            raise serializers.ValidationError(
                {api_settings.NON_FIELD_ERRORS_KEY: [message]}, code="invalid"
            )
        return super().validate_empty_values(data)


class ProcessingStartedSerializer(serializers.Serializer):
    success = serializers.BooleanField(help_text="Always true.")
    job_id = serializers.UUIDField(help_text="Follow it at /api/job-status/{job_id}.")
    client_id = serializers.UUIDField()
    message = serializers.CharField(help_text='"Processing started".')


class ProcessingJobStatusSerializer(serializers.ModelSerializer):
    client_id = serializers.UUIDField(read_only=True)
    properties_assigned = serializers.IntegerField(
        source="leads_assigned",
        read_only=True,
        help_text="Seed 004's name, kept for its clients: the leads (open jobs in the client's "
        "service area) this run assigned to the client (ProcessingJob.leads_assigned).",
    )

    class Meta:
        model = ProcessingJob
        fields = [
            "job_id",
            "client_id",
            "status",
            "properties_assigned",
            "error_message",
            "created_at",
            "updated_at",
            "attempt_count",
            "next_attempt",
            "trigger",
            "run_date",
        ]
        read_only_fields = fields
        extra_kwargs = {
            "status": {
                "help_text": "pending: waiting to run, or in the retry queue until next_attempt; "
                "processing: running; completed; failed: after the last retry."
            },
            "error_message": {
                "help_text": "The last failed attempt's error; null until one fails, and once "
                "the run completes."
            },
            "attempt_count": {"help_text": "Addition to seed 004: attempts made so far."},
            "next_attempt": {
                "help_text": "Addition to seed 004: when a pending run in the retry queue is due."
            },
            "trigger": {"help_text": "Addition to seed 004: what started the run."},
            "run_date": {"help_text": "Addition to seed 004: the day the run is for."},
        }


class RetryQueueResultSerializer(serializers.Serializer):
    success = serializers.BooleanField(help_text="Always true.")
    processed = serializers.IntegerField(help_text="Due runs that completed.")
    failed = serializers.IntegerField(
        help_text="Due runs that failed again: back in the retry queue, or failed for good."
    )


class ProcessingHealthSerializer(serializers.Serializer):
    status = serializers.CharField(help_text='Always "ok" when the API answers.')


class DetailErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What went wrong.")

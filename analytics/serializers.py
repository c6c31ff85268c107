from rest_framework import serializers


class HourSerializer(serializers.Serializer):
    hour = serializers.DateTimeField(help_text="The hour's start.")
    jobs_created = serializers.IntegerField()
    routings_synced = serializers.IntegerField()
    sync_retries = serializers.IntegerField(help_text="Provider calls failed, retry scheduled.")
    sync_failures = serializers.IntegerField(help_text="Provider calls that dead-lettered.")


class DaySerializer(serializers.Serializer):
    day = serializers.DateField()
    jobs_created = serializers.IntegerField()
    routings_created = serializers.IntegerField()
    routings_synced = serializers.IntegerField()
    sync_retries = serializers.IntegerField()
    sync_failures = serializers.IntegerField()
    routings_completed = serializers.IntegerField()
    revenue = serializers.DecimalField(max_digits=14, decimal_places=2)
    latency_p50_seconds = serializers.FloatField(allow_null=True)
    latency_p95_seconds = serializers.FloatField(allow_null=True)
    rolled_up = serializers.BooleanField(
        help_text="False for today (read live) and for a closed day not rolled up yet."
    )


class BacklogSerializer(serializers.Serializer):
    pending = serializers.IntegerField(help_text="Outbox events waiting for the relay.")
    in_flight = serializers.IntegerField()
    dead = serializers.IntegerField(help_text="Dead letters.")
    oldest_pending_age_seconds = serializers.FloatField(allow_null=True)


class NightlyRunSerializer(serializers.Serializer):
    run_date = serializers.DateField()
    clients = serializers.IntegerField()
    completed = serializers.IntegerField()
    pending = serializers.IntegerField(help_text="Still to run, or back in the retry queue.")
    failed = serializers.IntegerField()
    leads_assigned = serializers.IntegerField()
    revenue = serializers.DecimalField(max_digits=14, decimal_places=2)


class FailingCompanySerializer(serializers.Serializer):
    company_id = serializers.UUIDField()
    name = serializers.CharField()
    failed = serializers.IntegerField(help_text="Its routings whose sync failed for good.")


class DashboardSerializer(serializers.Serializer):
    generated_at = serializers.DateTimeField()
    total_jobs = serializers.IntegerField()
    total_routings = serializers.IntegerField()
    jobs_created_24h = serializers.IntegerField()
    routings_synced_24h = serializers.IntegerField()
    sync_failures_24h = serializers.IntegerField(
        help_text="Provider calls in the last 24 hours that failed (retried or dead-lettered)."
    )
    sync_success_rate = serializers.FloatField(
        allow_null=True,
        help_text="Of the last 24 hours' provider calls, the share that synced (0-1): routings "
        "synced / (routings synced + calls that failed); null without calls.",
    )
    average_sync_latency_seconds = serializers.FloatField(
        allow_null=True, help_text="Routing created to synced, of the last 24 hours' syncs."
    )
    sync_latency_p50_seconds = serializers.FloatField(allow_null=True)
    sync_latency_p95_seconds = serializers.FloatField(allow_null=True)
    active_routings = serializers.IntegerField(
        help_text="Waiting, in progress, or synced and neither completed nor declined yet."
    )
    routings_waiting = serializers.IntegerField()
    routings_in_progress = serializers.IntegerField()
    routings_synced_open = serializers.IntegerField(
        help_text="Synced, and neither completed nor declined by the company yet."
    )
    routings_failed = serializers.IntegerField()
    backlog = BacklogSerializer()
    revenue_mtd = serializers.DecimalField(
        max_digits=14, decimal_places=2, help_text="Revenue of routings completed this month."
    )
    last_nightly_run = NightlyRunSerializer(allow_null=True)
    top_failing_companies = FailingCompanySerializer(many=True)
    hourly = HourSerializer(
        many=True,
        help_text="The last 24 hours by UTC hour, oldest first: 25 hours, the first and last "
        "partial, adding up to exactly 24 hours.",
    )
    daily = DaySerializer(
        many=True,
        help_text="The last 30 days in the server's time zone, today last; days after the last "
        "roll-up are read live.",
    )
